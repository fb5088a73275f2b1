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
// It also has `on('error', …)`, for exceptions thrown by app code that no
// session listener handled.
//
// The modules below this one, in reading order from the wire up:
// `headers` and `encoding` (what the server writes), `maps` (what clients
// post), `order`, `inbox` and `outbox` (putting maps in order, keeping
// arrays until acknowledged), `session-id` and `session` (one client's
// conversation), `webchannel` (the WebChannel extensions), `errors`,
// `body` and `handler` (HTTP in and out), `options`, `client-file`; and
// in `client/`, the browser client.
/**
 * The factory and the public types.
 * @module browserchannel-server
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Next, createHandler } from './handler.ts';
import { type BrowserChannelOptions, resolveOptions } from './options.ts';
import { bodyTimeouts } from './body.ts';
import { Deadlines } from './deadlines.ts';
import { Session, type SessionHost } from './session.ts';

export { Session } from './session.ts';
export type { SessionState, SendCallback } from './session.ts';
export type { BrowserChannelOptions, CorsFunction, Closable } from './options.ts';
export type { ClientMap } from './maps.ts';
export type { Query } from './query.ts';
export type { Next } from './handler.ts';
export { ProtocolError, type ProtocolErrorCode } from './errors.ts';
export { sessionStream, type SessionStreamOptions } from './stream.ts';

// ## The middleware's shape
//
// A function first, so it mounts anywhere a `(req, res, next)` handler
// does: `http.createServer(channel)`, `app.use(channel)` in express or
// connect. `next` is optional; without it, requests that are not ours get
// a `404`.
/** Called once for every new session. */
export type ConnectHandler = (session: Session, req: IncomingMessage) => void;

/** The middleware returned by the factory. */
export interface BrowserChannelMiddleware {
  /** Handles a request under `base`, or passes it to `next`. */
  (req: IncomingMessage, res: ServerResponse, next?: Next): void;
  /** Closes every session. Afterwards no timer of ours keeps the process alive. */
  close(): void;
  /** Number of live sessions. */
  readonly sessionCount: number;
  /** Listens for exceptions from app code (`onConnect`, listeners, callbacks) not handled on the session. */
  on(event: 'error', listener: (error: unknown, session: Session | null) => void): this;
  /** Removes an `error` listener. */
  off(event: 'error', listener: (error: unknown, session: Session | null) => void): this;
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
export function browserChannel(onConnect?: ConnectHandler): BrowserChannelMiddleware;
/**
 * Creates BrowserChannel middleware.
 * @param options - see {@link BrowserChannelOptions}.
 * @param onConnect - called with each new session and the request that created it.
 * @throws TypeError - when an option is invalid.
 */
export function browserChannel(options: BrowserChannelOptions | null | undefined, onConnect?: ConnectHandler): BrowserChannelMiddleware;
export function browserChannel(
  first?: BrowserChannelOptions | ConnectHandler | null,
  second?: ConnectHandler,
): BrowserChannelMiddleware {
  const rawOptions = typeof first === 'function' ? {} : (first ?? {});
  const onConnect = typeof first === 'function' ? first : (second ?? (() => {}));
  if (typeof onConnect !== 'function') throw new TypeError('browserChannel: onConnect must be a function');
  const options = resolveOptions(rawOptions);
  const sessions = new Map<string, Session>();
  const events = new EventEmitter();

  // ### Where app exceptions go
  //
  // To the middleware's `error` listeners if there are any, else to
  // `console.error`: never swallowed, never thrown into the HTTP layer.
  const onAppError = (error: unknown, session: Session | null): void => {
    if (events.listenerCount('error') > 0) events.emit('error', error, session);
    else console.error(`browserchannel: unhandled error${session ? ` in session ${session.id}` : ''}:`, error);
  };

  // ### What every session shares
  //
  // One `SessionHost` for all sessions: the limits, the heartbeat interval,
  // the registry's `forget`, and a single queue of idle countdowns
  // (`deadlines.ts`) whose one `unref`ed timer stands in for a timer per
  // session. Bodies being read get a queue of their own, for
  // `bodyTimeout`. `close()` stops both, so nothing of ours is left
  // ticking.
  const host: SessionHost = {
    limits: options,
    keepAliveInterval: options.keepAliveInterval,
    idle: new Deadlines<Session>(options.sessionTimeoutInterval, (session) => session.close('Timed out')),
    forget: (session) => sessions.delete(session.id),
    appError: onAppError,
  };
  const bodies = bodyTimeouts(options.bodyTimeout);
  const handler = createHandler({ options, sessions, onConnect, onAppError, host, bodyTimeouts: bodies });
  const middleware = Object.assign(handler, {
    close(): void {
      for (const session of [...sessions.values()]) session.close();
      host.idle.clear();
      bodies.clear();
    },
    on(event: 'error', listener: (error: unknown, session: Session | null) => void) {
      events.on(event, listener);
      return middleware;
    },
    off(event: 'error', listener: (error: unknown, session: Session | null) => void) {
      events.off(event, listener);
      return middleware;
    },
  });
  Object.defineProperty(middleware, 'sessionCount', { get: () => sessions.size, enumerable: true });
  rawOptions.server?.on('close', middleware.close);
  return middleware as BrowserChannelMiddleware;
}

/** The factory, as the default export (`import browserChannel from …`). */
export default browserChannel;
