// # Back channel: how arrays get down to the client
//
// The server cannot speak to a browser except in answer to a request, so
// the client keeps one request open for it: the back channel, a `GET`
// that the server answers slowly, one length-prefixed chunk at a time.
//
// ```http
// GET /channel/bind?VER=8&RID=rpc&SID=Qm9v…&CI=0&AID=3&TYPE=xmlhttp HTTP/1.1
//
// HTTP/1.1 200 OK
// Content-Type: text/plain
//
// 21
// [[4,{"t":"hello"}]]
// 14
// [[5,["noop"]]]
// ```
//
// This module is that half of a session: the outbox of arrays waiting to
// go down (`outbox.ts`), the one response currently carrying them, its
// heartbeat, when it ends and is replaced, and what happens when the
// client stops reading. `Session` (`session.ts`) extends it with
// everything else a session is. The two are one object at run time, so
// splitting them costs an idle session nothing.
/** The down direction of a session: back channels, flushing, heartbeats. @module */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { type FramedChunk, type Framing, NOOP_JSON, appendText } from './encoding.ts';
import { type ChunkJson, Outbox, type SendCallback } from './outbox.ts';
import type { SessionHost, SessionState } from './session.ts';

// The response currently serving as back channel. `streaming` is `CI=0`:
// keep writing chunks until it has carried `RECYCLE_BYTES`; otherwise end
// it after one chunk.
interface BackChannel {
  readonly res: ServerResponse;
  readonly framing: Framing;
  readonly streaming: boolean;
  bytesWritten: number;
  readonly onGone: () => void;
  /** Says `["noop"]` when the channel has been quiet for a heartbeat interval. */
  readonly heartbeat: NodeJS.Timeout;
  /** Set while the socket's buffer is full; the next flush waits for `drain`. */
  blocked: boolean;
}

// A streaming back channel is ended after about this many characters, so
// the browser can drop the `responseText` it has accumulated. The client
// opens the next one at once and loses nothing: arrays stay in the outbox
// until acknowledged.
//
// 2.1.0 recycled after 10 KB. A busy session then reopened its back
// channel every few seconds, and whatever the app sent meanwhile waited a
// round trip: sessions that started together recycled together, and those
// waits were most of the echo benchmark's p99 at a steady 2,000 echoes/s
// (1.4–1.9 ms, where sockjs and the minimal peer, which never recycles,
// had 0.9–1.2; 0.95–1.07 after). 128 KB is what sockjs's xhr-streaming
// allows; a browser holds that much text without noticing.
const RECYCLE_BYTES = 128 * 1024;

// One chunk carries at most about this many characters of arrays; a
// bigger backlog leaves in several chunks (see `Outbox.takeUnsent`), so
// one write never puts more than about a megabyte in a socket buffer.
//
// > **Note (speed):** a smaller cap (64 KiB) cost 4 KB pushes about 7% more
// > instructions: more chunks, more writes, more length prefixes.
const MAX_CHUNK_CHARS = 1024 * 1024;

// > **Note (memory):** `EventEmitter` keeps its listeners in `_events`, an
// > object made with a null prototype, which V8 stores as a dictionary of
// > about 200 bytes. A session starts with an instance of this empty class
// > instead: a fast object, still with nothing inherited that an event
// > name could collide with. That saves about 140 bytes per idle session.
class EventSlots {}
Object.setPrototypeOf(EventSlots.prototype, null);
Reflect.deleteProperty(EventSlots.prototype, 'constructor');

// Listeners may be `async`: a Promise one of them rejects with is caught
// and reported like a throw (`events.ts`), instead of being an unhandled
// rejection, which ends a Node process.
const CAPTURE_REJECTIONS = { captureRejections: true };

/** Sessions due a flush at the end of this tick. */
const PENDING: Downlink[] = [];

// ## The class
//
// `Downlink` holds no state of the session's but what writing needs: the
// outbox, the current back channel, and whether a flush is already
// scheduled. What a write means to the session (the first one makes it
// `ok`; `stop` callbacks learn their array left) is the session's
// business, through `afterWrite`, and so is what a heartbeat sends.
/** @internal The part of a {@link Session} that writes arrays to back channels. */
export abstract class Downlink extends EventEmitter {
  /** The session id (the `SID` on the wire). */
  abstract readonly id: string;
  /** Where the session is in its lifecycle. */
  abstract state: SessionState;
  /** Whether the client is Google's WebChannel client. */
  abstract readonly webChannel: boolean;
  /** @internal What every session of the server shares. */
  protected abstract readonly host: SessionHost;
  /** @internal Arrays queued, sent and not yet acknowledged. */
  protected readonly outbox = new Outbox();
  private backChannel: BackChannel | null = null;
  private flushScheduled = false;

