// Test helpers: a real server on 127.0.0.1 and a raw HTTP client that shows
// every byte. Nothing here mocks the server; tests talk to it over TCP.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import browserChannel, { type BrowserChannelMiddleware, type BrowserChannelOptions, type Session } from '../src/index.ts';

export interface TestServer {
  readonly port: number;
  readonly base: string;
  readonly middleware: BrowserChannelMiddleware;
  readonly server: http.Server;
  readonly sessions: Session[];
  url(path: string): string;
  close(): Promise<void>;
}

// Starts a server whose onConnect records every session and then runs the
// test's own onConnect.
export async function startServer(
  options: BrowserChannelOptions = {},
  onConnect: (session: Session, req: http.IncomingMessage) => unknown = () => {},
): Promise<TestServer> {
  const sessions: Session[] = [];
  const middleware = browserChannel(options, (session, req) => {
    sessions.push(session);
    return onConnect(session, req);
  });
  const server = http.createServer((req, res) =>
    middleware(req, res, () => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('next() reached');
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const base = options.base ?? '/channel';
  return {
    port,
    base,
    middleware,
    server,
    sessions,
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    close: () =>
      new Promise<void>((resolve) => {
        middleware.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface RawResponse {
  readonly status: number;
  readonly statusMessage: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

// One request, the whole body read as text. `from` is the loopback
// address to send from (127.0.0.2, …), for tests that need several clients.
export function request(
  port: number,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
  from?: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, localAddress: from }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) {
      if (!headers['Content-Type'] && !headers['content-type']) req.setHeader('Content-Type', 'application/x-www-form-urlencoded');
      req.end(body);
    } else req.end();
  });
}

// Parses length-prefixed chunks ("<n>\n<json>") into their JSON values,
// checking each prefix against the UTF-16 length of the text that follows.
export function parseChunks(text: string): unknown[] {
  const chunks: unknown[] = [];
  let at = 0;
  while (at < text.length) {
    const newline = text.indexOf('\n', at);
    if (newline === -1) throw new Error(`no length line at ${at}: ${JSON.stringify(text.slice(at))}`);
    const length = Number(text.slice(at, newline));
    if (!Number.isInteger(length)) throw new Error(`bad length line ${JSON.stringify(text.slice(at, newline))}`);
    const json = text.slice(newline + 1, newline + 1 + length);
    if (json.length !== length) throw new Error(`chunk shorter than its prefix ${length}`);
    chunks.push(JSON.parse(json));
    at = newline + 1 + length;
  }
  return chunks;
}

// Creates a session over raw HTTP and returns its id and the handshake chunk.
export async function createSession(port: number, base = '/channel', extraQuery = '', body = 'count=0') {
  const response = await request(port, 'POST', `${base}/bind?VER=8&RID=1000&CVER=7${extraQuery}`, body);
  if (response.status !== 200) throw new Error(`create failed: ${response.status} ${response.body}`);
  const [arrays] = parseChunks(response.body) as [Array<[number, unknown]>];
  const handshake = arrays[0]![1] as [string, string, string | null, number];
  return { sid: handshake[1], arrays, response };
}

// A streaming back channel that collects text as it arrives.
export interface OpenStream {
  readonly response: Promise<http.IncomingMessage>;
  text(): string;
  waitFor(predicate: (text: string) => boolean, ms?: number): Promise<string>;
  ended: Promise<string>;
  destroy(): void;
}

export function openStream(port: number, path: string): OpenStream {
  let text = '';
  let waiters: Array<() => void> = [];
  let resolveEnd!: (text: string) => void;
  const ended = new Promise<string>((resolve) => (resolveEnd = resolve));
  const req = http.request({ host: '127.0.0.1', port, method: 'GET', path, agent: false });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        for (const waiter of waiters) waiter();
      });
      res.on('end', () => resolveEnd(text));
      res.on('close', () => resolveEnd(text));
      resolve(res);
    });
    req.on('error', (error) => {
      resolveEnd(text);
      reject(error);
    });
  });
  response.catch(() => {});
  req.end();
  return {
    response,
    text: () => text,
    ended,
    destroy: () => req.destroy(),
    waitFor(predicate, ms = 3000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!predicate(text)) return;
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== check);
          resolve(text);
        };
        const timer = setTimeout(() => reject(new Error(`timed out waiting; got ${JSON.stringify(text)}`)), ms);
        waiters.push(check);
        check();
      });
    },
  };
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Resolves when `predicate` holds, polling every few milliseconds.
export async function until(predicate: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

// Starts a server in a child process (so load and server use both cores),
// with the given options source and an extra `/stats` route that runs the
// garbage collector and reports heap, live sessions and active handles.
export interface ChildServer {
  readonly port: number;
  readonly child: ChildProcess;
  stderr(): string;
  stats(): Promise<{ heapUsed: number; sessions: number; resources: number }>;
  stop(): Promise<void>;
}

export async function startChildServer(optionsSource: string): Promise<ChildServer> {
  const source = `
import http from 'node:http';
import browserChannel from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};
const channel = browserChannel(${optionsSource}, (session) => session.on('message', (m) => session.send(m)));
channel.on('error', (error) => console.error('APP ERROR', error));
const server = http.createServer((req, res) => channel(req, res, () => {
  globalThis.gc?.(); globalThis.gc?.();
  res.end(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed, sessions: channel.sessionCount,
    resources: process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length }));
}));
server.keepAliveTimeout = 1000;
server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
`;
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'] });
  let errors = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (errors += text));
  let output = '';
  child.stdout!.setEncoding('utf8');
  while (!/PORT (\d+)/.test(output)) output += (await once(child.stdout!, 'data'))[0];
  const port = Number(/PORT (\d+)/.exec(output)![1]);
  return {
    port,
    child,
    stderr: () => errors,
    stats: async () => JSON.parse((await request(port, 'GET', '/stats')).body),
    stop: async () => {
      child.kill();
      await once(child, 'exit');
    },
  };
}
