// # Session: one client's conversation with the server
//
// A BrowserChannel session outlives every HTTP request that carries it.
// Requests come and go (a forward POST per batch of maps, a back channel
// GET that is replaced every few kilobytes or after every chunk), and the
// session stitches them into one ordered, acknowledged, two-way stream.
//
// ```text illustrative
// POST /bind?RID=4242          → [[0,["c","Qm9v…",null,8]]]      session created
// GET  /bind?RID=rpc&AID=0     ← [[1,["hi"]]] … [[2,["noop"]]]   back channel
// POST /bind?RID=4243&AID=2    count=1&ofs=0&req0_JSON=…        maps up
// GET  /bind?RID=4244&TYPE=terminate                            Disconnected
// ```
//
// This module owns what lives as long as the session: its identity and
// state, what the app sends and how it is acknowledged, the inbox
// (`inbox.ts`: maps put back in order on the way up), and how it ends.
// Three layers under it are the same object at run time: `backchannel.ts`
// writes arrays down to the client, `events.ts` types the events and
// fences the app's code, and `membership.ts` holds the app's `data` and
// the session's rooms. What every session of a server shares (limits, the
// idle queue, the adapter, the counters) lives once, in a `SessionHost`.
// The HTTP details stay in `handler.ts`.
/** The Session class: identity, state, sending, acknowledgement, closing. @module */
import type { IncomingHttpHeaders } from 'node:http';
import type { Downlink } from './backchannel.ts';
import { Membership } from './membership.ts';
import type { Deadlines } from './deadlines.ts';
import { NOOP_JSON, stringify } from './encoding.ts';
import { type ForwardBatch, type ForwardItem, mapOf } from './maps.ts';
import { Inbox, type InboxLimits } from './inbox.ts';
import type { SendCallback } from './outbox.ts';
import { type Observer, shortId } from './observe.ts';
import { type Query, parseUrl } from './query.ts';
import type { Adapter } from './rooms.ts';
import type { Ledger, SessionLedger } from './recovery.ts';

/** @internal A session of any type parameters, as the server's own code sees it. */
export type AnySession = Session<unknown, unknown, object>;

// ## States
//
// `init` until the handshake chunk has been written, `ok` while it runs,
// `closed` for good. `closed` is final: no method reopens a session, and a
// reconnecting client gets a new one.
/** The session's lifecycle: `init` → `ok` → `closed`. */
export type SessionState = 'init' | 'ok' | 'closed';

export type { SendCallback };
export type { SessionEvents } from './events.ts';

// ## What a session starts from
//
// Two objects go into a new session. `SessionInit` is this session's own:
// read once by the constructor and not kept. `SessionHost` is built once
// per server and shared by all its sessions, so that a hundred thousand
// idle sessions hold one pointer to it rather than a hundred thousand
// copies of the same limits and callbacks.
/** What the handler knows when it creates a session. */
export interface SessionInit {
  /** The new session's id. */
  readonly id: string;
  /** The client's IP address as the socket saw it. */
  readonly address: string;
  /** Headers of the creating request, merged with any WebChannel-encoded ones. */
  readonly headers: IncomingHttpHeaders;
  /** URL of the creating request; its query is parsed only if the app asks. */
  readonly url: string;
  /** `RID` of the creating request. */
  readonly firstRequestId: number;
  /** The handshake array, `["c", id, hostPrefix, 8, …]`. */
  readonly handshake: readonly unknown[];
  /** Whether the client is a WebChannel client (see `webchannel.ts`). */
  readonly webChannel: boolean;
  /** WebChannel's `httpSessionIdParam` name and the id issued for it, or nulls. */
  readonly httpSessionIdParam: string | null;
  /** The id sent in `X-HTTP-Session-Id`, or null. */
  readonly httpSessionId: string | null;
}

