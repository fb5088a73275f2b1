// # browserchannel-server: the public entry
//
// One function makes a server. It returns connect-style middleware that
// speaks BrowserChannel version 8 under `base`, and calls `onConnect` once
// for every new client session:
//
// ```ts
// import http from 'node:http';
// import browserChannel from 'browserchannel-server';
//
// const channel = browserChannel({ base: '/channel' }, (session) => {
//   session.on('message', (message) => session.send({ echo: message }));
// });
// http.createServer(channel).listen(4321);
// ```
//
// The signature is node-browserchannel 2.1.0's: `browserChannel(onConnect)`
// or `browserChannel(options, onConnect)`, and the result has `close()`.
// Around it sits what a real-time app needs from its server object:
// broadcasting to rooms (`channel.to('lobby').send(…)`), listing members
// (`await channel.to('lobby').sessionIds()`), watching it (`stats()`,
// `on('session')`, `on('refused')`, `on('error')`) and stopping it
// gracefully for a deploy (`await channel.shutdown()`).
//
// This module wires the others together: the handler (`handler.ts`), one
// `SessionHost` that every session shares (`session.ts`), the adapter
// (`rooms.ts`) and the counters (`observe.ts`). The annotated source reads
// them wire first, starting from `handler.ts`.
/**
 * The factory and the public types.
 * @module browserchannel-server
 */
import { EventEmitter, captureRejectionSymbol } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { type Next, createHandler } from './handler.ts';
import { type BrowserChannelOptions, resolveOptions } from './options.ts';
import { bodyTimeouts } from './body.ts';
import { Deadlines } from './deadlines.ts';
import { BroadcastTarget, EVERYONE, type Exclusion } from './broadcast.ts';
import { type Adapter, MemoryAdapter } from './rooms.ts';
import { type ChannelStats, Observer, type Refusal } from './observe.ts';
import type { AnySession, Session, SessionHost } from './session.ts';
import type { Downlink } from './backchannel.ts';
import { Ledger } from './recovery.ts';
import { ClientCounts, clientAddress } from './per-client.ts';

export { Session } from './session.ts';
export type { SessionState, SendCallback, SessionEvents } from './session.ts';
export type { BrowserChannelOptions, CorsFunction, Closable } from './options.ts';
export type { AllowRequest, RequestInfo, Refuse } from './auth.ts';
export type { ClientMap } from './maps.ts';
export type { Query } from './query.ts';
export type { Next } from './handler.ts';
export { ProtocolError, type ProtocolErrorCode } from './errors.ts';
export { MemoryAdapter } from './rooms.ts';
export type { Adapter, AdapterHost, Broadcast, Audience, RelayTarget } from './rooms.ts';
export { BroadcastTarget } from './broadcast.ts';
export type { Exclusion } from './broadcast.ts';
export type { ChannelStats, Refusal } from './observe.ts';
export { sessionStream, type SessionStreamOptions } from './stream.ts';
export { addressKey, clientAddress } from './per-client.ts';
export type {
  RecoveryOptions, RecoveryStore, SessionRecord, SavedSession,
} from './recovery.ts';

// ## The middleware's shape
//
// A function first, so it mounts anywhere a `(req, res, next)` handler
// does: `http.createServer(channel)`, `app.use(channel)` in express or
// connect. `next` is optional; without it, requests that are not ours get
// a `404`.
/** Called once for every new session. It may be `async`: a rejection is reported like a throw. */
export type ConnectHandler<
  In = unknown,
  Out = unknown,
  Data extends object = Record<string, unknown>,
> = (session: Session<In, Out, Data>, req: IncomingMessage) => void;

/** Options of {@link BrowserChannelMiddleware.shutdown}. */
export interface ShutdownOptions {
  /** Milliseconds to wait for clients to acknowledge what they were sent. Default 10000. */
  timeout?: number;
}

/** The middleware's events and their listeners. */
export interface ChannelEvents<
  In = unknown,
  Out = unknown,
  Data extends object = Record<string, unknown>,
> {
  /** App code threw and no session `error` listener took it (`session` is null outside one). */
  error: (error: unknown, session: Session<In, Out, Data> | null) => void;
  /** A new session, after `onConnect` ran. */
  session: (session: Session<In, Out, Data>) => void;
  /** A request was answered with an error status. */
  refused: (refusal: Refusal) => void;
}

/** The middleware returned by the factory. */
export interface BrowserChannelMiddleware<
  In = unknown,
  Out = unknown,
  Data extends object = Record<string, unknown>,
