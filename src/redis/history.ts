// # History: what Redis keeps so a session can outlive its process
//
// The core's `recovery.ts` decides *when* a session is saved and what a
// takeover must replay; this module is *where*: the keys, and the Lua
// scripts that change them atomically. Two kinds of state, both expiring:
//
// | key | type | holds |
// |---|---|---|
// | `bc:s:<sid>` | stream | the session's unacknowledged arrays, entry id `<arrayId>-1` |
// | `bc:s:<sid>:m` | hash | `next` array id, `maps`, `data`, `rooms`, `pos`, `ver`; marks |
// | `bc:h:<room>` | stream | the room's last broadcasts, entry id `<offset>-1` |
// | `bc:h:<room>:m` | hash | the room's `epoch` and last `offset` |
//
// Entry ids *are* array ids and offsets, so "everything after `OAID`" is
// one `XRANGE` from `OAID+1`, and acknowledging is one `XTRIM MINID`.
// A session's hash may also carry a mark that forbids a takeover: `taken`
// (another process has it; the hash is then a tombstone), `lost` (Redis
// lost it while the session lived) or `gap` (a save went missing).
//
// A session in the lobby whose client has acknowledged array 40, as
// `redis-cli` would show its keys (the stream's field is `j`, the JSON
// text of each array; the room's is `b`, a broadcast as `wire.ts` lays it
// out after its first line):
//
// ```text illustrative
// bc:s:n2.Qm9v…     XRANGE   41-1 j {"t":"hi"}        42-1 j ["noop"]
// bc:s:n2.Qm9v…:m   HGETALL  next 43  maps 17  rooms ["lobby"]  ver ""
//                            pos {"lobby":"k3J9w_Qz:58"}  data {"user":"ada"}
// bc:h:lobby        XRANGE   57-1 b [["lobby"],[],[]]\n{"n":6}
//                            58-1 b [["lobby"],[],[]]\n{"n":7}
// bc:h:lobby:m      HGETALL  epoch k3J9w_Qz  offset 58
// ```
//
// ## Room history, Centrifugo's way
//
// A room broadcast is given the next offset of its room and appended to
// the room's stream in the same script that publishes it, so the order
// of offsets is the order every process hears them in:
//
// ```text illustrative
// n1: channel.to('lobby').send({n:7})
//     EVALSHA room … → HINCRBY bc:h:lobby:m offset 1   → 58
//                    → XADD bc:h:lobby MAXLEN ~ 1000 58-1 b …
//                    → PUBLISH bc:room:lobby "B n1 k3J9w_Qz 58\n[["lobby"],[],[]]\n{"n":7}"
// n1, n2 (members of lobby) deliver it, and remember: lobby is at k3J9w_Qz:58
// ```
//
// The *epoch* is a random word made when the room's state is created. If
// Redis loses it (a restart without persistence, an eviction, or no
// process refreshing the room and nobody broadcasting to it for longer
// than its keys live), the next broadcast or join starts a new epoch, and
// a session that saved `k3J9w_Qz:58` can tell its gap is not held,
// instead of replaying the wrong messages.
//
// With history on, a room broadcast reaches even this process's own
// members through Redis, one round trip later, so that every process
// delivers a room's broadcasts in offset order: that order is what a
// saved position means.
/** Redis keys and scripts for session recovery and room history. @module */
import { createHash, randomBytes } from 'node:crypto';
import type {
  RecoveryOptions, RecoveryStore, SavedSession, SessionRecord,
} from '../recovery.ts';
import { NOOP_JSON } from '../encoding.ts';
import type { Broadcast } from '../rooms.ts';
import type { Session } from '../session.ts';
import { decodeBroadcast } from './wire.ts';

