// Visibility: stats(), the 'session' and 'refused' events, NODE_DEBUG output
// and diagnostics_channel messages, all from real HTTP traffic.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { Refusal, Session } from '../src/index.ts';
import { createSession, delay, openStream, request, startServer, until, type TestServer } from './helpers.ts';

describe('stats, session and refused events', () => {
  let server: TestServer;
  const refusals: Refusal[] = [];
  const opened: Session[] = [];
  before(async () => {
    server = await startServer({ maxSessions: 6, maxBodyBytes: 100, bodyTimeout: 100, keepAliveInterval: 40 },
      (session) => session.on('message', (message) => session.send({ echo: message })));
    server.middleware.on('refused', (refusal) => refusals.push(refusal));
    server.middleware.on('session', (session) => opened.push(session));
  });
  after(() => server.close());

  test('counts sessions, messages, bytes, back channels, heartbeats and close reasons', async () => {
    const { sid } = await createSession(server.port);
    assert.equal(opened.length, 1);
    assert.equal(opened[0]!.id, sid);
    const body = 'count=2&ofs=0&req0_JSON=%22a%22&req1_JSON=%22b%22';
    await request(server.port, 'POST', `/channel/bind?VER=8&RID=1001&SID=${sid}&AID=0`, body);
    const stream = openStream(server.port, `/channel/bind?VER=8&RID=rpc&SID=${sid}&CI=0&AID=0&TYPE=xmlhttp`);
    await stream.waitFor((text) => text.includes('noop'), 2000);
    stream.destroy();
    const stats = server.middleware.stats();
    assert.equal(stats.sessions.created, 1);
    assert.equal(stats.sessions.open, 1);
    assert.deepEqual(stats.messages, { in: 2, out: 2 });
    assert.equal(stats.bytes.in, body.length + 'count=0'.length);
    assert.ok(stats.bytes.out > 40, `bytes out ${stats.bytes.out}`);
    assert.equal(stats.backChannels, 2, 'the create response and the stream');
    assert.ok(stats.heartbeats >= 1);
    server.sessions[0]!.close('Because');
    assert.deepEqual(server.middleware.stats().sessions.closed, { Because: 1 });
    assert.equal(server.middleware.stats().sessions.open, 0);
  });

  test('every error answer is a refusal: 400, 413, 408, 414 and 503', async () => {
    refusals.length = 0;
    await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&SID=nope', 'count=0');
    await request(server.port, 'POST', '/channel/bind?VER=8&RID=1', 'count=1&ofs=0&req0_x=' + 'y'.repeat(200));
    await slowBody(server.port);
    await request(server.port, 'GET', `/channel/bind?VER=8&RID=1&CVER=22&SID=null&$req=${'x'.repeat(13000)}`);
    for (let i = 0; i < 7; i++) await createSession(server.port).catch(() => {});
    assert.deepEqual(refusals.map((r) => [r.status, r.code]), [
      [400, 'UNKNOWN_SID'], [413, 'BODY_TOO_LARGE'], [408, 'TIMEOUT'], [414, 'BAD_QUERY'], [503, 'TOO_MANY_SESSIONS'],
    ]);
    assert.equal(refusals[0]!.sessionId, 'nope');
    assert.equal(refusals[0]!.path, '/channel/bind');
    assert.deepEqual(server.middleware.stats().refused, { 400: 1, 413: 1, 408: 1, 414: 1, 503: 1 });
  });

  test('a throwing refused listener does not break the response', async () => {
    const errors: unknown[] = [];
    const boom = (): void => {
      throw new Error('listener bug');
    };
    server.middleware.on('refused', boom);
    server.middleware.on('error', (error) => errors.push(error));
    const response = await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&SID=nope', 'count=0');
    server.middleware.off('refused', boom);
    assert.equal(response.status, 400);
    assert.match(String(errors[0]), /listener bug/);
  });
});

// A body that never finishes, so bodyTimeout answers 408.
function slowBody(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/channel/bind?VER=8&RID=1',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': '50' } });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', () => resolve(0));
    req.write('count=0');
  });
}

describe('diagnostics_channel', () => {
  test('publishes open, close, refused, message in and out', async () => {
    const seen: Record<string, unknown[]> = {};
    const names = ['session:open', 'session:close', 'session:refused', 'message:in', 'message:out'];
    const subscribers = names.map((name) => {
      const listener = (message: unknown): void => void (seen[name] ??= []).push(message);
      diagnostics.subscribe(`browserchannel:${name}`, listener);
      return () => diagnostics.unsubscribe(`browserchannel:${name}`, listener);
    });
    const server = await startServer({}, (session) => session.on('message', (m) => session.send({ echo: m })));
    try {
      const { sid } = await createSession(server.port);
      await request(server.port, 'POST', `/channel/bind?VER=8&RID=1001&SID=${sid}&AID=0`, 'count=1&ofs=0&req0_JSON=%7B%22n%22%3A1%7D');
      await request(server.port, 'POST', '/channel/bind?VER=8&RID=1&SID=gone', 'count=0');
      server.sessions[0]!.close('done');
      const session = server.sessions[0];
      assert.deepEqual(seen['session:open'], [{ session }]);
      assert.deepEqual(seen['message:in'], [{ session, message: { n: 1 } }]);
      assert.deepEqual(seen['message:out'], [{ session, json: '{"echo":{"n":1}}' }]);
      assert.equal((seen['session:refused']![0] as Refusal).code, 'UNKNOWN_SID');
      assert.deepEqual(seen['session:close'], [{ session, reason: 'done' }]);
    } finally {
      for (const unsubscribe of subscribers) unsubscribe();
      await server.close();
    }
  });
});

describe('NODE_DEBUG=browserchannel', () => {
  test('logs lifecycle, back channels and refusals, never whole ids or message contents', async () => {
    const index = JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)));
    const source = `
import http from 'node:http';
import browserChannel from ${index};
const channel = browserChannel({}, (s) => s.on('message', (m) => s.send(m)));
const server = http.createServer(channel).listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
process.on('SIGTERM', () => { channel.close(); server.close(); });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_DEBUG: 'browserchannel' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    let stdout = '';
    child.stdout.setEncoding('utf8');
    while (!/PORT (\d+)/.test(stdout)) stdout += (await once(child.stdout, 'data'))[0];
    const port = Number(/PORT (\d+)/.exec(stdout)![1]);
    try {
      const { sid } = await createSession(port);
      await request(port, 'POST', `/channel/bind?VER=8&RID=1001&SID=${sid}&AID=0`, 'count=1&ofs=0&req0_JSON=%22secret-words%22');
      await request(port, 'POST', '/channel/bind?VER=8&RID=1&SID=nope', 'count=0');
      await request(port, 'GET', `/channel/bind?VER=8&RID=1002&SID=${sid}&TYPE=terminate`);
      await until(() => /closed: Disconnected/.test(stderr), 3000, 'close line');
      assert.match(stderr, /BROWSERCHANNEL \d+: session \S{6}… open from 127\.0\.0\.1 \(1 open\)/);
      assert.match(stderr, /back channel for \S{6}… polling/);
      assert.match(stderr, /refused 400 UNKNOWN_SID POST \/channel\/bind: Unknown SID/);
      assert.match(stderr, /session \S{6}… closed: Disconnected \(0 open\)/);
      assert.ok(!stderr.includes(sid), 'the whole id never appears');
      assert.ok(!stderr.includes('secret-words'), 'message contents never appear');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await delay(0);
  });
});
