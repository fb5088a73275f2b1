// The `cluster` bench group: three processes sharing a Redis, behind nginx,
// with the shipped sticky config and again behind plain round robin (where
// a request reaching a process that does not own its session is relayed
// over Redis). Same load both ways; the ratio is what relaying costs.
//
//   node bench/cluster.mjs                  (or BENCH_ONLY=cluster npm run bench)
//
// | scenario | what it measures |
// |---|---|
// | handshake | sessions/s created through nginx (never relayed: a create is served where it lands) |
// | forward | sequential POSTs of one map per session, 20 sessions: requests/s, p50 latency, server CPU per request |
// | forward, one client alone | the same with one session: the latency a relay adds without load |
// | echo | a map up, its echo down a streaming back channel, 20 sessions: round trips/s, p50 |
// | broadcast | 2 processes, 1,000 sessions (500 each), 100 broadcasts: deliveries/s and CPU per delivery |
//
// Server CPU is the sum over every server process (not nginx, not Redis),
// from process.cpuUsage() before and after.
import http from 'node:http';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const harness = await import('../test/cluster/harness.ts');
const { nginxConfig } = await import('../deploy/nginx-config.mjs');

const SESSIONS = 20;
const SECONDS = Number(process.env.BENCH_CLUSTER_SECONDS ?? 4);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function call(port, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: body ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function create(port) {
  const answer = await call(port, 'POST', '/channel/bind?VER=8&RID=1000&CVER=1', 'count=0');
  if (answer.status !== 200) throw new Error(`create: ${answer.status}`);
  return /"c","([^"]+)"/.exec(answer.text)[1];
}

