// # Handler: routing HTTP requests to the protocol
//
// The middleware sees every request; it claims those under `base` and
// passes the rest to `next()`. Matching is by whole path segment, so with
// the default base `/channel`, `/channelx/bind` is not ours.
//
// | path | what it is |
// |---|---|
// | `<base>/test` | connection test: host prefix, then buffering-proxy detection |
// | `<base>/bind` | everything else: create, forward channel, back channel, terminate |
// | `<base>` | the same as `<base>/bind`, for WebChannel clients |
// | `<base>/bcsocket.js` | the browser client (`client-file.ts`) |
//
// ```http
// POST /channel/bind?VER=8&RID=4242&CVER=1&zx=k2j1&t=1 HTTP/1.1
// Content-Type: application/x-www-form-urlencoded
//
// count=0
// ```
//
// Each route has its own section below. They share one error boundary at
// the bottom: a {@link ProtocolError} thrown anywhere becomes a response
// with the status the Closure client expects, and the process and every
// other session carry on.
/** Request routing for `/test` and `/bind`, and the HTTP error boundary. @module */
import type {
  IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse,
} from 'node:http';
import { checkAllowed } from './auth.ts';
import { isPromise } from './events.ts';
import { framingFor, lengthPrefixed } from './encoding.ts';
import { ProtocolError, badQuery, unknownSession } from './errors.ts';
import { serveClient } from './client-file.ts';
import {
  CONTENT_TYPE,
  UNBUFFERED,
  preflightHeaders,
  responseHeaders,
  shareHeaderValues,
} from './headers.ts';
import { type BodyTimeouts, readBatch } from './body.ts';
import type { ForwardBatch } from './maps.ts';
import { type ResolvedOptions, isHostname } from './options.ts';
import type { ClientCounts } from './per-client.ts';
import { type AnySession, Session, type SessionHost } from './session.ts';
import type { Refusal } from './observe.ts';
import { newSessionId } from './session-id.ts';
import { type Reconnect, SessionLedger, recordable, takeOver } from './recovery.ts';
import { type Query, parseUrl } from './query.ts';
import {
  checkHttpSessionId,
  fastHandshakeBatch,
  handshakeArray,
  headerJson,
  initHeaders,
  isFastHandshake,
  isWebChannel,
  longPollHeartbeat,
  requestedSessionIdParam,
  wireProtocol,
} from './webchannel.ts';

// ## What the handler works with
//
// Everything shared between requests lives in one `HandlerContext`, built
// once by the factory: the options, the session registry, the app's
// callbacks, the `SessionHost` every session is created with, the queue
// of body countdowns, the shutdown gate, and where new sessions and
// refusals are reported. Sessions are kept in a `Map`, not a plain
// object: 2.1.0's `sessions[SID]` let `SID=__proto__` reach
// `Object.prototype` and crash.
/** State shared by every request of one middleware. */
export interface HandlerContext {
  /** Resolved options. */
  readonly options: ResolvedOptions;
  /** Live sessions by id. */
  readonly sessions: Map<string, AnySession>;
  /** The app's connect callback. */
  readonly onConnect: (session: AnySession, req: IncomingMessage) => void;
  /** Where exceptions from app code go when no session listener takes them. */
  readonly onAppError: (error: unknown, session: AnySession | null) => void;
  /** What every session shares: limits, the idle queue, the registry's `forget`. */
  readonly host: SessionHost;
  /** Countdowns for bodies still arriving (`bodyTimeout`). */
  readonly bodyTimeouts: BodyTimeouts;
  /**
   * `draining` is set by `shutdown()`: new sessions are refused from then on. `stopping` is true
   * while `close()` closes every session, and `closings` counts those closes.
   */
  readonly gate: { draining: boolean; stopping: boolean; closings: number };
  /** Tells the app about a new session (`channel.on('session')`). */
  readonly opened: (session: AnySession) => void;
  /** Tells the app about a request answered with an error (`channel.on('refused')`). */
  readonly refused: (refusal: Refusal) => void;
  /** Live sessions per client, when `maxSessionsPerClient` is set (`per-client.ts`). */
  readonly clients: ClientCounts | null;
}

