// allowRequest: refusing clients before a session exists, over raw HTTP and
// with the real Closure and WebChannel clients.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import type { IncomingHttpHeaders } from 'node:http';
import type { Refusal, RequestInfo } from '../src/index.ts';
import { delay, request, startServer, until, type TestServer } from './helpers.ts';
import { openWebChannel } from './webchannel-client.ts';

const create = (server: TestServer, query = '', body = 'count=0', headers: Record<string, string> = {}) =>
  request(server.port, 'POST', `/channel/bind?VER=8&RID=1&CVER=7${query}`, body, headers);

describe('allowRequest', () => {
  let server: TestServer;
  const calls: RequestInfo[] = [];
  const refusals: Refusal[] = [];
  const errors: unknown[] = [];
  let connects = 0;
  before(async () => {
    server = await startServer({
      allowRequest: async (req, info) => {
        calls.push(info);
        await delay(5);
        const token = info.headers.authorization ?? info.query.token;
        if (token === 'Bearer good' || token === 'good') return true;
        if (token === 'throw') throw new Error('token service down');
        if (token === 'weird') return { status: 200 };
        if (token === undefined) return false;
        return { status: 401, reason: 'Bad token' };
      },
    }, () => connects++);
    server.middleware.on('refused', (refusal) => refusals.push(refusal));
    server.middleware.on('error', (error) => errors.push(error));
  });
  after(() => server.close());

  test('true lets the client in; the hook sees headers, query and address, once per session', async () => {
    calls.length = 0;
    const before = connects;
    const response = await create(server, '&tag=ok', 'count=0', { Authorization: 'Bearer good' });
    assert.equal(response.status, 200);
    assert.equal(connects, before + 1);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.headers.authorization, 'Bearer good');
    assert.equal(calls[0]!.query.tag, 'ok');
    assert.equal(calls[0]!.address, '127.0.0.1');
    const sid = /"c","([^"]+)"/.exec(response.body)![1]!;
    const forward = await request(server.port, 'POST', `/channel/bind?VER=8&RID=2&SID=${sid}&AID=0`, 'count=0');
    assert.equal(forward.status, 200);
    assert.equal(calls.length, 1, 'later requests of the session are not asked about');
  });

  test('false is a 403 and creates nothing', async () => {
    const [before, sessions] = [connects, server.middleware.sessionCount];
    const response = await create(server);
    assert.equal(response.status, 403);
    assert.equal(response.statusMessage, 'Forbidden');
    assert.equal(connects, before);
    assert.equal(server.middleware.sessionCount, sessions);
    assert.deepEqual(refusals.at(-1), {
      status: 403, code: 'REFUSED', reason: 'Forbidden', method: 'POST', path: '/channel/bind', sessionId: null,
    });
  });

  test('a refusal picks its 4xx and reason', async () => {
    const response = await create(server, '&token=wrong');
    assert.equal(response.status, 401);
    assert.equal(response.statusMessage, 'Bad token');
    assert.match(response.body, /Bad token/);
  });

  test('a throw is a 500 reported to error listeners; so is a verdict that is not one', async () => {
    errors.length = 0;
    assert.equal((await create(server, '&token=throw')).status, 500);
    assert.match(String(errors[0]), /token service down/);
    assert.equal((await create(server, '&token=weird')).status, 500);
    assert.match(String(errors[1]), /use a 4xx status/);
    assert.equal((await create(server, '&token=good')).status, 200, 'the server carries on');
  });

  test("WebChannel's encoded init headers are merged in (Firestore sends Authorization there)", async () => {
    calls.length = 0;
    const block = encodeURIComponent('Authorization:Bearer good\r\nX-Extra:1\r\n');
    const response = await create(server, `&$httpHeaders=${block}`);
    assert.equal(response.status, 200);
    const headers: IncomingHttpHeaders = calls[0]!.headers;
    assert.equal(headers.authorization, 'Bearer good');
    assert.equal(headers['x-extra'], '1');
  });

  test('the real WebChannel client, refused, reports ERROR then CLOSE and does not retry', async () => {
    const before = refusals.length;
    const wc = openWebChannel(server.url('/channel/bind'), { useFetchStreams: true,
      initMessageHeaders: { Authorization: 'Bearer bad' }, encodeInitMessageHeaders: true });
    await until(() => wc.events.includes('close'), 5000, 'CLOSE');
    assert.deepEqual(wc.events, ['error', 'close']);
    await delay(300);
    assert.equal(refusals.length - before, 1, 'one create, no retry');
    assert.equal(refusals.at(-1)!.status, 401);
  });

  test('the real Closure BCSocket, refused, reports an error and closes; it retries only if told to reconnect', async () => {
    type Socket = { onerror: ((m: string) => void) | null; onclose: ((r: string) => void) | null; close(): void };
    const { BCSocket } = createRequire(import.meta.url)('browserchannel') as {
      BCSocket: new (url: string, options: Record<string, unknown>) => Socket;
    };
    const before = refusals.length;
    const events: string[] = [];
    const socket = new BCSocket(server.url('/channel'), { reconnect: false, extraParams: { token: 'wrong' } });
    socket.onerror = (message) => events.push(`error:${message}`);
    socket.onclose = (reason) => events.push(`close:${reason}`);
    await until(() => events.some((event) => event.startsWith('close')), 5000, 'close');
    await delay(300);
    assert.equal(events[0], 'error:Request failed');
    assert.equal(refusals.length - before, 1, 'no retry without reconnect');
    socket.close();
  });

  test('with reconnect on, the Closure BCSocket tries again a few seconds later', { timeout: 15000 }, async () => {
    type Socket = { onclose: ((r: string) => void) | null; close(): void };
    const { BCSocket } = createRequire(import.meta.url)('browserchannel') as {
      BCSocket: new (url: string, options: Record<string, unknown>) => Socket;
    };
    const before = refusals.length;
    const socket = new BCSocket(server.url('/channel'), { reconnect: true, extraParams: { token: 'wrong' } });
    await until(() => refusals.length - before >= 2, 8000, 'a second attempt');
    socket.close();
    assert.deepEqual(refusals.slice(before, before + 2).map((r) => r.status), [401, 401]);
  });
});

describe('allowRequest and capacity', () => {
  test('a slow hook does not let creates past maxSessions', async () => {
    const server = await startServer({ maxSessions: 2, allowRequest: () => delay(50).then(() => true) });
    try {
      const statuses = await Promise.all([1, 2, 3, 4].map(() => create(server).then((r) => r.status)));
      assert.deepEqual(statuses.sort(), [200, 200, 503, 503]);
      assert.equal(server.middleware.sessionCount, 2);
    } finally {
      await server.close();
    }
  });
});
