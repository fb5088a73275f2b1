// Closing and graceful shutdown: reasons the app can tell apart, new
// sessions refused with 503 while draining, clients given the chance to
// acknowledge what they were sent, and nothing left running afterwards.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { createSession, request, startServer, until } from './helpers.ts';

type Socket = {
  readyState: number;
  onmessage: ((m: { data: unknown }) => void) | null;
  onopen: (() => void) | null;
  onclose: ((reason: string) => void) | null;
  close(): void;
};
const { BCSocket } = createRequire(import.meta.url)('browserchannel') as {
  BCSocket: new (url: string, options: Record<string, unknown>) => Socket;
};

describe('close()', () => {
  test("closes every session with 'Server closed', or the reason given", async () => {
    const reasons: string[] = [];
    const server = await startServer({}, (session) => session.on('close', (reason) => reasons.push(reason)));
    await createSession(server.port);
    await createSession(server.port);
    server.middleware.close();
    assert.deepEqual(reasons, ['Server closed', 'Server closed']);
    await createSession(server.port);
    server.middleware.close('Maintenance');
    assert.deepEqual(reasons.at(-1), 'Maintenance');
    await server.close();
  });
});

describe('shutdown()', () => {
  test('refuses new sessions, waits for acknowledgements, then closes with a reason', { timeout: 20000 }, async () => {
    const reasons: string[] = [];
    const server = await startServer({}, (session: Session) => {
      session.on('close', (reason) => reasons.push(reason));
      session.on('message', () => {
        for (let i = 0; i < 20; i++) session.send({ i });
      });
    });
    const received: unknown[] = [];
    const socket = new BCSocket(server.url('/channel'), { reconnect: false });
    socket.onmessage = (message) => received.push(message.data);
    await new Promise<void>((resolve) => (socket.onopen = resolve));
    const closed = new Promise<string>((resolve) => (socket.onclose = resolve));
    (socket as unknown as { send(m: unknown): void }).send('burst');
    await until(() => received.length === 20);
    const session = server.sessions[0]!;

    const started = Date.now();
    const done = server.middleware.shutdown({ timeout: 5000 });
    const refused = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1', 'count=0');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.statusMessage, 'Server shutting down');
    await done;
    assert.ok(Date.now() - started < 4000, 'done once the client acknowledged, not at the timeout');
    assert.equal(session.bufferedBytes, 0, 'everything was acknowledged before the close');
    assert.deepEqual(reasons, ['Server shutting down']);
    assert.equal(server.middleware.sessionCount, 0);
    socket.close();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1000))]);
    await server.close();
  });

  test('a client that never acknowledges is closed when the timeout passes', async () => {
    const reasons: string[] = [];
    const server = await startServer({}, (session) => session.on('close', (reason) => reasons.push(reason)));
    await createSession(server.port);
    const started = Date.now();
    await server.middleware.shutdown({ timeout: 300 });
    const took = Date.now() - started;
    assert.ok(took >= 280 && took < 2000, `took ${took} ms`);
    assert.deepEqual(reasons, ['Server shutting down']);
    await server.close();
  });

  test('with no sessions it resolves at once', async () => {
    const server = await startServer();
    const started = Date.now();
    await server.middleware.shutdown();
    assert.ok(Date.now() - started < 200);
    await server.close();
  });
});
