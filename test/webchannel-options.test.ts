// Every WebChannel client option that needs the server's cooperation, driven
// by the real client from @firebase/webchannel-wrapper, plus raw-HTTP checks
// of the wire details behind each.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import browserChannel, { type Session } from '../src/index.ts';
import { createSession, delay, openStream, parseChunks, request, startServer, until, type TestServer } from './helpers.ts';
import { openWebChannel, type WebChannel } from './webchannel-client.ts';

// navigator.sendBeacon as a browser provides it: a POST that nobody awaits.
const beacons: string[] = [];
(globalThis as { navigator?: unknown }).navigator = {
  sendBeacon(url: string, body: string) {
    beacons.push(url);
    void fetch(url, { method: 'POST', body }).catch(() => {});
    return true;
  },
};

const channel = (url: string, options: Record<string, unknown>, beforeOpen?: (client: WebChannel) => void) =>
  openWebChannel(url, { useFetchStreams: true, ...options }, beforeOpen);

describe('WebChannel options with the real client', () => {
  let server: TestServer;
  const log: Array<{ method: string; url: string }> = [];
  const byTag = (tag: string) => server.sessions.find((s) => s.query.tag === tag)!;
  const requestsOf = (session: Session) => log.filter((entry) => entry.url.includes(session.id));
  before(async () => {
    server = await startServer({ keepAliveInterval: 20000 }, (session) => {
      session.on('message', (message) => {
        const command = (message as { cmd?: string } | null)?.cmd;
        if (command === 'stop') return session.stop();
        if (command === 'close') return session.close('by app');
        session.send({ echo: message });
      });
    });
    server.server.prependListener('request', (req) => log.push({ method: req.method!, url: req.url! }));
  });
  after(() => server.close());
  const url = () => server.url('/channel/bind');

  test('handshake fields: the client opens on ["c",sid,null,8,1,keepAlive] and streams', async () => {
    const wcClient = channel(url(), { sendRawJson: true, messageUrlParams: { tag: 'fields' } });
    await wcClient.opened;
    wcClient.client.send({ ping: 1 });
    await until(() => wcClient.received.length === 1);
    assert.deepEqual(wcClient.received, [{ echo: { ping: 1 } }]);
    wcClient.client.close();
  });

  test('close() terminates by navigator.sendBeacon: an empty POST with TYPE=terminate', async () => {
    const wcClient = channel(url(), { messageUrlParams: { tag: 'beacon' } });
    await wcClient.opened;
    const session = byTag('beacon');
    let reason: string | undefined;
    session.on('close', (why) => (reason = why));
    wcClient.client.close();
    await until(() => reason !== undefined, 3000, 'session close');
    assert.equal(reason, 'Disconnected');
    assert.ok(beacons.some((beacon) => beacon.includes(session.id) && beacon.includes('TYPE=terminate')));
    assert.ok(requestsOf(session).some((r) => r.method === 'POST' && r.url.includes('TYPE=terminate')));
  });

  test('httpSessionIdParam: the id from X-HTTP-Session-Id rides on every later request', async () => {
    const wcClient = channel(url(), { sendRawJson: true, httpSessionIdParam: 'gsessionid', messageUrlParams: { tag: 'gsid' } });
    await wcClient.opened;
    wcClient.client.send({ one: 1 });
    await until(() => wcClient.received.length === 1);
    const session = byTag('gsid');
    assert.match(session.httpSessionId!, /^[A-Za-z0-9_-]{22}$/);
    const later = requestsOf(session);
    assert.ok(later.length >= 2);
    for (const entry of later) assert.ok(entry.url.includes(`gsessionid=${session.httpSessionId}`), entry.url);
    wcClient.client.close();
  });

  test('initMessageHeaders with encodeInitMessageHeaders reach session.headers, never as a map', async () => {
    const maps: unknown[] = [];
    const wcClient = channel(url(), {
      initMessageHeaders: { 'X-Goog-Auth': 'Bearer abc', 'X-Room': 'lobby' },
      encodeInitMessageHeaders: true,
      messageUrlParams: { tag: 'encoded' },
    });
    await wcClient.opened;
    const session = byTag('encoded');
    session.on('map', (map) => maps.push(map));
    assert.equal(session.headers['x-goog-auth'], 'Bearer abc');
    assert.equal(session.headers['x-room'], 'lobby');
    wcClient.client.send({ after: 'open' });
    await until(() => maps.length === 1);
    assert.deepEqual({ ...(maps[0] as object) }, { after: 'open' });
    wcClient.client.close();
  });

  test('httpHeadersOverwriteParam puts the headers in one URL parameter', async () => {
    const wcClient = channel(url(), {
      initMessageHeaders: { 'X-Goog-Auth': 'Bearer xyz' },
      httpHeadersOverwriteParam: '$httpHeaders',
      messageUrlParams: { tag: 'overwrite' },
    });
    await wcClient.opened;
    assert.equal(byTag('overwrite').headers['x-goog-auth'], 'Bearer xyz');
    wcClient.client.close();
  });

  test('fastHandshake: one GET creates the session, delivers $req and becomes the back channel', async () => {
    const wcClient = channel(url(), { fastHandshake: true, sendRawJson: true, messageUrlParams: { tag: 'fast' } }, (client) =>
      client.send({ early: true }),
    );
    await wcClient.opened;
    await until(() => wcClient.received.length === 1, 3000, 'echo of the early message');
    assert.deepEqual(wcClient.received, [{ echo: { early: true } }]);
    const creating = log.find((entry) => entry.url.includes('tag=fast'))!;
    assert.equal(creating.method, 'GET');
    assert.match(creating.url, /SID=null/);
    assert.match(creating.url, /%24req=|\$req=/);
    wcClient.client.send({ later: 1 });
    await until(() => wcClient.received.length === 2, 3000, 'echo of a later message');
    wcClient.client.close();
  });

  test('detectBufferingProxy: the immediate ["noop"] keeps the client streaming', async () => {
    const wcClient = channel(url(), { detectBufferingProxy: true, sendRawJson: true, messageUrlParams: { tag: 'bp' } });
    await wcClient.opened;
    await delay(300);
    wcClient.client.send({ streaming: true });
    await until(() => wcClient.received.length === 1);
    const backChannels = requestsOf(byTag('bp')).filter((r) => r.url.includes('RID=rpc'));
    assert.ok(backChannels.length >= 1);
    for (const entry of backChannels) assert.match(entry.url, /CI=0/, 'no fallback to long polling');
    wcClient.client.close();
  });

  test('forceLongPolling with longPollingTimeout: idle polls end within TO and the client re-polls', async () => {
    const wcClient = channel(url(), { forceLongPolling: true, longPollingTimeout: 300, sendRawJson: true, messageUrlParams: { tag: 'lp' } });
    await wcClient.opened;
    await delay(1300);
    const polls = requestsOf(byTag('lp')).filter((r) => r.url.includes('RID=rpc'));
    for (const entry of polls) {
      assert.match(entry.url, /CI=1/);
      assert.match(entry.url, /TO=300/);
    }
    assert.ok(polls.length >= 3, `only ${polls.length} polls in 1.3 s`);
    wcClient.client.send({ still: 'there' });
    await until(() => wcClient.received.length === 1);
    wcClient.client.close();
  });

  test('client reactions: stop() → ERROR, server close() → CLOSE without ERROR', async () => {
    const stopped = channel(url(), { sendRawJson: true, messageUrlParams: { tag: 'react-stop' } });
    const closed = channel(url(), { sendRawJson: true, messageUrlParams: { tag: 'react-close' } });
    await Promise.all([stopped.opened, closed.opened]);
    stopped.client.send({ cmd: 'stop' });
    closed.client.send({ cmd: 'close' });
    await until(() => stopped.events.includes('close') && closed.events.includes('close'), 5000, 'both closed');
    assert.deepEqual(stopped.events, ['error', 'close']);
    assert.deepEqual(closed.events, ['close']);
  });

  test('client reactions: an unknown SID (a restarted server) ends the channel with CLOSE', async () => {
    // A server whose middleware can be swapped for a fresh one, as a restart would.
    let current = browserChannel(() => {});
    const restartable = http.createServer((req, res) => current(req, res));
    await new Promise<void>((resolve) => restartable.listen(0, '127.0.0.1', resolve));
    const port = (restartable.address() as AddressInfo).port;
    const wcClient = channel(`http://127.0.0.1:${port}/channel/bind`, { sendRawJson: true });
    await wcClient.opened;
    const before = current;
    current = browserChannel(() => {});
    wcClient.client.send({ anyone: '?' });
    await until(() => wcClient.events.includes('close'), 5000, 'close');
    assert.equal(wcClient.events.at(-1), 'close');
    before.close();
    current.close();
    restartable.closeAllConnections();
    await new Promise((resolve) => restartable.close(resolve));
  });
});

