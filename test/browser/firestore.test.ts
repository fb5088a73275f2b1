/// <reference lib="dom" />
// Firestore's web SDK, unchanged, against our server at the SDK's own URLs.
//
// The `firebase` package's browser build runs in Debian's Chromium, told
// with `connectFirestoreEmulator` that the backend is 127.0.0.1:<port>. It
// then opens its Listen and Write streams with WebChannel at
//
// ```text
// /google.firestore.v1.Firestore/Listen/channel?VER=8&database=…&RID=…
// /google.firestore.v1.Firestore/Write/channel?VER=8&database=…&RID=…
// ```
//
// and each path is a `base` of ours, mounted as is: no request rewritten.
// Behind the channels sits a small Firestore written here, in the v1 JSON
// shapes the SDK reads (`fromWatchChange`, `PersistentWriteStream` in
// @firebase/firestore): `targetChange`, `documentChange`, and write
// responses carrying a `streamToken`. Three variants: same origin,
// cross-origin with `cors` and credentials, and forced long polling.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../chromium.ts';
import browserChannel, { type BrowserChannelOptions, type Session } from '../../src/index.ts';

const PROJECT = 'demo-bc';
const DATABASE = `projects/${PROJECT}/databases/(default)`;
const LOBBY = `${DATABASE}/documents/rooms/lobby`;
const LISTEN = '/google.firestore.v1.Firestore/Listen/channel';
const WRITE = '/google.firestore.v1.Firestore/Write/channel';

// ## A minimal Firestore
//
// Documents in a map, one version counter for the whole database, and the
// Listen sessions with the targets each has added. Every response goes down
// as the one element of an array: the SDK reads `event.data[0]`.
type Fields = Record<string, unknown>;
interface StoredDoc { fields: Fields; createTime: string; updateTime: string }

function createFirestore() {
  const docs = new Map<string, StoredDoc>();
  const listeners = new Map<Session, Map<number, string>>();
  let version = 0;
  const at = (n: number): string => new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString();
  const token = (n: number): string => Buffer.from(`v${n}`).toString('base64');
  const reply = (session: Session, message: unknown): void => void session.send([message]);
  const documentJson = (name: string) => ({ name, ...docs.get(name)! });

  // A consistent snapshot of everything: a target change for no target,
  // with a read time (`versionFromListenResponse`).
  const global = (session: Session, n: number): void => reply(session, { targetChange: { targetIds: [], readTime: at(n), resumeToken: token(n) } });

  function listen(session: Session, request: { addTarget?: { targetId: number; documents?: { documents: string[] } }; removeTarget?: number }): void {
    const targets = listeners.get(session)!;
    if (request.addTarget) {
      const { targetId, documents } = request.addTarget;
      const name = documents?.documents[0];
      assert.ok(name, 'only document targets are served here');
      targets.set(targetId, name);
      const n = version;
      reply(session, { targetChange: { targetChangeType: 'ADD', targetIds: [targetId] } });
      if (docs.has(name)) reply(session, { documentChange: { document: documentJson(name), targetIds: [targetId] } });
      reply(session, { targetChange: { targetChangeType: 'CURRENT', targetIds: [targetId], resumeToken: token(n), readTime: at(n) } });
      global(session, n);
    }
    if (request.removeTarget !== undefined) {
      targets.delete(request.removeTarget);
      reply(session, { targetChange: { targetChangeType: 'REMOVE', targetIds: [request.removeTarget] } });
    }
  }

  // The first message of a Write stream is the handshake (`{database}`);
  // every later one carries the last `streamToken` and the writes.
  function write(session: Session, request: { streamToken?: string; writes?: Array<{ update?: { name: string; fields?: Fields } }> }, first: boolean): void {
    if (first) return reply(session, { streamId: 'write-1', streamToken: token(version) });
    const writes = request.writes ?? [];
    const updated: string[] = [];
    if (writes.length > 0) version++;
    for (const change of writes) {
      assert.ok(change.update, 'only set writes are served here');
      put(change.update.name, change.update.fields ?? {});
      updated.push(change.update.name);
    }
    reply(session, { streamToken: token(version), commitTime: at(version), writeResults: writes.map(() => ({ updateTime: at(version) })) });
    for (const name of updated) announce(name);
  }

  function put(name: string, fields: Fields): void {
    const createTime = docs.get(name)?.createTime ?? at(version);
    docs.set(name, { fields, createTime, updateTime: at(version) });
  }

  // A change reaches every Listen session watching the document.
  function announce(name: string): void {
    for (const [session, targets] of listeners) {
      const ids = [...targets].filter(([, watched]) => watched === name).map(([id]) => id);
      if (ids.length === 0) continue;
      reply(session, { documentChange: { document: documentJson(name), targetIds: ids } });
      global(session, version);
    }
  }

  return {
    docs,
    /** Changes a document as another client would, and tells the watchers. */
    update(name: string, fields: Fields): void {
      version++;
      put(name, fields);
      announce(name);
    },
    onListen(session: Session): void {
      listeners.set(session, new Map());
      session.on('message', (message) => listen(session, message as never));
      session.on('close', () => listeners.delete(session));
    },
    onWrite(session: Session): void {
      let first = true;
      session.on('message', (message) => {
        write(session, message as never, first);
        first = false;
      });
    },
  };
}

