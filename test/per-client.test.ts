// maxSessionsPerClient: one client cannot take every session. Real HTTP on
// 127.0.0.1; distinct clients are distinct loopback source addresses
// (127.0.0.2, 127.0.0.3, …), which Linux routes like 127.0.0.1.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import browserChannel, { addressKey } from '../src/index.ts';
import { ClientCounts } from '../src/per-client.ts';
import type { Refusal } from '../src/observe.ts';
import { type RawResponse, delay, parseChunks, request, startServer, until } from './helpers.ts';

// A create from `from` (a loopback address), with optional headers.
function createFrom(port: number, from: string, headers: Record<string, string> = {},
  path = '/channel/bind?VER=8&RID=1000&CVER=8'): Promise<RawResponse> {
  return request(port, 'POST', path, 'count=0', headers, from);
}

const sidOf = (response: RawResponse): string =>
  ((parseChunks(response.body)[0] as [number, unknown[]][])[0]![1] as string[])[1]!;

describe('who a client is', () => {
  test('IPv4 as it is, IPv4 seen through IPv6 as IPv4, IPv6 by its /64', () => {
    assert.equal(addressKey('203.0.113.7'), '203.0.113.7');
    assert.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(addressKey('::FFFF:203.0.113.7'), '203.0.113.7');
    assert.equal(addressKey('2001:db8:7:1::a'), '2001:db8:7:1::/64');
    assert.equal(addressKey('2001:0db8:0007:0001:9::1'), '2001:db8:7:1::/64');
    assert.equal(addressKey('2001:db8:7:1:ffff:ffff:ffff:ffff'), '2001:db8:7:1::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('2001:db8:0:0:1::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('fe80::1%lo'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('64:ff9b::192.0.2.33'), '64:ff9b:0:0::/64');
    assert.notEqual(addressKey('2001:db8:7:1::a'), addressKey('2001:db8:7:2::a'));
  });
});

describe('maxSessionsPerClient', () => {
  test('a client past its limit gets 429; its sessions and other clients carry on', async () => {
    const refusals: Refusal[] = [];
    const server = await startServer({ maxSessionsPerClient: 2 });
    server.middleware.on('refused', (refusal) => refusals.push(refusal));
    const first = await createFrom(server.port, '127.0.0.2');
    assert.equal(first.status, 200);
    assert.equal((await createFrom(server.port, '127.0.0.2')).status, 200);
    const refused = await createFrom(server.port, '127.0.0.2');
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['retry-after'], '5');
    assert.match(refused.statusMessage, /maxSessionsPerClient 2/);
    assert.match(refused.body, /Too many sessions for this client/);
    assert.deepEqual(refusals.map((r) => [r.status, r.code]), [[429, 'TOO_MANY_CLIENT_SESSIONS']]);
    // Another client is not affected, nor are the first client's sessions.
    assert.equal((await createFrom(server.port, '127.0.0.3')).status, 200);
    const forward = await request(server.port, 'POST',
      `/channel/bind?VER=8&SID=${sidOf(first)}&RID=1001&AID=0`, 'count=1&ofs=0&req0_x=1');
    assert.equal(forward.status, 200);
    assert.equal(server.sessions.length, 3);
    await server.close();
  });

  test('a slot is free again once a session ends, however it ends', async () => {
    const server = await startServer({ maxSessionsPerClient: 1, sessionTimeoutInterval: 300 });
    const from = '127.0.0.4';
    // The client disconnects (terminate).
    const one = await createFrom(server.port, from);
    assert.equal((await createFrom(server.port, from)).status, 429);
    const bye = await request(server.port, 'GET',
      `/channel/bind?VER=8&SID=${sidOf(one)}&RID=1001&TYPE=terminate`);
    assert.equal(bye.status, 200);
    // The app closes it.
    assert.equal((await createFrom(server.port, from)).status, 200);
    assert.equal((await createFrom(server.port, from)).status, 429);
    server.sessions.at(-1)!.close();
    // It times out.
    assert.equal((await createFrom(server.port, from)).status, 200);
    assert.equal((await createFrom(server.port, from)).status, 429);
    const last = server.sessions.at(-1)!;
    await until(() => last.state === 'closed', 3000, 'the session to time out');
    assert.equal((await createFrom(server.port, from)).status, 200);
    await server.close();
  });

  // The first check runs before the body is read, so all of these pass it
  // together. The second, in the turn the session is made, keeps the count.
  test('creates of one client in flight together cannot slip past the limit', async () => {
    const server = await startServer({ maxSessionsPerClient: 5 });
    // Thirty creates send their headers, and only once all are in, their bodies.
    const requests = Array.from({ length: 30 }, () => {
      const req = http.request({
        host: '127.0.0.1', port: server.port, localAddress: '127.0.0.5', method: 'POST',
        path: '/channel/bind?VER=8&RID=1000&CVER=8', agent: false,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': '7' },
      });
      req.flushHeaders();
      return req;
    });
    const answers = requests.map((req) => new Promise<{ status: number }>((resolve, reject) => {
      req.on('response', (res) => {
        resolve({ status: res.statusCode ?? 0 });
        res.resume();
      });
      req.on('error', reject);
    }));
    await delay(300);
    for (const req of requests) req.end('count=0');
    const statuses = (await Promise.all(answers)).map((answer) => answer.status);
    assert.equal(statuses.filter((status) => status === 200).length, 5, String(statuses));
    assert.equal(statuses.filter((status) => status === 429).length, 25);
    assert.equal(server.sessions.filter((session) => session.state !== 'closed').length, 5);
    await server.close();
  });

  test('a client at its limit can reconnect: the session it replaces (OSID) does not count', async () => {
    const server = await startServer({ maxSessionsPerClient: 1 });
    const old = sidOf(await createFrom(server.port, '127.0.0.10'));
    const again = await createFrom(server.port, '127.0.0.10', {},
      `/channel/bind?VER=8&RID=1000&CVER=8&OSID=${old}&OAID=0`);
    assert.equal(again.status, 200);
    assert.equal(server.sessions[0]!.state, 'closed');
    assert.equal(server.sessions.length, 2);
    // A session of another client is no excuse.
    const theirs = sidOf(await createFrom(server.port, '127.0.0.11'));
    const notMine = await createFrom(server.port, '127.0.0.10', {},
      `/channel/bind?VER=8&RID=1000&CVER=8&OSID=${theirs}&OAID=0`);
    assert.equal(notMine.status, 429);
    assert.equal(server.sessions[2]!.state, 'ok');
    await server.close();
  });

  test('a WebChannel fast handshake counts the same', async () => {
    const server = await startServer({ maxSessionsPerClient: 1 });
    const path = '/channel/bind?VER=8&RID=1&CVER=22&SID=null&$req=count%3D0';
    const get = (): Promise<number> => new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, localAddress: '127.0.0.6',
        path, agent: false }, (res) => {
        resolve(res.statusCode ?? 0);
        res.destroy();
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(await get(), 200);
    assert.equal(await get(), 429);
    await server.close();
  });

  test('clientKey names the client, say from what a trusted proxy adds', async () => {
    const server = await startServer({
      maxSessionsPerClient: 1,
      clientKey: (req) => String(req.headers['x-forwarded-for']).split(',').at(-1)!.trim(),
    });
    const as = (address: string) => ({ 'X-Forwarded-For': `10.9.9.9, ${address}` });
    assert.equal((await createFrom(server.port, '127.0.0.7', as('198.51.100.1'))).status, 200);
    assert.equal((await createFrom(server.port, '127.0.0.7', as('198.51.100.1'))).status, 429);
    assert.equal((await createFrom(server.port, '127.0.0.7', as('198.51.100.2'))).status, 200);
    await server.close();
  });

  test('a clientKey that fails is the app\'s bug: 500, reported, and no session', async () => {
    const errors: unknown[] = [];
    const server = await startServer({
      maxSessionsPerClient: 1,
      clientKey: (req) => (req.headers['x-broken'] ? (42 as unknown as string) : 'everyone'),
    });
    server.middleware.on('error', (error) => errors.push(error));
    const broken = await createFrom(server.port, '127.0.0.8', { 'X-Broken': '1' });
    assert.equal(broken.status, 500);
    assert.match(String(errors[0]), /clientKey must return a string, got number/);
    assert.equal(server.sessions.length, 0);
    assert.equal((await createFrom(server.port, '127.0.0.8')).status, 200);
    await server.close();
  });

  test('the options are checked', () => {
    assert.throws(() => browserChannel({ maxSessionsPerClient: 0 }),
      /option `maxSessionsPerClient` must be a whole number of at least 1, got number 0/);
    assert.throws(() => browserChannel({ clientKey: 'x' as never }),
      /option `clientKey` must be a function \(req\) => string, got string "x"/);
  });
});

