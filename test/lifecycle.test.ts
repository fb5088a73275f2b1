// Lifecycle: onConnect fires once per session whatever the transport does,
// and no timer keeps the process alive once the server and channel close.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createSession, openStream, parseChunks, request, startServer } from './helpers.ts';

test('onConnect fires once per session across back-channel reconnects, retries and ghosting', async () => {
  const connected: string[] = [];
  const server = await startServer({}, (session) => connected.push(session.id));
  const { sid } = await createSession(server.port);
  for (let i = 0; i < 5; i++) {
    const stream = openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`);
    await stream.response;
    stream.destroy();
  }
  for (let i = 0; i < 3; i++) {
    const retry = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=0`, 'count=1&ofs=0&req0__S=x');
    assert.equal(retry.status, 200);
  }
  assert.deepEqual(connected, [sid]);
  const ghost = await createSession(server.port, '/channel', `&OSID=${sid}&OAID=0`);
  await createSession(server.port, '/channel', `&OSID=${sid}&OAID=0`);
  assert.equal(connected.length, 3, 'each create is its own session, and the retired one is not reopened');
  assert.equal(new Set(connected).size, 3);
  assert.ok(connected.includes(ghost.sid));
  await server.close();
});

// The child runs a server with the default 20 s / 30 s timers, puts sessions
// in every state, then closes. It must exit by itself, long before any timer.
const child = `
import http from 'node:http';
import browserChannel from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};
const channel = browserChannel({}, (session) => { if (session.query.pending) session.send('never acked'); });
const server = http.createServer(channel);
server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
process.stdin.on('data', () => { channel.close(); server.closeAllConnections(); server.close(); process.stdin.destroy(); console.log('CLOSED ' + Date.now()); });
`;

test('the process exits on its own right after close(), with sessions in every state', async () => {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (text: string) => (output += text));
  while (!/PORT (\d+)/.test(output)) await once(proc.stdout, 'data');
  const port = Number(/PORT (\d+)/.exec(output)![1]);

  const idle = await createSession(port);
  const streaming = await createSession(port);
  const stream = openStream(port, `/channel/bind?VER=8&SID=${streaming.sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`);
  await stream.response;
  const pending = await createSession(port, '/channel', '&pending=1');
  const poll = openStream(port, `/channel/bind?VER=8&SID=${pending.sid}&RID=rpc&AID=0&CI=1&TYPE=xmlhttp`);
  assert.deepEqual(parseChunks(await poll.ended), [[[1, 'never acked']]]);
  const testPhase = openStream(port, '/channel/test?VER=8&TYPE=xmlhttp');
  await testPhase.waitFor((text) => text === '11111');
  assert.ok(idle.sid);

  proc.stdin.write('close\n');
  const [code] = (await once(proc, 'exit')) as [number];
  const closedAt = Number(/CLOSED (\d+)/.exec(output)![1]);
  const lingered = Date.now() - closedAt;
  assert.equal(code, 0);
  assert.ok(lingered < 1500, `process lingered ${lingered} ms after close`);
  await stream.ended;
});
