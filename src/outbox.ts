// # Outbox: arrays on their way down, until the client says it has them
//
// Everything the server says to a client is an *array*: a payload with a
// per-session id that counts up from 0 and never repeats. An array is
// queued, then written to some back channel, then acknowledged by the
// client's `AID` on a later request. Only acknowledgement lets it go: a back
// channel can die with arrays in flight, and those must be written again on
// the next one.
//
// ```text
// queued:  0 1 2 3 4 5
//              ^     ^
//     lastSent=2     lastQueued=5
// AID=1 → 0 and 1 are done; the next back channel carries 2 3 4 5
// ```
//
// Array 2 is *outstanding*: written, not yet acknowledged. A new back
// channel rewinds to it. `test/docs/diagrams.test.ts` builds this state on
// a real server and checks each claim: the carets, the forward answer
// `[0,2,n]` and the rewound back channel.
//
// The outbox is that queue and its three counters, with no knowledge of
// HTTP, timers or events: the session decides when to write and what to
// do with the callbacks the outbox hands back. Sizes here are JSON
// characters (UTF-16 code units, `string.length`), the unit the client's
// `outstandingBytes` comparison and the chunk prefixes use, not bytes.
/** The queue of outgoing arrays, their ids and their acknowledgements. @module */

/** Called once the client acknowledges an array, or with an Error if the session ends first. */
export type SendCallback = (error?: Error) => void;

/** One chunk's JSON text, in pieces: `[[4,` `["hello"]` `],[5,` `{"a":1}` `]]`. */
export interface ChunkJson {
  readonly pieces: readonly string[];
  /** The length of the pieces joined. */
  readonly chars: number;
  /** Id of the chunk's first array. */
  readonly firstId: number;
  /** Whether it holds a big payload of the session's own (see {@link Outbox.keepWritten}). */
  readonly owned: boolean;
}

// An array waiting to be sent or acknowledged is just its payload's JSON
// text, serialised once before it is queued (by `send`, or once for a
// whole broadcast): every later write and byte count reuses that text.
// (A big one of the session's own may later be kept as bytes; see below.)
// Ids need no storage, because they are consecutive: the array at index
// `i` has id `firstId + i`. Callbacks are rare (most sends have none), so
// they live in a side table, made on first use, keyed by id.
interface Callbacks {
  /** Fires when the array is first written (used by `stop`). */
  onSent: SendCallback | null;
  /** Fires when the array is acknowledged. */
  readonly onAck: SendCallback | null;
}

const NO_CALLBACKS: readonly SendCallback[] = Object.freeze([]);

// ### Big payloads: kept as the bytes that went
//
// A text stays queued until the client acknowledges it, a round trip or
// more. That is long enough for V8 to copy a string out of the young
// generation twice, into the old one, and then to sweep it from there:
// for 4 KB payloads this copying cost more than serialising them did.
// So a big payload serialised by `send` for this session alone is queued
// as `Own`, and once a chunk has carried it as UTF-8 (`encoding.ts`
// encodes big chunks straight into a Buffer) it is kept as `Written`: a
// slice of that chunk, whose bytes live outside V8's heap. The string
// then dies young, where dying is free. A resend (rare) decodes the bytes.
//
// Broadcast texts are never `Own`: each session would keep its own copy
// of a text that all of them now share.
//
// > **Note (speed):** this took the `push 4 KB` benchmark from about 18.5
// > to about 15 µs of server CPU per message, level with the minimal peer
// > (`bench/server.mjs`), which keeps nothing at all.
/** Payloads at least this long, sent by `send`, are kept as bytes once written. */
const KEEP_AS_BYTES = 1024;

/** A big payload serialised for this session alone, not yet written in a Buffer chunk. */
class Own {
  constructor(readonly json: string) {}
}

/** A big payload of this session's own, as the UTF-8 bytes of the chunk that carried it. */
class Written {
  constructor(
    readonly bytes: Buffer,
    readonly chars: number,
  ) {}
}

/** What the outbox keeps of one array. */
type Entry = string | Own | Written;

// ## The queue
/** Outgoing arrays of one session, oldest first, until acknowledged. */
export class Outbox {
  /**
   * The arrays not yet acknowledged, oldest first: none, one entry as it
   * is, or an array of two or more. An idle session's only array is its
   * unacknowledged handshake, and a lone string spares it an array and
   * its backing store (about 56 bytes).
   */
  private texts: Entry | Entry[] | null = null;
  /** Id of the oldest queued array; when none is queued, the id the next array gets. */
  private firstId = 0;
  private lastSentId = -1;
  /** JSON characters queued or sent, not yet acknowledged. */
  private chars = 0;
  private callbacks: Map<number, Callbacks> | null = null;

