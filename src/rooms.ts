// # Rooms: who hears a broadcast, and the adapter that knows
//
// A room is a name that sessions join and leave. A broadcast names rooms
// (or nobody in particular, meaning every session) and sessions or rooms
// to leave out, and goes to each session that matches, once:
//
// ```text
// rooms:   "lobby" = {A, B, C}     "mods" = {C, D}
// to(["lobby", "mods"]).except(B).send({ t: "hi" })
//          → A, C, D each queue [n, {"t":"hi"}] with their own next id n
//            (C is in both rooms and still gets it once; B is skipped)
// ```
//
// The message's JSON text is made once, here, for the whole broadcast.
// Each session still wraps it in its own array id, `[7,{"t":"hi"}]` for
// one and `[12,{"t":"hi"}]` for another, because array ids count per
// session: that is what acknowledgement and resending are built on.
//
// Who is in which room is the *adapter's* business. This module holds
// the contract every adapter keeps and the one that ships in the core,
// `MemoryAdapter`, for a single process. An adapter for many processes
// (the Redis one, `browserchannel-server/redis`) extends it: it keeps
// the local index this class keeps and adds the traffic between
// processes. That is why every answer that could need another process
// (`join`, `leave`, `sessionIds`) is a Promise even here, where it is
// already known.
/** Rooms, broadcasts and the adapter interface. @module */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Session } from './session.ts';
import type { RecoveryStore } from './recovery.ts';

// ## A broadcast, as it travels
//
// Everything an adapter needs to deliver a broadcast, in plain data, so
// that it can be published to another process as it is.
/** One broadcast: its JSON text and who should receive it. */
export interface Broadcast {
  /** The message's JSON text, made once for every recipient. */
  readonly json: string;
  /** Rooms it goes to, or `null` for every session. */
  readonly rooms: readonly string[] | null;
  /** Rooms whose members do not get it. */
  readonly exceptRooms: readonly string[];
  /** Session ids that do not get it. */
  readonly exceptIds: readonly string[];
}

/** Who a question about members is about: the same fields as a {@link Broadcast}, less the text. */
export type Audience = Omit<Broadcast, 'json'>;

// ## What the server lends an adapter
//
// The adapter is handed the server's registry of local sessions, where
// errors go, and this process's name. It never creates or closes sessions.
/** What the server gives an adapter when it is attached. */
export interface AdapterHost {
  /** This process's name (the `nodeId` option, or a random one). */
  readonly nodeId: string;
  /** The sessions this process holds, by id. */
  readonly sessions: ReadonlyMap<string, Session<unknown, unknown, object>>;
  /** Reports a failure the app should hear about (`channel.on('error')`). */
  error(error: unknown): void;
  /** Runs a request through this process's handler (a request relayed from another process). */
  handle(req: IncomingMessage, res: ServerResponse): void;
}

// ## Relaying a request to the process that owns its session
//
// An adapter for many processes may also carry requests: when a request
// names a session of another node (`SID=n2.…` reaching `n1`), the handler
// gives it to `relay` instead of answering `Unknown SID`, and the adapter
// streams the owner's answer back into `res` (see `redis/relay.ts`). The
// owner runs it through `AdapterHost.handle` as if it had arrived there.
/** Where a relayed request goes. */
export interface RelayTarget {
  /** The node id that owns the session (the text before the dot in `SID`). */
  readonly owner: string;
  /** The request's URL as the owner's handler should see it (`<base>/bind?…`). */
  readonly url: string;
  /** Largest body to carry, the `maxBodyBytes` option. */
  readonly maxBodyBytes: number;
}

// ## The contract
//
// The server calls `attach` once, when it is created, and `close` once,
// when it shuts down. In between, sessions join and leave through it, and
// broadcasts and member lists go through it. A session that closes leaves
// every room through `leaveAll`, synchronously: a closed session must
// never be delivered to.
/** Where room membership lives and how broadcasts reach sessions. */
export interface Adapter {
  /** Called once by the server before any other method. */
  attach(host: AdapterHost): void;
  /** Adds a session to a room; resolves once broadcasts from every process reach it. */
  join(session: Session<unknown, unknown, object>, room: string): Promise<void>;
  /** Removes a session from a room; resolves once broadcasts from every process stop. */
  leave(session: Session<unknown, unknown, object>, room: string): Promise<void>;
  /** Removes a closing session from all its rooms, at once. */
  leaveAll(session: Session<unknown, unknown, object>): void;
  /** Delivers a broadcast to every matching session, here and elsewhere. */
  broadcast(message: Broadcast): void;
  /** Ids of the sessions, here and elsewhere, that a broadcast to `audience` would reach. */
  sessionIds(audience: Audience): Promise<string[]>;
  /** Stops whatever the adapter runs (connections, timers). */
  close(): Promise<void>;
  /**
   * Optional: carries a request for another node's session to that node and its answer back.
   * Rejects with a `ProtocolError` to answer with an error (`Unknown SID`, `503`). An adapter
   * with `relay` makes the server give itself a node id when the `nodeId` option is not set.
   */
  relay?(target: RelayTarget, req: IncomingMessage, res: ServerResponse): Promise<void>;
  /**
   * Optional, with `relay`: a client reconnected here naming its old session (`OSID`, `OAID`)
   * of another node; that node acknowledges up to `arrayId` and closes it with `Reconnected`.
   */
  retire?(sessionId: string, arrayId: number | null): void;
  /** Optional: where sessions are saved for the `recovery` option (see `recovery.ts`). */
  readonly recovery?: RecoveryStore;
}

