// Builds the whole site into site/dist: the VitePress guide at the root,
// TypeDoc's API pages under api/, and the annotated source under source/
// (docco's parser and highlighter, our own template and CSS). The three
// share one font, one set of colours, one header and one search index, and
// every link is relative, so the folder works under any path of any static
// server, with no network.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readingOrder, sourceTitle } from './modules.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const site = join(root, 'site');
const dist = join(root, 'site/dist');
const require = createRequire(import.meta.url);
const bin = (name, file) => join(root, 'node_modules', name, file);
const run = (script, args, env = {}) =>
  execFileSync(process.execPath, [script, ...args], { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });

// 0. The reading order, checked against src/ before anything is built.
const modules = readingOrder();
const byFile = new Map(modules.map((module) => [module.file, module]));

// 1. The guide. VitePress empties its output folder, so it goes first. It is
// built under a placeholder base that step 6 turns into relative links.
const PLACEHOLDER = '/__vpbase__/';
run(bin('vitepress', 'bin/vitepress.js'), ['build', 'docs'], { VP_BASE: PLACEHOLDER });

// 2. The API reference (typedoc.json: no warnings allowed).
run(bin('typedoc', 'bin/typedoc'), []);

// 3. Shared files at the root: the stylesheet, the font, the search script.
const files = (folder) =>
  readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
const font = files(join(dist, 'assets')).find((path) => /inter-roman-latin\.[\w-]+\.woff2$/.test(path));
if (!font) throw new Error('site: VitePress did not emit its Inter font (assets/inter-roman-latin.*.woff2)');
mkdirSync(join(dist, 'fonts'), { recursive: true });
copyFileSync(font, join(dist, 'fonts/inter-latin.woff2'));
copyFileSync(join(site, 'site.css'), join(dist, 'site.css'));
copyFileSync(join(site, 'site-search.js'), join(dist, 'site-search.js'));
mkdirSync(join(dist, 'source'), { recursive: true });
copyFileSync(join(site, 'source.css'), join(dist, 'source/source.css'));

// `up` is the way from a page to the site's root: '' at the root, '../' one down.
const upFrom = (pageFromRoot) => '../'.repeat(pageFromRoot.split('/').length - 1);
const escapeHtml = (text) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
// Titles are one line of Markdown: escape, then `code`.
const titleHtml = (title) => escapeHtml(title).replace(/`([^`]+)`/g, '<code>$1</code>');
const plain = (title) => title.replace(/`/g, '');

// The shared header. `current` marks the section of the site a page is in.
const first = modules[0];
function siteBar(up, current, extra = '') {
  const link = (href, text, key) => `<a href="${up}${href}"${key === current ? ' aria-current="page"' : ''}>${text}</a>`;
  return `<header class="site-bar">
  <a class="site-title" href="${up}index.html">browserchannel-server</a>
  <nav class="site-links">${link('protocol.html', 'Learn the protocol', 'learn')}${link('getting-started.html', 'Guide', 'guide')}${link(`source/${first.page}.html`, 'Annotated source', 'source')}${link('api/index.html', 'API', 'api')}${extra}</nav>
  <div data-site-search></div>
</header>`;
}

