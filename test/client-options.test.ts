// Our browser client's options and failure handling, in Node against the
// real middleware, with a plain node:http wrapper in front of it where a
// test needs a server that misbehaves: one that never answers a request,
// or refuses every create with 401.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BCSocket, type BCSocketOptions } from '../src/client/index.ts';
import browserChannel, { type BrowserChannelOptions, type Session } from '../src/index.ts';
import { delay, until } from './helpers.ts';

// A server whose `gate` sees every request first and may answer it, hold
// it (never answering), or let the middleware have it.
type Gate = (req: http.IncomingMessage, res: http.ServerResponse) => 'pass' | 'hold' | 'done';

interface GatedServer {
  readonly url: string;
  readonly sessions: Session[];
  readonly creates: string[];
  readonly held: http.IncomingMessage[];
  gate: Gate;
  close(): Promise<void>;
}

async function gatedServer(options: BrowserChannelOptions = {}): Promise<GatedServer> {
  const sessions: Session[] = [];
  const middleware = browserChannel(options, (session) => {
    sessions.push(session);
    session.on('message', (message) => session.send({ echo: message }));
  });
  const state: GatedServer = {
    url: '',
    sessions,
    creates: [],
    held: [],
    gate: () => 'pass',
    close: async () => {
      middleware.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (req.method === 'POST' && url.pathname.endsWith('/bind') && !url.searchParams.has('SID')) state.creates.push(req.url!);
    const verdict = state.gate(req, res);
    if (verdict === 'hold') state.held.push(req);
    if (verdict === 'pass') middleware(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(state, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channel` });
}

function connect(url: string, options: BCSocketOptions = {}) {
  const socket = new BCSocket(url, { streaming: true, ...options });
  const received: unknown[] = [];
  const events: string[] = [];
  socket.onmessage = (event) => received.push(event.data);
  socket.onerror = (message) => events.push(`error:${message}`);
  socket.onclose = (reason) => events.push(`close:${reason}`);
  socket.onconnecting = () => events.push(`connecting:${socket.readyState}`);
  socket.onopen = () => events.push('open');
  return { socket, received, events };
}

const isForwardPost = (req: http.IncomingMessage): boolean => req.method === 'POST' && /[?&]SID=/.test(req.url!) && !/TYPE=terminate/.test(req.url!);
const isCreate = (req: http.IncomingMessage): boolean => req.method === 'POST' && !/[?&]SID=/.test(req.url!);

describe('request deadlines', () => {
  let server: GatedServer;
  before(async () => (server = await gatedServer()));
  after(() => server.close());

  test('a forward POST the server never answers is abandoned at the deadline and retried under the same RID', async () => {
    let stalled = 0;
    server.gate = (req) => (isForwardPost(req) && stalled++ === 0 ? 'hold' : 'pass');
    const client = connect(server.url, { timeout: 400 });
    await until(() => client.socket.readyState === BCSocket.OPEN, 5000, 'open');
    client.socket.send('one');
    client.socket.send('two');
    await until(() => client.received.length === 2, 5000, 'both echoes after the retry');
    assert.deepEqual(client.received, [{ echo: 'one' }, { echo: 'two' }]);
    assert.equal(server.held.length, 1, 'the first POST was held');
    const heldRid = new URL(server.held[0]!.url!, 'http://x').searchParams.get('RID');
    assert.ok(heldRid);
    // The queue is not stuck: later messages flow too.
    client.socket.send('three');
    await until(() => client.received.length === 3, 5000, 'a later echo');
    assert.deepEqual(server.sessions.length, 1, 'no new session was needed');
    client.socket.close();
    server.gate = () => 'pass';
  });

  test('a create the server never answers fails at the deadline; with reconnect the next one opens', async () => {
    let stalled = 0;
    server.gate = (req) => (isCreate(req) && stalled++ === 0 ? 'hold' : 'pass');
    const before = server.creates.length;
    const client = connect(server.url, { timeout: 400, reconnect: true, reconnectTime: 50 });
    await until(() => client.socket.readyState === BCSocket.OPEN, 5000, 'open after the stalled create');
    assert.equal(server.creates.length - before, 2);
    assert.deepEqual(client.events, ['connecting:0', 'error:General network error', 'close:General network error', 'connecting:0', 'open']);
    client.socket.close();
    server.gate = () => 'pass';
  });
});

describe('Retry-After', () => {
  // A full server (503) or one done with this client for a while (429)
  // says how long to wait; the socket's own backoff here is 20 ms.
  for (const status of [429, 503]) {
    test(`${status} with Retry-After: 1 to a create: the socket waits that long to reconnect`, async () => {
      const server = await gatedServer();
      const at: number[] = [];
      server.gate = (req, res) => {
        if (!isCreate(req)) return 'pass';
        at.push(Date.now());
        if (at.length > 1) return 'pass';
        res.writeHead(status, 'Not now', { 'Content-Type': 'text/html', 'Retry-After': '1' });
        res.end('<h1>Not now</h1>');
        return 'done';
      };
      const client = connect(server.url, { reconnect: true, reconnectTime: 20 });
      await until(() => client.socket.readyState === BCSocket.OPEN, 5000, 'open after the wait');
      assert.equal(at.length, 2);
      assert.ok(at[1]! - at[0]! >= 950, `reconnected after ${at[1]! - at[0]!} ms`);
      assert.deepEqual(client.events.slice(0, 3), ['connecting:0',
        `error:Request failed with status ${status} (Not now)`,
        `close:Request failed with status ${status} (Not now)`]);
      client.socket.close();
      await server.close();
    });
  }

  test('the real server\'s 429 (maxSessionsPerClient) carries it too', async () => {
    const server = await gatedServer({ maxSessionsPerClient: 1 });
    const first = connect(server.url);
    await until(() => first.socket.readyState === BCSocket.OPEN, 5000, 'the first open');
    const second = connect(server.url, { reconnect: true, reconnectTime: 20 });
    await until(() => second.events.some((e) => e.startsWith('close')), 5000, 'refused');
    assert.match(second.events.join(), /status 429 \(Too many sessions for this client/);
    first.socket.close();
    await delay(600);
    assert.equal(second.socket.readyState, BCSocket.CLOSED, 'still waiting out Retry-After: 5');
    second.socket.close();
    await server.close();
  });
});

describe('onconnecting', () => {
  test('fires for the first session (to a handler set after new) and before each reconnect', async () => {
    const server = await gatedServer();
    const client = connect(server.url, { reconnect: true, reconnectTime: 50 });
    await until(() => client.events.includes('open'), 5000, 'open');
    assert.deepEqual(client.events, ['connecting:0', 'open']);
    server.sessions[0]!.close('kicked');
    await until(() => client.events.filter((e) => e === 'open').length === 2, 5000, 'reopened');
    assert.deepEqual(client.events.filter((e) => e.startsWith('connecting')), ['connecting:0', 'connecting:0']);
    assert.ok(client.events.indexOf('connecting:0', 2) > client.events.findIndex((e) => e.startsWith('close')));
    client.socket.close();
    await server.close();
  });
});

describe('answers that end the socket for good', () => {
  for (const status of [401, 403]) {
    test(`${status} to the create request: onclose with the status, no reconnect`, async () => {
      const server = await gatedServer();
      server.gate = (req, res) => {
        if (!isCreate(req)) return 'pass';
        res.writeHead(status, status === 401 ? 'Sign in first' : 'Not for you', { 'Content-Type': 'text/html' }).end('<h1>no</h1>');
        return 'done';
      };
      const client = connect(server.url, { reconnect: true, reconnectTime: 20 });
      await until(() => client.events.some((e) => e.startsWith('close')), 5000, 'close');
      await delay(500);
      const reason = `Request refused with status ${status} (${status === 401 ? 'Sign in first' : 'Not for you'})`;
      assert.deepEqual(client.events, ['connecting:0', `error:${reason}`, `close:${reason}`]);
      assert.equal(server.creates.length, 1, 'one create, no reconnect loop');
      assert.equal(client.socket.readyState, BCSocket.CLOSED);
      await server.close();
    });
  }

  test('403 from the server itself (onConnect closes the session) is final too', async () => {
    const middleware = browserChannel((session) => session.close('not allowed'));
    let creates = 0;
    const server = http.createServer((req, res) => ((creates += isCreate(req) ? 1 : 0), middleware(req, res)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}/channel`, { reconnect: true, reconnectTime: 20 });
    await until(() => client.events.some((e) => e.startsWith('close')), 5000, 'close');
    await delay(500);
    assert.deepEqual(client.events.at(-1), 'close:Request refused with status 403 (Forbidden)');
    assert.equal(creates, 1);
    middleware.close();
    server.closeAllConnections();
    server.close();
  });

  test('413 for a message over maxBodyBytes: one failure, no reconnect, the other messages were delivered', async () => {
    const server = await gatedServer({ maxBodyBytes: 2000 });
    const client = connect(server.url, { reconnect: true, reconnectTime: 20 });
    await until(() => client.events.includes('open'), 5000, 'open');
    client.socket.send('small');
    await until(() => client.received.length === 1, 5000, 'echo');
    client.socket.send('x'.repeat(5000));
    await until(() => client.events.some((e) => e.startsWith('close')), 5000, 'close');
    await delay(500);
    assert.equal(server.creates.length, 1, 'one session, no loop');
    const closes = client.events.filter((e) => e.startsWith('close'));
    assert.equal(closes.length, 1);
    assert.match(closes[0]!, /status 413 .*maxBodyBytes|Stopped by server/);
    assert.equal(client.socket.readyState, BCSocket.CLOSED);
    await server.close();
  });
});