// ## What history needs from Redis and from the adapter
//
// The adapter hands over its publishing client: a connection that is
// subscribed to channels may run no other commands, so scripts never go
// over the subscriber. And it lends `join` and `leave`, so that a
// takeover's rooms are joined the way the app's are, subscription and all.
/** The Redis calls history makes. */
export interface ScriptRunner {
  /** Connected and usable. */
  readonly isReady: boolean;
  /** EVALSHA. */
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** EVAL, when Redis does not have the script yet. */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/** What history asks of the adapter it serves. */
export interface HistoryHost {
  /** Joins `session` to `room` (a takeover restores rooms). */
  join(session: Session<unknown, unknown, object>, room: string): Promise<void>;
  /** Leaves `room` (a takeover that failed undoes its joins). */
  leave(session: Session<unknown, unknown, object>, room: string): Promise<void>;
  /** Gives a room broadcast, heard or read back in offset order, to this process's members. */
  pass(message: Broadcast, room: string, position: Position): void;
  /** Says that broadcasts this process missed in `room` could not be read back, and why. */
  missed(room: string, why: string): void;
}

// A room's position: which history, and how far along it.
/** Where a room's history stands: its epoch, and the offset of a broadcast in it. */
export interface Position {
  /** Random, new whenever the room's history was lost. */
  readonly epoch: string;
  /** Counts the room's broadcasts from 1. */
  readonly offset: number;
}

// ## The scripts
//
// Every change to these keys is a Lua script, because Redis runs a script
// whole before any other command: a takeover and a save can never
// interleave, and a room's offsets are handed out and published in one
// order. Each is sent by its SHA-1 (`EVALSHA`), and in full only the
// first time a Redis has not seen it (`NOSCRIPT`, after a restart or a
// `SCRIPT FLUSH`; see `run` below). Array ids and offsets stay far below
// 2^53, so Lua's numbers hold them exactly.
class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

// ### `save`
//
// One call for many sessions, two keys each. `ARGV[1]` is the keys'
// lifetime; then each session's arguments follow, from `at`:
//
// | `ARGV[at + …]` | holds |
// |---|---|
// | 0 | `1` for the session's first save, which creates its state |
// | 1, 2 | the first new array's id, and how many arrays follow |
// | 3 | the newest array id the client acknowledged (`-1`: none) |
// | 4 | maps delivered to the app so far |
// | 5, 6 | `1` if `data` changed, and its JSON |
// | 7, 8 | the rooms, and the position in each (JSON) |
// | 9 | `appVersion` (`CVER`), or empty |
// | 10 | `next` as the last save left it (`expect` in `recovery.ts`) |
// | 11 … | the arrays' JSON texts, oldest first |
//
// A session whose state says `taken` answers 0: another process has it.
// One whose `next` is not what the server expects lost a save (Redis was
// away): it is marked with `gap`, and a takeover will refuse it rather
// than replay around the hole. State that vanished under a live session
// (an eviction, a restart) is marked `lost` and made again, so later
// saves go on working while a takeover refuses it.
//
// An entry's id is `<arrayId>-1`: Redis refuses `0-0` as a stream id,
// and the handshake is array 0. Trimming at `<acked + 1>-0` then keeps
// exactly the arrays after the newest one acknowledged.
//
// Expiry is set when the state is made; the refresh timer keeps it
// from then on, so a save costs no `PEXPIRE`.
const SAVE = new Script(`
local ttl = ARGV[1]
local at = 2
local out = {}
for s = 1, #KEYS / 2 do
  local stream, meta = KEYS[2 * s - 1], KEYS[2 * s]
  local first, count = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local acked = tonumber(ARGV[at + 3])
  if redis.call('HEXISTS', meta, 'taken') == 1 then
    out[s] = 0
  else
    local fresh = ARGV[at] == '1'
    if not fresh and redis.call('EXISTS', meta) == 0 then
      redis.call('HSET', meta, 'lost', '1')
      fresh = true
    elseif not fresh and tonumber(redis.call('HGET', meta, 'next')) ~= tonumber(ARGV[at + 10]) then
      redis.call('HSET', meta, 'gap', '1')
    end
    for k = 0, count - 1 do
      redis.call('XADD', stream, (first + k) .. '-1', 'j', ARGV[at + 11 + k])
    end
    if acked >= 0 then redis.call('XTRIM', stream, 'MINID', (acked + 1) .. '-0') end
    if count > 0 then redis.call('HSET', meta, 'next', first + count) end
    redis.call('HSET', meta, 'maps', ARGV[at + 4], 'rooms', ARGV[at + 7],
      'pos', ARGV[at + 8], 'ver', ARGV[at + 9])
    if ARGV[at + 5] == '1' then redis.call('HSET', meta, 'data', ARGV[at + 6]) end
    if fresh then
      redis.call('PEXPIRE', stream, ttl)
      redis.call('PEXPIRE', meta, ttl)
    end
    out[s] = 1
  end
  at = at + 11 + count
end
return out`);

// ### `take`, `drop`
//
// `take` reads a session's state and replaces it with a tombstone, in
// one step, so two processes can never both take it over, and the old
// owner's next save learns it lost the session. The state is gone from
// then on, whatever the takeover finds wrong with it afterwards: it is
// handed over **at most once**. The tombstone lives as long as state
// does, so a client that reconnects twice within the window is told why.
const TAKE = new Script(`
if redis.call('EXISTS', KEYS[2]) == 0 then return {'none'} end
if redis.call('HEXISTS', KEYS[2], 'taken') == 1 then return {'taken'} end
local meta = redis.call('HGETALL', KEYS[2])
local entries = redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'taken', '1')
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'ok', meta, entries}`);

// `drop`: a session ended for good. Its tombstone, if it has one, stays.
const DROP = new Script(`
redis.call('DEL', KEYS[1])
if redis.call('HEXISTS', KEYS[2], 'taken') == 0 then redis.call('DEL', KEYS[2]) end
return 1`);

// ### `room`, `position`, `since`
//
// `room`: the next offset, the entry, the publication, one step. A room
// whose state was lost starts a new epoch, and its stale stream goes.
// Its arguments: a fresh epoch (used only if the room has none), the
// `history` bound, the keys' lifetime, the room's channel, the origin
// node, and the broadcast's audience line and JSON (`broadcastPayload`).
// `MAXLEN ~` lets Redis trim in whole blocks, so a full room may keep
// somewhat more than `history` entries, never fewer.
const ROOM = new Script(`
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[2], 'offset', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], offset .. '-1', 'b', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], 'B ' .. ARGV[5] .. ' ' .. epoch .. ' ' .. offset .. '\\n' .. ARGV[6])
return offset`);

// `position`: where a room is now, creating its epoch if it has none
// (at offset 0, so the room's first broadcast is 1 either way).
const POSITION = new Script(`
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', 0)
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {epoch, redis.call('HGET', KEYS[2], 'offset') or '0'}`);

// `since`: a room's position and its entries from one offset on. It only
// reads, and never makes an epoch: a room with none answers `none`.
const SINCE = new Script(`
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then return {'none'} end
local offset = redis.call('HGET', KEYS[2], 'offset') or '0'
return {epoch, offset, redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+')}`);

// `refresh`: live sessions and rooms in use must not expire. A key that
// does not exist is skipped (`PEXPIRE` makes nothing).
const REFRESH = new Script(`
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[1]) end
return #KEYS`);

// A stream entry as node-redis hands back a raw `XRANGE` reply from a
// script: its id, then its fields and values, flat (`["58-1", ["b", …]]`).
type Entry = [string, string[]];

// How many sessions one `save` call carries, and keys one refresh: small
// enough that no single script holds Redis for long, since every other
// client of that Redis waits while one runs.
const SESSIONS_PER_CALL = 64;
const KEYS_PER_REFRESH = 512;

// What a takeover the server stopped waiting for says (`takeOver` below),
// should anyone still listen.
const ABANDONED = 'abandoned: the server stopped waiting';

// ## The store
//
// One per adapter, made with it, and idle until the server's `recovery`
// option turns it on: the `Ledger` (`recovery.ts`) calls `start` when the
// server is built, and from then on `enabled` is true and the adapter
// sends room broadcasts through `publish` below.
/** Session state and room history in Redis; the Redis adapter's `recovery`. */
export class History implements RecoveryStore {
  private settings: Required<RecoveryOptions> | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private liveIds: () => Iterable<string> = () => [];

