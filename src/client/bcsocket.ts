// # BCSocket: a WebSocket-shaped client for BrowserChannel
//
// Pages written for node-browserchannel use `BCSocket`, a small object in
// the shape of a WebSocket that the original built on Google's compiled
// Closure client. This is the same API, written from scratch for modern
// browsers (`fetch` with streaming bodies; no iframes, no XHR):
//
// ```js
// const socket = new BCSocket('/channel', { reconnect: true });
// socket.onopen = () => socket.send({ hello: 'world' });
// socket.onmessage = (event) => console.log(event.data);
// ```
//
// A socket outlives its sessions. Each session is a `Channel`
// (`channel.ts`); when one ends for a reason that allows it, and
// `reconnect` is on, the socket opens another after a pause that doubles
// with each failure (with jitter, so that a server restart is not met by
// every client at the same instant), naming the old session in `OSID` so
// the server can retire it. The messages the old session never had
// acknowledged go with it, first in line in the new one (`OMID`).
/** The public browser client: BCSocket, its options and its events. @module */
import { type CarriedMaps, Channel, type EndKind } from './channel.ts';
import { type ClientMap, randomToken } from './wire.ts';

// ## Options
/** Options of a BCSocket; all optional. */
export interface BCSocketOptions {
  /** Reconnect after failures, after a backoff or the server's `Retry-After`. Default false. */
  reconnect?: boolean;
  /** First reconnect delay in ms (it doubles, up to 30 s). Default 1000. */
  reconnectTime?: number;
  /** Query parameters on every request. */
  extraParams?: Record<string, string>;
  /** Headers on every request (cross-origin they cost a CORS preflight). */
  extraHeaders?: Record<string, string>;
  /** Sent as `CVER` when a session is created; the server exposes it as `session.appVersion`. */
  appVersion?: string;
  /** A previous socket whose session the server should retire (`OSID`/`OAID`). */
  prev?: BCSocket | null;
  /** Give up at the first failed request instead of retrying. */
  failFast?: boolean;
  /** Random token on every request, so a proxy can keep this socket on one server; `null`: none. */
  affinity?: string | null;
  /** Name of the affinity parameter. Default `a`. */
  affinityParam?: string;
  /** Skip the buffering test and stream (`true`) or long-poll (`false`). Default: test once. */
  streaming?: boolean;
  /** Send cookies cross-origin (`credentials: 'include'`); needs `corsAllowCredentials`. */
  crossDomainXhr?: boolean;
  /** Milliseconds any request may take before it is abandoned and retried. Default 45000. */
  timeout?: number;
}

/** The event handed to `onmessage` and `message` listeners. */
export interface BCMessageEvent {
  /** The message: whatever the server passed to `session.send`. */
  readonly data: unknown;
}

/**
 * A listener: `message` ones get a {@link BCMessageEvent}, `error` ones a string, `close` ones
 * the reason and the maps given up on (see {@link BCSocket.onclose}).
 */
export type Listener = (...args: unknown[]) => void;

// ## Ready states
//
// The numbers are the WebSocket ones, as node-browserchannel's were.
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

// ## Which endings allow a reconnect
//
// `stop` is the server saying "do not come back"; `local` and `closed` are
// deliberate; `refused` is an answer that would be the same next time (a
// `401` or `403` to the create request, a `413` for a body over the
// server's `maxBodyBytes`). A vanished session is retried at once, a
// failure after a pause: the backoff, or the server's `Retry-After` when
// that is longer (a full server says 5 s, one shutting down 1 s).
const FINAL: ReadonlySet<EndKind> = new Set(['local', 'stop', 'closed', 'refused']);
const NOTHING_CARRIED: CarriedMaps = { firstId: null, maps: [] };

// Where there is no `reportError` (Node 20 has none), the exception is
// thrown again from a timer of its own: uncaught, as in any other event
// handler there.
function fenced(handler: Listener, self: BCSocket, args: unknown[]): void {
  try {
    handler.apply(self, args);
  } catch (error) {
    const scope = globalThis as { reportError?: (error: unknown) => void };
    if (typeof scope.reportError === 'function') scope.reportError(error);
    else setTimeout(() => {
      throw error;
    });
  }
}

// In a page, `window`; elsewhere (Node, workers without it) nothing.
function pageScope(): {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
} | null {
  const scope = globalThis as { window?: unknown; addEventListener?: unknown };
  return scope.window === globalThis && typeof scope.addEventListener === 'function'
    ? (globalThis as never)
    : null;
}

// ## The socket
/** A BrowserChannel connection with the API of node-browserchannel's BCSocket. */
export class BCSocket {
  /** The socket is connecting. */
  static readonly CONNECTING = CONNECTING;
  /** The socket is open. */
  static readonly OPEN = OPEN;
  /** The socket is closing. */
  static readonly CLOSING = CLOSING;
  /** The socket is closed. */
  static readonly CLOSED = CLOSED;
  /** Sessions accept messages while connecting. */
  static readonly canSendWhileConnecting = true;
  /** `send` takes any JSON value. */
  static readonly canSendJSON = true;
  /** The socket is connecting (0). */
  readonly CONNECTING = CONNECTING;
  /** The socket is open (1). */
  readonly OPEN = OPEN;
  /** The socket is closing (2). */
  readonly CLOSING = CLOSING;
  /** The socket is closed (3). */
  readonly CLOSED = CLOSED;

