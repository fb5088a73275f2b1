// /bind over raw HTTP: session creation, the forward channel, the back
// channel, acknowledgements, timers and endings.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { createSession, delay, openStream, parseChunks, request, startServer, until, type TestServer } from './helpers.ts';

describe('session creation', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({}, (session) => {
      if (session.query.greet) session.send({ hello: session.query.greet });
      if (session.query.deny) session.close('denied');
    });
  });
  after(() => server.close());

  test('POST /bind without SID answers the handshake as one length-prefixed chunk', async () => {
    const response = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1000&CVER=7', 'count=0');
    assert.equal(response.status, 200);
    const sid = server.sessions.at(-1)!.id;
    const json = `[[0,["c","${sid}",null,8]]]\n`;
    assert.equal(response.body, `${json.length}\n${json}`);
    assert.match(response.headers['content-type']!, /^text\/plain/);
    assert.equal(response.headers['cache-control'], 'no-cache, no-store, max-age=0, must-revalidate');
    assert.equal(response.headers['x-content-type-options'], 'nosniff');
  });

  test('the session carries id, address, headers, query, appVersion and state', async () => {
    const { sid } = await createSession(server.port, '/channel', '&extra=1');
    const session = server.sessions.find((s) => s.id === sid)!;
    assert.equal(session.address, '127.0.0.1');
    assert.equal(session.query.extra, '1');
    assert.equal(session.appVersion, '7');
    assert.equal(session.headers.host, `127.0.0.1:${server.port}`);
    assert.equal(session.state, 'ok');
  });

  test('session.query decodes like a URL: %-escapes, + as space, first value wins, no prototype, bad escapes kept', async () => {
    const { sid } = await createSession(server.port, '/channel', '&name=J%C3%BCrgen+M&dup=first&dup=second&__proto__=x&bad=%E0%A4%A&flag&=nameless');
    const session = server.sessions.find((s) => s.id === sid)!;
    assert.equal(session.query.name, 'Jürgen M');
    assert.equal(session.query.dup, 'first');
    assert.equal(session.query.__proto__, 'x');
    assert.equal(Object.getPrototypeOf(session.query), null);
    assert.equal(session.query.bad, '%E0%A4%A');
    assert.equal(session.query.flag, '');
    assert.equal('' in session.query, false);
    assert.equal(session.query.VER, '8');
    assert.equal(session.query, session.query, 'parsed once, the same object every time');
  });

  test('session.headers keeps every request header value, credentials included, across many distinct values', async () => {
    for (let i = 0; i < 1100; i += 100) {
      const headers = { 'X-Seq': `value-${i}`, Cookie: `token=${i}`, 'Accept-Language': 'de-CH, en;q=0.5' };
      const response = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1000', 'count=0', headers);
      const sid = /"c","([^"]+)"/.exec(response.body)![1]!;
      const session = server.sessions.find((s) => s.id === sid)!;
      assert.equal(session.headers['x-seq'], `value-${i}`);
      assert.equal(session.headers.cookie, `token=${i}`);
      assert.equal(session.headers['accept-language'], 'de-CH, en;q=0.5');
    }
  });

  test('session ids are 128-bit URL-safe base64 and distinct', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) ids.add((await createSession(server.port)).sid);
    assert.equal(ids.size, 20);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  });

  test('data sent inside onConnect rides in the handshake chunk', async () => {
    const { arrays } = await createSession(server.port, '/channel', '&greet=bob');
    assert.deepEqual(arrays[1], [1, { hello: 'bob' }]);
    assert.equal(arrays.length, 2);
  });

  test('maps in the creating POST are delivered after onConnect', async () => {
    const seen: unknown[] = [];
    const local = await startServer({}, (session) => session.on('message', (m) => seen.push(m)));
    await createSession(local.port, '/channel', '', 'count=2&ofs=0&req0_JSON=%5B1%5D&req1__S=two');
    assert.deepEqual(seen, [[1], 'two']);
    await local.close();
  });

  test('close() inside onConnect answers the creating POST with 403', async () => {
    const response = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&deny=1', 'count=0');
    assert.equal(response.status, 403);
    assert.equal(server.middleware.sessionCount, server.sessions.filter((s) => s.state !== 'closed').length);
  });

  test('a bad body on create gives 400 and creates no session', async () => {
    const before = server.sessions.length;
    const response = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1', 'count=abc');
    assert.equal(response.status, 400);
    assert.match(response.body, /count must be a non-negative integer/);
    assert.equal(server.sessions.length, before);
  });
});

