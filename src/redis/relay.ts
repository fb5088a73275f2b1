// # Relay: any process answers any request
//
// Behind a router that cannot be sticky (a round-robin upstream, a
// Kubernetes Service, Heroku), a session's requests land on any process.
// The one that receives a request for someone else's session (the
// *front*) sends it to the *owner* (the node named in `SID`) over Redis;
// the owner runs it through its own handler, exactly as if it had arrived
// there, and its answer streams back to the front, which writes it to the
// client. The owner stays the one place maps are ordered and arrays
// acknowledged; the front holds nothing but the open HTTP response.
// (The frames below are drawn by hand; `test/cluster/adapter.test.ts`
// runs real relayed requests through two processes and Redis.)
//
// ```text illustrative
// client → n1   GET /channel/bind?SID=n2.Qm9v…&RID=rpc&AID=4&CI=0&TYPE=xmlhttp
// n1 → bc:node:n2   q n1 17\n{"m":"GET","u":"/channel/bind?SID=n2.Qm9v…",…}\n
// n2 → bc:node:n1   o 17 h\n[200,null,{"Content-Type":…}]\n            head
// n2 → bc:node:n1   o 17 \n15\n[[5,["noop"]]]\n                        a chunk
// n2 → bc:node:n1   o 17 e\n                                           the end
// n1 → client   the same head, chunks and end
// client gone → n1 → bc:node:n2   a n1 17      (n2 lets the back channel go)
// ```
//
// Every frame is one Redis `PUBLISH` on the receiver's own channel
// (`bc:node:<id>`, see `wire.ts`): a first line of words, a newline, and
// a payload. Four kinds, told apart by the first word:
//
// | frame | from → to | payload |
// |---|---|---|
// | `q <front> <n>` | front → owner | the request's head as one JSON line, then its body |
// | `o <n> <flags>` | owner → front | a head line (flag `h`), body text; `e` ends, `x` cuts |
// | `a <front> <n>` | front → owner | none: stop answering request `n` |
// | `k <sid> <aid>` | any → owner | none: retire session `sid`, acknowledging `aid` |
//
// `<n>` numbers the requests of one front, so `<front> <n>` names a
// relayed request across the cluster. Frames between one pair of
// processes travel in order (one publishing connection, one subscribing
// connection), so a response's chunks arrive as they were written.
// Heartbeats and recycling need nothing special: they are chunks and
// ends like any other.
//
// A relayed request is published once and never sent again: **at most
// once**. Pub/sub keeps nothing, so a frame published while the
// receiver's subscriber is away is gone; the front then answers `503`
// after `relayTimeout`, or the client sees its response cut off. What
// happens next is the client's to decide, as for any failed request, and
// the owner's inbox drops a retried POST's maps it has already seen
// (`inbox.ts`), so a retry does not deliver a map twice.
//
// What can go wrong is answered so that the client does the right thing:
//
// | situation | answer |
// |---|---|
// | the owner is not among the live processes | `400 Unknown SID`: the client starts anew |
// | Redis is down | `503` with `Retry-After` |
// | the owner does not start answering within `relayTimeout` | `503` with `Retry-After` |
// | Redis or the owner goes away mid-response | the response is cut off; the client opens another |
/** Relaying requests for another process's session, both ends. @module */
import { EventEmitter } from 'node:events';
import type {
  IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse,
} from 'node:http';
import { Readable } from 'node:stream';
import { ProtocolError } from '../index.ts';
import type { AdapterHost, RelayTarget } from '../rooms.ts';

/** What the relay needs from the adapter. */
export interface RelayLink {
  /** Publishes `text` on the channel of `node`. */
  publish(node: string, text: string): void;
  /** Whether Redis is reachable now. */
  connected(): boolean;
  /** Whether `node` is known to be gone (no heartbeat within the node timeout). */
  ownerGone(node: string): Promise<boolean>;
  /** Milliseconds to wait for the owner's first frame. */
  readonly timeout: number;
}

// The head of an answer, as it travels: status, reason phrase (null when
// the handler gave none, as it does for every success), headers.
type Head = [number, string | null, OutgoingHttpHeaders];

// A request the front sent and is waiting on. `started` turns true with
// the owner's head: from then on an error can only cut the response, and
// before it the handler's error boundary can still answer properly.
interface Outgoing {
  readonly owner: string;
  readonly res: ServerResponse;
  started: boolean;
  readonly timer: NodeJS.Timeout;
  readonly settle: (error?: ProtocolError) => void;
}

