// # Broadcast: one message, many sessions
//
// A broadcast is built up by chaining, then sent:
//
// ```ts
// channel.send({ t: 'restart' });                          // every session
// channel.to('lobby').send({ t: 'hi' });                   // one room
// channel.to(['lobby', 'mods']).except(session).send(m);   // two rooms, less one session
// session.to('lobby').send({ t: 'typing' });               // the room, less the sender
// ```
//
// A target is a value: `to` and `except` return new targets and never
// change the one they are called on, so a target kept in a variable
// (`const lobby = channel.to('lobby')`) can be sent to again and again.
//
// `send` makes the JSON text once, then hands the adapter (`rooms.ts`)
// plain data to deliver. It returns nothing to wait on, on purpose: a
// callback per recipient would mean a closure per session for every
// broadcast, and "everyone acknowledged" is not an event that ever
// happens reliably (someone's tab is always asleep), least of all across
// processes. An app that needs to know a particular client got a message
// sends it to that session with `session.send(data, callback)`.
/** Broadcast targets: rooms, exclusions and sending. @module */
import { stringify } from './encoding.ts';
import { type Adapter, type Audience, checkRoom } from './rooms.ts';

/** Something a broadcast can leave out: a session (anything with an `id`) or a room name. */
export type Exclusion = string | {
  /** The id of the session to leave out. */
  readonly id: string;
};

// ## The target
/** A set of recipients. Made by `channel.to()`, `channel.except()` or `session.to()`. */
export class BroadcastTarget<Out = unknown> {
  /** @internal */
  constructor(
    private readonly adapter: Adapter,
    private readonly audience: Audience,
  ) {}

  /** A target that also reaches the members of `rooms`. */
  to(rooms: string | readonly string[]): BroadcastTarget<Out> {
    const added = (typeof rooms === 'string' ? [rooms] : [...rooms]).map(checkRoom);
    const current = this.audience.rooms ?? [];
    const merged = [...current, ...added.filter((room) => !current.includes(room))];
    return new BroadcastTarget(this.adapter, { ...this.audience, rooms: merged });
  }

  // Strings are rooms; anything with an `id` is a session. An array may
  // mix both.
  /** A target that leaves out `who`: sessions, rooms, or an array of both. */
  except(who: Exclusion | readonly Exclusion[]): BroadcastTarget<Out> {
    const list = Array.isArray(who) ? (who as readonly Exclusion[]) : [who as Exclusion];
    const exceptRooms = [...this.audience.exceptRooms];
    const exceptIds = [...this.audience.exceptIds];
    for (const item of list) {
      if (typeof item === 'string') exceptRooms.push(checkRoom(item));
      else if (item !== null && typeof item === 'object' && typeof item.id === 'string') {
        exceptIds.push(item.id);
      } else throw new TypeError('browserChannel: except() takes sessions and room names');
    }
    return new BroadcastTarget(this.adapter, { ...this.audience, exceptRooms, exceptIds });
  }

  /**
   * Sends `data` to every session in the target, each with its own array id.
   * @throws TypeError - if `data` has no JSON form (nothing is sent).
   */
  send(data: Out): void {
    this.adapter.broadcast({ ...this.audience, json: stringify(data) });
  }

  /** Ids of the sessions in the target, on every process the adapter reaches. */
  sessionIds(): Promise<string[]> {
    return this.adapter.sessionIds(this.audience);
  }
}

/** The audience of `channel.send()`: every session, nobody left out. */
export const EVERYONE: Audience = Object.freeze({ rooms: null, exceptRooms: [], exceptIds: [] });
