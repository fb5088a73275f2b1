// # Deadlines: one timer for thousands of sessions
//
// A session with no back channel dies after `sessionTimeoutInterval` of
// silence (30 s by default): the client has gone, or will come back with
// a new session. Every request restarts the countdown; a back channel
// stops it while it is open.
//
// > **Note (memory):** the obvious clock is a `setTimeout` per session.
// > Each Node timer is an object of its own (about 120 bytes, plus the
// > closure it calls), so 100,000 idle sessions would hold 100,000 of them.
// > This module serves them all with one timer.
//
// Every session of one server waits the *same* length of time.
// Deadlines of equal length expire in the order they were set, so a queue
// in insertion order is already sorted by expiry, and a JavaScript `Map`
// keeps insertion order. Restarting a countdown is delete-then-set, which
// moves the key to the back. Only the front can be due, so one timer,
// armed for the front, serves the whole queue.
//
// ```text
// now = 10 000 ms, durationMs = 30 000; the queue, front first:
//   [A 31 200] [B 35 900] [C 39 999]     timer armed for 31 200
// restart(A) at 12 000:
//   [B 35 900] [C 39 999] [A 42 000]     at 31 200 the timer finds nothing
//                                        due, and re-arms for 35 900
// ```
//
// Cancelling leaves the timer alone: if it fires for a key that has gone,
// it finds nothing due and sleeps again until the new front. The timer is
// `unref`ed, so a queue never keeps the process alive, and `clear()` stops
// it outright.
/** A queue of equal-length countdowns served by one timer. @module */

// ## Time
//
// `performance.now()` is monotonic: a wall clock set back by NTP must not
// make every session look idle for an hour, or none at all.
//
// > **Note (memory):** deadlines are whole milliseconds. V8 stores a small
// > integer inside the `Map` entry, where a fraction would be a 16-byte
// > number object of its own.
const now = (): number => Math.ceil(performance.now());

// ## The queue
/** Countdowns of one fixed length; `expire` is called with each key whose time runs out. */
export class Deadlines<K> {
  /** Keys in expiry order (insertion order), with the time each expires. */
  private readonly due = new Map<K, number>();
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param durationMs - how long every countdown lasts.
   * @param expire - called once for each key whose countdown ends; it is removed first.
   */
  constructor(
    /** How long every countdown lasts, in milliseconds. */
    readonly durationMs: number,
    private readonly expire: (key: K) => void,
  ) {}

  // ### Starting and cancelling
  //
  // A new deadline is never earlier than any already queued, so an armed
  // timer never needs moving; only an idle queue needs arming.
  //
  // A countdown started over within the same millisecond (a session's
  // first, from its constructor, and its creating request's answer, in
  // the same turn) would get the deadline it already has; every key
  // behind it expires no later, so it stays where it is.
  //
  // > **Note (speed):** a move is a delete and a set, and the delete
  // > leaves a dead entry in the `Map`'s table until it is rebuilt. Not
  // > moving took a handshake from about 188,000 to 171,000 instructions
  // > (`CG_PEERS=ours node bench/callgrind.mjs handshake`).
  /** Starts `key`'s countdown, or starts it over. */
  start(key: K): void {
    const at = now() + this.durationMs;
    if (this.due.get(key) === at) return;
    this.due.delete(key);
    this.due.set(key, at);
    if (this.timer === null) this.arm(this.durationMs);
  }

  /** Stops `key`'s countdown, if it has one. */
  cancel(key: K): void {
    this.due.delete(key);
  }

  /** How many countdowns are running. */
  get size(): number {
    return this.due.size;
  }

  /** Cancels everything and stops the timer. */
  clear(): void {
    this.due.clear();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  // ### The timer
  //
  // When it fires, every key at the front whose time has come is removed
  // and expired, then the timer is armed again for the new front. An
  // `expire` that starts or cancels other countdowns is safe: a `Map`
  // iterator sees keys added during the walk, and those are not yet due.
  private arm(delayMs: number): void {
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.ceil(delayMs))).unref();
  }

  private fire(): void {
    this.timer = null;
    const time = now();
    for (const [key, at] of this.due) {
      if (at > time) return this.arm(at - time);
      this.due.delete(key);
      this.expire(key);
    }
  }
}
