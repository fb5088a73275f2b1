// Bad and hostile input: every request below gets a clear 4xx (or a safe
// 200), and the server and the other sessions keep working.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { createSession, delay, openStream, parseChunks, request, startServer, until, type TestServer } from './helpers.ts';

describe('the html transport is safe against injection', () => {
  let server: TestServer;
  let last: Session;
  before(async () => (server = await startServer({}, (session) => (last = session))));
  after(() => server.close());

  test('messages with </script>, <!--, & and U+2028 cannot end the script element', async () => {
    const { sid } = await createSession(server.port);
    const nasty = '</script><script>alert(1)</script><!-- & \u2028 \u2029 "quoted" \\ end';
    last.send(nasty);
    const text = await openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=html`).ended;
    const scripts = text.match(/<script>[\s\S]*?<\/script>/g)!;
    assert.equal(text.split('<script>').length - 1, scripts.length, 'every <script> is the one we opened');
    for (const script of scripts) {
      const body = script.slice('<script>'.length, -'</script>'.length);
      assert.ok(!/[<>&\u2028\u2029]/.test(body), `raw unsafe character in ${body}`);
    }
    // Running the chunk the way the iframe would gives back the original message.
    const received: string[] = [];
    const parent = { m: (s: string) => received.push(s), d: () => received.push('<done>') };
    for (const script of scripts) new Function('parent', script.slice(8, -9))(parent);
    assert.equal(received.at(-1), '<done>');
    assert.deepEqual(JSON.parse(received[0]!), [[1, nasty]]);
  });

  test('a hostname DOMAIN is set inside the document; anything else is refused with 400', async () => {
    const { sid } = await createSession(server.port);
    last.send('x');
    const good = await openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=html&DOMAIN=app.example.com`).ended;
    assert.ok(good.startsWith('<html><body><script>try{document.domain="app.example.com";}catch(e){}</script>'));
    for (const domain of ['"-alert(1)-"', '</script><script>alert(1)//', 'a b', '.example.com', 'x'.repeat(300)]) {
      const path = `/channel/test?VER=8&TYPE=html&DOMAIN=${encodeURIComponent(domain)}`;
      const bad = await request(server.port, 'GET', path);
      assert.equal(bad.status, 400, domain);
      assert.match(bad.body, /DOMAIN must be a hostname/);
      assert.ok(!bad.body.includes('<script>'));
    }
  });
});