  constructor() {
    super(CAPTURE_REJECTIONS);
    const emitter = this as unknown as { _events?: unknown };
    if (typeof emitter._events === 'object') emitter._events = new EventSlots();
  }

  /** Ends the session with a reason. */
  abstract close(reason?: string): void;
  /** @internal Runs after every write with the `onSent` callbacks of what went. */
  protected abstract afterWrite(sent: SendCallback[]): void;
  /** @internal Queues a `["noop"]` when a back channel has been quiet a while. */
  protected abstract heartbeat(): void;

  // With recovery on, an array may go to a back channel only once it is
  // saved (`recovery.ts`), so a client can never hold an array that Redis
  // lacks. Without recovery every queued array may go.
  /** @internal Id of the newest array that may be written now. */
  protected writableUpTo(): number {
    return Infinity;
  }

  // Flushing waits for the end of the current tick, so a burst of sends
  // (a broadcast, or all that `onConnect` says) leaves as one chunk with
  // one length prefix.
  /** @internal Flushes queued arrays at the end of this tick. */
  protected scheduleFlush(): void {
    if (this.flushScheduled || this.state === 'closed') return;
    this.flushScheduled = true;
    if (PENDING.push(this) === 1) process.nextTick(Downlink.flushPending);
  }

  // > **Note (speed):** every session due a flush waits in one queue, served
  // > by one `process.nextTick`: a broadcast to a thousand sessions costs one
  // > tick, not a thousand closures and ticks. A flush that schedules
  // > another (a big backlog) joins the same queue and is served in the same
  // > pass. If one throws, the others are put back for the next tick.
  private static flushPending(this: void): void {
    let index = 0;
    try {
      for (; index < PENDING.length; index++) PENDING[index]!.flushNow();
    } finally {
      const rest = index < PENDING.length ? PENDING.slice(index + 1) : null;
      PENDING.length = 0;
      for (const downlink of rest ?? []) {
        downlink.flushScheduled = false;
        downlink.scheduleFlush();
      }
    }
  }

  // ## Flushing
  //
  // What is unsent goes down as one chunk (several, for a large backlog).
  // A back channel that does not stream (`CI=1`, or the handshake
  // response) ends after its chunk, and so does a streaming one that has
  // carried `RECYCLE_BYTES`: the rest waits for the next back channel.
  //
  // `res.write()` returning false means the socket's buffer is full: the
  // client is not reading. Writing on would pile the same arrays up in
  // memory a second time, so the channel is marked `blocked` and the next
  // flush waits for `drain`; meanwhile arrays wait in the outbox, where
  // `maxBufferedBytes` bounds them.
  /** @internal Writes what is unsent to the back channel now. */
  protected flushNow(): void {
    this.flushScheduled = false;
    const channel = this.backChannel;
    if (channel === null || channel.blocked) return;
    const sent: SendCallback[] = [];
    const json = this.outbox.takeUnsent(sent, MAX_CHUNK_CHARS, this.writableUpTo());
    if (json === null) return;
    const chunk = this.frame(channel.framing, json);
    channel.bytesWritten += chunk.chars;
    this.host.observer.bytesOut += chunk.chars;
    if (!channel.streaming || channel.bytesWritten > RECYCLE_BYTES) {
      // The last chunk of this response: one write that also ends it.
      if (channel.streaming) this.host.observer.recycled(this.id, channel.bytesWritten);
      this.detach(channel.res, true, chunk.data);
    } else {
      if (!channel.res.write(chunk.data)) this.waitForDrain(channel);
      channel.heartbeat.refresh();
      if (this.outbox.hasUnsentUpTo(this.writableUpTo())) this.scheduleFlush();
    }
    this.afterWrite(sent);
  }

  // Every chunk is framed here, streamed or answered at once. A Buffer
  // chunk that carried big payloads of the session's own reports where
  // they lie in it (`spans`), and the outbox keeps them as those bytes
  // instead of their strings (`outbox.ts`).
  private frame(framing: Framing, json: ChunkJson): FramedChunk {
    const chunk = framing.chunk(json);
    if (chunk.spans !== undefined) {
      this.outbox.keepWritten(json.firstId, chunk.data as Buffer, chunk.spans);
    }
    return chunk;
  }

  private waitForDrain(channel: BackChannel): void {
    channel.blocked = true;
    channel.res.once('drain', () => {
      channel.blocked = false;
      this.scheduleFlush();
    });
  }