  // ### Queueing
  //
  // A second array makes the array, as a two-element literal: pushing onto
  // `[]` would reserve room for seventeen.
  /**
   * Adds an array, given as its payload's JSON text, and returns its id.
   * `own`: the text was made for this session alone, so it may be kept as bytes once written.
   */
  queue(
    json: string,
    onSent: SendCallback | null,
    onAck: SendCallback | null,
    own = false,
  ): number {
    const texts = this.texts;
    const id = this.firstId + this.length;
    const entry = own && json.length >= KEEP_AS_BYTES ? new Own(json) : json;
    if (texts === null) this.texts = entry;
    else if (Array.isArray(texts)) texts.push(entry);
    else this.texts = [texts, entry];
    this.chars += json.length;
    if (onSent !== null || onAck !== null) {
      (this.callbacks ??= new Map()).set(id, { onSent, onAck });
    }
    return id;
  }

  // ### Taking what is unsent
  //
  // Hands over one chunk's JSON, `[[4,["hello"]],[5,{"a":1}]]`, marks those
  // arrays sent, and collects their `onSent` callbacks into `sent` for the
  // caller to run once the chunk is on the wire. A chunk stops growing
  // once it passes `maxChars` (it always holds at least one array), so
  // what one write puts in a socket buffer stays small even when a burst
  // of sends is waiting; the rest goes in later chunks.
  //
  // The JSON comes in pieces, short id prefixes between the payloads as
  // they were queued (already safe: `encoding.ts` escapes line separators
  // when a payload is serialised). The framing decides how to put them
  // together, so that each payload is copied once, into the chunk.
  /** The oldest unsent arrays (about `maxChars` characters) as one chunk's JSON, or null. */
  takeUnsent(sent: SendCallback[], maxChars = Infinity, lastId = Infinity): ChunkJson | null {
    const count = Math.min(this.length, lastId + 1 - this.firstId);
    let index = this.lastSentId + 1 - this.firstId;
    if (index >= count) return null;
    const pieces: string[] = [];
    const firstId = this.firstId + index;
    let chars = 2;
    let owned = false;
    for (; index < count && chars < maxChars; index++) {
      const id = this.firstId + index;
      const entry = this.entryAt(index);
      if (entry instanceof Own) owned = true;
      const json = textOf(entry);
      const opening = pieces.length === 0 ? `[[${id},` : `],[${id},`;
      pieces.push(opening, json);
      chars += opening.length + json.length;
      if (this.callbacks !== null) takeOnSent(this.callbacks.get(id), sent);
      this.lastSentId = id;
    }
    pieces.push(']]');
    return { pieces, chars, firstId, owned };
  }

  // ### Keeping what went as bytes
  //
  // The framing reports where each payload of a Buffer chunk lies in it,
  // as `[start, end]` byte offsets in order. `Own` entries become slices.
  // A slice keeps its whole chunk alive, so this is done only when the
  // chunk is mostly such payloads: a 1 KB payload must not hold on to
  // 60 KB of broadcasts that other sessions share as one string.
  /** Keeps the `Own` payloads of a chunk just written as slices of its bytes. */
  keepWritten(firstId: number, data: Buffer, spans: readonly number[]): void {
    const from = firstId - this.firstId;
    let ownBytes = 0;
    for (let i = 0; i < spans.length; i += 2) {
      if (this.entryAt(from + i / 2) instanceof Own) ownBytes += spans[i + 1]! - spans[i]!;
    }
    if (ownBytes * 2 < data.length) return;
    for (let i = 0; i < spans.length; i += 2) {
      const entry = this.entryAt(from + i / 2);
      if (!(entry instanceof Own)) continue;
      const written = new Written(data.subarray(spans[i], spans[i + 1]), entry.json.length);
      if (Array.isArray(this.texts)) this.texts[from + i / 2] = written;
      else this.texts = written;
    }
  }

  // ### Rewinding
  //
  // When a new back channel opens, the old one may have died with arrays
  // in flight. The `AID` on the new request has already acknowledged what
  // arrived, so everything still queued is treated as unsent and goes
  // again. The client ignores any id it has already seen.
  /** Marks every unacknowledged array as unsent. */
  rewind(): void {
    if (this.texts !== null) this.lastSentId = this.firstId - 1;
  }

