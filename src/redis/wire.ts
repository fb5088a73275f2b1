// # What processes say to each other over Redis
//
// Every process subscribes to a few Redis pub/sub channels and publishes
// short text messages on them. Channel names start with a prefix (`bc` by
// default), so several apps can share one Redis:
//
// | channel | who listens | what travels |
// |---|---|---|
// | `bc:all` | every process | broadcasts to every session |
// | `bc:room:<room>` | processes with a member in the room | broadcasts to the room |
// | `bc:ctl` | every process | questions for everyone (`sessionIds()`) |
// | `bc:node:<id>` | that process alone | answers, and relayed requests (`relay.ts`) |
//
// And one key: the sorted set `bc:nodes`, each live process scored by the
// time of its last heartbeat (Redis's clock, so machines need not agree).
//
// A message is a first line of space-separated words, a newline, and a
// payload that is never looked into unless needed. A broadcast's JSON text
// rides as it is, after a line with its audience, so it is not escaped a
// second time:
//
// ```text
// b n1                                         ← kind, origin node
// [["lobby"],[],["n1.Qm9v…"]]                  ← rooms, except rooms, except ids
// {"t":"hi"}                                   ← the message, as made once
// ```
/** Redis channel names and the text format of messages between processes. @module */
import type { Audience, Broadcast } from '../rooms.ts';

/** The channel and key names for one prefix. */
export class Names {
  /** Broadcasts to every session. */
  readonly all: string;
  /** Questions for every process. */
  readonly control: string;
  /** The sorted set of live processes. */
  readonly nodes: string;

  constructor(private readonly prefix: string) {
    this.all = `${prefix}:all`;
    this.control = `${prefix}:ctl`;
    this.nodes = `${prefix}:nodes`;
  }

  /** The channel of one room. */
  room(room: string): string {
    return `${this.prefix}:room:${room}`;
  }

  /** The channel only `node` listens to. */
  node(node: string): string {
    return `${this.prefix}:node:${node}`;
  }

  /** The room a room channel belongs to, or null. */
  roomOf(channel: string): string | null {
    const start = `${this.prefix}:room:`;
    return channel.startsWith(start) ? channel.slice(start.length) : null;
  }
}

// ## Splitting a message
/** A message's first line, split into words, and the rest. */
export interface Message {
  readonly words: string[];
  readonly payload: string;
}

/** Splits a message into its first line's words and the payload after it. */
export function parse(text: string): Message {
  const newline = text.indexOf('\n');
  if (newline === -1) return { words: text.split(' '), payload: '' };
  return { words: text.slice(0, newline).split(' '), payload: text.slice(newline + 1) };
}

// ## Broadcasts
/** The text published for a broadcast from `origin`. */
export function encodeBroadcast(origin: string, message: Broadcast): string {
  return `b ${origin}\n${broadcastPayload(message)}`;
}

// With recovery on, a room broadcast is published by a script that adds
// the room's epoch and offset to the first line (`history.ts`):
//
// ```text illustrative
// B n1 k3J9w_Qz 58
// [["lobby"],[],[]]
// {"t":"hi"}
// ```
/** A broadcast's audience line and JSON text: the payload after the first line. */
export function broadcastPayload(message: Broadcast): string {
  return `${encodeAudience(message)}\n${message.json}`;
}

/** The broadcast in a payload made by {@link encodeBroadcast}, or null if it is malformed. */
export function decodeBroadcast(payload: string): Broadcast | null {
  const newline = payload.indexOf('\n');
  if (newline === -1) return null;
  const audience = decodeAudience(payload.slice(0, newline));
  return audience && { ...audience, json: payload.slice(newline + 1) };
}

/** An audience as one line of JSON. */
export function encodeAudience(audience: Audience): string {
  return JSON.stringify([audience.rooms, audience.exceptRooms, audience.exceptIds]);
}

/** The audience in a line made by {@link encodeAudience}, or null if it is malformed. */
export function decodeAudience(line: string): Audience | null {
  try {
    type Line = [string[] | null, string[], string[]];
    const [rooms, exceptRooms, exceptIds] = JSON.parse(line) as Line;
    if (rooms !== null && !Array.isArray(rooms)) return null;
    if (!Array.isArray(exceptRooms) || !Array.isArray(exceptIds)) return null;
    return { rooms, exceptRooms, exceptIds };
  } catch {
    return null;
  }
}
