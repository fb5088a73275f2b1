// The cluster chat demo (examples/cluster/server.ts, what `npm run
// start:cluster` runs) in Debian's Chromium: four pages behind nginx, spread
// over three processes, see one another in the presence list with the
// process each is on, and a message from one page reaches all of them.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../chromium.ts';
// @ts-expect-error: a plain .mjs script without types
import { nginxConfig } from '../../deploy/nginx-config.mjs';
import { until } from '../helpers.ts';
import { type TestNginx, type TestNode, type TestRedis, freePort, missingBinaries, startNginx, startNode, startRedis } from './harness.ts';

const executablePath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
const missing = [...missingBinaries(), ...(executablePath ? [] : ['chromium'])];
const skip = missing.length > 0 ? `needs ${missing.join(', ')} (apt-get install ${missing.join(' ')})` : false;
const server = fileURLToPath(new URL('../../examples/cluster/server.ts', import.meta.url));

describe('cluster chat demo in Chromium', { skip }, () => {
  let redis: TestRedis;
  let nodes: TestNode[];
  let nginx: TestNginx;
  let browser: Browser;
  before(async () => {
    redis = await startRedis();
    nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id, redis.url, server)));
    const port = await freePort();
    nginx = await startNginx(nginxConfig({ listen: port, nodes: nodes.map((n) => ({ id: n.id, address: n.address })) }), port);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await nginx?.stop();
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('users on different processes see each other, with their process, and chat', { timeout: 60_000 }, async () => {
    const pages: Page[] = [];
    for (const [nick, extra] of [['ada', ''], ['bob', ''], ['cy', '&client=webchannel'], ['dee', '']]) {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${nginx.port}/?nick=${nick}${extra}`);
      pages.push(page);
    }
    const people = () => Promise.all(pages.map((page) => page.evaluate(() => document.body.dataset.people ?? '')));
    let lists: string[] = [];
    await until(() => {
      void people().then((seen) => (lists = seen));
      return lists.length === 4 && lists.every((list) => list.split(',').length === 4);
    }, 20_000, 'everyone in every presence list').catch((error: Error) => {
      throw new Error(`${error.message}; lists: ${JSON.stringify(lists)}`);
    });
    const names = lists[0]!.split(',');
    assert.deepEqual(names.map((name) => name.split(' ')[0]), ['ada', 'bob', 'cy', 'dee']);
    for (const name of names) assert.match(name, /^\w+ \(n[123]\)$/, 'each user shows its process');
    assert.ok(new Set(names.map((name) => name.slice(-3))).size >= 2, `users on several processes: ${names}`);

    await pages[0]!.fill('input:not(#nick)', 'hello from ada');
    await pages[0]!.keyboard.press('Enter');
    for (const page of pages) {
      await page.waitForFunction(() => document.body.innerText.includes('hello from ada'), null, { timeout: 10_000 });
    }
  });

  // The demo runs with `recovery`: killing ada's process loses her nothing.
  test('kill -9 the process of a user: she comes back elsewhere as herself and misses nothing', { timeout: 90_000 }, async () => {
    const pages = browser.contexts().flatMap((context) => context.pages());
    const listOf = (page: Page) => page.evaluate(() => document.body.dataset.people ?? '');
    const ada = pages[0]!;
    const nodeOf = (list: string, nick: string) =>
      list.split(',').find((name) => name.startsWith(`${nick} `))!.slice(-3, -1);
    const before = await listOf(ada);
    const adaNode = nodeOf(before, 'ada');
    const victim = nodes.find((node) => node.id === adaNode)!;
    // A sender on another process (BCSocket pages only: bob or dee).
    const senderPage = nodeOf(before, 'bob') !== adaNode ? pages[1]
      : nodeOf(before, 'dee') !== adaNode ? pages[3] : undefined;
    assert.ok(senderPage, `a sender on another process than ada's: ${before}`);
    await victim.kill9();
    await senderPage.fill('input:not(#nick)', 'said while ada was away');
    await senderPage.keyboard.press('Enter');
    await ada.waitForFunction(() => document.body.innerText.includes('said while ada was away'), null, { timeout: 60_000 });
    const text = await ada.evaluate(() => document.body.innerText);
    assert.equal(text.split('said while ada was away').length - 1, 1, 'once');
    let list = '';
    await until(() => {
      void listOf(ada).then((seen) => (list = seen));
      return /ada \(n\d\)/.test(list) && !list.includes(`ada (${adaNode})`);
    }, 20_000, 'ada shown on her new process');
    const count = list.split(',').filter((name) => name.startsWith('ada ')).length;
    assert.equal(count, 1, `ada once in her own list: ${list}`);
    await ada.screenshot({ path: join(tmpdir(), 'demo-recovered.png') });
  });
});
