// # Options: what an app can tune, and the defaults that are safe without tuning
//
// `browserChannel(options, onConnect)` takes the same options as
// node-browserchannel 2.1.0, plus a few limits an operator on the open
// internet needs. This module owns their names, their defaults and their
// validation; every other module reads the frozen, fully resolved copy.
//
// ```ts
// browserChannel({ base: '/chat', cors: 'https://app.example', keepAliveInterval: 15000 }, onConnect)
// ```
//
// A wrong option is programmer misuse, so it throws a `TypeError` naming the
// option at startup, never later at request time.
/** Option types, defaults and validation. @module */
import type { IncomingMessage, ServerResponse } from 'node:http';

// ## The options an app passes
/** Computes the `Access-Control-Allow-Origin` value for one request. */
export type CorsFunction = (req: IncomingMessage, res: ServerResponse) => string;

/** Anything with an `on('close', …)` method, such as a `node:http` server. */
export interface Closable {
  /** Registers a listener; only the `close` event is used. */
  on(event: 'close', listener: () => void): unknown;
}

/** Options accepted by the factory. Every field is optional. */
export interface BrowserChannelOptions {
  /** URL prefix the channel lives under. Default `/channel`; `""` mounts at the root. */
  base?: string;
  /** Host prefixes handed to clients to dodge per-host connection limits. Default none. */
  hostPrefixes?: readonly string[] | null;
  /** Milliseconds between `["noop"]` heartbeats on an idle back channel. Default 20000. */
  keepAliveInterval?: number;
  /** Milliseconds a session may live with no back channel before it closes. Default 30000. */
  sessionTimeoutInterval?: number;
  /** `Access-Control-Allow-Origin` for every response: a fixed string or a function. */
  cors?: string | CorsFunction | null;
  /** Adds `Access-Control-Allow-Credentials: true` to every response. Default false. */
  corsAllowCredentials?: boolean;
  /** Extra headers put on every response; they override the defaults. */
  headers?: Readonly<Record<string, string>> | null;
  /** When this emits `close`, every session is closed (pass your `http.Server`). */
  server?: Closable | null;
  /** Largest forward-channel body accepted, in bytes. Default 1 MiB; larger gets `413`. */
  maxBodyBytes?: number;
  /** Most maps in one forward-channel request. Default 1000 (the Closure client's own batch limit); more gets `400`. */
  maxMapsPerRequest?: number;
  /** Most keys in one map. Default 1000; more gets `400`. */
  maxKeysPerMap?: number;
  /** Most forward requests a session holds while waiting for an earlier `RID`. Default 50; more closes the session. */
  maxHeldRequests?: number;
  /** Most body bytes a session holds while waiting for earlier `RID`s or map ids. Default 4 MiB; more closes the session. */
  maxHeldBytes?: number;
  /** Most JSON characters a session keeps unacknowledged. Default 16 MiB; more closes the session. */
  maxBufferedBytes?: number;
  /** Most arrays a session keeps unacknowledged. Default 50000; more closes the session. */
  maxBufferedArrays?: number;
  /** Most live sessions; a create past it gets `503` with `Retry-After`. Default unlimited. */
  maxSessions?: number;
  /** Milliseconds a forward-channel body may take to arrive. Default 30000; slower gets `408`. */
  bodyTimeout?: number;
  /** Names this process in session ids (`<nodeId>.<random>`), so a proxy can route on them. Default none. */
  nodeId?: string | null;
  /** URL parameter that carries WebChannel's `httpHeadersOverwriteParam` headers. Default `$httpHeaders`. */
  httpHeadersOverwriteParam?: string;
}

// ## The resolved form
//
// After resolution `base` is normalised (`"channel/"` becomes `"/channel"`,
// `"/"` and `""` both become `""`), every number is checked, and nothing is
// optional any more, so the rest of the code never writes `?? default`.
/** Options after defaults are applied and values validated. */
export interface ResolvedOptions {
  /** Normalised base: `""` or `/segment[/segment…]`, no trailing slash. */
  readonly base: string;
  /** Host prefixes, or an empty list. */
  readonly hostPrefixes: readonly string[];
  /** Heartbeat interval in milliseconds. */
  readonly keepAliveInterval: number;
  /** Session timeout in milliseconds. */
  readonly sessionTimeoutInterval: number;
  /** CORS origin source, or null for none. */
  readonly cors: string | CorsFunction | null;
  /** Whether to allow credentials cross-origin. */
  readonly corsAllowCredentials: boolean;
  /** Extra response headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** Forward-channel body limit in bytes. */
  readonly maxBodyBytes: number;
  /** Most maps per request. */
  readonly maxMapsPerRequest: number;
  /** Most keys per map. */
  readonly maxKeysPerMap: number;
  /** Most out-of-order requests held per session. */
  readonly maxHeldRequests: number;
  /** Most bytes held for reordering per session. */
  readonly maxHeldBytes: number;
  /** Most unacknowledged JSON characters per session. */
  readonly maxBufferedBytes: number;
  /** Most unacknowledged arrays per session. */
  readonly maxBufferedArrays: number;
  /** Most live sessions (Infinity when unlimited). */
  readonly maxSessions: number;
  /** Body arrival deadline in milliseconds. */
  readonly bodyTimeout: number;
  /** This process's routing name, or null. */
  readonly nodeId: string | null;
  /** Name of the URL parameter holding encoded headers. */
  readonly httpHeadersOverwriteParam: string;
}