// Request headers that describe this hop, not the request, stay behind:
// the owner's copy of the request arrives whole, in one frame, and has no
// connection of its own to keep alive or upgrade.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'te', 'trailer',
]);

/** Both ends of relaying, for one process. */
export class Relay {
  private count = 0;
  /** Requests sent to owners, and run for fronts. */
  readonly counts = { sent: 0, served: 0 };
  /** Requests this process sent to owners, by number. */
  private readonly outgoing = new Map<number, Outgoing>();
  /** Requests this process runs for fronts, by `"<front> <number>"`. */
  private readonly incoming = new Map<string, RelayedResponse>();

  constructor(
    private readonly host: AdapterHost,
    private readonly link: RelayLink,
  ) {}

  // ## The front: sending a request
  //
  // The handler calls this when `SID` names another node (`ownerElsewhere`
  // in `handler.ts`). Three checks come first, each cheaper than a wait:
  // Redis must be reachable, the owner must not be known dead (that is
  // `Unknown SID`, and the client starts anew), and Redis must still be
  // reachable once the body is in, since reading it can take a while.
  //
  // The body is read here, within `maxBodyBytes` (the owner checks its own
  // limits again), and the whole request goes in one `q` frame. A forward
  // POST, as published on `bc:node:n2`:
  //
  // ```text illustrative
  // q n1 18
  // {"m":"POST","u":"/channel/bind?SID=n2.Qm9v…&RID=9…","h":{…},"a":"10.0.0.7"}
  // count=1&ofs=5&req0_t=hi
  // ```
  //
  // `m`, `u`, `h` and `a` are the method, the URL under the owner's
  // `base`, the headers kept (`content-length` among them, here `"23"`),
  // and the client's address as this socket saw it. The returned Promise
  // settles when the owner's head arrives, so an error before that
  // (`Unknown SID`, `503`) is answered by the handler's error boundary
  // like any other.
  //
  // The wait for the head ends one of four ways: the head arrives
  // (resolved); the client hangs up (resolved, and `a` tells the owner to
  // stop); `relayTimeout` passes (`503`, and `a` as well, in case the
  // owner is merely slow); or the owner or Redis is lost (`nodeGone`,
  // `disconnected` below). Only the head is timed: once it is in, a back
  // channel may stream for as long as the owner keeps it open.
  /** Sends the request to `target.owner` and streams the answer into `res`. */
  async forward(target: RelayTarget, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.link.connected()) throw unavailable('Redis unavailable');
    if (await this.link.ownerGone(target.owner)) throw unknownSession();
    const body = req.method === 'POST'
      ? await readBody(req, target.maxBodyBytes, this.link.timeout).catch(overLimit) : '';
    if (!this.link.connected()) throw unavailable('Redis unavailable');
    const number = ++this.count;
    this.counts.sent++;
    const head = JSON.stringify({
      m: req.method, u: target.url, h: forwardedHeaders(req.headers, body ?? ''),
      a: req.socket?.remoteAddress ?? '', ...(body === null ? { x: 1 } : {}),
    });
    return new Promise((resolve, reject) => {
      const settle = (error?: ProtocolError): void => {
        clearTimeout(outgoing.timer);
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(() => {
        this.outgoing.delete(number);
        this.link.publish(target.owner, `a ${this.host.nodeId} ${number}`);
        settle(unavailable(`Node ${target.owner} did not answer`));
      }, this.link.timeout);
      const outgoing: Outgoing = { owner: target.owner, res, started: false, timer, settle };
      this.outgoing.set(number, outgoing);
      res.once('close', () => {
        if (this.outgoing.get(number) !== outgoing) return;
        this.outgoing.delete(number);
        this.link.publish(target.owner, `a ${this.host.nodeId} ${number}`);
        settle();
      });
      this.link.publish(target.owner, `q ${this.host.nodeId} ${number}\n${head}\n${body ?? ''}`);
    });
  }

