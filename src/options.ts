// # Options: what an app can tune, and the defaults that are safe without tuning
//
// `browserChannel(options, onConnect)` takes the same options as
// node-browserchannel 2.1.0, plus a few limits an operator on the open
// internet needs. This module owns their names, their defaults and their
// validation; every other module reads the frozen, fully resolved copy.
//
// ```ts
// browserChannel(
//   { base: '/chat', cors: 'https://app.example', keepAliveInterval: 15000 },
//   onConnect,
// )
// ```
//
// A wrong option is programmer misuse, so it throws a `TypeError` naming the
// option at startup, never later at request time. That includes a name
// that is not an option at all, since a typo would otherwise be a
// setting silently ignored:
//
// ```text
// TypeError: browserChannel: unknown option `keepAlive` (did you mean `keepAliveInterval`?)
// TypeError: browserChannel: option `keepAliveInterval` must be a whole number of
//            milliseconds from 1 to 2147483647, got number Infinity
// ```
/** Option types, defaults and validation. @module */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AllowRequest } from './auth.ts';
import type { Adapter } from './rooms.ts';
import type { RecoveryOptions } from './recovery.ts';

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
  /** Most maps per forward request. Default 1000 (the Closure client's batch); more: `400`. */
  maxMapsPerRequest?: number;
  /** Most keys in one map. Default 1000; more gets `400`. */
  maxKeysPerMap?: number;
  /** Requests held while waiting for an earlier `RID`. Default 50; more closes the session. */
  maxHeldRequests?: number;
  /** Bytes held waiting for earlier `RID`s or map ids. Default 4 MiB; more closes the session. */
  maxHeldBytes?: number;
  /** JSON characters kept unacknowledged. Default 16 MiB; more closes the session. */
  maxBufferedBytes?: number;
  /** Most arrays a session keeps unacknowledged. Default 50000; more closes the session. */
  maxBufferedArrays?: number;
  /** Most live sessions; a create past it gets `503` with `Retry-After`. Default unlimited. */
  maxSessions?: number;
  /**
   * Most live sessions one client may hold (see `per-client.ts`); a create past it gets `429`
   * with `Retry-After`. Default unlimited.
   */
  maxSessionsPerClient?: number;
  /**
   * Who a creating request is from, for `maxSessionsPerClient`. Default: the connection's
   * address, IPv6 by its `/64` prefix. Behind a proxy, read what the proxy says.
   */
  clientKey?: ((req: IncomingMessage) => string) | null;
  /** Milliseconds a forward-channel body may take to arrive. Default 30000; slower gets `408`. */
  bodyTimeout?: number;
  /** Names this process in session ids (`<nodeId>.<random>`), for routing. Default none. */
  nodeId?: string | null;
  /** URL parameter carrying WebChannel's encoded init headers. Default `$httpHeaders`. */
  httpHeadersOverwriteParam?: string;
  /** Decides whether a client may have a session (see `auth.ts`). Default: everyone may. */
  allowRequest?: AllowRequest | null;
  /** Where rooms live and broadcasts go. Default: a `MemoryAdapter` (one process). */
  adapter?: Adapter | null;
  /**
   * Keeps sessions recoverable across processes (see `recovery.ts`): `{ window: 120000 }`.
   * Needs an adapter with history, such as `browserchannel-server/redis`. Default off.
   */
  recovery?: RecoveryOptions | null;
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
  /** Most live sessions per client (Infinity when unlimited). */
  readonly maxSessionsPerClient: number;
  /** The app's way of naming a request's client, or null for the connection's address. */
  readonly clientKey: ((req: IncomingMessage) => string) | null;
  /** Body arrival deadline in milliseconds. */
  readonly bodyTimeout: number;
  /** This process's routing name, or null. */
  readonly nodeId: string | null;
  /** Name of the URL parameter holding encoded headers. */
  readonly httpHeadersOverwriteParam: string;
  /** The admission hook, or null. */
  readonly allowRequest: AllowRequest | null;
  /** The adapter, or null for a new `MemoryAdapter`. */
  readonly adapter: Adapter | null;
  /** Recovery settings, or null when off. */
  readonly recovery: Required<RecoveryOptions> | null;
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
//
// Each option has a checker that returns its value or throws; the
// checkers are listed in one table, which is also the list of names that
// exist, so an unknown key is caught by the same code.
const MAX_TIMER = 2 ** 31 - 1;
type Checker = (name: string, value: unknown) => unknown;
const CHECKERS: Record<keyof BrowserChannelOptions, Checker> = {
  base: (name, value) => normaliseBase(value === undefined ? DEFAULTS.base : (value as string)),
  hostPrefixes: (name, value) => hostnames(name, value),
  keepAliveInterval: (name, value) => timer(name, value ?? DEFAULTS.keepAliveInterval),
  sessionTimeoutInterval: (name, value) => timer(name, value ?? DEFAULTS.sessionTimeoutInterval),
  cors: (name, value) =>
    oneOf(
      name,
      value ?? null,
      ['string', 'function'],
      'a string or a function (req, res) => string',
    ),
  corsAllowCredentials: (name, value) => oneOf(name, value ?? false, ['boolean'], 'a boolean'),
  headers: (name, value) => headerObject(name, value ?? {}),
  server: (name, value) => closable(name, value ?? null),
  maxBodyBytes: (name, value) => count(name, value ?? DEFAULTS.maxBodyBytes),
  maxMapsPerRequest: (name, value) => count(name, value ?? DEFAULTS.maxMapsPerRequest),
  maxKeysPerMap: (name, value) => count(name, value ?? DEFAULTS.maxKeysPerMap),
  maxHeldRequests: (name, value) => count(name, value ?? DEFAULTS.maxHeldRequests),
  maxHeldBytes: (name, value) => count(name, value ?? DEFAULTS.maxHeldBytes),
  maxBufferedBytes: (name, value) => count(name, value ?? DEFAULTS.maxBufferedBytes),
  maxBufferedArrays: (name, value) => count(name, value ?? DEFAULTS.maxBufferedArrays),
  maxSessions: (name, value) => countOrUnlimited(name, value),
  maxSessionsPerClient: (name, value) => countOrUnlimited(name, value),
  clientKey: (name, value) =>
    oneOf(name, value ?? null, ['function'], 'a function (req) => string'),
  bodyTimeout: (name, value) => timer(name, value ?? DEFAULTS.bodyTimeout),
  nodeId: (name, value) => checkNodeId(value ?? null),
  httpHeadersOverwriteParam: (name, value) =>
    paramName(name, value ?? DEFAULTS.httpHeadersOverwriteParam),
  allowRequest: (name, value) =>
    oneOf(name, value ?? null, ['function'], 'a function (req, info) => verdict'),
  adapter: (name, value) => adapterShape(name, value ?? null),
  recovery: (name, value) => recoveryShape(name, value ?? null),
};

