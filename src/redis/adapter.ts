// # The Redis adapter: rooms and broadcasts across processes
//
// `MemoryAdapter` (`../rooms.ts`) knows the sessions of one process. This
// adapter keeps that local index and adds what the other processes need
// to hear, over Redis pub/sub (the channels are listed in `wire.ts`):
//
// ```text
// n1: channel.to('lobby').send({t:'hi'})
//     → delivers to n1's members of "lobby" at once
//     → PUBLISH bc:room:lobby "b n1\n[[\"lobby\"],[],[]]\n{\"t\":\"hi\"}"
// n2 (subscribed to bc:room:lobby, it has members there)
//     → delivers to n2's members; n1 ignores its own message
// n3 (no member in "lobby", not subscribed) → hears nothing
// ```
//
// Delivery is **at most once**. Pub/sub keeps nothing: a process that is
// disconnected from Redis when a broadcast is published never gets it,
// and nothing is queued to send later. Within one session nothing is ever
// delivered twice, and the session's own outbox (acknowledgements,
// resending on a new back channel) makes whatever *was* delivered reach
// the client. With the server's `recovery` option, room broadcasts are
// numbered and kept in a history (`history.ts`), and a process reads back
// what its subscriber missed: each room's members then get every
// broadcast once, in order, as far back as the history reaches.
//
// Around that core the adapter keeps three more things going over the
// same two connections (one to publish and run scripts, one subscribed):
// a list of the live processes, kept by heartbeats; `sessionIds()`
// answered by every process; and the relay (`relay.ts`), which carries a
// request that reached the wrong process to the session's owner. With
// `recovery` on, the same `History` that numbers room broadcasts is also
// the server's store of sessions (see "Broadcasting" below).
/** The Redis adapter: rooms, broadcasts, presence and relaying across processes. @module */
// Values come from the package's public entry only, so that the CommonJS
// build of this entry shares the core's classes instead of copying them.
import { MemoryAdapter } from '../index.ts';
import type { Adapter, AdapterHost, Audience, Broadcast, RelayTarget } from '../rooms.ts';
import type { Session } from '../session.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  Names, broadcastPayload, decodeAudience, decodeBroadcast, encodeAudience, encodeBroadcast, parse,
} from './wire.ts';
import { Relay } from './relay.ts';
import { History, type Position } from './history.ts';

// ## The Redis connection it needs
//
// What this adapter calls on a node-redis client, spelled out so that any
// client of `redis` v5 or later fits without naming its many type
// parameters.
/** A pub/sub listener: called with each message and its channel. */
export type PubSubListener = (message: string, channel: string) => void;

/** The parts of a node-redis client this adapter uses. */
export interface RedisConnection {
  /** Connected and usable. */
  readonly isReady: boolean;
  /** Connected, or connecting. */
  readonly isOpen: boolean;
  /** Opens the connection. */
  connect(): Promise<unknown>;
  /** PUBLISH. */
  publish(channel: string, message: string): Promise<unknown>;
  /** SUBSCRIBE, with a listener called as `(message, channel)`. */
  subscribe(channel: string, listener: PubSubListener): Promise<unknown>;
  /** UNSUBSCRIBE the listener. */
  unsubscribe(channel: string, listener: PubSubListener): Promise<unknown>;
  /** EVAL a Lua script. */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** EVALSHA: a Lua script Redis already has, by its SHA-1. */
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** A new client with the same options (and `overrides`). */
  duplicate(overrides?: { disableOfflineQueue?: boolean; name?: string }): RedisConnection;
  /** Closes the connection once pending commands are answered. */
  close(): Promise<unknown>;
  /** Closes the connection at once. */
  destroy(): void;
  /** Listens for `error`, `ready`, `end`. */
  on(event: string, listener: (error: Error) => void): unknown;
}