  // ## The front: the owner's answer
  //
  // `o <number> <flags>`: `h` puts the head (status, reason, headers) on
  // the payload's first line, `e` ends the response, `x` cuts it off.
  // The answer to the forward POST above is a single frame, head, body and
  // end together (`[1,5,0]`: a back channel is open, array 5 was the last
  // sent, nothing is outstanding):
  //
  // ```text illustrative
  // o 18 he
  // [200,null,{…,"Content-Type":"text/plain; charset=utf-8"}]
  // 7
  // [1,5,0]
  // ```
  //
  // A frame whose number is not waiting here is dropped: it comes after
  // the front gave up (`relayTimeout`, or the client left), and the `a`
  // sent then stops the owner soon enough. A head with no text after it is
  // the owner flushing its headers (a back channel before its first
  // chunk), so the front flushes too, and the client learns the status
  // before any body arrives, as it would from the owner directly.
  private answer(number: number, flags: string, payload: string): void {
    const outgoing = this.outgoing.get(number);
    if (outgoing === undefined) return;
    const { res } = outgoing;
    if (flags.includes('x')) return this.cut(number, outgoing);
    let text = payload;
    if (flags.includes('h')) {
      const newline = payload.indexOf('\n');
      const line = newline === -1 ? payload : payload.slice(0, newline);
      const [status, reason, headers] = JSON.parse(line) as Head;
      text = newline === -1 ? '' : payload.slice(newline + 1);
      if (reason === null) res.writeHead(status, headers);
      else res.writeHead(status, reason, headers);
      outgoing.started = true;
      outgoing.settle();
      if (text === '' && !flags.includes('e')) res.flushHeaders();
    }
    if (flags.includes('e')) {
      this.outgoing.delete(number);
      res.end(text);
    } else if (text !== '') {
      res.write(text);
    }
  }

  // A cut before the head is still an answer the client understands,
  // `503`; after it, the response can only stop short, as a dying
  // process's own would.
  private cut(number: number, outgoing: Outgoing): void {
    this.outgoing.delete(number);
    if (outgoing.started) outgoing.res.destroy();
    else outgoing.settle(unavailable('Relayed request failed'));
  }

  // ## The owner: running a request for a front
  //
  // The request is rebuilt as a readable stream with the original method,
  // URL, headers and body, and the response is a small stand-in that turns
  // each write into a frame (`RelayedResponse`). The handler runs it as it
  // would a request of its own: maps are ordered, arrays acknowledged and
  // a back channel attached here, on the owner, and nowhere else.
  //
  // Two things differ from a direct request, on purpose. The socket is a
  // plain object whose `remoteAddress` is what the front saw, so
  // `session.address` names the client (or the proxy in front of it), not
  // the front process. And the request always says HTTP/1.1, whatever the
  // client spoke to the front, which alone knows.
  //
  // The stand-in is kept under `"<front> <number>"` until it ends, so that
  // an `a` frame, or the front's death, can find it.
  private run(front: string, number: string, payload: string): void {
    const newline = payload.indexOf('\n');
    const { m: method, u: url, h: headers, a: address, x: tooLarge } =
      JSON.parse(payload.slice(0, newline)) as
        { m: string; u: string; h: IncomingHttpHeaders; a: string; x?: 1 };
    const body = payload.slice(newline + 1);
    // A body the front refused as too large (see `overLimit`) arrives as
    // none, with a length no limit admits: the handler refuses it too.
    if (tooLarge === 1) headers['content-length'] = String(Number.MAX_SAFE_INTEGER);
    const key = `${front} ${number}`;
    this.counts.served++;
    const req = Object.assign(Readable.from(body === '' ? [] : [Buffer.from(body)]), {
      method, url, headers, socket: { remoteAddress: address },
      httpVersion: '1.1', httpVersionMajor: 1, httpVersionMinor: 1,
    });
    const res = new RelayedResponse(
      (flags, text) => this.link.publish(front, `o ${number} ${flags}\n${text}`),
      () => this.incoming.delete(key),
    );
    this.incoming.set(key, res);
    this.host.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  }

  // ## Reconnects that land on another process
  //
  // A client that reconnects names its old session (`OSID`) and what it
  // got of it (`OAID`). When the create lands on a process that does not
  // own the old session, the owner is told, `k n2.Qm9v… 41`, and does what
  // it would have done locally: acknowledge up to 41 and close the old
  // session with `Reconnected`, so its `close` listeners run at once
  // instead of at its idle timeout.
  //
  // The frame is sent once, and only while Redis is reachable; nothing
  // answers it. If it is lost, the old session ends later on its own: at
  // its idle timeout, or, with recovery, at its next save, which finds
  // that the new session took its state (`history.ts`). Without `OAID`
  // the frame ends in an empty word (`k n2.Qm9v… `), and the old session
  // closes without acknowledging anything: only a plain integer of at most
  // 15 digits, which a `Number` holds exactly, is taken as an array id.
  /** Tells the owner of `sessionId` to retire it. */
  retire(sessionId: string, arrayId: number | null): void {
    const owner = sessionId.slice(0, sessionId.indexOf('.'));
    if (this.link.connected()) this.link.publish(owner, `k ${sessionId} ${arrayId ?? ''}`);
  }

