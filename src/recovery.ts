// # Recovery: a session that outlives its process
//
// A session lives in the memory of one process. When that process dies
// (`kill -9`, a crash, a machine gone), its clients find out on their
// next request, `400 Unknown SID`, and start new sessions: whatever the
// old one had queued for them, and everything their rooms said while
// they were away, is gone. The protocol already has the hook to do
// better. A reconnecting Closure `BCSocket` names its old session and
// the last array it got of it on the request that creates the new one:
//
// ```http
// POST /channel/bind?VER=8&RID=7001&OSID=n2.Qm9v…&OAID=41&CVER=1&t=1 HTTP/1.1
// ```
//
// With the `recovery` option and an adapter that keeps history (the Redis
// one, `browserchannel-server/redis`), every array a session is sent is
// saved in Redis *before* it goes to any back channel, with the session's
// rooms, `session.data` and, for each room, the position of the last room
// broadcast it was given. So a process that takes the reconnect can give
// the client, in order and once each:
//
// ```text illustrative
// 1. the old session's arrays after OAID     (saved before they were written)
// 2. each room's broadcasts after the saved position   (the room's history)
// 3. live traffic
// ```
//
// and `onConnect` sees `session.recovered === true` and
// `session.previousId`. If any part is not held whole (the window passed,
// Redis lost the data, a room's history moved on), nothing is replayed:
// the session starts fresh, `recovered` is false and `recoveryFailure`
// says what was missing. Never a partial replay.
//
// This module is the core's half: the contract a store keeps
// (`RecoveryStore`), the *ledger* that saves what changed of each session
// at the end of every tick and holds arrays back until they are saved,
// and the takeover a create request with `OSID` runs. The Redis half, the
// keys and the Lua scripts, is `redis/history.ts`.
/** Session recovery across processes: the store contract, the ledger, the takeover. @module */
import { NOOP_JSON } from './encoding.ts';
import type { AnySession, Session } from './session.ts';

// ## The option
/** The `recovery` option: how long a session's state outlives it. */
export interface RecoveryOptions {
  /**
   * Milliseconds a session's saved state is kept after its owner last saw it alive (a process
   * that dies stops refreshing it). A client that reconnects later starts fresh.
   */
  readonly window: number;
  /** Most broadcasts kept per room for sessions catching up. Default 1000. */
  readonly history?: number;
  /**
   * Milliseconds a save or a takeover waits for the store before going on without it, as when
   * the store is down. Default 2000.
   */
  readonly timeout?: number;
}

// ## What is saved
//
// At the end of a tick, every session that changed (arrays queued, an
// acknowledgement, maps delivered, a room joined) becomes one record.
// Arrays are consecutive, so a record carries the id of the first and
// their JSON texts; `acked` lets the store drop what the client has.
/** What changed of one session since its last save. */
export interface SessionRecord {
  /** The session; the store reads its id and rooms. */
  readonly session: Session<unknown, unknown, object>;
  /** True for the session's first save, which creates its state. */
  readonly create: boolean;
  /** Id of `texts[0]`. */
  readonly firstId: number;
  /** JSON texts of the arrays queued since the last save, oldest first. */
  readonly texts: readonly string[];
  /**
   * The next array id the previous save left in the store. Ids between it and `firstId` were
   * heartbeats, never saved; a store that holds another value has lost a save, and says so.
   */
  readonly expect: number;
  /** The client has every array up to this id (-1: none yet); older ones may go. */
  readonly acked: number;
  /** Maps delivered to the app so far (the next map id). */
  readonly maps: number;
  /** JSON of `session.data` if it changed since the last save, else null. */
  readonly data: string | null;
}

// What a store hands back when a session is taken over.
/** A session's state as its old owner last saved it. */
export interface SavedSession {
  /** Maps the old session delivered to the app (its next map id). */
  readonly maps: number;
  /** JSON of its `session.data`, or null if it had none. */
  readonly data: string | null;
}