  // The rooms this process has members in, and how far it has heard each;
  // and the rooms whose first join here is still reading that position.
  private readonly positions = new Map<string, Position>();
  private readonly reads = new Map<string, Promise<void>>();
  // Sessions being taken over: live room broadcasts wait here until the
  // replay is queued, and then pass only if newer than what was replayed.
  // The floors are how far each replayed room went, per session. Both are
  // weak maps, so a session that closes takes its entries with it.
  private readonly held = new WeakMap<Session<unknown, unknown, object>, Holding>();
  private readonly floors = new WeakMap<Session<unknown, unknown, object>, Map<string, Position>>();

  constructor(
    private readonly redis: ScriptRunner,
    private readonly prefix: string,
    private readonly host: HistoryHost,
  ) {}

  /** True once the server turned recovery on. */
  get enabled(): boolean {
    return this.settings !== null;
  }

  // The keys are refreshed every third of the window (at most once a
  // second), and live one refresh period longer than the window: when a
  // process dies just before a refresh, its sessions' state still has the
  // whole `window` left. With `window: 120000`, keys live 160 s and are
  // refreshed every 40 s; with `window: 1500`, they live 2.5 s and are
  // refreshed every second.
  private get ttl(): string {
    return String(this.settings!.window + this.refreshEvery);
  }

  private get refreshEvery(): number {
    return Math.max(1000, Math.floor(this.settings!.window / 3));
  }

  start(options: Required<RecoveryOptions>, liveIds: () => Iterable<string>): void {
    this.settings = options;
    this.liveIds = liveIds;
    this.refreshTimer = setInterval(() => void this.refresh(), this.refreshEvery).unref();
  }

  /** Stops the refresh timer. */
  close(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
  }

  private sessionKeys(id: string): [string, string] {
    const stream = `${this.prefix}:s:${id}`;
    return [stream, `${stream}:m`];
  }

  private roomKeys(room: string): [string, string] {
    const stream = `${this.prefix}:h:${room}`;
    return [stream, `${stream}:m`];
  }

  // Every script goes through here. Without a ready connection it fails
  // at once, rather than wait in the client's offline queue for a Redis
  // that may not come back in time.
  private run(script: Script, keys: string[], args: string[]): Promise<unknown> {
    if (!this.redis.isReady) return Promise.reject(new Error('Redis unavailable'));
    const options = { keys, arguments: args };
    return this.redis.evalSha(script.sha, options).catch((error: unknown) => {
      if (!String(error).includes('NOSCRIPT')) throw error;
      return this.redis.eval(script.source, options);
    });
  }

