// The `cluster` bench group: three processes sharing a Redis, behind nginx,
// with the shipped sticky config and again behind plain round robin (where
// a request reaching a process that does not own its session is relayed
// over Redis). Same load both ways; the ratio is what relaying costs.
// Then, on two processes, push and broadcast with session recovery off
// and on: the ratio, and Redis's own CPU per message, is what recovery
// costs (`## Recovery on and off` below).
//
//   node bench/cluster.mjs                  (or BENCH_ONLY=cluster npm run bench)
//   BENCH_CLUSTER_ONLY=recovery node bench/cluster.mjs     (one part: relay or recovery)
//
// Standalone, the table goes to bench/out/cluster-results.md; `--save`
// writes bench/cluster-results.md instead.
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
import net from 'node:net';
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

// ## Recovery on and off
//
// The same load on two processes sharing a Redis, once with the server
// option `recovery: { window: 60000, history: 1000 }` and once without
// (bench/recovery-node.ts, RECOVERY_WINDOW set or not). Clients go
// straight to the process that made their session (sticky routing, no
// nginx: push and broadcast never need a relay). With recovery on, every
// array a session is sent is saved in Redis before it is written, and a
// room broadcast is appended to the room's history and comes back through
// Redis to every process, the sender included.
//
// | scenario | what it measures |
// |---|---|
// | push, flat out | 20 sessions (10 a process), 20,000 messages each sent as fast as the server can: messages/s to the last one, CPU per message |
// | push, paced | the same sessions, one message each every 10 ms (2,000/s) for 2 s: latency from send to receipt, p50 and p99 |
// | broadcast | 1,000 sessions (500 a process) in one room: 1,000 broadcasts at once, deliveries/s and CPU per delivery; then 20 one at a time, median time until all 1,000 have it |
//
// Every client holds a streaming back channel open and counts what
// arrives on it. Push clients acknowledge every 200 ms (an empty POST
// with AID), as a busy Closure client's forward requests would; broadcast
// clients only through their back channels. Messages carry the server's
// wall clock at send (`t`), and this process reads the same clock at
// receipt. Server CPU is the sum over both processes; Redis CPU is
// redis-server's own, `used_cpu_user + used_cpu_sys` of `INFO cpu`, read
// before and after (the two INFO calls are the only traffic the bench adds).
const RECOVERY_ROUNDS = Number(process.env.BENCH_RECOVERY_ROUNDS ?? 3);
const PUSH_SESSIONS = 20;
const PUSH_EACH = 20000;
const ROOM_MEMBERS = 1000;
const BURST = 1000;
const ONE_BY_ONE = 20;
const wallClock = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];

// One INFO section of Redis, over a raw connection (RESP bulk string).
function redisInfo(port, section) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`INFO ${section}\r\n`));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      text += chunk;
      const header = /^\$(\d+)\r\n/.exec(text);
      if (!header || Buffer.byteLength(text) < header[0].length + Number(header[1])) return;
      socket.destroy();
      resolve(text.slice(header[0].length));
    });
    socket.on('error', reject);
  });
}

// Redis CPU in µs: the server's own user + system time.
async function redisCpu(port) {
  const info = await redisInfo(port, 'cpu');
  const seconds = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)[1]);
  return Math.round((seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6);
}

// BENCH_REDIS_COMMANDS=1 prints, for each costed stretch, the Redis
// commands it ran (scripts' inner commands included) and their µs.
async function redisCommands(port) {
  const info = await redisInfo(port, 'commandstats');
  const commands = {};
  for (const [, name, calls, usec] of info.matchAll(/cmdstat_(\S+?):calls=(\d+),usec=(\d+)/g)) {
    commands[name] = { calls: Number(calls), usec: Number(usec) };
  }
  return commands;
}