// Mentions of modules in prose become links: `outbox.ts`, `client/wire.ts`,
// `src/session.ts`. A bare name is looked up beside the page first (the
// client's `wire.ts` means src/client/wire.ts), then from src/.
function moduleFor(name, fromPage) {
  const folder = fromPage.includes('/') ? `${fromPage.slice(0, fromPage.lastIndexOf('/'))}/` : '';
  const bare = name.replace(/^src\//, '');
  return byFile.get(`src/${folder}${bare}`) ?? byFile.get(`src/${bare}`) ?? null;
}
function linkModules(html, fromPage, upToRoot) {
  return html.replace(/(<a\b[^>]*>[\s\S]*?<\/a>)|<code>((?:src\/)?[\w/-]+\.ts)<\/code>/g, (whole, anchor, name) => {
    if (anchor) return anchor;
    const module = moduleFor(name, fromPage);
    if (!module || module.page === fromPage) return whole;
    return `<a href="${upToRoot}source/${module.page}.html" title="${escapeHtml(plain(module.title))}">${whole}</a>`;
  });
}

// `{@link X}` in prose: a link to X's API page when there is one, else code.
const apiPages = new Map();
for (const path of files(join(dist, 'api')).filter((path) => path.endsWith('.html'))) {
  const match = /\/api\/(classes|interfaces|functions|types|variables)\/[\w-]+\.(\w+)\.html$/.exec(path);
  if (match) apiPages.set(match[2], relative(dist, path));
}
function apiLinks(html, upToRoot) {
  return html.replace(/\{@link\s+([\w.]+)(?:\s*\|\s*([^}]+))?\}/g, (_, target, label) => {
    const text = `<code>${escapeHtml(label?.trim() ?? target)}</code>`;
    const page = apiPages.get(target.split('.')[0]);
    return page ? `<a href="${upToRoot}${page}">${text}</a>` : text;
  });
}

// Heading ids from their text, unique on the page.
const slug = (html) =>
  html.replace(/<[^>]+>/g, '').toLowerCase().replace(/&[a-z]+;/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'section';

// 4. The annotated source.
const docco = require('docco');
const _ = require('underscore');
const template = _.template(readFileSync(join(site, 'source.jst'), 'utf8'));
const doccoConfig = { languages: {}, marked: { headerIds: false, mangle: false } };
// Each module's sections and the source line each starts on, for step 5.
const sectionStarts = new Map();

function pagerHtml(index, up) {
  const previous = index === 0
    ? { href: `${up}protocol.html`, title: 'The protocol, request by request (guide)' }
    : { href: `${up}source/${modules[index - 1].page}.html`, title: modules[index - 1].title };
  const next = index === modules.length - 1
    ? { href: `${up}api/index.html`, title: 'The API reference' }
    : { href: `${up}source/${modules[index + 1].page}.html`, title: modules[index + 1].title };
  return `<a class="previous" rel="prev" href="${previous.href}"><span class="label">← Previous</span><span class="title">${titleHtml(previous.title)}</span></a>
    <a class="next" rel="next" href="${next.href}"><span class="label">Next →</span><span class="title">${titleHtml(next.title)}</span></a>`;
}

function jumpMenu(current, up) {
  const parts = [];
  for (const module of modules) {
    if (parts.at(-1)?.part !== module.part) parts.push({ part: module.part, modules: [] });
    parts.at(-1).modules.push(module);
  }
  const items = parts.map(({ part, modules: inPart }, index) => `<div class="jump-part"><h4>${index + 1}. ${escapeHtml(part)}</h4>${inPart
    .map((module) => `<a href="${up}source/${module.page}.html"${module === current ? ' aria-current="page"' : ''}>${titleHtml(module.title)}<span class="file">${module.page}.ts</span></a>`)
    .join('')}</div>`);
  return `<details class="jump"><summary>Contents</summary><div class="jump-panel">${items.join('')}</div></details>`;
}

for (const [index, module] of modules.entries()) {
  const code = readFileSync(join(root, module.file), 'utf8');
  const sections = docco.parse(module.file, code, doccoConfig);
  docco.format(module.file, sections, doccoConfig);
  const up = upFrom(`source/${module.page}`);
  const ids = new Set();
  let line = 1;
  const starts = [];
  for (const section of sections) {
    starts.push(line);
    line += (section.docsText + section.codeText).split('\n').length - 1;
    section.hasCode = section.codeText.trim() !== '';
    let html = section.docsHtml;
    html = apiLinks(html, up);
    html = linkModules(html, module.page, up);
    html = html.replace(/<table>([\s\S]*?)<\/table>/g, '<div class="table-wrap"><table>$1</table></div>');
    // A blockquote that opens with **Note (…):** is an aside, styled as one.
    html = html.replace(/<blockquote>\s*<p><strong>(Note[^<]*)<\/strong>([\s\S]*?)<\/blockquote>/g,
      (_, label, rest) => `<aside class="note"><p><span class="note-label">${label}</span>${rest}</aside>`);
    html = html.replace(/<h([1-3])>([\s\S]*?)<\/h\1>/g, (_, level, text) => {
      let id = slug(text);
      while (ids.has(id)) id += '-';
      ids.add(id);
      return `<h${level} id="${id}"><a class="anchor" href="#${id}">${text}</a></h${level}>`;
    });
    section.docsHtml = html;
  }
  sectionStarts.set(module.file, starts);
  const page = template({
    plainTitle: escapeHtml(plain(module.title)),
    siteTitle: escapeHtml(sourceTitle()),
    up,
    bar: siteBar(up, 'source', jumpMenu(module, up)),
    pager: pagerHtml(index, up),
    sections,
  });
  const out = join(dist, 'source', `${module.page}.html`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, page);
}

// The section of an annotated page that holds a source line.
function sectionOf(file, line) {
  const starts = sectionStarts.get(file);
  if (!starts) return null;
  let index = 0;
  while (index + 1 < starts.length && starts[index + 1] <= line) index++;
  return `section-${index + 1}`;
}

// 5. The API pages: the shared header in TypeDoc's toolbar, the shared
// stylesheet, the search box, and "Defined in" links to the annotated section.
for (const path of files(join(dist, 'api')).filter((path) => path.endsWith('.html'))) {
  const fromRoot = relative(dist, path);
  const up = upFrom(fromRoot);
  let html = readFileSync(path, 'utf8');
  html = html.replace('<link rel="stylesheet" href="', `<link rel="stylesheet" href="${up}site.css"/><link rel="stylesheet" href="`);
  html = html.replace('<body>', `<body data-site-root="${up}">`);
  html = html.replace(/<a href="[^"]*" class="title">[^<]*<\/a>\s*<div id="tsd-toolbar-links">[\s\S]*?<\/div>/, () =>
    siteBar(up, 'api').replace(/^<header class="site-bar">|<\/header>$/g, '').replace(/^\s*/, ''));
  // Members inherited from TypeScript's own lib (Error's) have no page: plain text.
  html = html.replace(/<a href="annotated-source:([^":]+):(\d+)"[^>]*>([\s\S]*?)<\/a>/g, (_, file, line, text) => {
    const module = byFile.get(`src/${file}`);
    if (!module) return `<span>${text}</span>`;
    return `<a href="${up}source/${module.page}.html#${sectionOf(module.file, Number(line))}">${text}</a>`;
  });
  html = html.replace(/<\/body>/, `<script src="${up}search-index.js" defer></script><script src="${up}site-search.js" defer></script></body>`);
  html = linkModules(html, '', up);
  writeFileSync(path, html);
}