/** A connect-style `next` callback. */
export type Next = (error?: unknown) => void;

// ## Routing
//
// Express and connect strip the mount path from `req.url` before a
// mounted handler sees it: after `app.use('/channel', channel)`, a
// request for `/channel/bind` arrives as `/bind`. So a path that is not
// ours as it stands is tried once more with the mount path put back,
// taken from express's `req.baseUrl` or, in connect, from the part of
// `req.originalUrl` that `req.url` lost. All three of these work:
//
// | mounted with | serves |
// |---|---|
// | `app.use(channel)` | `/channel/bind` |
// | `app.use('/channel', channel)` | `/channel/bind` |
// | `app.use('/rt', channel)` | `/rt/channel/bind` |
// | `router.use('/channel', channel)`, router at `/api` | `/api/channel/bind` |
/** Builds the `(req, res, next)` function for a context. */
export function createHandler(
  context: HandlerContext,
): (req: IncomingMessage, res: ServerResponse, next?: Next) => void {
  return (req, res, next) => {
    const { path, query } = parseUrl(req.url ?? '/');
    const base = context.options.base;
    const route = routeOf(path, base) ?? mountedRoute(mountPath(req, path), path, base);
    if (route === null) return next ? next() : fail(context, req, res, notFound());
    try {
      const pending = dispatch(context, route, req, res, query);
      if (pending !== undefined) pending.catch((error: unknown) => fail(context, req, res, error));
    } catch (error) {
      fail(context, req, res, error);
    }
  };
}

// A route that can answer at once does so synchronously and returns
// nothing; one that must wait (for a body, for `allowRequest`, for the
// recovery store) returns a Promise. Either way, what it throws or
// rejects with reaches the error boundary at the bottom of this module.
//
// > **Note (speed):** a handshake used to pass through five `async`
// > functions, each a Promise and a trip through the microtask queue even
// > when nothing was awaited. Now only the body read waits; with no
// > `allowRequest` and no recovery, the rest runs in the same turn.
type Answer = Promise<void> | void;

type Mounted = IncomingMessage & { baseUrl?: unknown; originalUrl?: unknown };

// The mount path and `req.url` together may spell `<base>/bind`; or the
// mount path may itself end in `base`, as in a router at `/api` with the
// channel mounted at `/channel` inside it (`/api/channel/bind`).
function mountedRoute(mount: string, path: string, base: string): string | null {
  if (mount === '') return null;
  return routeOf(mount + path, base) ?? (mount.endsWith(base) ? routeOf(base + path, base) : null);
}

function mountPath(req: Mounted, path: string): string {
  if (typeof req.baseUrl === 'string') return req.baseUrl;
  if (typeof req.originalUrl !== 'string' || req.originalUrl === req.url) return '';
  const original = parseUrl(req.originalUrl).path;
  return original.endsWith(path) ? original.slice(0, original.length - path.length) : '';
}

function dispatch(
  context: HandlerContext,
  route: string,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
): Answer {
  if (req.method === 'OPTIONS') return preflight(context, req, res);
  if (route === '/bcsocket.js')
    return serveClient(req, res, responseHeaders(context.options, req, res, null));
  if (route !== '/test' && route !== '/bind') throw notFound();
  if (query.VER !== '8') throw new ProtocolError(400, 'BAD_VERSION', 'Version 8 required');
  if (route === '/test') return testChannel(context, req, res, query);
  return bind(context, req, res, query);
}

// A path is ours if it is `base` followed by one more segment. With base
// `""` (mounted at the root) only our three paths are claimed, so the app
// keeps every other one.
//
// `base` itself is a bind URL too. A WebChannel client binds at exactly
// the URL it was given and appends nothing (its test request, if any,
// goes to `<url>/test`), so Firestore's SDK, mounted at its own path,
// sends every request to `base`:
//
// ```http
// POST /google.firestore.v1.Firestore/Listen/channel?VER=8&RID=1&… HTTP/1.1
// ```
const ROOT_ROUTES = new Set(['/test', '/bind', '/bcsocket.js']);

