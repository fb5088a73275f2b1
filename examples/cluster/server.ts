// # The chat demo, on many processes
//
// `npm run start:cluster` runs three of these behind nginx, sharing one
// Redis (`scripts/start-cluster.mjs`). Each is the one-process chat
// (`examples/chat/server.ts`) given a few options: a `nodeId`, which starts
// every session id it makes, the Redis adapter, `recovery`, and who a
// client is behind nginx (`clientKey`). Nothing else changes:
// the chat is built from rooms and broadcasts, which the adapter carries
// between processes, and each member list entry says which process its
// user is on, `ada (n2)`, read from that user's session id.
//
// Environment: `NODE_ID` (this process's name), `PORT` (or `NODE_PORT`),
// `REDIS_URL`.
import type { IncomingMessage } from 'node:http';
import { createClient } from 'redis';
import { addressKey } from '../../src/index.ts';
import { redisAdapter } from '../../src/redis/index.ts';
import { createChatServer } from '../chat/server.ts';

const nodeId = process.env.NODE_ID ?? 'n1';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

// `disableOfflineQueue`: while Redis is away, a publish fails at once and
// is reported, rather than piling up in memory until it returns.
const redis = createClient({ url: redisUrl, disableOfflineQueue: true });
redis.on('error', () => {});
await redis.connect();
const adapter = redisAdapter({ client: redis });
// `recovery`: a process that dies (try `kill -9` on one) loses nothing.
// Its users' pages reconnect to another process, which takes their
// sessions over from Redis: the same public id, the same rooms, and every
// message they missed, once each.
//
// Every request comes through nginx, so the client is the address nginx
// saw: the last entry of `X-Forwarded-For`, which nginx appends. (These
// processes listen on 127.0.0.1 only, so nobody reaches them otherwise.)
const clientKey = (req: IncomingMessage): string =>
  addressKey(String(req.headers['x-forwarded-for'] ?? req.socket.remoteAddress)
    .split(',').at(-1)!.trim());
const { server, channel } = createChatServer({
  adapter, nodeId, recovery: { window: 120_000 }, clientKey,
});
channel.on('error', (error) => console.error(`[${nodeId}]`, (error as Error).message));

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