// A minimal session client: forward POSTs with RIDs in order, and a
// streaming back channel whose arrays are counted.
function client(port, sid) {
  let rid = 1001;
  let ofs = 0;
  let onArray = () => {};
  let lastArray = 0;
  const post = (json) => call(port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${rid++}&AID=${lastArray}`,
    `count=1&ofs=${ofs++}&req0_JSON=${encodeURIComponent(json)}`);
  const listen = () => {
    const req = http.request({ host: '127.0.0.1', port, path: `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${lastArray}&CI=0&TYPE=xmlhttp`, agent: false }, (res) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        buffer += chunk;
        for (const match of buffer.matchAll(/\[(\d+),\{"echo"/g)) {
          lastArray = Number(match[1]);
          onArray();
        }
        buffer = buffer.slice(buffer.lastIndexOf('\n') + 1);
      });
      res.on('end', () => stream.open && listen());
    });
    req.on('error', () => {});
    req.end();
    stream.req = req;
  };
  const stream = { open: true, req: null };
  return { post, listen, stop: () => { stream.open = false; stream.req?.destroy(); }, onEcho: (fn) => (onArray = fn) };
}

async function cpuOf(nodes) {
  const all = await Promise.all(nodes.map((node) => node.get('/stats')));
  return all.reduce((sum, stats) => sum + stats.cpuMicros, 0);
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function timed(nodes, body) {
  const cpuBefore = await cpuOf(nodes);
  const started = Date.now();
  const { operations, latencies } = await body(started + SECONDS * 1000);
  const seconds = (Date.now() - started) / 1000;
  const cpu = (await cpuOf(nodes)) - cpuBefore;
  return { rate: operations / seconds, p50: latencies.length ? median(latencies) : null, cpuPerOp: cpu / operations };
}

async function handshake(port, nodes) {
  return timed(nodes, async (until) => {
    let operations = 0;
    await Promise.all(Array.from({ length: SESSIONS }, async () => {
      while (Date.now() < until) {
        await create(port);
        operations++;
      }
    }));
    return { operations, latencies: [] };
  });
}

async function forward(port, nodes, count = SESSIONS) {
  const sessions = await Promise.all(Array.from({ length: count }, async () => client(port, await create(port))));
  return timed(nodes, async (until) => {
    let operations = 0;
    const latencies = [];
    await Promise.all(sessions.map(async (session) => {
      while (Date.now() < until) {
        const start = process.hrtime.bigint();
        const answer = await session.post('{"x":1}');
        if (answer.status !== 200) throw new Error(`forward: ${answer.status} ${answer.text}`);
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
        operations++;
      }
    }));
    return { operations, latencies };
  });
}

async function echo(port, nodes) {
  const sessions = await Promise.all(Array.from({ length: SESSIONS }, async () => client(port, await create(port))));
  for (const session of sessions) session.listen();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const result = await timed(nodes, async (until) => {
    let operations = 0;
    const latencies = [];
    await Promise.all(sessions.map(async (session) => {
      while (Date.now() < until) {
        const start = process.hrtime.bigint();
        const echoed = new Promise((resolve) => session.onEcho(resolve));
        await session.post('{"echo":1}');
        await echoed;
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
        operations++;
      }
    }));
    return { operations, latencies };
  });
  for (const session of sessions) session.stop();
  return result;
}

// One cluster per mode: Redis, three processes, nginx.
async function withCluster(mode, count, body) {
  const redis = await harness.startRedis();
  const nodes = await Promise.all(['n1', 'n2', 'n3'].slice(0, count).map((id) => harness.startNode(id, redis.url)));
  const port = await harness.freePort();
  const nginx = await harness.startNginx(nginxConfig({ listen: port, mode, nodes: nodes.map((n) => ({ id: n.id, address: n.address })) }), port);
  try {
    return await body(port, nodes);
  } finally {
    await nginx.stop();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  }
}

async function broadcast() {
  return withCluster('sticky', 2, async (_port, nodes) => {
    for (const node of nodes) await Promise.all(Array.from({ length: 500 }, () => create(node.port)));
    const outBefore = (await Promise.all(nodes.map((node) => node.get('/stats')))).reduce((sum, s) => sum + s.messagesOut, 0);
    const cpuBefore = await cpuOf(nodes);
    const started = Date.now();
    const BROADCASTS = 100;
    await call(nodes[0].port, 'GET', `/broadcast?n=${BROADCASTS}`);
    let delivered = 0;
    while (delivered < BROADCASTS * 1000 && Date.now() - started < 30_000) {
      delivered = (await Promise.all(nodes.map((node) => node.get('/stats')))).reduce((sum, s) => sum + s.messagesOut, 0) - outBefore;
    }
    const seconds = (Date.now() - started) / 1000;
    const cpu = (await cpuOf(nodes)) - cpuBefore;
    return { deliveries: delivered, rate: delivered / seconds, cpuPerDelivery: cpu / delivered };
  });
}

/** Runs every cluster scenario; returns the numbers (and prints a table). */
export async function clusterBench() {
  const missing = harness.missingBinaries();
  if (missing.length > 0) {
    console.log(`cluster: skipped, needs ${missing.join(' and ')} (apt-get install ${missing.join(' ')})`);
    return null;
  }
  const results = {};
  for (const mode of ['sticky', 'any']) {
    results[mode] = await withCluster(mode, 3, async (port, nodes) => ({
      handshake: await handshake(port, nodes),
      forward: await forward(port, nodes),
      alone: await forward(port, nodes, 1),
      echo: await echo(port, nodes),
    }));
  }
  results.broadcast = await broadcast();
  const rows = ['| cluster (3 processes, nginx) | sticky | round robin + relay | ratio |', '|---|---|---|---|'];
  const row = (name, pick, digits = 0) => {
    const [a, b] = [pick(results.sticky), pick(results.any)];
    rows.push(`| ${name} | ${a.toFixed(digits)} | ${b.toFixed(digits)} | ×${(b / a).toFixed(2)} |`);
  };
  row('handshake (sessions/s)', (r) => r.handshake.rate);
  row('forward (requests/s)', (r) => r.forward.rate);
  row('forward p50 (ms)', (r) => r.forward.p50, 2);
  row('forward: server CPU (µs per request)', (r) => r.forward.cpuPerOp);
  row('forward, one client alone: p50 (ms)', (r) => r.alone.p50, 3);
  row('forward, one client alone: server CPU (µs per request)', (r) => r.alone.cpuPerOp);
  row('echo round trip (per s)', (r) => r.echo.rate);
  row('echo p50 (ms)', (r) => r.echo.p50, 2);
  row('echo: server CPU (µs per round trip)', (r) => r.echo.cpuPerOp);
  rows.push('', `broadcast to 1,000 sessions over 2 processes via Redis: ${Math.round(results.broadcast.rate)} deliveries/s, ` +
    `${results.broadcast.cpuPerDelivery.toFixed(2)} µs server CPU per delivery`);
  console.log(rows.join('\n'));
  results.table = rows.join('\n');
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const results = await clusterBench();
  agent.destroy();
  if (results) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(fileURLToPath(new URL('./cluster-results.md', import.meta.url)), `${results.table}\n`);
  }
}
