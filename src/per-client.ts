// # Per client: one client cannot take every session
//
// `maxSessions` bounds how many sessions the server holds, but not who
// holds them. A single client that loops on the creating request gets a
// new session each time, and each one lives until it times out (30 s by
// default) with nobody coming back for it. At a few thousand creates a
// second that is every slot `maxSessions` allows, and then everyone
// else is refused; without `maxSessions` it is memory, until the
// process falls over. With `maxSessionsPerClient`, each client may hold
// that many live sessions and no more:
//
// ```http
// POST /channel/bind?VER=8&RID=31415&CVER=8&t=1 HTTP/1.1
//
// HTTP/1.1 429 Too many sessions for this client (maxSessionsPerClient 20)
// Retry-After: 5
// ```
//
// Its other sessions carry on, and so does everyone else. A slot is
// free again as soon as one of its sessions closes, however it closes:
// the client disconnecting, a timeout, the app's `close()`.
//
// It counts live sessions, not creates per second. A real client holds
// one session per tab, and makes a new one only when the old one ends;
// so the count is what an honest client never gets near, and what a
// looping one reaches at once. What it holds is bounded too: one entry
// per client that has a live session, gone with its last session.
/** `maxSessionsPerClient`: live sessions counted by client. @module */
import type { IncomingMessage } from 'node:http';
import { ProtocolError } from './errors.ts';
import type { AnySession } from './session.ts';

// ## Who the client is
//
// By default a client is the address its TCP connection comes from. Two
// refinements make that hold up on the real internet:
//
// - an IPv4 client seen through an IPv6 socket (`::ffff:203.0.113.7`)
//   counts as its IPv4 address, so the two spellings are one client;
// - an IPv6 client counts by its `/64` prefix. One subscriber usually
//   gets a whole `/64`, and can pick any of its 2^64 addresses for each
//   request, so counting whole addresses would limit nothing.
//
// ```text
// 203.0.113.7               → 203.0.113.7
// ::ffff:203.0.113.7        → 203.0.113.7
// 2001:db8:7:1::a           → 2001:db8:7:1::/64
// 2001:0db8:0007:0001:9::1  → 2001:db8:7:1::/64
// ```
//
// Behind a proxy every request comes from the proxy, so one client is
// all of them. There the app says who the client is, with `clientKey`
// (see the guide's "Deploying", "Client addresses").
/** The client an address belongs to: IPv4 as it is, IPv6 by its `/64` prefix. */
export function addressKey(address: string): string {
  const bare = address.split('%')[0]!.toLowerCase();
  if (!bare.includes(':')) return bare;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped) return mapped[1]!;
  return `${ipv6Groups(bare).slice(0, 4).join(':')}::/64`;
}

// The eight 16-bit groups of an IPv6 address, without leading zeros. A
// `::` stands for as many zero groups as are missing, and a dotted IPv4
// tail takes the place of two groups.
function ipv6Groups(address: string): string[] {
  const spell = (part: string): string[] =>
    part === '' ? [] : part.split(':').flatMap((group) =>
      group.includes('.') ? ['0', '0'] : [parseInt(group, 16).toString(16)]);
  const gap = address.indexOf('::');
  if (gap === -1) return spell(address);
  const head = spell(address.slice(0, gap));
  const tail = spell(address.slice(gap + 2));
  const zeros = Array.from({ length: Math.max(0, 8 - head.length - tail.length) }, () => '0');
  return [...head, ...zeros, ...tail];
}

/** The default `clientKey`: the address of the request's connection, by {@link addressKey}. */
export function clientAddress(req: IncomingMessage): string {
  return addressKey(req.socket?.remoteAddress ?? '');
}

// ## The count
//
// The factory makes one `ClientCounts` when `maxSessionsPerClient` is
// set, and none otherwise, so a server without the option pays one
// `null` check per create and per close.
//
// The check runs with the server's other limits, before the body is
// read (and again after `allowRequest`), so a client over its limit
// costs a refusal and nothing more. It runs once more just before the
// session is made, in the same turn as `add`, because one client can
// have many creates in flight at once: they would all pass the first
// check together.
//
// A client reconnecting names the session it replaces (`OSID`), which
// closes as the new one starts. That one does not count against the new
// one, or a client at its limit could not reconnect until its old
// session timed out; a session of another client still counts.
/** @internal Live sessions per client, for `maxSessionsPerClient`. */
export class ClientCounts {
  private readonly counts = new Map<string, number>();
  private readonly keys = new Map<AnySession, string>();

  /**
   * @param max - most live sessions per client.
   * @param keyOf - the app's `clientKey`, or {@link clientAddress}.
   */
  constructor(
    private readonly max: number,
    private readonly keyOf: (req: IncomingMessage) => string,
  ) {}

  /**
   * The client `req` comes from, if it may have another session.
   * @param replacing - the live session the create names in `OSID`, if any.
   * @throws ProtocolError - `429` when it already has `max`.
   * @throws TypeError - when `clientKey` returns something other than a string.
   */
  check(req: IncomingMessage, replacing: AnySession | undefined): string {
    const key = this.keyOf(req);
    if (typeof key !== 'string') {
      throw new TypeError(`browserChannel: clientKey must return a string, got ${typeof key}`);
    }
    const freed = replacing !== undefined && this.keys.get(replacing) === key ? 1 : 0;
    if ((this.counts.get(key) ?? 0) - freed < this.max) return key;
    throw new ProtocolError(
      429,
      'TOO_MANY_CLIENT_SESSIONS',
      `Too many sessions for this client (maxSessionsPerClient ${this.max})`,
      { 'Retry-After': '5' },
    );
  }

  /** Counts `session` against `key` until {@link ClientCounts.remove}. */
  add(session: AnySession, key: string): void {
    this.keys.set(session, key);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Frees the session's slot (called once it has closed); a session never added is ignored. */
  remove(session: AnySession): void {
    const key = this.keys.get(session);
    if (key === undefined) return;
    this.keys.delete(session);
    const left = this.counts.get(key)! - 1;
    if (left === 0) this.counts.delete(key);
    else this.counts.set(key, left);
  }

  /** How many clients have a live session. */
  get clients(): number {
    return this.counts.size;
  }
}
