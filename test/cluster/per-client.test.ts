// maxSessionsPerClient behind a real nginx (the shipped template), with the
// clientKey that docs/deploying.md gives, run from the guide's own text:
// clients from different loopback addresses (127.0.0.2, 127.0.0.3) are
// counted apart, and a client cannot buy more sessions by sending an
// X-Forwarded-For of its own.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: a plain .mjs script without types
import { nginxConfig } from '../../deploy/nginx-config.mjs';
import { addressKey } from '../../src/index.ts';
import { type TestServer, request, startServer } from '../helpers.ts';
import { type TestNginx, freePort, missingBinaries, startNginx } from './harness.ts';

const skip = missingBinaries().includes('nginx') ? 'needs nginx (apt-get install nginx)' : false;

// The guide's clientKey, as it is written there.
const guide = readFileSync(fileURLToPath(new URL('../../docs/deploying.md', import.meta.url)), 'utf8');
const source = /clientKey: (\(req\) => \{[\s\S]*?\n {2}\}),\n/.exec(guide)?.[1];

async function create(port: number, from: string, forwardedFor?: string): Promise<number> {
  const headers: Record<string, string> = forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {};
  const answer = await request(port, 'POST', '/channel/bind?VER=8&RID=1000&CVER=8', 'count=0',
    headers, from);
  return answer.status;
}

describe('maxSessionsPerClient behind nginx', { skip }, () => {
  let server: TestServer;
  let nginx: TestNginx;
  before(async () => {
    assert.ok(source, 'docs/deploying.md gives a clientKey');
    const clientKey = new Function('addressKey', `return ${source}`)(addressKey) as
      (req: IncomingMessage) => string;
    server = await startServer({ maxSessionsPerClient: 2, clientKey });
    const port = await freePort();
    const nodes = [{ id: 'n1', address: `127.0.0.1:${server.port}` }];
    nginx = await startNginx(nginxConfig({ listen: String(port), nodes }), port);
  });
  after(async () => {
    await nginx?.stop();
    await server?.close();
  });

  test('each client is counted by the address nginx saw, whatever it sends', async () => {
    const { port } = nginx;
    assert.equal(await create(port, '127.0.0.2'), 200);
    assert.equal(await create(port, '127.0.0.2', '198.51.100.1'), 200);
    // A third from the same client, with a made-up X-Forwarded-For or none.
    assert.equal(await create(port, '127.0.0.2', '198.51.100.2'), 429);
    assert.equal(await create(port, '127.0.0.2'), 429);
    // Another client is counted apart.
    assert.equal(await create(port, '127.0.0.3'), 200);
    assert.equal(server.sessions.length, 3);
    // Straight to the server, not through nginx, a client is its socket's address.
    assert.equal(await create(server.port, '127.0.0.4'), 200);
  });
});