/** Options of {@link RedisAdapter}. */
export interface RedisAdapterOptions {
  /** A node-redis client, connected or not: published on, and duplicated to subscribe. */
  client: RedisConnection;
  /** True when the adapter created `client` and should close it. Default false. */
  ownsClient?: boolean;
  /** Start of every channel and key name. Default `"bc"`. */
  prefix?: string;
  /** Milliseconds between heartbeats. Default 2000. */
  heartbeatInterval?: number;
  /** A process with no heartbeat for this many milliseconds is gone. Default 6000. */
  nodeTimeout?: number;
  /** Milliseconds `sessionIds()` waits for the other processes. Default 1000. */
  requestTimeout?: number;
  /** Milliseconds a relayed request waits for the owner to start answering. Default 10000. */
  relayTimeout?: number;
  /**
   * Milliseconds a `join` waits for Redis to confirm the room's subscription before it resolves
   * anyway (the subscription is still made when Redis answers). Default 2000.
   */
  joinTimeout?: number;
}

// Timers are whole milliseconds that `setTimeout` can take: a typo such
// as `joinTimeout: -1` or `'2s'` fails at startup, not in an outage.
// 2147483647 is `setTimeout`'s largest delay; Node runs a larger one, or
// one below 1, after 1 ms, which would turn a generous timeout into none.
const TIMERS = ['heartbeatInterval', 'nodeTimeout', 'requestTimeout', 'relayTimeout',
  'joinTimeout'] as const;

function checkTimers(options: RedisAdapterOptions): void {
  for (const name of TIMERS) {
    const value: unknown = options[name];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
      const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
      throw new RangeError(`redisAdapter: ${name} must be whole milliseconds from 1 to 2147483647,`
        + ` not ${typeof value} ${shown}`);
    }
  }
}

