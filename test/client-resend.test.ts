// Our browser client's resending: maps a session never had acknowledged
// are carried into the next session (first in line, `OMID` naming the
// first one's old id), or handed to the `close` listeners when no session
// follows. In Node against the real middleware, behind a node:http
// wrapper that records every request (URL and body) and can lose forward
// POSTs the way a dying process does: held unanswered, or answered 503.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BCSocket, type BCSocketOptions, type ClientMap } from '../src/client/index.ts';
import browserChannel, { MemoryAdapter, type RecoveryStore, type Session } from '../src/index.ts';
import { delay, until } from './helpers.ts';

interface Recorded {
  readonly method: string;
  readonly url: URL;
  readonly body: string;
}

// What happens to the next forward POSTs: `hold` keeps every one
// unanswered until the test ends; `503` answers the next one so, once.
type Swallow = 'none' | 'hold' | '503';

interface Harness {
  readonly url: string;
  readonly sessions: Session[];
  /** Every `message` the app got, in order, across all sessions, tagged by `tag`. */
  readonly messages: Map<string, unknown[]>;
  readonly requests: Recorded[];
  readonly held: http.ServerResponse[];
  swallow: Swallow;
  /** How many of the next create requests to answer 503. */
  failCreates: number;
  close(): Promise<void>;
}

const isCreate = (r: Recorded): boolean =>
  r.method === 'POST' && r.url.pathname.endsWith('/bind') && !r.url.searchParams.has('SID');
const isForward = (r: Recorded): boolean =>
  r.method === 'POST' && r.url.searchParams.has('SID') && !r.url.searchParams.has('TYPE');

// A store that saves nothing and recovers nothing, so that sessions are
// "saved for recovery" (the server says `X-Session-Recovery: 1`) without
// Redis: every takeover fails, and resent maps reach the app at least
// once. Deduplication with a real store is tested in
// test/cluster/recovery.test.ts.
const forgetfulStore: RecoveryStore = {
  start: () => {},
  save: (records) => Promise.resolve(records.map(() => true)),
  end: () => {},
  takeOver: () => Promise.resolve('no saved state (a store that keeps nothing)'),
};

