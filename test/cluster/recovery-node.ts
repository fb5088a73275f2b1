// One server process of the recovery tests (started by harness.ts): the
// Redis adapter with `recovery`, an app that keeps a counter in
// `session.data`, and a control API. Everything the app sees is printed on
// stdout, one line each, so the test still has it after `kill -9`
// (writes to a pipe are synchronous in Node).
//
//   connect <name> <id> <recovered> <previousId|-> <failure|->
//   msg <name> <k>                  a client's {k} reached the app
//   close <name> <id> <reason>      a session closed
//   GET /publish?count=N&every=MS   N broadcasts {n: i} to room "feed", one every MS
//   GET /direct?every=MS            every MS, each session here gets {d: data.d++}
//   GET /quiet                      stops /direct
//   GET /send?sid=ID&count=K        K direct sends {d: data.d++} to one session
//   GET /churn?sid=ID&room=R        the session joins R and leaves it in the same tick
//   GET /stats                      counters, recovery stats, Redis connection
import http from 'node:http';
import browserChannel, { type Session } from '../../src/index.ts';
import { redisAdapter } from '../../src/redis/index.ts';

type Data = { name: string; d: number };
const nodeId = process.env.NODE_ID!;
const port = Number(process.env.NODE_PORT);
const window = Number(process.env.RECOVERY_WINDOW ?? 60_000);
const timeout = Number(process.env.RECOVERY_TIMEOUT ?? 2000);
const adapter = redisAdapter({ url: process.env.REDIS_URL!, heartbeatInterval: 1000, nodeTimeout: 3000, relayTimeout: 4000 });
const ready = new Set<Session<unknown, unknown, Data>>();
const errors: string[] = [];
const print = (line: string) => process.stdout.write(`${line}\n`);

const channel = browserChannel<{ k?: number }, unknown, Data>(
  { adapter, nodeId, recovery: { window, history: 2000, timeout } },
  (session) => {
    if (!session.recovered) {
      session.data = { name: String(session.query.name ?? '?'), d: 0 };
      void session.join('feed');
      if (typeof session.query.room === 'string') void session.join(session.query.room);
    }
    print(`connect ${session.data.name} ${session.id} ${session.recovered} ${session.previousId ?? '-'} ${session.recoveryFailure ?? '-'}`);
    ready.add(session);
    session.on('message', (message) => {
      if (typeof message?.k === 'number') print(`msg ${session.data.name} ${message.k}`);
    });
    session.on('close', (reason) => {
      ready.delete(session);
      print(`close ${session.data.name} ${session.id} ${reason}`);
    });
  },
);
channel.on('error', (error) => {
  errors.push(String((error as Error).message ?? error));
  if (errors.length > 50) errors.shift();
});

let direct: NodeJS.Timeout | null = null;
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const number = (name: string, fallback: number) => Number(url.searchParams.get(name) ?? fallback);
  const reply = (value: unknown) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  if (url.pathname === '/publish') {
    const count = number('count', 10);
    let i = 0;
    const timer = setInterval(() => {
      channel.to('feed').send({ n: i++ });
      if (i >= count) clearInterval(timer);
    }, number('every', 20));
    return reply('started');
  }
  if (url.pathname === '/direct') {
    direct ??= setInterval(() => {
      for (const session of ready) session.send({ d: session.data.d++ });
    }, number('every', 50));
    return reply('started');
  }
  if (url.pathname === '/quiet') {
    if (direct) clearInterval(direct);
    direct = null;
    return reply('quiet');
  }
  if (url.pathname === '/send') {
    const session = [...ready].find((s) => s.id === url.searchParams.get('sid'));
    for (let i = 0; session && i < number('count', 1); i++) session.send({ d: session.data.d++ });
    return reply(session ? 'sent' : 'unknown');
  }
  if (url.pathname === '/churn') {
    const session = [...ready].find((s) => s.id === url.searchParams.get('sid'));
    const room = url.searchParams.get('room') ?? 'churn';
    void session?.join(room);
    void session?.leave(room);
    return reply(session ? 'churned' : 'unknown');
  }
  if (url.pathname === '/stats') {
    return reply({ node: nodeId, sessions: channel.sessionCount, stats: channel.stats(), errors, connected: adapter.connected });
  }
  channel(req, res);
});
server.keepAliveTimeout = 120_000;
await adapter.ready;
server.listen(port, '127.0.0.1', () => print(`ready ${nodeId} ${port}`));
process.on('SIGTERM', async () => {
  await channel.shutdown({ timeout: 500 });
  server.close();
  process.exit(0);
});
