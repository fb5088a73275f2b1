// Recovery across processes (issue 17), with real redis-server, nginx and
// server processes (test/cluster/recovery-node.ts), and `kill -9`.
//
// First, one thing at a time over raw HTTP, where every byte is ours to
// check: a dead process's unreceived arrays, resent maps, the window
// passing, Redis flushed, what Redis holds. Then the whole thing under
// load: a publisher, 20 Closure BCSockets and 10 of ours over 3 processes
// behind nginx, one process killed mid-stream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
// @ts-expect-error: a plain .mjs script without types
import { nginxConfig } from '../../deploy/nginx-config.mjs';
import { BCSocket } from '../../src/client/index.ts';
import { delay, parseChunks, request, until } from '../helpers.ts';
import { type TestClient, bcsocket } from './clients.ts';
import {
  type TestNginx, type TestNode, type TestRedis, freePort, missingBinaries, startNginx, startNode,
  startRedis,
} from './harness.ts';

const missing = missingBinaries();
const skip = missing.length > 0 ? `needs ${missing.join(' and ')}` : false;
const script = new URL('./recovery-node.ts', import.meta.url).pathname;
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

interface Connect {
  name: string;
  id: string;
  recovered: boolean;
  previousId: string | null;
  failure: string | null;
}

// `connect` lines printed by the app on every process so far.
function connects(nodes: TestNode[]): Connect[] {
  return nodes.flatMap((node) => node.output.filter((line) => line.startsWith('connect ')).map(
    (line) => {
      const [, name, id, recovered, previous, ...failure] = line.split(' ');
      const text = failure.join(' ');
      return { name: name!, id: id!, recovered: recovered === 'true',
        previousId: previous === '-' ? null : previous!, failure: text === '-' ? null : text };
    }));
}

// The `connect` line of session `id`, once its process has printed it.
async function connectOf(nodes: TestNode[], id: string): Promise<Connect> {
  await until(() => connects(nodes).some((line) => line.id === id), 5000, `connect ${id}`);
  return connects(nodes).find((line) => line.id === id)!;
}

// What a client's maps delivered to the app, across processes: the `k`s.
function delivered(nodes: TestNode[], name: string): number[] {
  return nodes.flatMap((node) => node.output.filter((line) => line.startsWith(`msg ${name} `))
    .map((line) => Number(line.split(' ')[2])));
}

async function create(node: TestNode, query: string, body = 'count=0') {
  const response = await request(node.port, 'POST', `/channel/bind?VER=8&RID=100&CVER=1&t=1${query}`,
    body, FORM);
  assert.equal(response.status, 200, response.body);
  const [arrays] = parseChunks(response.body) as [Array<[number, unknown]>];
  return { sid: (arrays[0]![1] as string[])[1]!, arrays };
}

// One long poll (`CI=1`): the arrays it carries.
async function poll(node: TestNode, sid: string, aid: number): Promise<Array<[number, unknown]>> {
  const response = await request(node.port, 'GET',
    `/channel/bind?VER=8&RID=rpc&SID=${sid}&AID=${aid}&CI=1&TYPE=xmlhttp&TO=1`);
  assert.equal(response.status, 200, response.body);
  return (parseChunks(response.body)[0] ?? []) as Array<[number, unknown]>;
}

const notNoop = (data: unknown) => JSON.stringify(data) !== '["noop"]';

