// The test channel, base-path matching, options, headers and CORS, over raw HTTP.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import browserChannel from '../src/index.ts';
import { createSession, openStream, parseChunks, request, startServer, type TestServer } from './helpers.ts';

describe('the test channel', () => {
  let server: TestServer;
  before(async () => (server = await startServer({ hostPrefixes: ['a'] })));
  after(() => server.close());

  test('MODE=init answers [hostPrefix, null] as plain JSON with X-Accept', async () => {
    const response = await request(server.port, 'GET', '/channel/test?VER=8&MODE=init&zx=abc&t=1');
    assert.equal(response.status, 200);
    assert.equal(response.body, '["a",null]');
    assert.equal(response.headers['x-accept'], 'application/json; application/x-www-form-urlencoded');
  });

  test('phase 2 (xmlhttp) writes 11111, then 2 about two seconds later, then ends', async () => {
    const started = Date.now();
    const stream = openStream(server.port, '/channel/test?VER=8&TYPE=xmlhttp&zx=abc&t=1');
    await stream.waitFor((t) => t === '11111', 1000);
    const firstAt = Date.now() - started;
    const text = await stream.ended;
    const total = Date.now() - started;
    assert.equal(text, '111112');
    assert.ok(firstAt < 1000, `11111 came after ${firstAt} ms`);
    assert.ok(total >= 1900 && total < 3500, `ended after ${total} ms`);
  });

  test('phase 2 (html) sends the same two pieces as script chunks', async () => {
    const text = await openStream(server.port, '/channel/test?VER=8&TYPE=html&zx=abc&t=1').ended;
    assert.equal(
      text,
      '<html><body><script>try{parent.m("11111")}catch(e){}</script>\n' +
        '<script>try{parent.m("2")}catch(e){}</script>\n<script>try{parent.d()}catch(e){}</script>\n',
    );
  });

  test('a host prefix is only ever one of the configured ones', async () => {
    const local = await startServer({ hostPrefixes: ['p1', 'p2'] });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      seen.add(JSON.parse((await request(local.port, 'GET', '/channel/test?VER=8&MODE=init')).body)[0]);
      const { response } = await createSession(local.port);
      seen.add(JSON.parse(response.body.slice(response.body.indexOf('\n') + 1))[0][1][2]);
    }
    assert.deepEqual([...seen].sort(), ['p1', 'p2']);
    await local.close();
  });

  for (const path of ['/channel/test?VER=7&MODE=init', '/channel/test?MODE=init', '/channel/bind?VER=9&RID=1']) {
    test(`VER other than 8 is refused with 400 (${path})`, async () => {
      const response = await request(server.port, path.includes('bind') ? 'POST' : 'GET', path, path.includes('bind') ? 'count=0' : undefined);
      assert.equal(response.status, 400);
      assert.match(response.body, /Version 8 required/);
    });
  }
});

describe('base path', () => {
  const cases: Array<[string | undefined, string, boolean]> = [
    [undefined, '/channel/test', true],
    [undefined, '/channelx/test', false],
    [undefined, '/other/test', false],
    ['/chat/', '/chat/test', true],
    ['chat', '/chat/test', true],
    ['a/b', '/a/b/test', true],
    ['', '/test', true],
    ['/', '/test', true],
    ['', '/index.html', false],
  ];
  for (const [base, path, ours] of cases) {
    test(`base ${JSON.stringify(base)}: ${path} is ${ours ? 'ours' : 'passed to next()'}`, async () => {
      const server = await startServer(base === undefined ? {} : { base });
      const response = await request(server.port, 'GET', `${path}?VER=8&MODE=init`);
      if (ours) assert.equal(response.body, '[null,null]');
      else assert.equal(response.body, 'next() reached');
      await server.close();
    });
  }

  test('exactly <base> (query allowed) is a bind URL, as WebChannel uses it; <base>/bind still works', async () => {
    const messages: unknown[] = [];
    const server = await startServer({ base: '/google.firestore.v1.Firestore/Listen/channel' }, (session) => {
      session.on('message', (message) => messages.push(message));
    });
    const base = server.base;
    const create = await request(server.port, 'POST', `${base}?VER=8&RID=1&CVER=22&t=1`, 'count=0');
    assert.equal(create.status, 200);
    const sid = (parseChunks(create.body) as [Array<[number, [string, string]]>])[0][0]![1][1];
    const up = await request(server.port, 'POST', `${base}?VER=8&SID=${sid}&RID=2&AID=0`, 'count=1&ofs=0&req0__S=hi');
    assert.equal(up.status, 200);
    const old = await request(server.port, 'POST', `${base}/bind?VER=8&SID=${sid}&RID=3&AID=0`, 'count=1&ofs=1&req0__S=there');
    assert.equal(old.status, 200);
    assert.deepEqual(messages, ['hi', 'there']);
    assert.equal(server.sessions.length, 1);
    assert.equal((await request(server.port, 'GET', `${base}x?VER=8`)).body, 'next() reached');
    assert.equal((await request(server.port, 'GET', `${base}/bind/extra?VER=8`)).status, 404);
    await server.close();
  });

  test('an unknown path under base is 404, and without next() unclaimed paths are 404', async () => {
    const middleware = browserChannel(() => {});
    const server = http.createServer(middleware);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    assert.equal((await request(port, 'GET', '/channel/nothing?VER=8')).status, 404);
    assert.equal((await request(port, 'GET', '/elsewhere')).status, 404);
    middleware.close();
    await new Promise((resolve) => server.close(resolve));
  });
});

