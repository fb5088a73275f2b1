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

// ## Types in every kind of TypeScript project
//
// Four consumer projects beside the installed tarball, each type-checked by
// the real `tsc`: CommonJS and ESM under `nodenext`, classic `commonjs`
// (`import x = require()`), and `bundler` resolution. Each uses the factory
// with typed messages, `Session`, `BrowserChannelOptions` and the client
// entry, and each has one wrong use that must fail.
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const usingImports = `
import browserChannel, { type Session, type BrowserChannelOptions } from '${'NAME'}';
import { BCSocket } from '${'NAME'}/client';
const options: BrowserChannelOptions = { base: '/c', keepAliveInterval: 1000 };
const channel = browserChannel<{ n: number }, string>(options, (session: Session<{ n: number }, string>) => {
  session.on('message', (message) => session.send(String(message.n + 1)));
  session.on('close', (reason) => reason.toUpperCase());
});
channel.to('room').except(['other']).send('hello');
export const socket: BCSocket = new BCSocket('/c', { reconnect: true });
// @ts-expect-error the channel sends strings
channel.send(42);
`;
const usingRequire = `
import browserChannel = require('${'NAME'}');
import client = require('${'NAME'}/client');
const options: browserChannel.BrowserChannelOptions = { base: '/c' };
const channel = browserChannel<string, string>(options, (session: browserChannel.Session<string, string>) => {
  session.on('message', (message) => session.send(message.toUpperCase()));
});
channel.send('hi');
export const socket = new client.BCSocket('/c');
// @ts-expect-error the channel sends strings
channel.send({});
`;
const projects: Array<[string, Record<string, unknown>, Record<string, string>, string]> = [
  ['nodenext-cjs', { module: 'nodenext', moduleResolution: 'nodenext' }, {}, usingImports],
  ['nodenext-esm', { module: 'nodenext', moduleResolution: 'nodenext' }, { type: 'module' }, usingImports],
  ['commonjs', { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true, ignoreDeprecations: '6.0' }, {}, usingRequire],
  ['bundler', { module: 'esnext', moduleResolution: 'bundler' }, { type: 'module' }, usingImports],
];
for (const [project, compilerOptions, manifest, source] of projects) {
  test(`types work in a ${project} TypeScript project`, () => {
    const dir = join(folder, project);
    execFileSync('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: project, private: true, ...manifest }));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'es2022', lib: ['es2022', 'dom'], types: ['node'],
        typeRoots: [join(root, 'node_modules/@types')], ...compilerOptions },
      files: ['index.ts'],
    }));
    writeFileSync(join(dir, 'index.ts'), source.replaceAll('NAME', name));
    execFileSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8' });
    // Without the @ts-expect-error line's comment, the wrong use must be an error.
    writeFileSync(join(dir, 'index.ts'), source.replaceAll('NAME', name).replace(/\/\/ @ts-expect-error.*\n/, ''));
    assert.throws(() => execFileSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', stdio: 'pipe' }),
      (error: { stdout?: string }) => /TS2345/.test(error.stdout ?? ''));
  });
}
