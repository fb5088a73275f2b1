// One server process of the cluster bench's recovery section
// (bench/cluster.mjs): BrowserChannel on NODE_PORT with the Redis adapter,
// and `recovery: { window: RECOVERY_WINDOW, history: 1000 }` when
// RECOVERY_WINDOW is set (unset or 0: recovery off). Every session joins
// room "r". Each message carries `t`, the wall clock at send in
// milliseconds with a fraction (performance.timeOrigin + now()), so the
// client on the same machine can tell how long it took to arrive.
//
//   GET /push?n=K          each session here gets K messages {p: i, t}, CHUNK per session per turn
//   GET /pace?n=K&every=MS every MS, each session here gets one {p: i, t}, K times
//   GET /room?n=K          K broadcasts {b: i, t} to room "r" (every process)
//   GET /stats             sessions, CPU time (µs, user + system), errors
//
// BENCH_PROFILE=dir writes a V8 CPU profile of the process there when it
// stops (through node:inspector: --cpu-prof is not allowed in NODE_OPTIONS).
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session as Inspector } from 'node:inspector/promises';
import browserChannel, { type Session } from '../src/index.ts';
import { redisAdapter } from '../src/redis/index.ts';

const port = Number(process.env.NODE_PORT);
const window = Number(process.env.RECOVERY_WINDOW ?? 0);
const adapter = redisAdapter({
  url: process.env.REDIS_URL!, heartbeatInterval: 1000, nodeTimeout: 4000,
});
const recovery = window > 0 ? { recovery: { window, history: 1000 } } : {};
const sessions = new Set<Session<unknown, unknown, object>>();
const errors: string[] = [];
const CHUNK = 50;
const now = () => performance.timeOrigin + performance.now();

const options = { adapter, nodeId: process.env.NODE_ID ?? null, ...recovery };
const channel = browserChannel(options, (session) => {
  sessions.add(session);
  void session.join('r');
  session.on('close', () => sessions.delete(session));
});
channel.on('error', (error) => {
  errors.push(String((error as Error).message ?? error));
  if (errors.length > 20) errors.shift();
});

// K messages to every session, CHUNK each per turn of the event loop, so
// the back channels (and, with recovery, the saves) run between chunks.
function push(count: number): void {
  let sent = 0;
  const turn = () => {
    const upTo = Math.min(count, sent + CHUNK);
    for (const session of sessions) {
      for (let i = sent; i < upTo; i++) session.send({ p: i, t: now() });
    }
    sent = upTo;
    if (sent < count) setImmediate(turn);
  };
  turn();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const number = (name: string, fallback: number) =>
    Math.min(100_000, Number(url.searchParams.get(name) ?? fallback) || fallback);
  const reply = (value: unknown) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  if (url.pathname === '/push') {
    push(number('n', 1));
    return reply('started');
  }
  if (url.pathname === '/pace') {
    const count = number('n', 1);
    let i = 0;
    const timer = setInterval(() => {
      for (const session of sessions) session.send({ p: i, t: now() });
      if (++i >= count) clearInterval(timer);
    }, number('every', 10));
    return reply('started');
  }
  if (url.pathname === '/room') {
    const count = number('n', 1);
    for (let i = 0; i < count; i++) channel.to('r').send({ b: i, t: now() });
    return reply('sent');
  }
  if (url.pathname === '/stats') {
    const cpu = process.cpuUsage();
    const cpuMicros = cpu.user + cpu.system;
    return reply({ sessions: channel.sessionCount, cpuMicros, errors, recovery: window > 0 });
  }
  channel(req, res);
});
server.keepAliveTimeout = 120_000;
const profiler = process.env.BENCH_PROFILE ? new Inspector() : null;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}

await adapter.ready;
server.listen(port, '127.0.0.1', () => console.log(`ready ${adapter.nodeId} ${port}`));
process.on('SIGTERM', async () => {
  await channel.shutdown({ timeout: 500 });
  server.close();
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    const name = `${process.env.NODE_ID}-${window > 0 ? 'on' : 'off'}-${Date.now()}.cpuprofile`;
    writeFileSync(`${process.env.BENCH_PROFILE}/${name}`, JSON.stringify(profile));
  }
  process.exit(0);
});