// ## The store's contract
//
// The server calls `start` once, then `save` at the end of every tick
// in which something changed, `end` when a session closes, and
// `takeOver` when a create names an old session this process does not
// hold. A store never closes sessions itself: `save` answers `false` for
// a session that another process has taken over, and the ledger closes it.
/** Where sessions are saved for recovery: an adapter's `recovery` member. */
export interface RecoveryStore {
  /** Called once by the server; `liveIds` lists the sessions whose state must not expire. */
  start(options: Required<RecoveryOptions>, liveIds: () => Iterable<string>): void;
  /**
   * Saves the records, in order. Resolves with one boolean per record: false when the session
   * was taken over by another process. Rejects when nothing could be saved (Redis is down).
   */
  save(records: readonly SessionRecord[]): Promise<readonly boolean[]>;
  /**
   * Null when `session` can be saved now; otherwise a promise that settles, within the store's
   * own bound, once it can (say, a room it joined has not yet learned where its history
   * stands). The ledger saves the session then, with whatever changed meanwhile.
   */
  ready?(session: Session<unknown, unknown, object>): Promise<unknown> | null;
  /** A session ended: forget its state now, or (`keep`) let it expire after the window. */
  end(sessionId: string, keep: boolean): void;
  /**
   * Takes over the state of `oldId`: queues on `session` the old arrays after `arrayId` and its
   * rooms' broadcasts since its saved positions, in that order, and joins it to those rooms.
   * Resolves with the rest of the state, or with a sentence saying what could not be recovered
   * (and then has queued and joined nothing). Once `signal` aborts (the server stopped
   * waiting), it must queue and join nothing, whatever it learns later.
   */
  takeOver(session: Session<unknown, unknown, object>, oldId: string, arrayId: number,
    signal: AbortSignal): Promise<SavedSession | string>;
}

// ## A session's side of it
//
// One small object per session, made only when recovery is on and the
// session's client can come back for it (see `recordable`), so a server
// without recovery pays one null field per session.
/** @internal A session's recovery state: what is saved, and how it began. */
export class SessionLedger {
  /** Id of the newest array saved (or given up on); later ones are held back. */
  saved = -1;
  /** Id of the newest array handed to a save that has not answered yet. */
  handed = -1;
  /** Whether the first save has been handed over, creating the session's state. */
  created = false;
  /** The next array id as of the last save handed over (what the store should hold). */
  next = 0;
  /** `acked` and `maps` as of the last save handed over. */
  savedAck = -1;
  savedMaps = 0;
  /** Set when something the arrays do not show changed (a room joined): save even if quiet. */
  force = false;
  /** Maps released to the session so far: its next map id. */
  maps = 0;
  /** New map ids below this are resends of maps the old session delivered: dropped. */
  skipMaps = 0;
  /** The last `session.data` JSON saved. */
  dataJson: string | null = null;
  /** When the store first said this session could not be saved yet (0: it can). */
  waitingSince = 0;
  /** Saves of this session handed to the store so far. */
  saves = 0;
  /** Waiting for a save: each for the one numbered `save` (or a later one) to answer. */
  waiters: Array<{ readonly save: number; readonly resolve: () => void }> | null = null;
  /** The old session's id, for a session created with `OSID`. */
  previousId: string | null = null;
  /** Whether the old session's state was taken over whole. */
  recovered = false;
  /** Why it was not, or null. */
  failure: string | null = null;
}

// ## The ledger
//
// One per server. A session that changes is marked; at the end of the
// tick every marked session becomes a record and the whole batch goes to
// the store in one call, so a broadcast to a thousand sessions costs one
// round trip to Redis, not a thousand. Until the store answers, the new
// arrays wait in the outbox (`Session.writableUpTo`); then the session
// flushes.
//
// When the store cannot save (Redis is down), live traffic must not stop:
// the arrays are released unsaved, the failure is reported (at most once
// a second), and a later takeover finds the gap in the saved arrays and
// says so, rather than replaying part of them.
/** @internal Saves what changed of each session at the end of the tick. */
export class Ledger {
  private readonly marked = new Set<AnySession>();
  private scheduled = false;
  /** Sessions with a ledger that are still open, for the store's refresh. */
  readonly live = new Set<AnySession>();
  private lastReport = 0;

