// Benchmarks this server against its peers in one run, on this machine:
// node-browserchannel 2.1.0, engine.io (long polling), socket.io (long
// polling, broadcast only), sockjs (xhr-streaming) and bare node:http.
// Each peer runs in its own process (bench/server.mjs, same Node flags);
// this process is the load generator (clients in bench/clients.mjs).
// Absolute numbers are noisy on a shared 2-core machine, so every scenario
// runs several rounds, reports medians, and compares peers from the same
// run as ratios.
//
// Results go to stdout and to bench/out/ (ignored by git): results.md,
// results.json and the chart results.svg, each naming the machine (CPU
// model, cores, Node version) and the date. `npm run bench -- --save`
// writes them over the tracked bench/results.* instead, which is what the
// README quotes; only a full run (no BENCH_ONLY, no BENCH_PEERS) may be
// saved. For instruction counts that do not move with the machine's load,
// see bench/callgrind.mjs.
//
// Two figures per throughput scenario. The rate is what the client saw.
// On two cores the generator shares the machine with the server, and a
// protocol client written in JavaScript can be the slower of the two, so
// the rate alone may measure the client. The second figure is the
// server's own CPU time per operation (user + system, from
// `process.cpuUsage()` in the peer, GC threads included), which says what
// a server would sustain with a core to itself.
//
// Handshakes are driven by autocannon, which is light enough to keep a
// server busy; the other scenarios need protocol clients (below).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import autocannon from 'autocannon';
import { chartSvg } from './chart.mjs';
import { CLIENTS, HANDSHAKES, agent, call, connectMany, serverCpu, sleep } from './clients.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 2000);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 2000);
const MEMORY_SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000);
const ROOM_SIZE = Number(process.env.BENCH_ROOM ?? 1000);
// `npm run bench -- --save` (npm keeps a bare `--save` for itself and
// passes nothing on) or BENCH_SAVE=1.
const SAVE = process.argv.includes('--save') || process.env.BENCH_SAVE === '1';

