// The chat demo as people run it (`npm start` runs this very file), in a
// child process, fuzzed over raw TCP: paths that do not decode, URLs that
// do not parse, every method, junk bytes, random channel requests. The
// process must stay up, answer each request without a 5xx, and still serve
// its page, its icon and a chat session afterwards. Re-run a failure with
// FUZZ_SEED=<seed>.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createSession, request } from './helpers.ts';

const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
let state = seed;
const random = (): number => {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const junk = (length: number): string => Array.from({ length }, () => String.fromCharCode(33 + Math.floor(random() * 94))).join('');

let child: ChildProcess;
let port: number;
let stderr = '';

before(async () => {
  const script = fileURLToPath(new URL('../examples/chat/server.ts', import.meta.url));
  child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk;
      const match = /127\.0\.0\.1:(\d+)\//.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`demo exited (${code}): ${stderr}`)));
  });
});
after(() => {
  child.kill();
});

// One raw request line and headers, written as is; resolves with the status
// (0 if the connection closed without one).
function raw(text: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(text));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)));
    socket.setTimeout(3000, () => socket.destroy());
  });
}

const PATHS = [
  '/%E0%A4%A', '/%', '/%zz', '/%00', '/..%2f..%2fetc%2fpasswd', '/../../package.json', '//x:99999/', '//', '/%E0%A4%A/bind',
  '/channel/%E0%A4%A', '/channel', '/channel/bind?VER=8&RID=%E0%A4%A', '/channel/test?VER=8&MODE=%', '/favicon.ico',
  '/index.html?nick=%E0%A4%A', '/source/%E0%A4%A.html', '/api/', '/webchannel.js?%', '/assets/../../LICENSE', '/\u00e9',
];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'BREW'];

test('the demo survives hostile and malformed requests, and answers each without a 5xx', async () => {
  const statuses: number[] = [];
  statuses.push(await raw('GET /%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(statuses[0], 400, 'the URIError case is a 400');
  for (let i = 0; i < 200; i++) {
    const path = pick([...PATHS, `/${junk(8)}`, `/channel/${junk(5)}?VER=8&SID=${junk(6)}&RID=${junk(3)}`, `/%${junk(2)}`]);
    const method = pick(METHODS);
    const body = method === 'POST' || method === 'PUT' ? pick(['count=1&ofs=0&req0__S=hi', 'null', junk(40)]) : '';
    const type = pick(['application/x-www-form-urlencoded', 'application/json', 'text/plain']);
    statuses.push(await raw(`${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
  }
  // Not HTTP at all.
  statuses.push(await raw(`${junk(100)}\r\n\r\n`));
  assert.equal(child.exitCode, null, `the demo is still running (seed ${seed}); stderr: ${stderr}`);
  assert.deepEqual(statuses.filter((status) => status >= 500), [], `no 5xx (seed ${seed})`);
  assert.doesNotMatch(stderr, /URIError|TypeError|RangeError/, 'nothing thrown');

  // Still working: the page, the icon, and a session.
  const page = await request(port, 'GET', '/');
  assert.equal(page.status, 200);
  const icon = await request(port, 'GET', '/favicon.ico');
  assert.equal(icon.status, 200);
  assert.equal(icon.headers['content-type'], 'image/svg+xml');
  assert.match(icon.body, /^<svg /);
  const { sid } = await createSession(port, '/channel', '&nick=after-fuzz');
  assert.ok(sid.length > 10);
});

test('a path outside the site is not served, whatever its spelling', async () => {
  for (const path of ['/../package.json', '/..%2fpackage.json', '/%2e%2e/package.json', '/site/../package.json']) {
    const response = await request(port, 'GET', path);
    assert.equal(response.status === 200 && response.body.includes('"name": "browserchannel-server"'), false, path);
  }
});
