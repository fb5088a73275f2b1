// # ShareDB over BrowserChannel
//
// The server side of the guide "Collaborative editing with ShareDB"
// (`docs/sharedb.md`, which shows this file): every session becomes a
// ShareDB client connection through `sessionStream`. Run it with
// `npx tsx examples/sharedb/server.ts`; browsers connect with a
// `BCSocket` (ours or the Closure one) wrapped in ShareDB's `Connection`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import ShareDB from 'sharedb';
import browserChannel, { type BrowserChannelOptions, type Session, sessionStream } from '../../src/index.ts';

/**
 * Creates an HTTP server whose `/channel` carries ShareDB; `listen` it yourself.
 * @param onSession - sees each new session first (for logging, or a test).
 */
export function createShareDbServer(backend = new ShareDB(), options: BrowserChannelOptions = {}, onSession = (_session: Session): void => {}) {
  const channel = browserChannel({ base: '/channel', ...options }, (session, req) => {
    onSession(session);
    backend.listen(sessionStream(session), req);
  });
  const server = http.createServer((req, res) => channel(req, res));
  return { server, channel, backend };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { server } = createShareDbServer();
  server.listen(Number(process.env.PORT ?? 4322), '127.0.0.1', () => {
    console.log(`ShareDB over BrowserChannel at http://127.0.0.1:${(server.address() as AddressInfo).port}/channel`);
  });
}