  // ## Saving sessions
  //
  // The ledger hands over every session that changed in one tick. They go
  // in calls of `SESSIONS_PER_CALL`, all sent at once, and the answers come
  // back in the records' order: true saved, false taken over. A call that
  // fails fails the whole save; the ledger then releases the arrays
  // unsaved, and a session whose new arrays were in a call that did not
  // land is marked `gap` by its next save, since its `next` did not move.
  async save(records: readonly SessionRecord[]): Promise<readonly boolean[]> {
    const calls: Promise<unknown>[] = [];
    for (let start = 0; start < records.length; start += SESSIONS_PER_CALL) {
      const keys: string[] = [];
      const args = [this.ttl];
      for (const record of records.slice(start, start + SESSIONS_PER_CALL)) {
        keys.push(...this.sessionKeys(record.session.id));
        args.push(...this.saveArguments(record));
      }
      calls.push(this.run(SAVE, keys, args));
    }
    const answers = await Promise.all(calls);
    return answers.flatMap((answer) => (answer as number[]).map((ok) => Number(ok) === 1));
  }

  private saveArguments(record: SessionRecord): string[] {
    const { session } = record;
    return [
      record.create ? '1' : '0',
      String(record.firstId),
      String(record.texts.length),
      String(record.acked),
      String(record.maps),
      record.data === null ? '0' : '1',
      record.data ?? '',
      JSON.stringify([...session.rooms]),
      JSON.stringify(this.positionsOf(session)),
      session.appVersion ?? '',
      String(record.expect),
      ...record.texts,
    ];
  }

  // A session's position in each of its rooms: how far this process has
  // heard the room, or, for a session still catching up, how far its
  // replay went, if that is further in the same history. Once the process
  // has heard past a replay, the replay's floor is no longer needed.
  private positionsOf(session: Session<unknown, unknown, object>): Record<string, string> {
    const positions: Record<string, string> = {};
    const floors = this.floors.get(session);
    for (const room of session.rooms) {
      const heard = this.positions.get(room);
      const floor = floors?.get(room);
      const ahead = floor !== undefined && (heard === undefined ||
        (heard.epoch === floor.epoch && heard.offset < floor.offset));
      const position = ahead ? floor : heard;
      if (floor && !ahead) floors!.delete(room);
      if (position) positions[room] = `${position.epoch}:${position.offset}`;
    }
    if (floors && floors.size === 0) this.floors.delete(session);
    return positions;
  }

  // A session that ended for good loses its keys now (`drop`); one that
  // may be asked for again (`keep`), or that ended while Redis was away,
  // is left to expire.
  end(sessionId: string, keep: boolean): void {
    if (keep || !this.redis.isReady) return;
    this.run(DROP, this.sessionKeys(sessionId), []).catch(() => {
      // Left to expire.
    });
  }

  // The refresh covers both keys of every session the ledger still holds
  // open and of every room this process holds a position for. Batches go
  // one after another, and a failed one is skipped: the next refresh, a
  // third of the window later, tries again before any key expires.
  private async refresh(): Promise<void> {
    const keys: string[] = [];
    for (const id of this.liveIds()) keys.push(...this.sessionKeys(id));
    for (const room of this.positions.keys()) keys.push(...this.roomKeys(room));
    for (let start = 0; start < keys.length; start += KEYS_PER_REFRESH) {
      await this.run(REFRESH, keys.slice(start, start + KEYS_PER_REFRESH), [this.ttl]).catch(
        () => {},
      );
    }
  }

  // ## Rooms: publishing and hearing
  //
  // `publish` answers one Promise per room; one that rejects means Redis
  // did not take the broadcast for that room, and the adapter delivers it
  // to this process's members of that room only, as without history.
  //
  // Every member of a room on this process is given the room's broadcasts
  // in offset order, as they are heard. So how far this process has heard
  // a room is how far each member here has been given it (a broadcast that
  // left a member out was never owed to it), and one position per room,
  // in `positions`, is what every session in it saves. A room gets its
  // position when a member joins (`joined`), and moves on with each
  // broadcast heard (`heard`).
  //
  // Until a room's first join here has read its position, a member's save
  // would carry the room without one, and a takeover of that save fails
  // whole (`no saved position in room …`): a process killed a moment after
  // a `join` would lose the session's arrays, data and every other room.
  // So the ledger asks `ready` before it saves a session, and one in such
  // a room is saved once the read is back (or after the `timeout` option,
  // without the position, if Redis is that slow).
  //
  // If the read at the join fails (Redis away), the room has no position
  // here until another member joins here; sessions saved meanwhile carry
  // none for it, and a takeover refuses them (`no saved position in room
  // …`). A broadcast this process never heard (its subscriber was away
  // when it went out) is read back from the history and given to the
  // members here in its place (see "Filling what pub/sub dropped").
  // Without a position, a room gets no such filling either.
  /** Appends a room broadcast to each room's history and publishes it. */
  publish(origin: string, message: Broadcast, payload: string,
    channelOf: (room: string) => string): Promise<void>[] {
    return message.rooms!.map(async (room) => {
      const args = [newEpoch(), String(this.settings!.history), this.ttl, channelOf(room), origin,
        payload];
      await this.run(ROOM, this.roomKeys(room), args);
    });
  }