// ## The in-memory adapter
//
// Two indexes, kept in step: each session knows its rooms (`session.rooms`,
// needed to leave them all on close), and this adapter knows each room's
// members, needed to deliver. An empty room is deleted at once, so a
// server whose users wander through a million room names holds only the
// ones in use.
/** The default adapter: rooms of one process, in memory. */
export class MemoryAdapter implements Adapter {
  /** Members of each non-empty room, in the order they joined. */
  protected readonly members = new Map<string, Set<Session<unknown, unknown, object>>>();
  /** Set by `attach`. */
  protected host: AdapterHost | null = null;

  attach(host: AdapterHost): void {
    this.host = host;
  }

  join(session: Session<unknown, unknown, object>, room: string): Promise<void> {
    let members = this.members.get(room);
    if (members === undefined) this.members.set(room, (members = new Set()));
    members.add(session);
    return Promise.resolve();
  }

  leave(session: Session<unknown, unknown, object>, room: string): Promise<void> {
    this.remove(session, room);
    return Promise.resolve();
  }

  leaveAll(session: Session<unknown, unknown, object>): void {
    for (const room of session.rooms) this.remove(session, room);
  }

  /** Takes `session` out of `room`'s members; returns whether the room is now empty. */
  protected remove(session: Session<unknown, unknown, object>, room: string): boolean {
    const members = this.members.get(room);
    if (members === undefined) return true;
    members.delete(session);
    if (members.size > 0) return false;
    this.members.delete(room);
    return true;
  }

  broadcast(message: Broadcast): void {
    this.deliver(message);
  }

  sessionIds(audience: Audience): Promise<string[]> {
    const ids: string[] = [];
    this.each(audience, null, (session) => ids.push(session.id));
    return Promise.resolve(ids);
  }

  close(): Promise<void> {
    this.members.clear();
    return Promise.resolve();
  }

  // ### Local delivery
  //
  // `deliver` is the one place a broadcast meets local sessions; adapters
  // for many processes call it with what other processes publish. With
  // `via`, only that room's members are candidates: a process that hears
  // one broadcast once per targeted room (one pub/sub channel per room)
  // delivers it to a session only through the first of the broadcast's
  // rooms the session is in, so a member of two rooms still gets it once.
  /** Queues a broadcast on every matching local session; returns how many. */
  deliver(message: Broadcast, via: string | null = null): number {
    let count = 0;
    this.each(message, via, (session) => {
      session.sendJson(message.json);
      count++;
    });
    return count;
  }

  // `each` walks the candidates once. A single room (the common case) is
  // its member set, with no bookkeeping; several rooms need a `seen` set
  // so that a member of two rooms is visited once. A session that closes
  // while we walk (its send buffer overflowed) leaves its rooms at once;
  // a `Set` and a `Map` both carry on correctly past a deleted entry.
  /** Calls `visit` for every local session in `audience` (only through room `via`, if given). */
  protected each(audience: Audience, via: string | null,
    visit: (session: Session<unknown, unknown, object>) => void): void {
    const skip = exclusion(audience);
    if (via !== null) {
      for (const session of this.members.get(via) ?? []) {
        if (!skip(session) && firstRoomOf(session, audience.rooms!) === via) visit(session);
      }
      return;
    }
    if (audience.rooms === null) {
      for (const session of this.host?.sessions.values() ?? []) if (!skip(session)) visit(session);
      return;
    }
    const [only, ...others] = audience.rooms;
    if (only !== undefined && others.length === 0) {
      for (const session of this.members.get(only) ?? []) if (!skip(session)) visit(session);
      return;
    }
    const seen = new Set<Session<unknown, unknown, object>>();
    for (const room of audience.rooms) {
      for (const session of this.members.get(room) ?? []) {
        if (seen.has(session) || skip(session)) continue;
        seen.add(session);
        visit(session);
      }
    }
  }
}

// ## Who is left out
//
// An exclusion by id, or by membership of a room. Most broadcasts exclude
// nothing, and then the test is a constant function.
function exclusion(audience: Audience):
  (session: Session<unknown, unknown, object>) => boolean {
  const { exceptIds, exceptRooms } = audience;
  if (exceptIds.length === 0 && exceptRooms.length === 0) return () => false;
  const ids = new Set(exceptIds);
  return (session) => ids.has(session.id) || exceptRooms.some((room) => session.rooms.has(room));
}

function firstRoomOf(session: Session<unknown, unknown, object>,
  rooms: readonly string[]): string | undefined {
  return rooms.find((room) => session.rooms.has(room));
}

// ## Room names
//
// A room name is app data that may end up in a pub/sub channel name or a
// log line: any non-empty string up to 256 characters. A wrong type is a
// programmer's mistake and throws at the call.
/** Checks a room name. @throws TypeError - if it is not a string of 1 to 256 characters. */
export function checkRoom(room: unknown): string {
  if (typeof room === 'string' && room.length > 0 && room.length <= 256) return room;
  throw new TypeError(`browserChannel: a room name must be a string of 1 to 256 characters, got ${
    typeof room === 'string' ? `a string of ${room.length}` : typeof room}`);
}
