// # Inbox: maps on their way up, put back in order
//
// The forward channel brings maps in batches, one batch per POST. HTTP
// may reorder the POSTs (a WebChannel client over HTTP/2 keeps up to ten
// in flight) or repeat one. The inbox is where a batch waits for its
// turn: first by request id (`RID`), then map by map id.
//
// ```text
// POST      body          delivered  why
// RID 4243  ofs=1 [b]     -          early: waits for 4242
// RID 4242  ofs=0 [a]     a b        its turn, then 4243
// RID 4244  ofs=2 [c]     c          (say its answer is lost)
// RID 4244  ofs=2 [c, d]  d          the retry: c seen, d new
// ```
//
// The last line is what a real client does when a POST fails: the
// Closure client (`makeForwardChannelRequest_`) sends the same `RID` again
// with the maps it had sent, at the same ids, and appends whatever was
// queued since. So a retry can carry maps the server has seen and maps it
// has not, and never different maps under an id already used.
// `test/docs/diagrams.test.ts` replays the table against a real server.
//
// Two `Sequencer`s (`order.ts`) do the work: the inbox *is* the one for
// requests, and makes one for maps when the first map arrives. Requests
// replay when old, because a retry may carry new maps; maps are dropped
// when old, so nothing is delivered twice. Both weigh what they hold by
// the size of the body it came in, so `maxHeldBytes` bounds the two
// together with `maxHeldRequests`. The inbox knows nothing of events: it
// hands each map, in order, to the session.
/** The receiving side of a session: request and map reordering with limits. @module */
import type { ForwardBatch, ForwardItem } from './maps.ts';
import { type HoldLimits, Sequencer } from './order.ts';

/** The options that bound what an inbox may hold. */
export interface InboxLimits {
  /** Most forward requests held for reordering. */
  readonly maxHeldRequests: number;
  /** Most body bytes held for reordering. */
  readonly maxHeldBytes: number;
}

/** Whoever takes the maps, in order: the session. */
export interface MapReceiver {
  /** Called with each item in map-id order. */
  deliver(item: ForwardItem): void;
}

// ## Limits, made once per server
//
// A request waits under `maxHeldRequests` and `maxHeldBytes`; maps share
// the byte limit and have no count of their own.
//
// > **Note (memory):** the options object is shared by every session of a
// > server, so the two `HoldLimits` derived from it are made once and
// > remembered beside it, not rebuilt per session.
interface InboxHolds {
  readonly requests: HoldLimits;
  readonly maps: HoldLimits;
}

const holdsByOptions = new WeakMap<InboxLimits, InboxHolds>();

function holdsFor(limits: InboxLimits): InboxHolds {
  let holds = holdsByOptions.get(limits);
  if (holds === undefined) {
    holds = {
      requests: { count: limits.maxHeldRequests, weight: limits.maxHeldBytes },
      maps: { count: Infinity, weight: limits.maxHeldBytes },
    };
    holdsByOptions.set(limits, holds);
  }
  return holds;
}

// ## Maps
//
// Map ids start at 0 for every session; an old one is a repeat, dropped.
class MapOrder extends Sequencer<ForwardItem> {
  constructor(
    private readonly receiver: MapReceiver,
    private readonly limits: HoldLimits,
  ) {
    super(0);
  }

  protected holdLimits(): HoldLimits {
    return this.limits;
  }

  protected release(item: ForwardItem): void {
    this.receiver.deliver(item);
  }

  protected replaysOld(): boolean {
    return false;
  }
}

// ## The inbox: requests
//
// What waits in the request order is a function to run when the
// request's turn comes: deliver its batch, or close the session for a
// terminate. An old request runs again, so a retry's new maps get through
// (and its old ones are dropped by the map order).
/** Orders a session's incoming maps by `RID` and map id. */
export class Inbox extends Sequencer<() => void> {
  private maps: MapOrder | null = null;

  /**
   * @param firstRequestId - the `RID` of the request that created the session.
   * @param options - the server's resolved options (shared by its sessions).
   */
  constructor(
    firstRequestId: number,
    private readonly options: InboxLimits,
    private readonly receiver: MapReceiver,
  ) {
    super(firstRequestId);
  }

  // Looked up when a request has to wait, rather than kept: one field
  // less on every session.
  protected holdLimits(): HoldLimits {
    return holdsFor(this.options).requests;
  }

  protected release(run: () => void): void {
    run();
  }

  protected replaysOld(): boolean {
    return true;
  }

  // ## Receiving a batch
  //
  // The answer is null, or a sentence naming the limit the client
  // overflowed; the session closes with it, and the handler answers `400`
  // with the same words. `bodyBytes` is what the batch weighs while it waits.
  /** Takes a decoded body sent under `requestId`; returns null, or the limit it overflowed. */
  receive(requestId: number, batch: ForwardBatch | null, bodyBytes: number): string | null {
    let overflow: string | null = null;
    const run = (): void => {
      overflow = this.releaseBatch(batch, bodyBytes);
    };
    if (!this.offer(requestId, run, bodyBytes)) {
      const { maxHeldRequests, maxHeldBytes } = this.options;
      overflow =
        `Reorder buffer over ${maxHeldRequests} requests or ${maxHeldBytes} bytes` +
        ' (maxHeldRequests, maxHeldBytes)';
    }
    return overflow;
  }

  // A batch's turn has come: its maps join the map order, each weighing
  // its share of the body. A session that only listens never posts a map,
  // and never pays for a map order.
  private releaseBatch(batch: ForwardBatch | null, bodyBytes: number): string | null {
    if (batch === null || batch.items.length === 0) return null;
    const weight = bodyBytes / batch.items.length;
    const maps = (this.maps ??= new MapOrder(this.receiver, holdsFor(this.options).maps));
    for (let index = 0; index < batch.items.length; index++) {
      if (!maps.offer(batch.ofs + index, batch.items[index]!, weight)) {
        return `Reorder buffer over ${this.options.maxHeldBytes} bytes of maps (maxHeldBytes)`;
      }
    }
    return null;
  }

  // ## Things that wait their turn
  //
  // A terminate must not overtake data sent before it, so it waits in the
  // request order like a batch.
  /** Runs `action` once every request before `requestId` has been handled. */
  runAt(requestId: number, action: () => void): void {
    this.offer(requestId, action);
  }

  /** Drops everything held; used when the session closes. */
  override clear(): void {
    super.clear();
    this.maps?.clear();
  }
}
