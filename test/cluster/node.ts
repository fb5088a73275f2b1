// One server process of a test cluster (started by harness.ts):
// BrowserChannel on NODE_PORT with the Redis adapter, and a tiny control API.
//
//   client → {"echo": x}     server → {"echo": x, "node": "n1"}
//   client → {"all": x}      every session, every process → {"all": x, "from": <session id>}
//   GET /ids                 → JSON of channel.sessionIds() (every process)
//   GET /stats               → this process's counters, CPU time and adapter errors
//   GET /broadcast?n=K       → K broadcasts to every session (for the bench)
import http from 'node:http';
import browserChannel from '../../src/index.ts';
import { redisAdapter } from '../../src/redis/index.ts';

const nodeId = process.env.NODE_ID || null;
const port = Number(process.env.NODE_PORT);
const adapter = redisAdapter({ url: process.env.REDIS_URL!, heartbeatInterval: 1000, nodeTimeout: 4000 });
const errors: string[] = [];
const channel = browserChannel({ adapter, nodeId }, (session) => {
  session.on('message', (message) => {
    const m = message as Record<string, unknown>;
    if (m && 'echo' in m) session.send({ echo: m.echo, node: adapter.nodeId });
    else if (m && 'all' in m) channel.send({ all: m.all, from: session.id });
  });
});
if (process.env.LOG_REFUSED) channel.on('refused', (r) => console.error(`refused ${r.status} ${r.reason} ${r.method} ${r.sessionId}`));
channel.on('error', (error) => {
  errors.push(String((error as Error).message ?? error));
  if (errors.length > 100) errors.shift();
});

const server = http.createServer(async (req, res) => {
  if (req.url === '/ids') {
    const ids = await channel.sessionIds();
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify(ids));
  }
  if (req.url === '/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const cpu = process.cpuUsage();
    return res.end(JSON.stringify({
      node: adapter.nodeId, connected: adapter.connected, sessions: channel.sessionCount, errors, nodes: [...adapter.nodes],
      cpuMicros: cpu.user + cpu.system, messagesOut: channel.stats().messages.out, relayed: adapter.relayed,
    }));
  }
  if (req.url?.startsWith('/broadcast?n=')) {
    const count = Math.min(10_000, Number(req.url.slice('/broadcast?n='.length)) || 1);
    for (let i = 0; i < count; i++) channel.send({ b: i });
    return res.end('sent');
  }
  channel(req, res);
});
server.keepAliveTimeout = 120_000;
await adapter.ready;
server.listen(port, '127.0.0.1', () => console.log(`ready ${adapter.nodeId} ${port}`));
process.on('SIGTERM', async () => {
  await channel.shutdown({ timeout: 500 });
  server.close();
  process.exit(0);
});
