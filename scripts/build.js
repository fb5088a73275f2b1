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

rmSync(join(root, 'dist'), { recursive: true, force: true });
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
});
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