  private retired(sessionId: string, arrayId: string): void {
    const session = this.host.sessions.get(sessionId);
    if (session === undefined) return;
    if (/^-?\d{1,15}$/.test(arrayId)) session.acknowledge(Number(arrayId));
    session.close('Reconnected');
  }

  // ## Frames arriving
  //
  // The adapter reads the first word of every message on this process's
  // channel and hands the relay those it does not handle itself (`q`, `o`,
  // `a`, `k`). A kind nobody knows is dropped without a word.
  /** Handles a relay frame from another process. */
  receive(words: string[], payload: string): void {
    const [kind, first = '', second = ''] = words;
    if (kind === 'q') this.run(first, second, payload);
    else if (kind === 'k') this.retired(first, second);
    else if (kind === 'o') this.answer(Number(first), second, payload);
    else if (kind === 'a') this.incoming.get(`${first} ${second}`)?.abort();
  }

  // ## Processes and connections going away
  //
  // A dead owner: requests waiting on it get `Unknown SID`, streams from
  // it are cut off. A dead front: the responses this process was writing
  // for it are let go, so their sessions notice the back channel is gone
  // and start their idle countdown.
  //
  // "Dead" is the adapter's judgement: no heartbeat for `nodeTimeout`
  // (6 s by default). A client whose stream was cut asks again, and that
  // request meets `ownerGone` in `forward`: `Unknown SID`.
  /** Called when `node` has stopped heartbeating. */
  nodeGone(node: string): void {
    for (const [number, outgoing] of this.outgoing) {
      if (outgoing.owner !== node) continue;
      this.outgoing.delete(number);
      if (outgoing.started) outgoing.res.destroy();
      else outgoing.settle(unknownSession());
    }
    for (const [key, res] of this.incoming) if (key.startsWith(`${node} `)) res.abort();
  }

  // Without Redis no frame can pass either way: everything in flight ends.
  // Requests waiting on a head get `503` (`cut`), streams stop short, and
  // the responses this process was writing for others are let go without
  // a frame, since none could be sent.
  /** Called when the connection to Redis is lost. */
  disconnected(): void {
    for (const [number, outgoing] of this.outgoing) this.cut(number, outgoing);
    for (const res of this.incoming.values()) res.abort();
  }

  /** Ends everything in flight. */
  close(): void {
    this.disconnected();
  }
}

// ## The stand-in response
//
// The handler and the session use a handful of `ServerResponse` members:
// `writeHead`, `flushHeaders`, `write`, `end`, `destroy`, `headersSent`,
// `writableEnded`, `destroyed`, and the `close` and `drain` events. The
// head waits until the first body text (or `flushHeaders`) so that a short
// answer, head and body, is one frame. `write` always returns true: the
// front's socket does its own buffering, and a back channel carries at
// most about 128 KB before it is recycled (`RECYCLE_BYTES` in
// `backchannel.ts`).
//
// Which call sends which frame (`n` is the front's number):
//
// | call | frame |
// |---|---|
// | `setHeader`, `writeHead` | none yet: the head is kept |
// | `flushHeaders` | `o n h`, the head alone |
// | `write(text)` | `o n h` with the head and `text` the first time, then `o n ` with `text` |
// | `end(text)` | `o n e`, or `o n he` when the head is still kept |
// | `destroy()` | `o n x`: the front cuts its response |
// | `abort()` | none: the front is gone or has given up |
//
// Whichever of `end`, `destroy` and `abort` comes first is the last word
// (`done`): later `write`s are dropped, and `close` is emitted once, on
// the next tick, never inside the call that ended the response.
class RelayedResponse extends EventEmitter {
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  statusCode = 200;
  private head: string | null = null;
  private readonly extra: OutgoingHttpHeaders = {};
  private done = false;

  constructor(
    private readonly send: (flags: string, text: string) => void,
    private readonly onDone: () => void,
  ) {
    super();
  }

  setHeader(name: string, value: string | number | string[]): this {
    this.extra[name] = value;
    return this;
  }

  getHeader(name: string): unknown {
    return this.extra[name];
  }

