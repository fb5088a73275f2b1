// # Headers: the same few lines on every response
//
// Every answer the server gives, success or error, carries three layers of
// headers, applied in this order so that later layers win:
//
// 1. **No-cache headers.** BrowserChannel URLs already carry a random `zx`
//    parameter, but a proxy that ignores query strings must still never
//    serve one client's back channel to another.
// 2. **CORS**, when the app asked for it with `cors`. 2.1.0 applied a
//    `cors` *function* only to the first test request; here it runs for
//    every response, errors included, because a browser hides the status
//    of any cross-origin response that lacks the header, and the client
//    then cannot tell `Unknown SID` from a dead network.
// 3. **The app's own `headers`**, verbatim.
//
// ```http
// HTTP/1.1 200 OK
// Content-Type: text/plain; charset=utf-8
// Cache-Control: no-cache, no-store, max-age=0, must-revalidate
// Pragma: no-cache
// Expires: Fri, 01 Jan 1990 00:00:00 GMT
// X-Content-Type-Options: nosniff
// Access-Control-Allow-Origin: https://app.example
// Access-Control-Expose-Headers: X-HTTP-Session-Id, X-HTTP-Initial-Response,
//   X-Client-Wire-Protocol, X-Session-Recovery
// ```
/** Response headers (no-cache, CORS, the app's own) and shared request-header values. @module */
import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from 'node:http';
import type { ResolvedOptions } from './options.ts';

// ## Content types
//
// Three bodies leave this server: length-prefixed text (the xmlhttp
// transport and every forward-channel answer), HTML with script chunks (the
// old iframe transport), and plain JSON (the first test request).
/** The content types the server answers with. */
export const CONTENT_TYPE = {
  text: 'text/plain; charset=utf-8',
  html: 'text/html; charset=utf-8',
  json: 'application/json; charset=utf-8',
} as const;

// ## Streaming through a proxy
//
// nginx buffers a response before passing it on unless told otherwise; a
// back channel would then reach the client all at once, at its end. This
// header tells nginx (and proxies copying it) not to, for this response
// alone, even where the config forgot `proxy_buffering off`.
/** Extra header for back channels: ask proxies not to buffer. */
export const UNBUFFERED: Readonly<OutgoingHttpHeaders> = Object.freeze({
  'X-Accel-Buffering': 'no',
});

// ## Layer 1: no caching, no sniffing
//
// `nosniff` matters for the text transport: it stops an old browser from
// guessing that a chunk of user data is HTML and rendering it.
const NO_CACHE: Readonly<OutgoingHttpHeaders> = Object.freeze({
  'Cache-Control': 'no-cache, no-store, max-age=0, must-revalidate',
  Pragma: 'no-cache',
  Expires: 'Fri, 01 Jan 1990 00:00:00 GMT',
  'X-Content-Type-Options': 'nosniff',
});

// ## Layer 2: CORS
//
// WebChannel clients read three response headers of ours. A cross-origin
// page can read a response header only if `Access-Control-Expose-Headers`
// names it, so we name them whenever CORS is on.
const EXPOSED =
  'X-HTTP-Session-Id, X-HTTP-Initial-Response, X-Client-Wire-Protocol, X-Session-Recovery';

function corsHeaders(
  options: ResolvedOptions,
  req: IncomingMessage,
  res: ServerResponse,
): OutgoingHttpHeaders {
  const { cors } = options;
  if (cors === null) return {};
  const headers: OutgoingHttpHeaders = {
    'Access-Control-Allow-Origin': typeof cors === 'function' ? cors(req, res) : cors,
    'Access-Control-Expose-Headers': EXPOSED,
  };
  // The answer depends on the request's `Origin` when `cors` is a function,
  // so a shared cache must key on it.
  if (typeof cors === 'function') headers.Vary = 'Origin';
  if (options.corsAllowCredentials) headers['Access-Control-Allow-Credentials'] = 'true';
  return headers;
}

// ## Putting the layers together
/**
 * Builds the headers for one response.
 * @param contentType - one of {@link CONTENT_TYPE}, or null for an empty body.
 * @param extra - per-response headers (such as `X-Accept`), applied before the app's own.
 */
