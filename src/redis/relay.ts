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
// n2 → bc:node:n1   o 17 \n23\n[[5,["noop"]]]                          a chunk
// n2 → bc:node:n1   o 17 e\n                                           the end
// n1 → client   the same head, chunks and end
// client gone → n1 → bc:node:n2   a n1 17      (n2 lets the back channel go)
// ```
//
// Frames between one pair of processes travel in order (one publishing
// connection, one subscribing connection), so a response's chunks arrive
// as they were written. Heartbeats and recycling need nothing special:
// they are chunks and ends like any other.
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

// The head of an answer, as it travels: status, reason phrase, headers.
type Head = [number, string | null, OutgoingHttpHeaders];

// A request the front sent and is waiting on.
interface Outgoing {
  readonly owner: string;
  readonly res: ServerResponse;
  started: boolean;
  readonly timer: NodeJS.Timeout;
  readonly settle: (error?: ProtocolError) => void;
}

// Request headers that describe this hop, not the request, stay behind.
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
  // The body is read here, within `maxBodyBytes` (the owner checks its own
  // limits again). The returned Promise settles when the owner's head
  // arrives, so an error before that (`Unknown SID`, `503`) is answered by
  // the handler's error boundary like any other.
  /** Sends the request to `target.owner` and streams the answer into `res`. */
  async forward(target: RelayTarget, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.link.connected()) throw unavailable('Redis unavailable');
    if (await this.link.ownerGone(target.owner)) throw unknownSession();
    const body = req.method === 'POST'
      ? await readBody(req, target.maxBodyBytes, this.link.timeout) : '';
    if (!this.link.connected()) throw unavailable('Redis unavailable');
    const number = ++this.count;
    this.counts.sent++;
    const head = JSON.stringify({
      m: req.method, u: target.url, h: forwardedHeaders(req.headers, body),
      a: req.socket?.remoteAddress ?? '',
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
      this.link.publish(target.owner, `q ${this.host.nodeId} ${number}\n${head}\n${body}`);
    });
  }

  // ## The front: the owner's answer
  //
  // `o <number> <flags>`: `h` puts the head (status, reason, headers) on
  // the payload's first line, `e` ends the response, `x` cuts it off.
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

  private cut(number: number, outgoing: Outgoing): void {
    this.outgoing.delete(number);
    if (outgoing.started) outgoing.res.destroy();
    else outgoing.settle(unavailable('Relayed request failed'));
  }

  // ## The owner: running a request for a front
  //
  // The request is rebuilt as a readable stream with the original method,
  // URL, headers and body, and the response is a small stand-in that turns
  // each write into a frame (`RelayedResponse`). The handler cannot tell
  // the difference.
  private run(front: string, number: string, payload: string): void {
    const newline = payload.indexOf('\n');
    const { m: method, u: url, h: headers, a: address } = JSON.parse(payload.slice(0, newline)) as
      { m: string; u: string; h: IncomingHttpHeaders; a: string };
    const body = payload.slice(newline + 1);
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
// most a few tens of kilobytes before it is recycled.
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
function unknownSession(): ProtocolError {
  return new ProtocolError(400, 'UNKNOWN_SID', 'Unknown SID');
}

function unavailable(reason: string): ProtocolError {
  return new ProtocolError(503, 'UNAVAILABLE', reason, { 'Retry-After': '2' });
}

function forwardedHeaders(headers: IncomingHttpHeaders, body: string): IncomingHttpHeaders {
  const kept: IncomingHttpHeaders = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) kept[name] = headers[name];
  if (body !== '') kept['content-length'] = String(Buffer.byteLength(body));
  return kept;
}

// The front reads a body only to pass it on, so it needs only a size
// limit and a deadline.
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
