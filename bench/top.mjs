// Where a peer's CPU went, from a V8 CPU profile written by a run with
// BENCH_PROFILE=<dir> (see run.mjs):
//
//   node bench/top.mjs <file.cpuprofile> [--by file|function] [--ops N] [--top 25]
//
// Self time is summed per function (the default) or per source file,
// idle time left out. With `--ops N` (operations the profiled process
// did, such as messages pushed) each line also says µs per operation,
// which is how two peers doing different amounts of work compare.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index === -1 ? fallback : args[index + 1];
};
const file = args.find((arg, index) => !arg.startsWith('--') && !args[index - 1]?.startsWith('--'));
if (!file) {
  console.error('usage: node bench/top.mjs <file.cpuprofile> [--by file|function] [--ops N] [--top 25]');
  process.exit(2);
}
const by = option('by', 'function');
const ops = Number(option('ops', 0));
const top = Number(option('top', 25));

const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const selfMicros = new Map();
for (let index = 0; index < profile.samples.length; index++) {
  const id = profile.samples[index];
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
}

const where = (url) => (url ? url.split('/').slice(-2).join('/') : '');
const totals = new Map();
let busy = 0;
let idle = 0;
for (const [id, micros] of selfMicros) {
  const { functionName, url, lineNumber } = nodes.get(id).callFrame;
  if (functionName === '(idle)') {
    idle += micros;
    continue;
  }
  busy += micros;
  const key = by === 'file'
    ? where(url) || functionName
    : `${functionName || '(anonymous)'} ${where(url)}${url ? `:${lineNumber + 1}` : ''}`;
  totals.set(key, (totals.get(key) ?? 0) + micros);
}

const perOp = (micros) => (ops > 0 ? `${(micros / ops).toFixed(3).padStart(8)} µs/op` : '');
console.log(`busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms${ops > 0 ? `, ${perOp(busy).trim()}` : ''}`);
for (const [key, micros] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  const share = ((micros / busy) * 100).toFixed(1).padStart(5);
  console.log(`${share} % ${(micros / 1000).toFixed(0).padStart(6)} ms ${perOp(micros)}  ${key}`);
}