describe('forward channel', () => {
  let server: TestServer;
  const received = new Map<string, Array<{ event: string; value: unknown }>>();
  before(async () => {
    server = await startServer({}, (session) => {
      const log: Array<{ event: string; value: unknown }> = [];
      received.set(session.id, log);
      session.on('map', (map) => log.push({ event: 'map', value: { ...map } }));
      session.on('message', (message) => log.push({ event: 'message', value: message }));
    });
  });
  after(() => server.close());

  const post = (sid: string, rid: number, body: string, type = 'application/x-www-form-urlencoded') =>
    request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${rid}&AID=0`, body, { 'Content-Type': type });
  const messages = (sid: string) => received.get(sid)!.filter((e) => e.event === 'message').map((e) => e.value);

  test('JSON, _S and __data__ maps become messages; every map is a map event', async () => {
    const { sid } = await createSession(server.port);
    const body = 'count=4&ofs=0&req0_JSON=%7B%22a%22%3A1%7D&req1__S=hi&req2___data__=%5B2%5D&req3_x=3&req3_y=why';
    const response = await post(sid, 1001, body);
    assert.equal(response.status, 200);
    assert.deepEqual(parseChunks(response.body), [[0, 0, 0]]);
    assert.deepEqual(received.get(sid), [
      { event: 'map', value: { JSON: '{"a":1}' } },
      { event: 'message', value: { a: 1 } },
      { event: 'map', value: { _S: 'hi' } },
      { event: 'message', value: 'hi' },
      { event: 'map', value: { __data__: '[2]' } },
      { event: 'message', value: [2] },
      { event: 'map', value: { x: '3', y: 'why' } },
    ]);
  });

  test('requests arriving out of RID order are delivered in order', async () => {
    const { sid } = await createSession(server.port);
    await post(sid, 1002, 'count=1&ofs=1&req0__S=second');
    assert.deepEqual(messages(sid), []);
    await post(sid, 1001, 'count=1&ofs=0&req0__S=first');
    assert.deepEqual(messages(sid), ['first', 'second']);
  });

  test('a retried request is delivered once, and the extra maps it carries are delivered', async () => {
    const { sid } = await createSession(server.port);
    await post(sid, 1001, 'count=1&ofs=0&req0__S=a');
    await post(sid, 1001, 'count=1&ofs=0&req0__S=a');
    await post(sid, 1001, 'count=2&ofs=0&req0__S=a&req1__S=b');
    assert.deepEqual(messages(sid), ['a', 'b']);
  });

  test('a _badmap is skipped but keeps its id', async () => {
    const { sid } = await createSession(server.port);
    await post(sid, 1001, 'count=2&ofs=0&req0_type=_badmap&req1__S=after');
    await post(sid, 1002, 'count=1&ofs=2&req0__S=next');
    assert.deepEqual(messages(sid), ['after', 'next']);
    assert.equal(received.get(sid)!.filter((e) => e.event === 'map').length, 2);
  });

  test('JSON bodies, with or without a charset, share map ids with form bodies', async () => {
    const { sid } = await createSession(server.port);
    await post(sid, 1001, JSON.stringify({ ofs: 0, data: [{ j: 1 }, 'two'] }), 'application/json; charset=utf-8');
    await post(sid, 1002, 'count=1&ofs=1&req0__S=duplicate-of-1');
    await post(sid, 1003, 'count=1&ofs=2&req0__S=three');
    await post(sid, 1004, JSON.stringify({ ofs: 3, data: [4] }), 'application/json');
    assert.deepEqual(messages(sid), [{ j: 1 }, 'two', 'three', 4]);
    assert.equal(received.get(sid)!.filter((e) => e.event === 'map').length, 1);
  });

  test('out-of-order JSON bodies are delivered in order with their own values', async () => {
    const { sid } = await createSession(server.port);
    await post(sid, 1002, JSON.stringify({ ofs: 2, data: ['c', 'd'] }), 'application/json');
    await post(sid, 1001, JSON.stringify({ ofs: 0, data: ['a', 'b'] }), 'application/json');
    assert.deepEqual(messages(sid), ['a', 'b', 'c', 'd']);
  });

  const badBodies: Array<[string, string, string, RegExp]> = [
    ['NaN count', 'count=x&ofs=0', 'application/x-www-form-urlencoded', /count must be/],
    ['missing ofs', 'count=1&req0__S=a', 'application/x-www-form-urlencoded', /ofs must be/],
    ['map index outside count', 'count=1&ofs=0&req5__S=a', 'application/x-www-form-urlencoded', /outside count/],
    ['bad JSON in a map', 'count=1&ofs=0&req0_JSON=%7B', 'application/x-www-form-urlencoded', /not valid JSON/],
    ['count above the limit', 'count=1001&ofs=0', 'application/x-www-form-urlencoded', /count is above 1000/],
    ['unparseable JSON body', '{"ofs":', 'application/json', /body is not valid JSON/],
    ['JSON body without data', '{"ofs":0}', 'application/json', /needs a data array/],
    ['JSON body null', 'null', 'application/json', /must be an object \{ofs, data\}/],
    ['JSON body an array', '[{"a":1}]', 'application/json', /must be an object \{ofs, data\}/],
    ['JSON body a number', '42', 'application/json; charset=utf-8', /must be an object \{ofs, data\}/],
    ['JSON body a string', '"hi"', 'application/json', /must be an object \{ofs, data\}/],
    ['JSON body without ofs', '{"data":[1]}', 'application/json', /ofs must be/],
    ['JSON body with empty data and no ofs', '{"data":[]}', 'application/json', /ofs must be/],
    ['JSON body with data not an array', '{"ofs":0,"data":"x"}', 'application/json', /needs a data array/],
  ];
  for (const [name, body, type, reason] of badBodies) {
    test(`bad body (${name}) gives 400 with a reason; the session survives and a retry works`, async () => {
      const { sid } = await createSession(server.port);
      const bad = await post(sid, 1001, body, type);
      assert.equal(bad.status, 400);
      assert.match(bad.body, reason);
      const good = await post(sid, 1001, 'count=1&ofs=0&req0__S=ok');
      assert.equal(good.status, 200);
      assert.deepEqual(messages(sid), ['ok']);
    });
  }

  test('a JSON body null is refused before it uses up its RID: a JSON retry with the same RID delivers', async () => {
    const { sid } = await createSession(server.port);
    const bad = await post(sid, 1001, 'null', 'application/json');
    assert.equal(bad.status, 400);
    assert.match(bad.statusMessage, /JSON body must be an object/);
    const good = await post(sid, 1001, JSON.stringify({ ofs: 0, data: ['ok'] }), 'application/json');
    assert.equal(good.status, 200);
    const next = await post(sid, 1002, JSON.stringify({ ofs: 1, data: ['next'] }), 'application/json');
    assert.equal(next.status, 200);
    assert.deepEqual(messages(sid), ['ok', 'next']);
  });

  test('count=0 posts answer the back-channel status: none open, last sent id, outstanding bytes', async () => {
    const { sid } = await createSession(server.port);
    const unacked = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=0');
    assert.equal(unacked.body, `${`[0,0,${JSON.stringify(['c', sid, null, 8]).length}]`.length}\n[0,0,${JSON.stringify(['c', sid, null, 8]).length}]`);
    const acked = await post(sid, 1002, 'count=0');
    assert.equal(acked.body, '7\n[0,0,0]');
  });
});

describe('back channel', () => {
  let server: TestServer;
  let last: Session;
  before(async () => {
    server = await startServer({ keepAliveInterval: 150 }, (session) => {
      last = session;
      session.on('message', (m) => session.send({ echo: m }));
    });
  });
  after(() => server.close());
  const bindPath = (sid: string, extra: string) => `/channel/bind?VER=8&SID=${sid}&RID=rpc${extra}`;

  test('CI=1 ends after one chunk; CI=0 keeps streaming', async () => {
    const { sid } = await createSession(server.port);
    const session = last;
    const poll = openStream(server.port, bindPath(sid, '&AID=0&CI=1&TYPE=xmlhttp'));
    session.send('one');
    assert.deepEqual(parseChunks(await poll.ended), [[[1, 'one']]]);
    const stream = openStream(server.port, bindPath(sid, '&AID=1&CI=0&TYPE=xmlhttp'));
    await (await stream.response, delay(20));
    session.send('two');
    await stream.waitFor((t) => t.includes('two'));
    session.send('three');
    await stream.waitFor((t) => t.includes('three'));
    assert.deepEqual(parseChunks(stream.text()), [[[2, 'two']], [[3, 'three']]]);
    stream.destroy();
  });

  test('unacknowledged arrays are resent on a new back channel with an older AID', async () => {
    const { sid } = await createSession(server.port);
    const session = last;
    const first = openStream(server.port, bindPath(sid, '&AID=0&CI=0&TYPE=xmlhttp'));
    await first.response;
    session.send('a');
    session.send('b');
    await first.waitFor((t) => t.includes('"b"'));
    // The client got only 'a' (AID=1): 'b' must come again, and the old channel ends.
    const second = openStream(server.port, bindPath(sid, '&AID=1&CI=0&TYPE=xmlhttp'));
    await second.waitFor((t) => t.length > 0);
    assert.deepEqual(parseChunks(second.text()), [[[2, 'b']]]);
    await first.ended;
    second.destroy();
  });

  test('acknowledgement fires send callbacks once; closing fails the rest with the reason', async () => {
    const { sid } = await createSession(server.port);
    const session = last;
    const results: Array<string> = [];
    session.send('x', (error) => results.push(error ? `x:${error.message}` : 'x:acked'));
    session.send('y', (error) => results.push(error ? `y:${error.message}` : 'y:acked'));
    const poll = openStream(server.port, bindPath(sid, '&AID=0&CI=1&TYPE=xmlhttp'));
    await poll.ended;
    assert.deepEqual(results.slice(), []);
    await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=1`, 'count=0');
    assert.deepEqual(results.slice(), ['x:acked']);
    session.close('bye');
    await delay(5);
    assert.deepEqual(results.slice(), ['x:acked', 'y:bye']);
    session.send('z', (error) => results.push(`z:${error?.message}`));
    await delay(5);
    assert.deepEqual(results.slice(), ['x:acked', 'y:bye', 'z:closed']);
  });

  test('the forward answer reports an open back channel, the last sent id and outstanding bytes', async () => {
    const { sid } = await createSession(server.port);
    const session = last;
    const stream = openStream(server.port, bindPath(sid, '&AID=0&CI=0&TYPE=xmlhttp'));
    await stream.response;
    session.send({ k: 'v' });
    await stream.waitFor((t) => t.includes('"k"'));
    const response = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=0`, 'count=0');
    assert.deepEqual(parseChunks(response.body), [[1, 1, '{"k":"v"}'.length]]);
    stream.destroy();
  });

  test('a streaming back channel is recycled after about 128 KB and nothing is lost', async () => {
    const { sid } = await createSession(server.port);
    const session = last;
    const big = 'x'.repeat(50_000);
    const stream = openStream(server.port, bindPath(sid, '&AID=0&CI=0&TYPE=xmlhttp'));
    await stream.response;
    for (let i = 0; i < 4; i++) {
      session.send([i, big]);
      await delay(10);
    }
    const text = await stream.ended;
    const ids = (parseChunks(text) as Array<Array<[number]>>).flat().map(([id]) => id);
    assert.deepEqual(ids, [1, 2, 3], 'ended after passing 128 KB');
    const next = openStream(server.port, bindPath(sid, '&AID=3&CI=0&TYPE=xmlhttp'));
    await next.waitFor((t) => t.includes('"x'));
    assert.deepEqual((parseChunks(next.text()) as Array<Array<[number]>>).flat().map(([id]) => id), [4]);
    next.destroy();
  });

  test('heartbeats ["noop"] flow every keepAliveInterval while a back channel is open', async () => {
    const { sid } = await createSession(server.port);
    const stream = openStream(server.port, bindPath(sid, '&AID=0&CI=0&TYPE=xmlhttp'));
    await stream.waitFor((t) => (t.match(/noop/g) ?? []).length >= 2, 2000);
    assert.deepEqual(parseChunks(stream.text()).slice(0, 2), [[[1, ['noop']]], [[2, ['noop']]]]);
    stream.destroy();
  });

  test('a new back channel ends the old one', async () => {
    const { sid } = await createSession(server.port);
    const first = openStream(server.port, bindPath(sid, '&AID=0&CI=0&TYPE=xmlhttp'));
    await first.response;
    const second = openStream(server.port, bindPath(sid, '&AID=0&CI=0&TYPE=xmlhttp'));
    await second.response;
    await first.ended;
    second.destroy();
  });

  test('stop() sends ["stop"] and calls back once it is written', async () => {
    const { sid } = await createSession(server.port);
    const session = last;
    let stopped = false;
    session.stop(() => (stopped = true));
    const poll = openStream(server.port, bindPath(sid, '&AID=0&CI=1&TYPE=xmlhttp'));
    assert.deepEqual(parseChunks(await poll.ended), [[[1, ['stop']]]]);
    await until(() => stopped);
    assert.equal(session.state, 'ok', 'stop does not close the session');
  });

  test('U+2028 and U+2029 never travel raw, and lengths count UTF-16 code units', async () => {
    const { sid } = await createSession(server.port);
    const session = last;
    session.send('a\u2028b\u2029c😀é');
    const poll = openStream(server.port, bindPath(sid, '&AID=0&CI=1&TYPE=xmlhttp'));
    const text = await poll.ended;
    assert.ok(!/[\u2028\u2029]/.test(text));
    assert.ok(text.includes('\\u2028'));
    assert.deepEqual(parseChunks(text), [[[1, 'a\u2028b\u2029c😀é']]]);
  });

  // Past 32K characters a chunk is encoded straight into a Buffer
  // (`encoding.ts`); its prefix must still count UTF-16 code units, and
  // multi-byte characters must survive, on both ways a chunk is written.
  for (const [name, ci] of [['a long poll', 1], ['a streaming back channel', 0]] as const) {
    test(`a big backlog on ${name} arrives whole, its length in UTF-16 units`, async () => {
      const { sid } = await createSession(server.port);
      const session = last;
      const sent = Array.from({ length: 60 }, (_, i) => `${i}:${'é😀\u2028x'.repeat(200)}`);
      for (const text of sent) session.send(text);
      const poll = openStream(server.port, bindPath(sid, `&AID=0&CI=${ci}&TYPE=xmlhttp`));
      // A long poll ends after its chunk; a streaming one stays open (it
      // has carried less than 128 KB), so it is read until the chunk is in.
      const whole = (t: string): boolean => {
        try {
          return (parseChunks(t) as unknown[][]).flat().length >= sent.length;
        } catch {
          return false;
        }
      };
      const text = ci === 1 ? await poll.ended : (await poll.waitFor(whole), poll.text());
      poll.destroy();
      const [chunk, ...rest] = parseChunks(text) as Array<Array<[number, string]>>;
      assert.deepEqual(rest, [], 'one chunk');
      assert.ok(text.length > 32 * 1024 + 1000, `big enough for the Buffer path: ${text.length}`);
      assert.deepEqual(chunk, sent.map((payload, i) => [i + 1, payload]));
      assert.ok(!/[\u2028\u2029]/.test(text));
    });
  }
});

// A big payload of the session's own is kept, once a Buffer chunk has
// carried it, as that chunk's bytes (`outbox.ts`). A resend decodes them,
// and every count still reads in UTF-16 units.
test('big own sends kept as bytes after writing are resent whole and counted exactly', async () => {
  let session!: Session;
  const server = await startServer({}, (s) => (session = s));
  try {
    const { sid } = await createSession(server.port);
    const sent = Array.from({ length: 60 }, (_, i) => `${i}:${'é😀\u2028x'.repeat(200)}`);
    for (const text of sent) session.send(text);
    session.sendJson(JSON.stringify('x'.repeat(2000))); // a broadcast's text: stays a string
    const expected = sent.map((payload, i) => [i + 1, payload]);
    const path = `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`;
    const first = openStream(server.port, path);
    await first.waitFor((text) => text.length > 60 * 1000);
    const kept = (session as unknown as { outbox: { texts: object[] } }).outbox.texts;
    assert.equal(kept.filter((entry) => entry.constructor.name === 'Written').length, 60);
    assert.equal(typeof kept[60], 'string');
    const chars = sent.reduce((sum, text) => sum + JSON.stringify(text).replace(/\u2028/g, '\\u2028').length, 0);
    assert.equal(session.bufferedBytes, chars + 2002);
    first.destroy();
    // Nothing acknowledged: the next back channel carries all of it again, decoded from the bytes.
    const again = await openStream(server.port, path.replace('CI=0', 'CI=1')).ended;
    const arrays = (parseChunks(again) as Array<Array<[number, string]>>).flat();
    assert.deepEqual(arrays.slice(0, 60), expected);
    const status = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=30`, 'count=0');
    const outstanding = sent.slice(30).reduce((sum, text) => sum + JSON.stringify(text).replace(/\u2028/g, '\\u2028').length, 0);
    assert.deepEqual(parseChunks(status.body), [[0, 61, outstanding + 2002]]);
    assert.equal(session.bufferedBytes, outstanding + 2002);
  } finally {
    await server.close();
  }
});

