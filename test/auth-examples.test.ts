// The guide's authentication example (examples/auth/server.ts), run as
// written, with every client and every place a token can travel.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BCSocket } from '../src/client/index.ts';
import { createAuthServer, signToken, verifyToken } from '../examples/auth/server.ts';
import { request, until } from './helpers.ts';
import { openWebChannel } from './webchannel-client.ts';

type ClosureSocket = {
  onmessage: ((m: { data: unknown }) => void) | null;
  onerror: ((message: string) => void) | null;
  send(message: unknown): void;
  close(): void;
};
const Closure = (createRequire(import.meta.url)('browserchannel') as {
  BCSocket: new (url: string, options: Record<string, unknown>) => ClosureSocket;
}).BCSocket;

describe('examples/auth', () => {
  const secret = 'test secret';
  const good = signToken('ada', secret);
  let example: ReturnType<typeof createAuthServer>;
  let url: string;
  before(async () => {
    example = createAuthServer(secret);
    await once(example.server, 'listening');
    url = `http://127.0.0.1:${(example.server.address() as AddressInfo).port}/channel`;
  });
  after(() => {
    example.channel.close();
    example.server.closeAllConnections();
    example.server.close();
  });

  test('tokens verify only with the right user and secret', () => {
    assert.equal(verifyToken(good, secret), 'ada');
    assert.equal(verifyToken(good, 'other secret'), null);
    assert.equal(verifyToken(good.replace('ada', 'bob'), secret), null);
    assert.equal(verifyToken('nodot', secret), null);
  });

  test('Closure BCSocket with extraHeaders (Authorization)', async () => {
    const received: unknown[] = [];
    const socket = new Closure(url, { reconnect: false, extraHeaders: { Authorization: `Bearer ${good}` } });
    socket.onmessage = (message) => received.push(message.data);
    await until(() => received.length === 1, 3000, 'hello');
    socket.send('hi');
    await until(() => received.length === 2, 3000, 'echo');
    assert.deepEqual(received, ['hello ada', 'ada said hi']);
    socket.close();
  });

  test('Closure BCSocket with extraParams (token in the URL)', async () => {
    const received: unknown[] = [];
    const socket = new Closure(url, { reconnect: false, extraParams: { token: good } });
    socket.onmessage = (message) => received.push(message.data);
    await until(() => received.length === 1, 3000, 'hello');
    assert.deepEqual(received, ['hello ada']);
    socket.close();
  });

  test('WebChannel with initMessageHeaders, as Firestore sends them', async () => {
    const wc = openWebChannel(`${url}/bind`, { useFetchStreams: true, encodeInitMessageHeaders: true,
      initMessageHeaders: { Authorization: `Bearer ${good}` } });
    await until(() => wc.received.length === 1, 3000, 'hello');
    assert.deepEqual(wc.received, ['hello ada']);
    wc.client.close();
  });

  test('a cookie, over raw HTTP', async () => {
    const response = await request(Number(new URL(url).port), 'POST', '/channel/bind?VER=8&RID=1', 'count=0',
      { Cookie: `theme=dark; token=${encodeURIComponent(good)}` });
    assert.equal(response.status, 200);
    assert.match(response.body, /"hello ada"/);
  });

  test('our BCSocket: no token is a final 401, a bad token a final 403; no reconnect loop', async () => {
    const port = Number(new URL(url).port);
    const noToken = await request(port, 'POST', '/channel/bind?VER=8&RID=1', 'count=0');
    assert.deepEqual([noToken.status, noToken.statusMessage], [401, 'Token required']);
    const refused: number[] = [];
    example.channel.on('refused', (refusal) => refused.push(refusal.status));
    const socket = new BCSocket(url, { reconnect: true, reconnectTime: 50, extraParams: { token: 'mallory.forged' } });
    const closes: string[] = [];
    socket.onclose = (reason) => closes.push(String(reason));
    await until(() => closes.length > 0, 3000, 'close');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(refused, [403], 'one attempt, no retries');
    socket.close();
  });
});
