// What keeping a session costs a handshake, measured by taking it away.
//
//   node bench/retention.mjs                   medians of 3 cold windows per variant
//   BENCH_ROUNDS=5 node bench/retention.mjs
//
// The HTTP floor (bench/server.mjs) answers a handshake and keeps
// nothing. Ours answers the same bytes and keeps a session: the `Session`
// object and what hangs off it, an entry in the registry (`sessions`, a
// `Map` by id) and one in the idle queue (`deadlines.ts`). Those stay
// alive, so every young-generation collection copies them on their way
// to the old generation, and the old generation grows. This tool prices
// that, by running copies of the built package (dist/esm/) that keep less:
//
// | variant | what differs from ours |
// |---|---|
// | ours | nothing |
// | no idle queue | sessions never enter the idle queue: the registry alone keeps them |
// | registry of ids | and the registry maps each id to `true`: the session is garbage at once |
// | nothing kept | and there is no registry entry either |
//
// Each is a knock-out, not a server: a session that is not kept can
// never be found again. The requests and the answers are the same bytes
// as ours; the two yardsticks, minimal and floor, run beside them.
//
// Each round starts every variant in a fresh process and drives a cold
// 2 s autocannon window at it, as `bench/run.mjs`'s handshake scenario
// does, interleaving the variants so that drift on a busy machine hits
// them alike. Two figures per variant: server CPU (user + system, every
// thread) per handshake, and heap kept per handshake (after a full
// collection, `/__stats`), which says the knock-out did what it claims.
//
// ```text
// variant           handshakes  CPU µs   heap kept B   (per handshake)
// ours                  88,000    22.2          880
// nothing kept         110,000    17.6            0
// floor                150,000    12.7            0
// ```
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { HANDSHAKES, call } from './clients.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DIST = new URL('../dist/esm/', import.meta.url).pathname;
const SERVER = new URL('./server.mjs', import.meta.url).pathname;

// ## The knock-outs
//
// Each edit replaces exact text in a built file and insists on finding
// it, so a change to the source that moves the text stops this tool
// loudly instead of letting it measure an unchanged copy.
const NO_IDLE = [
  ['session.js', 'this.host.idle.start(this);', 'void 0;'],
  ['backchannel.js', 'this.host.idle.start(this);', 'void 0;'],
];
const REGISTER = 'context.sessions.set(session.id, session);';
const VARIANTS = {
  ours: [],
  'no idle queue': NO_IDLE,
  'registry of ids': [
    ...NO_IDLE,
    ['handler.js', REGISTER, 'context.sessions.set(session.id, true);'],
  ],
  'nothing kept': [...NO_IDLE, ['handler.js', REGISTER, 'void 0;']],
};

function build(edits, folder) {
  cpSync(DIST, folder, { recursive: true });
  for (const [file, from, to] of edits) {
    const path = join(folder, file);
    const text = readFileSync(path, 'utf8');
    if (!text.includes(from)) {
      throw new Error(`bench/retention: ${file} no longer contains ${from}`);
    }
    writeFileSync(path, text.replaceAll(from, to));
  }
  return folder;
}

// ## One cold window
async function window(peer, dist) {
  const env = dist === null ? process.env : { ...process.env, BENCH_DIST: dist };
  const child = spawn(process.execPath, ['--expose-gc', SERVER, peer], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env,
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  while (!/PORT (\d+)/.test(output)) output += (await once(child.stdout, 'data'))[0];
  const port = Number(/PORT (\d+)/.exec(output)[1]);
  const split = async () => JSON.parse((await call(port, 'GET', '/__cpu-split')).body);
  const stats = async () => JSON.parse((await call(port, 'GET', '/__stats')).body);
  const { setupRequest, ...request } = HANDSHAKES[peer];
  const heapBefore = (await stats()).heapUsed;
  const before = await split();
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 32,
    duration: 2,
    requests: [{ ...request, ...(setupRequest ? { setupRequest } : {}) }],
  });
  const after = await split();
  const heapAfter = (await stats()).heapUsed;
  child.kill();
  await once(child, 'exit');
  const ok = result['2xx'];
  if (ok < result.requests.total * 0.99) throw new Error(`${peer}: handshakes failed`);
  const cpu = after.user - before.user + after.system - before.system;
  return { ok, cpu: cpu / ok, heap: (heapAfter - heapBefore) / ok };
}

// ## Running them
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const scratch = mkdtempSync(join(tmpdir(), 'bc-retention-'));
try {
  const runs = [
    ...Object.entries(VARIANTS).map(([name, edits], index) => ({
      name,
      peer: 'ours',
      dist: build(edits, join(scratch, String(index))),
    })),
    { name: 'minimal', peer: 'minimal', dist: null },
    { name: 'floor', peer: 'floor', dist: null },
  ];
  const results = new Map(runs.map((run) => [run.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const run of runs) results.get(run.name).push(await window(run.peer, run.dist));
  }
  const floor = median(results.get('floor').map((r) => r.cpu));
  console.log(`variant            handshakes   CPU µs   × floor   heap kept B  ` +
    `(per handshake, medians of ${ROUNDS} cold 2 s windows)`);
  for (const [name, rounds] of results) {
    const cpu = median(rounds.map((r) => r.cpu));
    console.log(`${name.padEnd(18)} ${Math.round(median(rounds.map((r) => r.ok)))
      .toLocaleString('en').padStart(10)}   ${cpu.toFixed(1).padStart(6)}   ` +
      `${(cpu / floor).toFixed(2).padStart(7)}   ` +
      `${Math.round(median(rounds.map((r) => r.heap))).toLocaleString('en').padStart(11)}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(0);
