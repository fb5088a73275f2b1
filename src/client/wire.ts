// # Wire: building the client's requests
//
// Every request the client makes is a URL under the channel's base plus a
// handful of query parameters, and forward requests carry maps as a form
// body. This module builds both, so the protocol engine (`channel.ts`)
// reads as a sequence of steps rather than string handling.
//
// ```http
// POST /channel/bind?VER=8&SID=Qm9v…&RID=4243&AID=5&a=k2j1x9&zx=8fj2 HTTP/1.1
// Content-Type: application/x-www-form-urlencoded
//
// count=2&ofs=7&req0_JSON=%7B%22a%22%3A1%7D&req1__S=hi
// ```
/** URL and form-body construction for client requests. @module */

/** A map as the client sends it: string keys to string values. */
export type ClientMap = Record<string, string>;

// ## URLs
//
// `zx` is a random cache buster, as the Closure client sends: some proxies
// cache GETs whatever the headers say. Parameters the app asked for
// (`extraParams`, the affinity token) ride on every request.
/** Builds `<base><path>?<params>` with a cache buster, skipping undefined values. */
export function channelUrl(
  base: string,
  path: string,
  params: Record<string, string | number | undefined>,
): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params))
    if (value !== undefined) query.set(name, String(value));
  query.set('zx', Math.random().toString(36).slice(2, 10));
  return `${base}${path}?${query}`;
}

// ## Form bodies
//
// Maps are numbered for the life of the session; `ofs` says where this
// batch starts, and each key is prefixed with the map's position in the
// batch:
//
// ```text
// count=2&ofs=7&req0_JSON=…&req1__S=hi
// ```
/** Encodes a batch of maps, the first numbered `ofs`, as a form body. */
export function encodeMaps(maps: readonly ClientMap[], ofs: number): string {
  const form = new URLSearchParams();
  form.set('count', String(maps.length));
  if (maps.length > 0) form.set('ofs', String(ofs));
  maps.forEach((map, index) => {
    for (const [key, value] of Object.entries(map)) form.append(`req${index}_${key}`, value);
  });
  return form.toString();
}

// ## Random tokens
//
// The affinity token only has to be distinct between open sockets, so a
// proxy can hash on it; it is not a secret.
/** A short random token of letters and digits. */
export function randomToken(): string {
  return Math.random().toString(36).slice(2, 12);
}