/** What every session of one server shares. */
export interface SessionHost {
  /** What one session may hold (see `options.ts`). */
  readonly limits: SessionLimits;
  /** Heartbeat interval in milliseconds. */
  readonly keepAliveInterval: number;
  /** Idle countdowns of sessions with no back channel; expiry closes them. */
  readonly idle: Deadlines<Downlink>;
  /** Where rooms live and broadcasts go (`rooms.ts`). */
  readonly adapter: Adapter;
  /** The server's counters and debug output (`observe.ts`). */
  readonly observer: Observer;
  /** Saves sessions for recovery (`recovery.ts`), or null when the option is off. */
  readonly ledger: Ledger | null;
  /** Called once, when a session closes, so the registry can forget it. */
  forget(session: AnySession, reason: string): void;
  /** Called with exceptions thrown by app code that no `error` listener on the session takes. */
  appError(error: unknown, session: AnySession): void;
}

/** Per-session memory bounds, from the options of the same names. */
export interface SessionLimits extends InboxLimits {
  /** Most unacknowledged JSON characters. */
  readonly maxBufferedBytes: number;
  /** Most unacknowledged arrays. */
  readonly maxBufferedArrays: number;
}

// The arrays the server says on its own behalf, serialised once for all
// (the heartbeat, `NOOP_JSON`, is in `encoding.ts`).
const STOP_JSON = '["stop"]';
const CLOSE_JSON = '["close"]';

// ## The Session class
//
// Sessions are `EventEmitter`s, as in 2.1.0:
//
// | event | arguments | when |
// |---|---|---|
// | `map` | the map | every map the client sends, in order |
// | `message` | the message | a map carrying `JSON`, `_S` or `__data__`, or a JSON-body item |
// | `state changed` | new state, old state | on every transition |
// | `close` | the reason | once, when the session ends |
// | `error` | the error | app code (a listener or a callback) threw |
// | `drain` | | the client has acknowledged everything queued |
//
// The type parameters are the app's: `In` is what clients send, `Out`
// what the server sends them, `Data` the shape of `session.data`. They
// change no behaviour and default to what JSON can carry.
/**
 * One client session. Sessions reach the app through the factory's `onConnect`.
 * @typeParam In - messages from the client.
 * @typeParam Out - messages to the client.
 * @typeParam Data - the app's per-session state, `session.data`.
 */