  writeHead(status: number, reason?: string | OutgoingHttpHeaders,
    headers?: OutgoingHttpHeaders): this {
    const phrase = typeof reason === 'string' ? reason : null;
    const fields = typeof reason === 'object' ? reason : headers;
    this.statusCode = status;
    this.headersSent = true;
    this.head = JSON.stringify([status, phrase, { ...this.extra, ...fields }]);
    return this;
  }

  flushHeaders(): void {
    if (this.head !== null) this.out('', false);
  }

  write(text: string | Uint8Array): boolean {
    if (!this.done) this.out(String(text), false);
    return true;
  }

  end(text?: string | Uint8Array): this {
    if (this.writableEnded || this.done) return this;
    this.writableEnded = true;
    this.out(text === undefined ? '' : String(text), true);
    this.finish();
    return this;
  }

  destroy(): this {
    if (this.done) return this;
    this.send('x', '');
    this.destroyed = true;
    this.finish();
    return this;
  }

  /** The front is gone (or unreachable): stop without telling it. */
  abort(): void {
    if (this.done) return;
    this.destroyed = true;
    this.finish();
  }

  // An empty write with nothing else to say makes no frame: `o n ` with
  // no text would cost a `PUBLISH` for nothing.
  private out(text: string, end: boolean): void {
    let flags = end ? 'e' : '';
    let payload = text;
    if (this.head !== null) {
      flags = `h${flags}`;
      payload = `${this.head}\n${text}`;
      this.head = null;
    }
    if (flags === '' && text === '') return;
    this.send(flags, payload);
  }

  private finish(): void {
    this.done = true;
    this.onDone();
    process.nextTick(() => this.emit('close'));
  }
}

// ## Small helpers
//
// The two answers about the relay itself. `Unknown SID` is what the
// owner itself would say of a session it no longer has, and the client
// starts anew; `503` with `Retry-After: 2` says the session may still be
// fine, and only the way to it is not.
function unknownSession(): ProtocolError {
  return new ProtocolError(400, 'UNKNOWN_SID', 'Unknown SID');
}

function unavailable(reason: string): ProtocolError {
  return new ProtocolError(503, 'UNAVAILABLE', reason, { 'Retry-After': '2' });
}

// A body travels as text, so its length is counted again in UTF-8 bytes
// (what the owner's `Buffer.from(body)` will hold); an empty body gets
// none.
function forwardedHeaders(headers: IncomingHttpHeaders, body: string): IncomingHttpHeaders {
  const kept: IncomingHttpHeaders = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) kept[name] = headers[name];
  if (body !== '') kept['content-length'] = String(Buffer.byteLength(body));
  return kept;
}

// The front reads a body only to pass it on, so it needs only a size
// limit and a deadline. The deadline is `relayTimeout`, not the server's
// `bodyTimeout`: each of the front's two waits, for the body and for the
// head, gets `relayTimeout`.
//
// A body over `maxBodyBytes` cannot be answered here with a bare `413`:
// the client would resend the same maps for ever. Only the owner can
// first tell the session's back channel `["stop"]` (`handler.ts`), so the
// request still goes to it, without the body and marked `"x":1`, and the
// owner refuses it as it would its own oversized request:
//
// ```text illustrative
// q n1 19
// {"m":"POST","u":"/channel/bind?SID=n2.Qm9v…&RID=10…","h":{…},"a":"10.0.0.7","x":1}
// ```
//
// > **Note (memory):** the body is held whole, up to `maxBodyBytes`, and
// > decoded as UTF-8 to travel as text. Forward bodies are form-encoded
// > ASCII or UTF-8 JSON, so nothing is lost; bytes that are not UTF-8 would
// > reach the owner as U+FFFD.
function overLimit(error: unknown): null {
  if (error instanceof ProtocolError && error.status === 413) return null;
  throw error;
}

function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const late = new ProtocolError(408, 'TIMEOUT', 'Body not received in time',
      { Connection: 'close' });
    const timer = setTimeout(() => fail(late), timeoutMs);
    const fail = (error: ProtocolError): void => {
      clearTimeout(timer);
      req.removeAllListeners('data');
      req.resume();
      reject(error);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      const reason = `Body larger than ${limit} bytes (maxBodyBytes)`;
      if (size > limit) fail(new ProtocolError(413, 'BODY_TOO_LARGE', reason));
      else chunks.push(chunk);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('close', () => {
      if (!req.readableEnded) fail(new ProtocolError(400, 'BAD_BODY', 'Request aborted'));
    });
  });
}