// ## Peers in child processes
async function startPeer(peer, ...args) {
  // BENCH_PROFILE=dir writes a V8 CPU profile of every peer process there.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=${peer}-${Date.now()}.cpuprofile`] : [];
  const child = spawn(process.execPath, ['--expose-gc', ...profile, new URL('./server.mjs', import.meta.url).pathname, peer, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8');
  while (!/PORT (\d+)/.test(output)) output += (await once(child.stdout, 'data'))[0];
  return { peer, port: Number(/PORT (\d+)/.exec(output)[1]), child };
}
async function stopPeer(handle) {
  handle.child.kill(); // SIGTERM: server.mjs exits cleanly, so a CPU profile gets written
  await once(handle.child, 'exit');
}

// ## Scenarios
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const scenarios = {
  handshake: (peer) => async (client) => {
    const { setupRequest, ...request } = HANDSHAKES[peer];
    const result = await autocannon({
      url: `http://127.0.0.1:${client.port}`,
      connections: 32,
      duration: WINDOW_MS / 1000,
      requests: [{ ...request, ...(setupRequest ? { setupRequest } : {}) }],
    });
    const ok = result['2xx'];
    if (ok < result.requests.total * 0.99) throw new Error(`${peer}: only ${ok} of ${result.requests.total} handshakes succeeded`);
    return { rate: ok / (WINDOW_MS / 1000), ops: ok };
  },
  push: (size) => async (client) => {
    const waiting = new Map();
    const connections = await connectMany(client, 100, (index, message) => {
      if (message && message.text !== undefined) waiting.get(index)?.();
    });
    let received = 0;
    const end = Date.now() + WINDOW_MS;
    await Promise.all(connections.map(async (connection, index) => {
      while (Date.now() < end) {
        let left = 50;
        const batch = new Promise((resolve) => waiting.set(index, () => (received++, --left === 0 && resolve())));
        await connection.send([{ push: 50, size }]);
        await Promise.race([batch, sleep(5000)]);
      }
    }));
    await Promise.all(connections.map((c) => c.close()));
    return { rate: (received * 1000) / WINDOW_MS, ops: received };
  },
  async forward(client) {
    const connections = await connectMany(client, 100, () => {});
    let sent = 0;
    const end = Date.now() + WINDOW_MS;
    await Promise.all(connections.map(async (connection) => {
      while (Date.now() < end) {
        await connection.send(Array.from({ length: 20 }, (_, i) => ({ bulk: 1, i })));
        sent += 20;
      }
    }));
    await Promise.all(connections.map((c) => c.close()));
    return { rate: (sent * 1000) / WINDOW_MS, ops: sent };
  },
  // Echo round trips from 20 clients. With no pause (`paceMs` 0) each
  // sends again as soon as its echo is back, which keeps both cores busy:
  // the tail then measures queueing, load generator included. With a
  // pause of `paceMs` on average between round trips, the load is light
  // and steady (20 clients × 100 per second at 10 ms).
  //
  // The first WARMUP_MS (2 s) of round trips are not recorded. Each round starts
  // a fresh server process, and its first seconds are the JIT compiling the
  // echo path: counted, it was most of every peer's p99 (3.5 ms against
  // about 1 ms after it, for every peer at 2,000 echoes/s), and it
  // favoured the peer with the least code over the fastest one. A server
  // in production answers warm.
  latency: (paceMs) => async (client) => {
    const pending = new Map();
    const connections = await connectMany(client, 20, (index, message) => {
      if (message && message.t !== undefined) pending.get(index)?.(message.t);
    });
    const samples = [];
    const warm = Date.now() + WARMUP_MS;
    const end = warm + WINDOW_MS;
    await Promise.all(connections.map(async (connection, index) => {
      while (Date.now() < end) {
        const started = performance.now();
        const echoed = new Promise((resolve) => pending.set(index, resolve));
        await connection.send([{ t: started }]);
        await Promise.race([echoed, sleep(5000)]);
        if (Date.now() >= warm) samples.push(performance.now() - started);
        if (paceMs > 0) await sleep(paceMs * (0.5 + Math.random()));
      }
    }));
    await Promise.all(connections.map((c) => c.close()));
    samples.sort((a, b) => a - b);
    return { p50: samples[Math.floor(samples.length * 0.5)], p99: samples[Math.floor(samples.length * 0.99)] };
  },
  // One message to every member of a room of ROOM_SIZE sessions, through
  // each peer's own API (see server.mjs), again and again for the window:
  // each broadcast starts once the last one has reached every client. The
  // server's CPU is read around the broadcasts alone (not the connecting),
  // and the time runs from asking for a broadcast to the last client
  // having it. BrowserChannel clients stream and acknowledge only with
  // their next request, as Closure's do.
  async broadcast(client) {
    let seq = 0;
    let left = 0;
    let allReceived = () => {};
    const connections = await connectMany(client, ROOM_SIZE, (index, message) => {
      if (message && message.b === seq && --left === 0) allReceived();
    }, { ack: false });
    const once = async () => {
      seq++;
      left = connections.length;
      const started = performance.now();
      const all = new Promise((resolve) => (allReceived = resolve));
      await call(client.port, 'GET', `/__broadcast?seq=${seq}`);
      if (await Promise.race([all.then(() => true), sleep(10_000).then(() => false)]) === false) {
        throw new Error(`broadcast ${seq}: ${left} of ${connections.length} sessions did not receive it`);
      }
      return performance.now() - started;
    };
    await once(); // every session is in the room and its back channel is open
    const times = [];
    const before = await serverCpu(client.port);
    const end = Date.now() + WINDOW_MS;
    while (Date.now() < end) times.push(await once());
    const cpu = (await serverCpu(client.port)) - before;
    await Promise.all(connections.map((c) => c.close()));
    return { rate: (times.length * 1000) / WINDOW_MS, ops: times.length, cpu, time: median(times) };
  },
};

// Memory: idle sessions held by a fresh server, then 20k opened and closed.
async function memory(peer) {
  const handle = await startPeer(peer);
  const client = CLIENTS[peer](handle.port);
  const stats = async () => JSON.parse((await call(handle.port, 'GET', '/__stats')).body);
  const base = await stats();
  for (let i = 0; i < MEMORY_SESSIONS; i += 50) await Promise.all(Array.from({ length: 50 }, () => client.handshake()));
  const held = await stats();
  await stopPeer(handle);
  return { heapPerSession: (held.heapUsed - base.heapUsed) / MEMORY_SESSIONS, rssPerSession: (held.rss - base.rss) / MEMORY_SESSIONS, sessions: held.sessions };
}

async function churn(peer) {
  const handle = await startPeer(peer);
  const client = CLIENTS[peer](handle.port);
  const stats = async () => JSON.parse((await call(handle.port, 'GET', '/__stats')).body);
  const cycle = async (count) => {
    for (let i = 0; i < count; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async () => (await client.connect(() => {})).close()));
    }
  };
  await cycle(500);
  const base = await stats();
  await cycle(20_000);
  await sleep(200);
  const after = await stats();
  await stopPeer(handle);
  return { heapGrowthMB: (after.heapUsed - base.heapUsed) / 1e6, sessionsLeft: after.sessions };
}

