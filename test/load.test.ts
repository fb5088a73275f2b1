// Load and leaks, sized for two cores: many concurrent sessions through the
// real Closure client, and tens of thousands of sessions opened and closed
// with memory and handles back to where they started.
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { type ChildServer, parseChunks, startChildServer, until } from './helpers.ts';

interface BCSocketLike {
  onopen: (() => void) | null;
  onmessage: ((message: { data: unknown }) => void) | null;
  onerror: ((message: string) => void) | null;
  send(message: unknown): void;
  close(): void;
}
const { BCSocket } = createRequire(import.meta.url)('browserchannel') as {
  BCSocket: new (url: string, options?: Record<string, unknown>) => BCSocketLike;
};

let server: ChildServer;
before(async () => (server = await startChildServer('{}')));
after(() => server.stop());

const SOCKETS = Number(process.env.LOAD_SOCKETS ?? 200);
const ECHOES = Number(process.env.LOAD_ECHOES ?? 50);

test(`${SOCKETS} concurrent Closure clients, ${ECHOES} echoes each, nothing lost or reordered`, async () => {
  const clients = Array.from({ length: SOCKETS }, (_, index) => {
    const socket = new BCSocket(`http://127.0.0.1:${server.port}/channel`, { reconnect: false });
    const received: unknown[] = [];
    const errors: string[] = [];
    socket.onmessage = (message) => received.push(message.data);
    socket.onerror = (message) => errors.push(message);
    const opened = new Promise<void>((resolve) => (socket.onopen = resolve));
    return { index, socket, received, errors, opened };
  });
  await Promise.all(clients.map((client) => client.opened));
  for (let i = 0; i < ECHOES; i++) for (const client of clients) client.socket.send({ c: client.index, i });
  await until(() => clients.every((client) => client.received.length >= ECHOES), 60_000, 'all echoes');
  for (const client of clients) {
    assert.deepEqual(client.errors, []);
    assert.deepEqual(client.received, Array.from({ length: ECHOES }, (_, i) => ({ c: client.index, i })));
  }
  for (const client of clients) client.socket.close();
});

// Opens a session and terminates it, over a keep-alive connection.
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
function call(method: string, path: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path, agent, headers: body ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const CYCLES = Number(process.env.LEAK_SESSIONS ?? 20_000);

test(`${CYCLES} sessions opened and closed: heap and handles return to baseline`, async () => {
  const warmup = async (count: number): Promise<void> => {
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < count) {
        next++;
        const text = await call('POST', '/channel/bind?VER=8&RID=1', 'count=1&ofs=0&req0_JSON=%7B%22hi%22%3A1%7D');
        const [[handshake]] = parseChunks(text) as [[[number, string[]]]];
        await call('GET', `/channel/bind?VER=8&SID=${handshake[1][1]}&RID=2&TYPE=terminate`);
      }
    }));
  };
  await warmup(500);
  const baseline = await server.stats();
  await warmup(CYCLES);
  const afterwards = await server.stats();
  agent.destroy();
  assert.equal(afterwards.sessions, 0);
  const growth = afterwards.heapUsed - baseline.heapUsed;
  assert.ok(growth < 8 * 1024 * 1024, `heap grew ${(growth / 1024 / 1024).toFixed(1)} MB over ${CYCLES} sessions`);
  assert.ok(afterwards.resources <= baseline.resources + 2, `handles ${baseline.resources} → ${afterwards.resources}`);
  console.log(`leak check: ${CYCLES} sessions, heap ${(baseline.heapUsed / 1e6).toFixed(1)} → ${(afterwards.heapUsed / 1e6).toFixed(1)} MB, resources ${baseline.resources} → ${afterwards.resources}`);
  assert.doesNotMatch(server.stderr(), /APP ERROR/);
});
