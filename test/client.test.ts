// Our own browser client (src/client), run in Node (fetch with streaming
// bodies is all it needs), against the real server: the scenarios the
// Closure client passes, plus the hosted bundle at <base>/bcsocket.js.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BCSocket, type BCSocketOptions } from '../src/client/index.ts';
import type { Session } from '../src/index.ts';
import { delay, request, startServer, until, type TestServer } from './helpers.ts';

function connect(url: string, options: BCSocketOptions = {}) {
  const socket = new BCSocket(url, { streaming: true, ...options });
  const received: unknown[] = [];
  const events: string[] = [];
  socket.onmessage = (event) => received.push(event.data);
  socket.onerror = (message) => events.push(`error:${message}`);
  socket.onclose = (reason) => events.push(`close:${reason}`);
  const opened = new Promise<void>((resolve) => socket.addEventListener('open', () => (events.push('open'), resolve())));
  return { socket, received, events, opened };
}

describe('our BCSocket client', { concurrency: true }, () => {
  let server: TestServer;
  const log: string[] = [];
  const connects = new Map<string, number>();
  const closes = new Map<string, string | undefined>();
  const byTag = (tag: string): Session[] => server.sessions.filter((s) => s.query.tag === tag);
  before(async () => {
    server = await startServer({}, (session) => {
      const tag = session.query.tag ?? '';
      connects.set(tag, (connects.get(tag) ?? 0) + 1);
      session.on('close', (reason) => closes.set(session.id, reason));
      session.on('message', (message) => {
        if (message === 'stop me') return session.stop();
        if (message === 'close me') return session.close('by app');
        if ((message as { burst?: number })?.burst) {
          for (let i = 0; i < (message as { burst: number }).burst; i++) session.send({ n: i });
          return;
        }
        session.send({ echo: message });
      });
    });
    server.server.prependListener('request', (req) => log.push(req.url!));
    server.server.prependListener('request', (req) => process.env.DEBUG_CLIENT && console.log(Date.now(), req.method, req.url));
  });
  after(() => server.close());
  const url = () => server.url('/channel');

  test('echoes 1000 messages each way, in order, streaming', async () => {
    const client = connect(url(), { extraParams: { tag: 'echo' } });
    await client.opened;
    for (let i = 0; i < 1000; i++) client.socket.send({ i });
    await until(() => client.received.length === 1000, 20_000, 'echoes');
    assert.deepEqual(client.received, Array.from({ length: 1000 }, (_, i) => ({ echo: { i } })));
    client.socket.send({ burst: 1000 });
    await until(() => client.received.length === 2000, 20_000, 'pushes');
    assert.deepEqual(client.received.slice(1000), Array.from({ length: 1000 }, (_, n) => ({ n })));
    client.socket.close();
    assert.equal(connects.get('echo'), 1);
  });

  // As with a WebSocket, an exception in the app's handler is reported
  // (reportError, where there is one) and the socket goes on: it is not a
  // failure of the connection, and the arrays after it still arrive.
  test('a message handler that throws is reported; the rest arrive, on the same session', async () => {
    const reported: unknown[] = [];
    const original = (globalThis as { reportError?: unknown }).reportError;
    (globalThis as { reportError?: unknown }).reportError = (error: unknown) => reported.push(error);
    try {
      const client = connect(url(), { extraParams: { tag: 'throwing' } });
      client.socket.onmessage = (event) => {
        client.received.push(event.data);
        if ((event.data as { n?: number }).n === 1) throw new Error('handler boom');
      };
      await client.opened;
      client.socket.send({ burst: 3 });
      await until(() => client.received.length === 3, 5000, 'three messages');
      await delay(200);
      assert.deepEqual(client.received, [{ n: 0 }, { n: 1 }, { n: 2 }]);
      assert.deepEqual(reported.map((error) => (error as Error).message), ['handler boom']);
      assert.equal(client.socket.readyState, BCSocket.OPEN);
      assert.equal(connects.get('throwing'), 1);
      client.socket.close();
    } finally {
      (globalThis as { reportError?: unknown }).reportError = original;
    }
  });

  test('long polling (streaming: false) delivers the same, over CI=1 back channels', async () => {
    const client = connect(url(), { extraParams: { tag: 'poll' }, streaming: false });
    await client.opened;
    for (let i = 0; i < 200; i++) client.socket.send(i);
    await until(() => client.received.length === 200, 20_000, 'echoes');
    assert.deepEqual(client.received, Array.from({ length: 200 }, (_, i) => ({ echo: i })));
    const session = byTag('poll')[0]!;
    const polls = log.filter((line) => line.includes(session.id) && line.includes('RID=rpc'));
    assert.ok(polls.length > 1 && polls.every((line) => line.includes('CI=1')));
    client.socket.close();
  });

  test('the buffering test runs when not told, and ends early when nothing buffers', async () => {
    const started = Date.now();
    const client = connect(url(), { extraParams: { tag: 'tested' }, streaming: undefined });
    await client.opened;
    assert.ok(Date.now() - started < 1500, 'did not wait for the "2"');
    const session = byTag('tested')[0]!;
    assert.ok(log.some((line) => line.includes('/test?') && line.includes('MODE=init') && line.includes('tag=tested')));
    await until(() => log.some((line) => line.includes(session.id) && line.includes('CI=0')), 3000, 'a streaming back channel');
    client.socket.close();
  });

  test('unicode, </script> and line separators arrive intact both ways', async () => {
    const client = connect(url(), { extraParams: { tag: 'unicode' } });
    await client.opened;
    const samples = ['</script><script>alert(1)</script>', 'emoji 😀 and é', 'a\u2028b\u2029c', ''];
    for (const sample of samples) client.socket.send(sample);
    await until(() => client.received.length === samples.length);
    assert.deepEqual(client.received, samples.map((s) => ({ echo: s })));
    client.socket.close();
  });

  test('close() terminates the session with Disconnected', async () => {
    const client = connect(url(), { extraParams: { tag: 'bye' } });
    await client.opened;
    client.socket.send('last');
    client.socket.close();
    const session = byTag('bye')[0]!;
    await until(() => closes.get(session.id) === 'Disconnected', 3000, 'Disconnected');
    assert.equal(client.socket.readyState, BCSocket.CLOSED);
    assert.deepEqual(client.events, ['open', 'close:Closed']);
  });

  test('stop() ends the socket with an error and no reconnect', async () => {
    const client = connect(url(), { extraParams: { tag: 'stop' }, reconnect: true, reconnectTime: 50 });
    await client.opened;
    client.socket.send('stop me');
    await until(() => client.events.some((e) => e.startsWith('close')), 3000, 'close');
    assert.deepEqual(client.events, ['open', 'error:Stopped by server', 'close:Stopped by server']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(connects.get('stop'), 1);
  });

  test('a session the server closes is replaced by a new one that retires it (OSID)', async () => {
    const client = connect(url(), { extraParams: { tag: 'again' }, reconnect: true, reconnectTime: 50 });
    await client.opened;
    client.socket.send('close me');
    await until(() => connects.get('again') === 2 && client.socket.readyState === BCSocket.OPEN, 5000, 'second session');
    const [first, second] = byTag('again');
    assert.equal(second!.query.OSID, first!.id);
    client.socket.send('after');
    await until(() => client.received.some((m) => JSON.stringify(m) === '{"echo":"after"}'));
    // The POST that carried 'close me' is answered 403 (the app closed the session
    // while handling it, as in 2.1.0); the socket reports it and starts over.
    assert.ok(client.events.some((e) => e.startsWith('error:Request failed with status 403') || e === 'error:Unknown session ID'), client.events.join());
    client.socket.close();
  });

  test('{prev} ghosting, extraParams, extraHeaders, appVersion and the affinity token', async () => {
    const first = connect(url(), { extraParams: { tag: 'ghost' } });
    await first.opened;
    const second = connect(url(), {
      extraParams: { tag: 'ghost', room: 'lobby' }, extraHeaders: { 'X-Token': 'secret' }, appVersion: '3.1', prev: first.socket, affinity: 'fixed', affinityParam: 'aff',
    });
    await second.opened;
    const [old, fresh] = byTag('ghost');
    await until(() => closes.get(old!.id) === 'Reconnected', 3000, 'old retired');
    assert.equal(fresh!.query.OSID, old!.id);
    assert.equal(fresh!.query.room, 'lobby');
    assert.equal(fresh!.query.aff, 'fixed');
    assert.equal(fresh!.headers['x-token'], 'secret');
    assert.equal(fresh!.appVersion, '3.1');
    assert.ok(log.filter((line) => line.includes(fresh!.id)).every((line) => line.includes('aff=fixed')));
    first.socket.close();
    second.socket.close();
  });

  test('failFast gives up at once when the server is gone', async () => {
    const client = connect('http://127.0.0.1:1/channel', { failFast: true });
    await until(() => client.events.some((e) => e.startsWith('close')), 5000, 'close');
    assert.equal(client.events[0], 'error:General network error');
  });
});

describe('the hosted bundle', () => {
  test('GET <base>/bcsocket.js serves the client with an ETag, 304 on If-None-Match, and HEAD', async () => {
    const server = await startServer({ base: '/chat' });
    const response = await request(server.port, 'GET', '/chat/bcsocket.js');
    assert.equal(response.status, 200);
    assert.match(response.headers['content-type']!, /^application\/javascript/);
    assert.match(response.body, /BCSocket/);
    assert.equal(Number(response.headers['content-length']), Buffer.byteLength(response.body));
    const etag = response.headers.etag!;
    assert.match(etag, /^"[A-Za-z0-9_-]+"$/);
    const again = await request(server.port, 'GET', '/chat/bcsocket.js', undefined, { 'If-None-Match': etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    const head = await request(server.port, 'HEAD', '/chat/bcsocket.js');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], response.headers['content-length']);
    assert.equal((await request(server.port, 'POST', '/chat/bcsocket.js', '')).status, 405);
    // The bundle defines window.BCSocket when run as a plain script.
    const scope: { BCSocket?: unknown } = {};
    new Function('globalThis', response.body)(scope);
    assert.equal(typeof scope.BCSocket, 'function');
    await server.close();
  });
});