function routeOf(path: string, base: string): string | null {
  if (base === '') return ROOT_ROUTES.has(path) ? path : null;
  if (path === base) return '/bind';
  if (!path.startsWith(`${base}/`)) return null;
  return path.slice(base.length);
}

// ## CORS preflight
//
// Answered `204` whatever the path under base, with the CORS headers of
// every response and the preflight ones on top.
function preflight(context: HandlerContext, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(204, responseHeaders(context.options, req, res, null, preflightHeaders(req)));
  res.end();
}

// ## The test channel
//
// Phase 1 (`MODE=init`) asks for a host prefix. The answer is plain JSON,
// `[hostPrefix, blockedPrefix]`; we never block. `X-Accept` tells the
// client it may post JSON bodies.
//
// ```http
// HTTP/1.1 200 OK
// X-Accept: application/json; application/x-www-form-urlencoded
//
// [null,null]
// ```
//
// Phase 2 looks for a buffering proxy: `11111`, then `2` two seconds
// later, then the end. A client that receives both at once knows something
// in between buffers, and will ask for `CI=1` back channels. A `HEAD`
// has no body to pause in, so it gets the headers and the end at once.
const TEST_PAUSE_MS = 2000;

function testChannel(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
): void {
  if (query.MODE === 'init') {
    const extra = { 'X-Accept': 'application/json; application/x-www-form-urlencoded' };
    res.writeHead(200, responseHeaders(context.options, req, res, CONTENT_TYPE.json, extra));
    res.end(JSON.stringify([hostPrefix(context.options), null]));
    return;
  }
  const framing = framingFor(query.TYPE, domainOf(query));
  res.writeHead(200, responseHeaders(context.options, req, res, framing.contentType));
  if (req.method === 'HEAD') return void res.end();
  res.write(framing.open() + framing.raw('11111'));
  const timer = setTimeout(
    () => res.end(framing.raw('2') + framing.close()),
    TEST_PAUSE_MS,
  ).unref();
  res.once('close', () => clearTimeout(timer));
}

function hostPrefix(options: ResolvedOptions): string | null {
  const prefixes = options.hostPrefixes;
  return prefixes.length === 0 ? null : prefixes[Math.floor(Math.random() * prefixes.length)]!;
}

// ## Bind: one URL, five jobs
//
// | method | `SID` | `TYPE` | job |
// |---|---|---|---|
// | POST | absent | | create a session |
// | POST | present | | forward channel: deliver maps |
// | GET | present | `xmlhttp` or `html` | back channel |
// | GET or POST | present | `terminate` | client disconnects |
// | GET | `null` | | WebChannel fast handshake: create and stream |
//
// Every request with a `SID` first has its `AID` applied, so any request
// can acknowledge arrays.
function bind(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
): Answer {
  if (req.method === 'GET' && isFastHandshake(query))
    return fastHandshake(context, req, res, query);
  const owner = ownerElsewhere(context, query.SID);
  if (owner !== null) return relay(context, req, res, owner);
  const session = lookUpSession(context, query);
  if (session) checkHttpSessionId(session.httpSessionIdParam, session.httpSessionId, query);
  if (session && query.AID !== undefined) session.acknowledge(arrayId(query.AID, 'AID'));
  if (query.TYPE === 'terminate' && (req.method === 'GET' || req.method === 'POST'))
    return terminate(context, req, res, query, session);
  if (req.method === 'POST')
    return session ? forward(context, req, res, query, session) : create(context, req, res, query);
  if (req.method === 'GET' || req.method === 'HEAD')
    return backChannel(context, req, res, query, session);
  throw new ProtocolError(405, 'BAD_METHOD', 'Method not allowed');
}

function lookUpSession(context: HandlerContext, query: Query): AnySession | null {
  const sid = query.SID;
  if (sid === undefined) return null;
  if (sid === '') throw badQuery('SID is empty');
  const session = context.sessions.get(sid);
  if (!session) throw unknownSession();
  return session;
}

