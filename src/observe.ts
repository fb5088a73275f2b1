// # Observe: counters, a debug log and diagnostics channels
//
// A server on the open internet must be watchable without a debugger.
// Three ways in, each for a different reader:
//
// - `channel.stats()`: counters since start, for a dashboard or a health
//   check. They are plain integer additions, cheap enough to leave on.
// - `NODE_DEBUG=browserchannel`: a line per lifecycle event on stderr,
//   through `node:util`'s `debuglog`, for a person at a terminal.
//
//   ```text
//   BROWSERCHANNEL 41234: session Qm9vYm…(22) open from 127.0.0.1 (1 open)
//   BROWSERCHANNEL 41234: back channel for Qm9vYm… streaming
//   BROWSERCHANNEL 41234: refused 413 BODY_TOO_LARGE POST /channel/bind: Body over …
//   BROWSERCHANNEL 41234: session Qm9vYm… closed: Disconnected (0 open)
//   ```
//
//   Ids are cut to six characters, never logged whole (an id is a
//   session's only credential), and message contents never appear.
// - `node:diagnostics_channel`: named channels that APM tools subscribe
//   to, as they do for undici and `node:http`. Nothing is built for a
//   channel nobody listens to.
//
// | channel | message |
// |---|---|
// | `browserchannel:session:open` | `{ session }` |
// | `browserchannel:session:close` | `{ session, reason }` |
// | `browserchannel:session:refused` | a {@link Refusal} |
// | `browserchannel:message:in` | `{ session, message }` |
// | `browserchannel:message:out` | `{ session, json }` (the array's JSON text) |
/** Counters, `NODE_DEBUG=browserchannel` and `diagnostics_channel`. @module */
import diagnostics from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { AnySession as Session } from './session.ts';

// ## What a refusal says
//
// Every request we answer with a 4xx or a 5xx is a refusal, reported to
// `channel.on('refused')`, counted, logged and published.
/** A request the server answered with an error status. */
export interface Refusal {
  /** The HTTP status sent. */
  readonly status: number;
  /** A stable code (`UNKNOWN_SID`, `BODY_TOO_LARGE`, `REFUSED`, …). */
  readonly code: string;
  /** The reason sent to the client. */
  readonly reason: string;
  /** The request's method. */
  readonly method: string;
  /** The request's path, without the query. */
  readonly path: string;
  /** The session the request named (`SID`), if any. */
  readonly sessionId: string | null;
}

// ## The counters
/** Counters since the server started; see `channel.stats()`. */
export interface ChannelStats {
  /** Sessions created, open now, and closed, by close reason. */
  readonly sessions: {
    /** Sessions created since start. */
    readonly created: number;
    /** Sessions open now. */
    readonly open: number;
    /** Sessions closed, by close reason (at most 64 reasons; later ones count as `other`). */
    readonly closed: Readonly<Record<string, number>>;
  };
  /** Messages from clients and arrays queued for them (heartbeats excluded). */
  readonly messages: {
    /** Messages from clients. */
    readonly in: number;
    /** Arrays queued for clients by the app, broadcasts included, once per session. */
    readonly out: number;
  };
  /** Body bytes read and characters written to back channels. */
  readonly bytes: {
    /** Forward-channel body bytes read. */
    readonly in: number;
    /** Characters written to back channels. */
    readonly out: number;
  };
  /** Requests answered with an error, by status. */
  readonly refused: Readonly<Record<string, number>>;
  /** Back channels opened (the create response counts as one). */
  readonly backChannels: number;
  /** `["noop"]` heartbeats sent. */
  readonly heartbeats: number;
  /** Creates naming an old session (`OSID`) with the `recovery` option on. */
  readonly recovery: {
    /** Old sessions taken over whole. */
    readonly recovered: number;
    /** Old sessions that could not be, by reason (at most 64 reasons, then `other`). */
    readonly failed: Readonly<Record<string, number>>;
  };
}

// Close reasons are app text, so their number has no natural bound: an
// app that puts a user name in `close(reason)` would grow the table by a
// row per user. Past 64 distinct reasons, new ones count as `other`.
const MAX_REASONS = 64;

const channels = {
  open: diagnostics.channel('browserchannel:session:open'),
  close: diagnostics.channel('browserchannel:session:close'),
  refused: diagnostics.channel('browserchannel:session:refused'),
  messageIn: diagnostics.channel('browserchannel:message:in'),
  messageOut: diagnostics.channel('browserchannel:message:out'),
};

