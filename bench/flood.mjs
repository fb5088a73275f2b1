// One client looping on the create request, with and without
// `maxSessionsPerClient`: how many sessions it gets, and the heap they hold.
//
//   npm run build && node --expose-gc bench/flood.mjs
//
// ```text
// limit none: 84,656 creates in 3 s, 84,656 sessions, heap +55.6 MB
// limit 20:   76,192 creates in 3 s, 20 sessions, heap +0.2 MB
// ```
//
// Without the limit every session lives until it times out (30 s), so a
// flood that keeps going holds ten times that.
import http from 'node:http';
import autocannon from 'autocannon';

const { default: browserChannel } = await import(new URL('../dist/esm/index.js', import.meta.url).href);
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

for (const limit of [undefined, 20]) {
  const channel = browserChannel(limit ? { maxSessionsPerClient: limit } : {}, (session) => {
    session.on('message', () => {});
  });
  const server = http.createServer((req, res) => channel(req, res));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  globalThis.gc();
  const before = process.memoryUsage().heapUsed;
  const result = await autocannon({
    url: `http://127.0.0.1:${server.address().port}/channel/bind?VER=8&RID=1&CVER=1`,
    method: 'POST',
    body: 'count=0',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    connections: 32,
    duration: 3,
  });
  globalThis.gc();
  const grown = (process.memoryUsage().heapUsed - before) / 1e6;
  console.log(`limit ${String(limit ?? 'none').padEnd(4)}: ` +
    `${result.requests.total.toLocaleString('en')} creates in 3 s, ` +
    `${channel.sessionCount.toLocaleString('en')} sessions, heap +${grown.toFixed(1)} MB`);
  channel.close();
  server.close();
}
process.exit(0);