// ## Defaults
//
// Every limit has a default that a well-behaved client never meets, and
// each bounds memory one client can make us hold: a body (`maxBodyBytes`),
// what waits for reordering (`maxHeldRequests`, `maxHeldBytes`), what waits
// for acknowledgement (`maxBufferedBytes`, `maxBufferedArrays`).
//
// The timers match 2.1.0: the Closure client declares a back channel dead
// after 45 s of silence, so a heartbeat every 20 s leaves room for one lost
// heartbeat; 30 s without any back channel is long enough for a page reload
// but short enough that abandoned tabs do not pile up.
const DEFAULTS = {
  base: '/channel',
  keepAliveInterval: 20_000,
  sessionTimeoutInterval: 30_000,
  maxBodyBytes: 1024 * 1024,
  maxMapsPerRequest: 1000,
  maxKeysPerMap: 1000,
  maxHeldRequests: 50,
  maxHeldBytes: 4 * 1024 * 1024,
  maxBufferedBytes: 16 * 1024 * 1024,
  maxBufferedArrays: 50_000,
  bodyTimeout: 30_000,
  httpHeadersOverwriteParam: '$httpHeaders',
} as const;

// ## Resolution
/**
 * Applies defaults and validates options.
 * @throws TypeError - naming the option when a value has the wrong type or range.
 */
export function resolveOptions(options: BrowserChannelOptions = {}): ResolvedOptions {
  return Object.freeze({
    base: normaliseBase(options.base ?? DEFAULTS.base),
    hostPrefixes: Object.freeze([...(options.hostPrefixes ?? [])]),
    keepAliveInterval: positive('keepAliveInterval', options.keepAliveInterval ?? DEFAULTS.keepAliveInterval),
    sessionTimeoutInterval: positive('sessionTimeoutInterval', options.sessionTimeoutInterval ?? DEFAULTS.sessionTimeoutInterval),
    cors: checkCors(options.cors ?? null),
    corsAllowCredentials: options.corsAllowCredentials === true,
    headers: Object.freeze({ ...(options.headers ?? {}) }),
    maxBodyBytes: positive('maxBodyBytes', options.maxBodyBytes ?? DEFAULTS.maxBodyBytes),
    maxMapsPerRequest: positive('maxMapsPerRequest', options.maxMapsPerRequest ?? DEFAULTS.maxMapsPerRequest),
    maxKeysPerMap: positive('maxKeysPerMap', options.maxKeysPerMap ?? DEFAULTS.maxKeysPerMap),
    maxHeldRequests: positive('maxHeldRequests', options.maxHeldRequests ?? DEFAULTS.maxHeldRequests),
    maxHeldBytes: positive('maxHeldBytes', options.maxHeldBytes ?? DEFAULTS.maxHeldBytes),
    maxBufferedBytes: positive('maxBufferedBytes', options.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes),
    maxBufferedArrays: positive('maxBufferedArrays', options.maxBufferedArrays ?? DEFAULTS.maxBufferedArrays),
    maxSessions: positive('maxSessions', options.maxSessions ?? Infinity),
    bodyTimeout: positive('bodyTimeout', options.bodyTimeout ?? DEFAULTS.bodyTimeout),
    nodeId: checkNodeId(options.nodeId ?? null),
    httpHeadersOverwriteParam: options.httpHeadersOverwriteParam ?? DEFAULTS.httpHeadersOverwriteParam,
  });
}

// A base is matched segment by segment later, so here it only needs one
// canonical spelling: a leading slash, no trailing slash, and the root as `""`.
/** Normalises a base path: `"channel/"` → `"/channel"`, `"/"` → `""`. */
export function normaliseBase(base: string): string {
  if (typeof base !== 'string') throw new TypeError('browserChannel: option `base` must be a string');
  const trimmed = base.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `/${trimmed}`;
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw new TypeError(`browserChannel: option \`${name}\` must be a positive number, got ${String(value)}`);
  }
  return value;
}

function checkCors(cors: string | CorsFunction | null): string | CorsFunction | null {
  if (cors === null || typeof cors === 'string' || typeof cors === 'function') return cors;
  throw new TypeError('browserChannel: option `cors` must be a string or a function (req, res) => string');
}

// A node id becomes the start of every session id, so it must survive a
// query string and a proxy's routing rule unescaped.
function checkNodeId(nodeId: string | null): string | null {
  if (nodeId === null || /^[A-Za-z0-9_-]{1,32}$/.test(nodeId)) return nodeId;
  throw new TypeError('browserChannel: option `nodeId` must be 1-32 characters of A-Z, a-z, 0-9, _ or -');
}