> {
  /** Handles a request under `base`, or passes it to `next`. */
  (req: IncomingMessage, res: ServerResponse, next?: Next): void;
  /** Closes every session with `reason` (default `"Server closed"`). No timer of ours is left. */
  close(reason?: string): void;
  /**
   * Stops gracefully: refuses new sessions (`503`), lets clients acknowledge what they were
   * sent, then closes every session with `"Server shutting down"`. Resolves when done.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Number of live sessions in this process. */
  readonly sessionCount: number;
  /** The live sessions of this process. */
  readonly sessions: Iterable<Session<In, Out, Data>>;
  /** The adapter rooms and broadcasts go through. */
  readonly adapter: Adapter;
  /** A broadcast target: the members of `rooms`. */
  to(rooms: string | readonly string[]): BroadcastTarget<Out>;
  /** A broadcast target: every session except `who` (sessions or rooms). */
  except(who: Exclusion | readonly Exclusion[]): BroadcastTarget<Out>;
  /** Sends `data` to every session (on every process the adapter reaches). */
  send(data: Out): void;
  /** Ids of every session, on every process the adapter reaches. */
  sessionIds(): Promise<string[]>;
  /** Counters since the server started. */
  stats(): ChannelStats;
  /** Adds a listener for a middleware event. */
  on<E extends keyof ChannelEvents<In, Out, Data>>(
    event: E,
    listener: ChannelEvents<In, Out, Data>[E],
  ): this;
  /** Removes a listener. */
  off<E extends keyof ChannelEvents<In, Out, Data>>(
    event: E,
    listener: ChannelEvents<In, Out, Data>[E],
  ): this;
}

// ## The factory
//
// Options are resolved (and misuse reported) before anything else, so a
// typo in an option fails at startup. The session registry is a `Map`
// owned here and shared with the handler.
/**
 * Creates BrowserChannel middleware with default options.
 * @param onConnect - called with each new session and the request that created it.
 */
export function browserChannel<
  In = unknown,
  Out = unknown,
  Data extends object = Record<string, unknown>,
>(onConnect?: ConnectHandler<In, Out, Data>): BrowserChannelMiddleware<In, Out, Data>;
/**
 * Creates BrowserChannel middleware.
 * @param options - see {@link BrowserChannelOptions}.
 * @param onConnect - called with each new session and the request that created it.
 * @throws TypeError - when an option is invalid.
 */
export function browserChannel<
  In = unknown,
  Out = unknown,
  Data extends object = Record<string, unknown>,