describe('timers and endings', () => {
  let server: TestServer;
  const closes = new Map<string, string | undefined>();
  before(async () => {
    server = await startServer({ sessionTimeoutInterval: 200, keepAliveInterval: 1000 }, (session) => {
      session.on('close', (reason) => closes.set(session.id, reason));
    });
  });
  after(() => server.close());

  test('a session with no back channel times out; one with a back channel does not', async () => {
    const idle = await createSession(server.port);
    const held = await createSession(server.port);
    const stream = openStream(server.port, `/channel/bind?VER=8&SID=${held.sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`);
    await stream.response;
    await delay(400);
    assert.equal(closes.get(idle.sid), 'Timed out');
    assert.equal(closes.has(held.sid), false);
    stream.destroy();
    await until(() => closes.get(held.sid) === 'Timed out', 2000, 'timeout after the back channel went away');
    const gone = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${idle.sid}&RID=1001`, 'count=0');
    assert.equal(gone.status, 400);
    assert.ok(gone.body.indexOf('Unknown SID') > 0, 'Unknown SID must sit past index 0');
  });

  test('a long poll answered at once starts the idle countdown over', async () => {
    const { sid } = await createSession(server.port);
    const session = server.sessions.find((s) => s.id === sid)!;
    for (let i = 0; i < 6; i++) {
      session.send(['tick', i]);
      const poll = await request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${i}&CI=1&TYPE=xmlhttp`);
      assert.deepEqual(parseChunks(poll.body).flat().at(-1), [i + 1, ['tick', i]]);
      await delay(100);
    }
    assert.equal(closes.has(sid), false, 'alive after 600 ms of polls with a 200 ms timeout');
    await until(() => closes.get(sid) === 'Timed out', 1000, 'timeout once the polls stop');
  });

  test('idle sessions time out in the order they went idle, each near its own deadline', async () => {
    const created: [string, number][] = [];
    for (let i = 0; i < 3; i++) {
      created.push([(await createSession(server.port)).sid, performance.now()]);
      await delay(80);
    }
    const closedAt = new Map<string, number>();
    await until(() => {
      for (const [sid] of created) if (closes.has(sid) && !closedAt.has(sid)) closedAt.set(sid, performance.now());
      return closedAt.size === created.length;
    }, 2000, 'all three time out');
    for (const [sid, at] of created) {
      const waited = closedAt.get(sid)! - at;
      assert.ok(waited >= 190 && waited < 450, `timed out after ${waited.toFixed(0)} ms, expected about 200`);
    }
    const order = [...closedAt.keys()];
    assert.deepEqual(order, created.map(([sid]) => sid));
  });

  test('TYPE=terminate closes with Disconnected only after earlier RIDs are handled', async () => {
    const seen: unknown[] = [];
    const { sid } = await createSession(server.port);
    server.sessions.find((s) => s.id === sid)!.on('message', (m) => seen.push(m));
    const bye = await request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=1002&TYPE=terminate`);
    assert.equal(bye.status, 200);
    assert.equal(closes.has(sid), false, 'RID 1001 has not arrived yet');
    await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=1&ofs=0&req0__S=last words');
    assert.deepEqual(seen, ['last words']);
    assert.equal(closes.get(sid), 'Disconnected');
  });

  test('terminate by sendBeacon: an empty POST with TYPE=terminate closes the session', async () => {
    const { sid } = await createSession(server.port);
    const bye = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&TYPE=terminate`, '', { 'Content-Type': 'text/plain' });
    assert.equal(bye.status, 200);
    assert.equal(closes.get(sid), 'Disconnected');
  });

  test('OSID/OAID: the old session is acknowledged to OAID and closed as Reconnected before the new onConnect', async () => {
    const order: string[] = [];
    const local = await startServer({}, (session) => {
      order.push(`connect:${session.query.OSID ? 'new' : 'old'}`);
      session.on('close', (reason) => order.push(`close:${reason}`));
    });
    const { sid } = await createSession(local.port);
    const old = local.sessions[0]!;
    const acks: string[] = [];
    old.send('unseen', (error) => acks.push(error ? error.message : 'acked'));
    old.send('seen-not', (error) => acks.push(error ? error.message : 'acked'));
    const poll = openStream(local.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`);
    await poll.ended;
    await createSession(local.port, '/channel', `&OSID=${sid}&OAID=1`);
    assert.deepEqual(order, ['connect:old', 'close:Reconnected', 'connect:new']);
    await delay(5);
    assert.deepEqual(acks, ['acked', 'Reconnected']);
    await local.close();
  });

  test('middleware.close() closes every session', async () => {
    const local = await startServer();
    await createSession(local.port);
    await createSession(local.port);
    assert.equal(local.middleware.sessionCount, 2);
    local.middleware.close();
    assert.equal(local.middleware.sessionCount, 0);
    assert.deepEqual(local.sessions.map((s) => s.state), ['closed', 'closed']);
    await local.close();
  });

  test('state changed fires init → ok → closed', async () => {
    const transitions: string[] = [];
    const local = await startServer({}, (session) => session.on('state changed', (now, was) => transitions.push(`${was}->${now}`)));
    await createSession(local.port);
    local.middleware.close();
    assert.deepEqual(transitions, ['init->ok', 'ok->closed']);
    await local.close();
  });
});
