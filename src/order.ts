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
// ```text illustrative
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

// ## Limits
//
// Everything held is memory a client made us spend, so a sequencer holds
// at most `count` items weighing at most `weight` in all (the weight of an
// item is whatever the owner says: bytes of the body it came in, say). An
// item that would pass either limit is refused, and `offer` says so; the
// session then ends, naming the limit, rather than grow without end. The
// limits are one object shared by every sequencer of a server.
/** Bounds on what a sequencer may hold. */
export interface HoldLimits {
  /** Most items held at once. */
  readonly count: number;
  /** Most total weight held at once. */
  readonly weight: number;
}

//
// ## The sequencer
//
// State is two fields: `next`, the id we are waiting for, and `held`, the
// items that came early, keyed by id. A `Map` rather than an array, so a
// client that jumps ahead by a billion ids costs one entry, not a billion
// empty slots.
//
// > **Note (memory):** `held` is created the first time something has to
// > wait. Most sessions never see a request out of order, an empty `Map`
// > costs about 200 bytes, and an idle server may hold a hundred thousand
// > sessions with two sequencers each.
//
// What "release" means, and whether an old id is released again, is the
// subclass's business (`inbox.ts` has two, and replays its own diagram
// against a real server): methods, not callbacks or
// flags, so a sequencer carries nothing per instance but its state.
/** Releases numbered items in id order, holding early ones until their turn. */
export abstract class Sequencer<T> {
  /** The id of the next item to release. */
  private next: number;
  /** Items that arrived before their turn, keyed by id, with their weights; null until one does. */
  private held: Map<number, { item: T; weight: number }> | null = null;
  private heldWeight = 0;

  /** @param first - id of the first item expected. */
  constructor(first: number) {
    this.next = first;
  }

  /** The most items and weight this sequencer may hold (asked only when one must wait). */
  protected abstract holdLimits(): HoldLimits;

  /** Called with each item in id order (and with replayed old items). */
  protected abstract release(item: T, id: number): void;

  /** Whether an item whose id has already passed is released again (true) or dropped. */
  protected abstract replaysOld(): boolean;

  // ## Offering an item
  //
  // One of four things happens: an old id is replayed or dropped, an early
  // id waits in `held` (a later copy of the same id replaces it), an early
  // id that would overflow the limits is refused, or the awaited id is
  // released together with every held id that follows it.
  /**
   * Hands over the item numbered `id`.
   * @param weight - what holding this item costs, counted against `limits.weight`.
   * @returns false if the item had to be held and would pass the limits (nothing is held then).
   */
  offer(id: number, item: T, weight = 0): boolean {
    if (id < this.next) {
      if (this.replaysOld()) this.release(item, id);
      return true;
    }
    if (id > this.next) return this.hold(id, item, weight);
    this.advance(item);
    return true;
  }

  private hold(id: number, item: T, weight: number): boolean {
    const held = (this.held ??= new Map());
    const previous = held.get(id);
    const count = held.size + (previous ? 0 : 1);
    const total = this.heldWeight - (previous?.weight ?? 0) + weight;
    const limits = this.holdLimits();
    if (count > limits.count || total > limits.weight) return false;
    held.set(id, { item, weight });
    this.heldWeight = total;
    return true;
  }

  private advance(item: T): void {
    let current: T | undefined = item;
    while (current !== undefined) {
      const id = this.next++;
      this.release(current, id);
      const waiting = this.held?.get(this.next);
      if (waiting === undefined) return;
      this.held!.delete(this.next);
      this.heldWeight -= waiting.weight;
      current = waiting.item;
    }
  }

  // ## What is waiting
  /** How many items are waiting for an earlier id. */
  get waiting(): number {
    return this.held?.size ?? 0;
  }

  /** The id the sequencer is waiting for. */
  get expected(): number {
    return this.next;
  }

  /** Drops everything held; used when the session closes. */
  clear(): void {
    this.held = null;
    this.heldWeight = 0;
  }
}