// 6. The guide's pages: the placeholder base becomes a relative path in the
// HTML and CSS, and at run time a base the page computes from its own URL.
for (const path of files(dist)) {
  const fromRoot = relative(dist, path);
  if (fromRoot.startsWith('api/') || fromRoot.startsWith('source/')) continue;
  if (path.endsWith('.html')) {
    const up = upFrom(fromRoot) || './';
    let html = readFileSync(path, 'utf8');
    const baseScript = `<script>window.__SITE_BASE__=new URL(${JSON.stringify(up)},location.href).pathname</script>`;
    html = html.replace('<head>', `<head>\n    ${baseScript}`);
    html = html.replace(/window\.__VP_SITE_DATA__=JSON\.parse\(("(?:[^"\\]|\\.)*")\);/, (whole) =>
      `${whole}window.__VP_SITE_DATA__.base=window.__SITE_BASE__;`);
    html = html.replaceAll(`="${PLACEHOLDER}`, `="${up}`).replaceAll('___vpbase___', '_')
      .replace(`\\"base\\":\\"${PLACEHOLDER}\\"`, '\\"base\\":\\"/\\"');
    writeFileSync(path, html);
  } else if (path.endsWith('.css')) {
    const up = relative(dirname(path), dist) || '.';
    writeFileSync(path, readFileSync(path, 'utf8').replaceAll(`url(${PLACEHOLDER}`, `url(${up}/`));
  } else if (path.endsWith('.js')) {
    writeFileSync(path, readFileSync(path, 'utf8').replaceAll(`"${PLACEHOLDER}"`, 'window.__SITE_BASE__'));
  }
}