// ## Sessions of another process
//
// A session id names the node that made it, `SID=n2.Qm9v…`. When that is
// not this process and the adapter can relay (`browserchannel-server/redis`),
// the request goes to its owner over the adapter and the owner's answer
// comes back through `res`: the owner alone orders maps and takes
// acknowledgements. The URL is rebuilt from `base`, so a mount path of
// this process does not confuse the owner's routing. Without a relaying
// adapter, such an id is simply unknown here.
function ownerElsewhere(context: HandlerContext, sid: string | undefined): string | null {
  if (context.host.adapter.relay === undefined || sid === undefined) return null;
  const dot = sid.indexOf('.');
  const owner = dot > 0 ? sid.slice(0, dot) : null;
  return owner === null || owner === context.options.nodeId ? null : owner;
}

function relay(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  owner: string,
): Promise<void> {
  const url = req.url ?? '';
  const search = url.includes('?') ? url.slice(url.indexOf('?')) : '';
  const { base, maxBodyBytes } = context.options;
  const target = { owner, url: `${base}/bind${search}`, maxBodyBytes };
  return context.host.adapter.relay!(target, req, res);
}

// ## Creating a session
//
// The body is read and decoded *before* the session exists, so a bad body
// costs a `400` and nothing else. A create carrying `OSID`/`OAID` is a
// client reconnecting: the old session counts arrays up to `OAID` as
// delivered and closes with `Reconnected`, before the new session's
// `onConnect` runs.
//
// `onConnect` runs exactly once per session, in `startSession`, because
// that is the one place a `Session` is constructed; no later request (a
// new back channel, a retried POST, a reconnect) comes through it for the
// same id. If the app calls `close()` inside it, the creating request gets
// `403`.
//
// The answer is the session's first back channel: one chunk, then the end.
async function create(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
): Promise<void> {
  const requestId = integerParam(query.RID, 'RID');
  checkCapacity(context, req, query);
  const { batch, bytes } = await readBatch(req, context.options, context.bodyTimeouts);
  context.host.observer.bytesIn += bytes;
  const headers = sessionHeaders(context, req, query, batch);
  const admitted = admit(context, req, query, headers);
  if (admitted !== undefined) await admitted;
  const started = startSession(context, req, query, headers, requestId, batch, bytes);
  const session = started instanceof Promise ? await started : started;
  writeHandshakeHead(context, req, res, session, handshakeHeaders(req, session));
  session.attachBackChannel(res, framingFor('xmlhttp'), false);
}

// A WebChannel `fastHandshake` is the same, but arrives as a GET with its
// maps in `$req`, gets the handshake in a header, and stays open as a
// streaming back channel (see `webchannel.ts`).
async function fastHandshake(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
): Promise<void> {
  const requestId = integerParam(query.RID, 'RID');
  checkCapacity(context, req, query);
  const limits = {
    maxMaps: context.options.maxMapsPerRequest,
    maxKeys: context.options.maxKeysPerMap,
  };
  const batch = fastHandshakeBatch(query, limits);
  const headers = sessionHeaders(context, req, query, batch);
  await admit(context, req, query, headers);
  const session = await startSession(context, req, query, headers, requestId, batch, 0);
  session.attachBackChannel(res, framingFor('xmlhttp'), true);
  const initial = { 'X-HTTP-Initial-Response': headerJson(session.takeInitialResponse()) };
  writeHandshakeHead(context, req, res, session, {
    ...handshakeHeaders(req, session),
    ...initial,
    ...UNBUFFERED,
  });
  res.flushHeaders?.();
}

// The handshake's headers are the app's too (`cors`, `headers`), and an
// app `cors` function may throw or give what is no header value. Then no
// handshake reaches the client, and the session it was made for ends at
// once, rather than waiting for a client that will never come; the error
// answer (`fail`) gets the response.
function writeHandshakeHead(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  session: AnySession,
  extra: OutgoingHttpHeaders,
): void {
  try {
    res.writeHead(200, responseHeaders(context.options, req, res, CONTENT_TYPE.text, extra));
  } catch (error) {
    session.dropBackChannel(res);
    session.close('Handshake not sent');
    throw error;
  }
}

