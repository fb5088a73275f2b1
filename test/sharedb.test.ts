// ShareDB, unchanged, over BrowserChannel: its real server (through
// `sessionStream`, mounted by examples/sharedb/server.ts, the code the
// guide docs/sharedb.md shows) and its real client, on top of both the
// Closure BCSocket (node-browserchannel 2.1.0, in Node) and ours.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import ShareDB from 'sharedb';
import { Connection, type Doc } from 'sharedb/lib/client';
import { createShareDbServer } from '../examples/sharedb/server.ts';
import { BCSocket as OurBCSocket } from '../src/client/index.ts';
import type { BrowserChannelOptions, Session } from '../src/index.ts';
import { delay, until } from './helpers.ts';

const { BCSocket: ClosureBCSocket } = createRequire(import.meta.url)('browserchannel') as {
  BCSocket: new (url: string, options?: Record<string, unknown>) => { close(): void };
};

// The guide's server, with every session recorded by its `tag` parameter
// and the reason it closed.
async function start(options: BrowserChannelOptions = {}) {
  const backend = new ShareDB();
  const sessions: Session[] = [];
  const reasons = new Map<Session, string | undefined>();
  const { server, channel } = createShareDbServer(backend, options, (session) => {
    sessions.push(session);
    session.on('close', (reason) => reasons.set(session, reason));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    backend,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channel`,
    sessions,
    reasons,
    tagged: (tag: string) => sessions.filter((session) => session.query.tag === tag),
    async close(): Promise<void> {
      channel.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    },
  };
}

// A ShareDB client connection over either BCSocket, reconnecting quickly.
function client(url: string, kind: 'closure' | 'ours', tag: string = kind) {
  const options = { reconnect: true, reconnectTime: 100, extraParams: { tag } };
  const socket = kind === 'closure' ? new ClosureBCSocket(url, options) : new OurBCSocket(url, { ...options, streaming: true });
  const connection = new Connection(socket);
  const states: string[] = [];
  connection.on('state', (state, reason) => states.push(`${state}${reason ? `:${reason}` : ''}`));
  return { socket, connection, states };
}

const call = (run: (callback: (error?: Error | null) => void) => void): Promise<void> =>
  new Promise((resolve, reject) => run((error) => (error ? reject(error) : resolve())));

async function settled(docs: Doc[]): Promise<void> {
  await Promise.all(docs.map((doc) => new Promise<void>((resolve) => doc.whenNothingPending(resolve))));
}

// Both clients edit one json0 document: each adds to a shared counter and
// inserts its own items into a shared list, `count` ops each, in small
// bursts. `during(i)` runs before op i (to close a session mid-edit).
async function editTogether(docs: [Doc, Doc], count: number, during: (i: number) => void = () => {}): Promise<void> {
  for (let i = 0; i < count; i++) {
    during(i);
    docs.forEach((doc, who) => {
      doc.submitOp([{ p: ['n'], na: 1 }]);
      doc.submitOp([{ p: ['items', 0], li: `${who}-${i}` }]);
    });
    if (i % 5 === 4) await delay(5);
  }
  await settled(docs);
}

// ShareDB composes ops queued together, so versions do not count ops;
// the data does.
const complete = (doc: Doc, ops: number): boolean => doc.data?.n === ops && doc.data.items.length === ops && doc.version !== null;

async function serverSnapshot(backend: ShareDB, id: string): Promise<{ n: number; items: string[] }> {
  const doc = backend.connect().get('notes', id);
  await call((done) => doc.fetch(done));
  return doc.data as { n: number; items: string[] };
}

describe('ShareDB over BrowserChannel', () => {
  test('the guide shows the example server verbatim', () => {
    const guide = readFileSync(new URL('../docs/sharedb.md', import.meta.url), 'utf8');
    const example = readFileSync(new URL('../examples/sharedb/server.ts', import.meta.url), 'utf8');
    const shown = example.replace("'../../src/index.ts'", "'browserchannel-server'");
    assert.ok(guide.includes(shown.slice(shown.indexOf('import http'))), 'docs/sharedb.md contains examples/sharedb/server.ts from its imports on');
  });

  test('the Closure BCSocket and ours edit one json0 document concurrently and converge', async () => {
    const server = await start();
    const closure = client(server.url, 'closure');
    const ours = client(server.url, 'ours');
    const a = closure.connection.get('notes', 'converge');
    const b = ours.connection.get('notes', 'converge');
    await call((done) => a.subscribe(done));
    await call((done) => a.create({ n: 0, items: [] }, done));
    await call((done) => b.subscribe(done));
    assert.deepEqual(b.data, { n: 0, items: [] });
    await editTogether([a, b], 40);
    await until(() => complete(a, 80) && complete(b, 80), 10_000, 'both to see every op');
    const expected = await serverSnapshot(server.backend, 'converge');
    assert.equal(expected.n, 80);
    assert.equal(expected.items.length, 80);
    assert.deepEqual(a.data, expected);
    assert.deepEqual(b.data, expected);
    assert.equal(server.tagged('closure').length, 1);
    assert.equal(server.tagged('ours').length, 1);
    closure.socket.close();
    ours.socket.close();
    await server.close();
  });

  test('a session closed by the server mid-edit loses no op and applies none twice', async () => {
    const server = await start();
    const closure = client(server.url, 'closure');
    const ours = client(server.url, 'ours');
    const a = closure.connection.get('notes', 'kicked');
    const b = ours.connection.get('notes', 'kicked');
    await call((done) => a.subscribe(done));
    await call((done) => a.create({ n: 0, items: [] }, done));
    await call((done) => b.subscribe(done));
    await editTogether([a, b], 60, (i) => {
      if (i === 15) server.tagged('closure')[0]!.close('kicked by test');
      if (i === 35) server.tagged('ours')[0]!.close('kicked by test');
    });
    await until(() => complete(a, 120) && complete(b, 120), 15_000, 'both to see every op');
    const snapshot = await serverSnapshot(server.backend, 'kicked');
    assert.equal(snapshot.n, 120, 'every increment applied exactly once');
    const expectedItems = [0, 1].flatMap((who) => Array.from({ length: 60 }, (_, i) => `${who}-${i}`)).sort();
    assert.deepEqual([...snapshot.items].sort(), expectedItems, 'every insert applied exactly once');
    assert.deepEqual(a.data, snapshot);
    assert.deepEqual(b.data, snapshot);
    assert.equal(server.tagged('closure').length, 2, 'the Closure client reconnected once');
    assert.equal(server.tagged('ours').length, 2, 'ours reconnected once');
    closure.socket.close();
    ours.socket.close();
    await server.close();
  });

  for (const kind of ['closure', 'ours'] as const) {
    test(`${kind}: an op over maxBodyBytes ends in one failure the app sees, not a reconnect loop`, async () => {
      const server = await start({ maxBodyBytes: 8 * 1024 });
      const peer = client(server.url, kind, `big-${kind}`);
      const doc = peer.connection.get('notes', `big-${kind}`);
      await call((done) => doc.subscribe(done));
      await call((done) => doc.create({ text: 'small' }, done));
      doc.submitOp([{ p: ['text'], od: 'small', oi: 'x'.repeat(20_000) }]);
      await until(() => peer.states.some((state) => /^(stopped|disconnected)/.test(state)), 5000, 'the connection to fail');
      await delay(1500);
      assert.equal(server.tagged(`big-${kind}`).length, 1, 'one session: no reconnect loop');
      const failures = peer.states.filter((state) => /^(stopped|disconnected)/.test(state));
      assert.equal(failures.length, 1, peer.states.join());
      if (kind === 'closure') assert.equal(failures[0], 'stopped:Stopped by server');
      else assert.match(failures[0]!, /^(stopped:Stopped by server|disconnected:Request refused with status 413 .*maxBodyBytes)/);
      await until(() => server.reasons.size === 1, 3000, 'the session to close');
      assert.match(server.reasons.get(server.sessions[0]!)!, /Body larger than 8192 bytes \(maxBodyBytes\)/);
      assert.ok(doc.hasPending(), 'the op was never applied');
      assert.deepEqual(await serverSnapshot(server.backend, `big-${kind}`), { text: 'small' });
      peer.socket.close();
      await server.close();
    });
  }
});