// ## The servers
//
// One `node:http` server holds both channels, each mounted at the SDK's own
// path. Anything that reaches the end is recorded: the test fails if the
// SDK asked for a URL we did not answer.
interface Backend {
  readonly port: number;
  readonly store: ReturnType<typeof createFirestore>;
  readonly requests: string[];
  readonly unanswered: string[];
  readonly sessions: Session[];
  close(): Promise<void>;
}

async function startBackend(options: BrowserChannelOptions, page: string | null): Promise<Backend> {
  const store = createFirestore();
  const sessions: Session[] = [];
  const listen = browserChannel({ ...options, base: LISTEN }, (session) => (sessions.push(session), store.onListen(session)));
  const write = browserChannel({ ...options, base: WRITE }, (session) => (sessions.push(session), store.onWrite(session)));
  const requests: string[] = [];
  const unanswered: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (page !== null && req.url === '/') return void res.writeHead(200, { 'Content-Type': 'text/html' }).end(page);
    if (req.url === '/favicon.ico') return void res.writeHead(204).end();
    listen(req, res, () =>
      write(req, res, () => {
        unanswered.push(`${req.method} ${req.url}`);
        res.writeHead(404).end();
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    store,
    requests,
    unanswered,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        listen.close();
        write.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// A server for the page alone, on another port: another origin, same site.
async function startPageServer(page: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/') res.writeHead(200, { 'Content-Type': 'text/html' }).end(page);
    else res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

// ## The browser
let browser: Browser;
let pageHtml: string;

before(async () => {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./firestore-page.ts', import.meta.url))],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    write: false,
    logLevel: 'warning',
  });
  const script = bundle.outputFiles[0]!.text.replace(/<\/script/gi, '<\\/script');
  pageHtml = `<!doctype html><meta charset="utf-8"><title>firestore</title><script>${script}</script>`;
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

type PageApi = {
  fs: {
    snapshots: Array<{ data: unknown; fromCache: boolean; pending: boolean; at: number }>;
    errors: string[];
    open(host: string, port: number, forceLongPolling: boolean, debug: boolean): void;
    read(path: string): Promise<unknown>;
    listen(path: string): void;
    write(path: string, data: Record<string, unknown>): Promise<void>;
  };
};

async function waitFor(page: Page, condition: string, timeout = 20_000): Promise<void> {
  try {
    await page.waitForFunction(condition, undefined, { timeout });
  } catch {
    const state = await page.evaluate(() => JSON.stringify((window as unknown as PageApi).fs));
    throw new Error(`timed out waiting for ${condition}; page saw ${state}`);
  }
}

// ## The scenario, the same in every variant
//
// Read a document the server has; watch it and see a change made on the
// server arrive within a second; `setDoc`, acknowledged by the Write
// stream and stored on the server.
async function scenario(page: Page, backend: Backend, forceLongPolling: boolean): Promise<void> {
  backend.store.update(LOBBY, { topic: { stringValue: 'welcome' }, count: { integerValue: '1' } });
  const debug = process.env.FIRESTORE_DEBUG === '1';
  if (debug) page.on('console', (message) => console.log('page:', message.text()));
  await page.evaluate(([port, longPolling, verbose]) => (window as unknown as PageApi).fs.open('127.0.0.1', port, longPolling, verbose), [backend.port, forceLongPolling, debug] as const);

  const read = await page.evaluate(() => (window as unknown as PageApi).fs.read('rooms/lobby'));
  assert.deepEqual(read, { topic: 'welcome', count: 1 });

  await page.evaluate(() => (window as unknown as PageApi).fs.listen('rooms/lobby'));
  await waitFor(page, "fs.snapshots.some((s) => !s.fromCache && s.data && s.data.topic === 'welcome')");
  const sentAt = Date.now();
  backend.store.update(LOBBY, { topic: { stringValue: 'live' }, count: { integerValue: '2' } });
  await waitFor(page, "fs.snapshots.some((s) => s.data && s.data.topic === 'live')");
  const live = await page.evaluate(() => (window as unknown as PageApi).fs.snapshots.find((s) => (s.data as { topic?: string } | null)?.topic === 'live')!);
  assert.deepEqual(live.data, { topic: 'live', count: 2 });
  assert.equal(live.fromCache, false);
  assert.ok(live.at - sentAt < 1000, `live update took ${live.at - sentAt} ms`);

  await page.evaluate(() => (window as unknown as PageApi).fs.write('rooms/lobby', { topic: 'from the browser', count: 3 }));
  assert.deepEqual(backend.store.docs.get(LOBBY)!.fields, { topic: { stringValue: 'from the browser' }, count: { integerValue: '3' } });
  // Once acknowledged, the watcher sees the server's version, no longer pending.
  await waitFor(page, "fs.snapshots.some((s) => !s.pending && !s.fromCache && s.data && s.data.topic === 'from the browser')");

  assert.deepEqual(await page.evaluate(() => (window as unknown as PageApi).fs.errors), []);
  assert.deepEqual(backend.unanswered, [], 'every SDK request was answered by a channel');
  const paths = new Set(backend.requests.map((line) => line.split(' ')[1]!.split('?')[0]));
  paths.delete('/');
  paths.delete('/favicon.ico');
  assert.deepEqual([...paths].sort(), [LISTEN, WRITE], 'the SDK used its own URLs, with nothing appended');
  for (const session of backend.sessions) {
    assert.equal(session.webChannel, true);
    assert.equal(session.query.database, DATABASE, 'messageUrlParams ride on the create request');
  }
}

describe('Firestore web SDK at its own URLs', () => {
  test('same origin: read, live update, setDoc acknowledged', async () => {
    const backend = await startBackend({}, pageHtml);
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`http://127.0.0.1:${backend.port}/`);
      await scenario(page, backend, false);
    } finally {
      await context.close();
      await backend.close();
    }
  });

  test('cross-origin with cors and credentials: the cookie arrives', async () => {
    const site = await startPageServer(pageHtml);
    const origin = `http://127.0.0.1:${site.port}`;
    const backend = await startBackend({ cors: (req) => (req.headers.origin === origin ? origin : 'null'), corsAllowCredentials: true }, null);
    const context = await browser.newContext();
    // Another port is another origin but the same site, so a Lax cookie
    // rides along on credentialed requests (the SDK sets withCredentials).
    await context.addCookies([{ name: 'visit', value: 'cookie-42', url: `http://127.0.0.1:${backend.port}/` }]);
    const page = await context.newPage();
    try {
      await page.goto(`${origin}/`);
      await scenario(page, backend, false);
      for (const session of backend.sessions) {
        assert.equal(session.headers.origin, origin);
        assert.match(String(session.headers.cookie), /visit=cookie-42/);
      }
    } finally {
      await context.close();
      await backend.close();
      await site.close();
    }
  });

  test('forced long polling: every back channel is a long poll (CI=1)', async () => {
    const backend = await startBackend({}, pageHtml);
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`http://127.0.0.1:${backend.port}/`);
      await scenario(page, backend, true);
      const backChannels = backend.requests.filter((line) => line.startsWith('GET ') && /[?&]RID=rpc/.test(line));
      assert.ok(backChannels.length > 0);
      for (const line of backChannels) assert.match(line, /[?&]CI=1(&|$)/);
    } finally {
      await context.close();
      await backend.close();
    }
  });
});
