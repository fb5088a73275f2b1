// # browserchannel-server/redis: many processes, one Redis
//
// ```ts
// import browserChannel from 'browserchannel-server';
// import { redisAdapter } from 'browserchannel-server/redis';
//
// const adapter = redisAdapter({ url: 'redis://127.0.0.1:6379' });
// const channel = browserChannel({ adapter, nodeId: process.env.NODE_ID }, onConnect);
// await adapter.ready;
// ```
//
// With it, `channel.to(room).send()` reaches the room's members on every
// process, `sessionIds()` lists every process's sessions, and a request
// that reaches a process not owning its session is relayed to the owner
// (`relay.ts`), so no sticky routing is needed. `nodeId` names this
// process in every session id; without one, the server draws a random
// one (enough for relaying; a sticky proxy config needs names it knows).
//
// This entry is the only code that imports `redis` (node-redis), an
// optional peer dependency: the core keeps none.
/**
 * The Redis adapter entry: `redisAdapter()` and its types.
 * @module browserchannel-server/redis
 */
import { createClient } from 'redis';
import { RedisAdapter, type RedisAdapterOptions, type RedisConnection } from './adapter.ts';

export { RedisAdapter } from './adapter.ts';
export type { PubSubListener, RedisAdapterOptions, RedisConnection } from './adapter.ts';
export {
  History, type HistoryHost, type Position, type RoomHistory, type RoomMessage, type ScriptRunner,
} from './history.ts';

/** Options of {@link redisAdapter}: a `url` or a `client`, and the adapter's settings. */
export interface RedisAdapterConfig extends Omit<RedisAdapterOptions, 'client' | 'ownsClient'> {
  /** `redis://host:port`: the adapter makes its own client, and closes it with the server. */
  url?: string;
  /** A node-redis client instead (connected or not); the adapter leaves it open at close. */
  client?: RedisConnection;
}

// ## Making one
//
// Given a `url`, the adapter makes its own client and closes it with the
// server; it has no offline queue (commands fail at once while Redis is
// away rather than piling up) and reconnects quickly, at most half a
// second apart. Given a `client`, it publishes on that one, leaves it open
// at close, and subscribes on a duplicate of it.
/**
 * Makes a Redis adapter for the `adapter` option.
 * @throws TypeError - when neither `url` nor `client` is given.
 */
export function redisAdapter(config: RedisAdapterConfig): RedisAdapter {
  const { url, client: given, ...settings } = config;
  if (given !== undefined) return new RedisAdapter({ ...settings, client: given });
  if (typeof url !== 'string') {
    throw new TypeError('redisAdapter: give a `url` or a node-redis `client`');
  }
  const own = createClient({
    url,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 500) },
  });
  const client = own as unknown as RedisConnection;
  return new RedisAdapter({ ...settings, client, ownsClient: true });
}

export default redisAdapter;