// `maxSessions` and `maxSessionsPerClient` are checked before the body is
// read, so a full server spends nothing on a create it will refuse. `503`
// with `Retry-After` tells a client (and any proxy) the refusal is
// temporary; a server that is shutting down says the same, so the
// client's retry, or the load balancer, finds another process. A client
// over its own limit gets `429` (`per-client.ts`).
function checkCapacity(context: HandlerContext, req: IncomingMessage, query: Query): void {
  if (context.gate.draining) {
    throw new ProtocolError(503, 'SHUTTING_DOWN', 'Server shutting down', { 'Retry-After': '1' });
  }
  const { maxSessions } = context.options;
  if (context.sessions.size >= maxSessions) {
    throw new ProtocolError(503, 'TOO_MANY_SESSIONS', `Server full (maxSessions ${maxSessions})`, {
      'Retry-After': '5',
    });
  }
  context.clients?.check(req, replaced(context, query));
}

// The live session a create replaces (`OSID`), if it is here.
function replaced(context: HandlerContext, query: Query): AnySession | undefined {
  return query.OSID === undefined ? undefined : context.sessions.get(query.OSID);
}

// ### Admission
//
// The app's `allowRequest` (`auth.ts`) is asked with the headers the
// session would get. It may take its time (a database, a token
// service), so the capacity check runs again afterwards: other creates
// may have filled the server meanwhile. Without an `allowRequest` there
// is nothing to wait for, and nothing is returned.
function admit(
  context: HandlerContext,
  req: IncomingMessage,
  query: Query,
  headers: IncomingHttpHeaders,
): Promise<void> | undefined {
  const allow = context.options.allowRequest;
  if (allow === null) return undefined;
  const info = {
    headers,
    query,
    address: req.socket?.remoteAddress ?? '',
    webChannel: isWebChannel(query, req),
  };
  return checkAllowed(allow, req, info).then(() => checkCapacity(context, req, query));
}

// A WebChannel client may send headers inside the request (see
// `webchannel.ts`); the session sees them merged over the real ones, and
// `allowRequest` sees what the session will.
function sessionHeaders(
  context: HandlerContext,
  req: IncomingMessage,
  query: Query,
  batch: ForwardBatch | null,
): IncomingHttpHeaders {
  const extraHeaders = initHeaders(query, context.options.httpHeadersOverwriteParam, batch);
  return extraHeaders ? { ...req.headers, ...extraHeaders } : req.headers;
}

// A session is started in the same turn unless it takes over an old one
// from the recovery store, which is the one wait here. Its client's
// count goes up in the same turn as the last check of it, so creates of
// one client that were in flight together cannot all slip under the
// limit; it goes down when the session closes, wherever that happens.
function startSession(
  context: HandlerContext,
  req: IncomingMessage,
  query: Query,
  headers: IncomingHttpHeaders,
  requestId: number,
  batch: ForwardBatch | null,
  bytes: number,
): AnySession | Promise<AnySession> {
  const closings = context.gate.closings;
  const client = context.clients?.check(req, replaced(context, query));
  const session = newSession(context, req, query, headers, requestId);
  if (client !== undefined) context.clients!.add(session, client);
  const { ledger } = context.host;
  if (ledger !== null && recordable(session)) ledger.track(session, new SessionLedger());
  const reconnect = session.recovery === null ? null : reconnectOf(query);
  if (reconnect !== null) {
    return recover(context, session, reconnect).then(() =>
      openSession(context, req, session, requestId, batch, bytes, closings),
    );
  }
  retireOldSession(context, query);
  return openSession(context, req, session, requestId, batch, bytes, closings);
}

function openSession(
  context: HandlerContext,
  req: IncomingMessage,
  session: AnySession,
  requestId: number,
  batch: ForwardBatch | null,
  bytes: number,
  closings: number,
): AnySession {
  register(context, session, closings);
  try {
    // An `async` onConnect that fails rejects later: reported, not fatal.
    const connected: unknown = context.onConnect(session, req);
    if (isPromise(connected)) {
      connected.then(undefined, (error: unknown) => context.onAppError(error, session));
    }
    session.emit('req', req);
  } catch (error) {
    context.onAppError(error, session);
  }
  const overflow = session.receive(requestId, batch, bytes);
  if (overflow !== null) throw new ProtocolError(400, 'LIMIT_EXCEEDED', overflow);
  if (isClosed(session)) throw new ProtocolError(403, 'FORBIDDEN', 'Forbidden');
  context.opened(session);
  return session;
}