/**
 * Applies defaults and validates options.
 * @throws TypeError - naming the option, for an unknown name or a wrong type or range.
 */
export function resolveOptions(options: BrowserChannelOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(
      `browserChannel: options must be an object, got ${describe(options)}` +
        (typeof options === 'string' ? ' (pass { base: "…" } to set the URL prefix)' : ''),
    );
  }
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(CHECKERS, key)) continue;
    const near = nearest(key, Object.keys(CHECKERS));
    throw new TypeError(
      `browserChannel: unknown option \`${key}\`${near ? ` (did you mean \`${near}\`?)` : ''}`,
    );
  }
  const resolved: Record<string, unknown> = {};
  for (const [name, check] of Object.entries(CHECKERS)) {
    resolved[name] = check(name, (options as Record<string, unknown>)[name]);
  }
  resolved.hostPrefixes = Object.freeze(resolved.hostPrefixes as string[]);
  resolved.headers = Object.freeze({ ...(resolved.headers as Record<string, string>) });
  return Object.freeze(resolved) as unknown as ResolvedOptions;
}

// A base is matched segment by segment later, so here it only needs one
// canonical spelling: a leading slash, no trailing slash, and the root as `""`.
/** Normalises a base path: `"channel/"` → `"/channel"`, `"/"` → `""`. */
export function normaliseBase(base: string): string {
  if (typeof base !== 'string')
    throw new TypeError(`browserChannel: option \`base\` must be a string, got ${describe(base)}`);
  const trimmed = base.replace(/^\/+|\/+$/g, '');
  if (/[?#\s]/.test(trimmed))
    throw new TypeError('browserChannel: option `base` must be a path, without `?`, `#` or spaces');
  return trimmed === '' ? '' : `/${trimmed}`;
}

// ## The checkers
//
// Every message names the option, what it must be and what it got, type
// and value, so the fix is obvious from the message alone.
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'number' || typeof value === 'boolean')
    return `${typeof value} ${String(value)}`;
  return typeof value;
}

function fail(name: string, must: string, value: unknown): never {
  throw new TypeError(`browserChannel: option \`${name}\` must be ${must}, got ${describe(value)}`);
}