// `debuglog` decides once, from `NODE_DEBUG`, whether it prints; its
// `enabled` flag lets us skip building the line when it does not.
const debug = debuglog('browserchannel');

/** A session id as logs show it: six characters and an ellipsis. */
export function shortId(id: string): string {
  return `${id.slice(0, 6)}…`;
}

// ## The observer
//
// One per server, shared by every session through the `SessionHost`. The
// fields are public and mutable so the hot paths add to them directly.
/** @internal The server's counters and its debug and diagnostics outputs. */
export class Observer {
  sessionsCreated = 0;
  sessionsOpen = 0;
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  backChannels = 0;
  heartbeats = 0;
  recovered = 0;
  private readonly closed = new Map<string, number>();
  private readonly failed = new Map<string, number>();
  private readonly refused = new Map<number, number>();

  opened(session: Session): void {
    this.sessionsCreated++;
    this.sessionsOpen++;
    if (debug.enabled) {
      debug(
        'session %s open from %s (%d open)',
        shortId(session.id),
        session.address,
        this.sessionsOpen,
      );
    }
    if (channels.open.hasSubscribers) channels.open.publish({ session });
  }

  closedWith(session: Session, reason: string): void {
    this.sessionsOpen--;
    const key = this.closed.has(reason) || this.closed.size < MAX_REASONS ? reason : 'other';
    this.closed.set(key, (this.closed.get(key) ?? 0) + 1);
    if (debug.enabled) {
      debug('session %s closed: %s (%d open)', shortId(session.id), reason, this.sessionsOpen);
    }
    if (channels.close.hasSubscribers) channels.close.publish({ session, reason });
  }

  // A failure's reason names the session or room (`no saved state for
  // n2.Qm9v…`, `already taken over: n2.Qm9v…`), so the table counts it by
  // its first words, before any name: a handful of kinds, not one a session.
  recoveredWith(session: Session): void {
    const failure = session.recoveryFailure;
    if (failure === null) this.recovered++;
    else {
      const kind = failure.split(/ (?:for|of|in) |: /)[0]!;
      const key = this.failed.has(kind) || this.failed.size < MAX_REASONS ? kind : 'other';
      this.failed.set(key, (this.failed.get(key) ?? 0) + 1);
    }
    if (debug.enabled) {
      debug('session %s replaces %s: %s', shortId(session.id), shortId(session.previousId ?? ''),
        failure ?? 'recovered');
    }
  }

  refusedWith(refusal: Refusal): void {
    this.refused.set(refusal.status, (this.refused.get(refusal.status) ?? 0) + 1);
    if (debug.enabled) {
      debug(
        'refused %d %s %s %s: %s',
        refusal.status,
        refusal.code,
        refusal.method,
        refusal.path,
        refusal.reason,
      );
    }
    if (channels.refused.hasSubscribers) channels.refused.publish(refusal);
  }

  messageIn(session: Session, message: unknown): void {
    this.messagesIn++;
    if (channels.messageIn.hasSubscribers) channels.messageIn.publish({ session, message });
  }

  messageOut(session: Session, json: string): void {
    this.messagesOut++;
    if (channels.messageOut.hasSubscribers) channels.messageOut.publish({ session, json });
  }

  backChannel(sessionId: string, streaming: boolean): void {
    this.backChannels++;
    if (debug.enabled) {
      debug('back channel for %s %s', shortId(sessionId), streaming ? 'streaming' : 'polling');
    }
  }

  recycled(sessionId: string, chars: number): void {
    if (debug.enabled)
      debug('back channel for %s recycled after %d chars', shortId(sessionId), chars);
  }

  /** Logs a line when debugging is on; `format` as in `util.format`. */
  log(format: string, ...args: unknown[]): void {
    if (debug.enabled) debug(format, ...args);
  }

  /** A copy of the counters, safe to keep and serialise. */
  snapshot(): ChannelStats {
    return {
      sessions: {
        created: this.sessionsCreated,
        open: this.sessionsOpen,
        closed: Object.fromEntries(this.closed),
      },
      messages: { in: this.messagesIn, out: this.messagesOut },
      bytes: { in: this.bytesIn, out: this.bytesOut },
      refused: Object.fromEntries(this.refused),
      backChannels: this.backChannels,
      heartbeats: this.heartbeats,
      recovery: { recovered: this.recovered, failed: Object.fromEntries(this.failed) },
    };
  }
}
