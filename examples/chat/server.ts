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
// The room's little protocol rides on top of BrowserChannel messages.
// Nobody's session id ever reaches another client (an id is a session's
// only credential), so each member is known to the others by a public id,
// `pid`, made here:
//
// ```text
// page → server   {"type":"say","id":"k2j1-7","text":"hi"}      id: the page's own, for resends
// page → server   {"type":"typing"}
// page → server   {"type":"here","to":"9f3a0c1e"}               answering a newcomer
// server → page   {"type":"welcome","you":{"pid":"4b1d…","nick":"ada","node":"n1"}}
// server → room   {"type":"joined","user":{…}}  {"type":"left","pid":"4b1d…"}
// server → one    {"type":"here","user":{…}}                     an older member, to a newcomer
// server → room   {"type":"presence","count":3}
// server → room   {"type":"said","id":"k2j1-7","from":"ada","text":"hi"}
// server → room   {"type":"typing","from":"ada"}
// ```
//
// Each page builds the member list itself: it hears `joined` and `left`,
// and a newcomer is told who is there by each member's `here`, sent to the
// newcomer's own room (`p:<pid>`). That is all rooms and broadcasts, so it
// works unchanged across processes with the Redis adapter, where no single
// process knows everyone. `presence` carries the count from
// `sessionIds()`, which asks every process.
//
// A page keeps each message until it sees it come back as `said`, and
// sends it again after a reconnect; the server remembers recent ids, so a
// resent message is never shown twice.
import { randomBytes } from 'node:crypto';
import { readFileSync, existsSync, createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import browserChannel, { type BrowserChannelOptions, type Session } from '../../src/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

// ## The room's types
//
// What pages may send (`In`), what the server sends (`Out`) and what the
// app keeps per session (`Member`). The types are promises about shape,
// not checks: `handle` below still checks every field a page sent.
interface User {
  readonly pid: string;
  readonly nick: string;
  readonly node: string;
}
type In = { type?: unknown; id?: unknown; text?: unknown; to?: unknown } | null;
type Out =
  | { type: 'welcome'; you: User }
  | { type: 'joined' | 'here'; user: User }
  | { type: 'left'; pid: string }
  | { type: 'presence'; count: number }
  | { type: 'said'; id: string; from: string; text: string; again?: true }
  | { type: 'typing'; from: string };
type Member = { user: User };
type ChatSession = Session<In, Out, Member>;

// ## Who may join
//
// The nickname arrives with the creating request (`extraParams` from
// `BCSocket`, `messageUrlParams` from WebChannel), so `allowRequest` can
// refuse a bad one before any session exists. `403` is final for our
// client: the page shows the reason instead of reconnecting in a loop.
const NICK = /^[\p{L}\p{N}_.-](?:[\p{L}\p{N} _.-]{0,22}[\p{L}\p{N}_.-])?$/u;
const NICK_RULE = 'Nickname: 1 to 24 letters, digits, spaces, - _ or .';

/** The nickname in a query, or null if it breaks the rule. */
export function nickOf(query: Record<string, string>): string | null {
  const nick = (query.nick ?? '').trim();
  return NICK.test(nick) ? nick : null;
}

// ## The room
/** Creates the chat's HTTP server; `listen` it yourself. Options go to the channel. */
export function createChatServer(options: BrowserChannelOptions = {}) {
  const seenIds = new Set<string>();
  const channel = browserChannel<In, Out, Member>({
    base: '/channel',
    // One browser holds a session per open tab; a script looping on the
    // create request would hold one per request until they time out.
    maxSessionsPerClient: 50,
    ...options,
    allowRequest: (req, { query }) => (nickOf(query) ? true : { status: 403, reason: NICK_RULE }),
  }, (session) => {
    const node = session.id.includes('.') ? session.id.split('.')[0]! : 'local';
    // A session that took over its predecessor (the `recovery` option, on
    // in the multi-process demo) has its user, rooms and missed messages
    // back: it keeps its public id and only says where it is now.
    const user: User = session.recovered
      ? { ...session.data.user, node }
      : { pid: randomBytes(4).toString('hex'), nick: nickOf(session.query)!, node };
    session.data.user = user;
    session.send({ type: 'welcome', you: user });
    session.on('message', (message) => handle(session, message));
    void announce(session);
    session.on('close', (reason) => {
      // Replaced by a session that took it over: the user has not left.
      if (reason !== 'Reconnected') channel.to('lobby').send({ type: 'left', pid: user.pid });
      void presence();
    });
  });

  // A newcomer is announced only once its joins are done. With many
  // processes a join takes a round trip to Redis, and the members who
  // answer `joined` with `here` must find `p:<pid>` already listened to:
  // announced any earlier, the answers could go to a room nobody on the
  // newcomer's process had subscribed yet, and be lost.
  async function announce(session: ChatSession): Promise<void> {
    const { user } = session.data;
    if (!session.recovered) {
      await Promise.all([session.join('lobby'), session.join(`p:${user.pid}`)]);
    }
    if (session.state === 'closed') return;
    session.to('lobby').send({ type: 'joined', user });
    void presence();
  }

  // The count comes from every process; a failure to ask (Redis down)
  // leaves the last count standing rather than crashing anything.
  async function presence(): Promise<void> {
    try {
      const ids = await channel.to('lobby').sessionIds();
      channel.to('lobby').send({ type: 'presence', count: ids.length });
    } catch (error) {
      console.error('chat: presence failed:', error);
    }
  }

  function handle(session: ChatSession, message: In): void {
    if (message === null || typeof message !== 'object' || session.state === 'closed') return;
    const { user } = session.data;
    if (message.type === 'say' && typeof message.text === 'string' && typeof message.id === 'string'
      && message.id.length <= 64) {
      const said = { type: 'said', id: message.id, from: user.nick, text: message.text.slice(0, 2000) } as const;
      if (seenIds.has(message.id)) return void session.send({ ...said, again: true });
      remember(seenIds, message.id);
      channel.to('lobby').send(said);
    } else if (message.type === 'typing') {
      session.to('lobby').send({ type: 'typing', from: user.nick });
    } else if (message.type === 'here' && typeof message.to === 'string' && /^[0-9a-f]{8}$/.test(message.to)) {
      channel.to(`p:${message.to}`).send({ type: 'here', user });
    }
  }

  const server = http.createServer((req, res) => channel(req, res, () => serveStatic(req, res)));
  return { server, channel };
}

/** The port `npm start` and `npm run chat` use unless `PORT` is set. */
export const DEFAULT_PORT = 4321;

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