// 7. One search index over the three: every heading with an id, and the
// text under it up to the next heading.
const index = [];
function textOf(html) {
  return html.replace(/<(script|style|svg|pre)\b[\s\S]*?<\/\1>/g, ' ').replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
    .replace(/&[#\w]+;/g, ' ').replace(/\s+/g, ' ').trim();
}
function addSections(kind, pageTitle, url, html) {
  const headings = [...html.matchAll(/<h([1-4])\b[^>]*\bid="([^"]+)"[^>]*>([\s\S]*?)<\/h\1>/g)];
  headings.forEach((heading, at) => {
    const end = headings[at + 1]?.index ?? html.length;
    const text = textOf(html.slice(heading.index + heading[0].length, end)).slice(0, 600);
    const title = textOf(heading[3]).replace(/^#\s*|​/g, '').replace(/\s*#$/, '');
    index.push([kind, `${url}#${heading[2]}`, title === pageTitle ? title : `${pageTitle} › ${title}`, text]);
  });
}
for (const module of modules) {
  const html = readFileSync(join(dist, 'source', `${module.page}.html`), 'utf8');
  const main = html.slice(html.indexOf('<main'));
  addSections('Source', plain(module.title).split(':')[0], `source/${module.page}.html`, main);
}
for (const path of files(dist).filter((path) => path.endsWith('.html') && !/^(source|api)\/|^404/.test(relative(dist, path)))) {
  const html = readFileSync(path, 'utf8');
  const start = html.indexOf('class="vp-doc');
  if (start === -1) continue;
  const pageTitle = textOf(/<h1[^>]*>([\s\S]*?)<\/h1>/.exec(html)?.[1] ?? '').replace(/\s*#$/, '').replace(/​/g, '');
  addSections('Guide', pageTitle, relative(dist, path), html.slice(start));
}
for (const path of files(join(dist, 'api')).filter((path) => path.endsWith('.html'))) {
  const html = readFileSync(path, 'utf8');
  const url = relative(dist, path);
  const pageTitle = textOf(/<title>([^<|]*)/.exec(html)?.[1] ?? '');
  const content = html.slice(html.indexOf('<div class="col-content">'), html.indexOf('<div class="col-sidebar">'));
  const intro = textOf(content.slice(0, content.search(/<section class="tsd-panel-group|$/))).slice(0, 600);
  index.push(['API', url, pageTitle, intro]);
  const members = /<section class="tsd-panel tsd-member[^"]*">\s*<h3[^>]*\bid="([^"]+)"[^>]*>([\s\S]*?)<\/h3>([\s\S]*?)<\/section>/g;
  for (const [, id, heading, body] of content.matchAll(members)) {
    const name = textOf(heading).replace(/^Readonly\s+/, '');
    index.push(['API', `${url}#${id}`, `${pageTitle}.${name}`, textOf(body).slice(0, 600)]);
  }
}
writeFileSync(join(dist, 'search-index.js'), `window.SITE_SEARCH_INDEX=${JSON.stringify(index)};\n`);

// 8. Nothing may still point at the placeholder base.
const leftover = files(dist).filter((path) => /\.(html|js|css)$/.test(path) && readFileSync(path, 'utf8').includes(PLACEHOLDER));
if (leftover.length > 0) throw new Error(`site: the placeholder base is left in ${leftover.map((path) => relative(dist, path)).join(', ')}`);
console.log(`site built in ${dist}: ${modules.length} annotated modules, ${index.length} search entries`);
