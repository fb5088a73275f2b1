// Every per-client limit: a clear 4xx or a session closed with a reason that
// names the option, and everyone else unaffected.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, test } from 'node:test';
import type { ServerResponse } from 'node:http';
import type { Session } from '../src/index.ts';
import { createSession, delay, openStream, parseChunks, request, startServer, until } from './helpers.ts';

describe('forward-channel bodies', () => {
  test('a body over maxBodyBytes gets 413 and is not buffered; the session says ["stop"] first and closes naming maxBodyBytes', async () => {
    const seen: unknown[] = [];
    const reasons: Array<string | undefined> = [];
    const server = await startServer({ maxBodyBytes: 1000 }, (session) => {
      session.on('message', (m) => seen.push(m));
      session.on('close', (reason) => reasons.push(reason));
    });
    const { sid } = await createSession(server.port);
    const fine = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=1&ofs=0&req0__S=small');
    assert.equal(fine.status, 200);
    const big = `count=1&ofs=1&req0__S=${'x'.repeat(5000)}`;
    const refused = request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1002`, big);
    // The 413 waits until the ["stop"] has gone down a back channel, so a
    // client that gives up on any failed POST (the Closure one) sees the stop first.
    const answered = await Promise.race([refused.then(() => true), delay(400).then(() => false)]);
    assert.equal(answered, false, 'no 413 before the stop is written');
    const back = await request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`);
    assert.deepEqual((parseChunks(back.body) as Array<Array<[number, unknown]>>).flat().map(([, data]) => data), [['stop']]);
    assert.deepEqual(reasons, ['Body larger than 1000 bytes (maxBodyBytes)']);
    assert.equal((await refused).status, 413);
    assert.match((await refused).body, /maxBodyBytes/);
    assert.deepEqual(seen, ['small']);
    await server.close();
  });

  test('without a Content-Length (chunked), the count while streaming catches a large body too', async () => {
    const server = await startServer({ maxBodyBytes: 1000 });
    const { sid } = await createSession(server.port);
    const back = openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`);
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: `/channel/bind?VER=8&SID=${sid}&RID=1001`,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Transfer-Encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(500));
      req.end();
    });
    assert.equal(chunked, 413);
    assert.match(await back.ended, /\["stop"\]/);
    await server.close();
  });

  test('maxMapsPerRequest and maxKeysPerMap give 400 naming the option', async () => {
    const server = await startServer({ maxMapsPerRequest: 3, maxKeysPerMap: 2 });
    const { sid } = await createSession(server.port);
    const tooMany = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=4&ofs=0');
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body, /maxMapsPerRequest/);
    const tooWide = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=1&ofs=0&req0_a=1&req0_b=2&req0_c=3');
    assert.equal(tooWide.status, 400);
    assert.match(tooWide.body, /maxKeysPerMap/);
    const json = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, JSON.stringify({ ofs: 0, data: [1, 2, 3, 4] }), { 'Content-Type': 'application/json' });
    assert.equal(json.status, 400);
    await server.close();
  });

  test('a body that trickles in is cut off after bodyTimeout with 408', async () => {
    const server = await startServer({ bodyTimeout: 200 });
    const { sid } = await createSession(server.port);
    const started = Date.now();
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(server.port, '127.0.0.1', () => {
        socket.write(`POST /channel/bind?VER=8&SID=${sid}&RID=1001 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ncount=`);
      });
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('close', () => resolve(text));
      setTimeout(() => (socket.destroy(), resolve(text || 'no answer within 3 s')), 3000);
    });
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.match(answer, /bodyTimeout/);
    assert.ok(Date.now() - started < 2000);
    await server.close();
  });
});

describe('what a session holds', () => {
  test('out-of-order requests past maxHeldRequests close the session with a reason naming it', async () => {
    let reason: string | undefined;
    const server = await startServer({ maxHeldRequests: 5 }, (session) => session.on('close', (r) => (reason = r)));
    const { sid } = await createSession(server.port);
    const statuses: number[] = [];
    for (let rid = 1010; rid < 1016; rid++) {
      statuses.push((await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${rid}`, `count=1&ofs=${rid}&req0__S=x`)).status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 400]);
    assert.match(reason!, /maxHeldRequests/);
    const gone = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001`, 'count=0');
    assert.equal(gone.status, 400);
    assert.match(gone.body, /Unknown SID/);
    await server.close();
  });

  test('held bytes past maxHeldBytes close the session, for requests and for maps that skip ahead', async () => {
    const reasons: string[] = [];
    const server = await startServer({ maxHeldBytes: 2000 }, (session) => session.on('close', (r) => reasons.push(r!)));
    const a = await createSession(server.port);
    const body = `count=1&ofs=1&req0__S=${'y'.repeat(900)}`;
    assert.equal((await request(server.port, 'POST', `/channel/bind?VER=8&SID=${a.sid}&RID=1002`, body)).status, 200);
    assert.equal((await request(server.port, 'POST', `/channel/bind?VER=8&SID=${a.sid}&RID=1003`, body)).status, 200);
    assert.equal((await request(server.port, 'POST', `/channel/bind?VER=8&SID=${a.sid}&RID=1004`, body)).status, 400);
    const b = await createSession(server.port);
    // In RID order, but the map ids jump ahead: the maps wait instead.
    for (let rid = 1001; rid <= 1003; rid++) {
      await request(server.port, 'POST', `/channel/bind?VER=8&SID=${b.sid}&RID=${rid}`, `count=1&ofs=${rid * 10}&req0__S=${'z'.repeat(900)}`);
    }
    assert.equal(reasons.length, 2);
    for (const reason of reasons) assert.match(reason, /maxHeldBytes/);
    await server.close();
  });

  test('a client that stops acknowledging is closed past maxBufferedBytes, and callbacks get the reason', async () => {
    let session!: Session;
    const server = await startServer({ maxBufferedBytes: 10_000 }, (s) => (session = s));
    await createSession(server.port);
    const errors: string[] = [];
    let closedWith: string | undefined;
    session.on('close', (reason) => (closedWith = reason));
    let sent = 0;
    while (session.state !== 'closed' && sent < 100) {
      assert.ok(session.bufferedBytes <= 10_000 + 200);
      session.send('m'.repeat(100), (error) => error && errors.push(error.message));
      sent++;
    }
    assert.equal(session.state, 'closed');
    assert.ok(sent > 90 && sent < 100, `closed after ${sent} sends`);
    assert.match(closedWith!, /maxBufferedBytes/);
    await delay(5);
    assert.equal(errors.length, sent);
    assert.match(errors[0]!, /maxBufferedBytes/);
    await server.close();
  });

  test('maxBufferedArrays bounds the count the same way', async () => {
    let session!: Session;
    const server = await startServer({ maxBufferedArrays: 20 }, (s) => (session = s));
    await createSession(server.port);
    for (let i = 0; i < 25 && session.state !== 'closed'; i++) session.send(i);
    assert.equal(session.state, 'closed');
    await server.close();
  });

  test('bufferedBytes falls and drain fires once the client acknowledges', async () => {
    let session!: Session;
    const server = await startServer({}, (s) => (session = s));
    const { sid } = await createSession(server.port);
    let drained = 0;
    session.on('drain', () => drained++);
    session.send({ payload: 'abc' });
    assert.equal(session.bufferedBytes, JSON.stringify(['c', sid, null, 8]).length + '{"payload":"abc"}'.length);
    const poll = await openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`).ended;
    assert.deepEqual(parseChunks(poll), [[[1, { payload: 'abc' }]]]);
    assert.equal(drained, 0);
    await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=1`, 'count=0');
    assert.equal(session.bufferedBytes, 0);
    assert.equal(drained, 1);
    await server.close();
  });

  test('a burst for a client that stops reading stays in the outbox, not in the socket buffer', async () => {
    let session!: Session;
    const responses: ServerResponse[] = [];
    const server = await startServer({ maxBufferedBytes: 64 * 1024 * 1024 }, (s) => (session = s));
    server.server.prependListener('request', (req, res) => {
      if (req.url!.includes('RID=rpc')) responses.push(res);
    });
    const { sid } = await createSession(server.port);
    // A raw socket that sends the request and then never reads.
    const socket = net.connect(server.port, '127.0.0.1');
    socket.write(`GET /channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp HTTP/1.1\r\nHost: x\r\n\r\n`);
    socket.pause();
    await until(() => responses.length === 1);
    const chunk = 'p'.repeat(8 * 1024);
    for (let i = 0; i < 2000; i++) session.send(chunk);
    await delay(100);
    // 16 MB was sent in one tick; the response holds at most about one 64 KB chunk of it.
    assert.ok(session.bufferedBytes > 15_000_000);
    assert.ok(responses[0]!.writableLength < 256 * 1024, `response buffered ${responses[0]!.writableLength} bytes`);
    socket.destroy();
    await server.close();
  });
});

describe('sessions per server', () => {
  test('past maxSessions a create gets 503 with Retry-After, and existing sessions carry on', async () => {
    const server = await startServer({ maxSessions: 2 });
    const first = await createSession(server.port);
    await createSession(server.port);
    const refused = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1', 'count=0');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '5');
    assert.match(refused.body, /maxSessions/);
    assert.equal((await request(server.port, 'POST', `/channel/bind?VER=8&SID=${first.sid}&RID=1001`, 'count=0')).status, 200);
    server.sessions[0]!.close();
    assert.equal((await request(server.port, 'POST', '/channel/bind?VER=8&RID=1', 'count=0')).status, 200);
    await server.close();
  });
});
