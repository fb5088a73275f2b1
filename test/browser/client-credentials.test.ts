/// <reference lib="dom" />
// Our BCSocket in Chromium, cross-origin: with `crossDomainXhr` the page's
// cookie for the channel's origin reaches the server on every request;
// without it, none does. The page is served from one port and the channel
// from another: two origins, one site, so a default (Lax) cookie may ride
// on credentialed requests.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../chromium.ts';
import browserChannel, { type BrowserChannelMiddleware, type Session } from '../../src/index.ts';

let browser: Browser;
let pageServer: http.Server;
let channelServer: http.Server;
let channel: BrowserChannelMiddleware;
let pageOrigin: string;
let channelOrigin: string;
const sessions: Session[] = [];
const cookies: Array<{ url: string; cookie: string | undefined }> = [];

const listen = async (server: http.Server): Promise<string> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

before(async () => {
  pageServer = http.createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>page</title>'));
  pageOrigin = await listen(pageServer);
  channel = browserChannel({ cors: (req) => (req.headers.origin === pageOrigin ? pageOrigin : 'null'), corsAllowCredentials: true }, (session) => {
    sessions.push(session);
    session.on('message', (message) => session.send({ echo: message }));
  });
  channelServer = http.createServer((req, res) => {
    if (req.url!.includes('/bind')) cookies.push({ url: req.url!, cookie: req.headers.cookie });
    channel(req, res);
  });
  channelOrigin = await listen(channelServer);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  channel.close();
  for (const server of [pageServer, channelServer]) {
    server.closeAllConnections();
    server.close();
  }
});

for (const crossDomainXhr of [true, false]) {
  test(`crossDomainXhr: ${crossDomainXhr} ${crossDomainXhr ? 'sends' : 'does not send'} the cookie cross-origin`, async () => {
    const context = await browser.newContext();
    await context.addCookies([{ name: 'who', value: 'ada', url: `${channelOrigin}/` }]);
    const page = await context.newPage();
    await page.goto(`${pageOrigin}/`);
    await page.addScriptTag({ url: `${channelOrigin}/channel/bcsocket.js` });
    const tag = `xd-${crossDomainXhr}`;
    const echo = await page.evaluate(
      ([url, options]) =>
        new Promise<unknown>((resolve, reject) => {
          const socket = new (window as unknown as { BCSocket: new (url: string, options: object) => { send(m: unknown): void; close(): void; onopen: () => void; onmessage: (e: { data: unknown }) => void; onclose: (r: string) => void } }).BCSocket(url, options);
          socket.onmessage = (event) => (resolve(event.data), socket.close());
          socket.onclose = (reason) => reject(new Error(reason));
          socket.onopen = () => socket.send('hello');
        }),
      [`${channelOrigin}/channel`, { crossDomainXhr, extraParams: { tag } }] as const,
    );
    assert.deepEqual(echo, { echo: 'hello' });
    const seen = cookies.filter((entry) => entry.url.includes(`tag=${tag}`));
    assert.ok(seen.length >= 3, `create, back channel, forward: ${JSON.stringify(seen)}`);
    for (const entry of seen) assert.equal(entry.cookie, crossDomainXhr ? 'who=ada' : undefined, entry.url);
    const session = sessions.find((s) => s.query.tag === tag)!;
    assert.equal(session.headers.cookie, crossDomainXhr ? 'who=ada' : undefined);
    await context.close();
  });
}
