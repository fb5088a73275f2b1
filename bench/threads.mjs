// Where a handshake's server CPU goes, thread by thread (Linux only).
//
//   node bench/threads.mjs [peer,peer…]        default ours,minimal,floor
//   BENCH_ROUNDS=5 NODE_FLAGS=--single-threaded-gc node bench/threads.mjs
//
// `bench/run.mjs` reads a peer's CPU clock as one figure, every thread
// together. This splits it, from `/proc/<pid>/task/*/stat` before and after
// a 2 s autocannon window on a fresh process, as the handshake scenario
// runs it: the main thread's user and kernel time, and everything else
// (V8's compiler and garbage-collection helpers, libuv's pool), per
// handshake. The kernel counts in ticks of 10 ms, so a figure is good to
// about 0.1 µs at these rates.
//
// ```text
// ours   97,000  main user 12.0  main system 6.3  other threads 2.4   µs per handshake
// floor 150,000  main user  6.3  main system 5.1  other threads 0.7
// ```
//
// With `NODE_FLAGS=--single-threaded-gc` the collector works on the main
// thread, and what is left on the others is mostly the optimising
// compiler: a one-off per process, which a 2 s window spreads over every
// handshake in it (`--trace-opt` prints each compile and how long it took).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import autocannon from 'autocannon';
import { HANDSHAKES } from './clients.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const FLAGS = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean);
const TICK_MS = 10;

// Milliseconds of user and system time: the main thread's, and all others'.
function clocks(pid) {
  const total = { mainUser: 0, mainSystem: 0, other: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // Fields 14 and 15 (utime, stime), counted after the `(name)` field.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [user, system] = [Number(fields[11]) * TICK_MS, Number(fields[12]) * TICK_MS];
    if (tid === String(pid)) Object.assign(total, { mainUser: user, mainSystem: system });
    else total.other += user + system;
  }
  return total;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const server = new URL('./server.mjs', import.meta.url).pathname;

for (const peer of (process.argv[2] ?? 'ours,minimal,floor').split(',')) {
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const child = spawn(process.execPath, [...FLAGS, server, peer], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.setEncoding('utf8');
    while (!/PORT (\d+)/.test(output)) output += (await once(child.stdout, 'data'))[0];
    const port = Number(/PORT (\d+)/.exec(output)[1]);
    const { setupRequest, ...request } = HANDSHAKES[peer];
    const before = clocks(child.pid);
    const result = await autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: 32,
      duration: 2,
      requests: [{ ...request, ...(setupRequest ? { setupRequest } : {}) }],
    });
    const after = clocks(child.pid);
    const ok = result['2xx'];
    const per = (key) => ((after[key] - before[key]) * 1000) / ok;
    rounds.push({
      ok, mainUser: per('mainUser'), mainSystem: per('mainSystem'), other: per('other'),
    });
    child.kill();
    await once(child, 'exit');
  }
  const pick = (key) => median(rounds.map((r) => r[key]));
  const figure = (key) => pick(key).toFixed(1).padStart(5);
  console.log(`${peer.padEnd(8)} ${Math.round(pick('ok')).toLocaleString('en').padStart(8)}  ` +
    `main user ${figure('mainUser')}  main system ${figure('mainSystem')}  ` +
    `other threads ${figure('other')}   µs per handshake (medians of ${ROUNDS})`);
}
process.exit(0);
