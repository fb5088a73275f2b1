// Three server processes behind a real nginx, sharing a real Redis: first
// with the shipped sticky template (deploy/nginx-config.mjs), then behind a
// plain round-robin upstream where requests are relayed between processes.
// 30 Closure BCSocket clients and 5 WebChannel clients echo, broadcast and
// are listed; then one process is killed with -9, then Redis is restarted.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
// @ts-expect-error: a plain .mjs script without types
import { nginxConfig } from '../../deploy/nginx-config.mjs';
import { request as rawRequest, until } from '../helpers.ts';
import { type TestClient, bcsocket, webchannel } from './clients.ts';
import { type TestNginx, type TestNode, type TestRedis, freePort, missingBinaries, startNginx, startNode, startRedis } from './harness.ts';

const missing = missingBinaries();
const skip = missing.length > 0 ? `needs ${missing.join(' and ')} (apt-get install ${missing.join(' ')})` : false;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const BCSOCKETS = 30;
const WEBCHANNELS = 5;
const ECHOES = 50;

type Mode = 'sticky' | 'any';

const modes = (process.env.CLUSTER_MODES ?? 'sticky,any').split(',') as Mode[];
for (const mode of modes) {
  describe(`cluster behind nginx, ${mode === 'sticky' ? 'sticky template' : 'round robin with relay'}`, { skip }, () => {
    let redis: TestRedis;
    let nodes: TestNode[] = [];
    let nginx: TestNginx;
    let url: string;
    const clients: TestClient[] = [];

    before(async () => {
      redis = await startRedis();
      nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id, redis.url)));
      const port = await freePort();
      nginx = await startNginx(nginxConfig({ listen: port, mode, nodes: nodes.map((n) => ({ id: n.id, address: n.address })) }), port);
      url = `http://127.0.0.1:${port}/channel`;
    });
    after(async () => {
      for (const client of clients) client.close();
      await delay(100);
      await nginx?.stop();
      await Promise.all(nodes.map((node) => node.stop()));
      await redis?.stop();
    });

    // The node that answered a client's latest echo.
    const nodeOf = (client: TestClient) => [...client.received].reverse().find((m) => 'echo' in m)?.node as string | undefined;
    const echoesOf = (client: TestClient) => client.received.filter((m) => 'echo' in m).map((m) => m.echo);
    const allsOf = (client: TestClient, tag: string) => client.received.filter((m) => m.all === tag).length;
    const ids = (node: TestNode) => node.get<string[]>('/ids');

    test('35 clients echo in order, a broadcast reaches each once, sessionIds lists all from any process', { timeout: 60_000 }, async () => {
      for (let i = 0; i < BCSOCKETS; i++) clients.push(bcsocket(url, `bc${i}`));
      for (let i = 0; i < WEBCHANNELS; i++) clients.push(webchannel(`${url}/bind`, `wc${i}`));
      await Promise.all(clients.map((client) => client.opened));
      for (let i = 0; i < ECHOES / 2; i++) for (const client of clients) client.send({ echo: `${client.name}:${i}` });
      await until(() => clients.every((c) => echoesOf(c).length === ECHOES / 2), 30_000, 'first echoes');
      for (const client of clients) {
        assert.deepEqual(echoesOf(client), Array.from({ length: ECHOES / 2 }, (_, i) => `${client.name}:${i}`), client.name);
      }
      const spread = new Set(clients.map(nodeOf));
      assert.equal(spread.size, 3, `sessions on every process: ${[...spread]}`);

      for (const node of nodes) {
        const listed = await ids(node);
        assert.equal(listed.length, clients.length, `${node.id} lists every session`);
        assert.deepEqual(new Set(listed.map((id) => id.split('.')[0])), new Set(['n1', 'n2', 'n3']));
      }

      // Sticky routing never needs a relay; round robin relays most requests.
      const relays = await Promise.all(nodes.map((node) => node.get<{ relayed: { served: number } }>('/stats')));
      const served = relays.reduce((sum, stats) => sum + stats.relayed.served, 0);
      if (mode === 'sticky') assert.equal(served, 0, 'no request relayed behind the sticky config');
      else assert.ok(served >= clients.length / 2, `requests relayed: ${served}`);

      clients[0]!.send({ all: 'first' });
      await until(() => clients.every((c) => allsOf(c, 'first') === 1), 10_000, 'broadcast to every client');
      await delay(300);
      for (const client of clients) assert.equal(allsOf(client, 'first'), 1, `${client.name} got it once`);
    });

    test('kill -9 one process: its clients start new sessions elsewhere, the others notice nothing', { timeout: 120_000 }, async () => {
      const victim = nodes[2]!;
      const onVictim = clients.filter((c) => nodeOf(c) === victim.id);
      const others = clients.filter((c) => nodeOf(c) !== victim.id);
      assert.ok(onVictim.length > 0 && others.length > 0);
      const sending = (async () => {
        for (let i = ECHOES / 2; i < ECHOES; i++) {
          for (const client of others) client.send({ echo: `${client.name}:${i}` });
          await delay(40);
        }
      })();
      await delay(300);
      await victim.kill9();
      const killedAt = Date.now();
      // Presence forgets the dead process's sessions within 15 s; watched from
      // now on, beside everything else, since reconnects may take longer.
      const dropped = (async () => {
        while (Date.now() - killedAt < 20_000) {
          const listed = await ids(nodes[0]!).catch(() => [] as string[]);
          if (listed.length > 0 && !listed.some((id) => id.startsWith(`${victim.id}.`))) return Date.now() - killedAt;
          await delay(250);
        }
        return Infinity;
      })();
      await sending;
      await until(() => others.every((c) => echoesOf(c).length === ECHOES), 30_000, 'echoes of the other clients').catch((error) => {
        const late = others.filter((c) => echoesOf(c).length !== ECHOES);
        if (process.env.LOG_REFUSED) console.error(nginx.errorLog().slice(-3000));
        throw new Error(`${error.message}: ${late.map((c) => `${c.name} on ${nodeOf(c)}: ${echoesOf(c).length} echoes, ${c.opens} opens, ${c.events}`).join('; ')}`);
      });
      for (const client of others) {
        assert.deepEqual(echoesOf(client), Array.from({ length: ECHOES }, (_, i) => `${client.name}:${i}`), client.name);
        assert.equal(client.opens, 1, `${client.name} kept its session`);
      }

      // BCSocket reconnects by itself; a WebChannel app opens a new channel.
      const reopened = onVictim.map((client) => {
        if (client.kind === 'bcsocket') return client;
        const fresh = webchannel(`${url}/bind`, `${client.name}-again`);
        clients.splice(clients.indexOf(client), 1, fresh);
        client.close();
        return fresh;
      });
      // A client whose back channel was relayed from the dead process sees it cut off once the
      // others notice (nodeTimeout), retries after Closure's own delay (5 to 15 s), then gets
      // Unknown SID and reconnects: on a busy machine that can take half a minute.
      await until(() => reopened.every((c) => c.opens >= 1 && (c.kind === 'webchannel' || c.opens >= 2)), 50_000, 'reconnects').catch((error) => {
        const late = reopened.filter((c) => !(c.opens >= 1 && (c.kind === 'webchannel' || c.opens >= 2)));
        throw new Error(`${error.message}: ${late.map((c) => `${c.name}: ${c.opens} opens, ${c.events}`).join('; ')}`);
      });
      for (const client of reopened) client.send({ echo: `${client.name}:after` });
      await until(() => reopened.every((c) => echoesOf(c).includes(`${c.name}:after`)), 30_000, 'echo after reconnect');
      for (const client of reopened) assert.notEqual(nodeOf(client), victim.id);

      const droppedAfter = await dropped;
      assert.ok(droppedAfter < 15_000, `presence dropped the dead process's sessions after ${droppedAfter} ms`);
      // And once everyone is back, presence lists every client, none on the dead process.
      let listed: string[] = [];
      await until(() => {
        void ids(nodes[0]!).then((seen) => (listed = seen), () => {});
        return listed.length === clients.length && !listed.some((id) => id.startsWith(`${victim.id}.`));
      }, 15_000, 'every client listed');
      nodes = nodes.slice(0, 2);
    });

    test('Redis restarted: local work goes on, relays say 503 and then work, broadcasts resume once each', { timeout: 90_000 }, async () => {
      const [n1, n2] = nodes as [TestNode, TestNode];
      // A session of n1's, made directly, that n2 relays for.
      const created = await rawRequest(n1.port, 'POST', '/channel/bind?VER=8&RID=1000&CVER=1', 'count=0');
      const sid = /"c","([^"]+)"/.exec(created.body)![1]!;
      let rid = 1001;
      const relayedPost = () => rawRequest(n2.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${rid++}&AID=0`, 'count=1&ofs=0&req0_x=1');
      assert.equal((await relayedPost()).status, 200);

      const openBefore = new Map(clients.map((c) => [c, c.opens]));
      await redis.kill();
      const down = await relayedPost();
      assert.equal(down.status, 503, 'a relay while Redis is down');
      assert.ok(Number(down.headers['retry-after']) > 0, 'with Retry-After');
      if (mode === 'sticky') {
        // Every request stays on its owner: echoes never stop.
        for (const client of clients) client.send({ echo: `${client.name}:down` });
        await until(() => clients.every((c) => echoesOf(c).includes(`${c.name}:down`)), 20_000, 'echoes while Redis is down');
      }
      clients[0]!.send({ all: 'during' });
      await delay(500);
      await redis.start();
      const restartedAt = Date.now();
      let resumedAfter = -1;
      for (let k = 0; resumedAfter < 0 && Date.now() - restartedAt < (mode === 'sticky' ? 5_000 : 40_000); k++) {
        if (mode === 'any') reopenClosedWebChannels();
        const open = clients.filter((c) => c.isOpen());
        if (open.length === clients.length || mode === 'sticky') open[0]?.send({ all: `after${k}` });
        await delay(250);
        if (clients.every((c) => allsOf(c, `after${k}`) === 1)) resumedAfter = Date.now() - restartedAt;
      }
      assert.ok(resumedAfter >= 0, 'a broadcast reached every client after the restart');
      if (mode === 'sticky') assert.ok(resumedAfter < 5_000, `resumed after ${resumedAfter} ms`);
      let works = false;
      for (let i = 0; i < 40 && !works; i++) {
        works = (await relayedPost()).status === 200;
        if (!works) await delay(250);
      }
      assert.ok(works, 'the relay works again once Redis is back');
      await delay(500);
      for (const client of clients) {
        const tags = client.received.filter((m) => typeof m.all === 'string').map((m) => m.all as string);
        assert.equal(new Set(tags).size, tags.length, `${client.name} got no broadcast twice: ${tags}`);
        if (mode === 'sticky') assert.equal(client.opens, openBefore.get(client), `${client.name} kept its session`);
      }
    });

    // A WebChannel app opens a new channel when its channel fails; BCSocket reconnects itself.
    function reopenClosedWebChannels(): void {
      for (const [index, client] of clients.entries()) {
        if (client.kind !== 'webchannel' || client.events.length === 0) continue;
        client.close();
        clients[index] = webchannel(`${url}/bind`, `${client.name}+`);
      }
    }
  });
}