  // ## Back channels
  //
  // A new back channel replaces the old one (which is ended) and rewinds
  // the outbox: whatever the client has not acknowledged on this request
  // goes down again. A channel that stays open then leaves the idle queue
  // and starts its heartbeat.
  //
  // A back channel that does not stream and finds arrays waiting (the
  // handshake response always does; a long poll often does) is answered
  // on the spot: one chunk, and the response ends in the same write. It
  // never becomes *the* back channel, so it costs no heartbeat timer, no
  // `close` listener and no trip through `process.nextTick`; the idle
  // countdown simply starts over.
  //
  // A WebChannel client with `detectBufferingProxy` waits twice the
  // handshake's round trip for the first byte of a streaming back channel,
  // then decides a proxy buffers and falls back to long polling
  // (`WebChannelBase.maybeStartBpDetection_`). So when nothing else is
  // queued, a WebChannel session says `["noop"]` at once.
  /**
   * @internal Makes `res` (headers already written) the session's back channel.
   * @param heartbeatMs - heartbeat interval for this channel (shorter for a `TO` long poll).
   */
  attachBackChannel(
    res: ServerResponse,
    framing: Framing,
    streaming: boolean,
    heartbeatMs = this.host.keepAliveInterval,
  ): void {
    if (this.backChannel) this.detach(this.backChannel.res, true);
    this.outbox.rewind();
    this.host.observer.backChannel(this.id, streaming);
    if (!streaming && this.outbox.hasUnsentUpTo(this.writableUpTo())) {
      return this.answerAtOnce(res, framing);
    }
    const onGone = (): void => this.detach(res, false);
    res.once('close', onGone);
    const heartbeat = setInterval(() => this.heartbeat(), heartbeatMs).unref();
    this.backChannel = {
      res,
      framing,
      streaming,
      bytesWritten: 0,
      onGone,
      heartbeat,
      blocked: false,
    };
    this.host.idle.cancel(this);
    if (this.webChannel && streaming && !this.outbox.hasUnsent) {
      this.outbox.queue(NOOP_JSON, null, null);
    }
    this.scheduleFlush();
  }

  // Shutting down ends the current back channel without closing the
  // session: the client opens the next one at once, and its `AID` says
  // what it has, which is what a graceful shutdown waits for.
  /** @internal Ends the current back channel, if any; the session lives on. */
  endBackChannel(): void {
    if (this.backChannel) this.detach(this.backChannel.res, true);
  }

  // A response whose headers could not be written (the app's `cors`
  // failed) is let go without a byte, so the error answer can use it.
  /** @internal Stops using `res` as the back channel, writing nothing to it. */
  dropBackChannel(res: ServerResponse): void {
    this.detach(res, false);
  }

  private answerAtOnce(res: ServerResponse, framing: Framing): void {
    const sent: SendCallback[] = [];
    const json = this.outbox.takeUnsent(sent, MAX_CHUNK_CHARS, this.writableUpTo())!;
    const chunk = this.frame(framing, json);
    this.host.observer.bytesOut += chunk.chars;
    res.end(appendText(chunk.data, framing.close()));
    this.host.idle.start(this);
    this.afterWrite(sent);
  }

  // A fast handshake answers in a header, before any body: everything
  // queued so far (the `c` array and whatever `onConnect` sent) is taken
  // now, as one JSON text, and counts as sent. The client looks at that
  // header only when the first bytes of the body arrive
  // (`ChannelRequest.onXmlHttpReadyStateChanged_`), so a `["noop"]` follows
  // at once on the body.
  /** @internal The unsent arrays as JSON text for `X-HTTP-Initial-Response`; marks them sent. */
  takeInitialResponse(): string {
    const sent: SendCallback[] = [];
    const json = this.outbox.takeUnsent(sent)?.pieces.join('') ?? '[]';
    this.outbox.queue(NOOP_JSON, null, null);
    this.scheduleFlush();
    this.afterWrite(sent);
    return json;
  }

  // `detach` is the one place a back channel stops being the back channel,
  // whether we end it or the client went away. A response that is no
  // longer the current one is left alone. A last chunk, if any, goes out
  // in the same write as the end of the response: one system call, not two.
  private detach(res: ServerResponse, end: boolean, lastChunk: string | Buffer = ''): void {
    const channel = this.backChannel;
    if (channel === null || channel.res !== res) return;
    this.backChannel = null;
    res.removeListener('close', channel.onGone);
    clearInterval(channel.heartbeat);
    if (end && !res.writableEnded) res.end(appendText(lastChunk, channel.framing.close()));
    if (this.state !== 'closed') this.host.idle.start(this);
  }

  // The forward channel answers every POST with what the client needs to
  // judge its back channel: is one open, the newest array id sent, and how
  // many characters are sent but unacknowledged.
  //
  // ```text
  // 10
  // [1,57,312]
  // ```
  /** @internal `[backChannelOpen, lastSentArrayId, outstandingBytes]` for a forward answer. */
  backChannelStatus(): [0 | 1, number, number] {
    return [this.backChannel ? 1 : 0, this.outbox.sentId, this.outbox.outstandingBytes()];
  }

  /** @internal Whether a back channel is open now. */
  protected get hasBackChannel(): boolean {
    return this.backChannel !== null;
  }
}
