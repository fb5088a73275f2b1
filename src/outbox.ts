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
import { escapeLineSeparators } from './encoding.ts';

/** Called once the client acknowledges an array, or with an Error if the session ends first. */
export type SendCallback = (error?: Error) => void;

// An array waiting to be sent or acknowledged. The payload arrives as JSON
// text, serialised once before it is queued (by `send`, or once for a
// whole broadcast): every later write and byte count reuses that text.
interface OutgoingArray {
  readonly id: number;
  readonly json: string;
  /** Fires when the array is first written (used by `stop`). */
  onSent: SendCallback | null;
  /** Fires when the array is acknowledged. */
  readonly onAck: SendCallback | null;
}

// ## The queue
/** Outgoing arrays of one session, oldest first, until acknowledged. */
export class Outbox {
  private arrays: OutgoingArray[] = [];
  private lastQueuedId = -1;
  private lastSentId = -1;
  /** JSON characters queued or sent, not yet acknowledged. */
  private chars = 0;

  // ### Queueing
  //
  // The payload arrives as JSON text, made once by the caller (`send`, or
  // once for a whole broadcast); a value with no JSON form was refused
  // there, before anything was queued.
  //
  // > **Note (memory):** an empty queue takes its first array as a
  // > one-element literal. Pushing onto `[]` would reserve room for
  // > seventeen, about 140 bytes that an idle session (whose only array is
  // > the unacknowledged handshake) would carry for nothing.
  /** Adds an array, given as its payload's JSON text, and returns its id. */
  queue(json: string, onSent: SendCallback | null, onAck: SendCallback | null): number {
    const id = ++this.lastQueuedId;
    const array: OutgoingArray = { id, json, onSent, onAck };
    if (this.arrays.length === 0) this.arrays = [array];
    else this.arrays.push(array);
    this.chars += json.length;
    return id;
  }

  // ### Taking what is unsent
  //
  // Returns the JSON text of one chunk, `[[4,["hello"]],[5,{"a":1}]]`
  // (line separators escaped, see `encoding.ts`), marks those arrays sent,
  // and collects their `onSent` callbacks into `sent` for the caller to
  // run once the chunk is on the wire. A chunk stops growing once it
  // passes `maxChars` (it always holds at least one array), so what one
  // write puts in a socket buffer stays small even when a burst of sends
  // is waiting; the rest goes in later chunks.
  /** The oldest unsent arrays (about `maxChars` characters) as one chunk's JSON, or null. */
  takeUnsent(sent: SendCallback[], maxChars = Infinity): string | null {
    const unsentCount = this.lastQueuedId - this.lastSentId;
    if (unsentCount === 0) return null;
    const parts: string[] = [];
    let chars = 0;
    const first = this.arrays.length - unsentCount;
    for (let i = first; i < this.arrays.length && chars < maxChars; i++) {
      const array = this.arrays[i]!;
      const part = `[${array.id},${array.json}]`;
      parts.push(part);
      chars += part.length;
      if (array.onSent) sent.push(array.onSent);
      array.onSent = null;
      this.lastSentId = array.id;
    }
    return escapeLineSeparators(`[${parts.join(',')}]`);
  }

  // ### Rewinding
  //
  // When a new back channel opens, the old one may have died with arrays
  // in flight. The `AID` on the new request has already acknowledged what
  // arrived, so everything still queued is treated as unsent and goes
  // again. The client ignores any id it has already seen.
  /** Marks every unacknowledged array as unsent. */
  rewind(): void {
    if (this.arrays.length > 0) this.lastSentId = this.arrays[0]!.id - 1;
  }

  // ### Acknowledging
  //
  // An `AID` beyond what was sent can only come from a confused or hostile
  // client; it acknowledges just what was actually sent.
  /** Drops arrays up to `arrayId` and returns their `onAck` callbacks. */
  acknowledge(arrayId: number): SendCallback[] {
    const upTo = Math.min(arrayId, this.lastSentId);
    const callbacks: SendCallback[] = [];
    let done = 0;
    while (done < this.arrays.length && this.arrays[done]!.id <= upTo) {
      const array = this.arrays[done++]!;
      this.chars -= array.json.length;
      if (array.onAck) callbacks.push(array.onAck);
    }
    if (done === this.arrays.length) this.arrays = [];
    else this.arrays.splice(0, done);
    return callbacks;
  }

  // ### Ending
  /** Empties the queue and returns every callback still owed an answer. */
  drain(): SendCallback[] {
    const callbacks: SendCallback[] = [];
    for (const array of this.arrays) {
      if (array.onSent) callbacks.push(array.onSent);
      if (array.onAck) callbacks.push(array.onAck);
    }
    this.arrays = [];
    this.chars = 0;
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
    return this.lastQueuedId > this.lastSentId;
  }

  /** JSON characters queued or sent but not acknowledged. */
  get bufferedBytes(): number {
    return this.chars;
  }

  /** Arrays queued or sent but not acknowledged. */
  get length(): number {
    return this.arrays.length;
  }

  /** JSON characters sent but not acknowledged. */
  outstandingBytes(): number {
    let total = 0;
    for (const array of this.arrays) {
      if (array.id > this.lastSentId) break;
      total += array.json.length;
    }
    return total;
  }
}