  constructor(
    readonly store: RecoveryStore,
    readonly options: Required<RecoveryOptions>,
    private readonly report: (error: unknown) => void,
  ) {
    store.start(options, () => this.liveIds());
  }

  private *liveIds(): Iterable<string> {
    for (const session of this.live) yield session.id;
  }

  /** Starts keeping `session`'s state. */
  track(session: AnySession, ledger: SessionLedger): void {
    session.recovery = ledger;
    this.live.add(session);
    this.mark(session);
  }

  /** Saves `session` at the end of this tick. */
  mark(session: AnySession): void {
    this.marked.add(session);
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(() => this.saveMarked());
  }

  // A forward request is answered only once the maps it delivered are
  // counted in Redis: then a client that resends them after a crash finds
  // them already delivered (`skipMaps`).
  //
  // The save that counts is the *next* one handed over, not one already
  // on its way: that one was made before these maps were delivered, and
  // its answer, which can arrive after they were, proves nothing about
  // them. (Released by it, a forward answer once went out ahead of the
  // count, and a crash just then gave the app those maps twice.)
  /** Resolves once a save that includes `session`'s current state has answered. */
  saved(session: AnySession): Promise<void> {
    const ledger = session.recovery;
    if (ledger === null) return Promise.resolve();
    ledger.force = true;
    this.mark(session);
    const save = ledger.saves + 1;
    return new Promise((resolve) => (ledger.waiters ??= []).push({ save, resolve }));
  }

  // ## Ending
  //
  // A session that ended because its client went quiet (`Timed out`) or
  // because the server stopped may still be asked for: its client comes
  // back, gets `Unknown SID`, and reconnects with `OSID`. Its state is
  // left to expire after the window. Any other end (the client said
  // goodbye, the app closed it, a limit overflowed, another session took
  // it over) is final, and the state goes at once.
  /** @internal A session closed; `keep` says whether its state may still be taken over. */
  end(session: AnySession, keep: boolean): void {
    this.live.delete(session);
    if (keep) return;
    this.marked.delete(session);
    this.store.end(session.id, false);
    releaseWaiters(session.recovery);
  }

  // ## One save per tick
  //
  // A store that is down fails a save at once. One that hangs (a Redis
  // stuck on a slow command, a network path that drops packets without a
  // reset) would hold every new array and every forward answer for as
  // long as it hangs, so a save that has not answered within `timeout`
  // counts as failed: traffic goes on unsaved, and the answer, if it ever
  // comes, is ignored. Either the save did land late, and the state is
  // whole, or it never did, and the next save marks the gap.
  private saveMarked(): void {
    this.scheduled = false;
    const records: SessionRecord[] = [];
    // For each record: whose it is, its newest array, and its save number.
    const handed: Array<{ session: AnySession; upTo: number; save: number }> = [];
    for (const session of this.marked) {
      if (this.waiting(session)) continue;
      const record = this.recordOf(session);
      if (record === null) continue;
      records.push(record);
      const { handed: upTo, saves: save } = session.recovery!;
      handed.push({ session, upTo, save });
    }
    this.marked.clear();
    if (records.length === 0) return;
    let settled = false;
    const settle = (results: readonly boolean[] | null, error?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (results === null) this.failed(error);
      handed.forEach(({ session, upTo, save }, index) =>
        this.answered(session, upTo, save, results?.[index] ?? true));
    };
    const { timeout } = this.options;
    const timer = setTimeout(() => settle(null, `no answer in ${timeout} ms`), timeout).unref();
    this.store.save(records).then((results) => settle(results), (error) => settle(null, error));
  }