async function harness(recovery = true): Promise<Harness> {
  const sessions: Session[] = [];
  const messages = new Map<string, unknown[]>();
  const options = recovery
    ? { adapter: Object.assign(new MemoryAdapter(), { recovery: forgetfulStore }),
      recovery: { window: 60_000 } }
    : {};
  const middleware = browserChannel(options, (session) => {
    sessions.push(session);
    const tag = session.query.tag ?? '';
    session.on('message', (message) => {
      if (!messages.has(tag)) messages.set(tag, []);
      messages.get(tag)!.push(message);
      if (message === 'bye') session.close('by app');
    });
  });
  const state: Harness = {
    url: '',
    sessions,
    messages,
    requests: [],
    held: [],
    swallow: 'none',
    failCreates: 0,
    close: async () => {
      middleware.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  // Bodies are read here, recorded, and handed on already read (`req.body`),
  // as a body-parsing middleware in front of ours would.
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    if (req.method === 'POST') for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const recorded = { method: req.method!, url: new URL(req.url!, 'http://x'), body };
    state.requests.push(recorded);
    if (isForward(recorded) && state.swallow === 'hold') return void state.held.push(res);
    if (isForward(recorded) && state.swallow === '503') {
      state.swallow = 'none';
      return void res.writeHead(503).end();
    }
    if (isCreate(recorded) && state.failCreates > 0) {
      state.failCreates--;
      return void res.writeHead(503).end();
    }
    if (req.method === 'POST') (req as { body?: string }).body = body;
    middleware(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, { url: `http://127.0.0.1:${port}/channel` });
}

interface Client {
  readonly socket: BCSocket;
  readonly closes: Array<{ reason: string; maps: ClientMap[] }>;
  readonly opens: () => number;
}

function connect(url: string, tag: string, options: BCSocketOptions = {}): Client {
  const socket = new BCSocket(url, { streaming: true, extraParams: { tag }, ...options });
  const closes: Array<{ reason: string; maps: ClientMap[] }> = [];
  let opens = 0;
  socket.onclose = (reason, maps) => closes.push({ reason, maps });
  socket.onopen = () => opens++;
  return { socket, closes, opens: () => opens };
}

// The maps of a form body, in order, as `{key: value}` objects.
function bodyMaps(body: string): ClientMap[] {
  const form = new URLSearchParams(body);
  const maps: ClientMap[] = Array.from({ length: Number(form.get('count')) }, () => ({}));
  for (const [name, value] of form) {
    const match = /^req(\d+)_(.*)$/.exec(name);
    if (match) maps[Number(match[1])]![match[2]!] = value;
  }
  return maps;
}

const creates = (h: Harness, tag: string): Recorded[] =>
  h.requests.filter((r) => isCreate(r) && r.url.searchParams.get('tag') === tag);
const byTag = (h: Harness, tag: string): Session[] =>
  h.sessions.filter((s) => s.query.tag === tag);

describe('maps a session never had acknowledged', () => {
  let h: Harness;
  before(async () => (h = await harness()));
  after(() => h.close());

  test('a lost POST: the reconnect names OSID, OAID, OMID and resends its maps first', async () => {
    const client = connect(h.url, 'lost', { reconnect: true, reconnectTime: 50 });
    await until(() => client.opens() === 1, 3000, 'open');
    for (const text of ['m0', 'm1', 'm2']) client.socket.send(text);
    await until(() => h.messages.get('lost')?.length === 3, 3000, 'first three');
    // The process "dies" with m3 in flight and m4, m5 queued behind it.
    h.swallow = 'hold';
    client.socket.send('m3');
    await until(() => h.held.length === 1, 3000, 'held POST');
    client.socket.send('m4');
    client.socket.send({ n: 5 });
    // Sent on `connecting`, so queued in the new session behind the resent maps.
    client.socket.onconnecting = () => client.socket.send('late');
    h.swallow = 'none';
    const [first] = byTag(h, 'lost');
    first!.close();
    await until(() => h.messages.get('lost')?.includes('late') === true, 5000, 'late');
    const [, again] = creates(h, 'lost');
    assert.ok(again, 'a second create');
    assert.equal(again.url.searchParams.get('OSID'), first!.id);
    assert.match(again.url.searchParams.get('OAID') ?? '', /^\d+$/);
    assert.equal(again.url.searchParams.get('OMID'), '3');
    assert.equal(new URLSearchParams(again.body).get('ofs'), '0');
    assert.deepEqual(bodyMaps(again.body).slice(0, 3), [
      { _S: 'm3' },
      { _S: 'm4' },
      { JSON: '{"n":5}' },
    ]);
    // Nothing reached the app twice or out of order (this server cannot
    // tell a repeat, but the lost POST never got to it).
    assert.deepEqual(h.messages.get('lost'), ['m0', 'm1', 'm2', 'm3', 'm4', { n: 5 }, 'late']);
    // The reconnect resent them, so the close event gave none up.
    assert.deepEqual(client.closes.map((c) => c.maps), [[]]);
    client.socket.close();
  });

  test('a forward POST answered 503: its maps open the next session, each once', async () => {
    const client = connect(h.url, 'failed', { reconnect: true, reconnectTime: 20 });
    await until(() => client.opens() === 1, 3000, 'open');
    client.socket.send('a0');
    await until(() => h.messages.get('failed')?.length === 1, 3000, 'a0');
    h.swallow = '503';
    client.socket.send('a1');
    client.socket.send('a2');
    await until(() => client.opens() === 2, 5000, 'second session');
    client.socket.send('a3');
    await until(() => h.messages.get('failed')?.length === 4, 5000, 'all four');
    assert.deepEqual(h.messages.get('failed'), ['a0', 'a1', 'a2', 'a3']);
    const [, again] = creates(h, 'failed');
    assert.equal(again!.url.searchParams.get('OSID'), byTag(h, 'failed')[0]!.id);
    assert.equal(again!.url.searchParams.get('OMID'), '1');
    assert.deepEqual(bodyMaps(again!.body), [{ _S: 'a1' }, { _S: 'a2' }]);
    client.socket.close();
  });

  test('a reconnect whose create fails: the next one still names the first session', async () => {
    const client = connect(h.url, 'chain', { reconnect: true, reconnectTime: 20 });
    await until(() => client.opens() === 1, 3000, 'open');
    client.socket.send('c0');
    await until(() => h.messages.get('chain')?.length === 1, 3000, 'c0');
    const held = h.held.length;
    h.swallow = 'hold';
    client.socket.send('c1');
    await until(() => h.held.length === held + 1, 3000, 'held POST');
    client.socket.send('c2');
    h.swallow = 'none';
    h.failCreates = 1;
    byTag(h, 'chain')[0]!.close();
    await until(() => client.opens() === 2, 5000, 'second session');
    const [, failed, again] = creates(h, 'chain');
    // The failed create never made a session, so the next one carries the
    // same maps, still counted from the first session's ids.
    for (const create of [failed!, again!]) {
      assert.equal(create.url.searchParams.get('OSID'), byTag(h, 'chain')[0]!.id);
      assert.equal(create.url.searchParams.get('OMID'), '1');
      assert.deepEqual(bodyMaps(create.body), [{ _S: 'c1' }, { _S: 'c2' }]);
    }
    await until(() => h.messages.get('chain')?.length === 3, 3000, 'all three');
    assert.deepEqual(h.messages.get('chain'), ['c0', 'c1', 'c2']);
    client.socket.close();
  });

  test('a map the app closed its session over (403) is delivered, so not resent', async () => {
    const client = connect(h.url, 'bye', { reconnect: true, reconnectTime: 20 });
    await until(() => client.opens() === 1, 3000, 'open');
    client.socket.send('bye');
    await until(() => client.opens() === 2, 5000, 'second session');
    client.socket.send('after');
    await until(() => h.messages.get('bye')?.length === 2, 3000, 'after');
    await delay(100);
    assert.deepEqual(h.messages.get('bye'), ['bye', 'after']);
    const [, again] = creates(h, 'bye');
    assert.equal(again!.url.searchParams.has('OMID'), false);
    assert.deepEqual(client.closes.map((c) => c.maps), [[]]);
    client.socket.close();
  });

  test('a map the server refuses (400) is not resent; close reports it', async () => {
    const client = connect(h.url, 'bad', { reconnect: true, reconnectTime: 20 });
    await until(() => client.opens() === 1, 3000, 'open');
    const huge: ClientMap = {};
    for (let i = 0; i <= 1000; i++) huge[`k${i}`] = 'v'; // over maxKeysPerMap (1000)
    client.socket.sendMap(huge);
    await until(() => client.opens() === 2, 5000, 'second session');
    client.socket.send('fine');
    await until(() => h.messages.get('bad')?.length === 1, 3000, 'fine');
    assert.deepEqual(h.messages.get('bad'), ['fine']);
    assert.match(client.closes[0]!.reason, /status 400/);
    assert.deepEqual(client.closes.map((c) => c.maps), [[huge]]);
    const [, again] = creates(h, 'bad');
    assert.equal(again!.url.searchParams.has('OMID'), false);
    client.socket.close();
  });

  test('a message sent between two sessions (socket CLOSED, reconnect due) goes with the next', async () => {
    const client = connect(h.url, 'gap', { reconnect: true, reconnectTime: 200 });
    try {
      await inThePause(client);
    } finally {
      client.socket.close();
    }
  });

  async function inThePause(client: Client): Promise<void> {
    await until(() => client.opens() === 1, 3000, 'open');
    client.socket.send('before');
    await until(() => h.messages.get('gap')?.length === 1, 3000, 'delivered');
    await delay(50);
    // The server ends the session; the next request learns it and the
    // socket waits to reconnect. A send in that pause must not vanish.
    let sentInPause = false;
    client.socket.addEventListener('close', () => {
      client.socket.send('in the pause');
      sentInPause = true;
    });
    byTag(h, 'gap')[0]!.close();
    await until(() => client.opens() === 2, 5000, 'second session');
    assert.ok(sentInPause);
    await until(() => h.messages.get('gap')?.length === 2, 3000, 'the pause message delivered');
    assert.deepEqual(h.messages.get('gap'), ['before', 'in the pause']);
  }

  test('nothing pending: the reconnect has OSID but no OMID, and an empty body', async () => {
    const client = connect(h.url, 'idle', { reconnect: true, reconnectTime: 50 });
    await until(() => client.opens() === 1, 3000, 'open');
    client.socket.send('only');
    await until(() => h.messages.get('idle')?.length === 1, 3000, 'delivered');
    await delay(50); // the 200 to that POST reaches the client
    byTag(h, 'idle')[0]!.close();
    await until(() => client.opens() === 2, 5000, 'second session');
    const [, again] = creates(h, 'idle');
    assert.equal(again!.url.searchParams.get('OSID'), byTag(h, 'idle')[0]!.id);
    assert.equal(again!.url.searchParams.has('OMID'), false);
    assert.equal(new URLSearchParams(again!.body).get('count'), '0');
    assert.deepEqual(h.messages.get('idle'), ['only']);
    client.socket.close();
  });
});

describe('a server without recovery', () => {
  let h: Harness;
  before(async () => (h = await harness(false)));
  after(() => h.close());

  test('maps are not resent into a fresh session: close gets them, as Closure\'s onclose does', async () => {
    const client = connect(h.url, 'plain', { reconnect: true, reconnectTime: 50 });
    try {
      await until(() => client.opens() === 1, 3000, 'open');
      h.swallow = 'hold';
      client.socket.send('lost with its POST');
      await until(() => h.held.length === 1, 3000, 'the POST held');
      byTag(h, 'plain')[0]!.close();
      await until(() => client.opens() === 2, 5000, 'second session');
      const [, again] = creates(h, 'plain');
      assert.equal(again!.url.searchParams.has('OMID'), false);
      assert.equal(new URLSearchParams(again!.body).get('count'), '0');
      assert.deepEqual(client.closes.at(-1)!.maps, [{ _S: 'lost with its POST' }]);
    } finally {
      h.swallow = 'none';
      client.socket.close();
    }
  });
});

describe('maps given up on reach the close listeners', () => {
  let h: Harness;
  before(async () => (h = await harness()));
  after(() => h.close());

  test('stop() from the server: no reconnect, close gets the unacknowledged maps', async () => {
    const client = connect(h.url, 'stop', { reconnect: true, reconnectTime: 20 });
    const heard: unknown[][] = [];
    client.socket.addEventListener('close', (...args) => heard.push(args));
    await until(() => client.opens() === 1, 3000, 'open');
    h.swallow = 'hold';
    client.socket.send('p1');
    await until(() => h.held.length === 1, 3000, 'held POST');
    client.socket.send({ p: 2 });
    byTag(h, 'stop')[0]!.stop();
    await until(() => client.closes.length === 1, 3000, 'close');
    const given = [{ _S: 'p1' }, { JSON: '{"p":2}' }];
    assert.deepEqual(client.closes, [{ reason: 'Stopped by server', maps: given }]);
    assert.deepEqual(heard, [['Stopped by server', given]]);
    await delay(200);
    assert.equal(creates(h, 'stop').length, 1, 'no reconnect');
    h.swallow = 'none';
  });

  test('close() with a POST unanswered hands its maps to close', async () => {
    const client = connect(h.url, 'local');
    await until(() => client.opens() === 1, 3000, 'open');
    const held = h.held.length;
    h.swallow = 'hold';
    client.socket.send('q1');
    await until(() => h.held.length === held + 1, 3000, 'held POST');
    client.socket.send('q2');
    client.socket.close();
    assert.deepEqual(client.closes, [{ reason: 'Closed', maps: [{ _S: 'q1' }, { _S: 'q2' }] }]);
    h.swallow = 'none';
  });

  test('close() while waiting to reconnect hands over the maps it was carrying', async () => {
    const client = connect(h.url, 'waiting', { reconnect: true, reconnectTime: 60_000 });
    await until(() => client.opens() === 1, 3000, 'open');
    h.swallow = '503';
    client.socket.send('r1');
    await until(() => client.closes.length === 1, 3000, 'first close');
    assert.deepEqual(client.closes[0]!.maps, [], 'a reconnect will resend r1');
    client.socket.close();
    assert.deepEqual(client.closes[1], { reason: 'Closed', maps: [{ _S: 'r1' }] });
    await delay(100);
    assert.equal(creates(h, 'waiting').length, 1, 'no reconnect');
  });

  test('close() in a close listener cancels the reconnect, gets the carried maps', async () => {
    const client = connect(h.url, 'cancel', { reconnect: true, reconnectTime: 20 });
    await until(() => client.opens() === 1, 3000, 'open');
    const held = h.held.length;
    h.swallow = 'hold';
    client.socket.send('s1');
    await until(() => h.held.length === held + 1, 3000, 'held POST');
    h.swallow = 'none';
    client.socket.addEventListener('close', () => client.socket.close());
    byTag(h, 'cancel')[0]!.close();
    await until(() => client.closes.length === 2, 3000, 'two closes');
    assert.deepEqual(client.closes, [
      { reason: 'Unknown session ID', maps: [] },
      { reason: 'Closed', maps: [{ _S: 's1' }] },
    ]);
    await delay(100);
    assert.equal(creates(h, 'cancel').length, 1, 'no reconnect');
  });
});
