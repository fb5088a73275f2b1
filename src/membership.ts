// # Membership: the app's side of a session, its data and its rooms
//
// Two things a session carries only for the app: `session.data`, the
// app's own object (who the user is), and the rooms it has joined, which
// decide which broadcasts reach it (`rooms.ts`, `broadcast.ts`).
//
// ```ts
// session.data.user = 'ada';
// await session.join('lobby');
// session.to('lobby').send({ from: 'ada', text: 'hi' });   // the lobby, less ada
// ```
//
// A layer of `Session` (`session.ts`), one object at run time with it.
/** `session.data` and rooms. @module */
import { BroadcastTarget } from './broadcast.ts';
import { AppEvents } from './events.ts';
import { checkRoom } from './rooms.ts';
import type { AnySession } from './session.ts';

const NO_ROOMS: ReadonlySet<string> = new Set();

/** @internal The app-owned part of a {@link Session}: `data` and rooms. */
export abstract class Membership<In, Out, Data extends object> extends AppEvents<In> {
  private roomSet: Set<string> | null = null;
  private appData: Data | null = null;

  // The adapter deals in sessions; this layer only ever exists as one.
  private get self(): AnySession {
    return this as unknown as AnySession;
  }

  // ## The app's own state
  //
  // `session.data` is the app's: who the user is, what they are allowed,
  // anything it wants to find again from the session. We never read it.
  // It is made on first use, so sessions whose app never looks carry no
  // empty object.
  /** The app's per-session state. Starts as `{}`; assign or mutate it freely. */
  get data(): Data {
    return (this.appData ??= {} as Data);
  }

  /** Replaces the app's per-session state. */
  set data(value: Data) {
    this.appData = value;
  }

  /** @internal Whether the app has touched `data`. */
  get hasData(): boolean {
    return this.appData !== null;
  }

  // ## Rooms
  //
  // Joining and leaving go through the server's adapter (`rooms.ts`),
  // which keeps the index broadcasts use; the session keeps the other
  // direction, its own room names, so that closing can leave them all.
  // Both answer with a Promise: with an adapter for many processes, a
  // join is done when every process will deliver the room's broadcasts
  // here, which takes a round trip. In one process they resolve at once.
  // A closed session joins nothing, and its Promise resolves all the same.
  /** The rooms this session is in. */
  get rooms(): ReadonlySet<string> {
    return this.roomSet ?? NO_ROOMS;
  }

  /**
   * Joins `room`. Resolves once broadcasts to the room reach this session.
   * @throws TypeError - if `room` is not a string of 1 to 256 characters.
   */
  join(room: string): Promise<void> {
    checkRoom(room);
    if (this.state === 'closed' || this.roomSet?.has(room)) return Promise.resolve();
    (this.roomSet ??= new Set()).add(room);
    return this.saved(this.host.adapter.join(this.self, room));
  }

  /** Leaves `room`. Resolves once broadcasts to the room no longer reach this session. */
  leave(room: string): Promise<void> {
    checkRoom(room);
    if (!this.roomSet?.delete(room)) return Promise.resolve();
    if (this.roomSet.size === 0) this.roomSet = null;
    return this.saved(this.host.adapter.leave(this.self, room));
  }

  // With recovery on, a room change is part of what a successor takes
  // over, so `join` and `leave` resolve once it is saved too.
  private saved(done: Promise<void>): Promise<void> {
    const ledger = this.host.ledger;
    if (ledger === null) return done;
    return done.then(() => ledger.saved(this.self));
  }

  // `session.to(room)` is the usual way for one client's message to reach
  // the others in its room: the room, less the session itself.
  /** A broadcast target: the members of `rooms`, except this session. */
  to(rooms: string | readonly string[]): BroadcastTarget<Out> {
    return new BroadcastTarget<Out>(this.host.adapter, {
      rooms: null,
      exceptRooms: [],
      exceptIds: [this.id],
    }).to(rooms);
  }

  // Closing leaves every room in two steps: the adapter forgets the
  // session before anyone hears of the close, and the session forgets its
  // room names after its `close` listeners ran (see `Session.close`).
  /** @internal Takes the session out of the adapter's rooms. */
  protected leaveAllRooms(): void {
    if (this.roomSet !== null) this.host.adapter.leaveAll(this.self);
  }

  /** @internal Forgets the room names. */
  protected forgetRooms(): void {
    this.roomSet = null;
  }
}