  // A session the store cannot save yet stays unsaved (its new arrays
  // held, a forward answer waiting) and is marked again once it can be,
  // or once it has waited `timeout`: then it is saved as it stands, as a
  // hung store's saves are given up on, so nothing waits longer.
  private waiting(session: AnySession): boolean {
    const ledger = session.recovery;
    if (ledger === null || session.state === 'closed') return false;
    const ready = this.store.ready?.(session) ?? null;
    if (ready === null) {
      ledger.waitingSince = 0;
      return false;
    }
    const { timeout } = this.options;
    const now = Date.now();
    if (ledger.waitingSince > 0 && now - ledger.waitingSince >= timeout) {
      ledger.waitingSince = 0;
      return false;
    }
    const again = (): void => this.mark(session);
    if (ledger.waitingSince === 0) {
      ledger.waitingSince = now;
      setTimeout(again, timeout).unref();
    }
    ready.then(again, again);
    return true;
  }

  private recordOf(session: AnySession): SessionRecord | null {
    const ledger = session.recovery;
    if (ledger === null) return null;
    if (session.state === 'closed') {
      releaseWaiters(ledger);
      return null;
    }
    const { texts, firstId, lastId } = session.unsavedArrays(ledger.handed + 1);
    ledger.handed = Math.max(ledger.handed, lastId);
    const create = !ledger.created && firstId === 0;
    const acked = session.acknowledgedId;
    const data = this.dataOf(session, ledger);
    if (!create && this.quiet(ledger, texts, acked, data)) {
      this.answered(session, ledger.handed, ledger.saves, true);
      return null;
    }
    ledger.saves++;
    if (create) ledger.created = true;
    const expect = ledger.next;
    if (texts.length > 0) ledger.next = firstId + texts.length;
    ledger.savedAck = acked;
    ledger.savedMaps = ledger.maps;
    ledger.force = false;
    return { session, create, firstId, texts, expect, acked, maps: ledger.maps, data };
  }

  // > **Note (cost):** a heartbeat is an array too, and an idle session
  // > says one every `keepAliveInterval`. Saving them would cost Redis a
  // > call per idle session per heartbeat for nothing a client could miss,
  // > so a save with nothing but heartbeats in it is skipped, and the store
  // > learns from `expect` that the ids in between were heartbeats.
  private quiet(ledger: SessionLedger, texts: readonly string[], acked: number,
    data: string | null): boolean {
    return !ledger.force && acked === ledger.savedAck && ledger.maps === ledger.savedMaps &&
      data === null && texts.every((json) => json === NOOP_JSON);
  }

  // `session.data` is saved whenever its JSON changed. App data that
  // cannot be serialised (a cycle, a BigInt) is reported and left as it
  // was last saved.
  private dataOf(session: AnySession, ledger: SessionLedger): string | null {
    if (!session.hasData) return null;
    let json: string;
    try {
      json = JSON.stringify(session.data);
    } catch (error) {
      this.failed(error);
      return null;
    }
    if (json === ledger.dataJson) return null;
    ledger.dataJson = json;
    return json;
  }

  private answered(session: AnySession, upTo: number, save: number, ok: boolean): void {
    const ledger = session.recovery;
    if (ledger === null) return;
    if (!ok) {
      session.close('Reconnected');
      return;
    }
    if (upTo > ledger.saved) {
      ledger.saved = upTo;
      session.flush();
    }
    releaseWaiters(ledger, save);
  }

  private failed(error: unknown): void {
    const now = Date.now();
    if (now - this.lastReport < 1000) return;
    this.lastReport = now;
    const detail = error instanceof Error ? error.message : String(error);
    this.report(new Error(`browserchannel: recovery state not saved (${detail})`));
  }
}

// Waiters for saves up to `save` (all of them, when the session ends).
function releaseWaiters(ledger: SessionLedger | null, save = Infinity): void {
  const waiters = ledger?.waiters;
  if (!waiters) return;
  const due = waiters.filter((waiter) => waiter.save <= save);
  const rest = waiters.filter((waiter) => waiter.save > save);
  ledger.waiters = rest.length > 0 ? rest : null;
  for (const waiter of due) waiter.resolve();
}