  // A room left by its last member here while its read was on its way
  // (`left` drops the read) gets no position from it: one kept would be
  // refreshed, with its keys in Redis, for as long as the process runs.
  /** A member joined `room`: learn where its history is, unless this process knows already. */
  async joined(room: string): Promise<void> {
    if (this.positions.has(room)) return;
    const answer = await this.run(POSITION, this.roomKeys(room), [newEpoch(), this.ttl]);
    const [epoch, offset] = answer as [string, string];
    if (this.positions.has(room) || !this.reads.has(room)) return;
    this.positions.set(room, { epoch, offset: Number(offset) });
  }

  /** The first join of `room` here is reading its position (`read`, bounded by the adapter). */
  reading(room: string, read: Promise<void>): void {
    if (this.positions.has(room)) return;
    this.reads.set(room, read);
    void read.then(() => {
      if (this.reads.get(room) === read) this.reads.delete(room);
    });
  }

  /** Null when `session` can be saved now, else when it can: see `RecoveryStore.ready`. */
  ready(session: Session<unknown, unknown, object>): Promise<unknown> | null {
    if (this.reads.size === 0) return null;
    let waits: Promise<void>[] | null = null;
    for (const room of session.rooms) {
      const read = this.positions.has(room) ? undefined : this.reads.get(room);
      if (read !== undefined) (waits ??= []).push(read);
    }
    return waits === null ? null : Promise.all(waits);
  }

  /** This process has no member left in `room`. */
  left(room: string): void {
    this.positions.delete(room);
    this.reads.delete(room);
    this.filling.delete(room);
    this.readBack.delete(room);
  }

  // ## Filling what pub/sub dropped
  //
  // Pub/sub keeps nothing: a broadcast published while this process's
  // subscriber was away (Redis restarted, or the connection was cut)
  // never arrives here. But a room's offsets count up by one, so a missed
  // broadcast shows as a jump, and the room's history still holds it:
  //
  // ```text illustrative
  // B n1 Xk3fQ2a9 41      heard: the room is at 41 here
  // B n1 Xk3fQ2a9 44      heard: 42 and 43 never came
  // ```
  //
  // So 42 and 43 are read back (`since`) and passed on first, then 44;
  // whatever is heard meanwhile waits behind them, so members get the
  // room's broadcasts in offset order, each once. A room that went quiet
  // during the outage shows no jump until it speaks again, so when the
  // subscriber is back every room is read from where this process left it
  // (`resume`). What the history cannot give back (trimmed to `history`
  // entries, lost with its epoch, or not read within `timeout`) is
  // reported, and delivery goes on after it.
  //
  // > **Note (memory):** broadcasts heard during a read wait in a list,
  // > for at most `timeout` (2 s by default), and only while a read runs.
  // > A read brings back at most the room's `history` entries.
  /** A room broadcast heard at `position`: passes it on in offset order, filling any gap. */
  receive(room: string, position: Position, message: Broadcast): void {
    const waiting = this.filling.get(room);
    if (waiting !== undefined) {
      waiting.push({ position, message });
      return;
    }
    if (this.alreadyRead(room, position)) return;
    const known = this.positions.get(room);
    if (known !== undefined && known.epoch === position.epoch &&
      position.offset > known.offset + 1) {
      this.fill(room, known, [{ position, message }]);
      return;
    }
    this.heard(room, position);
    this.host.pass(message, room, position);
  }

  /** The subscriber is back: reads what each room said while it was away. */
  resume(): void {
    for (const [room, known] of this.positions) {
      if (!this.filling.has(room)) this.fill(room, known, []);
    }
  }

  // Rooms being read, with what is heard meanwhile; and the offsets the
  // last read of each room gave, `(after, upTo]`. A read can get ahead of
  // pub/sub (the history is written before the broadcast is published),
  // so some of those may still be heard, late: they are not given twice.
  // Once a later offset is heard, pub/sub has nothing older left to bring.
  private readonly filling = new Map<string, Heard[]>();
  private readonly readBack = new Map<string, { epoch: string; after: number; upTo: number }>();

  private alreadyRead(room: string, position: Position): boolean {
    const range = this.readBack.get(room);
    if (range === undefined) return false;
    if (range.epoch === position.epoch && position.offset <= range.upTo) {
      return position.offset > range.after;
    }
    this.readBack.delete(room);
    return false;
  }

  private fill(room: string, from: Position, waiting: Heard[]): void {
    this.filling.set(room, waiting);
    void this.readAfter(room, from).then((found) => {
      if (this.filling.get(room) !== waiting) return;
      this.filling.delete(room);
      if (typeof found === 'string') {
        // Nothing was read: what came before the first broadcast that
        // waited is gone for good, and delivery goes on from there (it
        // would otherwise start another read, and another).
        this.host.missed(room, found);
        const now = this.positions.get(room);
        const next = waiting[0]?.position;
        if (now !== undefined && next?.epoch === now.epoch && next.offset > now.offset + 1) {
          this.positions.set(room, { epoch: now.epoch, offset: next.offset - 1 });
        }
      } else {
        // The read reaches the newest broadcast, so only its start can
        // fall short: by what the history has trimmed.
        const first = found[0]?.position.offset ?? from.offset + 1;
        const lost = first - from.offset - 1;
        if (lost > 0) this.host.missed(room, `${lost} broadcast(s) no longer in its history`);
        for (const { position, message } of found) this.passIfNewer(room, position, message);
        const upTo = found.at(-1)?.position.offset;
        if (upTo) this.readBack.set(room, { epoch: from.epoch, after: from.offset, upTo });
      }
      for (const { position, message } of waiting) this.receive(room, position, message);
    });
  }

