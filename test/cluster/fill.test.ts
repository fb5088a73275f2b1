// With `recovery` on, room broadcasts are numbered and kept in Redis, so a
// process whose subscriber was cut off reads back what it missed
// (src/redis/history.ts, "Filling what pub/sub dropped"). Two servers in
// this process stand in for two processes, on a real redis-server; b's
// subscriber connection is cut with `CLIENT KILL` just before a sends, so
// b's pub/sub misses those broadcasts; and the sender's own subscriber is
// kept away with a full `maxclients`. Every member must still get every
// broadcast once, in order. Without the read-back, all four tests fail.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'redis';
import type { Session } from '../../src/index.ts';
import { type RedisAdapter, redisAdapter } from '../../src/redis/index.ts';
import { request, startServer, until, type TestServer } from '../helpers.ts';
import { type TestRedis, missingBinaries, startRedis } from './harness.ts';

const missing = missingBinaries().filter((name) => name === 'redis-server');
const skip = missing.length > 0 ? 'needs redis-server (apt-get install redis-server)' : false;
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('room broadcasts a cut-off subscriber missed are read back from the history', { skip }, () => {
  let redis: TestRedis;
  let spy: ReturnType<typeof createClient>;
  const servers: TestServer[] = [];
  const adapters: RedisAdapter[] = [];
  const errors: string[] = [];
  let aClient: ReturnType<typeof createClient>;
  const got = new Map<Session, number[]>();

  before(async () => {
    redis = await startRedis();
    spy = createClient({ url: redis.url });
    spy.on('error', () => {});
    await spy.connect();
    for (const nodeId of ['a', 'b']) {
      // a publishes on a client of the test's own, so that the test can put
      // the cut on the same connection, right before a's broadcasts.
      const client = nodeId === 'a' ? (aClient = createClient({ url: redis.url })) : undefined;
      const timers = { heartbeatInterval: 200, nodeTimeout: 2000 };
      const adapter = client ? redisAdapter({ client, ...timers })
        : redisAdapter({ url: redis.url, ...timers });
      adapters.push(adapter);
      const server = await startServer({ adapter, nodeId, recovery: { window: 60_000, history: 50 } });
      server.middleware.on('error', (error) => errors.push((error as Error).message));
      servers.push(server);
      await adapter.ready;
    }
  });
  after(async () => {
    for (const server of servers) await server.close();
    for (const adapter of adapters) await adapter.close();
    aClient.destroy();
    spy.destroy();
    await redis.stop();
  });

  // A member of `room` on server `index`, whose broadcasts' numbers are recorded.
  async function member(index: number, room: string): Promise<Session> {
    const server = servers[index]!;
    const before = server.sessions.length;
    const answer = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&CVER=1', 'count=0');
    assert.equal(answer.status, 200);
    const session = server.sessions[before]!;
    const numbers: number[] = [];
    got.set(session, numbers);
    const sendJson = session.sendJson.bind(session);
    session.sendJson = (json: string) => {
      const message = JSON.parse(json) as { n?: number };
      if (typeof message.n === 'number') numbers.push(message.n);
      return sendJson(json);
    };
    await session.join(room);
    return session;
  }

  const numbers = (session: Session) => got.get(session)!;
  const range = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => from + i);
  // The Redis client id of a process's subscriber, found by its name.
  const subscriberId = async (node: string): Promise<string> => {
    const list = String(await spy.sendCommand(['CLIENT', 'LIST', 'TYPE', 'pubsub']));
    const id = new RegExp(`id=(\\d+) [^\\n]* name=bc:sub:${node} `).exec(list)?.[1];
    assert.ok(id, `${node}'s subscriber is listed by name: ${list}`);
    return id;
  };

  // Members of `room` on a and on b that both have broadcast 1.
  const twoWithFirst = async (room: string): Promise<[Session, Session]> => {
    const [a, b] = [await member(0, room), await member(1, room)];
    servers[0]!.middleware.to(room).send({ n: 1 });
    await until(() => numbers(a).length === 1 && numbers(b).length === 1, 3000, 'the first');
    return [a, b];
  };

  // Cuts one subscriber (b's, named `bc:sub:b`, unless told otherwise),
  // then sends `count` broadcasts from a. A subscriber reconnects within a
  // millisecond, so the cut goes on a's own connection, just before the
  // broadcasts: Redis runs a connection's commands in order, and the cut
  // subscriber cannot subscribe again before it has run them all.
  const cutAndSend = async (room: string, count: number, next: () => number, node = 'b') => {
    const killed = aClient.sendCommand(['CLIENT', 'KILL', 'ID', await subscriberId(node)]);
    for (let i = 0; i < count; i++) servers[0]!.middleware.to(room).send({ n: next() });
    assert.equal(await killed, 1);
  };

  test('a quiet room: what went out while the subscriber was away arrives once, in order', async () => {
    const [a, b] = await twoWithFirst('quiet');
    let n = 1;
    await cutAndSend('quiet', 5, () => ++n);
    // On a timeout, the assertions below say what arrived.
    await until(() => numbers(a).length >= 6 && numbers(b).length >= 6, 5000).catch(() => {});
    await delay(300);
    assert.deepEqual(numbers(a), range(1, 6));
    assert.deepEqual(numbers(b), range(1, 6));
  });

  test('a busy room: a stream across two cuts reaches every member once, in order', async () => {
    const members = [await member(0, 'busy'), await member(1, 'busy'), await member(1, 'busy')];
    let n = 0;
    const send = (count: number) => {
      for (let i = 0; i < count; i++) servers[0]!.middleware.to('busy').send({ n: ++n });
    };
    for (let round = 0; round < 2; round++) {
      send(10);
      await delay(100);
      await cutAndSend('busy', 10, () => ++n); // missed by b's pub/sub
      for (let i = 0; i < 10; i++) {
        await delay(20);
        send(3); // heard again once b's subscriber is back, maybe before the read-back ends
      }
    }
    await until(() => members.every((m) => numbers(m).length >= n), 5000).catch(() => {});
    await delay(300);
    for (const m of members) assert.deepEqual(numbers(m), range(1, n));
    assert.deepEqual(errors.filter((e) => /not replayed/.test(e)), [], 'nothing reported lost');
  });

  // The sender's own subscriber kept away (Redis refuses new connections
  // while `maxclients` is full): a's broadcasts still go out to b at once,
  // and a's own members get them once a is back and has read them.
  test("the sender's own subscriber away: every member still gets each once, in order", async () => {
    const [a, b] = [await member(0, 'own'), await member(1, 'own')];
    const info = String(await spy.sendCommand(['INFO', 'clients']));
    // Full once a's subscriber is gone: its reconnection is refused.
    const clients = Number(/connected_clients:(\d+)/.exec(info)![1]);
    await spy.sendCommand(['CONFIG', 'SET', 'maxclients', String(clients - 1)]);
    try {
      await spy.sendCommand(['CLIENT', 'KILL', 'ID', await subscriberId('a')]);
      await until(() => !adapters[0]!.connected, 2000, "a's subscriber gone");
      for (let n = 1; n <= 5; n++) servers[0]!.middleware.to('own').send({ n });
      await until(() => numbers(b).length >= 5, 3000).catch(() => {});
      assert.deepEqual(numbers(b), range(1, 5), 'b gets them while a is away');
      assert.deepEqual(numbers(a), [], 'a gets none yet');
    } finally {
      await spy.sendCommand(['CONFIG', 'SET', 'maxclients', '10000']);
    }
    await until(() => numbers(a).length >= 5, 5000).catch(() => {});
    await delay(300);
    assert.deepEqual(numbers(a), range(1, 5));
    assert.deepEqual(numbers(b), range(1, 5));
  });

  // `history: 50` keeps at least the last 50 of a room; Redis trims in
  // whole blocks (`MAXLEN ~`), so how many more it keeps depends on its
  // block size. 300 missed broadcasts are well past any of that.
  test('what the history no longer holds is reported, and the rest still arrives in order', async () => {
    const [a, b] = await twoWithFirst('long');
    let n = 1;
    await cutAndSend('long', 300, () => ++n);
    await until(() => numbers(b).at(-1) === 301, 5000).catch(() => {});
    await delay(300);
    assert.deepEqual(numbers(a), range(1, 301), `a got ${numbers(a).length}`);
    const kept = numbers(b)[1]!;
    assert.ok(kept > 2 && kept <= 252, `the history kept from ${kept} on`);
    assert.deepEqual(numbers(b), [1, ...range(kept, 301)], `b got ${numbers(b).join(',')}`);
    const lost = new RegExp(`room long: .*not replayed \\(${kept - 2} broadcast\\(s\\) no longer in its history\\)`);
    assert.ok(errors.some((e) => lost.test(e)), errors.join('\n'));
  });
});
