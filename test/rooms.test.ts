// Rooms and broadcast over real HTTP: who receives what, exactly once, each
// session with its own array ids; membership, presence and session.data.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { createSession, delay, openStream, parseChunks, startServer, type TestServer } from './helpers.ts';

// A session with a streaming back channel that records every array it receives.
async function client(server: TestServer, tag: string) {
  const { sid } = await createSession(server.port, server.base, `&tag=${tag}`);
  const stream = openStream(server.port, `${server.base}/bind?VER=8&RID=rpc&SID=${sid}&CI=0&AID=0&TYPE=xmlhttp`);
  await stream.response;
  const session = server.sessions.find((s) => s.id === sid)!;
  const arrays = (): Array<[number, unknown]> =>
    (parseChunks(stream.text()) as Array<Array<[number, unknown]>>).flat();
  const messages = (): unknown[] => arrays().map(([, data]) => data).filter((data) => !Array.isArray(data));
  return { sid, session, stream, arrays, messages };
}
type Client = Awaited<ReturnType<typeof client>>;

describe('rooms and broadcast', () => {
  let server: TestServer;
  let a: Client, b: Client, c: Client, d: Client;
  before(async () => {
    server = await startServer();
    [a, b, c, d] = (await Promise.all(['a', 'b', 'c', 'd'].map((tag) => client(server, tag)))) as
      [Client, Client, Client, Client];
    await a.session.join('lobby');
    await b.session.join('lobby');
    await c.session.join('lobby');
    await c.session.join('mods');
    await d.session.join('mods');
  });
  after(() => server.close());

  // Sends and waits long enough for every back channel to carry it.
  async function broadcastAndSettle(send: () => void): Promise<void> {
    send();
    await delay(60);
  }
  const got = (who: Client, marker: string) => who.messages().filter((m) => (m as { t?: string }).t === marker).length;

  test('to(room) reaches its members only', async () => {
    await broadcastAndSettle(() => server.middleware.to('lobby').send({ t: 'lobby-1' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'lobby-1')), [1, 1, 1, 0]);
  });

  test('a member of two targeted rooms gets the message once', async () => {
    await broadcastAndSettle(() => server.middleware.to(['lobby', 'mods']).send({ t: 'both' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'both')), [1, 1, 1, 1]);
    await broadcastAndSettle(() => server.middleware.to('lobby').to('mods').send({ t: 'chained' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'chained')), [1, 1, 1, 1]);
  });

  test('except() leaves out sessions, rooms and arrays of both', async () => {
    const { middleware } = server;
    await broadcastAndSettle(() => middleware.to('lobby').except(b.session).send({ t: 'ex-session' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'ex-session')), [1, 0, 1, 0]);
    await broadcastAndSettle(() => middleware.to('lobby').except('mods').send({ t: 'ex-room' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'ex-room')), [1, 1, 0, 0]);
    await broadcastAndSettle(() => middleware.except([a.session, 'mods']).send({ t: 'ex-both' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'ex-both')), [0, 1, 0, 0]);
  });

  test('channel.send reaches every session; session.to(room) every member but the sender', async () => {
    await broadcastAndSettle(() => server.middleware.send({ t: 'all' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'all')), [1, 1, 1, 1]);
    await broadcastAndSettle(() => a.session.to('lobby').send({ t: 'from-a' }));
    assert.deepEqual([a, b, c, d].map((who) => got(who, 'from-a')), [0, 1, 1, 0]);
  });

  test('each session gives a broadcast its own next array id, in order', async () => {
    a.session.send({ t: 'private' });
    await broadcastAndSettle(() => server.middleware.to('lobby').send({ t: 'ids' }));
    const idOf = (who: Client, marker: string) =>
      who.arrays().find(([, data]) => (data as { t?: string }).t === marker)![0];
    assert.equal(idOf(a, 'ids'), idOf(a, 'private') + 1);
    for (const who of [a, b, c]) {
      const ids = who.arrays().map(([id]) => id);
      assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'ids increase');
      assert.equal(new Set(ids).size, ids.length, 'no id twice');
    }
  });

  test('sessionIds() lists a room, a target with exclusions, and everyone', async () => {
    const sorted = (ids: string[]) => [...ids].sort();
    assert.deepEqual(sorted(await server.middleware.to('mods').sessionIds()), sorted([c.sid, d.sid]));
    assert.deepEqual(sorted(await server.middleware.to('lobby').except('mods').sessionIds()), sorted([a.sid, b.sid]));
    assert.deepEqual(sorted(await server.middleware.sessionIds()), sorted(server.sessions.filter((s) => s.state !== 'closed').map((s) => s.id)));
    assert.deepEqual([...server.middleware.sessions].length, server.middleware.sessionCount);
  });

  test('join/leave keep it and the room index in step', async () => {
    assert.deepEqual([...c.session.rooms].sort(), ['lobby', 'mods']);
    await c.session.leave('mods');
    assert.deepEqual([...c.session.rooms], ['lobby']);
    assert.deepEqual(await server.middleware.to('mods').sessionIds(), [d.sid]);
    await c.session.leave('mods');
    await c.session.join('lobby');
    assert.deepEqual([...c.session.rooms], ['lobby'], 'leaving twice or joining twice changes nothing');
    await c.session.join('mods');
  });

  test('room names must be strings of 1 to 256 characters', () => {
    assert.throws(() => a.session.join(''), /room name/);
    assert.throws(() => a.session.join(42 as unknown as string), /got number/);
    assert.throws(() => server.middleware.to('x'.repeat(257)), /room name/);
    assert.throws(() => server.middleware.except(7 as unknown as string), /except\(\) takes/);
  });

  test('a closed session leaves every room, yet its close listeners still see them', async () => {
    const e = await client(server, 'e');
    await e.session.join('lobby');
    await e.session.join('solo');
    let seen: string[] = [];
    e.session.on('close', () => (seen = [...e.session.rooms]));
    e.session.close('bye');
    assert.deepEqual(seen.sort(), ['lobby', 'solo']);
    assert.equal(e.session.rooms.size, 0);
    assert.deepEqual(await server.middleware.to('solo').sessionIds(), []);
    assert.ok(!(await server.middleware.to('lobby').sessionIds()).includes(e.sid));
    await e.session.join('late');
    assert.deepEqual(await server.middleware.to('late').sessionIds(), [], 'a closed session joins nothing');
  });

  test('a broadcast that overflows one session closes that one and still reaches the rest', async () => {
    const small = await startServer({ maxBufferedBytes: 200 });
    try {
      const [x, y] = await Promise.all([client(small, 'x'), client(small, 'y')]) as [Client, Client];
      x.stream.destroy();
      await delay(20);
      await x.session.join('r');
      await y.session.join('r');
      x.session.send({ t: 'private', pad: 'p'.repeat(120) });
      small.middleware.to('r').send({ t: 'fill', pad: 'p'.repeat(40) });
      await delay(60);
      assert.equal(x.session.state, 'closed');
      assert.equal(got(y, 'fill'), 1);
    } finally {
      await small.close();
    }
  });
});

describe('session.data', () => {
  test('is per session, starts empty, and may be replaced', async () => {
    const server = await startServer({}, (session: Session) => {
      session.data.name = session.query.tag;
    });
    try {
      const [one, two] = await Promise.all([client(server, 'ada'), client(server, 'bob')]);
      assert.equal(one.session.data.name, 'ada');
      assert.equal(two.session.data.name, 'bob');
      two.session.data = { replaced: true };
      assert.deepEqual(two.session.data, { replaced: true });
    } finally {
      await server.close();
    }
  });
});
