// The real Closure BrowserChannel client (BCSocket from browserchannel@2.1.0,
// running in Node with its own XMLHttpRequest) against our server.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { startServer, until, type TestServer } from './helpers.ts';

interface BCSocketLike {
  readyState: number;
  onopen: (() => void) | null;
  onmessage: ((message: { data: unknown }) => void) | null;
  onclose: ((reason: string) => void) | null;
  onerror: ((message: string, code: number) => void) | null;
  send(message: unknown): void;
  sendMap(map: Record<string, string>): void;
  close(): void;
}
type BCSocketConstructor = new (url: string, options?: Record<string, unknown>) => BCSocketLike;
const { BCSocket } = createRequire(import.meta.url)('browserchannel') as { BCSocket: BCSocketConstructor };

// Opens a socket and resolves once it is open, collecting what it receives.
function connect(url: string, options: Record<string, unknown> = {}) {
  const socket = new BCSocket(url, { reconnect: false, ...options });
  const received: unknown[] = [];
  const events: string[] = [];
  socket.onmessage = (message) => received.push(message.data);
  const opened = new Promise<void>((resolve, reject) => {
    socket.onopen = () => {
      events.push('open');
      resolve();
    };
    socket.onerror = (message) => {
      events.push(`error:${message}`);
      reject(new Error(message));
    };
  });
  socket.onclose = (reason) => events.push(`close:${reason}`);
  opened.catch(() => {});
  return { socket, received, events, opened };
}

describe('Closure BCSocket client', { concurrency: true }, () => {
  let server: TestServer;
  const connects = new Map<string, number>();
  const closeReasons = new Map<string, string | undefined>();
  before(async () => {
    server = await startServer({}, (session: Session) => {
      const tag = session.query.tag ?? 'none';
      connects.set(tag, (connects.get(tag) ?? 0) + 1);
      session.on('close', (reason) => closeReasons.set(session.id, reason));
      session.on('message', (message) => {
        if (message === 'stop me') return session.stop();
        if (message === 'close me') return session.close('closed by app');
        if (typeof message === 'object' && message !== null && 'burst' in message) {
          for (let i = 0; i < (message as { burst: number }).burst; i++) session.send({ n: i });
          return;
        }
        session.send({ echo: message });
      });
    });
  });
  after(() => server.close());

  test('echoes 1000 messages each way, in order', async () => {
    const client = connect(server.url('/channel'), { extraParams: { tag: 'echo' } });
    await client.opened;
    for (let i = 0; i < 1000; i++) client.socket.send({ i });
    await until(() => client.received.length === 1000, 20000, '1000 echoes');
    assert.deepEqual(client.received, Array.from({ length: 1000 }, (_, i) => ({ echo: { i } })));
    client.socket.send({ burst: 1000 });
    await until(() => client.received.length === 2000, 20000, '1000 pushes');
    assert.deepEqual(client.received.slice(1000), Array.from({ length: 1000 }, (_, n) => ({ n })));
    client.socket.close();
    assert.equal(connects.get('echo'), 1);
  });

  test('unicode, </script> and line separators arrive intact both ways', async () => {
    const client = connect(server.url('/channel'), { extraParams: { tag: 'unicode' } });
    await client.opened;
    const samples = ['</script><script>alert(1)</script>', 'emoji 😀 and é', 'a\u2028b\u2029c', '{"json":"looking"}', ''];
    for (const sample of samples) client.socket.send(sample);
    client.socket.send({ nested: samples });
    await until(() => client.received.length === samples.length + 1, 5000, 'echoes');
    assert.deepEqual(client.received, [...samples.map((s) => ({ echo: s })), { echo: { nested: samples } }]);
    client.socket.close();
  });

  test('close() from the client closes the session with Disconnected', async () => {
    const client = connect(server.url('/channel'), { extraParams: { tag: 'bye' } });
    await client.opened;
    const session = server.sessions.find((s) => s.query.tag === 'bye')!;
    client.socket.close();
    await until(() => closeReasons.get(session.id) === 'Disconnected', 5000, 'Disconnected');
    assert.equal(client.socket.readyState, 3);
  });

  test('stop() makes the client fail with "Stopped by server" and not reconnect', async () => {
    const client = connect(server.url('/channel'), { extraParams: { tag: 'stop' }, reconnect: true });
    await client.opened;
    client.socket.send('stop me');
    await until(() => client.events.some((e) => e.startsWith('close')), 5000, 'client close');
    assert.ok(client.events.includes('error:Stopped by server'), client.events.join());
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(connects.get('stop'), 1, 'no reconnect after stop');
  });

  test('a session closed by the server makes a reconnecting client start a new one', async () => {
    const client = connect(server.url('/channel'), { extraParams: { tag: 'again' }, reconnect: true });
    await client.opened;
    client.socket.send('close me');
    await until(() => (connects.get('again') ?? 0) === 2, 10000, 'second session');
    await until(() => client.socket.readyState === 1, 5000, 'reopened');
    client.socket.send('after');
    await until(() => client.received.some((m) => JSON.stringify(m) === '{"echo":"after"}'), 5000, 'echo on the new session');
    client.socket.close();
  });

  test('{prev} ghosting retires the old session with Reconnected, onConnect once per session', async () => {
    const first = connect(server.url('/channel'), { extraParams: { tag: 'ghost' } });
    await first.opened;
    const old = server.sessions.find((s) => s.query.tag === 'ghost')!;
    const second = connect(server.url('/channel'), { extraParams: { tag: 'ghost' }, prev: first.socket });
    await second.opened;
    await until(() => closeReasons.get(old.id) === 'Reconnected', 5000, 'old closed');
    const fresh = server.sessions.filter((s) => s.query.tag === 'ghost').at(-1)!;
    assert.equal(fresh.query.OSID, old.id);
    assert.equal(connects.get('ghost'), 2);
    second.socket.close();
    first.socket.close();
  });

  test('extraParams and extraHeaders reach the session', async () => {
    const client = connect(server.url('/channel'), {
      extraParams: { tag: 'extras', room: 'lobby' },
      extraHeaders: { 'X-Auth-Token': 'secret' },
      appVersion: '3.1',
    });
    await client.opened;
    const session = server.sessions.find((s) => s.query.tag === 'extras')!;
    assert.equal(session.query.room, 'lobby');
    assert.equal(session.headers['x-auth-token'], 'secret');
    assert.equal(session.appVersion, '3.1');
    client.socket.close();
  });
});