// ### Recovering the old session
//
// With the `recovery` option, a create naming its old session takes that
// session's state over (`recovery.ts`) before `onConnect` runs, so the
// app's first sends come after everything replayed. The old session, if
// it is still open anywhere, closes with `Reconnected`.
function reconnectOf(query: Query): Reconnect | null {
  if (query.OSID === undefined || query.OSID === '') return null;
  return {
    oldId: query.OSID,
    arrayId: query.OAID === undefined ? -1 : arrayId(query.OAID, 'OAID'),
    firstMapId: query.OMID === undefined ? null : integerParam(query.OMID, 'OMID'),
  };
}

async function recover(
  context: HandlerContext,
  session: AnySession,
  reconnect: Reconnect,
): Promise<void> {
  const local = context.sessions.get(reconnect.oldId);
  const { ledger, observer } = context.host;
  await takeOver(ledger!, local, session, reconnect);
  observer.recoveredWith(session);
  if (local) local.close('Reconnected');
  else if (ownerElsewhere(context, reconnect.oldId) !== null) {
    context.host.adapter.retire?.(reconnect.oldId, reconnect.arrayId);
  }
}

function retireOldSession(context: HandlerContext, query: Query): void {
  const old = query.OSID === undefined ? undefined : context.sessions.get(query.OSID);
  if (!old) return retireElsewhere(context, query);
  if (query.OAID !== undefined) old.acknowledge(arrayId(query.OAID, 'OAID'));
  old.close('Reconnected');
}

// An old session of another process (any-process mode: the reconnect
// landed here) is retired by its owner, through the adapter.
function retireElsewhere(context: HandlerContext, query: Query): void {
  const { adapter } = context.host;
  const sid = query.OSID;
  if (sid === undefined || adapter.retire === undefined) return;
  if (ownerElsewhere(context, sid) === null) return;
  adapter.retire(sid, query.OAID === undefined ? null : arrayId(query.OAID, 'OAID'));
}

function newSession(
  context: HandlerContext,
  req: IncomingMessage,
  query: Query,
  headers: IncomingHttpHeaders,
  requestId: number,
): AnySession {
  const { options } = context;
  const id = newSessionId(options.nodeId);
  const webChannel = isWebChannel(query, req);
  const httpSessionIdParam = requestedSessionIdParam(query);
  const session = new Session(context.host, {
    id,
    address: req.socket?.remoteAddress ?? '',
    headers: shareHeaderValues(headers),
    url: req.url ?? '',
    firstRequestId: requestId,
    handshake: handshakeArray(id, hostPrefix(options), webChannel, options.keepAliveInterval),
    webChannel,
    httpSessionIdParam,
    httpSessionId: httpSessionIdParam === null ? null : newSessionId(options.nodeId),
  });
  context.host.observer.opened(session);
  return session;
}

// A session joins the registry (and so `channel.sessions` and broadcasts
// to everyone) only once any takeover is done, so nothing reaches it
// ahead of what it replays. If `close()` closed every session meanwhile,
// it would have closed this one too.
function register(context: HandlerContext, session: AnySession, closings: number): void {
  if (context.gate.closings !== closings) session.close('Server closed');
  if (isClosed(session)) throw new ProtocolError(503, 'SHUTTING_DOWN', 'Server closed');
  context.sessions.set(session.id, session);
}

// The handshake answer of a WebChannel session says which HTTP version
// carried it and, if asked for, the routing id. A session saved for
// recovery says so in `X-Session-Recovery: 1`: our client then knows
// that maps it resends after a crash will be deduplicated, and resends
// them (`client/bcsocket.ts`); to a server without recovery it does not,
// since a fresh session would take them for new ones.
function handshakeHeaders(req: IncomingMessage, session: AnySession): Record<string, string> {
  const headers: Record<string, string> = {};
  if (session.recovery !== null) headers['X-Session-Recovery'] = '1';
  if (session.webChannel) headers['X-Client-Wire-Protocol'] = wireProtocol(req);
  if (session.httpSessionId !== null) headers['X-HTTP-Session-Id'] = session.httpSessionId;
  return headers;
}