// What the count holds: an entry per client with a live session, none after.
describe('ClientCounts', () => {
  test('holds one entry per client with a live session, and none once they end', () => {
    const counts = new ClientCounts(2, () => 'k');
    const a = {} as never;
    const b = {} as never;
    const c = {} as never;
    counts.add(a, 'one');
    counts.add(b, 'one');
    counts.add(c, 'two');
    assert.equal(counts.clients, 2);
    counts.remove(a);
    counts.remove(a);
    counts.remove(b);
    assert.equal(counts.clients, 1);
    counts.remove(c);
    assert.equal(counts.clients, 0);
  });
});

describe('maxSessionsPerClient, before the body', () => {
  test('a client over its limit is refused before its body is read', async () => {
    const server = await startServer({ maxSessionsPerClient: 1, bodyTimeout: 5000 });
    assert.equal((await createFrom(server.port, '127.0.0.9')).status, 200);
    // Headers promise a body that never comes: only the early check can answer.
    const started = Date.now();
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: server.port, localAddress: '127.0.0.9', method: 'POST',
        path: '/channel/bind?VER=8&RID=1000&CVER=8', agent: false,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': '100' },
      }, (res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
      });
      req.on('error', reject);
      req.write('count=');
    });
    assert.equal(status, 429);
    assert.ok(Date.now() - started < 2000, `answered after ${Date.now() - started} ms`);
    await server.close();
  });
});
