// # WebChannel: the extensions a WebChannel client asks of the server
//
// WebChannel (`goog.labs.net.webchannel`, the transport under Firestore's
// web SDK) speaks the same version 8 wire format as BrowserChannel, plus
// a handful of extensions, each switched on by a client option. This
// module reads and writes those extensions; the handler calls it at the
// few points where a WebChannel request differs.
//
// | client option | on the wire | here |
// |---|---|---|
// | (always) | `CVER=22` on the handshake | `isWebChannel`, `handshakeArray` |
// | `httpSessionIdParam: 'p'` | `X-HTTP-Session-Id=p`, then `p=<id>` | `checkHttpSessionId` |
// | `encodeInitMessageHeaders` | `headers=Name%3AValue%0D%0A…` in the body | `maps.ts` |
// | `httpHeadersOverwriteParam` | the same block in a URL parameter | `initHeaders` |
// | `fastHandshake` | `GET …&SID=null&$req=<maps>` | `fastHandshakeBatch`, `headerJson` |
// | `longPollingTimeout` | `TO=<ms>` on `CI=1` back channels | `longPollHeartbeat` |
// | (h2 servers) | `X-Client-Wire-Protocol: h2` | `wireProtocol` |
//
// The client source is the judge throughout; each section names the
// function in `webchannelbase.js` or `channelrequest.js` it follows.
/** WebChannel extensions to BrowserChannel v8. @module */
import type { IncomingMessage } from 'node:http';
import { badQuery, ProtocolError } from './errors.ts';
import { type DecodeLimits, type ForwardBatch, decodeBody, parseHeaderBlock } from './maps.ts';

// ## Recognising a WebChannel client
//
// `WebChannelBase.open_` puts its own protocol version on the handshake as
// `CVER=22`, where a BCSocket puts the app's version (if any). A WebChannel
// configured to send `X-Client-Protocol: webchannel` is recognised by that
// header as well.
/** The `CVER` every WebChannel client sends. */
export const WEBCHANNEL_CVER = '22';

/** Whether the creating request comes from a WebChannel client. */
export function isWebChannel(query: Record<string, string>, req: IncomingMessage): boolean {
  return query.CVER === WEBCHANNEL_CVER || req.headers['x-client-protocol'] === 'webchannel';
}

// ## The handshake array
//
// `WebChannelBase.onInput_` reads two more fields from the `c` array: a
// server version, which it only reports to the app, and the keep-alive
// interval, from which it sets its back-channel watchdog to 1.5 × that.
// Without the field the watchdog stays at 45 s, so a server with a longer
// `keepAliveInterval` would see its channels torn down; with it, the two
// always agree. BCSocket clients get the classic four fields.
//
// ```json
// ["c","Qm9vdHN0cmFwcGVkIGlkIQ",null,8,1,20000]
// ```
/** The version this server reports in the WebChannel handshake. */
export const SERVER_VERSION = 1;

/** The `c` array that opens every session. */
export function handshakeArray(
  id: string,
  hostPrefix: string | null,
  webChannel: boolean,
  keepAliveMs: number,
): unknown[] {
  if (!webChannel) return ['c', id, hostPrefix, 8];
  return ['c', id, hostPrefix, 8, SERVER_VERSION, keepAliveMs];
}

// ## `httpSessionIdParam`: an id of the server's choosing on every URL
//
// The handshake URL names a parameter; the server answers with an id in
// the `X-HTTP-Session-Id` header; from then on the client adds
// `<parameter>=<id>` to every request (`WebChannelBase.applyControlHeaders_`).
//
// ```http
// POST /channel/bind?VER=8&RID=1&CVER=22&X-HTTP-Session-Id=gsessionid
// ← X-HTTP-Session-Id: web3.hJ0pL2k9Qn6pQ1yVx8nBtA
// POST /channel/bind?VER=8&SID=…&RID=2&gsessionid=web3.hJ0pL2k9Qn6pQ1yVx8nBtA
// ```
//
// The id is drawn like a session id (with the `nodeId` prefix, so a proxy
// can route on it too) but is a different value: it may be logged by
// proxies that route on it, and it grants nothing.
const PARAM_NAME = /^[A-Za-z0-9_.$-]{1,64}$/;

/** The parameter name a handshake asks for, or null. */
export function requestedSessionIdParam(query: Record<string, string>): string | null {
  const name = query['X-HTTP-Session-Id'];
  if (name === undefined || name === '') return null;
  if (!PARAM_NAME.test(name)) throw badQuery('X-HTTP-Session-Id must name a URL parameter');
  return name;
}

/**
 * Checks a later request's `<parameter>=<id>` against the session's id.
 * @throws ProtocolError - `400` when the request carries a different id.
 */
export function checkHttpSessionId(
  param: string | null,
  expected: string | null,
  query: Record<string, string>,
): void {
  if (param === null || expected === null) return;
  const given = query[param];
  if (given !== undefined && given !== expected) {
    throw badQuery('X-HTTP-Session-Id does not match the session');
  }
}