describe('WebChannel wire details over raw HTTP', () => {
  let server: TestServer;
  before(async () => (server = await startServer({ keepAliveInterval: 15000, nodeId: 'web3' })));
  after(() => server.close());

  test('CVER=22 gets the six-field c array; others get four', async () => {
    const wcResponse = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&CVER=22', 'count=0');
    const bcResponse = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&CVER=5', 'count=0');
    const [[wcArray]] = parseChunks(wcResponse.body) as [[[number, unknown[]]]];
    const [[bcArray]] = parseChunks(bcResponse.body) as [[[number, unknown[]]]];
    assert.deepEqual(wcArray[1].slice(2), [null, 8, 1, 15000]);
    assert.deepEqual(bcArray[1].slice(2), [null, 8]);
    assert.equal(wcResponse.headers['x-client-wire-protocol'], 'http/1.1');
    assert.equal(bcResponse.headers['x-client-wire-protocol'], undefined);
  });

  test('nodeId prefixes session ids and X-HTTP-Session-Id; a mismatched id is refused', async () => {
    const response = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&CVER=22&X-HTTP-Session-Id=gsessionid', 'count=0');
    const httpId = response.headers['x-http-session-id'] as string;
    const [[handshake]] = parseChunks(response.body) as [[[number, string[]]]];
    const sid = handshake[1][1]!;
    assert.match(sid, /^web3\.[A-Za-z0-9_-]{22}$/);
    assert.match(httpId, /^web3\.[A-Za-z0-9_-]{22}$/);
    assert.notEqual(httpId, sid);
    const good = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=2&gsessionid=${httpId}`, 'count=0');
    assert.equal(good.status, 200);
    const bad = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=3&gsessionid=web3.other`, 'count=0');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /X-HTTP-Session-Id does not match/);
  });

  test('encoded init headers in the body are decoded and are not a map', async () => {
    const seen: unknown[] = [];
    const local = await startServer({}, (session) => session.on('map', (map) => seen.push(map)));
    const block = encodeURIComponent('Authorization:Bearer t0k\r\nX-Extra:1\r\n');
    const { sid } = await createSession(local.port, '/channel', '&CVER=22', `headers=${block}&count=1&ofs=0&req0_a=b`);
    const session = local.sessions.find((s) => s.id === sid)!;
    assert.equal(session.headers.authorization, 'Bearer t0k');
    assert.equal(session.headers['x-extra'], '1');
    assert.deepEqual(seen.map((m) => ({ ...(m as object) })), [{ a: 'b' }]);
    const broken = await request(local.port, 'POST', '/channel/bind?VER=8&RID=1', `headers=${encodeURIComponent('no colon here')}&count=0`);
    assert.equal(broken.status, 400);
    await local.close();
  });

  test('fast handshake: X-HTTP-Initial-Response carries the arrays as ASCII JSON; $req is capped', async () => {
    const local = await startServer({}, (session) => session.send('héllo 😀'));
    const $req = encodeURIComponent('count=1&ofs=0&req0___data__=%5B1%5D');
    const stream = openStream(local.port, `/channel/bind?VER=8&RID=1&CVER=22&SID=null&$req=${$req}`);
    const response = await stream.response;
    const initial = response.headers['x-http-initial-response'] as string;
    assert.match(initial, /^[\x20-\x7e]+$/);
    const arrays = JSON.parse(initial) as Array<[number, unknown]>;
    assert.equal(arrays[0]![0], 0);
    assert.deepEqual(arrays[1], [1, 'héllo 😀']);
    local.sessions[0]!.send('on the body');
    await stream.waitFor((text) => text.includes('on the body'));
    assert.deepEqual(parseChunks(stream.text()), [[[2, ['noop']]], [[3, 'on the body']]], 'a noop opens the body at once');
    stream.destroy();
    const huge = await request(local.port, 'GET', `/channel/bind?VER=8&RID=1&CVER=22&SID=null&$req=${'x'.repeat(13000)}`);
    assert.equal(huge.status, 414);
    assert.match(huge.body, /\$req longer than/);
    await local.close();
  });

  test('TO is bounded: a tiny TO cannot make the server spin', async () => {
    const { sid } = await createSession(server.port, '/channel', '&CVER=22');
    const started = Date.now();
    const poll = await openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp&TO=1`).ended;
    const took = Date.now() - started;
    assert.deepEqual(parseChunks(poll), [[[1, ['noop']]]]);
    assert.ok(took >= 200, `answered after ${took} ms`);
  });
});