>(
  options: BrowserChannelOptions | null | undefined,
  onConnect?: ConnectHandler<In, Out, Data>,
): BrowserChannelMiddleware<In, Out, Data>;
export function browserChannel(
  first?: BrowserChannelOptions | ConnectHandler | null,
  second?: ConnectHandler,
): BrowserChannelMiddleware {
  const rawOptions = typeof first === 'function' ? {} : (first ?? {});
  const onConnect = (typeof first === 'function' ? first : (second ?? (() => {}))) as (
    session: AnySession,
    req: IncomingMessage,
  ) => void;
  if (typeof onConnect !== 'function') {
    throw new TypeError('browserChannel: onConnect must be a function, got ' + typeof onConnect);
  }
  const resolved = resolveOptions(rawOptions);
  const sessions = new Map<string, AnySession>();
  const events = new EventEmitter({ captureRejections: true });
  const observer = new Observer();
  const adapter: Adapter = resolved.adapter ?? new MemoryAdapter();
  // The adapter always gets a name for this process. One that relays
  // requests between processes routes on the node id in every session id,
  // so then a server without a `nodeId` puts the drawn name in its ids too.
  const nodeName = resolved.nodeId ?? randomBytes(6).toString('hex');
  const options =
    resolved.nodeId === null && adapter.relay ? { ...resolved, nodeId: nodeName } : resolved;
  if (options.recovery !== null && adapter.recovery === undefined) {
    throw new TypeError(
      'browserChannel: option `recovery` needs an adapter that keeps history, ' +
        'such as redisAdapter() from browserchannel-server/redis',
    );
  }

  // ### Where app exceptions go
  //
  // To the middleware's `error` listeners if there are any, else to
  // `console.error`: never swallowed, never thrown into the HTTP layer.
  const onAppError = (error: unknown, session: AnySession | null): void => {
    if (events.listenerCount('error') > 0) events.emit('error', error, session);
    else
      console.error(
        `browserchannel: unhandled error${session ? ` in session ${session.id}` : ''}:`,
        error,
      );
  };
  // The app's own listeners on the middleware are fenced like the
  // session's: a throwing `refused` listener must not break a response,
  // and an `async` one that rejects is reported, not fatal. A failing
  // `error` listener has nowhere left to report to but the console.
  events[captureRejectionSymbol] = (error: unknown, event: string | symbol): void => {
    if (event === 'error') console.error('browserchannel: an error listener failed:', error);
    else onAppError(error, null);
  };
  const emit = (event: 'session' | 'refused', value: unknown): void => {
    try {
      events.emit(event, value);
    } catch (error) {
      onAppError(error, null);
    }
  };

  // ### What every session shares
  //
  // One `SessionHost` for all sessions: the limits, the heartbeat interval,
  // the registry's `forget`, the adapter, the counters, and a single queue
  // of idle countdowns (`deadlines.ts`) whose one `unref`ed timer stands
  // in for a timer per session. Bodies being read get a queue of their
  // own, for `bodyTimeout`. `close()` stops both, so nothing of ours is
  // left ticking. With `maxSessionsPerClient`, each client's count of live
  // sessions (`per-client.ts`) goes down in `forget`, when a session ends.
  const clients = options.maxSessionsPerClient === Infinity
    ? null
    : new ClientCounts(options.maxSessionsPerClient, options.clientKey ?? clientAddress);
  const host: SessionHost = {
    limits: options,
    keepAliveInterval: options.keepAliveInterval,
    idle: new Deadlines<Downlink>(options.sessionTimeoutInterval, (session) =>
      session.close('Timed out'),
    ),
    adapter,
    observer,
    ledger: null,
    forget: (session, reason) => {
      sessions.delete(session.id);
      clients?.remove(session);
      observer.closedWith(session, reason);
      if (session.recovery !== null) ledger?.end(session, keepsState(reason, gate.stopping));
    },
    appError: onAppError,
  };
  const bodies = bodyTimeouts(options.bodyTimeout);
  const gate = { draining: false, stopping: false, closings: 0 };
  const handler = createHandler({
    options,
    sessions,
    onConnect,
    onAppError,
    host,
    bodyTimeouts: bodies,
    gate,
    opened: (session) => emit('session', session),
    refused: (refusal) => {
      observer.refusedWith(refusal);
      emit('refused', refusal);
    },
    clients,
  });
  adapter.attach({
    nodeId: nodeName,
    sessions,
    error: (error) => onAppError(error, null),
    handle: (req, res) => handler(req, res),
  });
  // Recovery starts once the adapter is attached: its store needs the
  // adapter's connection.
  const ledger = options.recovery && new Ledger(adapter.recovery!, options.recovery, (error) =>
    onAppError(error, null));
  (host as { ledger: Ledger | null }).ledger = ledger;

  // ### Closing, now or gracefully
  //
  // `close` ends every session at once with a reason the app can tell
  // apart from a client leaving. `shutdown` is for a rolling deploy, in
  // three steps: new sessions get `503` with `Retry-After` (the load
  // balancer or the client's retry finds another process); every open
  // back channel is ended, which makes each client open its next one
  // with an `AID` that acknowledges what it got; once every session has
  // nothing unacknowledged, or `timeout` passes, all are closed.
  // An adapter's connections (Redis) must not keep the process alive
  // either, so both end by closing it, once.
  const closeAll = (reason: string): Promise<void> => {
    gate.stopping = true;
    gate.closings++;
    for (const session of [...sessions.values()]) session.close(reason);
    gate.stopping = false;
    host.idle.clear();
    bodies.clear();
    return adapter.close();
  };
  const close = (reason = 'Server closed'): void => {
    closeAll(reason).catch((error: unknown) => onAppError(error, null));
  };
  const shutdown = async ({ timeout = 10_000 }: ShutdownOptions = {}): Promise<void> => {
    gate.draining = true;
    observer.log('shutting down: %d sessions, waiting up to %d ms', sessions.size, timeout);
    for (const session of sessions.values()) session.endBackChannel();
    await allAcknowledged([...sessions.values()], timeout);
    await closeAll('Server shutting down');
  };

  const middleware = Object.assign(handler, {
    close,
    shutdown,
    adapter,
    to: (rooms: string | readonly string[]) => new BroadcastTarget(adapter, EVERYONE).to(rooms),
    except: (who: Exclusion | readonly Exclusion[]) =>
      new BroadcastTarget(adapter, EVERYONE).except(who),
    send: (data: unknown) => new BroadcastTarget(adapter, EVERYONE).send(data),
    sessionIds: () => adapter.sessionIds(EVERYONE),
    stats: () => observer.snapshot(),
    on(event: string, listener: (...args: unknown[]) => void) {
      events.on(event, listener);
      return middleware;
    },
    off(event: string, listener: (...args: unknown[]) => void) {
      events.off(event, listener);
      return middleware;
    },
  });
  Object.defineProperty(middleware, 'sessionCount', { get: () => sessions.size, enumerable: true });
  Object.defineProperty(middleware, 'sessions', { get: () => sessions.values(), enumerable: true });
  rawOptions.server?.on('close', () => close());
  return middleware as unknown as BrowserChannelMiddleware;
}

// Waits until every session's client has acknowledged everything, or has
// gone, or `timeout` passes, whichever is first. `drain` and `close` are
// the session's own signals, so nothing polls.
function allAcknowledged(sessions: AnySession[], timeout: number): Promise<void> {
  const waiting = sessions.filter(
    (session) => session.state !== 'closed' && session.bufferedBytes > 0,
  );
  if (waiting.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let left = waiting.length;
    const timer = setTimeout(resolve, timeout);
    const done = (): void => {
      if (--left > 0) return;
      clearTimeout(timer);
      resolve();
    };
    for (const session of waiting) {
      let counted = false;
      const once = (): void => {
        if (counted) return;
        counted = true;
        done();
      };
      session.once('drain', once);
      session.once('close', once);
    }
  });
}

// A session closed by the server stopping, or because its client went
// quiet, may still be reconnected to, elsewhere, within the recovery
// window; every other end is final (see `Ledger.end`).
function keepsState(reason: string, stopping: boolean): boolean {
  return stopping || reason === 'Timed out';
}

/** The factory, as the default export (`import browserChannel from …`). */
export default browserChannel;
