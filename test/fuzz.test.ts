// A seeded fuzzer: hundreds of random, malformed, truncated and aborted
// requests against a server in a child process. It must never crash, never
// answer 5xx, never leave a request hanging, and still serve a fresh
// session afterwards. Re-run a failure with FUZZ_SEED=<seed>.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { type ChildServer, createSession, openStream, parseChunks, request, startChildServer } from './helpers.ts';

const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 600);
const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

// mulberry32: small, fast, and the same sequence for the same seed.
function prng(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const chance = (p: number): boolean => random() < p;
// Random text: mostly ASCII (controls included), some of the BMP, no lone surrogates.
const garbage = (length: number): string =>
  Array.from({ length }, () => {
    const code = Math.floor(random() * (chance(0.9) ? 128 : 0xd7ff));
    return String.fromCharCode(code);
  }).join('');

let server: ChildServer;
let port: number;
const sids: string[] = [];

before(async () => {
  server = await startChildServer('{ maxBodyBytes: 64 * 1024, bodyTimeout: 400, maxSessions: 500, keepAliveInterval: 300, sessionTimeoutInterval: 2000 }');
  port = server.port;
  for (let i = 0; i < 5; i++) sids.push((await createSession(port)).sid);
});
after(() => server.stop());

// ## One random request
function randomQuery(): string {
  const params: string[] = [];
  if (chance(0.85)) params.push(`VER=${chance(0.9) ? 8 : pick(['7', '', 'x', '8.0'])}`);
  if (chance(0.6)) params.push(`SID=${pick([...sids, ...sids, '__proto__', 'constructor', '', 'null', garbage(8), 'toString'])}`);
  if (chance(0.7)) params.push(`RID=${pick(['rpc', String(Math.floor(random() * 2000)), '-1', 'abc', '1e5', ''])}`);
  if (chance(0.5)) params.push(`AID=${pick(['0', '-1', '5', '999999', 'NaN', ''])}`);
  if (chance(0.6)) params.push(`TYPE=${pick(['xmlhttp', 'html', 'terminate', 'init', 'websocket', ''])}`);
  if (chance(0.5)) params.push(`CI=${pick(['0', '1', '2', ''])}`);
  if (chance(0.2)) params.push(`MODE=${pick(['init', 'x'])}`);
  if (chance(0.2)) params.push(`DOMAIN=${encodeURIComponent(pick(['example.com', '</script>', garbage(5), 'a'.repeat(300)]))}`);
  if (chance(0.15)) params.push(`OSID=${pick([...sids, 'x'])}&OAID=${pick(['0', 'x'])}`);
  if (chance(0.1)) params.push(`CVER=22&X-HTTP-Session-Id=${pick(['gsid', '<bad>', ''])}`);
  if (chance(0.1)) params.push(`$req=${encodeURIComponent(pick(['count=1&ofs=0&req0_a=b', garbage(30), 'count=x']))}`);
  if (chance(0.1)) params.push(`$httpHeaders=${encodeURIComponent(pick(['A:b\r\n', 'nocolon', garbage(20)]))}`);
  if (chance(0.1)) params.push(`TO=${pick(['1', '500', 'x'])}`);
  if (chance(0.1)) params.push(encodeURIComponent(garbage(10)) + '=' + encodeURIComponent(garbage(10)));
  return params.join('&');
}

function randomBody(): { type: string; body: string } {
  const kind = pick(['maps', 'maps', 'json', 'garbage', 'empty', 'big', 'headers']);
  const ofs = Math.floor(random() * 20);
  switch (kind) {
    case 'maps': {
      const count = Math.floor(random() * 5);
      const maps = Array.from({ length: count + (chance(0.2) ? 2 : 0) }, (_, i) => `req${i}_${pick(['JSON', '_S', '__data__', 'x', 'type'])}=${encodeURIComponent(pick(['{"a":1}', '"s"', '{', '_badmap', garbage(6)]))}`);
      return { type: 'application/x-www-form-urlencoded', body: [`count=${pick([String(count), 'x', '2000'])}`, `ofs=${ofs}`, ...maps].join('&') };
    }
    case 'json':
      return { type: pick(['application/json', 'application/json; charset=utf-8']), body: pick([JSON.stringify({ ofs, data: [1, 'two', { three: 3 }] }), '{"ofs":', 'null', '[]', '{"ofs":-1,"data":[1]}']) };
    case 'garbage':
      return { type: pick(['application/x-www-form-urlencoded', 'text/plain', 'application/octet-stream']), body: garbage(Math.floor(random() * 500)) };
    case 'big':
      return { type: 'application/x-www-form-urlencoded', body: `count=1&ofs=${ofs}&req0__S=${'b'.repeat(70 * 1024)}` };
    case 'headers':
      return { type: 'application/x-www-form-urlencoded', body: `headers=${encodeURIComponent(pick(['A:1\r\nB:2\r\n', 'bad', garbage(50)]))}&count=0` };
    default:
      return { type: 'application/x-www-form-urlencoded', body: '' };
  }
}

interface Outcome {
  status: number | null;
  how: string;
}

// Sends one request over a raw socket and reports the status line, or how
// it ended. A request that gets no headers within 3 s is a hang.
function fire(): Promise<Outcome> {
  const method = pick(['GET', 'GET', 'POST', 'POST', 'POST', 'OPTIONS', 'HEAD', 'PUT', 'DELETE']);
  const path = pick(['/channel/bind', '/channel/bind', '/channel/bind', '/channel/test', '/channel/other', '/channel', '/channelx/bind', '/']);
  const { type, body } = method === 'GET' || method === 'HEAD' ? { type: '', body: '' } : randomBody();
  const action = pick(['normal', 'normal', 'normal', 'truncate', 'abort-upload', 'destroy-response']);
  const bytes = Buffer.from(body, 'utf8');
  const head = `${method} ${path}?${randomQuery()} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    (type ? `Content-Type: ${type}\r\n` : '') +
    (method === 'POST' || method === 'PUT' ? `Content-Length: ${action === 'truncate' ? bytes.length + 50 : bytes.length}\r\n` : '') +
    'Connection: close\r\n\r\n';
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let settled = false;
    const finish = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(hang);
      socket.destroy();
      resolve(outcome);
    };
    const hang = setTimeout(() => finish({ status: null, how: `HANG ${method} ${head.split('\r\n')[0]}` }), 3000);
    socket.on('error', () => finish({ status: null, how: 'socket error' }));
    socket.on('close', () => finish({ status: statusOf(text), how: 'closed' }));
    socket.on('data', (data) => {
      text += data.toString('latin1');
      const status = statusOf(text);
      if (status === null) return;
      // A valid hanging GET keeps streaming: taking its headers is enough.
      if (action === 'destroy-response' || status === 200) finish({ status, how: 'answered' });
    });
    socket.on('connect', () => {
      socket.write(head);
      if (action === 'abort-upload') {
        socket.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
        setTimeout(() => finish({ status: null, how: 'aborted' }), 5);
        return;
      }
      socket.write(bytes);
    });
  });
}

function statusOf(text: string): number | null {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return match ? Number(match[1]) : null;
}

test(`fuzz: ${REQUESTS} random requests (FUZZ_SEED=${seed})`, async (t) => {
  t.diagnostic(`FUZZ_SEED=${seed}`);
  console.log(`fuzz seed: FUZZ_SEED=${seed}`);
  const outcomes: Outcome[] = [];
  const workers = Array.from({ length: 8 }, async () => {
    while (outcomes.length < REQUESTS) {
      outcomes.push({ status: null, how: 'pending' });
      outcomes[outcomes.length - 1] = await fire();
    }
  });
  await Promise.all(workers);
  const hangs = outcomes.filter((o) => o.how.startsWith('HANG'));
  assert.deepEqual(hangs, [], `hung requests (FUZZ_SEED=${seed})`);
  const serverErrors = outcomes.filter((o) => o.status !== null && o.status >= 500 && o.status !== 503);
  assert.deepEqual(serverErrors, [], `5xx answers (FUZZ_SEED=${seed})`);
  const statuses = new Set(outcomes.map((o) => o.status));
  assert.ok(statuses.has(200) && statuses.has(400), `a fuzzer that never succeeds or never fails tests little: ${[...statuses]}`);
  assert.equal(server.child.exitCode, null, 'the server process is still running');
  assert.doesNotMatch(server.stderr(), /APP ERROR|Error/, `the server reported: ${server.stderr()}`);

  // A fresh session works afterwards.
  const { sid } = await createSession(port);
  const posted = await request(port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=0`, 'count=1&ofs=0&req0_JSON=%22alive%22');
  assert.equal(posted.status, 200);
  const poll = await openStream(port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`).ended;
  assert.deepEqual(parseChunks(poll), [[[1, 'alive']]]);
});
