// Instruction counts per operation, repeatable on a busy machine.
//
//   node bench/callgrind.mjs [scenario …]      (scenarios below; default all)
//   CG_PEERS=ours,bc210 CG_SCALE=2 node bench/callgrind.mjs push50
//
// Each peer (bench/server.mjs) runs under `valgrind --tool=callgrind`, the
// load comes from plain node in this process, and a scenario does a fixed
// number of operations rather than filling a time window. After a warm-up
// round (so the JIT has compiled the hot paths), the counters are zeroed
// with `callgrind_control -z`, the measured rounds run, and
// `callgrind_control -d` dumps what they cost. Ir (instructions executed,
// every thread of the process, GC included) divided by the operations is
// the figure: unlike CPU time, it barely moves with other load on the
// machine. It counts user-space instructions only: time in the kernel
// (socket writes, page faults) is not in it, so it complements the time
// figures of bench/run.mjs rather than replacing them.
//
// The traffic is made as repeatable as the protocols allow: BrowserChannel
// clients acknowledge only with their next request (no 100 ms timer, whose
// count of requests would depend on how slow the server runs under
// valgrind). What is left to chance is mostly garbage collection, a few
// per cent from run to run (more for handshakes, whose sessions pile up
// until an old-space collection lands in the window or does not), so a
// full collection runs just before the window; compare medians of
// repeated runs (CG_REPEAT=3).
//
// The dumps stay in bench/out/callgrind/ for `callgrind_annotate`.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import autocannon from 'autocannon';
import { CLIENTS, HANDSHAKES, agent, call, connectMany, sleep } from './clients.mjs';

const SCALE = Number(process.env.CG_SCALE ?? 1);
// What is counted is the main thread, with garbage collection kept on it
// (`--single-threaded-gc`): the work a request causes, collection
// included, in one place. Left out are V8's optimising compiler threads,
// which in a short window can be half of all instructions and say how
// recently the code was first run, not what a request costs.
const NODE_FLAGS = (process.env.CG_NODE_FLAGS ?? '--single-threaded-gc').split(' ').filter(Boolean);
const folder = new URL('./out/callgrind/', import.meta.url).pathname;
mkdirSync(folder, { recursive: true });

