// Builds the whole site into site/dist: the VitePress guide at the root,
// TypeDoc's API pages under api/, and docco's annotated source under source/.
// The three share one navigation bar, and every link is relative to the
// same root, so the folder works from any static server with no network.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'site/dist');
const require = createRequire(import.meta.url);
// Package bins are run by path (some packages do not export them).
const bin = (name, file) => join(root, 'node_modules', name, file);
const run = (script, args) => execFileSync(process.execPath, [script, ...args], { cwd: root, stdio: 'inherit' });

// 1. The guide. VitePress empties its output folder first, so it goes first.
run(bin('vitepress', 'bin/vitepress.js'), ['build', 'docs']);

// 2. The API reference (typedoc.json: no warnings allowed).
run(bin('typedoc', 'bin/typedoc'), []);

// 3. The annotated source, in reading order, from the wire up.
const { order, title } = JSON.parse(readFileSync(join(root, 'site/modules.json'), 'utf8'));
const docco = require('docco');
const parallel = join(dirname(require.resolve('docco')), 'resources/parallel');
const css = join(dist, 'docco.css');
writeFileSync(css, readFileSync(join(parallel, 'docco.css'), 'utf8') + readFileSync(join(root, 'site/docco-extra.css'), 'utf8'));
const markedOptions = join(dist, 'marked.json');
writeFileSync(markedOptions, JSON.stringify({ headerIds: false, mangle: false }));
// docco's API expects commander's parsed options: settings from opts(),
// files in args, and a path for the marked options.
const settings = { layout: 'parallel', css, output: join(dist, 'source') };
// docco mirrors each file's folder under the output, so it runs from src/.
process.chdir(join(root, 'src'));
await new Promise((resolve) => {
  docco.document({ ...settings, opts: () => settings, args: order.map((file) => file.replace(/^src\//, '')), marked: markedOptions }, resolve);
});
process.chdir(root);

// 4. One navigation bar on every annotated page.
// The annotated source starts at the first module in reading order.
const nav = (prefix) => `<nav class="site-nav"><a href="${prefix}index.html">Guide</a><a href="${prefix}source/${order[0].slice(4, -3)}.html">Annotated source</a><a href="${prefix}api/index.html">API</a></nav>`;
// docco sorts its jump menu by name; put it back in reading order, with
// links relative to each page (client modules sit one folder down).
const pages = order.map((file) => file.replace(/^src\//, '').replace(/\.ts$/, ''));
for (const page of pages) {
  const path = join(dist, 'source', `${page}.html`);
  const up = '../'.repeat(page.split('/').length - 1);
  const jumpLinks = pages.map((other) => `<a class="source" href="${up}${other}.html">${other}.ts</a>`).join('\n');
  const html = readFileSync(path, 'utf8')
    .replace('<body>', `<body>\n${nav(`../${up}`)}`)
    .replace(/(<div id="jump_page">)[\s\S]*?(<\/div>)/, `$1\n${jumpLinks}\n$2`)
    .replace(/<title>([^<]*)<\/title>/, `<title>$1 · ${title}</title>`);
  writeFileSync(path, html);
}
rmSync(markedOptions);
rmSync(css);
console.log(`site built in ${dist}`);
