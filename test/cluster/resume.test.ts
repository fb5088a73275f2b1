// The guide's recipe for WebChannel clients, which never name their old
// session (docs/recovery.md, "Resuming a WebChannel client from room
// history"): Google's WebChannel client remembers the id of the last
// broadcast it saw, says so in `messageUrlParams` when it opens its next
// channel, and the app replays the room's history after it. Real Redis,
// the real client; the server code is the guide's.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import browserChannel from '../../src/index.ts';
import { redisAdapter } from '../../src/redis/index.ts';
import { until } from '../helpers.ts';
import { openWebChannel } from '../webchannel-client.ts';
import { type TestRedis, missingBinaries, startRedis } from './harness.ts';

const skip = missingBinaries().includes('redis-server') ? 'needs redis-server' : false;

describe('a WebChannel client resumes from room history', { skip }, () => {
  let redis: TestRedis;
  let server: http.Server;
  let url: string;
  let channel: ReturnType<typeof browserChannel>;
  let adapter: ReturnType<typeof redisAdapter>;

  before(async () => {
    redis = await startRedis();
    adapter = redisAdapter({ url: redis.url });
    // The guide's server, as written there.
    channel = browserChannel({ adapter, recovery: { window: 120_000 } }, async (session) => {
      await session.join('feed');
      const seen = session.query.lastSeen; // sent with messageUrlParams
      if (typeof seen !== 'string') return;
      const history = await adapter.recovery.read('feed');
      const index = history?.messages.findIndex((m) => JSON.parse(m.json).id === seen) ?? -1;
      if (history === null || index === -1) return session.send({ type: 'reload' });
      for (const message of history.messages.slice(index + 1)) session.send(JSON.parse(message.json));
    });
    server = http.createServer(channel).listen(0, '127.0.0.1');
    await once(server, 'listening');
    await adapter.ready;
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/channel`;
  });
  after(async () => {
    channel?.close();
    await adapter?.close(); // before Redis goes, or its client would keep reconnecting
    server?.close();
    server?.closeAllConnections();
    await redis?.stop();
  });

  const say = (text: string) => channel.to('feed').send({ id: randomUUID(), text });
  const texts = (received: unknown[]) =>
    received.map((m) => (m as { text?: string; type?: string }).text ?? (m as { type: string }).type);

  test('what the room said while the client was away arrives once, then live traffic', async () => {
    const first = openWebChannel(url, { sendRawJson: true, messageUrlParams: {} });
    await first.opened;
    await until(() => channel.sessionCount === 1, 3000, 'joined');
    await new Promise((resolve) => setTimeout(resolve, 200));
    say('one');
    say('two');
    await until(() => first.received.length === 2, 5000, 'two broadcasts');
    const lastSeen = (first.received.at(-1) as { id: string }).id;
    first.client.close();
    await until(() => channel.sessionCount === 0, 5000, 'first channel gone');

    say('three');
    say('four');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = openWebChannel(url, { sendRawJson: true, messageUrlParams: { lastSeen } });
    await second.opened;
    await until(() => second.received.length === 2, 5000, 'the missed two');
    await new Promise((resolve) => setTimeout(resolve, 200));
    say('five');
    await until(() => second.received.length === 3, 5000, 'live again');
    assert.deepEqual(texts(second.received), ['three', 'four', 'five']);
    second.client.close();
  });

  test('an id the history no longer holds: the client is told to reload', async () => {
    const client = openWebChannel(url, { sendRawJson: true, messageUrlParams: { lastSeen: 'gone' } });
    await client.opened;
    await until(() => client.received.length === 1, 5000, 'an answer');
    assert.deepEqual(texts(client.received), ['reload']);
    client.client.close();
  });
});