// A session that counts what its streaming back channel brings: `onMessage`
// gets each `{…}` object of `pattern` with the wall clock at receipt.
async function streamingSession(port, pattern, onMessage) {
  const sid = await create(port);
  let lastArray = 0;
  let open = true;
  let req = null;
  let rid = 1001;
  let ofs = 0;
  const listen = () => {
    req = http.request({ host: '127.0.0.1', port, path: `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${lastArray}&CI=0&TYPE=xmlhttp`, agent: false }, (res) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        buffer += chunk;
        const at = wallClock();
        const end = buffer.lastIndexOf('\n');
        if (end < 0) return;
        for (const match of buffer.slice(0, end).matchAll(pattern)) {
          lastArray = Number(match[1]);
          onMessage(Number(match[2]), Number(match[3]), at);
        }
        buffer = buffer.slice(end + 1);
      });
      res.on('end', () => open && listen());
    });
    req.on('error', () => {});
    req.end();
  };
  listen();
  return {
    ack: () => call(port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${rid++}&AID=${lastArray}`, `count=0&ofs=${ofs}`),
    // Ends the session (a client's goodbye), so it leaves the room and its saved state goes.
    close: async () => {
      open = false;
      req?.destroy();
      await call(port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=${rid++}&TYPE=terminate`);
    },
  };
}

async function withRecoveryCluster(recovery, body) {
  const redis = await harness.startRedis();
  const script = fileURLToPath(new URL('./recovery-node.ts', import.meta.url));
  const env = recovery ? { RECOVERY_WINDOW: '60000' } : {};
  const nodes = await Promise.all(['n1', 'n2'].map((id) => harness.startNode(id, redis.url, script, env)));
  try {
    return await body(nodes, redis.port);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  }
}

// CPU of both server processes and of Redis around `body`.
async function costed(nodes, redisPort, body, what) {
  const listing = process.env.BENCH_REDIS_COMMANDS ? await redisCommands(redisPort) : null;
  const [server, redis] = [await cpuOf(nodes), await redisCpu(redisPort)];
  const result = await body();
  if (listing) {
    const after = await redisCommands(redisPort);
    const ran = Object.entries(after).map(([name, { calls, usec }]) =>
      [name, calls - (listing[name]?.calls ?? 0), usec - (listing[name]?.usec ?? 0)]).filter(([, calls]) => calls > 0);
    console.log(`${what}: ${ran.map(([name, calls, usec]) => `${name} ${calls}× ${usec} µs`).join(', ')}`);
  }
  return { ...result, serverCpu: (await cpuOf(nodes)) - server, redisCpu: (await redisCpu(redisPort)) - redis };
}

async function until(done, what, ms = 30_000) {
  const started = Date.now();
  while (!done()) {
    if (Date.now() - started > ms) throw new Error(`recovery bench: ${what} timed out`);
    await sleep(2);
  }
}

async function recoveryPush(nodes, redisPort) {
  const pattern = /\[(\d+),\{"p":(\d+),"t":([\d.]+)\}\]/g;
  let received = 0;
  let latencies = [];
  const sessions = await Promise.all(Array.from({ length: PUSH_SESSIONS }, (_, index) =>
    streamingSession(nodes[index % 2].port, pattern, (_p, sent, at) => {
      received++;
      latencies.push(at - sent);
    })));
  let acking = true;
  const acks = (async () => {
    while (acking) {
      await sleep(200);
      await Promise.all(sessions.map((session) => session.ack()));
    }
  })();
  await sleep(300);
  const flat = await costed(nodes, redisPort, async () => {
    const started = performance.now();
    await Promise.all(nodes.map((node) => node.get(`/push?n=${PUSH_EACH}`)));
    await until(() => received >= PUSH_SESSIONS * PUSH_EACH, 'push');
    return { seconds: (performance.now() - started) / 1000 };
  }, 'push');
  const messages = PUSH_SESSIONS * PUSH_EACH;
  [received, latencies] = [0, []];
  const paced = 200;
  // Paced, each save carries one array, as in most real traffic, so what
  // a save costs Redis apart from its arrays shows here.
  const slow = await costed(nodes, redisPort, async () => {
    await Promise.all(nodes.map((node) => node.get(`/pace?n=${paced}&every=10`)));
    await until(() => received >= PUSH_SESSIONS * paced, 'paced push');
    return {};
  }, 'paced push');
  acking = false;
  await acks;
  await Promise.all(sessions.map((session) => session.close()));
  latencies.sort((a, b) => a - b);
  return {
    rate: messages / flat.seconds,
    serverCpu: flat.serverCpu / messages,
    redisCpu: flat.redisCpu / messages,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    pacedRedisCpu: slow.redisCpu / (PUSH_SESSIONS * paced),
  };
}