  /** One of CONNECTING, OPEN, CLOSING, CLOSED. */
  readyState = CONNECTING;
  /** The affinity token sent on every request, or null. */
  readonly affinity: string | null;
  /** Called when a session opens. */
  onopen: (() => void) | null = null;
  /** Called with `{data}` for every message. */
  onmessage: ((event: BCMessageEvent) => void) | null = null;
  /** Called with a message when something fails. */
  onerror: ((message: string) => void) | null = null;
  /**
   * Called with the reason when the socket closes (before any reconnect), and the maps given up
   * on: those the server refused, and, when no reconnect will resend them, those it never
   * acknowledged; usually `[]`.
   */
  onclose: ((reason: string, undelivered: ClientMap[]) => void) | null = null;
  /** Called when a session starts connecting: the first, just after `new`, and each reconnect. */
  onconnecting: (() => void) | null = null;

  private channel: Channel | null = null;
  private streaming: boolean | null;
  private previous: { sessionId: string; lastArrayId: number } | null = null;
  private carried: CarriedMaps = NOTHING_CARRIED;
  private failures = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly base: string;
  private readonly options: BCSocketOptions;
  private readonly params: Record<string, string>;

  /**
   * Opens a socket at once.
   * @param url - the channel's base URL (`/channel`, or absolute; `ws:` and `wss:` become http).
   */
  constructor(url = 'channel', options: BCSocketOptions = {}) {
    this.base = url.replace(/^ws/, 'http').replace(/\/+$/, '');
    this.options = options;
    this.streaming = options.streaming ?? null;
    this.affinity = options.affinity === null ? null : (options.affinity ?? randomToken());
    this.params = { ...options.extraParams };
    if (this.affinity !== null) this.params[options.affinityParam ?? 'a'] = this.affinity;
    this.previous = options.prev?.lastSession() ?? null;
    this.connect();
    // `connecting` for the first session fires a microtask later, so that
    // handlers set just after `new BCSocket(…)` hear it; 2.1.0 fired it
    // inside the constructor, where nobody could.
    queueMicrotask(() => {
      if (this.readyState === CONNECTING) this.fire('connecting');
    });
    pageScope()?.addEventListener('pagehide', this.onPageHide);
  }

  // When the page goes away, say goodbye: the terminate request is sent
  // `keepalive`, so the server frees the session (and tells the others it
  // left) at once instead of after its session timeout.
  private readonly onPageHide = (): void => this.close();

  // ## Sending
  //
  // Strings travel as `{_S: string}`, anything else as `{JSON: text}`,
  // exactly as the Closure-based BCSocket sent them, so the server's
  // `message` event gets back what was sent.
  // Between two sessions of a reconnecting socket (`CLOSED`, with the next
  // connect already scheduled) a message joins the maps carried into the
  // next session, after the old ones: it is sent there, not dropped.
  /** Sends any JSON value; ignored once the socket is closing, or closed for good. */
  send(message: unknown): void {
    this.sendMap(typeof message === 'string' ? { _S: message } : { JSON: JSON.stringify(message) });
  }

  /** Sends a raw map of strings (the server's `map` event). */
  sendMap(map: ClientMap): void {
    if (this.readyState === CLOSED && this.reconnectTimer !== null) {
      this.carried = { firstId: this.carried.firstId, maps: [...this.carried.maps, map] };
      return;
    }
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    this.channel?.send(map);
  }

