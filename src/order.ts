// # Order: putting numbered things back in sequence
//
// HTTP gives no ordering between requests. A browser may have two forward
// POSTs in flight, a proxy may delay one, and a client retries a request
// that timed out, sometimes with extra maps appended. Two counters let the
// server rebuild the sender's order:
//
// - every forward request has a request id, `RID`, counting up from a
//   random start chosen by the client;
// - every map has a map id, counting up from 0 (`ofs` in the body).
//
// ```text
// POST …&RID=4243   count=1&ofs=1&req0_x=b       ← arrives first
// POST …&RID=4242   count=1&ofs=0&req0_x=a       ← arrives second
//                   delivered: a (map 0), then b (map 1)
// ```
//
// A `Sequencer` holds items that arrive early and releases them once every
// id before them has been seen. What happens to an item whose id has
// already passed is the caller's choice: maps drop them (a retry must not
// deliver a map twice), requests replay them (a retried request may still
// carry maps that are new).
/** The reordering queue used for request ids and map ids. @module */

// ## The sequencer
//
// State is two fields: `next`, the id we are waiting for, and `held`, the
// items that came early, keyed by id. A `Map` rather than an array, so a
// client that jumps ahead by a billion ids costs one entry, not a billion
// empty slots.
/** Releases numbered items in id order, holding early ones until their turn. */
export class Sequencer<T> {
  /** The id of the next item to release. */
  private next: number;
  /** Items that arrived before their turn, keyed by id. */
  private readonly held = new Map<number, T>();

  /**
   * @param first - id of the first item expected.
   * @param release - called with each item in id order.
   * @param replayOld - whether an item whose id has already passed is released again (true) or dropped.
   */
  constructor(
    first: number,
    private readonly release: (item: T, id: number) => void,
    private readonly replayOld: boolean,
  ) {
    this.next = first;
  }

  // ## Offering an item
  //
  // One of three things happens: an old id is replayed or dropped, an early
  // id waits in `held` (a later copy of the same id replaces it), or the
  // awaited id is released together with every held id that follows it.
  /** Hands over the item numbered `id`. */
  offer(id: number, item: T): void {
    if (id < this.next) {
      if (this.replayOld) this.release(item, id);
      return;
    }
    if (id > this.next) {
      this.held.set(id, item);
      return;
    }
    this.advance(item);
  }

  private advance(item: T): void {
    let current: T | undefined = item;
    while (current !== undefined) {
      const id = this.next++;
      this.release(current, id);
      current = this.held.get(this.next);
      this.held.delete(this.next);
    }
  }

  // ## What is waiting
  //
  // The session reads these to cap how much a misbehaving client can make
  // it hold.
  /** How many items are waiting for an earlier id. */
  get waiting(): number {
    return this.held.size;
  }

  /** The id the sequencer is waiting for. */
  get expected(): number {
    return this.next;
  }

  /** Drops everything held; used when the session closes. */
  clear(): void {
    this.held.clear();
  }
}
