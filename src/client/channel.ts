// # Channel: one session, from the client's side
//
// This is the protocol engine of the browser client: it opens one session
// and keeps it running until the session ends, and then it is done (the
// socket in `bcsocket.ts` decides whether to start another). It speaks to
// the server described in the server's own modules:
//
// ```text
// GET  /test?VER=8&MODE=init                  → [null,null]
// GET  /test?VER=8&TYPE=xmlhttp               → 11111 … 2        buffering check
// POST /bind?VER=8&RID=4242                   → [[0,["c",SID,…]]] session created
// GET  /bind?SID=…&RID=rpc&AID=0&CI=0         ← arrays, streamed  back channel
// POST /bind?SID=…&RID=4243&AID=3             count=1&ofs=0&…     maps up
// GET  /bind?SID=…&RID=4244&TYPE=terminate                        goodbye
// ```
//
// A channel that follows another one names the old session on its create
// request and starts with the maps the old one never saw acknowledged
// (see "Maps that outlive their session" below).
//
// Everything is `fetch`: a streaming response body gives the back channel,
// and `keepalive` lets the goodbye outlive the page.
/** The client-side protocol engine: test, create, forward and back channels. @module */
import { ChunkReader } from './chunks.ts';
import { type ClientMap, channelUrl, encodeMaps } from './wire.ts';

// ## What a channel is told, and what it tells
/** Settings for one channel. */
export interface ChannelOptions {
  /** The server's base URL, such as `https://example.com/channel`. */
  readonly base: string;
  /** Sent as `CVER` on the create request. */
  readonly appVersion: string | undefined;
  /** Query parameters added to every request. */
  readonly extraParams: Readonly<Record<string, string>>;
  /** Headers added to every request (cross-origin, they cost a preflight). */
  readonly extraHeaders: Readonly<Record<string, string>>;
  /** Back channels stream (`CI=0`) if true, long-poll (`CI=1`) if false, are tested if null. */
  readonly streaming: boolean | null;
  /** Give up at the first failed request instead of retrying. */
  readonly failFast: boolean;
  /** Send cookies and HTTP auth cross-origin (`credentials: 'include'`). */
  readonly crossDomainXhr: boolean;
  /** Milliseconds any request may take, start to end, before it is abandoned. */
  readonly timeoutMs: number;
  /** A previous session to retire (`OSID`/`OAID`), or null. */
  readonly previous: { readonly sessionId: string; readonly lastArrayId: number } | null;
  /** Maps an earlier channel never had acknowledged, to send before any other. */
  readonly carried: CarriedMaps;
}

/** Maps carried from one channel into the next, oldest first. */
export interface CarriedMaps {
  /** The id the first map had in the `previous` session, or null if it never had one there. */
  readonly firstId: number | null;
  /** The maps, in the order the app sent them. */
  readonly maps: readonly ClientMap[];
}

/** A map waiting for the server to acknowledge it, with its id in this channel's session. */
export interface PendingMap {
  /** The map's id in this session (the first map is 0). */
  readonly id: number;
  /** The map as the app sent it. */
  readonly map: ClientMap;
}

/** Why a channel ended. */
export type EndKind =
  'local' | 'stop' | 'closed' | 'refused' | 'unknown-session' | 'network' | 'failed';

/** Callbacks from a channel to its owner. */
export interface ChannelEvents {
  /** The handshake arrived. */
  opened(): void;
  /** One array of app data arrived. */
  array(data: unknown): void;
  /**
   * The channel is over; it calls this exactly once. `retryAfterMs`: how long the server asked
   * to wait before trying again (`Retry-After`), or 0.
   */
  ended(kind: EndKind, message: string, retryAfterMs: number): void;
}

