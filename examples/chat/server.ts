// # The chat demo: a room over BrowserChannel
//
// `npm start` runs this file. It serves one page that joins a chat room
// with our own `BCSocket` client (`/channel/bcsocket.js`), or, with
// `?client=webchannel`, with Google's WebChannel client, to show the same
// server speaks to both. It also serves the guide, annotated source and
// API reference from `site/dist` (`npm start` builds them first if they
// are missing), and listens on port 4321 unless `PORT` says otherwise,
// the port `npm run chat` (a terminal client) looks for.
//
// The room's little protocol rides on top of BrowserChannel messages:
//
// ```text
// page → server   {"type":"hello","nick":"ada"}
// page → server   {"type":"say","id":"k2j1-7","text":"hi"}      id: the page's own, for resends
// page → server   {"type":"typing"}
// server → pages  {"type":"presence","users":["ada","bob"]}
// server → pages  {"type":"said","id":"k2j1-7","from":"ada","text":"hi"}
// server → pages  {"type":"typing","from":"ada"}
// ```
//
// A page keeps each message until it sees it come back as `said`, and
// sends it again after a reconnect; the server remembers recent ids, so a
// resent message is never shown twice.
import { readFileSync, existsSync, createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import browserChannel, { type Session } from '../../src/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

// ## The room
interface Member {
  readonly session: Session;
  nick: string;
}

/** Creates the chat's HTTP server; `listen` it yourself. */
export function createChatServer() {
  const members = new Set<Member>();
  const seenIds = new Set<string>();
  const broadcast = (message: unknown): void => {
    for (const member of members) if (member.session.state !== 'closed') member.session.send(message);
  };
  const presence = (): void => broadcast({ type: 'presence', users: [...members].map((m) => m.nick).sort() });

  const channel = browserChannel({ base: '/channel' }, (session) => {
    const member: Member = { session, nick: cleanNick(session.query.nick) };
    members.add(member);
    presence();
    session.on('message', (message) => handle(member, message as Record<string, unknown>));
    session.on('close', () => {
      members.delete(member);
      presence();
    });
  });

  function handle(member: Member, message: Record<string, unknown> | null): void {
    if (message === null || typeof message !== 'object') return;
    if (message.type === 'hello') {
      member.nick = cleanNick(message.nick);
      presence();
    } else if (message.type === 'say' && typeof message.text === 'string' && typeof message.id === 'string') {
      if (seenIds.has(message.id)) return void member.session.send({ type: 'said', id: message.id, from: member.nick, text: message.text, again: true });
      remember(seenIds, message.id);
      broadcast({ type: 'said', id: message.id, from: member.nick, text: message.text.slice(0, 2000) });
    } else if (message.type === 'typing') {
      broadcast({ type: 'typing', from: member.nick });
    }
  }

  const server = http.createServer((req, res) => channel(req, res, () => serveStatic(req, res)));
  return { server, channel, members };
}

/** The port `npm start` and `npm run chat` use unless `PORT` is set. */
export const DEFAULT_PORT = 4321;

function cleanNick(nick: unknown): string {
  const text = typeof nick === 'string' ? nick.trim().slice(0, 24) : '';
  return text || `guest-${Math.random().toString(36).slice(2, 6)}`;
}

// Ids are remembered for the last 10,000 messages, enough to catch resends.
function remember(ids: Set<string>, id: string): void {
  ids.add(id);
  if (ids.size > 10_000) ids.delete(ids.values().next().value!);
}

// ## Static files
//
// The page, its icon, the WebChannel bundle (built once, on first
// request, from `@firebase/webchannel-wrapper` with esbuild), and the
// built site, whose links are absolute from `/`.
//
// Whatever a request holds, the demo answers it and keeps running, as the
// library does: a path that does not decode (`/%E0%A4%A`) or a URL that
// does not parse is a `400`, anything that throws here is a `500` for
// that request alone, and a file that fails while streaming ends only its
// response.
let webChannelBundle: string | null = null;

function serveStatic(req: http.IncomingMessage, res: http.ServerResponse): void {
  try {
    const path = decodedPath(req.url ?? '/');
    if (path === null) return plain(res, 400, 'Bad request: the path does not decode');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'Method not allowed');
    if (path === '/' || path === '/index.html') return send(res, 'text/html; charset=utf-8', readFileSync(new URL('./page.html', import.meta.url)));
    if (path === '/favicon.ico' || path === '/favicon.svg') return send(res, 'image/svg+xml', FAVICON);
    if (path === '/webchannel.js') return send(res, 'application/javascript; charset=utf-8', webChannel());
    serveSite(path, res);
  } catch (error) {
    console.error('chat demo:', error);
    if (res.headersSent) res.destroy();
    else plain(res, 500, 'Internal error');
  }
}

// The path, %-decoded, or null when it cannot be.
function decodedPath(url: string): string | null {
  try {
    return decodeURIComponent(new URL(url, 'http://x').pathname);
  } catch {
    return null;
  }
}

// A speech bubble, as SVG: browsers ask for `/favicon.ico` whatever the page says.
const FAVICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="2" y="4" width="28" height="19" rx="5" fill="#3a6ea5"/><path d="M9 23l-2 7 8-7z" fill="#3a6ea5"/><circle cx="10" cy="13.5" r="2" fill="#fff"/><circle cx="16" cy="13.5" r="2" fill="#fff"/><circle cx="22" cy="13.5" r="2" fill="#fff"/></svg>';

function webChannel(): string {
  if (webChannelBundle) return webChannelBundle;
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const result = esbuild.buildSync({
    stdin: { contents: "export { createWebChannelTransport, WebChannel } from '@firebase/webchannel-wrapper/webchannel-blob';", resolveDir: root },
    bundle: true, format: 'iife', globalName: 'WebChannelWrapper', write: false, platform: 'browser', logLevel: 'silent',
  });
  webChannelBundle = result.outputFiles[0]!.text;
  return webChannelBundle;
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.js': 'text/javascript', '.svg': 'image/svg+xml', '.woff2': 'font/woff2', '.json': 'application/json' };

function serveSite(path: string, res: http.ServerResponse): void {
  const dist = join(root, 'site/dist');
  if (!existsSync(join(dist, 'index.html'))) return plain(res, 404, 'The site is not built: run npm run docs:build (npm start does it)');
  let file = join(dist, normalize(path));
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
  if (!file.startsWith(`${dist}/`) || !existsSync(file)) return plain(res, 404, 'Not found');
  res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

function send(res: http.ServerResponse, type: string, body: string | Buffer): void {
  res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-cache' });
  res.end(body);
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

// ## Running it
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { server, channel } = createChatServer();
  server.on('error', (error: NodeJS.ErrnoException) => {
    const busy = error.code === 'EADDRINUSE' ? ' (in use: set PORT to another port, e.g. PORT=4400 npm start)' : '';
    console.error(`chat demo: cannot listen: ${error.message}${busy}`);
    process.exit(1);
  });
  server.listen(Number(process.env.PORT ?? DEFAULT_PORT), '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    console.log(`chat demo at http://127.0.0.1:${port}/   (Google's WebChannel client: http://127.0.0.1:${port}/?client=webchannel)`);
    console.log(`terminal client: ${port === DEFAULT_PORT ? '' : `PORT=${port} `}npm run chat -- <nick>`);
  });
  process.on('SIGINT', () => {
    channel.close();
    server.closeAllConnections();
    server.close();
  });
}