// ## The forward channel
//
// Maps are handed to the session, which orders and delivers them. The
// answer tells the client about its back channel (see
// `backChannelStatus` in `backchannel.ts`):
//
// ```text
// 10
// [1,57,312]
// ```
async function forward(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
  session: AnySession,
): Promise<void> {
  const requestId = integerParam(query.RID, 'RID');
  const { batch, bytes } = await readBatch(req, context.options, context.bodyTimeouts).catch(
    (error: unknown) => stopIfTooLarge(session, error),
  );
  context.host.observer.bytesIn += bytes;
  if (isClosed(session)) throw unknownSession();
  const overflow = session.receive(requestId, batch, bytes);
  if (overflow !== null) throw new ProtocolError(400, 'LIMIT_EXCEEDED', overflow);
  if (isClosed(session)) throw new ProtocolError(403, 'FORBIDDEN', 'Forbidden');
  // With recovery, the answer waits until the delivered maps are counted
  // in Redis: a client resending them after a crash finds them delivered.
  if (session.recovery !== null && batch !== null) await context.host.ledger!.saved(session);
  res.writeHead(200, responseHeaders(context.options, req, res, CONTENT_TYPE.text));
  res.end(lengthPrefixed(JSON.stringify(session.backChannelStatus())));
}

// A body over `maxBodyBytes` can never be delivered: the client keeps
// its maps until they are acknowledged, so it would resend the same body,
// get the same `413`, reconnect and resend again, for ever. So the session
// says `["stop"]`, the one answer after which neither the Closure client
// (it ends with `STOP`; ShareDB's client calls that state `stopped`) nor
// ours reconnects, and closes with the `413`'s reason once that is written.
//
// The Closure client gives up on a forward request answered with any
// status but 200 at once (browserchannel 2.1.0 reports `Request failed`
// and reconnects), so the `413` must not arrive first: it waits until the
// `["stop"]` has been written to a back channel (or the session ended
// some other way), then a short grace, since the two travel on different
// connections.
const STOP_GRACE_MS = 300;

async function stopIfTooLarge(session: AnySession, error: unknown): Promise<never> {
  if (error instanceof ProtocolError && error.status === 413 && !isClosed(session)) {
    await new Promise<void>((resolve) => session.stop(() => resolve()));
    session.close(error.message);
    await new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref());
  }
  throw error;
}

// ## The back channel
//
// A hanging GET that the session writes chunks into. `CI=0` lets it
// stream; anything else ends it after each chunk. `RID` is always the
// literal `rpc` here. A long poll may ask, with `TO`, to be answered
// sooner than the usual heartbeat.
//
// A `HEAD` gets the same checks and headers and nothing more: it must not
// take the session's place for a back channel, since it can carry no
// chunk. (Node drops a `HEAD`'s body writes without sending the headers,
// so attaching one used to leave the request hanging with no answer at
// all, and the real back channel displaced. Our fuzz test found it.)
function backChannel(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
  session: AnySession | null,
): void {
  if (query.TYPE !== 'xmlhttp' && query.TYPE !== 'html')
    throw badQuery('GET /bind needs TYPE=xmlhttp, html or terminate');
  if (!session) throw badQuery('Back channel needs a SID');
  if (query.RID !== 'rpc') throw badQuery('Back channel needs RID=rpc');
  const framing = framingFor(query.TYPE, domainOf(query));
  res.writeHead(200, responseHeaders(context.options, req, res, framing.contentType, UNBUFFERED));
  if (req.method === 'HEAD') return void res.end();
  const opening = framing.open();
  if (opening) res.write(opening);
  else res.flushHeaders?.();
  const heartbeatMs = longPollHeartbeat(query, context.options.keepAliveInterval);
  session.attachBackChannel(res, framing, query.CI === '0', heartbeatMs);
}

