// # Client file: serving the browser client at `<base>/bcsocket.js`
//
// node-browserchannel hosted its browser client beside the channel, so a
// page needed no build step:
//
// ```html
// <script src="/channel/bcsocket.js"></script>
// ```
//
// We host our own client (`src/client/`, bundled into `dist/bcsocket.js`
// by `npm run build`). Browsers cache it, and revalidate with the `ETag`,
// a hash of the content: an unchanged file costs a `304` and no body.
//
// ```http
// GET /channel/bcsocket.js HTTP/1.1
// If-None-Match: "5d41402abc4b2a76"
//
// HTTP/1.1 304 Not Modified
// ```
/** Serves the bundled browser client with an ETag. @module */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { ProtocolError } from './errors.ts';

// ## Finding the bundle
//
// From the published package this module runs as `dist/esm/…` or
// `dist/cjs/…`, beside `dist/bcsocket.js`; from a checkout it runs from
// `src/`. The file is read once, on the first request, and kept.
const CANDIDATES = ['../bcsocket.js', '../dist/bcsocket.js'];

interface ClientFile {
  readonly body: Buffer;
  readonly etag: string;
}

let cached: ClientFile | null = null;

function load(): ClientFile | null {
  if (cached) return cached;
  for (const candidate of CANDIDATES) {
    try {
      const body = readFileSync(new URL(candidate, import.meta.url));
      const hash = createHash('sha256').update(body).digest('base64url');
      cached = { body, etag: `"${hash.slice(0, 22)}"` };
      return cached;
    } catch {
      // Not here; try the next place.
    }
  }
  return null;
}

// ## Answering
//
// `GET` and `HEAD` only. `Cache-Control: no-cache` means "revalidate
// before use", not "do not store": the browser keeps the file and asks
// with `If-None-Match` each time.
/**
 * Answers a request for `<base>/bcsocket.js`.
 * @param headers - the usual response headers (CORS and the app's own).
 * @throws ProtocolError - `405` for other methods, `404` when the bundle was not built.
 */
export function serveClient(
  req: IncomingMessage,
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new ProtocolError(405, 'BAD_METHOD', 'Method not allowed');
  }
  const file = load();
  if (file === null) {
    throw new ProtocolError(404, 'NOT_FOUND', 'Client bundle not built (run npm run build)');
  }
  const common = { ...headers, ETag: file.etag, 'Cache-Control': 'no-cache' };
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, common);
    return void res.end();
  }
  res.writeHead(200, {
    ...common,
    'Content-Type': 'application/javascript; charset=utf-8',
    'Content-Length': file.body.length,
  });
  res.end(req.method === 'HEAD' ? undefined : file.body);
}