async function startPeer(peer, name, args) {
  const child = spawn('valgrind', ['--tool=callgrind', '--separate-threads=yes', `--callgrind-out-file=${folder}${name}.%p`,
    process.execPath, '--expose-gc', ...NODE_FLAGS, new URL('./server.mjs', import.meta.url).pathname, peer, ...args],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8');
  while (!/PORT (\d+)/.test(output)) output += (await once(child.stdout, 'data'))[0];
  return { child, port: Number(/PORT (\d+)/.exec(output)[1]) };
}

const control = (flag, pid) => execFileSync('callgrind_control', [flag, String(pid)], { stdio: 'ignore' });

function totalIr(name, pid) {
  const file = readdirSync(folder).find((f) => f === `${name}.${pid}.1-01`);
  const text = readFileSync(folder + file, 'utf8');
  return Number(/^(?:summary|totals): (\d+)/m.exec(text)[1]);
}

// ## Scenarios: `warm` and `run` each return how many operations they did
const pushes = (size, rounds) => async (client) => {
  const waiting = new Map();
  const connections = await connectMany(client, 100, (index, message) => {
    if (message && message.text !== undefined) waiting.get(index)?.();
  }, { ack: false });
  const run = async (n) => {
    await Promise.all(connections.map(async (connection, index) => {
      for (let r = 0; r < n; r++) {
        let left = 50;
        const batch = new Promise((resolve) => waiting.set(index, () => --left === 0 && resolve()));
        await connection.send([{ push: 50, size }]);
        await batch;
      }
    }));
    await sleep(300); // the last acknowledgements
    return connections.length * 50 * n;
  };
  return { warm: () => run(2), run: () => run(rounds * SCALE), close: () => Promise.all(connections.map((c) => c.close())) };
};

const scenarios = {
  handshake: {
    peers: ['ours', 'ours-nostats', 'bc210', 'engineio', 'sockjs', 'floor', 'bare'],
    async setup(client, peer) {
      const { setupRequest, ...request } = HANDSHAKES[peer];
      const run = async (amount) => {
        const result = await autocannon({ url: `http://127.0.0.1:${client.port}`, connections: 32, amount, timeout: 60, requests: [{ ...request, ...(setupRequest ? { setupRequest } : {}) }] });
        if (result['2xx'] !== amount) throw new Error(`${peer}: ${result['2xx']} of ${amount} handshakes succeeded`);
        return amount;
      };
      return { warm: () => run(2000), run: () => run(4000 * SCALE), close: async () => {} };
    },
  },
  push50: { peers: ['ours', 'ours-nostats', 'bc210', 'engineio', 'sockjs', 'minimal'], setup: pushes(50, 6) },
  push4k: { peers: ['ours', 'ours-nostats', 'bc210', 'engineio', 'sockjs', 'minimal'], setup: pushes(4096, 2) },
  forward: {
    peers: ['ours', 'bc210', 'engineio', 'sockjs', 'minimal'],
    async setup(client) {
      const connections = await connectMany(client, 100, () => {}, { ack: false });
      const run = async (n) => {
        await Promise.all(connections.map(async (connection) => {
          for (let r = 0; r < n; r++) await connection.send(Array.from({ length: 20 }, (_, i) => ({ bulk: 1, i })));
        }));
        await sleep(300);
        return connections.length * 20 * n;
      };
      return { warm: () => run(5), run: () => run(10 * SCALE), close: () => Promise.all(connections.map((c) => c.close())) };
    },
  },
  broadcast: {
    peers: ['ours', 'bc210', 'engineio', 'socketio', 'minimal'],
    args: ['room'],
    async setup(client) {
      let seq = 0;
      let left = 0;
      let all = () => {};
      const connections = await connectMany(client, 1000, (index, message) => {
        if (message && message.b === seq && --left === 0) all();
      }, { ack: false });
      const run = async (n) => {
        for (let i = 0; i < n; i++) {
          seq++;
          left = connections.length;
          const received = new Promise((resolve) => (all = resolve));
          await call(client.port, 'GET', `/__broadcast?seq=${seq}`);
          await received;
        }
        await sleep(300);
        return n;
      };
      return { warm: () => run(5), run: () => run(10 * SCALE), close: () => Promise.all(connections.map((c) => c.close())) };
    },
  },
};

const chosen = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(scenarios);
const peerFilter = new Set((process.env.CG_PEERS ?? '').split(',').filter(Boolean));
const REPEAT = Number(process.env.CG_REPEAT ?? 1);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results = {};
for (const name of chosen) {
  const scenario = scenarios[name];
  results[name] = {};
  for (const peer of scenario.peers.filter((p) => peerFilter.size === 0 || peerFilter.has(p))) {
    const runs = [];
    for (let repeat = 0; repeat < REPEAT; repeat++) runs.push(await measureOnce(name, scenario, peer));
    results[name][peer] = Math.round(median(runs));
    if (REPEAT > 1) console.log(`${name} ${peer}: median ${results[name][peer].toLocaleString('en')} of ${runs.map((r) => Math.round(r)).join(', ')}`);
  }
}
console.log(JSON.stringify(results));
agent.destroy();

async function measureOnce(name, scenario, peer) {
  const label = `${name}-${peer}`;
  const { child, port } = await startPeer(peer, label, scenario.args ?? []);
  const work = await scenario.setup(CLIENTS[peer](port), peer);
  await work.warm();
  await call(port, 'GET', '/__stats'); // a full collection: every window starts from a clean heap
  control('-z', child.pid);
  const ops = await work.run();
  control('-d', child.pid);
  await work.close();
  child.kill();
  await once(child, 'exit');
  const perOp = totalIr(label, child.pid) / ops;
  console.log(`${name} ${peer}: ${Math.round(perOp).toLocaleString('en')} Ir per operation (${ops} operations)`);
  return perOp;
}