// ## Terminate
//
// The client says goodbye with a GET (an image request) or, from
// WebChannel, a `navigator.sendBeacon` POST with an empty body. Either way
// the session closes with `Disconnected` once every earlier `RID` has been
// handled, so a goodbye never overtakes the last messages.
async function terminate(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: Query,
  session: AnySession | null,
): Promise<void> {
  if (!session) throw badQuery('Terminate needs a SID');
  const requestId = integerParam(query.RID, 'RID');
  if (req.method === 'POST') {
    const { bytes } = await readBatch(req, context.options, context.bodyTimeouts);
    context.host.observer.bytesIn += bytes;
  }
  session.terminateAt(requestId);
  res.writeHead(200, responseHeaders(context.options, req, res, CONTENT_TYPE.text));
  res.end();
}

// ## Small validators
//
// Numbers on the wire are plain decimal integers; `AID` may be `-1`
// (nothing received yet). Anything else is a `400` naming the parameter.
function integerParam(text: string | undefined, name: string): number {
  if (text === undefined || !/^\d{1,15}$/.test(text))
    throw badQuery(`${name} must be a non-negative integer`);
  return Number(text);
}

function arrayId(text: string, name: string): number {
  if (!/^-?\d{1,15}$/.test(text)) throw badQuery(`${name} must be an integer`);
  return Number(text);
}

// `DOMAIN` ends up inside a `<script>` on the html transport. 2.1.0
// reflected it, JSON-quoted but otherwise raw, which made it a reflected
// XSS. Only a hostname shape is accepted here.
function domainOf(query: Query): string | null {
  const domain = query.DOMAIN;
  if (domain === undefined || domain === '' || query.TYPE !== 'html') return null;
  if (!isHostname(domain)) throw badQuery('DOMAIN must be a hostname');
  return domain;
}

// App code may close a session while we wait on it; TypeScript cannot see
// that, so the check goes through a function.
function isClosed(session: AnySession): boolean {
  return session.state === 'closed';
}

function notFound(): ProtocolError {
  return new ProtocolError(404, 'NOT_FOUND', 'Not found');
}

// ## The error boundary
//
// Every failure of every route ends here. A `ProtocolError` is answered
// with its status, the reason as the status text and, wrapped in HTML, as
// the body (so `Unknown SID` sits past index 0, where the client looks for
// it). Anything else is a bug or an app exception: `500`, and reported.
// A client that already hung up gets nothing, and if the response had
// started, it is cut off rather than corrupted.
//
// Every error answer is also a refusal the app hears of
// (`channel.on('refused')`, `stats()`, `NODE_DEBUG`; see `observe.ts`).
function fail(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  error: unknown,
): void {
  if (!(error instanceof ProtocolError)) context.onAppError(error, null);
  if (res.headersSent || res.destroyed) return void res.destroy();
  const status = error instanceof ProtocolError ? error.status : 500;
  const reason = error instanceof ProtocolError ? error.message : 'Internal server error';
  const { path, query } = parseUrl(req.url ?? '/');
  context.refused({
    status,
    code: error instanceof ProtocolError ? error.code : 'INTERNAL',
    reason,
    method: req.method ?? '',
    path,
    sessionId: query.SID ?? null,
  });
  const extra = error instanceof ProtocolError ? { ...error.headers } : {};
  // HTTP/2 has neither a reason phrase (Node warns if given one) nor `Connection`.
  if (req.httpVersionMajor === 2) delete extra.Connection;
  try {
    const headers = responseHeaders(context.options, req, res, CONTENT_TYPE.html, extra);
    if (req.httpVersionMajor === 2) res.writeHead(status, headers);
    else res.writeHead(status, printable(reason), headers);
  } catch (thrown) {
    // The app's `cors` function threw, or gave what is no header value,
    // most likely for the request that failed: the answer goes without
    // the headers it would have set, rather than nowhere.
    if (error instanceof ProtocolError) context.onAppError(thrown, null);
    res.writeHead(status, { 'Content-Type': CONTENT_TYPE.html });
  }
  res.end(`<html><body><h1>${escapeHtml(reason)}</h1></body></html>`);
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