export function responseHeaders(
  options: ResolvedOptions,
  req: IncomingMessage,
  res: ServerResponse,
  contentType: string | null,
  extra?: OutgoingHttpHeaders,
): OutgoingHttpHeaders {
  if (typeof options.cors !== 'function' && isEmpty(extra)) {
    return sharedHeaders(options, contentType);
  }
  const headers: OutgoingHttpHeaders = { ...NO_CACHE };
  if (contentType !== null) headers['Content-Type'] = contentType;
  Object.assign(headers, corsHeaders(options, req, res), extra, options.headers);
  return headers;
}

// Most responses need nothing of the request: no `cors` function to ask,
// no headers of their own. Theirs are the same object every time, built
// once per server and content type (`node:http` only reads it), rather
// than three objects merged anew for every response.
const shared = new WeakMap<ResolvedOptions, Map<string | null, OutgoingHttpHeaders>>();

function sharedHeaders(options: ResolvedOptions, contentType: string | null): OutgoingHttpHeaders {
  let byType = shared.get(options);
  if (byType === undefined) shared.set(options, (byType = new Map()));
  let headers = byType.get(contentType);
  if (headers === undefined) {
    headers = { ...NO_CACHE };
    if (contentType !== null) headers['Content-Type'] = contentType;
    if (options.cors !== null) {
      headers['Access-Control-Allow-Origin'] = options.cors as string;
      headers['Access-Control-Expose-Headers'] = EXPOSED;
      if (options.corsAllowCredentials) headers['Access-Control-Allow-Credentials'] = 'true';
    }
    headers = Object.freeze(Object.assign(headers, options.headers));
    byType.set(contentType, headers);
  }
  return headers;
}

function isEmpty(headers: OutgoingHttpHeaders | undefined): boolean {
  for (const _ in headers) return false;
  return true;
}

// ## Preflight
//
// A page on another origin that adds its own request headers (WebChannel's
// `messageHeaders`, or `X-Client-Protocol`) makes the browser ask first:
//
// ```http
// OPTIONS /channel/bind?VER=8 HTTP/1.1
// Origin: https://app.example
// Access-Control-Request-Method: POST
// Access-Control-Request-Headers: x-client-protocol, content-type
// ```
//
// We allow the headers it asks for, after checking that the list is just
// header names, so that nothing the client sends is reflected raw.
const HEADER_LIST = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/;

/** Extra headers for a `204` answer to a CORS preflight `OPTIONS` request. */
export function preflightHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  const asked = req.headers['access-control-request-headers'];
  const headers: OutgoingHttpHeaders = {
    'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
    'Access-Control-Max-Age': '86400',
  };
  if (typeof asked === 'string' && asked.length <= 2048 && HEADER_LIST.test(asked.trim())) {
    headers['Access-Control-Allow-Headers'] = asked.trim();
  }
  return headers;
}

// ## Request headers a session keeps
//
// `session.headers` keeps the creating request's headers for the life of
// the session. To any reader it is the object Node parsed.
//
// > **Note (memory):** most header values are the same for every client
// > of an app (`Host`, `Origin`, `Accept-Language`, a few `User-Agent`s),
// > but Node parses each request into fresh strings. Swapping every value
// > for one shared copy makes an idle session a few hundred bytes lighter.
// > The table of copies is bounded: values over 256 characters are left
// > alone, and at 1024 entries it starts over.
//
// Credentials (`Cookie`, `Authorization`) are never shared, so a secret
// is never kept alive by anything but its own session.
const SHARED_VALUE_MAX_CHARS = 256;
const SHARED_TABLE_MAX_ENTRIES = 1024;
const NEVER_SHARED = new Set(['cookie', 'authorization', 'proxy-authorization']);
const sharedValues = new Map<string, string>();

/** Swaps each value of `headers` (in place) for a shared copy of the same text. */
export function shareHeaderValues(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name in headers) {
    const value = headers[name];
    if (typeof value !== 'string' || value.length > SHARED_VALUE_MAX_CHARS) continue;
    if (NEVER_SHARED.has(name)) continue;
    const shared = sharedValues.get(value);
    if (shared !== undefined) headers[name] = shared;
    else if (sharedValues.size < SHARED_TABLE_MAX_ENTRIES) sharedValues.set(value, value);
    else sharedValues.clear();
  }
  return headers;
}
