/// <reference lib="dom" />
// The built site: it builds from the sources, every module has its annotated
// page, every internal link resolves to a file in site/dist, and in real
// Chromium the annotated source shows prose and highlighted code side by side.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dist = join(root, 'site/dist');
const output = join(root, 'test-output');

before(() => {
  execFileSync(process.execPath, [join(root, 'site/build.js')], { cwd: root, stdio: 'pipe' });
});

function htmlFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return htmlFiles(path);
    return name.endsWith('.html') ? [path] : [];
  });
}

function sourceFiles(folder: string, prefix = ''): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return sourceFiles(path, `${prefix}${name}/`);
    return name.endsWith('.ts') ? [`${prefix}${name}`] : [];
  });
}

test('every module in src/ (client included) has an annotated page, in the configured reading order', () => {
  const modules = sourceFiles(join(root, 'src'));
  const { order } = JSON.parse(readFileSync(join(root, 'site/modules.json'), 'utf8')) as { order: string[] };
  assert.deepEqual([...order].sort(), modules.map((name) => `src/${name}`).sort(), 'site/modules.json lists every module');
  assert.ok(modules.includes('client/bcsocket.ts'));
  for (const name of modules) {
    const page = join(dist, 'source', name.replace(/\.ts$/, '.html'));
    assert.ok(existsSync(page), `${page} exists`);
    const html = readFileSync(page, 'utf8');
    assert.match(html, /<h1/, `${name} opens with a heading`);
    assert.match(html, /class="site-nav"/);
  }
  const jump = readFileSync(join(dist, 'source/session.html'), 'utf8').match(/<a class="source" href="([^"]+)"/g)!;
  assert.deepEqual(jump.map((a) => a.slice(24, -1)), order.map((file) => file.slice(4, -3) + '.html'));
});

test('the guide, the API reference and the annotated source are all there', () => {
  for (const page of ['index.html', 'getting-started.html', 'protocol.html', 'webchannel.html', 'options.html', 'deploying.html', 'differences.html', 'api/index.html', 'api/classes/browserchannel-server.Session.html', 'api/classes/browserchannel-server_client.BCSocket.html']) {
    assert.ok(existsSync(join(dist, page)), page);
  }
  console.log(`site pages: ${htmlFiles(dist).length}`);
});

test('every internal link and asset resolves to a file in site/dist', () => {
  const broken: string[] = [];
  for (const file of htmlFiles(dist)) {
    const html = readFileSync(file, 'utf8');
    for (const [, target] of html.matchAll(/(?:href|src)="([^"#?]+)[^"]*"/g)) {
      if (/^(https?:|mailto:|data:|javascript:)/.test(target!) || target === '') continue;
      const path = target!.startsWith('/') ? join(dist, target!) : resolve(dirname(file), target!);
      const candidates = [path, `${path}.html`, join(path, 'index.html')];
      if (!candidates.some((candidate) => existsSync(candidate) && statSync(candidate).isFile())) {
        broken.push(`${relative(dist, file)} → ${target}`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test('in Chromium, the session module shows prose and highlighted code side by side', async () => {
  const { createSiteServer } = (await import(join(root, 'site/serve.js'))) as { createSiteServer: () => import('node:http').Server };
  const server = createSiteServer().listen(0, '127.0.0.1');
  await new Promise((done) => server.once('listening', done));
  const port = (server.address() as AddressInfo).port;
  const executablePath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
  assert.ok(executablePath, 'Debian chromium is installed (apt-get install chromium)');
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    await page.goto(`http://127.0.0.1:${port}/source/session.html`);
    const layout = await page.evaluate(() => {
      const sections = [...document.querySelectorAll('ul.sections > li')];
      const row = sections.find((li) => li.querySelector('div.annotation p') && li.querySelector('div.content pre'))!;
      const prose = row.querySelector('div.annotation')!.getBoundingClientRect();
      const code = row.querySelector('div.content')!.getBoundingClientRect();
      return {
        proseRight: prose.right,
        codeLeft: code.left,
        sameRow: Math.abs(prose.top - code.top) < 40,
        highlighted: document.querySelectorAll('div.content .hljs-keyword').length,
        headings: [...document.querySelectorAll('div.annotation h2')].map((h) => h.textContent),
      };
    });
    assert.ok(layout.codeLeft >= layout.proseRight - 1, `code column starts right of prose (${layout.codeLeft} vs ${layout.proseRight})`);
    assert.ok(layout.sameRow, 'prose and code start on the same row');
    assert.ok(layout.highlighted > 20, `highlighted keywords: ${layout.highlighted}`);
    assert.ok(layout.headings.length >= 5, `section headings: ${layout.headings.join(', ')}`);
    mkdirSync(output, { recursive: true });
    await page.screenshot({ path: join(output, 'annotated-session.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`http://127.0.0.1:${port}/source/session.html`);
    const phone = await page.evaluate(() => {
      const prose = document.querySelector('ul.sections > li div.annotation')!.getBoundingClientRect();
      return { width: prose.width, overflow: document.documentElement.scrollWidth - window.innerWidth };
    });
    assert.ok(phone.width > 300, `prose keeps the phone's width (${phone.width}px)`);
    await page.screenshot({ path: join(output, 'annotated-session-phone.png') });
    await page.goto(`http://127.0.0.1:${port}/protocol.html`);
    assert.match((await page.textContent('h1')) ?? '', /The protocol, request by request/);
    await page.screenshot({ path: join(output, 'guide-protocol.png') });
  } finally {
    await browser.close();
    server.close();
  }
});
