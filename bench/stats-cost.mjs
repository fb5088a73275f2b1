// What the always-on `channel.stats()` counters cost, in instructions.
//
//   node bench/stats-cost.mjs            (needs valgrind; uses dist/, so npm run build first)
//
// End to end, "ours" against "ours, stats off" (bench/server.mjs) differ
// by less than either one varies from run to run, in time and even in
// instruction counts. So this measures the counters' own work directly:
// the calls the server makes into its Observer (src/observe.ts) for one
// handshake (`opened`, `backChannel`, two byte counts) and for one pushed
// message (`messageOut`, and per 50 messages a chunk's byte count and
// the `messageIn` of the request that asked for them), a million times
// over, under `valgrind --tool=callgrind`: with the real Observer, with
// its methods made no-ops (as in "ours, stats off"), and with no calls at
// all. The difference per operation, set against what bench/callgrind.mjs
// counts for a whole operation, is the counters' share.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

const N = 1_000_000;
const folder = new URL('./out/callgrind/', import.meta.url).pathname;

if (process.argv[2] === 'run') {
  const [, , , scenario, variant] = process.argv;
  const { Observer } = await import(new URL('../dist/esm/observe.js', import.meta.url).href);
  if (variant === 'noop') {
    for (const name of Object.getOwnPropertyNames(Observer.prototype)) {
      if (name !== 'constructor' && name !== 'snapshot') Observer.prototype[name] = () => {};
    }
  }
  const observer = new Observer();
  const sessions = Array.from({ length: 64 }, (_, i) => ({ id: `Qm9vdHN0cmFwcGVkIGlk${i}`, address: '127.0.0.1' }));
  let sink = 0;
  for (let i = 0; i < N; i++) {
    const session = sessions[i & 63];
    if (variant === 'none') sink += i & 1;
    else if (scenario === 'handshake') {
      observer.opened(session);
      observer.backChannel(session, false);
      observer.bytesIn += 7;
      observer.bytesOut += 44;
    } else {
      observer.messageOut(session, '{"i":1}');
      if (i % 50 === 0) {
        observer.bytesOut += 3000;
        observer.messageIn(session, sink);
        observer.bytesIn += 60;
      }
    }
  }
  console.log(sink + observer.messagesOut + observer.sessionsCreated);
} else {
  mkdirSync(folder, { recursive: true });
  const count = (scenario, variant) => {
    const out = `${folder}stats-${scenario}-${variant}.out`;
    execFileSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath,
      new URL(import.meta.url).pathname, 'run', scenario, variant], { stdio: 'ignore' });
    return Number(/^summary: (\d+)/m.exec(readFileSync(out, 'utf8'))[1]);
  };
  for (const scenario of ['handshake', 'push']) {
    const none = count(scenario, 'none');
    const on = (count(scenario, 'stats') - none) / N;
    const off = (count(scenario, 'noop') - none) / N;
    console.log(`${scenario}: counters on ${on.toFixed(0)} Ir per operation, methods as no-ops ${off.toFixed(0)} Ir`);
  }
}