// ## Failure kinds
//
// The server answers in the vocabulary of the Closure client
// (`goog.net.ChannelRequest`): `400` with `Unknown SID` past the body's
// first character means the session is gone; any other non-200 ends the
// session; a failed or timed-out request may be retried.
//
// Some answers say that trying again cannot help, so the socket must not
// reconnect (kind `refused`):
//
// | status | on | meaning |
// |---|---|---|
// | `401`, `403` | the create request | the server will not let this client in |
// | `413` | any request | the body is over `maxBodyBytes`, and a resend would be too |
//
// The reason names the status and, when the server gave one, its reason
// phrase: `Request refused with status 413 (Body larger than 1048576
// bytes (maxBodyBytes))`.
//
// A server that is full, shutting down, or done with this client for a
// while (`503`, `429`) says how long to wait in `Retry-After`, in
// seconds; the socket waits at least that long before it reconnects.
//
// ```http
// HTTP/1.1 429 Too many sessions for this client (maxSessionsPerClient 20)
// Retry-After: 5
// ```
class Ended extends Error {
  constructor(
    readonly kind: EndKind,
    message: string,
    readonly status = 0,
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

// Whole seconds only (the form our server sends), at most five minutes.
function retryAfterMs(header: string | null): number {
  if (header === null || !/^\d{1,6}$/.test(header.trim())) return 0;
  return Math.min(300, Number(header.trim())) * 1000;
}

async function check(response: Response, creating = false): Promise<Response> {
  const { status, statusText } = response;
  if (status === 200) return response;
  const body = await response.text().catch(() => '');
  if (status === 400 && body.indexOf('Unknown SID') > 0)
    throw new Ended('unknown-session', 'Unknown session ID');
  const reason = statusText ? ` (${statusText})` : '';
  const final = status === 413 || (creating && (status === 401 || status === 403));
  if (final) throw new Ended('refused', `Request refused with status ${status}${reason}`, status);
  const wait = retryAfterMs(response.headers.get('retry-after'));
  throw new Ended('failed', `Request failed with status ${status}${reason}`, status, wait);
}

// ## Timing and sizes
//
// Every request has a deadline (`timeoutMs`, 45 s unless the app says
// otherwise, as the Closure client's `ChannelRequest` has): the test
// requests, the create, each forward POST and the goodbye. Past it the
// request is aborted and counts as a network failure, so a POST the
// server never answers is retried, under the same `RID`, instead of
// holding the forward queue for ever. A back channel is cut on a
// different clock, its silence: once it is longer than 1.5 × the
// keep-alive the server announced (45 s before the handshake says).
//
// A failed request is retried three times, after 250 ms, 500 ms and 1 s
// (each scaled by a random half to a whole, so that clients cut off
// together do not come back together), and a batch holds at most the
// 1,000 maps the server accepts by default (`maxMapsPerRequest`).
const DEFAULT_WATCHDOG_MS = 45_000;
const RETRIES = 3;
const MAX_MAPS_PER_REQUEST = 1000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const retryDelay = (attempt: number): number =>
  Math.min(5000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);

// ## Maps that outlive their session
//
// A map is acknowledged only by the `200` to the forward request that
// carried it. When a session ends before that (its process died with the
// POST in flight, or the POST failed and the session with it), the server
// may or may not have handed the map to the app; nobody can tell from
// here. So a socket that reconnects carries every unacknowledged map into
// the next channel, oldest first and with no gaps, where they are queued
// ahead of anything else and take new ids (0, 1, 2…) like any map. The
// create request says where they came from: `OMID` is the id the first of
// them had in the old session.
//
// ```http
// POST /bind?VER=8&SID=old&RID=812&AID=9          count=2&ofs=4&req0_…&req1_…
//                                                  (never answered: the process died)
// POST /bind?VER=8&RID=5530&t=1&OSID=old&OAID=9&OMID=4
// Content-Type: application/x-www-form-urlencoded
//
// count=3&ofs=0&req0_…&req1_…&req2_…               old maps 4 and 5, then a new one
// ```
//
// A server that knows the old session delivered its maps up to id `L`
// drops the new session's first `L - OMID + 1` maps as repeats; one that
// knows nothing delivers them all. Either way nothing is lost, and with a
// server that remembers, nothing arrives twice. That is why the carried
// maps must be exactly the unacknowledged ones, in their order: a gap or a
// swap would make the server drop the wrong map.
//
// Without an old session (the first create failed) there is no `OSID` and
// so no `OMID`; the maps are simply sent again.
//
// The one exception is a batch the server answered with a `4xx` of its
// own: it was read, so it is settled, not carried (see `settle` below).

// ## The channel
/** One BrowserChannel session seen from the client. */
export class Channel {
  /** The session id, once the handshake has arrived. */
  sessionId: string | null = null;
  /** The newest array id received (`AID`). */
  lastArrayId = -1;
  /** Whether the server saves this session for recovery (`X-Session-Recovery: 1`). */
  recoverable = false;

  // Maps get ids when queued and stay in `pending` until a forward request
  // carrying them succeeds; a retry resends the same ids under the same
  // `RID`, with any maps queued since appended.
  //
  // `RID`s start at a random number below 100,000, as the Closure
  // client's do (`WebChannelBase.open_`).
  private readonly pending: PendingMap[] = [];
  private readonly refused: PendingMap[] = [];
  private nextMapId = 0;
  private nextRid = Math.floor(Math.random() * 100_000);
  private forwardBusy = false;
  private streaming = true;
  private watchdogMs = DEFAULT_WATCHDOG_MS;
  private over = false;
  private readonly aborts = new Set<AbortController>();

  constructor(
    private readonly options: ChannelOptions,
    private readonly events: ChannelEvents,
  ) {
    for (const map of options.carried.maps) this.pending.push({ id: this.nextMapId++, map });
  }

  // ## Opening
  //
  // The test phase first (unless the owner already knows the answer), then
  // the create request, then both channels run until the end.
  /** Runs the channel; resolves when it has ended. */
  async open(): Promise<void> {
    try {
      this.streaming = this.options.streaming ?? (await this.testStreaming());
      await this.create();
      void this.flushForward();
      await this.backChannelLoop();
    } catch (error) {
      if (error instanceof Ended) this.end(error.kind, error.message, error.retryAfterMs);
      else this.end('network', 'General network error');
    }
  }

  // ### The test phase
  //
  // Phase 1 asks `MODE=init` (we do not use host prefixes). Phase 2 reads
  // `11111` and, two seconds later, `2`: if the first read holds just
  // `11111`, nothing buffers, and we need not wait for the `2`, so the
  // request is cut short. The Closure client always waits the two seconds.
  private async testStreaming(): Promise<boolean> {
    const { base, extraParams } = this.options;
    const init = channelUrl(base, '/test', { VER: 8, MODE: 'init', ...extraParams });
    await this.exchange(init, {}, (response) => response.text());
    const url = channelUrl(base, '/test', { VER: 8, TYPE: 'xmlhttp', ...extraParams });
    return this.exchange(url, {}, async (response, controller) => {
      const first = new TextDecoder().decode((await response.body!.getReader().read()).value);
      controller.abort();
      return first === '11111';
    });
  }

  // ### Creating the session
  //
  // The create request carries whatever the app queued while connecting
  // (the maps carried from the previous session first), and the server
  // answers with the handshake `["c", sid, hostPrefix, 8]` (WebChannel
  // servers add a version and their keep-alive interval).
  private async create(): Promise<void> {
    const batch = this.pending.slice(0, MAX_MAPS_PER_REQUEST);
    const { previous, carried } = this.options;
    const url = channelUrl(this.options.base, '/bind', {
      VER: 8,
      RID: this.nextRid++,
      CVER: this.options.appVersion,
      t: 1,
      OSID: previous?.sessionId,
      OAID: previous?.lastArrayId,
      OMID: previous && carried.maps.length > 0 ? (carried.firstId ?? undefined) : undefined,
      ...this.options.extraParams,
    });
    const init = {
      method: 'POST',
      body: encodeMaps(
        batch.map((m) => m.map),
        0,
      ),
      headers: FORM,
    };
    const text = await this.exchange(url, init, (response) => {
      this.recoverable = response.headers.get('X-Session-Recovery') === '1';
      return response.text();
    }, {
      creating: true,
    }).catch((error: unknown) => {
      this.settle(error, batch.length);
      throw error;
    });
    const [arrays] = new ChunkReader().push(text) as [Array<[number, unknown[]]>];
    const handshake = arrays?.[0]?.[1];
    if (!Array.isArray(handshake) || handshake[0] !== 'c')
      throw new Ended('failed', 'No handshake from the server');
    this.sessionId = String(handshake[1]);
    if (typeof handshake[5] === 'number' && handshake[5] > 0) this.watchdogMs = 1.5 * handshake[5];
    this.pending.splice(0, batch.length);
    this.lastArrayId = arrays[0]![0];
    this.events.opened();
    this.receive(arrays.slice(1));
  }

  /** Whether back channels stream (`CI=0`) in this channel. */
  get streams(): boolean {
    return this.streaming;
  }

  /** The maps the server has not acknowledged yet, oldest first (a copy). */
  get unacknowledged(): readonly PendingMap[] {
    return this.pending.slice();
  }

  // ## Sending
  /** Queues a map for the server. */
  send(map: ClientMap): void {
    this.pending.push({ id: this.nextMapId++, map });
    void this.flushForward();
  }

  // One forward request at a time, each carrying everything pending (up to
  // 1,000 maps). A failed request is retried with the same `RID`, so the
  // server, which orders by `RID` and drops map ids it has seen, delivers
  // each map once.
  private async flushForward(): Promise<void> {
    if (this.forwardBusy || this.over || this.sessionId === null || this.pending.length === 0)
      return;
    this.forwardBusy = true;
    const rid = this.nextRid++;
    for (let attempt = 0; !this.over; attempt++) {
      const batch = this.pending.slice(0, MAX_MAPS_PER_REQUEST);
      try {
        const url = this.bindUrl({ RID: rid, AID: this.lastArrayId });
        const body = encodeMaps(
          batch.map((m) => m.map),
          batch[0]!.id,
        );
        const init = { method: 'POST', body, headers: FORM };
        await this.exchange(url, init, (response) => response.text(), { keep: true });
        this.pending.splice(0, batch.length);
        break;
      } catch (error) {
        this.settle(error, batch.length);
        if (!(await this.mayRetry(error, attempt))) break;
      }
    }
    this.forwardBusy = false;
    void this.flushForward();
  }

  // ### Answers that settle a batch
  //
  // A `4xx` to a forward request, other than `Unknown SID` and `413`, is
  // the server saying it read the batch: `403` when the app closed the
  // session while handling it (the maps were delivered), `400` when they
  // can never be accepted. Either way, sending them again in the next
  // session would only repeat that end (an app that closes the session on
  // a "log out" message would be sent it for ever), so they leave
  // `pending`; the refused ones are kept for the socket's `close` event.
  private settle(error: unknown, count: number): void {
    if (!(error instanceof Ended) || error.kind !== 'failed') return;
    if (error.status < 400 || error.status > 499) return;
    const settled = this.pending.splice(0, count);
    if (error.status !== 403) this.refused.push(...settled);
  }

  /** Maps the server refused for good in this channel (a `400` to their request). */
  get refusedMaps(): readonly PendingMap[] {
    return this.refused.slice();
  }

  // ## Receiving
  //
  // The back channel is reopened as soon as it ends (the server ends it
  // after each chunk with `CI=1`, after about 128 KB with `CI=0`). A
  // watchdog aborts one that has been silent too long. Each request says,
  // in `AID`, what has arrived, so the server resends anything that was
  // lost with the previous one; ids already seen are skipped.
  private async backChannelLoop(): Promise<void> {
    for (let attempt = 0; !this.over;) {
      try {
        await this.backChannel();
        attempt = 0;
      } catch (error) {
        if (!(await this.mayRetry(error, attempt++))) return;
      }
    }
  }

  private async backChannel(): Promise<void> {
    const controller = this.abortable();
    let watchdog = setTimeout(() => controller.abort(), this.watchdogMs);
    // When `end()` cuts the request (say, for a `["stop"]` just read), the
    // watchdog goes at once: in Node a read of the aborted body was seen
    // to stay pending, and its timer kept the process alive for 45 s.
    controller.signal.addEventListener('abort', () => clearTimeout(watchdog));
    try {
      const url = this.bindUrl({
        RID: 'rpc',
        AID: this.lastArrayId,
        CI: this.streaming ? 0 : 1,
        TYPE: 'xmlhttp',
      });
      const response = await check(await this.fetch(url, { signal: controller.signal }));
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      const chunks = new ChunkReader();
      for (let read = await reader.read(); !read.done && !this.over; read = await reader.read()) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), this.watchdogMs);
        for (const arrays of chunks.push(decoder.decode(read.value, { stream: true })))
          this.receive(arrays as Array<[number, unknown]>);
      }
    } finally {
      clearTimeout(watchdog);
      this.aborts.delete(controller);
    }
  }

  // `["noop"]` is a heartbeat; `["stop"]` asks us to go away for good;
  // `["close"]` (from WebChannel servers) is a clean goodbye.
  private receive(arrays: ReadonlyArray<[number, unknown]>): void {
    for (const [id, data] of arrays) {
      if (this.over) return;
      if (id <= this.lastArrayId) continue;
      this.lastArrayId = id;
      const tag = Array.isArray(data) && data.length === 1 ? data[0] : undefined;
      if (tag === 'noop') continue;
      if (tag === 'stop') return this.end('stop', 'Stopped by server');
      if (tag === 'close') return this.end('closed', 'Closed by server');
      this.events.array(data);
    }
  }

  // ## Ending
  //
  // `close()` says goodbye with `TYPE=terminate` under the next `RID`, so
  // the server handles it after every forward request before it, and sends
  // it `keepalive` so it survives the page being closed.
  /** Ends the channel from this side, telling the server. */
  close(): void {
    if (this.over) return;
    if (this.sessionId !== null) {
      const url = this.bindUrl({ RID: this.nextRid++, TYPE: 'terminate' });
      const signal = AbortSignal.timeout(this.options.timeoutMs);
      void this.fetch(url, { keepalive: true, signal }).catch(() => {});
    }
    this.end('local', 'Closed');
  }

  private end(kind: EndKind, message: string, retryAfterMs = 0): void {
    if (this.over) return;
    this.over = true;
    for (const controller of this.aborts) controller.abort();
    this.aborts.clear();
    this.events.ended(kind, message, retryAfterMs);
  }

  // A request that failed on the network (or was cut by the watchdog) is
  // retried after a growing, jittered pause, a few times; a protocol
  // answer (`Unknown SID`, a bad status) ends the channel at once.
  private async mayRetry(error: unknown, attempt: number): Promise<boolean> {
    if (this.over) return false;
    if (error instanceof Ended) {
      return (this.end(error.kind, error.message, error.retryAfterMs), false);
    }
    if (this.options.failFast || attempt >= RETRIES)
      return (this.end('network', 'General network error'), false);
    await sleep(retryDelay(attempt));
    return !this.over;
  }

  // ## Plumbing
  private bindUrl(params: Record<string, string | number | undefined>): string {
    return channelUrl(this.options.base, '/bind', {
      VER: 8,
      SID: this.sessionId ?? undefined,
      ...params,
      ...this.options.extraParams,
    });
  }

  // Every request carries the app's `extraHeaders`. Cross-origin, any
  // header beyond the few a form may send makes the browser ask first
  // (a CORS preflight), which the server answers (`headers.ts`). With
  // `crossDomainXhr` it also carries the page's cookies for the server's
  // origin (`credentials: 'include'`), as 2.1.0's option of that name set
  // `withCredentials`; the server must then answer with
  // `corsAllowCredentials` and a `cors` origin that is not `*`.
  private fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = { ...this.options.extraHeaders, ...(init.headers as Record<string, string>) };
    const credentials = this.options.crossDomainXhr ? 'include' : 'same-origin';
    return fetch(url, { ...init, headers, credentials });
  }

  // One request with a deadline: `read` consumes the response, and the
  // clock covers the whole exchange, body included, so neither a server
  // that never answers nor one that stops halfway can hold it.
  //
  // A forward POST is `keep`: the end of the channel does not cut it. The
  // goodbye is handled only after every earlier `RID`, so the messages
  // sent just before `close()` must be allowed to arrive.
  private async exchange<T>(
    url: string,
    init: RequestInit,
    read: (response: Response, controller: AbortController) => Promise<T>,
    { creating = false, keep = false } = {},
  ): Promise<T> {
    const controller = keep ? new AbortController() : this.abortable();
    const deadline = setTimeout(() => controller.abort(), this.options.timeoutMs);
    try {
      const answer = await this.fetch(url, { ...init, signal: controller.signal });
      const response = await check(answer, creating);
      return await read(response, controller);
    } finally {
      clearTimeout(deadline);
      this.aborts.delete(controller);
    }
  }

  // The test requests, the create and the back channels get an
  // `AbortController` kept until they finish, so `end()` can cut them all.
  private abortable(): AbortController {
    const controller = new AbortController();
    this.aborts.add(controller);
    return controller;
  }
}

// Forward bodies are forms: a "simple" content type, so a cross-origin
// POST without extra headers needs no preflight.
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