  // ### Acknowledging
  //
  // An `AID` beyond what was sent can only come from a confused or hostile
  // client; it acknowledges just what was actually sent.
  /** Drops arrays up to `arrayId` and returns their `onAck` callbacks. */
  acknowledge(arrayId: number): readonly SendCallback[] {
    const done = Math.min(arrayId, this.lastSentId) + 1 - this.firstId;
    if (done <= 0) return NO_CALLBACKS;
    for (let index = 0; index < done; index++) this.chars -= charsOf(this.entryAt(index));
    if (done === this.length) this.texts = null;
    else (this.texts as Entry[]).splice(0, done);
    const first = this.firstId;
    this.firstId += done;
    return this.callbacks === null ? NO_CALLBACKS : this.takeOnAck(first, this.firstId);
  }

  private takeOnAck(from: number, to: number): readonly SendCallback[] {
    const callbacks: SendCallback[] = [];
    for (const [id, entry] of this.callbacks!) {
      if (id >= to) break;
      if (id < from) continue;
      if (entry.onAck) callbacks.push(entry.onAck);
      this.callbacks!.delete(id);
    }
    if (this.callbacks!.size === 0) this.callbacks = null;
    return callbacks;
  }

  // ### Ending
  /** Empties the queue and returns every callback still owed an answer. */
  drain(): SendCallback[] {
    const callbacks: SendCallback[] = [];
    for (const entry of this.callbacks?.values() ?? []) {
      if (entry.onSent) callbacks.push(entry.onSent);
      if (entry.onAck) callbacks.push(entry.onAck);
    }
    this.firstId += this.length;
    this.texts = null;
    this.chars = 0;
    this.callbacks = null;
    return callbacks;
  }

  // ## Figures for the forward channel and for the app
  //
  // `outstandingBytes` is the third number of every forward answer: the
  // client compares it with 37,500 to decide whether a back channel that
  // owes it arrays may be stuck (see the guide's walkthrough). The name is
  // the protocol's; what it counts is JSON characters sent but not yet
  // acknowledged.
  /** Id of the newest array written to a back channel (-1 before any). */
  get sentId(): number {
    return this.lastSentId;
  }

  /** Whether some queued array has not been written yet. */
  get hasUnsent(): boolean {
    return this.firstId + this.length - 1 > this.lastSentId;
  }

  /** Whether some queued array with an id up to `lastId` has not been written yet. */
  hasUnsentUpTo(lastId: number): boolean {
    return Math.min(this.firstId + this.length - 1, lastId) > this.lastSentId;
  }

  /** Id of the oldest array still queued (the next id when none is). */
  get oldestId(): number {
    return this.firstId;
  }

  // With recovery on (`recovery.ts`), the ledger saves what was queued
  // since its last save, and a takeover in the same process copies what
  // the client does not have yet.
  /** JSON texts of the queued arrays from id `fromId` on, oldest first. */
  textsFrom(fromId: number): string[] {
    const texts: string[] = [];
    for (let index = Math.max(0, fromId - this.firstId); index < this.length; index++) {
      texts.push(textOf(this.entryAt(index)));
    }
    return texts;
  }

  /** JSON characters queued or sent but not acknowledged. */
  get bufferedBytes(): number {
    return this.chars;
  }

  /** Arrays queued or sent but not acknowledged. */
  get length(): number {
    const texts = this.texts;
    return texts === null ? 0 : Array.isArray(texts) ? texts.length : 1;
  }

  /** JSON characters sent but not acknowledged. */
  outstandingBytes(): number {
    const sentCount = Math.min(this.length, this.lastSentId + 1 - this.firstId);
    let total = 0;
    for (let index = 0; index < sentCount; index++) total += charsOf(this.entryAt(index));
    return total;
  }

  private entryAt(index: number): Entry {
    const texts = this.texts!;
    return Array.isArray(texts) ? texts[index]! : texts;
  }
}

function textOf(entry: Entry): string {
  if (typeof entry === 'string') return entry;
  return entry instanceof Own ? entry.json : entry.bytes.toString('utf8');
}

function charsOf(entry: Entry): number {
  if (typeof entry === 'string') return entry.length;
  return entry instanceof Own ? entry.json.length : entry.chars;
}

// An array's `onSent` fires once, the first time it is written; a
// rewound array written again does not call it twice.
function takeOnSent(entry: Callbacks | undefined, sent: SendCallback[]): void {
  if (entry === undefined || entry.onSent === null) return;
  sent.push(entry.onSent);
  entry.onSent = null;
}
