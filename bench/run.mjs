// Benchmarks this server against its peers in one run, on this machine:
// node-browserchannel 2.1.0, engine.io (long polling), sockjs
// (xhr-streaming) and bare node:http. Each peer runs in its own process
// (bench/server.mjs, same Node flags); this process is the load generator.
// Absolute numbers are noisy on a shared 2-core machine, so every scenario
// runs several rounds, reports medians, and compares peers from the same
// run as ratios. Results: stdout, bench/results.md, bench/results.json and
// the chart bench/results.svg.
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
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import autocannon from 'autocannon';
import { chartSvg } from './chart.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 2000);
const MEMORY_SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000);
const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

// ## Peers in child processes
async function startPeer(peer) {
  // BENCH_PROFILE=dir writes a V8 CPU profile of every peer process there.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=${peer}-${Date.now()}.cpuprofile`] : [];
  const child = spawn(process.execPath, ['--expose-gc', ...profile, new URL('./server.mjs', import.meta.url).pathname, peer], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8');
  while (!/PORT (\d+)/.test(output)) output += (await once(child.stdout, 'data'))[0];
  return { peer, port: Number(/PORT (\d+)/.exec(output)[1]), child };
}
async function stopPeer(handle) {
  handle.child.kill(); // SIGTERM: server.mjs exits cleanly, so a CPU profile gets written
  await once(handle.child, 'exit');
}

const serverCpu = async (port) => Number((await call(port, 'GET', '/__cpu')).body);

// ## HTTP helpers
function call(port, method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
// A streaming request; onText gets each piece; resolves when it ends.
function stream(port, method, path, body, onText, headers = {}) {
  let request;
  const done = new Promise((resolve) => {
    request = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      res.setEncoding('utf8');
      res.on('data', onText);
      res.on('end', resolve);
      res.on('close', resolve);
    });
    request.on('error', resolve);
    request.end(body);
  });
  return { done, abort: () => request.destroy() };
}
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

// One forward request in flight at a time, as the real clients do:
// messages queued meanwhile go in the next request, up to 1000 a request.
// `post(batch)` sends one batch (BrowserChannel also posts empty batches,
// to acknowledge).
function serialSender(post) {
  const queue = [];
  let busy = false;
  return {
    get busy() {
      return busy;
    },
    async send(messages) {
      queue.push(...messages);
      if (busy) return;
      busy = true;
      do await post(queue.splice(0, 1000));
      while (queue.length > 0);
      busy = false;
    },
  };
}

