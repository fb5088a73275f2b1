// # Session ids: the only credential a session has
//
// Once a session exists, every request for it is recognised by one query
// parameter, `SID`. There is no cookie, no signature, nothing else: whoever
// knows a session's id can read its back channel and post as its client.
// So the id must be unguessable, like a bearer token.
//
// ```http
// GET /channel/bind?VER=8&SID=Qm9vdHN0cmFwcGVkIGlkIQ&RID=rpc&AID=3&CI=0&TYPE=xmlhttp
// ```
//
// node-browserchannel drew its ids from `hat`, which builds them out of
// `Math.random()`. That generator is fast and statistically fine, but it is
// not a cryptographic one: its internal state can be recovered from a
// handful of outputs, after which every future id is predictable. We take
// 128 bits from `node:crypto` instead, the operating system's secure
// generator, and spell them in URL-safe base64 (22 characters), so the id
// never needs escaping in a query string.
/** Unguessable, URL-safe session ids. @module */
import { randomFillSync } from 'node:crypto';

// ## The shape
//
// `<22 characters of base64url>`, or `<nodeId>.<22 characters>` when the
// server was given a `nodeId`. Base64url uses `A-Z a-z 0-9 - _`, and the
// dot never occurs in it, so the prefix is easy to split off.

// ## Drawing an id
//
// Sixteen bytes from `randomFillSync`, spelled in base64url. A byte is
// never handed out twice.
//
// > **Note (speed):** the bytes are drawn 4 KiB at a time from the same
// > secure source and handed out 16 at a time, 256 ids per system call.
// > One call per session showed up as a quarter of the server's time when
// > profiling the handshake.
/** Bits of randomness in every session id. */
export const SESSION_ID_BITS = 128;

const ID_BYTES = SESSION_ID_BITS / 8;
const pool = Buffer.alloc(ID_BYTES * 256);
let used = pool.length;

/** A new session id: 128 random bits from `node:crypto`, base64url (22 characters). */
export function newSessionId(nodeId: string | null = null): string {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const random = pool.toString('base64url', used, used + ID_BYTES);
  used += ID_BYTES;
  return nodeId === null ? random : `${nodeId}.${random}`;
}

// ## Ids a proxy can route on
//
// A session lives in one process. When several processes share a port
// behind a proxy, every request of a session must reach the same one. Give
// each process a `nodeId` and every id it issues starts with it:
//
// ```text
// SID=web3.Qm9vdHN0cmFwcGVkIGlkIQ
//     ^^^^ the proxy routes on the text before the first dot
// ```
//
// The random part keeps its full 128 bits; the prefix adds no secrecy and
// takes none away. WebChannel's `X-HTTP-Session-Id` (see `webchannel.ts`)
// is drawn the same way.
