// deploy/nginx-config.mjs: its output is accepted by a real nginx, and that
// nginx routes by the session id's prefix (SID, gsessionid, OSID), spreads
// the rest, and falls back to another process when the owner is down.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: a plain .mjs script without types
import { nginxConfig } from '../../deploy/nginx-config.mjs';
import { type TestNginx, freePort, missingBinaries, startNginx } from './harness.ts';

const missing = missingBinaries().filter((name) => name === 'nginx');
const skip = missing.length > 0 ? 'needs nginx (apt-get install nginx)' : false;
const script = fileURLToPath(new URL('../../deploy/nginx-config.mjs', import.meta.url));

describe('nginx config generator', { skip }, () => {
  test('the shipped deploy/nginx.conf is what the generator makes for three processes', () => {
    const made = execFileSync(process.execPath, [script, '--listen', '8080', '--node', 'n1=127.0.0.1:4001', '--node', 'n2=127.0.0.1:4002', '--node', 'n3=127.0.0.1:4003']).toString();
    assert.equal(readFileSync(fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url)), 'utf8'), made);
    assert.match(made, /proxy_buffering off;/);
    assert.match(made, /proxy_http_version 1\.1;/);
    assert.match(made, /least_conn;/);
    assert.match(made, /server 127\.0\.0\.1:4002 backup;/);
  });

  test('bad arguments are refused with a reason', () => {
    assert.throws(() => execFileSync(process.execPath, [script, '--node', 'n.1=127.0.0.1:1'], { stdio: 'pipe' }), /node id/);
    assert.throws(() => execFileSync(process.execPath, [script, '--listen', '1'], { stdio: 'pipe' }), /at least one --node/);
  });

  describe('routing through a real nginx', () => {
    const backends: http.Server[] = [];
    const nodes: Array<{ id: string; address: string }> = [];
    let nginx: TestNginx;
    before(async () => {
      for (const id of ['n1', 'n2', 'n3']) {
        const server = http.createServer((req, res) => res.end(id));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        backends.push(server);
        nodes.push({ id, address: `127.0.0.1:${(server.address() as AddressInfo).port}` });
      }
      const port = await freePort();
      nginx = await startNginx(nginxConfig({ listen: port, nodes }), port);
    });
    after(async () => {
      await nginx?.stop();
      for (const server of backends) server.closeAllConnections();
      for (const server of backends) server.close();
    });
    const who = async (query: string) => (await fetch(`http://127.0.0.1:${nginx.port}/channel/bind?VER=8&${query}`)).text();

    test('SID, gsessionid and OSID prefixes pick the process; requests without one are spread', async () => {
      assert.equal(await who('SID=n2.abc&RID=rpc'), 'n2');
      assert.equal(await who('SID=n3.abc'), 'n3');
      assert.equal(await who('gsessionid=n1.xyz'), 'n1');
      assert.equal(await who('OSID=n3.old&OAID=4'), 'n3');
      assert.equal(await who('SID=n1.abc&gsessionid=n1.x'), 'n1');
      const spread = new Set<string>();
      for (let i = 0; i < 12; i++) spread.add(await who('RID=1'));
      assert.equal(spread.size, 3, `creates reach every process: ${[...spread]}`);
    });

    // A page loads more than its create through the shared group (its HTML,
    // scripts, /test): three such requests per page turned one rotation
    // so that every create reached the same process.
    test('creates take turns among themselves, whatever else the pages load', async () => {
      for (const mode of ['sticky', 'any']) {
        const port = await freePort();
        const front = await startNginx(nginxConfig({ listen: port, nodes, mode }), port);
        try {
          const creates: string[] = [];
          for (let i = 0; i < 6; i++) {
            await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
            await fetch(`http://127.0.0.1:${port}/channel/test?VER=8&MODE=init`).then((r) => r.text());
            const create = await fetch(`http://127.0.0.1:${port}/channel/bind?VER=8&RID=1`, { method: 'POST' });
            creates.push(await create.text());
          }
          assert.equal(new Set(creates).size, 3, `${mode}: creates reached ${creates}`);
        } finally {
          await front.stop();
        }
      }
    });

    test('when the owner is down, another process answers (the app says Unknown SID), not a 502', async () => {
      const down = backends[1]!;
      down.closeAllConnections();
      await new Promise((resolve) => down.close(resolve));
      const answer = await fetch(`http://127.0.0.1:${nginx.port}/channel/bind?SID=n2.abc`);
      assert.equal(answer.status, 200);
      assert.notEqual(await answer.text(), 'n2');
    });
  });
});
