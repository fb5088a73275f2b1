// # The chat demo, on many processes
//
// `npm run start:cluster` runs three of these behind nginx, sharing one
// Redis (`scripts/start-cluster.mjs`). It serves the same page as the
// one-process chat (`examples/chat/page.html`) and speaks the same little
// protocol, but every room message and every presence list goes through
// the Redis adapter, so users on different processes chat together, and
// the presence list shows which process each user is on: `ada (n2)`.
//
// Environment: `NODE_ID` (this process's name, the prefix of its session
// ids), `PORT`, `REDIS_URL`.
//
// Presence needs the nicknames of every process's users. Each process
// keeps its own users' names in a Redis hash, `chat:users`
// (`<session id>` → `ada (n2)`), and the list shown is that hash filtered
// by `channel.sessionIds()`, which answers for live processes only: the
// users of a process that died vanish within a few seconds, with no
// cleanup step.
import { createReadStream } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import browserChannel, { type Session } from '../../src/index.ts';
import { redisAdapter } from '../../src/redis/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const nodeId = process.env.NODE_ID ?? 'n1';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const USERS = 'chat:users';

const redis = createClient({ url: redisUrl, disableOfflineQueue: true });
redis.on('error', () => {});
await redis.connect();
const adapter = redisAdapter({ client: redis });

const channel = browserChannel({ base: '/channel', adapter, nodeId }, (session) => {
  const nick = cleanNick(session.query.nick);
  session.data = { nick };
  void session.join('chat').then(() => setUser(session, nick));
  session.on('message', (message) => handle(session, message as Record<string, unknown>));
  session.on('close', () => void redis.hDel(USERS, session.id).then(presence, () => {}));
});
channel.on('error', (error) => console.error(`[${nodeId}]`, (error as Error).message));

function setUser(session: Session, nick: string): void {
  void redis.hSet(USERS, session.id, `${nick} (${nodeId})`).then(presence, () => {});
}

// The list every page shows: the hash, less sessions no live process has.
async function presence(): Promise<void> {
  const [users, live] = await Promise.all([redis.hGetAll(USERS), channel.sessionIds()]);
  const alive = new Set(live);
  const gone = Object.keys(users).filter((id) => !alive.has(id));
  if (gone.length > 0) await redis.hDel(USERS, gone);
  const names = Object.entries(users).filter(([id]) => alive.has(id)).map(([, name]) => name).sort();
  channel.to('chat').send({ type: 'presence', users: names });
}
// Processes that die take their users with them; this notices.
setInterval(() => void presence().catch(() => {}), 5000).unref();

// Message ids are remembered per process for resends; a resend after a
// reconnect may land on another process and then shows twice.
const seen = new Set<string>();

function handle(session: Session, message: Record<string, unknown> | null): void {
  if (message === null || typeof message !== 'object') return;
  const nick = (session.data as { nick: string }).nick;
  if (message.type === 'hello') {
    const next = cleanNick(message.nick);
    (session.data as { nick: string }).nick = next;
    setUser(session, next);
  } else if (message.type === 'say' && typeof message.text === 'string' && typeof message.id === 'string') {
    if (seen.has(message.id)) return void session.send({ type: 'said', id: message.id, from: nick, text: message.text, again: true });
    seen.add(message.id);
    if (seen.size > 10_000) seen.delete(seen.values().next().value!);
    channel.to('chat').send({ type: 'said', id: message.id, from: `${nick} (${nodeId})`, text: message.text.slice(0, 2000) });
  } else if (message.type === 'typing') {
    session.to('chat').send({ type: 'typing', from: nick });
  }
}

function cleanNick(nick: unknown): string {
  const text = typeof nick === 'string' ? nick.trim().slice(0, 24) : '';
  return text || `guest-${Math.random().toString(36).slice(2, 6)}`;
}

// ## The page
let webChannelBundle: string | null = null;

const server = http.createServer((req, res) => channel(req, res, () => {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (path === '/' || path === '/index.html') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'X-Served-By': nodeId });
    return void createReadStream(new URL('../chat/page.html', import.meta.url)).pipe(res);
  }
  if (path === '/webchannel.js') {
    res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
    return void res.end(webChannel());
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('Not found');
}));

function webChannel(): string {
  if (webChannelBundle) return webChannelBundle;
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  webChannelBundle = esbuild.buildSync({
    stdin: { contents: "export { createWebChannelTransport, WebChannel } from '@firebase/webchannel-wrapper/webchannel-blob';", resolveDir: root },
    bundle: true, format: 'iife', globalName: 'WebChannelWrapper', write: false, platform: 'browser', logLevel: 'silent',
  }).outputFiles[0]!.text;
  return webChannelBundle;
}

await adapter.ready;
const port = Number(process.env.NODE_PORT ?? process.env.PORT ?? 0);
server.listen(port, '127.0.0.1', () => console.log(`ready ${nodeId} ${port}`));
process.on('SIGTERM', async () => {
  await channel.shutdown({ timeout: 1000 });
  await adapter.close();
  await redis.quit().catch(() => {});
  server.close();
  process.exit(0);
});
