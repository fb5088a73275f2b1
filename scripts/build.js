// Builds the published package: ES modules and declarations with tsc, and a
// CommonJS file whose module.exports *is* the factory, so that
// `require('browserchannel-server')(options, onConnect)` works as it did with
// node-browserchannel.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
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

// CommonJS: one bundle per entry. The main entry's module.exports *is*
// the factory, with the named exports hanging off it.
mkdirSync(join(root, 'dist/cjs'), { recursive: true });
const cjsEntries = [
  ['src/index.ts', 'index.cjs', 'module.exports = Object.assign(module.exports.default, module.exports);'],
  ['src/client/index.ts', 'client.cjs', ''],
];
for (const [entry, file, footer] of cjsEntries) {
  esbuild.buildSync({
    entryPoints: [join(root, entry)],
    outfile: join(root, 'dist/cjs', file),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
    footer: { js: footer },
    // import.meta.url (used to find bcsocket.js) means this file, in CommonJS too.
    banner: { js: 'const importMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
    define: { 'import.meta.url': 'importMetaUrl' },
  });
}

// CommonJS declarations. TypeScript reads a `.d.ts` under a folder whose
// package.json says "commonjs" as a CommonJS module, so a copy of the ESM
// declarations serves CommonJS projects with no cross-format import. The
// main entry then needs `export =`, the CommonJS way of saying "the module
// *is* this function": a const for the value, and a namespace of the same
// name that carries every exported type, so both
// `import bc = require('browserchannel-server')` and
// `import bc, { type Session } from 'browserchannel-server'` type-check.
cpSync(join(root, 'dist/esm'), join(root, 'dist/cjs/types'), { recursive: true, filter: (from) => !from.endsWith('.js') });
writeFileSync(join(root, 'dist/cjs/package.json'), JSON.stringify({ type: 'commonjs' }) + '\n');
writeFileSync(join(root, 'dist/cjs/index.d.cts'), cjsDeclaration(join(root, 'dist/esm/index.d.ts')));

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
// Its declarations re-export the CommonJS copy of the ESM ones.
writeFileSync(join(root, 'dist/cjs/redis.d.cts'), "export * from './types/redis/index.js';\n");
console.log('built dist/esm and dist/cjs');

function cjsDeclaration(esmIndex) {
  const ts = require('typescript');
  const program = ts.createProgram([esmIndex], { skipLibCheck: true, types: [] });
  const checker = program.getTypeChecker();
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(esmIndex)));
  const lines = [];
  for (const symbol of exports) {
    const name = symbol.getName();
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    if (name === 'default' || !(target.flags & ts.SymbolFlags.Type)) continue;
    const declaration = target.declarations?.find((d) => d.typeParameters) ?? null;
    const params = declaration?.typeParameters ?? [];
    const source = declaration?.getSourceFile();
    const list = params.length ? `<${params.map((p) => p.getText(source)).join(', ')}>` : '';
    const args = params.length ? `<${params.map((p) => p.name.getText(source)).join(', ')}>` : '';
    lines.push(`  type ${name}${list} = api.${name}${args};`);
  }
  return `// Generated by scripts/build.js: the CommonJS view of the package's types.
import api = require('./types/index.js');
declare const browserChannel: typeof api.browserChannel & typeof api;
declare namespace browserChannel {
${lines.join('\n')}
}
export = browserChannel;
`;
}