export class Session<In = unknown, Out = unknown, Data extends object = Record<string, unknown>>
  extends Membership<In, Out, Data> {
  /** The session id (the `SID` on the wire). */
  readonly id: string;
  /** The client's address when the session was created. */
  readonly address: string;
  /** Headers of the request that created the session. */
  readonly headers: IncomingHttpHeaders;
  /** Where the session is in its lifecycle. */
  state: SessionState = 'init';
  /** Whether the client is Google's WebChannel client. */
  readonly webChannel: boolean;
  /** The routing id sent to a WebChannel client in `X-HTTP-Session-Id`, or null. */
  readonly httpSessionId: string | null;
  /** @internal The URL parameter that carries `httpSessionId`, or null. */
  readonly httpSessionIdParam: string | null;

  // ### Fields
  //
  // Down: the outbox of arrays and the one back channel, if any. Up: the
  // inbox, which puts maps back in order. Time: a back channel carries its
  // own heartbeat timer; while there is none, the session sits in the
  // host's `idle` queue (`deadlines.ts`), which closes it when its time
  // runs out. The heartbeat is `unref`ed and both are stopped in
  // `close()`, so a session never keeps the process alive.
  //
  // Every field here is paid for by every idle session, which is why the
  // list is short: a server may hold a hundred thousand of them. The
  // inbox is one more object, so it is made only when a request brings
  // maps or arrives out of turn; until then `inbox` is the `RID` expected
  // next (see Receiving).
  private inbox: Inbox | number;
  /** @internal */
  protected readonly host: SessionHost;
  private queryOrUrl: Query | string;
  /** @internal What recovery saved of this session, or null when it is not saved. */
  recovery: SessionLedger | null = null;

  /** @internal Sessions are created by the handler and handed to `onConnect`. */
  constructor(host: SessionHost, init: SessionInit) {
    super();
    this.host = host;
    this.id = init.id;
    this.address = init.address;
    this.headers = init.headers;
    this.queryOrUrl = init.url;
    this.webChannel = init.webChannel;
    this.httpSessionId = init.httpSessionId;
    this.httpSessionIdParam = init.httpSessionIdParam;
    this.inbox = init.firstRequestId;
    this.host.idle.start(this);
    this.outbox.queue(stringify(init.handshake), null, null);
  }

  // ## The creating request's query
  //
  // A session keeps the creating request's URL, the very string Node
  // parsed, and parses its query only if the app reads `session.query`:
  // the string is a quarter of the size of the parsed object, and most
  // apps never look. The parsed object then replaces the URL, so every
  // read sees the same one.
  /** Query parameters of the request that created the session. */
  get query(): Query {
    if (typeof this.queryOrUrl === 'string') this.queryOrUrl = parseUrl(this.queryOrUrl).query;
    return this.queryOrUrl;
  }

  /** The client's `CVER`, or null. */
  get appVersion(): string | null {
    return this.query.CVER ?? null;
  }

  // ## How it began
  //
  // A session created with `OSID` names the one it replaces. With the
  // `recovery` option (`recovery.ts`) the new session may have taken over
  // the old one whole: its unreceived arrays, its rooms' broadcasts since,
  // its rooms and its `data`. `onConnect` can tell, and say so to the user:
  //
  // | `recovered` | `previousId` | `recoveryFailure` | |
  // |---|---|---|---|
  // | false | null | null | a new client |
  // | true | `n2.Qm9v…` | null | nothing was lost |
  // | false | `n2.Qm9v…` | `"no saved state for …"` | a fresh start, and why |
  /** True when this session took over its predecessor's state whole (`recovery` option). */
  get recovered(): boolean {
    return this.recovery?.recovered ?? false;
  }

  /** The id of the session this one replaces (`OSID`), when recovery looked for it. */
  get previousId(): string | null {
    return this.recovery?.previousId ?? null;
  }

  /** Why the predecessor could not be recovered, or null. */
  get recoveryFailure(): string | null {
    return this.recovery?.failure ?? null;
  }

  // ## Sending
  //
  // `send` queues one array and schedules a flush. Flushing waits for the
  // end of the current tick, so a burst of sends (a broadcast, or all that
  // `onConnect` says) leaves as one chunk with one length prefix.
  /**
   * Queues `data` for the client.
   * @param callback - called once the client acknowledges the array, or with
   *   an Error if the session ends first.
   * @returns the array id, or -1 when the session is closed (the callback then gets an Error).
   * @throws TypeError - if `data` has no JSON form.
   */
  send(data: Out, callback?: SendCallback): number {
    return this.enqueue(stringify(data), null, callback ?? null, true, true);
  }

  // A broadcast arrives here already serialised: the text was made once
  // for every recipient (`broadcast.ts`), and this session only gives it
  // an array id of its own.
  /** @internal Queues an array whose JSON text is already made. */
  sendJson(json: string): number {
    return this.enqueue(json, null, null, true);
  }

  // `stop` asks the client to go away for good: on `["stop"]` the Closure
  // client fails with `STOP` and does not reconnect. The session itself
  // stays open (the client may still post), so apps usually close it in
  // the callback, which fires once the array is written.
  /**
   * Sends `["stop"]`, telling the client not to reconnect.
   * @param callback - called once `["stop"]` has been written to a back channel.
   */
  stop(callback?: SendCallback): void {
    this.enqueue(STOP_JSON, callback ?? null, null, false);
  }

  /** Schedules a flush of queued arrays to the back channel at the end of this tick. */
  flush(): void {
    this.scheduleFlush();
  }

  // `own` says the text was made for this session alone, which lets the
  // outbox keep a big one as bytes once it is written (`outbox.ts`).
  private enqueue(json: string, onSent: SendCallback | null, onAck: SendCallback | null,
    fromApp: boolean, own = false): number {
    if (this.state === 'closed') {
      const callback = onAck ?? onSent;
      if (callback) process.nextTick(() => this.callApp(callback, new Error('closed')));
      return -1;
    }
    const id = this.outbox.queue(json, onSent, onAck, own);
    if (fromApp) this.host.observer.messageOut(this, json);
    if (this.recovery !== null) this.host.ledger!.mark(this);
    this.flush();
    this.checkBuffer();
    return id;
  }

  // A client that stops acknowledging (or stops reading) makes the outbox
  // grow with every send. Past `maxBufferedBytes` or `maxBufferedArrays`
  // the session ends with a reason naming the limit, and every callback
  // still waiting, the last send's included, gets that reason as an Error.
  // Apps that produce faster than a client consumes should watch
  // `bufferedBytes` and wait for `drain` well before that.
  private checkBuffer(): void {
    const { maxBufferedBytes, maxBufferedArrays } = this.host.limits;
    let reason: string | null = null;
    if (this.outbox.bufferedBytes > maxBufferedBytes) {
      reason = `Send buffer over ${maxBufferedBytes} bytes (maxBufferedBytes)`;
    } else if (this.outbox.length > maxBufferedArrays) {
      reason = `Send buffer over ${maxBufferedArrays} arrays (maxBufferedArrays)`;
    }
    if (reason === null) return;
    this.host.observer.log('session %s over a limit: %s', shortId(this.id), reason);
    this.close(reason);
  }

  // ## After a write, and when quiet
  //
  // The back channel (`backchannel.ts`) does the writing; these two say
  // what a write means to the session and what a heartbeat is.
  // After every write: the first chunk ever written is the handshake, so
  // the session is now `ok`; then `stop` callbacks learn their array left.
  /** @internal */
  protected afterWrite(sent: SendCallback[]): void {
    if (this.state === 'init') this.changeState('ok');
    for (const callback of sent) this.callApp(callback);
  }

  /** @internal */
  protected appError(error: unknown): void {
    this.host.appError(error, this);
  }

  /** @internal */
  protected override writableUpTo(): number {
    return this.recovery === null ? Infinity : this.recovery.saved;
  }

  /** @internal */
  protected heartbeat(): void {
    this.host.observer.heartbeats++;
    this.enqueue(NOOP_JSON, null, null, false);
  }

  // ## Acknowledgements
  //
  // Every request carries `AID`, the newest array id the client has. The
  // outbox lets those arrays go and hands back their callbacks. When that
  // empties the outbox, the session emits `drain`: everything sent so far
  // has arrived.
  /** @internal Handles the `AID` of a request (or the `OAID` of a reconnect). */
  acknowledge(arrayId: number): void {
    const before = this.outbox.length;
    for (const callback of this.outbox.acknowledge(arrayId)) this.callApp(callback);
    if (before === this.outbox.length) return;
    if (this.recovery !== null) this.host.ledger!.mark(this);
    if (this.outbox.length === 0 && this.state !== 'closed') this.emitApp('drain');
  }

  // What recovery reads of the outbox (`recovery.ts`): what to save, what
  // the client has, and what a successor in this process should resend.
  /** @internal The arrays queued from id `fromId` on, and the id of the last one. */
  unsavedArrays(fromId: number): { texts: string[]; firstId: number; lastId: number } {
    const texts = this.outbox.textsFrom(fromId);
    const firstId = Math.max(fromId, this.outbox.oldestId);
    return { texts, firstId, lastId: firstId + texts.length - 1 };
  }

  /** @internal The newest array id the client has acknowledged. */
  get acknowledgedId(): number {
    return this.outbox.oldestId - 1;
  }

  /** @internal JSON of the arrays the client has not acknowledged, less heartbeats. */
  unacknowledged(): string[] {
    const from = Math.max(1, this.outbox.oldestId);
    return this.outbox.textsFrom(from).filter((json) => json !== NOOP_JSON);
  }

  // `bufferedBytes` lets an app apply backpressure: if a client stops
  // acknowledging, this grows, and the app can stop producing for it.
  /** JSON characters queued for the client or sent but not yet acknowledged. */
  get bufferedBytes(): number {
    return this.outbox.bufferedBytes;
  }

  // ## Receiving
  //
  // The inbox (`inbox.ts`) puts batches back in `RID` order and maps in
  // map-id order; each map then reaches the app as `map` and, if it
  // carries one, `message`. A client that overflows what the inbox may
  // hold ends its session, and `receive` returns the reason so the handler
  // can say the same in a `400`.
  /**
   * @internal Delivers a decoded forward-channel body in `RID` and map-id order.
   * @param bodyBytes - size of the body, counted while it waits for its turn.
   * @returns null, or the reason the session closed because a limit overflowed.
   */
  receive(requestId: number, batch: ForwardBatch | null, bodyBytes = 0): string | null {
    if (this.passesEmpty(requestId, batch)) return null;
    const overflow = this.openInbox().receive(requestId, batch, bodyBytes);
    if (overflow !== null) this.close(overflow);
    return overflow;
  }

  // A request with no maps, in turn or late, has nothing to order: the
  // creating request's `count=0` is one. While no inbox exists, such a
  // request only moves the expected `RID` on, as the inbox would have.
  //
  // > **Note (memory):** an idle session whose client never sent a map
  // > holds no inbox: 72 bytes and one object fewer per session.
  private passesEmpty(requestId: number, batch: ForwardBatch | null): boolean {
    const expected = this.inbox;
    if (typeof expected !== 'number' || requestId > expected) return false;
    if (batch !== null && batch.items.length > 0) return false;
    if (requestId === expected) this.inbox = expected + 1;
    return true;
  }

  private openInbox(): Inbox {
    const inbox = this.inbox;
    if (typeof inbox !== 'number') return inbox;
    return (this.inbox = new Inbox(inbox, this.host.limits, this));
  }

  // A terminate must not overtake data the client sent before it, so it
  // waits its turn in the inbox.
  /** @internal Closes the session with "Disconnected" once every earlier `RID` is handled. */
  terminateAt(requestId: number): void {
    this.openInbox().runAt(requestId, () => this.close('Disconnected'));
  }

  // A map reaches `map` listeners as an object, built only if there is one
  // (`maps.ts` hands over its fields).
  /** @internal Turns one map, in order, into `map` and `message` events (called by the inbox). */
  deliver(item: ForwardItem): void {
    if (this.recovery !== null && this.recovery.maps++ < this.recovery.skipMaps) return;
    if (this.state === 'closed' || item.kind === 'skip') return;
    if (item.kind === 'map' && this.listenerCount('map') > 0)
      this.emitApp('map', mapOf(item.fields));
    if (item.kind === 'json' || item.hasMessage) {
      this.host.observer.messageIn(this, item.message);
      this.emitApp('message', item.message);
    }
  }

  // ## State changes
  //
  // Closing leaves every room before anyone hears of it, so nothing the
  // app broadcasts from a `close` listener reaches the closed session;
  // `session.rooms` still lists the rooms during those listeners (an app
  // may want to tell them who left) and is empty afterwards.
  /**
   * Ends the session: the back channel is closed, callbacks still waiting get
   * an Error carrying `reason`, and later requests for this id get `Unknown SID`.
   * @param reason - passed to `close` listeners; `"Closed"` if not given.
   */
  close(reason = 'Closed'): void {
    if (this.state === 'closed') return;
    this.sayClose(reason);
    this.changeState('closed');
    this.host.idle.cancel(this);
    this.endBackChannel();
    if (typeof this.inbox !== 'number') this.inbox.clear();
    this.leaveAllRooms();
    this.host.forget(this, reason);
    this.emitApp('close', reason);
    this.forgetRooms();
    const error = new Error(reason);
    for (const callback of this.outbox.drain()) this.callApp(callback, error);
  }

  // WebChannel clients understand one more array, `["close"]`: a clean
  // goodbye that ends the channel with `CLOSE` and no `ERROR`
  // (`WebChannelBase.onInput_`). When the server ends a WebChannel session
  // that has a back channel, it says so there first. BCSocket clients would
  // take the array for app data, and a client that disconnected itself
  // needs no goodbye, so neither gets one.
  private sayClose(reason: string): void {
    if (!this.webChannel || !this.hasBackChannel || reason === 'Disconnected') return;
    this.outbox.queue(CLOSE_JSON, null, null);
    this.flushNow();
  }

  private changeState(next: SessionState): void {
    const previous = this.state;
    this.state = next;
    this.emitApp('state changed', next, previous);
  }
}
