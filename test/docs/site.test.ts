/// <reference lib="dom" />
// The built site: it builds from the sources in the reading order of
// site/modules.json (and refuses to when that list and src/ disagree); every
// link is relative and resolves, on disk and over HTTP under a sub-path; in
// real Chromium every annotated page fits 1400 px and 390 px with every wire
// example and every code line visible; and one search box finds the guide,
// the annotated source and the API from any page.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../chromium.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dist = join(root, 'site/dist');
const output = join(root, 'test-output');
const SUB = '/sub/path/';

interface Module {
  readonly file: string;
  readonly page: string;
  readonly part: string;
  readonly title: string;
}
type ReadingOrder = (base?: string) => Module[];
const { readingOrder } = (await import(join(root, 'site/modules.js'))) as { readingOrder: ReadingOrder };
const { createSiteServer } = (await import(join(root, 'site/serve.js'))) as { createSiteServer: (prefix?: string) => Server };

let server: Server;
let origin = '';
let browser: Browser;

before(async () => {
  execFileSync(process.execPath, [join(root, 'site/build.js')], { cwd: root, stdio: 'pipe' });
  server = createSiteServer(SUB).listen(0, '127.0.0.1');
  await new Promise((done) => server.once('listening', done));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

function htmlFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return htmlFiles(path);
    return name.endsWith('.html') ? [path] : [];
  });
}

// ## The reading order