// ## Clients, one per protocol
//
// Each client can `handshake()` (create a session and leave it) and
// `connect(onMessage)` → `{ send(messages), close() }`, keeping one
// forward request in flight, as the real clients do.
function browserChannelClient(port) {
  const create = async () => {
    const rid = Math.floor(Math.random() * 1e5);
    const res = await call(port, 'POST', `/channel/bind?VER=8&RID=${rid}&CVER=1`, 'count=0', FORM);
    return { sid: /"c","([^"]+)"/.exec(res.body)[1], rid };
  };
  return {
    port,
    handshake: async () => void (await create()),
    async connect(onMessage) {
      let { sid, rid } = await create();
      let aid = 0;
      let nextMap = 0;
      let open = true;
      let back;
      const backLoop = async () => {
        while (open) {
          let pending = '';
          back = stream(port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${aid}&CI=0&TYPE=xmlhttp`, undefined, (text) => {
            pending += text;
            for (;;) {
              const nl = pending.indexOf('\n');
              if (nl === -1) return;
              const length = Number(pending.slice(0, nl));
              if (pending.length < nl + 1 + length) return;
              const arrays = JSON.parse(pending.slice(nl + 1, nl + 1 + length));
              pending = pending.slice(nl + 1 + length);
              for (const [id, data] of arrays) {
                if (id <= aid) continue;
                aid = id;
                if (!Array.isArray(data)) onMessage(data);
              }
            }
          });
          await back.done;
        }
      };
      void backLoop();
      let acked = 0;
      const sender = serialSender(async (batch) => {
        if (!open) return;
        const body = [`count=${batch.length}`, batch.length ? `ofs=${nextMap}` : '', ...batch.map((m, i) => `req${i}_JSON=${encodeURIComponent(JSON.stringify(m))}`)].filter(Boolean).join('&');
        nextMap += batch.length;
        acked = aid;
        await call(port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${++rid}&AID=${aid}`, body, FORM);
      });
      // Acknowledge what arrived even when not sending, as real clients do.
      const ackTimer = setInterval(() => {
        if (aid > acked && !sender.busy) void sender.send([]);
      }, 100);
      return {
        send: (messages) => sender.send(messages),
        async close() {
          open = false;
          clearInterval(ackTimer);
          back?.abort();
          await call(port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=${++rid}&TYPE=terminate`).catch(() => {});
        },
      };
    },
  };
}

function engineIoClient(port) {
  const create = async () => JSON.parse((await call(port, 'GET', '/engine.io/?EIO=4&transport=polling')).body.slice(1)).sid;
  return {
    port,
    handshake: async () => void (await create()),
    async connect(onMessage) {
      const sid = await create();
      let open = true;
      const base = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
      const post = (body) => call(port, 'POST', base, body, { 'Content-Type': 'text/plain;charset=UTF-8' });
      const poll = async () => {
        while (open) {
          const res = await call(port, 'GET', base).catch(() => ({ status: 0, body: '' }));
          if (res.status !== 200) return;
          for (const packet of res.body.split('\x1e')) {
            if (packet[0] === '4') onMessage(JSON.parse(packet.slice(1)));
            else if (packet === '2') void post('3');
          }
        }
      };
      void poll();
      const sender = serialSender(async (batch) => {
        if (open && batch.length) await post(batch.map((m) => `4${JSON.stringify(m)}`).join('\x1e'));
      });
      return { send: (messages) => sender.send(messages), close: async () => ((open = false), await post('1').catch(() => {})) };
    },
  };
}

function sockjsClient(port) {
  const ids = () => `${100 + Math.floor(Math.random() * 900)}/${Math.random().toString(36).slice(2, 10)}`;
  return {
    port,
    handshake: async () => void (await call(port, 'POST', `/echo/${ids()}/xhr`)),
    async connect(onMessage) {
      const id = ids();
      let open = true;
      let back;
      let opened;
      const ready = new Promise((resolve) => (opened = resolve));
      const backLoop = async () => {
        while (open) {
          let pending = '';
          back = stream(port, 'POST', `/echo/${id}/xhr_streaming`, undefined, (text) => {
            pending += text;
            let nl;
            while ((nl = pending.indexOf('\n')) !== -1) {
              const frame = pending.slice(0, nl);
              pending = pending.slice(nl + 1);
              if (frame === 'o') opened();
              else if (frame[0] === 'a') for (const m of JSON.parse(frame.slice(1))) onMessage(JSON.parse(m));
            }
          });
          await back.done;
        }
      };
      void backLoop();
      await ready;
      const sender = serialSender(async (batch) => {
        if (open && batch.length) await call(port, 'POST', `/echo/${id}/xhr_send`, JSON.stringify(batch.map((m) => JSON.stringify(m))), { 'Content-Type': 'text/plain' });
      });
      return { send: (messages) => sender.send(messages), close: async () => ((open = false), back?.abort()) };
    },
  };
}

const bareClient = (port) => ({ port });
const CLIENTS = { ours: browserChannelClient, bc210: browserChannelClient, engineio: engineIoClient, sockjs: sockjsClient, floor: bareClient, bare: bareClient };

// ## Scenarios
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function connectMany(client, count, onMessage) {
  const connections = [];
  for (let i = 0; i < count; i += 20) {
    connections.push(...(await Promise.all(Array.from({ length: Math.min(20, count - i) }, (_, k) => client.connect((m) => onMessage(i + k, m))))));
  }
  return connections;
}

// The handshake request of each protocol, as autocannon sends it: the
// request that creates a session and returns its id. sockjs names the
// session in the path, so each request gets a fresh one.
const HANDSHAKES = {
  ours: { method: 'POST', path: '/channel/bind?VER=8&RID=1000&CVER=1', body: 'count=0', headers: FORM },
  bc210: { method: 'POST', path: '/channel/bind?VER=8&RID=1000&CVER=1', body: 'count=0', headers: FORM },
  engineio: { method: 'GET', path: '/engine.io/?EIO=4&transport=polling' },
  sockjs: { method: 'POST', path: '/echo/000/x/xhr', setupRequest: (req) => ({ ...req, path: `/echo/${100 + Math.floor(Math.random() * 900)}/${Math.random().toString(36).slice(2, 10)}/xhr` }) },
  floor: { method: 'POST', path: '/channel/bind?VER=8&RID=1000&CVER=1', body: 'count=0', headers: FORM },
  bare: { method: 'GET', path: '/' },
};

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
  async latency(client) {
    const pending = new Map();
    const connections = await connectMany(client, 20, (index, message) => {
      if (message && message.t !== undefined) pending.get(index)?.(message.t);
    });
    const samples = [];
    const end = Date.now() + WINDOW_MS;
    await Promise.all(connections.map(async (connection, index) => {
      while (Date.now() < end) {
        const started = performance.now();
        const echoed = new Promise((resolve) => pending.set(index, resolve));
        await connection.send([{ t: started }]);
        await Promise.race([echoed, sleep(5000)]);
        samples.push(performance.now() - started);
      }
    }));
    await Promise.all(connections.map((c) => c.close()));
    samples.sort((a, b) => a - b);
    return { p50: samples[Math.floor(samples.length * 0.5)], p99: samples[Math.floor(samples.length * 0.99)] };
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
async function measure(allPeers, makeScenario) {
  const peers = allPeers.filter((peer) => peerFilter.size === 0 || peerFilter.has(peer));
  const results = {};
  const cpu = {};
  for (const peer of peers) (results[peer] = []), (cpu[peer] = []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const peer of peers) {
      const handle = await startPeer(peer);
      const scenario = makeScenario.perPeer ? makeScenario(peer) : makeScenario;
      const before = await serverCpu(handle.port);
      const outcome = await scenario(CLIENTS[peer](handle.port));
      const after = await serverCpu(handle.port);
      if (outcome && outcome.rate !== undefined) {
        results[peer].push(outcome.rate);
        cpu[peer].push((after - before) / outcome.ops);
      } else results[peer].push(outcome);
      await stopPeer(handle);
    }
  }
  return Object.keys(cpu).some((peer) => cpu[peer].length) ? Object.assign(results, { [CPU]: cpu }) : results;
}
const CPU = Symbol('cpu µs per operation');
const perPeer = (factory) => Object.assign(factory, { perPeer: true });

const started = Date.now();
const streaming = ['ours', 'bc210', 'engineio', 'sockjs'];
const report = { machine: `${process.version}, ${(await import('node:os')).cpus().length} cores`, rounds: ROUNDS, windowMs: WINDOW_MS, scenarios: {} };
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
// working); results files are written only by a full run.
const only = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
const want = (group) => only.size === 0 || only.has(group);
// BENCH_PEERS=ours,bc210 limits the peers, likewise.
const peerFilter = new Set((process.env.BENCH_PEERS ?? '').split(',').filter(Boolean));
if (want('handshake')) addThroughput('handshake', 'sessions/s', 'session', await measure(['ours', 'bc210', 'engineio', 'sockjs', 'floor', 'bare'], perPeer(scenarios.handshake)));
if (want('push')) addThroughput('push 50 B', 'messages/s', 'message', await measure(streaming, scenarios.push(50)));
if (want('push')) addThroughput('push 4 KB', 'messages/s', 'message', await measure(streaming, scenarios.push(4096)));
if (want('forward')) addThroughput('forward', 'messages/s', 'message', await measure(streaming, scenarios.forward));
if (want('latency')) {
  const latency = await measure(streaming, scenarios.latency);
  add('latency p50 (ms)', 'ms', 'lower', Object.fromEntries(Object.entries(latency).map(([p, v]) => [p, v.map((x) => x.p50)])));
  add('latency p99 (ms)', 'ms', 'lower', Object.fromEntries(Object.entries(latency).map(([p, v]) => [p, v.map((x) => x.p99)])));
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
if (only.size > 0 && !process.env.BENCH_WRITE) {
  agent.destroy();
  process.exit(0);
}
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
  `Benchmarks (${report.machine}; medians of ${ROUNDS} rounds of ${WINDOW_MS} ms; ${report.seconds} s in all).`,
  'Ratio ×N: how many times better ours is than that peer (above 1: ours leads), whichever direction "better" is.',
  '',
  '| scenario | ours | peers (ratio of ours to each) |',
  '|---|---|---|',
  ...rows,
  '',
  `Sessions left after churn: ${JSON.stringify(report.sessionsLeftAfterChurn)}`,
].join('\n');
console.log(`\n${table}`);
writeFileSync(new URL('./results.md', import.meta.url), `${table}\n`);
writeFileSync(new URL('./results.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(new URL('./results.svg', import.meta.url), `${chartSvg(report)}\n`);
agent.destroy();