// ## Who can come back
//
// Only a client that sends `OSID` can ever be recovered, and WebChannel
// clients never do: their transport's `open()` never passes the old
// session (apps on WebChannel, Firestore among them, resume with their
// own tokens; the guide shows how with room history). So their sessions
// are not saved at all, and cost Redis nothing.
/** @internal Whether a session's state is worth saving. */
export function recordable(session: AnySession): boolean {
  return !session.webChannel;
}

// ## Taking over
//
// A create request with `OSID` on a server with recovery. The old session
// is either here, still open (the client gave up on it, say after a
// network change), or elsewhere: on another process, or nowhere but in
// Redis because its process died.
//
// Here, nothing needs Redis: its unacknowledged arrays after `OAID`, its
// `data` and its rooms move to the new session in memory, and it closes
// with `Reconnected`. Elsewhere, the store takes the saved state over
// (which makes a still-living owner close its copy on its next save) and
// queues what the client missed.
//
// Either way, maps the client resends are dropped when the old session
// had already delivered them, so the app sees each once. (Our client
// puts the maps the old session never acknowledged first in the new one,
// and says in `OMID` which old map id the first had; it does so only for
// a session whose handshake said `X-Session-Recovery: 1`.)
/** What a create request says about the session it replaces. */
export interface Reconnect {
  /** `OSID`: the old session's id. */
  readonly oldId: string;
  /** `OAID`: the last array the client got from it (-1 when absent). */
  readonly arrayId: number;
  /** `OMID`: the old map id of the first map the client resends, or null. */
  readonly firstMapId: number | null;
}

/**
 * @internal Moves the old session's state into `session`, which is new and not yet handed
 * to `onConnect`. Sets `recovered`, `previousId` and `recoveryFailure`.
 */
export async function takeOver(
  server: Ledger,
  local: AnySession | undefined,
  session: AnySession,
  reconnect: Reconnect,
): Promise<void> {
  const ledger = session.recovery!;
  ledger.previousId = reconnect.oldId;
  const saved = local ? moveLocal(local, session, reconnect.arrayId)
    : await takeOverInTime(server.store, session, reconnect, server.options.timeout);
  if (typeof saved === 'string') {
    ledger.failure = saved;
    return;
  }
  ledger.recovered = true;
  if (saved.data !== null) session.data = JSON.parse(saved.data) as object;
  if (reconnect.firstMapId !== null) {
    ledger.skipMaps = Math.max(0, saved.maps - reconnect.firstMapId);
  }
}

// A takeover the store does not finish within `timeout` is abandoned, so
// that a hung Redis delays a reconnecting client by that much and no
// more: the session starts fresh, with the reason, and the store, told
// by the signal, queues and joins nothing if it answers after all. (If
// its `take` did land, the old state is gone with it: at most once.)
async function takeOverInTime(store: RecoveryStore, session: AnySession, reconnect: Reconnect,
  timeout: number): Promise<SavedSession | string> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve(`the store did not answer in ${timeout} ms`);
    }, timeout).unref();
  });
  const taking = store.takeOver(session, reconnect.oldId, reconnect.arrayId, controller.signal)
    .catch((error: unknown) => `the store failed: ${String(error)}`);
  try {
    return await Promise.race([taking, late]);
  } finally {
    clearTimeout(timer);
  }
}

// In one process the app's own object moves as it is, not as JSON.
function moveLocal(old: AnySession, session: AnySession, arrayId: number): SavedSession {
  old.acknowledge(arrayId);
  for (const json of old.unacknowledged()) session.sendJson(json);
  for (const room of old.rooms) void session.join(room);
  if (old.hasData) session.data = old.data;
  return { maps: old.recovery?.maps ?? 0, data: null };
}