  /** Closes the socket and says goodbye to the server; no reconnect follows. */
  close(): void {
    pageScope()?.removeEventListener('pagehide', this.onPageHide);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.readyState === CLOSED) return this.dropCarried();
    this.readyState = CLOSING;
    if (this.channel) this.channel.close();
    else this.closed('Closed', this.takeCarried());
  }

  // ## Events, the DOM way too
  /** Adds a listener for `open`, `message`, `error`, `close` or `connecting`. */
  addEventListener(type: string, listener: Listener): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(listener);
  }

  /** Removes a listener added with `addEventListener`. */
  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener);
  }

  // The app's handlers are fenced as a WebSocket's are: one that throws
  // is reported (`reportError`, which a page shows on the console and
  // `window.onerror`) and the socket carries on, since it is no fault of
  // the connection. Unfenced, the exception was taken for a network
  // failure: nobody saw it, the back channel was dropped and opened again
  // for the rest of its chunk, and a handler that kept throwing used up
  // the retries and ended the session.
  private fire(type: string, ...args: unknown[]): void {
    const handler = (this as unknown as Record<string, unknown>)[`on${type}`];
    if (typeof handler === 'function') fenced(handler as Listener, this, args);
    for (const listener of this.listeners.get(type) ?? []) fenced(listener, this, args);
  }

  // ## One session after another
  private connect(): void {
    this.readyState = CONNECTING;
    const channel = new Channel(
      {
        base: this.base,
        appVersion: this.options.appVersion,
        extraParams: this.params,
        extraHeaders: this.options.extraHeaders ?? {},
        streaming: this.streaming,
        failFast: this.options.failFast === true,
        crossDomainXhr: this.options.crossDomainXhr === true,
        timeoutMs: this.options.timeout ?? 45_000,
        previous: this.previous,
        carried: this.carried,
      },
      {
        opened: () => this.opened(channel),
        array: (data) => this.fire('message', { data } satisfies BCMessageEvent),
        ended: (kind, message, retryAfterMs) => this.ended(channel, kind, message, retryAfterMs),
      },
    );
    this.channel = channel;
    void channel.open();
  }

  // The buffering test runs once per socket: later sessions reuse its answer.
  private opened(channel: Channel): void {
    this.failures = 0;
    this.streaming = channel.streams;
    this.readyState = OPEN;
    this.previous = { sessionId: channel.sessionId!, lastArrayId: channel.lastArrayId };
    this.carried = NOTHING_CARRIED;
    this.fire('open');
  }

  // When a channel ends, remember its session for `OSID` and its
  // unacknowledged maps, report the reason, and decide whether another
  // session follows. The maps go to the next session, or, when none
  // follows, to the `close` listeners, so none is dropped unseen.
  private ended(channel: Channel, kind: EndKind, message: string, retryAfterMs = 0): void {
    const dropped = this.carry(channel);
    this.channel = null;
    if (kind !== 'local') this.fire('error', message);
    // An `error` listener that called `close()` has closed the socket.
    if (this.readyState === CLOSED) return;
    const again =
      this.options.reconnect === true && !FINAL.has(kind) && this.readyState !== CLOSING;
    const refused = [...channel.refusedMaps.map((p) => p.map), ...dropped];
    if (!again) return this.closed(message, [...refused, ...this.takeCarried()]);
    // The timer is set before `close` fires, so that a listener calling
    // `close()` cancels the reconnect (and is handed the carried maps).
    const delay = kind === 'unknown-session' ? 0 : Math.max(this.backoff(), retryAfterMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
      this.fire('connecting');
    }, delay);
    this.closed(message, refused);
  }

  private closed(reason: string, undelivered: ClientMap[]): void {
    this.readyState = CLOSED;
    this.fire('close', reason, undelivered);
  }

  // ## Carrying maps across sessions
  //
  // A channel that had a session hands over its unacknowledged maps with
  // the id the first of them had there (the next create's `OMID`). One
  // that never got a handshake could not have had any acknowledged, so its
  // queue starts with whatever it was itself carrying, and the `OMID` of
  // that stays right, since `previous` still names the same old session.
  //
  // Only a session the server saved for recovery (`X-Session-Recovery` on
  // its handshake) carries maps: only such a server can tell a resent map
  // it already delivered from a new one. A server without recovery would
  // hand them to the app in a fresh session, which an app with its own
  // resending (ShareDB) takes for new messages. So, as Closure's client
  // does, such maps go to the `close` listeners instead. Returns them.
  private carry(channel: Channel): ClientMap[] {
    const pending = channel.unacknowledged;
    if (channel.sessionId) {
      this.previous = { sessionId: channel.sessionId, lastArrayId: channel.lastArrayId };
      if (!channel.recoverable) {
        this.carried = NOTHING_CARRIED;
        return pending.map((p) => p.map);
      }
      this.carried = { firstId: pending[0]?.id ?? null, maps: pending.map((p) => p.map) };
    } else {
      this.carried = { firstId: this.carried.firstId, maps: pending.map((p) => p.map) };
    }
    return [];
  }

  // `close()` while waiting to reconnect: the carried maps will not be
  // resent, so the app hears of them in one more `close` event (none when
  // nothing was carried, as before).
  private dropCarried(): void {
    const given = this.takeCarried();
    if (given.length > 0) this.fire('close', 'Closed', given);
  }

  private takeCarried(): ClientMap[] {
    const given = this.carried.maps.slice();
    this.carried = NOTHING_CARRIED;
    return given;
  }

  // `{prev: oldSocket}` asks the server to retire the old socket's newest
  // session, whether it is still running or already ended. Its maps stay
  // with it: only a socket's own reconnects carry maps over, and when it
  // closes for good its `close` event hands the app what it still held.
  /** @internal The newest session of this socket, for another socket's `prev`. */
  lastSession(): { sessionId: string; lastArrayId: number } | null {
    const channel = this.channel;
    if (channel?.sessionId)
      return { sessionId: channel.sessionId, lastArrayId: channel.lastArrayId };
    return this.previous;
  }

  private backoff(): number {
    const base = this.options.reconnectTime ?? 1000;
    return Math.min(30_000, base * 2 ** this.failures++) * (0.5 + Math.random() / 2);
  }
}
