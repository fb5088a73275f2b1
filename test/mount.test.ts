// Mounting under real express and connect: at the root, at the base path
// (express and connect strip it from req.url), and under another prefix.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import connect from 'connect';
import express from 'express';
import browserChannel, { type BrowserChannelMiddleware } from '../src/index.ts';
import { createSession, request } from './helpers.ts';

type App = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function listen(app: App): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

// Creates a session at `prefix`, then checks the forward channel and the
// hosted client under the same prefix, and that other paths reach the app.
async function exercise(port: number, prefix: string): Promise<void> {
  const { sid } = await createSession(port, prefix);
  const forward = await request(port, 'POST', `${prefix}/bind?VER=8&RID=1001&SID=${sid}&AID=0`, 'count=0');
  assert.equal(forward.status, 200, `${prefix}/bind forward`);
  const script = await request(port, 'GET', `${prefix}/bcsocket.js`);
  assert.equal(script.status, 200, `${prefix}/bcsocket.js`);
  assert.match(script.body, /BCSocket/);
  const other = await request(port, 'GET', '/elsewhere');
  assert.equal(other.body, 'app');
}

// Serves `app` on a free port, exercises `prefix`, and cleans up.
async function serveAndExercise(app: App, channel: BrowserChannelMiddleware, prefix: string): Promise<void> {
  const server = await listen(app);
  try {
    await exercise(server.port, prefix);
  } finally {
    channel.close();
    await server.close();
  }
}

const mounts: Array<[string, (app: express.Express, channel: BrowserChannelMiddleware) => void, string]> = [
  ['app.use(channel)', (app, channel) => app.use(channel), '/channel'],
  ["app.use('/channel', channel)", (app, channel) => app.use('/channel', channel), '/channel'],
  ["app.use('/rt', channel)", (app, channel) => app.use('/rt', channel), '/rt/channel'],
];

describe('express', () => {
  for (const [name, mount, prefix] of mounts) {
    test(`${name} serves ${prefix}/bind and ${prefix}/bcsocket.js`, async () => {
      const app = express();
      const channel = browserChannel();
      mount(app, channel);
      app.get('/elsewhere', (req, res) => void res.send('app'));
      await serveAndExercise(app, channel, prefix);
    });
  }

  test('a router mounted at /api with the channel at /channel serves /api/channel/bind', async () => {
    const app = express();
    const router = express.Router();
    const channel = browserChannel();
    router.use('/channel', channel);
    app.use('/api', router);
    app.get('/elsewhere', (req, res) => void res.send('app'));
    await serveAndExercise(app, channel, '/api/channel');
  });
});

describe('connect', () => {
  for (const [name, mount, prefix] of mounts) {
    test(`${name} serves ${prefix}/bind and ${prefix}/bcsocket.js`, async () => {
      const app = connect();
      const channel = browserChannel();
      mount(app as unknown as express.Express, channel);
      app.use('/elsewhere', (req: http.IncomingMessage, res: http.ServerResponse) => res.end('app'));
      await serveAndExercise(app, channel, prefix);
    });
  }
});