async function recoveryBroadcast(nodes, redisPort) {
  const pattern = /\[(\d+),\{"b":(\d+),"t":([\d.]+)\}\]/g;
  let received = 0;
  let lastAt = 0;
  const sessions = [];
  for (let i = 0; i < ROOM_MEMBERS; i += 100) {
    sessions.push(...await Promise.all(Array.from({ length: 100 }, (_, index) =>
      streamingSession(nodes[index % 2].port, pattern, (_b, _t, at) => {
        received++;
        lastAt = at;
      }))));
  }
  // Every member is in the room, and its back channel open, once a first broadcast reached all.
  await call(nodes[0].port, 'GET', '/room?n=1');
  await until(() => received >= ROOM_MEMBERS, 'first broadcast');
  received = 0;
  const burst = await costed(nodes, redisPort, async () => {
    const started = wallClock();
    await call(nodes[0].port, 'GET', `/room?n=${BURST}`);
    await until(() => received >= BURST * ROOM_MEMBERS, 'broadcast burst');
    return { seconds: (lastAt - started) / 1000 };
  }, 'broadcast');
  const times = [];
  for (let i = 0; i < ONE_BY_ONE; i++) {
    received = 0;
    const started = wallClock();
    await call(nodes[0].port, 'GET', '/room?n=1');
    await until(() => received >= ROOM_MEMBERS, 'one broadcast');
    times.push(lastAt - started);
  }
  await Promise.all(sessions.map((session) => session.close()));
  const deliveries = BURST * ROOM_MEMBERS;
  return {
    rate: deliveries / burst.seconds,
    serverCpu: burst.serverCpu / deliveries,
    redisCpu: burst.redisCpu / deliveries,
    redisCpuPerBroadcast: burst.redisCpu / BURST,
    timeToAll: median(times),
  };
}

