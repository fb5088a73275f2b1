// The Redis adapter against a real redis-server, with two servers in this
// process standing in for two processes: rooms subscribe only while they
// have a member here, join resolves once subscribed, a member of two rooms
// gets a broadcast once, sessionIds spans both, a dead node's ids are
// Unknown SID, and an outage is reported, not queued, and recovered from.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
import browserChannel, { type BrowserChannelMiddleware, type Session } from '../../src/index.ts';
import { type RedisAdapter, redisAdapter } from '../../src/redis/index.ts';
import { openStream, request, startServer, until, type TestServer } from '../helpers.ts';
import { type TestRedis, missingBinaries, startRedis } from './harness.ts';

const missing = missingBinaries().filter((name) => name === 'redis-server');
const skip = missing.length > 0 ? 'needs redis-server (apt-get install redis-server)' : false;
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

test('the core never imports redis; only src/redis/ does', () => {
  const core = new URL('../../src/', import.meta.url);
  for (const file of readdirSync(core).filter((name) => name.endsWith('.ts'))) {
    assert.doesNotMatch(readFileSync(new URL(file, core), 'utf8'), /from 'redis'|require\('redis'\)/, file);
  }
});

test('adapter timers must be whole milliseconds: a bad one throws at startup, naming it', () => {
  for (const [name, value] of [['joinTimeout', -1], ['relayTimeout', 0], ['requestTimeout', 1.5], ['nodeTimeout', '6s'], ['heartbeatInterval', 2 ** 31]] as const) {
    assert.throws(() => redisAdapter({ url: 'redis://127.0.0.1:1', [name]: value } as never), new RegExp(`redisAdapter: ${name} must be whole milliseconds`), name);
  }
  assert.doesNotThrow(() => redisAdapter({ url: 'redis://127.0.0.1:1', joinTimeout: 1 }));
});