describe('headers and CORS', () => {
  test('a cors string and user headers reach every response, errors included', async () => {
    const server = await startServer({ cors: 'https://app.example', corsAllowCredentials: true, headers: { 'X-Served-By': 'test' } });
    const responses = [
      await request(server.port, 'GET', '/channel/test?VER=8&MODE=init'),
      await request(server.port, 'GET', '/channel/test?VER=1&MODE=init'),
      (await createSession(server.port)).response,
      await request(server.port, 'POST', '/channel/bind?VER=8&SID=nope&RID=1', 'count=0'),
    ];
    for (const response of responses) {
      assert.equal(response.headers['access-control-allow-origin'], 'https://app.example');
      assert.equal(response.headers['access-control-allow-credentials'], 'true');
      assert.equal(response.headers['x-served-by'], 'test');
      assert.match(response.headers['access-control-expose-headers']!, /X-HTTP-Session-Id/);
    }
    await server.close();
  });

  test('a cors function runs for every response, not only the first test request', async () => {
    let calls = 0;
    const server = await startServer({
      cors: (req) => {
        calls++;
        return req.headers.origin === 'https://good.example' ? 'https://good.example' : 'null';
      },
    });
    const origin = { Origin: 'https://good.example' };
    const init = await request(server.port, 'GET', '/channel/test?VER=8&MODE=init', undefined, origin);
    const create = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1', 'count=0', origin);
    const error = await request(server.port, 'GET', '/channel/bind?VER=8&SID=gone&RID=rpc&TYPE=xmlhttp', undefined, origin);
    for (const response of [init, create, error]) {
      assert.equal(response.headers['access-control-allow-origin'], 'https://good.example');
      assert.equal(response.headers.vary, 'Origin');
    }
    assert.equal(error.status, 400);
    assert.equal(calls, 3);
    await server.close();
  });

  test('OPTIONS preflight gets 204 with methods, the asked headers and a max age', async () => {
    const server = await startServer({ cors: '*' });
    const response = await request(server.port, 'OPTIONS', '/channel/bind?VER=8', undefined, {
      Origin: 'https://app.example',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'x-client-protocol, content-type',
    });
    assert.equal(response.status, 204);
    assert.equal(response.headers['access-control-allow-origin'], '*');
    assert.equal(response.headers['access-control-allow-methods'], 'GET, POST, OPTIONS');
    assert.equal(response.headers['access-control-allow-headers'], 'x-client-protocol, content-type');
    assert.equal(response.headers['access-control-max-age'], '86400');
    const hostile = await request(server.port, 'OPTIONS', '/channel/bind?VER=8', undefined, {
      'Access-Control-Request-Headers': 'x-a, <script>',
    });
    assert.equal(hostile.headers['access-control-allow-headers'], undefined);
    await server.close();
  });

  test('invalid options throw a TypeError naming the option', () => {
    assert.throws(() => browserChannel({ keepAliveInterval: -1 }, () => {}), /keepAliveInterval/);
    assert.throws(() => browserChannel({ cors: 5 as unknown as string }, () => {}), /cors/);
    assert.throws(() => browserChannel({ base: 3 as unknown as string }, () => {}), /base/);
  });

  test('browserChannel(onConnect) alone works, and the server option closes sessions on server close', async () => {
    let connected = 0;
    const server = http.createServer();
    const middleware = browserChannel({ server }, () => connected++);
    server.on('request', middleware);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await createSession(port);
    assert.equal(middleware.sessionCount, 1);
    await new Promise((resolve) => server.close(resolve));
    assert.equal(middleware.sessionCount, 0);
    assert.equal(connected, 1);
    const bare = browserChannel(() => connected++);
    assert.equal(typeof bare, 'function');
    assert.equal(typeof bare.close, 'function');
  });
});