// ## Encoded init headers in the URL
//
// `httpHeadersOverwriteParam` moves the client's extra headers into one
// URL parameter (`goog.net.rpc.HttpCors`), so the browser sends a "simple"
// request with no preflight. The block has the same `Name:Value\r\n` form
// as `encodeInitMessageHeaders` uses in the body. Both are merged into
// `session.headers`, the URL's first, the body's over them.
/** Headers the handshake carried in the URL parameter and the body, or null. */
export function initHeaders(
  query: Record<string, string>,
  paramName: string,
  batch: ForwardBatch | null,
): Record<string, string> | null {
  const fromUrl = query[paramName] === undefined ? null : parseHeaderBlock(query[paramName]!);
  const fromBody = batch?.initHeaders ?? null;
  if (fromUrl === null) return fromBody;
  return fromBody === null ? fromUrl : { ...fromUrl, ...fromBody };
}

// ## `fastHandshake`: a session in one round trip
//
// The client sends the handshake as a GET, with `SID=null` and its first
// maps form-encoded in `$req` (`WebChannelBase.open_`), and then reads the
// same response as its first back channel. It expects the handshake arrays
// as plain JSON in the `X-HTTP-Initial-Response` header, and fails at once
// without it (`ChannelRequest.getInitialResponse_`).
//
// ```http
// GET /channel/bind?VER=8&RID=1&CVER=22&SID=null&$req=count%3D1%26ofs%3D0%26req0___data__%3D%5B1%5D
//
// HTTP/1.1 200 OK
// X-HTTP-Initial-Response: [[0,["c","Qm9v…",null,8,1,20000]]]
// ```
//
// The client keeps the JSON in `$req` near 4,096 characters, which
// form-encoding can stretch to about three times that. A longer `$req` is
// refused with `414`, which the client treats as fatal. (Node itself
// refuses request heads over 16 KiB with `431` before we see them.)
/** Longest `$req` accepted, in characters. */
export const MAX_FAST_HANDSHAKE_CHARS = 12 * 1024;

/** Whether a GET /bind is a fast handshake. */
export function isFastHandshake(query: Record<string, string>): boolean {
  return query.SID === 'null';
}

/**
 * Decodes the maps carried in `$req`.
 * @throws ProtocolError - `414` when `$req` is too long, `400` when it does not decode.
 */
export function fastHandshakeBatch(
  query: Record<string, string>,
  limits: DecodeLimits,
): ForwardBatch | null {
  const encoded = query.$req ?? '';
  if (encoded.length > MAX_FAST_HANDSHAKE_CHARS) {
    const tooLong = `$req longer than ${MAX_FAST_HANDSHAKE_CHARS} characters`;
    throw new ProtocolError(414, 'BAD_QUERY', tooLong);
  }
  return decodeBody(encoded, 'application/x-www-form-urlencoded', limits);
}

// A header value may hold only printable Latin-1, so every other character
// of the JSON travels as a `\uXXXX` escape, which `JSON.parse` reads back.
/** JSON text made safe for an HTTP header value. */
export function headerJson(json: string): string {
  const escape = (char: string): string => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  return json.replace(/[^\x20-\x7e]/g, escape);
}

// ## `longPollingTimeout`: idle long polls end on time
//
// A long-polling client (`CI=1`) may add `TO=<ms>`
// (`WebChannelBase.getBackChannelUri`): it wants an idle poll answered
// within that time. An answer must carry a chunk (an empty `200` counts as
// a failure in `ChannelRequest.decodeNextChunks_`), so the poll is ended
// with an early heartbeat, `["noop"]`. The interval is bounded by
// `keepAliveInterval` above and 250 ms below, so no client can make the
// server spin.
const MIN_LONG_POLL_MS = 250;

/** Heartbeat interval for a back channel: `TO` when given and sane, else the keep-alive. */
export function longPollHeartbeat(query: Record<string, string>, keepAliveMs: number): number {
  const requested = query.TO === undefined || !/^\d{1,9}$/.test(query.TO) ? NaN : Number(query.TO);
  if (Number.isNaN(requested) || query.CI === '0') return keepAliveMs;
  return Math.min(keepAliveMs, Math.max(MIN_LONG_POLL_MS, requested));
}

// ## `X-Client-Wire-Protocol`: may the client run requests in parallel?
//
// Over HTTP/2 one connection carries many requests, so a WebChannel client
// told `h2` on the handshake lets up to 10 forward POSTs run at once
// (`ForwardChannelRequestPool.applyClientProtocol`). They may then arrive
// in any order; the session's `RID` sequencer puts them back.
/** `h2` for requests that arrived over HTTP/2, else `http/1.1`. */
export function wireProtocol(req: IncomingMessage): string {
  return req.httpVersionMajor === 2 ? 'h2' : 'http/1.1';
}
