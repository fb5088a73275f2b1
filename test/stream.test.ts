// sessionStream over raw HTTP: messages in, writes out, write callbacks
// that wait for acknowledgements, and ending from either side.
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { type SessionStreamOptions, sessionStream } from '../src/index.ts';
import { createSession, openStream, parseChunks, request, startServer, until } from './helpers.ts';

async function setup(options: SessionStreamOptions = {}) {
  const streams: Duplex[] = [];
  const reasons: Array<string | undefined> = [];
  const server = await startServer({}, (session) => {
    streams.push(sessionStream(session, options));
    session.on('close', (reason) => reasons.push(reason));
  });
  const { sid } = await createSession(server.port);
  const stream = streams[0]!;
  const chunks: unknown[] = [];
  stream.on('data', (chunk) => chunks.push(chunk));
  const post = (rid: number, body: string, aid = 0) => request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${rid}&AID=${aid}`, body);
  const back = (aid: number) => request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${aid}&CI=1&TYPE=xmlhttp`);
  return { server, sid, stream, chunks, reasons, post, back };
}

describe('sessionStream', () => {
  test('messages become chunks: JSON text parsed, objects as sent, null dropped', async () => {
    const { server, chunks, post } = await setup();
    await post(1001, `count=3&ofs=0&req0__S=${encodeURIComponent('{"a":"op","v":1}')}&req1_JSON=${encodeURIComponent('{"b":2}')}&req2_JSON=null`);
    assert.deepEqual(chunks, [{ a: 'op', v: 1 }, { b: 2 }]);
    await server.close();
  });

  test('a message that is not JSON text closes the session, saying why', async () => {
    const { server, reasons, post } = await setup();
    await post(1001, 'count=1&ofs=0&req0__S=not%20json');
    assert.equal(reasons.length, 1);
    assert.match(reasons[0]!, /^Undecodable message: /);
    await server.close();
  });

  test('writes go down as arrays; over highWaterBytes a write waits for the acknowledgement', async () => {
    const { server, stream, back } = await setup({ highWaterBytes: 100 });
    let small = false;
    let large = false;
    stream.write({ n: 1 }, () => (small = true));
    stream.write({ text: 'x'.repeat(200) }, () => (large = true));
    await until(() => small, 1000, 'the small write');
    const first = await back(0);
    assert.deepEqual((parseChunks(first.body) as Array<Array<[number, unknown]>>).flat().map(([, data]) => data), [{ n: 1 }, { text: 'x'.repeat(200) }]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(large, false, 'sent but not acknowledged: the callback waits');
    // The next request acknowledges array 2: the session drains.
    const pending = back(2);
    await until(() => large, 1000, 'the large write after the ack');
    stream.end();
    await pending;
    await server.close();
  });

  test('a session that closes ends the stream (end and close) and releases waiting writes', async () => {
    const { server, stream, sid } = await setup({ highWaterBytes: 10 });
    const events: string[] = [];
    stream.on('end', () => events.push('end'));
    stream.on('close', () => events.push('close'));
    let released = false;
    stream.write({ text: 'more than ten characters' }, () => (released = true));
    server.sessions.find((s) => s.id === sid)!.close('gone');
    await until(() => events.includes('close'), 1000, 'close');
    assert.deepEqual(events, ['end', 'close']);
    assert.equal(released, true);
    stream.write({ after: 'close' });
    await server.close();
  });

  test('ending the stream tells the client ["stop"] and then closes the session', async () => {
    const { server, stream, sid, reasons } = await setup();
    const back = openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`);
    stream.end();
    assert.match(await back.ended, /\["stop"\]/);
    await until(() => reasons.length === 1, 1000, 'the session to close');
    assert.deepEqual(reasons, ['Stream ended']);
    await until(() => stream.destroyed, 1000, 'the stream to be destroyed');
    await server.close();
  });

  test('past maxQueuedWrites waiting writes, the session closes naming the option', async () => {
    const { server, stream, reasons } = await setup({ highWaterBytes: 10, maxQueuedWrites: 5 });
    for (let i = 0; i < 10; i++) stream.write({ i, text: 'more than ten characters' });
    await until(() => reasons.length === 1, 1000, 'the session to close');
    assert.deepEqual(reasons, ['Stream queue over 5 writes (maxQueuedWrites)']);
    await server.close();
  });
});
