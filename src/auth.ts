// # Auth: refusing a client before its session exists
//
// The `allowRequest` option is asked once per would-be session, after the
// creating request's body has been read (a WebChannel client may put its
// headers there) and before anything is created. It sees the request and
// the headers as the session would have them, WebChannel's encoded init
// headers merged in: Firestore's web SDK sends its `Authorization` that
// way, not as a real header.
//
// ```ts
// browserChannel({
//   allowRequest: async (req, { headers }) =>
//     (await verify(headers.authorization)) ? true : { status: 401, reason: 'Bad token' },
// }, onConnect);
// ```
//
// A refusal is a plain answer, and nothing is left behind:
//
// ```http
// HTTP/1.1 401 Bad token
// Content-Type: text/html; charset=utf-8
//
// <html><body><h1>Bad token</h1></body></html>
// ```
//
// What clients do with it: ours (`BCSocket` from `/bcsocket.js`) treats
// `401` and `403` on the creating request as final and reports the
// status in `onclose`, with no reconnect. The Closure client sees any
// non-`200` as a failed request: it reports an error and stops, and
// node-browserchannel's `BCSocket` wrapper then tries again later if its
// `reconnect` option is on. WebChannel reports `ERROR`, then `CLOSE`, and
// does not retry by itself.
/** The `allowRequest` hook: types and the verdict. @module */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { ProtocolError } from './errors.ts';
import type { Query } from './query.ts';

// ## The hook's types
/** What `allowRequest` learns about a would-be session besides the request itself. */
export interface RequestInfo {
  /** The request's headers, with WebChannel's encoded init headers merged in. */
  readonly headers: IncomingHttpHeaders;
  /** The creating request's query parameters (`extraParams` arrive here). */
  readonly query: Query;
  /** The client's address, as the socket saw it. */
  readonly address: string;
  /** Whether the client is Google's WebChannel client. */
  readonly webChannel: boolean;
}

/** A refusal: an HTTP status from 400 to 499 (default 403) and a short reason. */
export interface Refuse {
  /** `401`, `403` (the default), or any other 4xx. */
  readonly status?: number;
  /** Sent as the status text and the body's headline. Default `"Forbidden"`. */
  readonly reason?: string;
}

/** Decides whether a client may have a session: `true`, `false` (`403`), or a refusal. */
export type AllowRequest = (req: IncomingMessage, info: RequestInfo) =>
  boolean | Refuse | Promise<boolean | Refuse>;

// ## The verdict
//
// `true` lets the client in. `false` is a `403`. A refusal object picks
// its own 4xx and reason; anything else is the app's bug, answered `500`
// and reported to `channel.on('error')`, as an exception thrown inside
// the hook is (the handler's error boundary does both).
/**
 * Asks the hook and throws a `ProtocolError` for a refusal.
 * @throws TypeError - when the hook answers something that is not a verdict.
 */
export async function checkAllowed(allow: AllowRequest, req: IncomingMessage,
  info: RequestInfo): Promise<void> {
  const verdict = await allow(req, info);
  if (verdict === true) return;
  if (verdict === false) throw refusal(403, 'Forbidden');
  if (verdict !== null && typeof verdict === 'object') {
    const status = verdict.status ?? 403;
    if (!Number.isInteger(status) || status < 400 || status > 499) {
      throw new TypeError(`browserChannel: allowRequest refused with status ${String(status)}; `
        + 'use a 4xx status');
    }
    throw refusal(status, typeof verdict.reason === 'string' ? verdict.reason : 'Forbidden');
  }
  throw new TypeError(`browserChannel: allowRequest must answer true, false or { status, reason }, `
    + `got ${typeof verdict}`);
}

// The reason becomes an HTTP status text, so it is cut to printable ASCII
// by the error boundary; here it only needs to be short.
function refusal(status: number, reason: string): ProtocolError {
  return new ProtocolError(status, 'REFUSED', reason.slice(0, 200) || 'Forbidden');
}
