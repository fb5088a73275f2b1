// # Inbox: maps on their way up, put back in order
//
// The forward channel brings maps in batches, one batch per POST, and
// HTTP may reorder the POSTs or repeat them. The inbox is where a batch
// waits for its turn: first by request id (`RID`), then map by map id.
//
// ```text
// RID 4243  ofs=1  [b]        held: waits for RID 4242
// RID 4242  ofs=0  [a]        released: a, then (RID 4243) b
// RID 4242  ofs=0  [a, c]     a retry with one more map: a dropped (seen), c released
// ```
//
// Two `Sequencer`s (`order.ts`) do the work. Requests replay when old,
// because a retried request may carry maps that are new; maps are dropped
// when old, so nothing is delivered twice. Both weigh what they hold by
// the bytes of the body it came in, so `maxHeldBytes` bounds the two
// together with `maxHeldRequests`. The inbox knows nothing of events: it
// hands each map, in order, to the function the session gave it.
/** The receiving side of a session: request and map reordering with limits. @module */
import type { ForwardBatch, ForwardItem } from './maps.ts';
import { Sequencer } from './order.ts';

/** The options that bound what an inbox may hold. */
export interface InboxLimits {
  /** Most forward requests held for reordering. */
  readonly maxHeldRequests: number;
  /** Most body bytes held for reordering. */
  readonly maxHeldBytes: number;
}

// ## The inbox
/** Orders a session's incoming maps by `RID` and map id. */
export class Inbox {
  private readonly requests: Sequencer<() => void>;
  private readonly maps: Sequencer<ForwardItem>;

  /**
   * @param firstRequestId - the `RID` of the request that created the session.
   * @param deliver - called with each item, in map-id order.
   */
  constructor(firstRequestId: number, private readonly limits: InboxLimits, deliver: (item: ForwardItem) => void) {
    this.requests = new Sequencer(firstRequestId, (run) => run(), true, { count: limits.maxHeldRequests, weight: limits.maxHeldBytes });
    this.maps = new Sequencer(0, deliver, false, { count: Infinity, weight: limits.maxHeldBytes });
  }

  // ## Receiving a batch
  //
  // The answer is null, or a sentence naming the limit the client
  // overflowed; the session closes with it, and the handler answers `400`
  // with the same words.
  /**
   * Takes a decoded body sent under `requestId`.
   * @param bodyBytes - the body's size, counted while it waits.
   * @returns null, or the reason a limit overflowed.
   */
  receive(requestId: number, batch: ForwardBatch | null, bodyBytes: number): string | null {
    let overflow: string | null = null;
    const release = (): void => {
      overflow = this.release(batch, bodyBytes);
    };
    if (!this.requests.offer(requestId, release, bodyBytes)) {
      overflow = `Reorder buffer over ${this.limits.maxHeldRequests} requests or ${this.limits.maxHeldBytes} bytes (maxHeldRequests, maxHeldBytes)`;
    }
    return overflow;
  }

  // A batch's turn has come: its maps join the map sequencer, each
  // weighing its share of the body.
  private release(batch: ForwardBatch | null, bodyBytes: number): string | null {
    if (batch === null) return null;
    const weight = batch.items.length === 0 ? 0 : bodyBytes / batch.items.length;
    for (let index = 0; index < batch.items.length; index++) {
      if (!this.maps.offer(batch.ofs + index, batch.items[index]!, weight)) {
        return `Reorder buffer over ${this.limits.maxHeldBytes} bytes of maps (maxHeldBytes)`;
      }
    }
    return null;
  }

  // ## Things that wait their turn
  //
  // A terminate must not overtake data sent before it, so it waits in the
  // request sequencer like a batch.
  /** Runs `action` once every request before `requestId` has been handled. */
  runAt(requestId: number, action: () => void): void {
    this.requests.offer(requestId, action);
  }

  /** Drops everything held; used when the session closes. */
  clear(): void {
    this.requests.clear();
    this.maps.clear();
  }
}
