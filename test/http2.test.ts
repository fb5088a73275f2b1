// The handler under node:http2's compatibility API, with a self-signed
// certificate made at test time: h2 clients are told `h2` on the handshake
// and may post up to 10 forward requests at once, in any order.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import browserChannel, { type Session } from '../src/index.ts';
import { parseChunks } from './helpers.ts';

let folder: string;
let cert: Buffer;
let server: http2.Http2SecureServer;
let port: number;
const channel = browserChannel({}, (session) => {
  sessions.push(session);
  session.on('message', (message) => received.push(message));
});
const sessions: Session[] = [];
const received: unknown[] = [];

before(async () => {
  folder = mkdtempSync(join(tmpdir(), 'bc-h2-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', join(folder, 'key.pem'), '-out', join(folder, 'cert.pem')], { stdio: 'ignore' });
  cert = readFileSync(join(folder, 'cert.pem'));
  server = http2.createSecureServer({ key: readFileSync(join(folder, 'key.pem')), cert, allowHTTP1: true }, (req, res) =>
    channel(req as never, res as never),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  channel.close();
  await new Promise((resolve) => server.close(resolve));
  rmSync(folder, { recursive: true, force: true });
});

function h2request(client: http2.ClientHttp2Session, method: string, path: string, body?: string) {
  return new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const stream = client.request({ ':method': method, ':path': path, 'content-type': 'application/x-www-form-urlencoded' });
    let headers: http2.IncomingHttpHeaders = {};
    let text = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (headers = h));
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body: text }));
    stream.on('error', reject);
    stream.end(body);
  });
}

test('over h2 the handshake says X-Client-Wire-Protocol: h2, and 10 parallel POSTs in any order are delivered in order', async () => {
  const client = http2.connect(`https://localhost:${port}`, { ca: cert });
  const created = await h2request(client, 'POST', '/channel/bind?VER=8&RID=100&CVER=22', 'count=0');
  assert.equal(created.status, 200);
  assert.equal(created.headers['x-client-wire-protocol'], 'h2');
  const [[handshake]] = parseChunks(created.body) as [[[number, string[]]]];
  const sid = handshake[1][1]!;
  const order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4];
  const answers = await Promise.all(
    order.map((i) => h2request(client, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${101 + i}&AID=0`, `count=1&ofs=${i}&req0_JSON=${i}`)),
  );
  assert.deepEqual(answers.map((a) => a.status), Array(10).fill(200));
  assert.deepEqual(received, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  // A streaming back channel works over h2 too.
  const stream = client.request({ ':method': 'GET', ':path': `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp` });
  stream.setEncoding('utf8');
  let text = '';
  const got = new Promise<void>((resolve) => stream.on('data', (chunk: string) => ((text += chunk), text.includes('over h2') && resolve())));
  await new Promise((resolve) => stream.on('response', resolve));
  sessions.at(-1)!.send('over h2');
  await got;
  assert.ok(parseChunks(text).some((chunk) => JSON.stringify(chunk).includes('over h2')));
  stream.close();
  const unknown = await h2request(client, 'POST', '/channel/bind?VER=8&SID=nope&RID=1', 'count=0');
  assert.equal(unknown.status, 400);
  assert.ok(unknown.body.indexOf('Unknown SID') > 0);
  client.close();
});

test('the same TLS server answers HTTP/1.1 clients and says http/1.1', async () => {
  const response = await new Promise<{ status: number; protocol: string | string[] | undefined }>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method: 'POST', path: '/channel/bind?VER=8&RID=1&CVER=22', ca: cert, servername: 'localhost',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, protocol: res.headers['x-client-wire-protocol'] }));
    });
    req.on('error', reject);
    req.end('count=0');
  });
  assert.deepEqual(response, { status: 200, protocol: 'http/1.1' });
});