  private passIfNewer(room: string, position: Position, message: Broadcast): void {
    const now = this.positions.get(room);
    if (now === undefined || now.epoch !== position.epoch || position.offset <= now.offset) return;
    this.heard(room, position);
    this.host.pass(message, room, position);
  }

  // The broadcasts after `from`, in order, or why they cannot be had.
  // Entries the history no longer holds are left out (the caller counts
  // them); a new epoch means the whole history was lost.
  private readAfter(room: string, from: Position): Promise<Heard[] | string> {
    const { timeout } = this.settings!;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(`history not read within ${timeout} ms`), timeout);
      timer.unref();
      const settle = (result: Heard[] | string): void => {
        clearTimeout(timer);
        resolve(result);
      };
      this.entriesAfter(room, from.offset).then(({ epoch, entries }) => {
        if (epoch !== from.epoch) return settle('its history was lost (new epoch)');
        const found: Heard[] = [];
        for (const { offset, message } of entries) {
          if (message !== null) found.push({ position: { epoch, offset }, message });
        }
        settle(found);
      }).catch((error: unknown) => settle(`history not read: ${String(error)}`));
    });
  }

  // Pub/sub may still carry broadcasts older than a position just read
  // with `joined`: a position only moves forward within its epoch. A new
  // epoch replaces it outright, since the old one's offsets are gone.
  /** A room broadcast heard at `position`: remember how far the room is. */
  heard(room: string, position: Position): void {
    const known = this.positions.get(room);
    if (known === undefined) return;
    if (known.epoch === position.epoch && known.offset >= position.offset) return;
    this.positions.set(room, position);
  }

  // Each session a heard broadcast is for comes through here: a session
  // being taken over holds it for later; one that has caught up by replay
  // skips what the replay already gave it. For a few seconds after a
  // takeover (pub/sub runs a moment behind Redis), every delivery is
  // checked; otherwise the adapter queues directly.
  //
  // Why a replayed session can be offered what it already has: the replay
  // reads the room's stream, and a broadcast written there a moment before
  // may still be on its way through pub/sub. Its offset is at or below the
  // *floor* the replay reached, so it is skipped. The check lasts
  // `CHECK_MS` (10 s) after the latest takeover that succeeded; a
  // broadcast that pub/sub delivers later than that would be given twice.
  //
  // > **Note (speed):** while the check lasts, every member's delivery of
  // > every room broadcast on this process first looks up its holding and
  // > its floors. That is from the start of a takeover here to 10 s after
  // > its end; the rest of the time it costs one clock read per broadcast.
  /** Whether deliveries must go through {@link History.offer} now. */
  get filtering(): boolean {
    return this.holding > 0 || Date.now() < this.checkUntil;
  }

  private holding = 0;
  private checkUntil = 0;

  /** Queues a heard room broadcast on `session`, unless held or already replayed. */
  offer(session: Session<unknown, unknown, object>, room: string, position: Position,
    json: string): void {
    const held = this.held.get(session);
    if (held !== undefined) return held.add({ room, position, json });
    const floor = this.floors.get(session)?.get(room);
    if (floor && floor.epoch === position.epoch && position.offset <= floor.offset) return;
    session.sendJson(json);
  }

  // ## Reading a room's history
  //
  // The same history serves apps whose clients resume on their own
  // (WebChannel's, Firestore's): a client says what it saw last, and the
  // app reads what the room said since. See the guide, "Recovery".
  //
  // It reads, and changes nothing: no epoch is made for a room that has
  // none, and nothing is filtered by audience, since the app decides what
  // its client is owed. An entry that does not decode (written by someone
  // else on the same prefix) reads as `null`.
  /**
   * What `room` still holds after offset `after` (everything, by default): each broadcast's
   * offset and JSON text, and where the room is now. Null when the room has no history.
   */
  async read(room: string, after = 0): Promise<RoomHistory | null> {
    const { epoch, offset, entries } = await this.entriesAfter(room, after);
    if (epoch === 'none') return null;
    const messages = entries.map((entry) => ({
      offset: entry.offset,
      json: entry.message?.json ?? 'null',
    }));
    return { epoch, offset, messages };
  }

  // Every reader of a room's history (`read` above, the read-back of what
  // pub/sub dropped, a takeover's replay) asks the same of `since`: the
  // room's epoch (`none` when it has none), its latest offset, and each
  // entry after `after`, oldest first, with its broadcast decoded (null
  // for one that does not decode).
  private async entriesAfter(room: string, after: number): Promise<RoomEntries> {
    const answer = await this.run(SINCE, this.roomKeys(room), [String(after + 1)]);
    const [epoch, offset = '0', entries = []] = answer as [string, string?, Entry[]?];
    return {
      epoch,
      offset: Number(offset),
      entries: entries.map((entry) => ({
        offset: entryId(entry),
        message: decodeBroadcast(entry[1][1] ?? ''),
      })),
    };
  }

  // ## Taking a session over
  //
  // Four steps, and nothing is queued unless all of them succeed:
  //
  // 1. `take`: the old state, and a tombstone in its place;
  // 2. check the old arrays after `OAID` are all there, id by id;
  // 3. join the old rooms, holding live broadcasts for the session;
  // 4. read each room's history since the saved position, and check it
  //    starts right there, in the same epoch.
  //
  // Then the old arrays, each room's missed broadcasts, and whatever was
  // held and is newer are queued, in that order. The server may stop
  // waiting at any step (`signal`, after the `timeout` option): the steps
  // check it, and from the last check to the queueing only microtasks
  // run, which no timer can come between.
  //
  // The rooms are joined *before* their history is read, so that nothing
  // falls between the two: a broadcast is either in the stream when it is
  // read, or heard live afterwards (and held), or both, and the replay's
  // floor removes the overlap.
  //
  // The old arrays start after `OAID`, and never at 0: array 0 is the old
  // session's handshake, and the new session has sent its own. What the
  // steps find wrong comes back as a sentence, which the core keeps as
  // `session.recoveryFailure`; the session then starts fresh.
  async takeOver(session: Session<unknown, unknown, object>, oldId: string, arrayId: number,
    signal: AbortSignal): Promise<SavedSession | string> {
    if (!this.redis.isReady) return 'Redis unavailable: nothing could be recovered';
    const from = Math.max(arrayId + 1, 1);
    let answer: unknown;
    try {
      answer = await this.run(TAKE, this.sessionKeys(oldId), [String(from), this.ttl]);
    } catch (error) {
      return `Redis failed: ${String(error)}`;
    }
    if (signal.aborted) return ABANDONED;
    const [status, flat, entries] = answer as [string, string[], Entry[]];
    if (status === 'none') {
      return `no saved state for ${oldId} (the recovery window passed, or Redis lost it)`;
    }
    if (status === 'taken') return `already taken over: ${oldId} (the client reconnected twice)`;
    const meta = pairs(flat);
    if (meta.lost !== undefined) return `state of ${oldId} was lost by Redis and is incomplete`;
    if (meta.gap !== undefined) return `arrays of ${oldId} are not all saved (Redis was away)`;
    const next = Number(meta.next ?? 0);
    const arrays = arraysAfter(from, next, entries);
    if (arrays === null) {
      return `arrays of ${oldId} are not saved in order (${from} to ${next - 1})`;
    }
    const rooms = JSON.parse(meta.rooms ?? '[]') as string[];
    const positions = JSON.parse(meta.pos ?? '{}') as Record<string, string>;
    const held = new Holding();
    this.held.set(session, held);
    this.holding++;
    try {
      const replay = await this.catchUp(session, oldId, rooms, positions, held, signal);
      if (typeof replay === 'string') return replay;
      for (const json of arrays) session.sendJson(json);
      const floors = new Map<string, Position>();
      for (const gap of replay) {
        for (const json of gap.texts) session.sendJson(json);
        floors.set(gap.room, gap.position);
      }
      this.floors.set(session, floors);
      this.checkUntil = Date.now() + CHECK_MS;
    } finally {
      this.held.delete(session);
      this.holding--;
    }
    for (const item of held.items) this.offer(session, item.room, item.position, item.json);
    return { maps: Number(meta.maps ?? 0), data: meta.data ?? null };
  }

  // Steps 3 and 4. On any failure the rooms joined are left again, so the
  // fresh session the client gets instead is in none of them: the app's
  // `onConnect` decides its rooms, as for any new session.
  private async catchUp(session: Session<unknown, unknown, object>, oldId: string, rooms: string[],
    positions: Record<string, string>, held: Holding, signal: AbortSignal):
    Promise<RoomGap[] | string> {
    try {
      for (const room of rooms) await this.host.join(session, room);
      const replay: RoomGap[] = [];
      for (const room of rooms) {
        const gap = await this.since(room, positions[room], session, oldId);
        if (typeof gap === 'string') throw new Error(gap);
        replay.push(gap);
      }
      if (signal.aborted) throw new Error(ABANDONED);
      if (held.overflowed) throw new Error('too many broadcasts arrived during the takeover');
      return replay;
    } catch (error) {
      for (const room of rooms) void this.host.leave(session, room);
      return error instanceof Error ? error.message : String(error);
    }
  }

  // The broadcasts a room published after a saved position, as this
  // session would have received them: not those that excluded it (under
  // its old id or its new one), and, for a broadcast to several rooms,
  // only through the first of them the session is in, as live delivery
  // does (`rooms.ts`).
  //
  // The first entry read must be the one right after the saved offset:
  // say the session saved `k3J9w_Qz:58` and the room, bounded by
  // `history`, now starts at 60; offset 59 is gone, and replaying 60 on
  // would hide the hole, so the takeover fails instead. A room with no
  // entry after the save must stand exactly at it. The floor returned is
  // the last offset read, whether or not it reached this session.
  private async since(room: string, saved: string | undefined,
    session: Session<unknown, unknown, object>, oldId: string): Promise<RoomGap | string> {
    if (saved === undefined) return `no saved position in room ${room}`;
    const colon = saved.lastIndexOf(':');
    const epoch = saved.slice(0, colon);
    const offset = Number(saved.slice(colon + 1));
    const { epoch: now, offset: last, entries } = await this.entriesAfter(room, offset);
    if (now !== epoch) return `history of room ${room} was lost (new epoch)`;
    const first = entries[0]?.offset ?? last + 1;
    if (first !== offset + 1) {
      return `history of room ${room} no longer holds offset ${offset + 1}`;
    }
    const texts: string[] = [];
    let reached = offset;
    for (const { offset: at, message } of entries) {
      reached = at;
      if (message !== null && reaches(message, room, session, oldId)) texts.push(message.json);
    }
    return { room, texts, position: { epoch, offset: reached } };
  }
}

