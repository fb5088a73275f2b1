// `npm run start:cluster`: the chat demo on three processes sharing one Redis,
// behind nginx, on this machine. Prints one URL; Ctrl-C stops everything.
//
//   npm run start:cluster                 sticky nginx config (deploy/nginx-config.mjs)
//   npm run start:cluster -- --mode any   plain round robin; processes relay over Redis
//   PORT=8080 npm run start:cluster       nginx's port (default: 8080, or a free one)
//
// It starts its own redis-server and nginx on 127.0.0.1 in a temporary
// directory (never the system services) and needs both installed.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const harness = await import('../test/cluster/harness.ts');
const { nginxConfig } = await import('../deploy/nginx-config.mjs');

const missing = harness.missingBinaries();
if (missing.length > 0) {
  console.error(`start:cluster needs ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed. Install with:`);
  console.error(`  Debian/Ubuntu:  sudo apt-get install ${missing.join(' ')}`);
  console.error(`  macOS:          brew install ${missing.map((name) => (name === 'redis-server' ? 'redis' : name)).join(' ')}`);
  process.exit(1);
}
const mode = process.argv.includes('--mode') ? process.argv[process.argv.indexOf('--mode') + 1] : 'sticky';
if (mode !== 'sticky' && mode !== 'any') {
  console.error('--mode sticky or --mode any');
  process.exit(2);
}

const server = fileURLToPath(new URL('../examples/cluster/server.ts', import.meta.url));
const started = [];
let stopping = false;
const stop = async (code = 0) => {
  if (stopping) return;
  stopping = true;
  for (const part of started.reverse()) await part.stop().catch(() => {});
  process.exit(code);
};
process.on('SIGINT', () => stop());
process.on('SIGTERM', () => stop());
let port;
let nginx;
let nodes;
let redis;
try {
  redis = await harness.startRedis();
  started.push(redis);
  nodes = await Promise.all(['n1', 'n2', 'n3'].map(async (id) => {
    const node = await harness.startNode(id, redis.url, server);
    started.push(node);
    return node;
  }));
  const wanted = Number(process.env.PORT ?? 8080);
  port = (await harness.canConnect(wanted)) ? await harness.freePort() : wanted;
  nginx = await harness.startNginx(nginxConfig({ listen: port, mode, nodes: nodes.map((n) => ({ id: n.id, address: n.address })) }), port);
  started.push(nginx);
} catch (error) {
  console.error(`start:cluster: ${error.message}`);
  await stop(1);
}

console.log(`redis-server on ${redis.url}; chat processes ${nodes.map((n) => `${n.id} on ${n.address}`).join(', ')}`);
console.log(`nginx (${mode === 'any' ? 'round robin, requests relayed over Redis' : 'sticky by session id'}), config in ${nginx.dir}/nginx.conf`);
console.log(`\n  chat: http://127.0.0.1:${port}/     (WebChannel client: http://127.0.0.1:${port}/?client=webchannel)\n`);