/** Push and broadcast with recovery off and on, medians of rounds; returns numbers and a table. */
export async function recoveryBench() {
  const rounds = { off: [], on: [] };
  for (let round = 0; round < RECOVERY_ROUNDS; round++) {
    for (const mode of ['off', 'on']) {
      rounds[mode].push(await withRecoveryCluster(mode === 'on', async (nodes, redisPort) => ({
        push: await recoveryPush(nodes, redisPort),
        broadcast: await recoveryBroadcast(nodes, redisPort),
      })));
    }
  }
  const medians = (list) => {
    const pick = (group) => Object.fromEntries(Object.keys(list[0][group]).map((key) =>
      [key, median(list.map((r) => r[group][key]))]));
    return { push: pick('push'), broadcast: pick('broadcast') };
  };
  const results = { rounds: RECOVERY_ROUNDS, off: medians(rounds.off), on: medians(rounds.on) };
  const rows = [`| recovery (2 processes, Redis, sticky; medians of ${RECOVERY_ROUNDS}) | off | on | on/off |`, '|---|---|---|---|'];
  const row = (name, pick, digits = 0) => {
    const [a, b] = [pick(results.off), pick(results.on)];
    const ratio = a > 0.05 ? `×${(b / a).toFixed(2)}` : '—';
    rows.push(`| ${name} | ${a.toFixed(digits)} | ${b.toFixed(digits)} | ${ratio} |`);
  };
  row(`push, flat out, ${PUSH_SESSIONS} sessions (messages/s)`, (r) => r.push.rate);
  row('push: server CPU (µs per message)', (r) => r.push.serverCpu, 1);
  row('push: Redis CPU (µs per message)', (r) => r.push.redisCpu, 1);
  row('push, paced 2,000/s: latency p50 (ms)', (r) => r.push.p50, 2);
  row('push, paced 2,000/s: latency p99 (ms)', (r) => r.push.p99, 2);
  row('push, paced 2,000/s: Redis CPU (µs per message)', (r) => r.push.pacedRedisCpu, 1);
  row(`broadcast, ${BURST.toLocaleString('en')} to ${ROOM_MEMBERS.toLocaleString('en')} sessions (deliveries/s)`, (r) => r.broadcast.rate);
  row('broadcast: server CPU (µs per delivery)', (r) => r.broadcast.serverCpu, 2);
  row('broadcast: Redis CPU (µs per delivery)', (r) => r.broadcast.redisCpu, 2);
  row('broadcast: Redis CPU (µs per broadcast)', (r) => r.broadcast.redisCpuPerBroadcast);
  row(`broadcast, one at a time: time until all ${ROOM_MEMBERS.toLocaleString('en')} have it (ms)`, (r) => r.broadcast.timeToAll, 1);
  // The closing note: the price, from this run's numbers, and the guarantee bought.
  const { off, on } = results;
  rows.push('', `Price: with recovery on, a pushed message costs ×${(on.push.serverCpu / off.push.serverCpu).toFixed(1)} ` +
    `the server CPU (${off.push.serverCpu.toFixed(1)} → ${on.push.serverCpu.toFixed(1)} µs) and ${on.push.redisCpu.toFixed(1)} µs of Redis CPU ` +
    `when messages come in bursts (one save a tick carries many), ${Math.round(on.push.pacedRedisCpu)} µs when each is saved alone (paced), ` +
    `and waits one Redis round trip (p50 ${off.push.p50.toFixed(2)} → ${on.push.p50.toFixed(2)} ms); a room broadcast costs ` +
    `${Math.round(on.broadcast.redisCpuPerBroadcast)} µs of Redis CPU per ${ROOM_MEMBERS.toLocaleString('en')} members ` +
    `(${on.broadcast.redisCpu.toFixed(2)} µs per delivery, each member's copy saved in its own session stream) ` +
    `and ×${(on.broadcast.serverCpu / off.broadcast.serverCpu).toFixed(1)} the server CPU per delivery.`,
  'Guarantee: a client that reconnects within the window, to any process, gets every array of its old session it had not received ' +
    'and every broadcast to its rooms since, exactly once and in order, even when its process was killed; ' +
    'when that cannot be done whole, the app is told (`recovered === false`), never a partial replay.');
  results.table = rows.join('\n');
  return results;
}

/** Runs every cluster scenario; returns the numbers (and prints a table). */
export async function clusterBench() {
  const missing = harness.missingBinaries();
  if (missing.length > 0) {
    console.log(`cluster: skipped, needs ${missing.join(' and ')} (apt-get install ${missing.join(' ')})`);
    return null;
  }
  const results = {};
  const tables = [];
  // BENCH_CLUSTER_ONLY=relay or =recovery runs one part of the group.
  const part = process.env.BENCH_CLUSTER_ONLY ?? '';
  if (part !== 'recovery') tables.push(await relayBench(results));
  if (part !== 'relay') {
    results.recovery = await recoveryBench();
    tables.push(results.recovery.table);
  }
  results.table = tables.join('\n\n');
  console.log(results.table);
  return results;
}

// Sticky against round robin with relaying; fills `results`, returns the table.
async function relayBench(results) {
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
  return rows.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const results = await clusterBench();
  agent.destroy();
  if (results) {
    const { writeFileSync } = await import('node:fs');
    // Like run.mjs: bench/out/ unless --save (which writes the tracked file).
    const { mkdirSync } = await import('node:fs');
    const folder = new URL(process.argv.includes('--save') ? './' : './out/', import.meta.url);
    mkdirSync(folder, { recursive: true });
    writeFileSync(new URL('cluster-results.md', folder), `${results.table}\n`);
  }
}