describe('Redis adapter', { skip }, () => {
  let redis: TestRedis;
  let spy: ReturnType<typeof createClient>;
  const servers: TestServer[] = [];
  const adapters: RedisAdapter[] = [];
  const errors: string[][] = [[], []];
  const got = new Map<string, string[]>();

  // A session made over HTTP on server `index`, whose queued arrays are recorded.
  async function sessionOn(index: number): Promise<Session> {
    const server = servers[index]!;
    const before = server.sessions.length;
    const answer = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&CVER=1', 'count=0');
    assert.equal(answer.status, 200);
    const session = server.sessions[before]!;
    const seen: string[] = [];
    got.set(session.id, seen);
    const sendJson = session.sendJson.bind(session);
    session.sendJson = (json: string) => {
      seen.push(json);
      return sendJson(json);
    };
    return session;
  }
  const numsub = async (channel: string) => (await spy.sendCommand(['PUBSUB', 'NUMSUB', channel]) as [string, number])[1];

  before(async () => {
    redis = await startRedis();
    spy = createClient({ url: redis.url });
    spy.on('error', () => {});
    await spy.connect();
    for (const [index, nodeId] of [[0, 'a'], [1, null]] as const) {
      const adapter = redisAdapter({ url: redis.url, heartbeatInterval: 200, nodeTimeout: 600, requestTimeout: 500 });
      adapters.push(adapter);
      const server = await startServer({ adapter, nodeId, maxBodyBytes: 10_000 });
      server.middleware.on('error', (error) => errors[index]!.push((error as Error).message));
      servers.push(server);
      await adapter.ready;
    }
    await delay(300);
  });
  after(async () => {
    for (const server of servers) await server.close();
    for (const adapter of adapters) await adapter.close();
    spy.destroy();
    await redis.stop();
  });

  test('a server without nodeId gets one from the adapter, in every session id', async () => {
    const session = await sessionOn(1);
    assert.match(session.id, /^[0-9a-f]{12}\.[A-Za-z0-9_-]{22}$/);
    assert.equal(session.id.split('.')[0], adapters[1]!.nodeId);
  });

  test('a room is subscribed while this process has a member; join resolves once it is', async () => {
    const [a1, a2] = [await sessionOn(0), await sessionOn(0)];
    assert.equal(await numsub('bc:room:lobby'), 0);
    await a1.join('lobby');
    assert.equal(await numsub('bc:room:lobby'), 1, 'subscribed when join resolved');
    await a2.join('lobby');
    assert.equal(await numsub('bc:room:lobby'), 1, 'once per process');
    servers[1]!.middleware.to('lobby').send({ hi: 1 });
    await until(() => got.get(a1.id)!.includes('{"hi":1}') && got.get(a2.id)!.includes('{"hi":1}'), 2000, 'cross-process broadcast');
    await a1.leave('lobby');
    assert.equal(await numsub('bc:room:lobby'), 1);
    await a2.leave('lobby');
    assert.equal(await numsub('bc:room:lobby'), 0, 'unsubscribed after the last leave');
  });

  test('a member of two rooms gets a broadcast to both once; except() holds across processes', async () => {
    const [a, b] = [await sessionOn(0), await sessionOn(1)];
    await Promise.all([a.join('x'), a.join('y'), b.join('y')]);
    servers[1]!.middleware.to(['x', 'y']).send({ two: 1 });
    servers[0]!.middleware.to('y').except(b).send({ notB: 1 });
    await until(() => got.get(a.id)!.includes('{"notB":1}'), 2000, 'second broadcast');
    await delay(200);
    assert.equal(got.get(a.id)!.filter((json) => json === '{"two":1}').length, 1);
    assert.equal(got.get(b.id)!.filter((json) => json === '{"two":1}').length, 1);
    assert.ok(!got.get(b.id)!.includes('{"notB":1}'));
  });

  test('sessionIds() lists the sessions of every process, from either', async () => {
    const mine = [...servers[0]!.middleware.sessions, ...servers[1]!.middleware.sessions].map((s) => s.id).sort();
    assert.deepEqual((await servers[0]!.middleware.sessionIds()).sort(), mine);
    assert.deepEqual((await servers[1]!.middleware.sessionIds()).sort(), mine);
  });

  test('a request for a session of a node that is not alive is Unknown SID', async () => {
    await delay(700); // past nodeTimeout since connecting: absence now means gone
    const answer = await request(servers[0]!.port, 'POST', '/channel/bind?VER=8&SID=ghost.AAAAAAAAAAAAAAAAAAAAAA&RID=2&AID=0', 'count=0');
    assert.equal(answer.status, 400);
    assert.match(answer.body, /Unknown SID/);
  });

  test("a request for a live node's session is relayed to it and answered by it", async () => {
    const b = await sessionOn(1);
    const messages: unknown[] = [];
    b.on('message', (message) => messages.push(message));
    const answer = await request(servers[0]!.port, 'POST', `/channel/bind?VER=8&SID=${b.id}&RID=2&AID=0`, 'count=1&ofs=0&req0_JSON=%5B1%5D');
    assert.equal(answer.status, 200);
    assert.match(answer.body, /^\d+\n\[[01],\d+,\d+\]$/);
    assert.deepEqual(messages, [[1]]);
  });

  // A bare 413 from the front would leave the client resending the same
  // maps for ever; the owner must say ["stop"] first, as it does for its
  // own requests (test/limits.test.ts).
  test('a relayed body over maxBodyBytes: the owner says ["stop"], closes, then 413', async () => {
    const b = await sessionOn(1);
    const messages: unknown[] = [];
    const reasons: string[] = [];
    b.on('message', (message) => messages.push(message));
    b.on('close', (reason) => reasons.push(reason));
    const back = openStream(servers[0]!.port, `/channel/bind?VER=8&SID=${b.id}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`);
    const big = `count=1&ofs=0&req0__S=${'x'.repeat(20_000)}`;
    const answer = await request(servers[0]!.port, 'POST', `/channel/bind?VER=8&SID=${b.id}&RID=2&AID=0`, big);
    assert.equal(answer.status, 413);
    assert.match(answer.body, /maxBodyBytes/);
    const ended = await Promise.race([back.ended, delay(3000).then(() => 'still open')]);
    assert.match(ended, /\["stop"\]/, 'the stop reached the back channel');
    assert.deepEqual(reasons, ['Body larger than 10000 bytes (maxBodyBytes)']);
    assert.deepEqual(messages, []);
  });

  test('a terminate relayed through another process closes the session with Disconnected', async () => {
    const b = await sessionOn(1);
    const reasons: string[] = [];
    b.on('close', (reason) => reasons.push(reason));
    const answer = await request(servers[0]!.port, 'GET', `/channel/bind?VER=8&SID=${b.id}&RID=2&TYPE=terminate`);
    assert.equal(answer.status, 200);
    await until(() => reasons.length > 0, 2000, 'terminated');
    assert.deepEqual(reasons, ['Disconnected']);
  });

  test('a reconnect on another process retires the old session there, acknowledging OAID', async () => {
    const old = await sessionOn(1);
    const reasons: string[] = [];
    old.on('close', (reason) => reasons.push(reason));
    const answer = await request(servers[0]!.port, 'POST', `/channel/bind?VER=8&RID=1&CVER=1&OSID=${old.id}&OAID=0`, 'count=0');
    assert.equal(answer.status, 200);
    await until(() => reasons.length > 0, 2000, 'old session closed');
    assert.deepEqual(reasons, ['Reconnected']);
  });

  test('Redis down: local broadcasts work, the loss is reported, nothing queues; it recovers', async () => {
    const [a, b] = [await sessionOn(0), await sessionOn(1)];
    await Promise.all([a.join('z'), b.join('z')]);
    await redis.kill();
    await until(() => !adapters[0]!.connected, 3000, 'disconnected');
    // A join during the outage resolves at once and subscribes when Redis returns.
    const late = await sessionOn(0);
    await late.join('w');
    for (let i = 0; i < 1000; i++) servers[0]!.middleware.to('z').send({ down: i });
    assert.equal(got.get(a.id)!.filter((json) => json.startsWith('{"down"')).length, 1000, 'local members still get them');
    await until(() => errors[0]!.some((e) => /Redis unavailable/.test(e)), 3000, 'an error report');
    assert.ok(errors[0]!.length < 20, `reports are rate-limited: ${errors[0]!.length}`);
    await redis.start();
    await until(() => adapters[0]!.connected && adapters[1]!.connected, 5000, 'reconnected');
    let k = 0;
    await until(() => {
      servers[0]!.middleware.to('z').send({ up: ++k });
      return got.get(b.id)!.some((json) => json.startsWith('{"up"'));
    }, 5000, 'broadcasts cross again');
    assert.ok(!got.get(b.id)!.some((json) => json.startsWith('{"down"')), 'nothing sent during the outage arrives late');
    await until(() => {
      servers[1]!.middleware.to('w').send({ w: 1 });
      return got.get(late.id)!.includes('{"w":1}');
    }, 5000, 'the room joined during the outage is subscribed once Redis is back');
  });

  // A frozen Redis (SIGSTOP: connections open, nothing answers) is what a
  // network partition without a reset looks like.
  test('Redis hangs: a join resolves after joinTimeout, says why, and subscribes once Redis answers', async () => {
    const adapter = redisAdapter({ url: redis.url, joinTimeout: 300 });
    const server = await startServer({ adapter });
    const reported: string[] = [];
    server.middleware.on('error', (error) => reported.push((error as Error).message));
    try {
      await adapter.ready;
      const answer = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&CVER=1', 'count=0');
      assert.equal(answer.status, 200);
      const session = server.sessions[0]!;
      const seen: string[] = [];
      const sendJson = session.sendJson.bind(session);
      session.sendJson = (json: string) => (seen.push(json), sendJson(json));
      const hung = redis.hang(2500);
      await delay(50);
      const began = Date.now();
      await session.join('frozen');
      const took = Date.now() - began;
      assert.ok(took >= 250 && took < 1500, `the join took ${took} ms against a 300 ms timeout`);
      assert.ok(reported.some((m) => /no answer within 300 ms to the join of room "frozen"/.test(m)), reported.join('; '));
      await hung;
      await until(() => {
        servers[1]!.middleware.to('frozen').send({ thawed: 1 });
        return seen.includes('{"thawed":1}');
      }, 5000, 'broadcasts from another process reach the room once Redis answers');
    } finally {
      await server.close();
      await adapter.close();
    }
  });
});
