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
}

// An array waiting to be sent or acknowledged is just its payload's JSON
// text, serialised once before it is queued (by `send`, or once for a
// whole broadcast): every later write and byte count reuses that text.
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

// ## The queue
/** Outgoing arrays of one session, oldest first, until acknowledged. */
export class Outbox {
  /**
   * JSON texts of the arrays not yet acknowledged, oldest first: none, one
   * text as it is, or an array of two or more. An idle session's only
   * array is its unacknowledged handshake, and a lone string spares it an
   * array and its backing store (about 56 bytes).
   */
  private texts: string | string[] | null = null;
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
  /** Adds an array, given as its payload's JSON text, and returns its id. */
  queue(json: string, onSent: SendCallback | null, onAck: SendCallback | null): number {
    const texts = this.texts;
    const id = this.firstId + this.length;
    if (texts === null) this.texts = json;
    else if (typeof texts === 'string') this.texts = [texts, json];
    else texts.push(json);
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
    let chars = 2;
    for (; index < count && chars < maxChars; index++) {
      const id = this.firstId + index;
      const json = this.textAt(index);
      const opening = pieces.length === 0 ? `[[${id},` : `],[${id},`;
      pieces.push(opening, json);
      chars += opening.length + json.length;
      if (this.callbacks !== null) takeOnSent(this.callbacks.get(id), sent);
      this.lastSentId = id;
    }
    pieces.push(']]');
    return { pieces, chars };
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
    for (let index = 0; index < done; index++) this.chars -= this.textAt(index).length;
    if (done === this.length) this.texts = null;
    else (this.texts as string[]).splice(0, done);
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
      texts.push(this.textAt(index));
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
    return texts === null ? 0 : typeof texts === 'string' ? 1 : texts.length;
  }

  /** JSON characters sent but not acknowledged. */
  outstandingBytes(): number {
    const sentCount = Math.min(this.length, this.lastSentId + 1 - this.firstId);
    let total = 0;
    for (let index = 0; index < sentCount; index++) total += this.textAt(index).length;
    return total;
  }

  private textAt(index: number): string {
    const texts = this.texts!;
    return typeof texts === 'string' ? texts : texts[index]!;
  }
}

// An array's `onSent` fires once, the first time it is written; a
// rewound array written again does not call it twice.
function takeOnSent(entry: Callbacks | undefined, sent: SendCallback[]): void {
  if (entry === undefined || entry.onSent === null) return;
  sent.push(entry.onSent);
  entry.onSent = null;
}