// ## Running everything
//
// `measure` runs a scenario on a fresh peer process per round. For
// throughput scenarios (those returning `{ rate, ops }`) it also reads the
// peer's CPU clock before and after, and keeps CPU µs per operation.
// A scenario that measures its own stretch of server CPU returns it as
// `cpu` (µs); `time`, if returned, is kept as well.
async function measure(allPeers, makeScenario, peerArgs = []) {
  const peers = allPeers.filter((peer) => peerFilter.size === 0 || peerFilter.has(peer));
  const results = {};
  const cpu = {};
  const time = {};
  for (const peer of peers) (results[peer] = []), (cpu[peer] = []), (time[peer] = []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const peer of peers) {
      const handle = await startPeer(peer, ...peerArgs);
      const scenario = makeScenario.perPeer ? makeScenario(peer) : makeScenario;
      const before = await serverCpu(handle.port);
      const outcome = await scenario(CLIENTS[peer](handle.port));
      const after = await serverCpu(handle.port);
      if (outcome && outcome.rate !== undefined) {
        results[peer].push(outcome.rate);
        cpu[peer].push((outcome.cpu ?? after - before) / outcome.ops);
        if (outcome.time !== undefined) time[peer].push(outcome.time);
      } else results[peer].push(outcome);
      await stopPeer(handle);
    }
  }
  if (!Object.values(cpu).some((values) => values.length)) return results;
  return Object.assign(results, { [CPU]: cpu, [TIME]: time });
}
const CPU = Symbol('cpu µs per operation');
const TIME = Symbol('median time per operation');
const perPeer = (factory) => Object.assign(factory, { perPeer: true });

const started = Date.now();
const streaming = ['ours', 'bc210', 'engineio', 'sockjs'];
// `ours-nostats` is ours with the `channel.stats()` counters turned off
// (server.mjs): it runs where the counters are busiest, handshakes and
// pushes, and its ratio is what the counters cost.
const withNoStats = (peers) => [peers[0], 'ours-nostats', ...peers.slice(1)];
const cpus = os.cpus();
const report = {
  machine: `${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, Node ${process.version}`,
  date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
  rounds: ROUNDS,
  windowMs: WINDOW_MS,
  scenarios: {},
};
const add = (name, unit, better, perPeer) => {
  report.scenarios[name] = { unit, better, median: Object.fromEntries(Object.entries(perPeer).map(([peer, values]) => [peer, median(values)])) };
  console.log(`${name}: ${JSON.stringify(report.scenarios[name].median)}`);
};
// A throughput scenario adds two rows: its rate, and the server's CPU per operation.
const addThroughput = (name, unit, operation, results) => {
  add(`${name} (${unit})`, 'per s', 'higher', results);
  add(`${name}: server CPU (µs per ${operation})`, 'µs', 'lower', results[CPU]);
};

