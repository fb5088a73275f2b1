// A broadcast is serialised once, however many sessions it reaches, and
// each session still wraps that one text in an array id of its own.
//
// The data object counts its own serialisations through `toJSON()`, which
// `JSON.stringify` calls every time it meets the object: a server that
// stringified per recipient would count 100 here. The sessions are real
// ones over HTTP on 127.0.0.1, each with a streaming back channel open,
// and each has said a different number of things before the broadcast,
// so the broadcast's array id differs from session to session.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type OpenStream, type TestServer, createSession, openStream, parseChunks, startServer,
} from './helpers.ts';

const SESSIONS = 100;
let server: TestServer;

before(async () => {
  // Session k (in the order created) says k % 5 private things first, so
  // its arrays 1 … k % 5 are taken and the broadcast gets id k % 5 + 1.
  server = await startServer({}, (session) => {
    const k = server.sessions.length - 1;
    void session.join('room');
    for (let i = 0; i < k % 5; i++) session.send({ private: i });
  });
});
after(() => server.close());

test('a broadcast to 100 sessions is serialised once, each gets its own array id', async () => {
  const streams: Array<{ stream: OpenStream; expectedId: number }> = [];
  for (let k = 0; k < SESSIONS; k++) {
    const { sid, arrays } = await createSession(server.port);
    // The create answer carried the handshake and the private arrays;
    // the back channel acknowledges them all with its AID.
    const lastId = arrays.at(-1)![0];
    assert.equal(lastId, k % 5);
    const path = `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${lastId}&CI=0&TYPE=xmlhttp`;
    const stream = openStream(server.port, path);
    await stream.response;
    streams.push({ stream, expectedId: lastId + 1 });
  }

  let serialisations = 0;
  const data = {
    toJSON() {
      serialisations++;
      return { t: 'news', text: 'one text for everyone\u2028' };
    },
  };
  server.middleware.to('room').send(data);
  assert.equal(serialisations, 1, 'one JSON.stringify for the whole broadcast');

  for (const { stream, expectedId } of streams) {
    const text = await stream.waitFor((received) => received.includes('one text for everyone'));
    const arrays = (parseChunks(text) as Array<Array<[number, unknown]>>).flat();
    const carrying = arrays.filter(([, payload]) => JSON.stringify(payload).includes('one text'));
    assert.deepEqual(carrying, [[expectedId, { t: 'news', text: 'one text for everyone\u2028' }]]);
    assert.ok(!/[\u2028\u2029]/.test(text), 'the line separator travels escaped');
    stream.destroy();
  }
  assert.equal(serialisations, 1, 'still one after every session has written it');
  const distinctIds = new Set(streams.map((s) => s.expectedId)).size;
  assert.equal(distinctIds, 5, 'the ids really differ between sessions');
});