test('site/modules.json lists every module in src/ once, and the build refuses when it does not', () => {
  const modules = readingOrder();
  assert.equal(modules[0]!.file, 'src/handler.ts', 'the wire comes first');
  assert.ok(modules.findIndex((m) => m.file === 'src/webchannel.ts') > modules.findIndex((m) => m.file === 'src/outbox.ts'));
  assert.ok(modules.at(-1)!.file.startsWith('src/client/'), 'the client comes last');
  const base = mkdtempSync(join(tmpdir(), 'reading-order-'));
  try {
    mkdirSync(join(base, 'site'));
    cpSync(join(root, 'src'), join(base, 'src'), { recursive: true });
    const config = JSON.parse(readFileSync(join(root, 'site/modules.json'), 'utf8')) as { parts: { modules: string[] }[] };
    writeFileSync(join(base, 'site/modules.json'), JSON.stringify(config));
    assert.equal(readingOrder(base).length, modules.length);
    writeFileSync(join(base, 'src/unlisted-example.ts'), '// # Unlisted: a test module\n');
    assert.throws(() => readingOrder(base), /in src\/ but not in site\/modules.json.*src\/unlisted-example\.ts/s);
    config.parts[1]!.modules.push('src/unlisted-example.ts', 'src/missing/example.ts');
    writeFileSync(join(base, 'site/modules.json'), JSON.stringify(config));
    assert.throws(() => readingOrder(base), /listed in site\/modules.json but missing from src\/: src\/missing\/example\.ts/);
    config.parts[1]!.modules.pop();
    writeFileSync(join(base, 'site/modules.json'), JSON.stringify(config));
    assert.equal(readingOrder(base).length, modules.length + 1, 'one line slots a new module in');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('every module has an annotated page with its title, previous/next links and the titled jump menu', () => {
  const modules = readingOrder();
  for (const [index, module] of modules.entries()) {
    const html = readFileSync(join(dist, 'source', `${module.page}.html`), 'utf8');
    assert.match(html, /<h1 id=/, `${module.page} opens with a heading`);
    assert.match(html, /class="site-bar"/);
    const title = /<title>([^<]*) · /.exec(html)?.[1]?.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    assert.equal(title, module.title.replace(/`/g, ''), `${module.page}: the title is the header's`);
    assert.doesNotMatch(html, /\{@link/, `${module.page}: no literal {@link}`);
    assert.doesNotMatch(html, /user-scalable|maximum-scale/, `${module.page}: pinch-zoom allowed`);
    const up = '../'.repeat(module.page.split('/').length);
    if (index > 0) assert.ok(html.includes(`rel="prev" href="${up}source/${modules[index - 1]!.page}.html"`), `${module.page} previous`);
    if (index < modules.length - 1) assert.ok(html.includes(`rel="next" href="${up}source/${modules[index + 1]!.page}.html"`), `${module.page} next`);
    const jump = [...html.matchAll(/<div class="jump-panel">([\s\S]*?)<\/details>/g)][0]![1]!;
    const targets = [...jump.matchAll(/<a href="([^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual(targets, modules.map((other) => `${up}source/${other.page}.html`));
    assert.ok(jump.includes('Inbox: maps on their way up'), 'the menu shows titles, not bare file names');
  }
  const inbox = readFileSync(join(dist, 'source/inbox.html'), 'utf8');
  assert.match(inbox, /<a href="\.\.\/source\/order\.html"[^>]*><code>order\.ts<\/code><\/a>/, 'module mentions are links');
  assert.match(inbox, /<aside class="note">/, 'memory notes are marked');
  const protocol = readFileSync(join(dist, 'protocol.html'), 'utf8');
  assert.match(protocol, /<a href="source\/handler\.html"[^>]*><code>handler\.ts<\/code><\/a>/, 'the guide links modules too');
  assert.match(protocol, /class="reading-order"/, 'the guide ends with the reading order');
  for (const file of htmlFiles(dist)) {
    const viewport = /<meta name="viewport" content="([^"]*)"/.exec(readFileSync(file, 'utf8'))?.[1] ?? '';
    assert.doesNotMatch(viewport, /user-scalable|maximum-scale/, `${relative(dist, file)}: phones can zoom`);
  }
  const home = readFileSync(join(dist, 'index.html'), 'utf8');
  assert.match(home, /href="\.\/protocol\.html"[^>]*>Learn the protocol/, 'a Learn the protocol path from the home page');
});

test('API members link to the annotated section that defines them', () => {
  const html = readFileSync(join(dist, 'api/classes/browserchannel-server.Session.html'), 'utf8');
  const links = [...html.matchAll(/href="\.\.\/\.\.\/source\/session\.html#(section-\d+)"/g)].map((match) => match[1]!);
  assert.ok(links.length > 5, `links to session.html: ${links.length}`);
  const target = readFileSync(join(dist, 'source/session.html'), 'utf8');
  for (const id of links) assert.ok(target.includes(`id="${id}"`), id);
  assert.doesNotMatch(html, /annotated-source:/);
});

// ## Links

test('every link is relative and resolves to a file in site/dist', () => {
  const broken: string[] = [];
  const absolute: string[] = [];
  for (const file of htmlFiles(dist)) {
    const html = readFileSync(file, 'utf8').replace(/<script>[\s\S]*?<\/script>/g, '');
    for (const [, target] of html.matchAll(/(?:href|src)="([^"#?]*)[^"]*"/g)) {
      if (/^(https?:|mailto:|data:|javascript:)/.test(target!) || target === '') continue;
      if (target!.startsWith('/')) absolute.push(`${relative(dist, file)} → ${target}`);
      const path = resolve(dirname(file), target!);
      const candidates = [path, `${path}.html`, join(path, 'index.html')];
      if (!candidates.some((candidate) => existsSync(candidate) && statSync(candidate).isFile())) {
        broken.push(`${relative(dist, file)} → ${target}`);
      }
    }
  }
  assert.deepEqual(absolute, [], 'root-absolute links work only at a domain root');
  assert.deepEqual(broken, []);
});

test(`served under ${SUB}, every page's links and assets answer 200`, async () => {
  const status = new Map<string, number>();
  const check = async (url: string): Promise<number> => {
    if (!status.has(url)) status.set(url, (await fetch(url)).status);
    return status.get(url)!;
  };
  const broken: string[] = [];
  const pages = htmlFiles(dist).map((file) => `${origin}${SUB}${relative(dist, file)}`);
  for (const page of pages) {
    const html = (await (await fetch(page)).text()).replace(/<script>[\s\S]*?<\/script>/g, '');
    const targets = new Set([...html.matchAll(/(?:href|src)="([^"#]+)[^"]*"/g)].map((match) => match[1]!));
    for (const target of targets) {
      if (/^(https?:|mailto:|data:|javascript:)/.test(target)) continue;
      const url = new URL(target, page).href;
      if (!url.startsWith(`${origin}${SUB}`) || (await check(url)) !== 200) broken.push(`${page.slice(origin.length)} → ${target}`);
    }
  }
  assert.deepEqual(broken, []);
  console.log(`checked ${pages.length} pages, ${status.size} distinct targets under ${SUB}`);
});

// ## Layout, in Chromium

test('every annotated page fits 1400 px and 390 px: no page scroll, no clipped wire example, code inside its shade', async () => {
  const problems: string[] = [];
  for (const width of [1400, 390]) {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    for (const module of readingOrder()) {
      await page.goto(`${origin}${SUB}source/${module.page}.html`);
      const found = await page.evaluate(() => {
        const issues: string[] = [];
        const overflow = document.documentElement.scrollWidth - window.innerWidth;
        if (overflow > 0) issues.push(`page scrolls sideways by ${overflow}px`);
        for (const pre of document.querySelectorAll<HTMLElement>('.annotation pre')) {
          if (pre.scrollWidth > pre.clientWidth + 1) issues.push(`prose pre clipped: ${pre.textContent!.slice(0, 40)}`);
          const column = pre.closest('.annotation')!.getBoundingClientRect();
          if (pre.getBoundingClientRect().right > column.right + 1) issues.push(`prose pre leaves its column: ${pre.textContent!.slice(0, 40)}`);
        }
        for (const wrap of document.querySelectorAll<HTMLElement>('.annotation .table-wrap')) {
          const column = wrap.closest('.annotation')!.getBoundingClientRect();
          if (wrap.getBoundingClientRect().right > column.right + 1) issues.push('table leaves its column');
          if (wrap.scrollWidth > wrap.clientWidth && getComputedStyle(wrap).overflowX !== 'auto') issues.push('table cannot scroll');
        }
        for (const content of document.querySelectorAll<HTMLElement>('.content')) {
          const shade = content.getBoundingClientRect();
          const background = getComputedStyle(content).backgroundColor;
          if (background === 'rgba(0, 0, 0, 0)' || background === 'transparent') issues.push('code column has no background');
          const pre = content.querySelector('pre')!;
          const box = pre.getBoundingClientRect();
          if (box.left < shade.left - 1 || box.right > shade.right + 1) issues.push(`code outside its shade at ${Math.round(box.left)}..${Math.round(box.right)}`);
          if (pre.scrollWidth > pre.clientWidth + 1) issues.push('code line clipped');
        }
        return issues;
      });
      problems.push(...found.map((issue) => `${module.page} @${width}: ${issue}`));
    }
    await page.close();
  }
  assert.deepEqual(problems, []);
});

test('the jump menu opens below the header with its first entry clickable', async () => {
  for (const width of [1400, 390]) {
    const page = await browser.newPage({ viewport: { width, height: 844 } });
    await page.goto(`${origin}${SUB}source/outbox.html`);
    await page.click('details.jump > summary');
    const first = page.locator('.jump-panel a').first();
    const box = (await first.boundingBox())!;
    const hit = await page.evaluate(([x, y]) => document.elementFromPoint(x!, y!)?.closest('a')?.getAttribute('href'), [box.x + 10, box.y + box.height / 2]);
    assert.equal(hit, '../source/handler.html', `first entry is what a click at ${width}px reaches`);
    await first.click();
    assert.match(page.url(), /\/sub\/path\/source\/handler\.html$/);
    // An API "Defined in" link lands on its section below the sticky header, not under it.
    await page.goto(`${origin}${SUB}source/session.html#section-7`);
    const [barBottom, sectionTop] = await page.evaluate(() => [
      document.querySelector('.site-bar')!.getBoundingClientRect().bottom,
      document.getElementById('section-7')!.getBoundingClientRect().top,
    ]);
    assert.ok(sectionTop >= barBottom - 1, `section top ${sectionTop} is below the header's bottom ${barBottom} at ${width}px`);
    await page.close();
  }
});

test('one search box finds the annotated source and the API from the guide, the source and the API', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  for (const from of ['protocol.html', 'source/inbox.html', 'api/classes/browserchannel-server.Session.html']) {
    await page.goto(`${origin}${SUB}${from}`);
    const input = page.locator('[data-site-search] input').first();
    await input.waitFor();
    for (const [query, expected] of [['rewind', 'source/outbox.html'], ['Sequencer', 'source/order.html'], ['bufferedBytes', 'api/classes/browserchannel-server.Session.html#bufferedbytes'], ['recycled', 'protocol.html']] as const) {
      await input.fill(query);
      const hrefs = await page.locator('.site-search-results a').evaluateAll((links) => links.map((link) => (link as HTMLAnchorElement).href));
      assert.ok(hrefs.some((href) => href.startsWith(`${origin}${SUB}${expected}`)), `${from}: "${query}" finds ${expected} (got ${hrefs.slice(0, 3).join(', ')})`);
    }
  }
  await page.close();
});

test('screenshots: home, the inbox page, the protocol page and an API page at 1400 px and 390 px', async () => {
  mkdirSync(output, { recursive: true });
  const errors: string[] = [];
  for (const width of [1400, 390]) {
    const page = await browser.newPage({ viewport: { width, height: width === 390 ? 844 : 900 } });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('response', (response) => {
      if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
    });
    for (const [name, path] of [['home', 'index.html'], ['inbox', 'source/inbox.html'], ['protocol', 'protocol.html'], ['api-session', 'api/classes/browserchannel-server.Session.html']]) {
      await page.goto(`${origin}${SUB}${path}`);
      await page.waitForLoadState('networkidle');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} @${width}: no sideways scroll (${overflow}px)`);
      await page.screenshot({ path: join(output, `site-${name}-${width}.png`) });
    }
    await page.close();
  }
  assert.deepEqual(errors, [], 'no failed requests or script errors under the sub-path');
});