describe('malformed requests get a 4xx with a reason', () => {
  let server: TestServer;
  let healthy: { sid: string };
  before(async () => {
    server = await startServer({}, (session) => session.on('message', (m) => session.send(m)));
    healthy = await createSession(server.port);
  });
  after(() => server.close());

  const cases: Array<[string, string, string, number, RegExp]> = [
    ['SID=__proto__', 'GET', '/channel/bind?VER=8&SID=__proto__&RID=rpc&TYPE=xmlhttp&CI=0', 400, /Unknown SID/],
    ['SID=constructor', 'POST', '/channel/bind?VER=8&SID=constructor&RID=1', 400, /Unknown SID/],
    ['SID=hasOwnProperty', 'GET', '/channel/bind?VER=8&SID=hasOwnProperty&RID=1&TYPE=terminate', 400, /Unknown SID/],
    ['empty SID', 'GET', '/channel/bind?VER=8&SID=&RID=rpc&TYPE=xmlhttp', 400, /SID is empty/],
    ['back channel without SID', 'GET', '/channel/bind?VER=8&RID=rpc&TYPE=xmlhttp&CI=0', 400, /needs a SID/],
    ['GET /bind with no TYPE', 'GET', '/channel/bind?VER=8', 400, /needs TYPE/],
    ['GET /bind with an unknown TYPE', 'GET', '/channel/bind?VER=8&TYPE=websocket', 400, /needs TYPE/],
    ['non-numeric RID on create', 'POST', '/channel/bind?VER=8&RID=abc', 400, /RID must be/],
    ['missing RID on create', 'POST', '/channel/bind?VER=8', 400, /RID must be/],
    ['PUT /bind', 'PUT', '/channel/bind?VER=8', 405, /Method not allowed/],
  ];
  for (const [name, method, path, status, reason] of cases) {
    test(`${name} → ${status}`, async () => {
      const response = await request(server.port, method, path, method === 'POST' || method === 'PUT' ? 'count=0' : undefined);
      assert.equal(response.status, status);
      assert.match(response.body, reason);
      assert.match(response.statusMessage, reason);
    });
  }

  test('non-numeric AID, RID and ofs on a live session → 400, and the session still works', async () => {
    const { sid } = await createSession(server.port);
    const bad = [
      await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=x`, 'count=0'),
      await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1e3`, 'count=0'),
      await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=1&ofs=-1&req0__S=a'),
      await request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=NaN&TYPE=xmlhttp`),
      await request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=1&TYPE=xmlhttp`),
    ];
    assert.deepEqual(bad.map((r) => r.status), [400, 400, 400, 400, 400]);
    const good = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=0`, 'count=1&ofs=0&req0__S=fine');
    assert.equal(good.status, 200);
  });

  test('a map key __proto__ stays plain data', async () => {
    const maps: Array<Record<string, string>> = [];
    const local = await startServer({}, (session) => session.on('map', (map) => maps.push(map)));
    await createSession(local.port, '/channel', '', 'count=1&ofs=0&req0___proto__=polluted&req0_ok=1');
    assert.equal(maps.length, 1);
    assert.equal(Object.getPrototypeOf(maps[0]), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(maps[0], '__proto__')?.value, 'polluted');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    await local.close();
  });

  test('HEAD on a back channel gets headers at once and leaves the open stream in place', async () => {
    let session!: Session;
    const local = await startServer({}, (s) => (session = s));
    const { sid } = await createSession(local.port);
    const stream = openStream(local.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=html`);
    try {
      await stream.response;
      for (const tail of ['TYPE=html&CI=0', 'TYPE=html&CI=1', 'TYPE=xmlhttp&CI=0', 'TYPE=xmlhttp&CI=1']) {
        const path = `/channel/bind?VER=8&SID=${sid}&RID=rpc&${tail}`;
        const head = await Promise.race([
          request(local.port, 'HEAD', path),
          delay(2000).then(() => Promise.reject(new Error(`HEAD ${tail} got no answer in 2 s`))),
        ]);
        assert.equal(head.status, 200, tail);
        assert.equal(head.body, '', tail);
        assert.match(String(head.headers['content-type']), tail.includes('html') ? /text\/html/ : /text\/plain/);
      }
      // The buffering-proxy test pauses 2 s between its two bodies; a HEAD has none.
      const test = await Promise.race([
        request(local.port, 'HEAD', '/channel/test?VER=8&TYPE=xmlhttp'),
        delay(1000).then(() => Promise.reject(new Error('HEAD /test got no answer in 1 s'))),
      ]);
      assert.equal(test.status, 200);
      session.send('after the HEADs');
      await stream.waitFor((text) => text.includes('after the HEADs'));
    } finally {
      stream.destroy();
      await local.close();
    }
  });

  test('after all of the above, the first session still echoes', async () => {
    const posted = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${healthy.sid}&RID=1001&AID=0`, 'count=1&ofs=0&req0_JSON=%22still%20here%22');
    assert.equal(posted.status, 200);
    const poll = await openStream(server.port, `/channel/bind?VER=8&SID=${healthy.sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`).ended;
    assert.deepEqual(parseChunks(poll), [[[1, 'still here']]]);
  });
});

describe('exceptions in app code', () => {
  test('a throwing onConnect, message listener or send callback is reported, not fatal', async () => {
    const reported: string[] = [];
    const server = await startServer({}, (session) => {
      session.on('message', (m) => {
        if (m === 'boom') throw new Error('listener boom');
        session.send(m, () => {
          throw new Error('callback boom');
        });
      });
      if (session.query.explode) throw new Error('onConnect boom');
    });
    server.middleware.on('error', (error) => reported.push((error as Error).message));
    const exploded = await createSession(server.port, '/channel', '&explode=1');
    assert.ok(exploded.sid, 'the session was still created');
    const { sid } = await createSession(server.port);
    const posted = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=2&ofs=0&req0__S=boom&req1__S=fine');
    assert.equal(posted.status, 200);
    const poll = await openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`).ended;
    assert.deepEqual(parseChunks(poll), [[[1, 'fine']]], 'the map after the throwing one was still delivered');
    await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1002&AID=1`, 'count=0');
    assert.deepEqual(reported, ['onConnect boom', 'listener boom', 'callback boom']);
    const sessionErrors: unknown[] = [];
    const session = server.sessions.at(-1)!;
    session.on('error', (error) => sessionErrors.push(error));
    await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1003&AID=1`, 'count=1&ofs=2&req0__S=boom');
    assert.equal(sessionErrors.length, 1, 'a session error listener takes precedence');
    assert.equal(reported.length, 3);
    await server.close();
  });

  // The error answer sets the same CORS headers as any answer, so it asks
  // the same `cors` function; once that had thrown, the error page threw
  // too, out of the request handler, and Node ended the process.
  test('a cors function that throws or gives no header value gets a 500, reported', async () => {
    const reported: string[] = [];
    const closed: string[] = [];
    const server = await startServer({
      cors: (req) => {
        if (req.url!.includes('throw')) throw new Error('cors boom');
        if (req.url!.includes('bad')) return 'https://a.example\r\nX-Injected: 1';
        return 'https://app.example';
      },
    }, (session) => session.on('close', (reason) => closed.push(reason)));
    server.middleware.on('error', (error) => reported.push((error as Error).message));
    const fastHandshake = '/channel/bind?VER=8&RID=1&CVER=22&SID=null&$req=count%3D0';
    for (const how of ['throw', 'bad']) {
      const create = await request(server.port, 'POST', `/channel/bind?VER=8&RID=1&${how}=1`,
        'count=0');
      assert.equal(create.status, 500, how);
      assert.equal(create.headers['x-injected'], undefined);
      assert.equal((await request(server.port, 'GET', `${fastHandshake}&${how}=1`)).status, 500);
      assert.equal((await request(server.port, 'GET', `/channel/test?VER=8&MODE=init&${how}=1`))
        .status, 500);
      assert.equal((await request(server.port, 'GET', `/channel/nope?${how}=1`)).status, 404);
    }
    assert.equal(reported.filter((message) => message === 'cors boom').length, 4);
    assert.equal(reported.length, 8);
    // The sessions those handshakes were for ended at once.
    assert.deepEqual(closed, Array(4).fill('Handshake not sent'));
    assert.equal(server.middleware.sessionCount, 0);
    const fine = await createSession(server.port);
    assert.equal(fine.response.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(server.middleware.sessionCount, 1);
    await server.close();
  });

  test('an error listener that throws is reported to the server, once', async () => {
    const reported: string[] = [];
    const server = await startServer({}, (session) => {
      session.on('error', () => {
        throw new Error('error listener boom');
      });
      session.on('message', () => {
        throw new Error('listener boom');
      });
    });
    server.middleware.on('error', (error) => reported.push((error as Error).message));
    const { sid } = await createSession(server.port);
    const posted = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`,
      'count=2&ofs=0&req0__S=a&req1__S=b');
    assert.equal(posted.status, 200);
    assert.deepEqual(reported, ['error listener boom', 'error listener boom']);
    await server.close();
  });

  // Each of these would be an unhandled rejection, which ends a Node
  // process (and this test file with it), if it were not caught.
  test('async ones that reject are reported the same way, and the server runs on', async () => {
    const reported: string[] = [];
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    const server = await startServer({}, async (session) => {
      session.on('message', async (m) => {
        await tick();
        if (m === 'boom') throw new Error('async listener boom');
        session.send(m, async () => {
          await tick();
          throw new Error('async callback boom');
        });
      });
      session.on('close', async () => {
        throw new Error('async close listener boom');
      });
      await tick();
      if (session.query.explode) throw new Error('async onConnect boom');
    });
    server.middleware.on('error', (error) => reported.push((error as Error).message));
    server.middleware.on('session', async () => {
      throw new Error('async session listener boom');
    });
    await createSession(server.port, '/channel', '&explode=1');
    const { sid } = await createSession(server.port);
    await until(() => reported.length === 3, 2000, 'three reports');
    assert.deepEqual(reported.sort(), ['async onConnect boom', 'async session listener boom',
      'async session listener boom']);
    reported.length = 0;
    const posted = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`,
      'count=2&ofs=0&req0__S=boom&req1__S=fine');
    assert.equal(posted.status, 200);
    const poll = await openStream(server.port,
      `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`).ended;
    assert.deepEqual(parseChunks(poll), [[[1, 'fine']]]);
    await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1002&AID=1`, 'count=0');
    await until(() => reported.length === 2, 2000, 'two more reports');
    assert.deepEqual(reported, ['async listener boom', 'async callback boom']);
    // A session's own error listener hears its listeners' rejections; one
    // that rejects itself goes to the server's, not round again.
    const session = server.sessions.at(-1)!;
    const heard: string[] = [];
    session.on('error', async (error) => {
      heard.push((error as Error).message);
      throw new Error('async error listener boom');
    });
    await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1003&AID=1`,
      'count=1&ofs=2&req0__S=boom');
    await until(() => reported.length === 3, 2000, 'the error listener\'s own failure');
    assert.deepEqual(heard, ['async listener boom']);
    assert.equal(reported[2], 'async error listener boom');
    session.close();
    await until(() => reported.length === 4, 2000, 'the close listener\'s failure');
    assert.deepEqual(heard, ['async listener boom', 'async close listener boom']);
    assert.equal(reported[3], 'async error listener boom');
    await server.close();
  });
});