// A room's history after some offset, as `since` answers (`entriesAfter`).
interface RoomEntries {
  readonly epoch: string;
  readonly offset: number;
  readonly entries: ReadonlyArray<{ readonly offset: number; readonly message: Broadcast | null }>;
}

// A room broadcast heard, waiting behind a read of its room's history.
interface Heard {
  readonly position: Position;
  readonly message: Broadcast;
}

// ## Held broadcasts
//
// Live broadcasts held for a session being taken over, up to a bound: a
// takeover that takes so long that this many arrive fails instead.
// `CHECK_MS` is how long after a takeover every delivery is still checked
// against the replay's floors (see `filtering`).
//
// > **Note (memory):** an item is a small object pointing at the
// > broadcast's JSON text, which every recipient on this process shares;
// > 10,000 of them cost well under a megabyte, and only while the
// > takeover runs.
const MAX_HELD = 10_000;
const CHECK_MS = 10_000;

class Holding {
  readonly items: Array<{ room: string; position: Position; json: string }> = [];
  overflowed = false;

  add(item: { room: string; position: Position; json: string }): void {
    if (this.items.length < MAX_HELD) this.items.push(item);
    else this.overflowed = true;
  }
}

// ## What `read` returns
/** A room's history as {@link History.read} returns it. */
export interface RoomHistory {
  /** The history's epoch: a new one means everything before was lost. */
  readonly epoch: string;
  /** The offset of the room's latest broadcast (0 before any). */
  readonly offset: number;
  /** The broadcasts still held, oldest first. */
  readonly messages: readonly RoomMessage[];
}

