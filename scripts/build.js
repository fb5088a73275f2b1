// Builds the published package: ES modules and declarations with tsc, and a
// CommonJS file whose module.exports *is* the factory, so that
// `require('browserchannel-server')(options, onConnect)` works as it did with
// node-browserchannel.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const esbuild = require('esbuild');

// The browser client: one readable script that defines window.BCSocket,
// served by the handler at <base>/bcsocket.js. `node scripts/build.js client`
// builds only this (the tests need it; it takes a fraction of a second).
function buildClient() {
  esbuild.buildSync({
    entryPoints: [join(root, 'src/client/index.ts')],
    outfile: join(root, 'dist/bcsocket.js'),
    bundle: true,
    format: 'iife',
    target: 'es2020',
    logLevel: 'warning',
    banner: { js: '/* BCSocket: a BrowserChannel client for browsers. Readable source: src/client/ */' },
  });
}
if (process.argv[2] === 'client') {
  buildClient();
  process.exit(0);
}

rmSync(join(root, 'dist'), { recursive: true, force: true });
buildClient();
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

mkdirSync(join(root, 'dist/cjs'), { recursive: true });
esbuild.buildSync({
  entryPoints: [join(root, 'src/index.ts')],
  outfile: join(root, 'dist/cjs/index.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
  // The factory becomes module.exports; the named exports hang off it.
  footer: { js: 'module.exports = Object.assign(module.exports.default, module.exports);' },
  // import.meta.url (used to find bcsocket.js) means this file, in CommonJS too.
  banner: { js: 'const importMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  define: { 'import.meta.url': 'importMetaUrl' },
});
// The Redis entry in CommonJS. It reaches the core only through the
// package's public entry, which stays external here, so both files share
// one copy of the core's classes (`instanceof ProtocolError` holds).
await esbuild.build({
  entryPoints: [join(root, 'src/redis/index.ts')],
  outfile: join(root, 'dist/cjs/redis.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
  external: ['redis'],
  plugins: [{
    name: 'core-stays-external',
    setup(build) {
      build.onResolve({ filter: /^\.\.\/index\.ts$/ }, () => ({ path: './index.cjs', external: true }));
    },
  }],
});
writeFileSync(
  join(root, 'dist/cjs/redis.d.cts'),
  `import type * as api from '../esm/redis/index.js';
export declare const redisAdapter: typeof api.redisAdapter;
export declare const RedisAdapter: typeof api.RedisAdapter;
export type RedisAdapter = api.RedisAdapter;
export type RedisAdapterOptions = api.RedisAdapterOptions;
export type RedisAdapterConfig = api.RedisAdapterConfig;
export type RedisConnection = api.RedisConnection;
export type PubSubListener = api.PubSubListener;
`,
);
writeFileSync(
  join(root, 'dist/cjs/index.d.cts'),
  `import type * as api from '../esm/index.js';
declare const browserChannel: typeof api.browserChannel & {
  default: typeof api.browserChannel;
  browserChannel: typeof api.browserChannel;
  Session: typeof api.Session;
  ProtocolError: typeof api.ProtocolError;
};
export = browserChannel;
`,
);
console.log('built dist/esm and dist/cjs');
