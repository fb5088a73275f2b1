// # Errors: what a client did wrong, and how we tell it
//
// A BrowserChannel client learns almost everything from the HTTP status of
// its requests, so each fault a client can commit maps to one status and one
// short sentence. The Closure client judges answers like this
// (`goog.net.ChannelRequest`'s response handling):
//
// | status | what the client does |
// |---|---|
// | `200` | success |
// | `400`, body has `Unknown SID` *after* index 0 | the session is gone: make a new one |
// | any other non-200 | the channel fails at once, with no retry |
//
// That second row is why error bodies are wrapped in a tiny HTML document
// rather than sent bare: `Unknown SID` at index 0 would not be recognised.
//
// ```http
// HTTP/1.1 400 Unknown SID
// Content-Type: text/html; charset=utf-8
//
// <html><body><h1>Unknown SID</h1></body></html>
// ```
//
// Faults come in three kinds, kept apart on purpose:
//
// 1. *Programmer misuse* (a bad option, sending something JSON cannot carry)
//    throws a plain `TypeError` at once, at the call site.
// 2. *Client protocol faults* become a `ProtocolError` with a stable
//    `code` and the status the client expects.
// 3. The handler is the single boundary that turns a `ProtocolError` into a
//    response (see `handler.ts`).
/** Protocol errors raised by the handler and the body decoder. @module */

// ## The codes
//
// A stable string per fault, so tests, logs and operators can match on it
// instead of on the prose.
/** Every fault a client can commit, as a stable machine-readable code. */
export type ProtocolErrorCode =
  | 'BAD_VERSION'
  | 'UNKNOWN_SID'
  | 'BAD_QUERY'
  | 'BAD_BODY'
  | 'BODY_TOO_LARGE'
  | 'BAD_METHOD'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'TOO_MANY_SESSIONS'
  | 'TOO_MANY_CLIENT_SESSIONS'
  | 'LIMIT_EXCEEDED'
  | 'TIMEOUT'
  | 'REFUSED'
  | 'SHUTTING_DOWN'
  | 'UNAVAILABLE';

// ## The error class
//
// `status` is what goes on the wire; `message` doubles as the HTTP reason
// phrase and the body's headline, so it must stay short, printable ASCII.
/** A client fault: carries the HTTP status to answer with and a stable code. */
export class ProtocolError extends Error {
  /** The HTTP status the client should receive. */
  readonly status: number;
  /** A stable, machine-readable name for the fault. */
  readonly code: ProtocolErrorCode;
  /** Extra response headers, such as `Retry-After`. */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * @param status - HTTP status code for the response.
   * @param code - stable identifier of the fault.
   * @param message - one short sentence; also the HTTP reason phrase.
   * @param headers - extra headers for the error response.
   */
  constructor(
    status: number,
    code: ProtocolErrorCode,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ProtocolError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

// ## Shorthands
//
// The handler raises a handful of these over and over; naming them keeps
// each call site to one readable line.
/** A `400` for a malformed query parameter. */
export function badQuery(message: string): ProtocolError {
  return new ProtocolError(400, 'BAD_QUERY', message);
}

/** A `400` for a forward-channel body that cannot be decoded. */
export function badBody(message: string): ProtocolError {
  return new ProtocolError(400, 'BAD_BODY', message);
}

/** The `400 Unknown SID` that tells a client its session is gone. */
export function unknownSession(): ProtocolError {
  return new ProtocolError(400, 'UNKNOWN_SID', 'Unknown SID');
}