function forward(node: TestNode, sid: string, rid: number, ofs: number, ks: number[], aid = 0) {
  const maps = ks.map((k, index) => `req${index}_JSON=${encodeURIComponent(JSON.stringify({ k }))}`);
  return request(node.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${rid}&AID=${aid}`,
    [`count=${ks.length}`, `ofs=${ofs}`, ...maps].join('&'), FORM);
}

// The sessions' saves Redis ran, read off `MONITOR`: a line there is
// `<time> [<db> <client>] "EVALSHA" "<sha>" "<numkeys>" "<key>"… "<arg>"…`,
// each word quoted and escaped. A save's keys are two per session and its
// arguments the TTL, then per session 11 fields and that many texts
// (`saveArguments` in src/redis/history.ts); only saves fit that layout.
interface SeenSave { sid: string; rooms: string[]; positions: Record<string, string> }

function savesIn(line: string): SeenSave[] {
  const words = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map(([, word]) => word!
    .replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    .replace(/\\(.)/g, '$1'));
  if (words[0]?.toUpperCase() !== 'EVALSHA') return [];
  const count = Number(words[2]);
  const keys = words.slice(3, 3 + count);
  const args = words.slice(4 + count);
  const saves: SeenSave[] = [];
  let at = 0;
  for (let k = 0; k < keys.length; k += 2) {
    if (at + 11 > args.length || !/^\d+$/.test(args[at + 2]!)) return [];
    saves.push({ sid: keys[k]!.replace(/^bc:s:/, ''), rooms: JSON.parse(args[at + 7]!),
      positions: JSON.parse(args[at + 8]!) });
    at += 11 + Number(args[at + 2]);
  }
  return at === args.length ? saves : [];
}

describe('recovery, one thing at a time (raw HTTP, real Redis, kill -9)', { skip }, () => {
  let redis: TestRedis;
  let spy: ReturnType<typeof createClient>;
  const nodes: TestNode[] = [];
  const start = async (id: string, env: Record<string, string> = {}) => {
    const node = await startNode(id, redis.url, script, env);
    nodes.push(node);
    return node;
  };

  before(async () => {
    redis = await startRedis();
    spy = createClient({ url: redis.url });
    await spy.connect();
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    spy?.destroy();
    await redis?.stop();
  });

  test('arrays the app queued before the crash, never received, arrive once, in order; data and rooms come back', async () => {
    const [a, b] = [await start('a1'), await start('b1')];
    const { sid } = await create(a, '&name=raw1');
    // No back channel: the five sends are saved, and never written.
    await a.get(`/send?sid=${sid}&count=5`);
    await delay(300);
    assert.equal(await spy.xLen(`bc:s:${sid}`), 6, 'the handshake and five sends are saved');
    await a.kill9();
    const { sid: next, arrays } = await create(b, `&name=raw1&OSID=${sid}&OAID=0`);
    const taken = await connectOf(nodes, next);
    assert.deepEqual([taken.recovered, taken.previousId, taken.failure, taken.name],
      [true, sid, null, 'raw1']);
    const replayed = [...arrays.slice(1), ...await poll(b, next, arrays.at(-1)![0])];
    assert.deepEqual(replayed.map(([, data]) => data).filter(notNoop), [0, 1, 2, 3, 4].map((d) => ({ d })));
    // `session.data` came back as saved: the counter goes on from 5.
    await b.get(`/send?sid=${next}&count=1`);
    const later = await poll(b, next, replayed.at(-1)![0]);
    assert.deepEqual(later.map(([, data]) => data).filter(notNoop), [{ d: 5 }]);
    // And so did the room: a broadcast to "feed" reaches it.
    await b.get('/publish?count=1&every=1');
    const fed = await poll(b, next, later.at(-1)![0]);
    assert.deepEqual(fed.map(([, data]) => data).filter(notNoop), [{ n: 0 }]);
  });

  test('the old owner still alive: the new process takes over, the old copy closes with Reconnected', async () => {
    const [a, b] = [await start('a7'), await start('b7')];
    const { sid } = await create(a, '&name=raw7');
    await a.get(`/send?sid=${sid}&count=2`);
    await delay(200);
    const { sid: next, arrays } = await create(b, `&name=raw7&OSID=${sid}&OAID=0`);
    const replayed = [...arrays.slice(1), ...await poll(b, next, arrays.at(-1)![0])].map(([, data]) => data);
    assert.deepEqual(replayed.filter(notNoop), [{ d: 0 }, { d: 1 }]);
    await until(() => a.output.includes(`close raw7 ${sid} Reconnected`), 3000, 'the old copy closed');
    // Its next save would have failed as taken over; nothing of it is left but a tombstone.
    assert.equal(await spy.xLen(`bc:s:${sid}`), 0);
    assert.deepEqual(await spy.hGetAll(`bc:s:${sid}:m`), { taken: '1' });
  });

  test('the old session in the same process: its arrays, rooms and data move in memory', async () => {
    const a = await start('a8');
    const { sid } = await create(a, '&name=raw8');
    await a.get(`/send?sid=${sid}&count=3`);
    const { sid: next, arrays } = await create(a, `&name=raw8&OSID=${sid}&OAID=0`);
    const line = await connectOf(nodes, next);
    assert.deepEqual([line.recovered, line.previousId], [true, sid]);
    await until(() => a.output.includes(`close raw8 ${sid} Reconnected`), 3000, 'old closed');
    const replay = [...arrays.slice(1), ...await poll(a, next, arrays.at(-1)![0])];
    assert.deepEqual(replay.map(([, data]) => data).filter(notNoop), [{ d: 0 }, { d: 1 }, { d: 2 }]);
    await a.get(`/send?sid=${next}&count=1`);
    await a.get('/publish?count=1&every=1');
    await delay(200);
    const later = (await poll(a, next, replay.at(-1)![0])).map(([, data]) => data);
    assert.deepEqual(later.filter(notNoop), [{ d: 3 }, { n: 0 }]);
  });

  test('maps the client resends (OMID) that the dead process had delivered reach the app once', async () => {
    const [a, b] = [await start('a2'), await start('b2')];
    const { sid } = await create(a, '&name=raw2');
    assert.equal((await forward(a, sid, 101, 0, [0, 1])).status, 200);
    await a.kill9();
    // The client never heard about maps 2 and 3 (say their POST died with
    // the process), so it resends 0… from its own bookkeeping: here, all
    // four, starting at old map id 0.
    const body = ['count=4', 'ofs=0', ...[0, 1, 2, 3].map((k, index) =>
      `req${index}_JSON=${encodeURIComponent(JSON.stringify({ k }))}`)].join('&');
    const { sid: next } = await create(b, `&name=raw2&OSID=${sid}&OAID=0&OMID=0`, body);
    const line = await connectOf(nodes, next);
    assert.deepEqual([line.recovered, line.failure], [true, null]);
    await until(() => delivered(nodes, 'raw2').length >= 4, 3000, 'maps delivered');
    await delay(200);
    assert.deepEqual(delivered(nodes, 'raw2'), [0, 1, 2, 3]);
  });

  // A room's first join on a process reads where the room's history
  // stands, a round trip or two; saves made meanwhile (the handshake's,
  // a forward's) once listed the room without a position, and a takeover
  // of such a save failed whole. Now they wait for the read.
  test('saves made while a first join is reading its position wait for it; the takeover recovers', async () => {
    const watcher = spy.duplicate();
    await watcher.connect();
    const lines: string[] = [];
    await watcher.monitor((line) => lines.push(String(line)));
    try {
      const [a, b] = [await start('a9'), await start('b9')];
      const { sid } = await create(a, '&name=raw9&room=own9');
      assert.equal((await forward(a, sid, 101, 0, [0, 1])).status, 200);
      await a.kill9();
      const savesOf = () => lines.flatMap(savesIn).filter((save) => save.sid === sid);
      await until(() => savesOf().length >= 2, 2000, 'the handshake\'s save and the forward\'s');
      const saves = savesOf();
      for (const save of saves) {
        assert.deepEqual([...save.rooms].sort(), ['feed', 'own9']);
        assert.deepEqual(Object.keys(save.positions).sort(), ['feed', 'own9'], 'every room positioned');
      }
      const { sid: next } = await create(b, `&name=raw9&OSID=${sid}&OAID=0`);
      const line = await connectOf(nodes, next);
      assert.deepEqual([line.recovered, line.failure], [true, null]);
    } finally {
      watcher.destroy();
    }
  });

  test('a takeover in the middle of a burst: what arrives live during the replay is not given twice', async () => {
    const [a, b] = [await start('a6'), await start('b6')];
    const { sid } = await create(a, '&name=raw6');
    await delay(300);
    await a.kill9();
    // Broadcasts every millisecond from b while b takes the session over:
    // some reach it by the replay, some live while the replay is read.
    await b.get('/publish?count=400&every=1');
    await delay(100);
    const { sid: next, arrays } = await create(b, `&name=raw6&OSID=${sid}&OAID=0`);
    assert.equal((await connectOf(nodes, next)).recovered, true);
    const got: unknown[] = arrays.slice(1).map(([, data]) => data);
    let aid = arrays.at(-1)![0];
    while (got.filter((m) => typeof m === 'object' && m !== null && 'n' in m).length < 400) {
      const polled = await poll(b, next, aid);
      if (polled.length > 0) aid = polled.at(-1)![0];
      got.push(...polled.map(([, data]) => data));
    }
    const ns = got.filter((m): m is { n: number } => typeof m === 'object' && m !== null && 'n' in m);
    assert.deepEqual(ns.map((m) => m.n), Array.from({ length: 400 }, (_, n) => n));
  });

  test('the window passed: recovered is false, the reason is given, the new session works, and Redis forgot the old one', async () => {
    const [a, b] = [await start('a3', { RECOVERY_WINDOW: '1500' }),
      await start('b3', { RECOVERY_WINDOW: '1500' })];
    const { sid } = await create(a, '&name=raw3');
    await delay(200);
    assert.equal(await spy.exists(`bc:s:${sid}:m`), 1);
    // Keys live a refresh period (1 s here) past the window, so a process
    // that dies just before refreshing still leaves the whole window.
    const left = await spy.pTTL(`bc:s:${sid}:m`);
    assert.ok(left > 1500 + 1000 - 400, `the state expires in ${left} ms`);
    await a.kill9();
    await delay(3000);
    assert.equal(await spy.exists([`bc:s:${sid}`, `bc:s:${sid}:m`]), 0, 'nothing left after the window');
    const began = Date.now();
    const { sid: next } = await create(b, `&name=raw3&OSID=${sid}&OAID=0`);
    assert.ok(Date.now() - began < 2000, 'nothing hangs');
    const line = await connectOf(nodes, next);
    assert.equal(line.recovered, false);
    assert.match(line.failure!, /no saved state/);
    assert.equal((await forward(b, next, 101, 0, [7])).status, 200);
    await until(() => delivered(nodes, 'raw3').includes(7), 3000, 'a message on the new session');
    const stats = await b.get<{ stats: { recovery: { failed: Record<string, number> } } }>('/stats');
    assert.equal(stats.stats.recovery.failed['no saved state'], 1);
  });

  // A join and a leave in the same tick: the room's position comes back
  // from Redis after its last member here left. Kept, it was refreshed
  // with the room's keys for as long as the process lived.
  test('a room joined and left at once keeps no position: its keys expire with the window', async () => {
    const a = await start('a13', { RECOVERY_WINDOW: '1500' });
    const { sid } = await create(a, '&name=raw13');
    assert.equal(await a.get(`/churn?sid=${sid}&room=brief`), 'churned');
    let made = false;
    const check = setInterval(() => void spy.exists('bc:h:brief:m').then((n) => (made ||= n === 1)), 20);
    try {
      await until(() => made, 3000, 'the read made the room\'s keys');
    } finally {
      clearInterval(check);
    }
    // Keys live 2.5 s (window + one refresh period); the session's own
    // keep being refreshed meanwhile.
    await delay(4000);
    assert.equal(await spy.exists('bc:h:brief:m'), 0, 'the room was refreshed');
    assert.equal(await spy.exists(`bc:s:${sid}:m`), 1, 'the session is still kept');
  });

  test('Redis flushed: recovered is false with the reason, never a partial replay', async () => {
    const [a, b] = [await start('a4'), await start('b4')];
    const { sid } = await create(a, '&name=raw4');
    await a.get(`/send?sid=${sid}&count=3`);
    await delay(300);
    await a.kill9();
    await spy.flushAll();
    const { sid: next, arrays } = await create(b, `&name=raw4&OSID=${sid}&OAID=0`);
    const line = await connectOf(nodes, next);
    assert.equal(line.recovered, false);
    assert.match(line.failure!, /no saved state/);
    assert.equal(arrays.length, 1, 'only the handshake');
    const polled = (await poll(b, next, 0)).filter(([, data]) => JSON.stringify(data) !== '["noop"]');
    assert.deepEqual(polled, [], 'nothing replayed');
  });

  // The ledger lets live traffic through when a save fails (`recovery.ts`),
  // so the saved arrays can have a hole. The next save finds the stored
  // `next` short of what it expects and marks the state with `gap`; a
  // takeover then refuses it whole rather than replay around the hole.
  test('a save Redis refused: the takeover refuses the gap and replays nothing', async () => {
    const [a, b] = [await start('a9'), await start('b9')];
    const { sid } = await create(a, '&name=raw9');
    await a.get(`/send?sid=${sid}&count=1`);
    await delay(200);
    assert.equal(await spy.xLen(`bc:s:${sid}`), 2, 'the handshake and {d: 0} are saved');
    // Redis refuses writes while it lacks a replica it was told it needs:
    // a's save of {d: 1} fails, the array goes to the client unsaved, and
    // the next save, once Redis takes writes again, finds the hole.
    await spy.configSet('min-replicas-to-write', '1');
    await a.get(`/send?sid=${sid}&count=1`);
    await delay(200);
    await spy.configSet('min-replicas-to-write', '0');
    await a.get(`/send?sid=${sid}&count=1`);
    await delay(300);
    assert.equal(await spy.hGet(`bc:s:${sid}:m`, 'gap'), '1', 'the hole is marked');
    const saved = await spy.xRange(`bc:s:${sid}`, '-', '+');
    assert.deepEqual((saved ?? []).map((entry) => JSON.parse(entry.message.j!)).slice(1),
      [{ d: 0 }, { d: 2 }], '{d: 1} is the hole');
    await a.kill9();
    const { sid: next, arrays } = await create(b, `&name=raw9&OSID=${sid}&OAID=0`);
    const line = await connectOf(nodes, next);
    assert.deepEqual([line.recovered, line.previousId], [false, sid]);
    assert.match(line.failure!, /not all saved/);
    assert.equal(arrays.length, 1, 'only the handshake');
    const polled = (await poll(b, next, 0)).filter(([, data]) => notNoop(data));
    assert.deepEqual(polled, [], 'nothing replayed');
  });

  // A Redis that hangs (SIGSTOP: connections stay open, nothing answers)
  // must not hold traffic for longer than the `timeout` option, here 300 ms.
  test('Redis hangs: arrays and forward answers wait no longer than the timeout', async () => {
    const a = await start('a10', { RECOVERY_TIMEOUT: '300' });
    const { sid } = await create(a, '&name=raw10');
    await delay(200);
    const hung = redis.hang(3000);
    const began = Date.now();
    await a.get(`/send?sid=${sid}&count=1`);
    const got = (await poll(a, sid, 0)).map(([, data]) => data).filter(notNoop);
    assert.deepEqual(got, [{ d: 0 }]);
    assert.equal((await forward(a, sid, 101, 0, [1])).status, 200);
    const waited = Date.now() - began;
    assert.ok(waited < 2500, `answered while Redis was still frozen: ${waited} ms`);
    await hung;
    await delay(500);
    // The saves that timed out were still in the socket, and landed in
    // order once Redis woke: the state is whole, with no gap mark.
    assert.equal(await spy.hGet(`bc:s:${sid}:m`, 'gap'), null);
    const saved = await spy.xRange(`bc:s:${sid}`, '-', '+');
    // (The handshake, array 0, is trimmed: the poll's AID=0 acknowledged it.)
    assert.deepEqual((saved ?? []).map((entry) => JSON.parse(entry.message.j!)), [{ d: 0 }]);
    assert.deepEqual(delivered(nodes, 'raw10'), [1]);
  });

  // The first session on a process joins "feed", whose position read then
  // hangs with Redis (until `joinTimeout`, 2 s here). Its first save waits
  // for that read no longer than `timeout`, and the save itself as long.
  test('Redis hangs during a first join: the handshake waits no longer than the timeout, twice', async () => {
    const a = await start('a14', { RECOVERY_TIMEOUT: '300' });
    const hung = redis.hang(3000);
    const began = Date.now();
    const { sid } = await create(a, '&name=raw14');
    const waited = Date.now() - began;
    assert.ok(waited >= 300 && waited < 1500, `the handshake was answered after ${waited} ms`);
    await hung;
    await a.get(`/send?sid=${sid}&count=1`);
    const got = (await poll(a, sid, 0)).map(([, data]) => data).filter(notNoop);
    assert.deepEqual(got, [{ d: 0 }], 'the session works once Redis is back');
  });

  test('Redis hangs during a takeover: the client starts fresh after the timeout, and nothing is replayed later', async () => {
    const [a, b] = [await start('a11'), await start('b11', { RECOVERY_TIMEOUT: '300' })];
    const { sid } = await create(a, '&name=raw11');
    await a.get(`/send?sid=${sid}&count=2`);
    await delay(200);
    const hung = redis.hang(3000);
    const began = Date.now();
    const { sid: next, arrays } = await create(b, `&name=raw11&OSID=${sid}&OAID=0`);
    const waited = Date.now() - began;
    assert.ok(waited >= 250 && waited < 2500, `the create waited about the timeout: ${waited} ms`);
    const line = await connectOf(nodes, next);
    assert.deepEqual([line.recovered, line.previousId], [false, sid]);
    assert.match(line.failure!, /did not answer in 300 ms/);
    assert.equal(arrays.length, 1, 'only the handshake');
    await hung;
    await delay(500);
    // The take landed once Redis woke, and found the server gone: the
    // new session was given nothing of the old one.
    const polled = (await poll(b, next, 0)).map(([, data]) => data).filter(notNoop);
    assert.deepEqual(polled, []);
    // And the old state is gone (at most once): the take left a tombstone,
    // or the old owner, retired over the relay, dropped the keys, or both.
    assert.equal(await spy.xLen(`bc:s:${sid}`), 0);
    assert.ok(['{"taken":"1"}', '{}'].includes(JSON.stringify(await spy.hGetAll(`bc:s:${sid}:m`))));
  });

  test('Redis holds only what is unacknowledged, and a bounded room history', async () => {
    const a = await start('a5');
    const { sid } = await create(a, '&name=raw5');
    await a.get(`/send?sid=${sid}&count=50`);
    const arrays = await poll(a, sid, 0);
    assert.equal(arrays.length, 50);
    await delay(200);
    assert.equal(await spy.xLen(`bc:s:${sid}`), 50, 'sent, not yet acknowledged');
    // The next request acknowledges them all; the stream is trimmed to nothing.
    await forward(a, sid, 101, 0, [], arrays.at(-1)![0]);
    await delay(300);
    assert.equal(await spy.xLen(`bc:s:${sid}`), 0, 'acknowledged arrays are dropped');
    // 2,500 broadcasts to a room with history 2,000: the stream stays near 2,000.
    const before = Number(await spy.hGet('bc:h:feed:m', 'offset') ?? 0);
    await a.get('/publish?count=2500&every=0');
    for (let i = 0; i < 100; i++) {
      if (Number(await spy.hGet('bc:h:feed:m', 'offset')) >= before + 2500) break;
      await delay(100);
    }
    const length = await spy.xLen('bc:h:feed');
    assert.ok(length >= 2000 && length <= 2200, `room history ${length}`);
  });
});

// ## Under load
//
// Behind the sticky config, and again behind a plain round robin where
// requests are relayed to their session's process. The publisher is on
// n1; the victim is whichever of n2 and n3 owns more clients. Every client must end with every broadcast and every direct
// send exactly once and in order, and our clients' messages must reach the
// app exactly once.
for (const mode of ['sticky', 'any'] as const) describe(`recovery under load: kill -9 behind nginx (${mode})`, { skip }, () => {
  let redis: TestRedis;
  let nodes: TestNode[] = [];
  let nginx: TestNginx;
  let url: string;
  const closures: TestClient[] = [];
  const ours: Array<{ name: string; socket: BCSocket; received: Array<Record<string, number>>;
    sent: number; events: string[] }> = [];

  before(async () => {
    redis = await startRedis();
    nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id, redis.url, script)));
    const port = await freePort();
    nginx = await startNginx(nginxConfig({ listen: port, mode,
      nodes: nodes.map((n) => ({ id: n.id, address: n.address })) }), port);
    url = `http://127.0.0.1:${port}/channel`;
  });
  after(async () => {
    for (const client of closures) client.close();
    for (const client of ours) client.socket.close();
    await delay(100);
    await nginx?.stop();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  test('20 Closure clients and 10 of ours: every number once, in order; each recovered', { timeout: 150_000 }, async () => {
    for (let i = 0; i < 20; i++) closures.push(bcsocket(url, `c${i}`));
    for (let i = 0; i < 10; i++) {
      const name = `o${i}`;
      const socket = new BCSocket(url, { reconnect: true, reconnectTime: 500, extraParams: { name } });
      const client = { name, socket, received: [] as Array<Record<string, number>>, sent: 0,
        events: [] as string[] };
      socket.addEventListener('close', (reason: unknown, maps: unknown) =>
        client.events.push(`close:${String(reason)}:${JSON.stringify(maps)}`));
      socket.addEventListener('open', () => client.events.push(`open@${client.sent}`));
      socket.onmessage = (event: { data: unknown }) =>
        client.received.push(event.data as Record<string, number>);
      ours.push(client);
    }
    await Promise.all(closures.map((client) => client.opened));
    await until(() => ours.every((client) => client.socket.readyState === 1), 20_000, 'ours open');
    await until(() => connects(nodes).length === 30, 10_000, 'all connected');
    await delay(500);

    const owner = new Map(connects(nodes).map((line) => [line.name, line.id.split('.')[0]!]));
    const count = (node: string) => [...owner.values()].filter((n) => n === node).length;
    const victim = nodes[count('n2') >= count('n3') ? 1 : 2]!;
    const victims = [...owner].filter(([, node]) => node === victim.id).map(([name]) => name);
    assert.ok(victims.length > 0, 'the victim owns clients');

    const BROADCASTS = 300;
    await nodes[0]!.get(`/publish?count=${BROADCASTS}&every=30`);
    await Promise.all(nodes.map((node) => node.get('/direct?every=60')));
    const sender = setInterval(() => {
      for (const client of ours) {
        if (client.sent < 150) client.socket.send({ k: client.sent++ });
      }
    }, 50);
    await delay(2500);
    await victim.kill9();
    const killedAt = Date.now();

    const feed = (received: Array<Record<string, unknown>>) =>
      received.filter((m) => 'n' in m).map((m) => m.n);
    const everyone = () => [...closures.map((c) => c.received), ...ours.map((c) => c.received)];
    await until(() => everyone().every((received) => feed(received).length >= BROADCASTS),
      90_000, 'every broadcast everywhere');
    clearInterval(sender);
    for (const node of nodes.filter((n) => n !== victim)) await node.get('/quiet');
    await until(() => ours.every((c) => delivered(nodes, c.name).length >= c.sent), 20_000,
      'our maps delivered').catch(() => {
      const short = ours.filter((c) => delivered(nodes, c.name).length < c.sent).map((c) => {
        const got = new Set(delivered(nodes, c.name));
        const missing = Array.from({ length: c.sent }, (_, k) => k).filter((k) => !got.has(k));
        const lines = connects(nodes).filter((line) => line.name === c.name);
        return `${c.name}: missing ${JSON.stringify(missing)}; events ${c.events.join(',')};` +
          ` sessions ${JSON.stringify(lines)}`;
      });
      throw new Error(`our maps not all delivered (victims ${victims}): ${short.join('; ')}`);
    });
    await delay(1000);
    console.log(`# victim ${victim.id} owned ${victims.length} clients; all caught up ` +
      `${Math.round((Date.now() - killedAt) / 1000)} s after the kill`);

    const expected = Array.from({ length: BROADCASTS }, (_, n) => n);
    for (const client of [...closures, ...ours]) {
      const received = 'socket' in client ? client.received : client.received;
      assert.deepEqual(feed(received), expected, `${client.name}: broadcasts once, in order`);
      const direct = received.filter((m) => 'd' in m).map((m) => m.d);
      assert.deepEqual(direct, direct.map((_, d) => d), `${client.name}: direct sends once, in order`);
    }
    for (const client of ours) {
      // Once each, across processes; in order within each process.
      const got = delivered(nodes, client.name);
      assert.deepEqual([...got].sort((x, y) => x - y), Array.from({ length: client.sent }, (_, k) => k),
        `${client.name}: maps once each: ${JSON.stringify(got)}`);
      for (const node of nodes) {
        const here = delivered([node], client.name);
        assert.deepEqual(here, [...here].sort((x, y) => x - y), `${client.name}: in order on ${node.id}`);
      }
    }
    const lines = connects(nodes);
    for (const name of victims) {
      const again = lines.filter((line) => line.name === name && line.previousId !== null);
      assert.ok(again.length > 0, `${name} reconnected`);
      assert.ok(again.every((line) => line.recovered), `${name} recovered: ${JSON.stringify(again)}`);
      assert.ok(again.every((line) => !line.id.startsWith(`${victim.id}.`)), `${name} moved`);
    }
  });
});