// BENCH_ONLY=handshake,memory runs just those groups (a quick look while
// working); BENCH_PEERS=ours,bc210 limits the peers. Such partial runs
// write to bench/out/ like any other, and cannot be saved.
const only = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
const want = (group) => (only.size === 0 && group !== 'cluster') || only.has(group);
const peerFilter = new Set((process.env.BENCH_PEERS ?? '').split(',').filter(Boolean));
if (SAVE && (only.size > 0 || peerFilter.size > 0)) {
  console.error('--save needs a full run: unset BENCH_ONLY and BENCH_PEERS');
  process.exit(2);
}
if (want('handshake')) addThroughput('handshake', 'sessions/s', 'session', await measure(withNoStats(['ours', 'bc210', 'engineio', 'sockjs', 'minimal', 'floor', 'bare']), perPeer(scenarios.handshake)));
if (want('push')) addThroughput('push 50 B', 'messages/s', 'message', await measure(withNoStats([...streaming, 'minimal']), scenarios.push(50)));
if (want('push')) addThroughput('push 4 KB', 'messages/s', 'message', await measure(withNoStats([...streaming, 'minimal']), scenarios.push(4096)));
if (want('forward')) addThroughput('forward', 'messages/s', 'message', await measure([...streaming, 'minimal'], scenarios.forward));
if (want('broadcast')) {
  const results = await measure(['ours', 'bc210', 'engineio', 'socketio', 'minimal'], scenarios.broadcast, ['room']);
  add(`broadcast to ${ROOM_SIZE.toLocaleString('en')} sessions: server CPU (µs per broadcast)`, 'µs', 'lower', results[CPU]);
  add(`broadcast to ${ROOM_SIZE.toLocaleString('en')} sessions: time until all have it (ms)`, 'ms', 'lower', results[TIME]);
}
if (want('latency')) {
  const latency = await measure([...streaming, 'minimal'], scenarios.latency(0));
  add('latency p50 (ms)', 'ms', 'lower', Object.fromEntries(Object.entries(latency).map(([p, v]) => [p, v.map((x) => x.p50)])));
  add('latency p99 (ms)', 'ms', 'lower', Object.fromEntries(Object.entries(latency).map(([p, v]) => [p, v.map((x) => x.p99)])));
  const steady = await measure([...streaming, 'minimal'], scenarios.latency(10));
  add('latency p99 at ~2,000 echoes/s (ms)', 'ms', 'lower', Object.fromEntries(Object.entries(steady).map(([p, v]) => [p, v.map((x) => x.p99)])));
}
if (want('memory')) {
  const idle = {};
  for (const peer of ['ours', 'bc210', 'engineio']) idle[peer] = await memory(peer);
  add(`idle heap per session (bytes, ${MEMORY_SESSIONS} sessions)`, 'bytes', 'lower', Object.fromEntries(Object.entries(idle).map(([p, v]) => [p, [v.heapPerSession]])));
  add(`idle RSS per session (bytes, ${MEMORY_SESSIONS} sessions)`, 'bytes', 'lower', Object.fromEntries(Object.entries(idle).map(([p, v]) => [p, [v.rssPerSession]])));
}
if (want('churn')) {
  const churned = {};
  for (const peer of ['ours', 'bc210', 'engineio']) churned[peer] = await churn(peer);
  add('heap growth after 20k sessions opened and closed (MB)', 'MB', 'lower', Object.fromEntries(Object.entries(churned).map(([p, v]) => [p, [v.heapGrowthMB]])));
  report.sessionsLeftAfterChurn = Object.fromEntries(Object.entries(churned).map(([p, v]) => [p, v.sessionsLeft]));
}
// Three processes behind nginx and Redis, sticky against relayed (bench/cluster.mjs).
if (want('cluster')) report.cluster = await (await import('./cluster.mjs')).clusterBench();
report.seconds = Math.round((Date.now() - started) / 1000);

// ## Ratios: ours against each peer, from the same run
const rows = [];
for (const [name, { median: values, better }] of Object.entries(report.scenarios)) {
  const ours = values.ours;
  const ratios = Object.entries(values).filter(([peer]) => peer !== 'ours').map(([peer, value]) => {
    const ratio = better === 'higher' ? ours / value : value / ours;
    return `${peer} ${fmt(value)} (×${ratio.toFixed(2)})`;
  });
  report.scenarios[name].ratios = Object.fromEntries(Object.entries(values).filter(([peer]) => peer !== 'ours').map(([peer, value]) => [peer, better === 'higher' ? ours / value : value / ours]));
  rows.push(`| ${name} | ${fmt(ours)} | ${ratios.join(' · ')} |`);
}
function fmt(value) {
  return Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en') : value.toFixed(2);
}
const table = [
  `Benchmarks, ${report.date}: ${report.machine}; medians of ${ROUNDS} rounds of ${WINDOW_MS} ms; ${report.seconds} s in all.`,
  ...(only.size > 0 || peerFilter.size > 0 ? [`Partial run: BENCH_ONLY=${[...only].join(',')} BENCH_PEERS=${[...peerFilter].join(',')}.`] : []),
  'Ratio ×N: how many times better ours is than that peer (above 1: ours leads), whichever direction "better" is.',
  '',
  '| scenario | ours | peers (ratio of ours to each) |',
  '|---|---|---|',
  ...rows,
  ...(report.sessionsLeftAfterChurn ? ['', `Sessions left after churn: ${JSON.stringify(report.sessionsLeftAfterChurn)}`] : []),
].join('\n');
console.log(`\n${table}`);
const folder = new URL(SAVE ? './' : './out/', import.meta.url);
mkdirSync(folder, { recursive: true });
writeFileSync(new URL('results.md', folder), `${table}\n`);
writeFileSync(new URL('results.json', folder), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(new URL('results.svg', folder), `${chartSvg(report)}\n`);
console.log(`\nWritten to ${new URL('results.md', folder).pathname} (.json, .svg)${SAVE ? '' : '; --save writes bench/results.*'}`);
agent.destroy();