// Node clamps a timer outside 1 … 2^31−1 ms to 1 ms: `Infinity` as a
// heartbeat interval would send hundreds of heartbeats a second.
function timer(name: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_TIMER)
    return value;
  return fail(name, `a whole number of milliseconds from 1 to ${MAX_TIMER}`, value);
}

function count(name: string, value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1) return value;
  return fail(name, 'a whole number of at least 1', value);
}

// A limit that is off unless given: unset and `Infinity` both mean none.
function countOrUnlimited(name: string, value: unknown): number {
  return value === undefined || value === Infinity ? Infinity : count(name, value);
}

function oneOf(name: string, value: unknown, types: string[], must: string): unknown {
  if (value === null || types.includes(typeof value)) return value;
  return fail(name, must, value);
}

// A label: letters, digits and inner hyphens; a hostname: labels joined by dots.
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** Whether `text` has the shape of a DNS hostname. */
export function isHostname(text: string): boolean {
  return HOSTNAME.test(text);
}

function hostnames(name: string, value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return fail(name, 'an array of hostnames', value);
  for (const item of value) {
    if (typeof item !== 'string' || !isHostname(item)) fail(name, 'an array of hostnames', item);
  }
  return [...(value as string[])];
}

function headerObject(name: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return fail(name, 'an object of header names to strings', value);
  for (const [key, item] of Object.entries(value)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key))
      fail(name, 'an object whose keys are header names', key);
    if (typeof item !== 'string' || /[\r\n]/.test(item))
      fail(`${name}.${key}`, 'a string without line breaks', item);
  }
  return value as Record<string, string>;
}

function closable(name: string, value: unknown): unknown {
  if (value === null) return null;
  if (typeof value === 'object' && typeof (value as Closable).on === 'function') return value;
  return fail(name, 'an http.Server (anything with an on() method)', value);
}

function adapterShape(name: string, value: unknown): unknown {
  if (value === null) return null;
  const methods = ['attach', 'join', 'leave', 'leaveAll', 'broadcast', 'sessionIds', 'close'];
  const missing = methods.filter(
    (method) => typeof (value as Record<string, unknown>)[method] !== 'function',
  );
  if (typeof value === 'object' && missing.length === 0) return value;
  return fail(name, `an Adapter${missing.length ? ` (missing ${missing.join(', ')})` : ''}`, value);
}

// Recovery keeps state in the adapter's store for `window` milliseconds,
// up to `history` broadcasts per room, and waits at most `timeout` for
// it. Whether the adapter has a store is checked by the factory, which
// sees both options together.
function recoveryShape(name: string, value: unknown): Required<RecoveryOptions> | null {
  if (value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    return fail(name, 'an object { window, history?, timeout? }', value);
  }
  const { window, history, timeout, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) {
    fail(`${name}.${unknown}`, 'absent (known: window, history, timeout)', unknown);
  }
  return Object.freeze({
    window: timer(`${name}.window`, window),
    history: count(`${name}.history`, history ?? 1000),
    timeout: timer(`${name}.timeout`, timeout ?? 2000),
  });
}

function paramName(name: string, value: unknown): string {
  if (typeof value === 'string' && /^[A-Za-z0-9$_.-]{1,64}$/.test(value)) return value;
  return fail(name, 'a URL parameter name (1-64 of A-Z a-z 0-9 $ _ . -)', value);
}

// A node id becomes the start of every session id, so it must survive a
// query string and a proxy's routing rule unescaped.
function checkNodeId(nodeId: unknown): string | null {
  if (nodeId === null || (typeof nodeId === 'string' && /^[A-Za-z0-9_-]{1,32}$/.test(nodeId)))
    return nodeId;
  return fail('nodeId', '1-32 characters of A-Z, a-z, 0-9, _ or -', nodeId);
}

// ## Did you mean
//
// The nearest known name by edit distance, if it is near enough to be a
// typo (`bse` → `base`), or one contains the other (`keepAlive` →
// `keepAliveInterval`).
function nearest(key: string, names: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const name of names) {
    const lower = key.toLowerCase();
    const distance =
      name.toLowerCase().includes(lower) || lower.includes(name.toLowerCase())
        ? Math.abs(name.length - key.length) / 10
        : editDistance(lower, name.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [name, distance];
  }
  return bestDistance <= Math.max(2, key.length * 0.4) ? best : null;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        row[j]! + 1,
        next[j - 1]! + 1,
        row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length]!;
}
