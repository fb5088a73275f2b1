// # Query: the parameters on every URL
//
// BrowserChannel says most of what it says in the query string. A
// forward-channel POST, for example:
//
// ```text illustrative
// POST /channel/bind?VER=8&SID=Qm9v…&RID=4243&AID=12&zx=k2j1&t=1
// ```
//
// | name | meaning |
// |---|---|
// | `VER` | protocol version, always `8` |
// | `SID` | the session id (absent on the create request) |
// | `RID` | request id of a forward request; `rpc` on a back channel |
// | `AID` | newest array id the client has received |
// | `CI` | `0`: the back channel may stream; `1`: end it after each chunk |
// | `TYPE` | `xmlhttp`, `html` or `terminate` |
// | `CVER` | the app's version, as the client was told it |
// | `OSID`, `OAID` | on a reconnect: the old session and what it received |
// | `zx`, `t` | cache busting and the retry count; ignored |
//
// The parser below is small and strict about one thing: its result has
// no prototype, so `?__proto__=x` is just a parameter. The first value of
// a repeated name wins, `+` means a space, and a malformed `%` escape is
// kept as written rather than failing the request.
/** Query-string parsing into prototype-less objects. @module */

/** Query parameters, first value wins, on an object with no prototype. */
export type Query = Record<string, string>;

// ## Parsing
//
// > **Note (speed):** hand-written rather than `URLSearchParams`. Every
// > request parses a query and most values need no decoding, so the common
// > case is two `indexOf`s and a `slice` per parameter.
/** Parses `a=1&b=2` (no leading `?`) into a prototype-less object. */
export function parseQuery(text: string): Query {
  const query: Query = Object.create(null) as Query;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    const equals = text.indexOf('=', start);
    const split = equals === -1 || equals > end ? end : equals;
    const name = decode(text.slice(start, split));
    if (name !== '' && !(name in query)) {
      query[name] = decode(text.slice(split + 1, Math.max(split + 1, end)));
    }
    start = end + 1;
  }
  return query;
}

// A request URL is a path and, after the first `?`, its query.
/** Splits a request URL into its path and its parsed query. */
export function parseUrl(url: string): { path: string; query: Query } {
  const mark = url.indexOf('?');
  if (mark === -1) return { path: url, query: parseQuery('') };
  return { path: url.slice(0, mark), query: parseQuery(url.slice(mark + 1)) };
}

function decode(text: string): string {
  if (text.indexOf('%') === -1 && text.indexOf('+') === -1) return text;
  const spaced = text.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}
