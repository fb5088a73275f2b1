// The published package, as an app would get it: `npm pack`, install the
// tarball into an empty folder, then import it as ESM and require it as CJS
// and run a real session through each.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const name = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string }).name;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let folder: string;

before(() => {
  folder = mkdtempSync(join(tmpdir(), 'bc-pack-'));
  const packed = execFileSync(npm, ['pack', '--silent', '--pack-destination', folder], { cwd: root, encoding: 'utf8' });
  const tarball = join(folder, packed.trim().split('\n').at(-1)!);
  writeFileSync(join(folder, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  execFileSync(npm, ['install', '--silent', '--no-audit', '--no-fund', '--offline', tarball], { cwd: folder, encoding: 'utf8' });
});
after(() => rmSync(folder, { recursive: true, force: true }));

// A small program that creates a session over HTTP and prints what it saw.
const program = (load: string) => `
${load}
const http = require('node:http');
const seen = [];
const channel = browserChannel({ base: '/c' }, (session) => { seen.push(session.id.length); });
const server = http.createServer(channel).listen(0, '127.0.0.1', () => {
  const req = http.request({ port: server.address().port, host: '127.0.0.1', method: 'POST', path: '/c/bind?VER=8&RID=1',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => {
      console.log(JSON.stringify({ status: res.statusCode, handshake: body.includes('"c"'), seen, kind: typeof browserChannel }));
      channel.close();
      server.close();
    });
  });
  req.end('count=0');
});`;

function run(file: string, source: string): { status: number; handshake: boolean; seen: number[]; kind: string } {
  writeFileSync(join(folder, file), source);
  const output = execFileSync(process.execPath, [file], { cwd: folder, encoding: 'utf8', timeout: 10000 });
  return JSON.parse(output.trim().split('\n').at(-1)!);
}

test('the tarball ships the built files and no runtime dependencies', () => {
  const manifest = JSON.parse(readFileSync(join(folder, 'node_modules', name, 'package.json'), 'utf8')) as { dependencies?: object };
  assert.equal(manifest.dependencies, undefined);
  for (const file of ['dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/esm/stream.js', 'dist/cjs/index.cjs', 'README.md', 'LICENSE']) {
    assert.ok(readFileSync(join(folder, 'node_modules', name, file)).length > 0, file);
  }
});

test('import browserChannel from the package (ESM default export) runs a session', () => {
  const result = run('esm.mjs', program(`import browserChannel from '${name}';\nimport { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);`));
  assert.deepEqual(result, { status: 200, handshake: true, seen: [22], kind: 'function' });
});

test('require() of the package returns the callable factory, as node-browserchannel did', () => {
  const result = run('cjs.cjs', program(`const browserChannel = require('${name}');\nif (browserChannel.default !== browserChannel) throw new Error('default');`));
  assert.deepEqual(result, { status: 200, handshake: true, seen: [22], kind: 'function' });
});

test('named exports work from both module systems', () => {
  writeFileSync(join(folder, 'named.mjs'), `import { browserChannel, Session, ProtocolError, sessionStream } from '${name}';\nconsole.log([typeof browserChannel, typeof Session, typeof ProtocolError, typeof sessionStream].join());`);
  writeFileSync(join(folder, 'named.cjs'), `const { browserChannel, Session, ProtocolError, sessionStream } = require('${name}');\nconsole.log([typeof browserChannel, typeof Session, typeof ProtocolError, typeof sessionStream].join());`);
  for (const file of ['named.mjs', 'named.cjs']) {
    assert.equal(execFileSync(process.execPath, [file], { cwd: folder, encoding: 'utf8' }).trim(), 'function,function,function,function');
  }
});