// ## Heartbeats
//
// Every process adds itself to a sorted set, scored by Redis's own clock,
// drops entries older than `nodeTimeout`, and reads who is left, in one
// script, so one round trip every `heartbeatInterval` keeps the list of
// live processes. A process killed with `kill -9` stops beating and falls
// out of every other process's list within `nodeTimeout` plus one beat.
//
// ```text illustrative
// EVAL heartbeat 1 bc:nodes n1 6000
//   ZADD bc:nodes 1767000012345 n1          (TIME, in milliseconds)
//   ZREMRANGEBYSCORE bc:nodes -inf 1767000006345
//   ZRANGE bc:nodes 0 -1                    → ["n1","n2","n3"]
// ```
//
// Redis's clock scores every entry, so the machines' clocks never need to
// agree. The script is a few lines, sent in full (`EVAL`) with each beat.
// `LEAVE` is the polite goodbye at close: the others then drop this
// process at their next beat instead of `nodeTimeout` later.
const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)`;
const LEAVE = `return redis.call('ZREM', KEYS[1], ARGV[1])`;

type Listener = PubSubListener;

// A `sessionIds()` question in flight: `answer` takes one process's ids.
interface Question {
  answer(node: string, ids: string[]): void;
  finish(): void;
}

// ## The adapter
//
// It extends `MemoryAdapter`, so the index of local members and local
// delivery (`deliver`, `each`) are the core's own; what follows adds the
// traffic between processes. The `History` store is made with the
// adapter and shares its publishing client; the relay is made at
// `attach`, once the server has said what this process is called.
/** Rooms and broadcasts across processes through Redis pub/sub; see the module prose. */
export class RedisAdapter extends MemoryAdapter implements Adapter {
  /** Resolves once connected and subscribed; broadcasts before then stay in this process. */
  readonly ready: Promise<void>;
  private readonly publisher: RedisConnection;
  private subscriber: RedisConnection | null = null;
  private readonly names: Names;
  private readonly settings: Required<Omit<RedisAdapterOptions, 'client'>>;
  private readonly listener: Listener = (message, channel) => this.onMessage(message, channel);
  private markReady: () => void = () => {};

  // Subscriptions: `wanted` is what this process should hear (its rooms
  // with a local member, plus the fixed channels), `active` what Redis has
  // confirmed. Changes to one channel run one after another (`pending`),
  // so a join racing a leave ends in the right state.
  private readonly wanted = new Set<string>();
  private readonly active = new Set<string>();
  private readonly pending = new Map<string, Promise<void>>();

  // Presence: the live processes as of the last heartbeat, and when the
  // connection last came up (a fresh Redis knows nobody for one beat).
  private live = new Set<string>();
  private upSince = 0;
  private beating: Promise<void> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;

  // `sessionIds()` questions waiting for answers, by number.
  private questionCount = 0;
  private readonly questions = new Map<number, Question>();

  // Outage reporting, at most once a second: broadcasts lost since the
  // last report, and when that was.
  private dropped = 0;
  private lastReport = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private relayer: Relay | null = null;

  /** Session state and room history for the server's `recovery` option (`history.ts`). */
  readonly recovery: History;

  constructor(options: RedisAdapterOptions) {
    super();
    checkTimers(options);
    this.publisher = options.client;
    this.settings = {
      ownsClient: options.ownsClient ?? false,
      prefix: options.prefix ?? 'bc',
      heartbeatInterval: options.heartbeatInterval ?? 2000,
      nodeTimeout: options.nodeTimeout ?? 6000,
      requestTimeout: options.requestTimeout ?? 1000,
      relayTimeout: options.relayTimeout ?? 10_000,
      joinTimeout: options.joinTimeout ?? 2000,
    };
    this.names = new Names(this.settings.prefix);
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.recovery = new History(this.publisher, this.settings.prefix, {
      join: (session, room) => session.join(room),
      leave: (session, room) => session.leave(room),
      pass: (message, room, position) => this.passOn(message, room, position),
      missed: (room, why) => this.missed(room, why),
    });
  }

  /** This process's node id (set when the server attaches the adapter). */
  get nodeId(): string {
    return this.host?.nodeId ?? '';
  }

  /** Node ids of the live processes, this one included, as of the last heartbeat. */
  get nodes(): ReadonlySet<string> {
    return this.live;
  }

  /** True while both Redis connections are up. */
  get connected(): boolean {
    return this.publisher.isReady && (this.subscriber?.isReady ?? false);
  }

  // ## Starting
  //
  // `attach` is synchronous (the server calls it while it is built), so the
  // connections open in the background; `ready` says when. The subscriber
  // is a duplicate of the client with no offline queue: while Redis is
  // away, commands fail at once instead of piling up in memory. It is
  // named `bc:sub:<node id>` (`CLIENT SETNAME`), so that `CLIENT LIST`
  // tells an operator which process each subscriber belongs to.
  //
  // Every process listens on three channels from the start: `bc:all`,
  // `bc:ctl` and its own `bc:node:<id>`; rooms come and go with members.
  // Errors on either connection are reported, never thrown (`outage`).
  // When the subscriber reports an error or its end, frames can no longer
  // arrive, so the relay ends whatever it has in flight. The heartbeat
  // timer starts here, `unref`ed, and beats once the publisher is ready.
  override attach(host: AdapterHost): void {
    super.attach(host);
    this.relayer = new Relay(host, {
      publish: (node, text) => this.publish(this.names.node(node), text, false),
      connected: () => this.connected,
      ownerGone: (node) => this.ownerGone(node),
      timeout: this.settings.relayTimeout,
    });
    for (const channel of [this.names.all, this.names.control, this.names.node(host.nodeId)]) {
      this.wanted.add(channel);
    }
    // (Redis refuses a name with a space or anything outside printable ASCII.)
    const name = `${this.settings.prefix}:sub:${host.nodeId}`.replace(/[^!-~]/g, '_');
    const subscriber = this.publisher.duplicate({ disableOfflineQueue: true, name });
    this.subscriber = subscriber;
    const onError = (error: Error): void => this.outage(error);
    this.publisher.on('error', onError);
    subscriber.on('error', onError);
    subscriber.on('ready', () => void this.up());
    this.publisher.on('ready', () => void this.up());
    subscriber.on('end', () => this.relayer?.disconnected());
    subscriber.on('error', () => this.relayer?.disconnected());
    const every = this.settings.heartbeatInterval;
    this.heartbeatTimer = setInterval(() => void this.beat(), every).unref();
    void this.start(subscriber);
  }

  private async start(subscriber: RedisConnection): Promise<void> {
    try {
      if (!this.publisher.isOpen) await this.publisher.connect();
      await subscriber.connect();
    } catch (error) {
      this.outage(error);
    }
  }

  // Both connections up (at start, or after an outage): confirm every
  // wanted subscription, beat at once, say hello on the control channel
  // (`h n1`: processes that beat before us learn of us now, not at their
  // next beat), and let `ready` resolve.
  //
  // After an outage, node-redis subscribes its connection again, on its
  // own, to what it had (`active` is left as it was), so `sync` only
  // settles the difference: rooms joined or left while Redis was away.
  // `upSince` starts the grace period of `settled` below.
  private async up(): Promise<void> {
    if (!this.connected || this.closed) return;
    this.upSince = Date.now();
    const channels = new Set([...this.wanted, ...this.active]);
    await Promise.all([...channels].map((channel) => this.sync(channel)));
    if (this.recovery.enabled) this.recovery.resume();
    await this.beat();
    this.publish(this.names.control, `h ${this.nodeId}`, false);
    this.markReady();
  }

  // ## Rooms
  //
  // A room's channel is subscribed while this process has a member in it:
  // the first local join subscribes, and its Promise (and that of any join
  // made meanwhile) resolves once Redis confirms, which is when broadcasts
  // from every process reach the session. The last local leave
  // unsubscribes. While Redis is down, joins resolve at once (the local
  // part works) and the subscription is made when it returns.
  //
  // With recovery on, a join also learns where the room's history stands
  // (`history.ts`), so that the session's saved position means something
  // from its first save on.
  //
  // A Redis that is up but does not answer (frozen, or cut off by a
  // network partition that sends no reset) would hold every join, and
  // every app awaiting one, for as long as it lasts. So a join waits at
  // most `joinTimeout`, then resolves as it would with Redis down, and the
  // app's `error` listener hears why (through the outage report below, at
  // most once a second). The subscription is still made when Redis
  // answers.
  override join(session: Session<unknown, unknown, object>, room: string): Promise<void> {
    const first = !this.members.has(room);
    void super.join(session, room);
    const channel = this.names.room(room);
    if (first) this.wanted.add(channel);
    const pending = first ? this.sync(channel) : this.pending.get(channel);
    if (!this.recovery.enabled) {
      return pending === undefined ? Promise.resolve() : this.inTime(pending, room);
    }
    const positioned = (pending ?? Promise.resolve()).then(() => this.recovery.joined(room));
    const joined = this.inTime(positioned.catch((error: unknown) => this.outage(error)), room);
    this.recovery.reading(room, joined);
    return joined;
  }

  // The bound on a join. Late work is not cancelled: it finishes when
  // Redis answers, and only the app stops waiting for it.
  private inTime(work: Promise<void>, room: string): Promise<void> {
    const ms = this.settings.joinTimeout;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const what = `the join of room ${JSON.stringify(room)}`;
        this.outage(new Error(`no answer within ${ms} ms to ${what}`));
        resolve();
      }, ms).unref();
      const finish = (): void => {
        clearTimeout(timer);
        resolve();
      };
      work.then(finish, finish);
    });
  }

  // A leave that empties the room here drops its subscription (and, with
  // recovery, its position); any other leave is local only. A closing
  // session leaves every room at once, without waiting on Redis.
  override leave(session: Session<unknown, unknown, object>, room: string): Promise<void> {
    if (!this.remove(session, room)) return Promise.resolve();
    this.lastLeft(room);
    return this.sync(this.names.room(room));
  }

  override leaveAll(session: Session<unknown, unknown, object>): void {
    for (const room of session.rooms) {
      if (!this.remove(session, room)) continue;
      this.lastLeft(room);
      void this.sync(this.names.room(room));
    }
  }

  private lastLeft(room: string): void {
    this.wanted.delete(this.names.room(room));
    this.recovery.left(room);
  }

  // ### One channel's subscription, one change at a time
  //
  // `sync` queues a look at one channel behind any still running for it,
  // and `apply` makes Redis match `wanted` as it stands *when it runs*.
  // So a join, a leave and a join again in one tick run three times in
  // turn: the first subscribes, the other two find nothing to change, and
  // the channel ends subscribed, as it should be. Nothing is done while
  // the subscriber is down; `up` calls `sync` for every channel when it
  // returns. A failed command leaves `active` as it was, to be tried again
  // at the next `up`.
  private sync(channel: string): Promise<void> {
    const next = (this.pending.get(channel) ?? Promise.resolve()).then(() => this.apply(channel));
    this.pending.set(channel, next);
    void next.then(() => {
      if (this.pending.get(channel) === next) this.pending.delete(channel);
    });
    return next;
  }

  private async apply(channel: string): Promise<void> {
    const want = this.wanted.has(channel);
    const subscriber = this.subscriber;
    if (want === this.active.has(channel) || subscriber === null || !subscriber.isReady) return;
    try {
      if (want) {
        await subscriber.subscribe(channel, this.listener);
        this.active.add(channel);
      } else {
        await subscriber.unsubscribe(channel, this.listener);
        this.active.delete(channel);
      }
    } catch (error) {
      this.outage(error);
    }
  }

  // ## Broadcasting
  //
  // Local sessions get the broadcast at once; then it is published once
  // per target channel. A process hearing it on two room channels delivers
  // it once, through the first room the session is in (`deliver`'s `via`).
  //
  // ```text illustrative
  // channel.to(['lobby', 'mods']).send({t:'hi'}) on n1:
  //   PUBLISH bc:room:lobby "b n1\n[[\"lobby\",\"mods\"],[],[]]\n{\"t\":\"hi\"}"
  //   PUBLISH bc:room:mods  (the same text)
  // n2 hears both; a member of both rooms gets it through lobby, once
  // ```
  //
  // The text is made once for every channel. Without Redis, the broadcast
  // reaches this process's sessions only, and is counted as lost (`lost`);
  // a publish that fails later is counted the same way.
  override broadcast(message: Broadcast): void {
    if (this.recovery.enabled && message.rooms !== null) return this.broadcastWithHistory(message);
    this.deliver(message);
    if (!this.connected) return this.lost(1);
    const text = encodeBroadcast(this.nodeId, message);
    if (message.rooms === null) return this.publish(this.names.all, text);
    for (const room of message.rooms) this.publish(this.names.room(room), text);
  }

  // With recovery on, a room broadcast goes into each room's history and
  // comes back to every process, this one included, through pub/sub, in
  // offset order. A room Redis could not take it for gets it here only,
  // at once, as without history (and the loss is reported).
  //
  // Only the connection that writes must be up. If this process's
  // subscriber is the one away, the broadcast still goes into the history
  // and out to the other processes, and the members here get it when the
  // subscriber is back and reads what it missed (`resume`): late, but
  // once and in order, where delivering it here at once would leave every
  // other process without it.
  private broadcastWithHistory(message: Broadcast): void {
    const rooms = message.rooms!;
    if (!this.publisher.isReady) {
      this.deliver(message);
      return this.lost(1);
    }
    const payload = broadcastPayload(message);
    const published = this.recovery.publish(this.nodeId, message, payload,
      (room) => this.names.room(room));
    published.forEach((done, index) => {
      done.catch(() => {
        this.deliver(message, rooms[index]!);
        this.lost(1);
      });
    });
  }

  // A broadcast heard with its room's position goes to the history first,
  // which passes it back in offset order, after any it finds missing
  // (see "Filling what pub/sub dropped" in `history.ts`). While some
  // session is being taken over, each recipient is checked by the history
  // (held, or already replayed); otherwise they are queued directly.
  private deliverWithPosition(message: Broadcast, room: string, epoch: string, offset: number):
    void {
    this.recovery.receive(room, { epoch, offset }, message);
  }

  private passOn(message: Broadcast, room: string, position: Position): void {
    if (!this.recovery.filtering) {
      this.deliver(message, room);
      return;
    }
    this.each(message, room, (session) =>
      this.recovery.offer(session, room, position, message.json));
  }

  // Broadcasts the history could not give back are reported like an
  // outage, at most once a second (further rooms in that second go
  // unsaid):
  //
  // ```text
  // browserchannel-server/redis: room lobby: broadcasts missed while
  //   unsubscribed were not replayed (3 broadcast(s) no longer in its history)
  // ```
  private lastMissReport = 0;

  private missed(room: string, why: string): void {
    const now = Date.now();
    if (this.closed || now - this.lastMissReport < 1000) return;
    this.lastMissReport = now;
    const text = `room ${room}: broadcasts missed while unsubscribed were not replayed (${why})`;
    this.host?.error(new Error(`browserchannel-server/redis: ${text}`));
  }

  // Every `PUBLISH` goes through here, and none is awaited: a failure is
  // counted as a lost broadcast (`counted`, the default, for broadcasts
  // alone), or reported as an outage (relay frames, hellos, and the
  // `sessionIds()` question and answer, which are not broadcasts).
  private publish(channel: string, text: string, counted = true): void {
    this.publisher.publish(channel, text).catch((error: unknown) => {
      if (counted) this.lost(1);
      else this.outage(error);
    });
  }

  // ## What other processes say
  //
  // Every message on every subscribed channel arrives here. Its first
  // word says what it is:
  //
  // | kind | channel | what |
  // |---|---|---|
  // | `b <origin>` | `bc:all`, `bc:room:<room>` | a broadcast, without history |
  // | `B <origin> <epoch> <offset>` | `bc:room:<room>` | a room broadcast, with history |
  // | `h <node>` | `bc:ctl` | hello: a process (re)connected |
  // | `i <asker> <n>` | `bc:ctl` | a `sessionIds()` question |
  // | `r <node> <n>` | `bc:node:<asker>` | one process's answer to it |
  // | `q`, `o`, `a`, `k` | `bc:node:<id>` | relay frames (`relay.ts`) |
  //
  // `b` skips this process's own broadcasts, already delivered here. `B`
  // does not: with history, this process's members hear their room's
  // broadcasts through Redis like everyone else's. Anything that throws
  // (a payload that is not JSON, a bug) is reported and dropped, never
  // thrown into the Redis client; a broadcast that does not decode, or a
  // kind nobody knows, is dropped without a word (another app on the same
  // prefix, say).
  private onMessage(text: string, channel: string): void {
    try {
      this.dispatch(text, channel);
    } catch (error) {
      const message = `browserchannel-server/redis: bad message on ${channel}: ${String(error)}`;
      this.host?.error(new Error(message));
    }
  }

  private dispatch(text: string, channel: string): void {
    const { words, payload } = parse(text);
    const kind = words[0];
    if (kind === 'b') {
      if (words[1] === this.nodeId) return;
      const message = decodeBroadcast(payload);
      if (message !== null) this.deliver(message, this.names.roomOf(channel));
    } else if (kind === 'B') {
      const message = decodeBroadcast(payload);
      const room = this.names.roomOf(channel);
      if (message === null || room === null || words.length < 4) return;
      this.deliverWithPosition(message, room, words[2]!, Number(words[3]));
    } else if (kind === 'h') {
      if (words[1]) this.live.add(words[1]);
    } else if (kind === 'i') {
      this.answer(words[1], words[2], payload);
    } else if (kind === 'r') {
      this.questions.get(Number(words[2]))?.answer(words[1] ?? '', JSON.parse(payload) as string[]);
    } else {
      this.relayer?.receive(words, payload);
    }
  }

  // ## Who is here
  //
  // `sessionIds()` asks every process on the control channel and waits for
  // an answer from each one in the live list, or `requestTimeout`,
  // whichever is first: a process that died a moment ago costs a wait,
  // never a hang, and its sessions are left out.
  //
  // ```text
  // n1 → bc:ctl       i n1 7\n[null,[],[]]
  // n2 → bc:node:n1   r n2 7\n["n2.Qm9v…","n2.x1Yz…"]
  // ```
  //
  // The question carries the audience (`[null,[],[]]`: every session, no
  // exceptions), and each process answers with its own sessions in it.
  // An answer is taken once per process, and one from a process that was
  // not in the list when the question left is taken too, if it comes in
  // time. Without Redis the answer is this process's sessions, and the
  // outage report below says so.
  //
  // > **Note (memory):** each answer is one message holding every id that
  // > process has in the audience. At about 28 bytes an id (`"n2.` and 22
  // > characters, quoted, a comma), a process with 100,000 sessions sends
  // > the asker close to 3 MB through Redis for every question.
  override async sessionIds(audience: Audience): Promise<string[]> {
    const ids = await super.sessionIds(audience);
    const others = [...this.live].filter((node) => node !== this.nodeId);
    if (!this.connected) {
      this.report(new Error('sessionIds(): Redis unavailable, answering with this process only'));
      return ids;
    }
    if (others.length === 0) return ids;
    const number = ++this.questionCount;
    return new Promise((resolve) => {
      const waiting = new Set(others);
      const answered = new Set<string>();
      const finish = (): void => {
        clearTimeout(timer);
        this.questions.delete(number);
        resolve(ids);
      };
      const timer = setTimeout(finish, this.settings.requestTimeout);
      this.questions.set(number, {
        finish,
        answer: (node, theirs) => {
          if (answered.has(node)) return;
          answered.add(node);
          ids.push(...theirs);
          waiting.delete(node);
          if (waiting.size === 0) finish();
        },
      });
      const question = `i ${this.nodeId} ${number}\n${encodeAudience(audience)}`;
      this.publish(this.names.control, question, false);
    });
  }

  // This process hears its own questions on `bc:ctl` too, and leaves them
  // to the asking code, which has counted its own sessions already.
  private answer(asker: string | undefined, number: string | undefined, payload: string): void {
    const audience = decodeAudience(payload);
    if (asker === undefined || asker === this.nodeId || audience === null) return;
    void super.sessionIds(audience).then((ids) => {
      if (!this.connected) return;
      const reply = `r ${this.nodeId} ${number}\n${JSON.stringify(ids)}`;
      this.publish(this.names.node(asker), reply, false);
    });
  }

  // ## Presence
  //
  // One beat at a time; a beat asked for while one runs shares it. Each
  // beat replaces the list of live processes with what Redis holds, and
  // every process that dropped out of it (once `settled`) is gone for the
  // relay (`nodeGone` in `relay.ts`): requests waiting on it get `Unknown
  // SID`, streams to and from it end. A beat that fails leaves the list as
  // it was: without Redis, this process cannot tell who died.
  private beat(): Promise<void> {
    if (this.beating !== null) return this.beating;
    if (!this.publisher.isReady || this.closed) return Promise.resolve();
    const keys = [this.names.nodes];
    const args = [this.nodeId, String(this.settings.nodeTimeout)];
    this.beating = this.publisher.eval(HEARTBEAT, { keys, arguments: args }).then((nodes) => {
      const previous = this.live;
      this.live = new Set(nodes as string[]);
      for (const node of previous) {
        if (!this.live.has(node) && this.settled()) this.relayer?.nodeGone(node);
      }
    }, (error: unknown) => this.outage(error)).finally(() => (this.beating = null));
    return this.beating;
  }

  // Right after Redis comes back (a restart loses the set) other processes
  // have not beaten yet: for one `nodeTimeout`, absence proves nothing.
  // A process missing from a beat in that time is not declared gone, and
  // a request for its sessions is still relayed meanwhile; if it is really
  // gone, the relay answers `503` after `relayTimeout`, not `Unknown SID`.
  private settled(): boolean {
    return Date.now() - this.upSince > this.settings.nodeTimeout;
  }

  // A request names node `node`, which is not in the live list: beat once
  // more to be sure, then say whether it is gone.
  private async ownerGone(node: string): Promise<boolean> {
    if (this.live.has(node)) return false;
    await this.beat();
    return !this.live.has(node) && this.settled();
  }

  // ## Relaying
  //
  // The core's `relay` and `retire` hooks (`rooms.ts`), handed to the relay
  // made at `attach`. Its frames travel on `bc:node:<id>` through
  // `publish` above, so a failure to send one is reported as an outage,
  // not counted as a lost broadcast.
  /** Carries a request for another process's session to it (see `relay.ts`). */
  relay(target: RelayTarget, req: IncomingMessage, res: ServerResponse): Promise<void> {
    return this.relayer!.forward(target, req, res);
  }

  /** Asks the owner of `sessionId` to retire it: a client reconnected on this process. */
  retire(sessionId: string, arrayId: number | null): void {
    this.relayer!.retire(sessionId, arrayId);
  }

  /** Requests relayed: `sent` by this process to owners, `served` by it for other processes. */
  get relayed(): {
    /** Requests this process relayed to their owners. */
    readonly sent: number;
    /** Requests this process served for other processes. */
    readonly served: number;
  } {
    return this.relayer?.counts ?? { sent: 0, served: 0 };
  }

  // ## When Redis is away
  //
  // Local sessions carry on. What could not reach other processes is
  // counted and reported through the server's `error` path at most once a
  // second, so an outage neither crashes the process nor floods its log,
  // and nothing is queued: the count is all that grows. What the app's
  // `error` listener receives (one line, wrapped here):
  //
  // ```text
  // browserchannel-server/redis: Redis unavailable (not connected);
  //   12 broadcast(s) reached this process only
  // ```
  //
  // A report that comes within a second of the last is dropped; only the
  // count of lost broadcasts carries over to the next one. So one outage
  // is usually one line per second whatever fails during it, and a second
  // failure in the same second (a join that timed out, say) goes unsaid.
  private lost(count: number): void {
    this.dropped += count;
    this.report(null);
  }

  private outage(error: unknown): void {
    this.report(error);
  }

  private report(error: unknown): void {
    if (this.closed) return;
    const now = Date.now();
    if (now - this.lastReport < 1000) return;
    this.lastReport = now;
    const detail = error instanceof Error ? error.message
      : error === null ? 'not connected' : String(error);
    const lost = this.dropped > 0 ? `; ${this.dropped} broadcast(s) reached this process only` : '';
    this.dropped = 0;
    const message = `browserchannel-server/redis: Redis unavailable (${detail})${lost}`;
    this.host?.error(new Error(message));
  }

  // ## Closing
  //
  // The server calls `close` when it closes or shuts down, after its
  // sessions are closed; a second call gets the same Promise. In order:
  // stop the timers (heartbeat, history refresh), end every relay in
  // flight, let `sessionIds()` questions answer with what they have, take
  // this process off `bc:nodes` so the others drop it at their next beat,
  // and close the subscriber, and the publisher too if the adapter made
  // it. A client the app handed in is the app's to close.
  override close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    this.closed = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.recovery.close();
    this.relayer?.close();
    for (const question of this.questions.values()) question.finish();
    try {
      if (this.publisher.isReady) {
        await this.publisher.eval(LEAVE, { keys: [this.names.nodes], arguments: [this.nodeId] });
      }
    } catch {
      // Gone already: the others drop us by heartbeat.
    }
    await quit(this.subscriber);
    if (this.settings.ownsClient) await quit(this.publisher);
    await super.close();
  }
}

// A connection that is up closes gracefully, once its pending commands
// are answered; one that is down, or fails to close, is destroyed.
async function quit(client: RedisConnection | null): Promise<void> {
  if (client === null || !client.isOpen) return;
  try {
    if (client.isReady) await client.close();
    else client.destroy();
  } catch {
    client.destroy();
  }
}