/** One broadcast in a room's history. */
export interface RoomMessage {
  /** Its offset in the room. */
  readonly offset: number;
  /** Its JSON text, as the app sent it. */
  readonly json: string;
}

// A replayed room: its missed texts, and the position they reach.
interface RoomGap {
  readonly room: string;
  readonly texts: string[];
  readonly position: Position;
}

// ## Small helpers
//
// An epoch is 6 random bytes, 8 characters of base64url: it only has to
// differ from the room's earlier epochs, and 48 random bits make a repeat
// vanishingly unlikely.
function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

// The array id or offset in an entry id: `58-1` → 58.
function entryId(entry: Entry): number {
  return Number(entry[0].slice(0, entry[0].indexOf('-')));
}

// `HGETALL` from a script answers a flat list, `["next","43","maps","17",…]`.
function pairs(flat: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (let index = 0; index + 1 < flat.length; index += 2) result[flat[index]!] = flat[index + 1]!;
  return result;
}

// The old arrays from `from` up to `next - 1`, in order. An id missing
// between them was a heartbeat (saves without a gap mark skip only
// those); one past `next` cannot be. Heartbeats are not replayed.
function arraysAfter(from: number, next: number, entries: Entry[]): string[] | null {
  const texts: string[] = [];
  let last = from - 1;
  for (const entry of entries) {
    const id = entryId(entry);
    if (id <= last || id >= next) return null;
    last = id;
    const json = entry[1][1] ?? '';
    if (json !== NOOP_JSON) texts.push(json);
  }
  return texts;
}

// Whether live delivery would have given `message` to `session` through
// `room`: the same exclusions and first-room rule as `rooms.ts`, with the
// old id excluded as well as the new.
function reaches(message: Broadcast, room: string, session: Session<unknown, unknown, object>,
  oldId: string): boolean {
  if (message.exceptIds.includes(oldId) || message.exceptIds.includes(session.id)) return false;
  if (message.exceptRooms.some((except) => session.rooms.has(except))) return false;
  return message.rooms?.find((candidate) => session.rooms.has(candidate)) === room;
}
