/// <reference lib="dom" />
// The chat demo's page as a person sees it, in Debian's Chromium: it says
// which name you are, each tab keeps its own nickname, and the layout fits
// a 390 px phone as well as a 1400 px desktop (screenshots of both go to
// test-output/).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { output, startChatInChromium } from './chat-fixture.ts';

type ChatFixture = Awaited<ReturnType<typeof startChatInChromium>>;

let chat: ChatFixture['chat'];
let browser: ChatFixture['browser'];
let base: string;
let stop: () => Promise<void>;

before(async () => void ({ chat, browser, base, stop } = await startChatInChromium()));
after(() => stop?.());

const online = (page: Page): Promise<unknown> => page.waitForFunction("document.body.dataset.status === 'online'", undefined, { timeout: 15_000 });

test('the page shows your own name, and two tabs keep two nicknames', async () => {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const first = await context.newPage();
  await first.goto(`${base}/`);
  await online(first);
  const guest = await first.textContent('#my-name');
  assert.match(guest!, /^guest-/);
  // The welcome (which sets the name) may come just after the open: wait
  // for it, or it would undo the rename below.
  await first.waitForFunction((name) => (document.body.dataset.people || '').split(',').includes(name), guest!);
  await first.fill('#nick', 'ada');
  // A new nickname reloads the page with ?nick=ada: wait for that load, or
  // the old page (still the guest) may answer the read below.
  await Promise.all([first.waitForURL(/[?&]nick=ada(&|$)/), first.dispatchEvent('#nick', 'change')]);
  await online(first);
  assert.equal(await first.textContent('#my-name'), 'ada');
  await first.waitForFunction("(document.body.dataset.people || '').split(',').includes('ada')");

  // A second tab of the same browser: not "ada" too.
  const second = await context.newPage();
  await second.goto(`${base}/`);
  await online(second);
  const other = await second.textContent('#my-name');
  assert.notEqual(other, 'ada');
  assert.match(other!, /^guest-/);
  await second.waitForFunction((name) => (document.body.dataset.people || '').split(',').includes(name!), other);
  // And a reload keeps a tab's own name.
  await first.reload();
  await online(first);
  assert.equal(await first.textContent('#my-name'), 'ada');
  await context.close();
});

for (const width of [390, 1400]) {
  test(`at ${width} px nothing overflows sideways and the header fits`, async () => {
    const page = await browser.newPage({ viewport: { width, height: 700 } });
    await page.goto(`${base}/?nick=grace`);
    await online(page);
    // A string, not a function: tsx's helper names would not exist in the page.
    const layout = (await page.evaluate(`(() => {
      const header = document.querySelector('header');
      const ends = ['#status', '#me', 'header nav', '#send'].map((s) => document.querySelector(s).getBoundingClientRect().right);
      return { page: document.documentElement.scrollWidth, header: header.scrollWidth - header.clientWidth, rightmost: Math.max(...ends) };
    })()`)) as { page: number; header: number; rightmost: number };
    assert.ok(layout.page <= width, `page ${layout.page} px wide`);
    assert.equal(layout.header, 0, 'the header does not scroll');
    assert.ok(layout.rightmost <= width, `something ends at ${layout.rightmost} px`);
    assert.equal(await page.textContent('#my-name'), 'grace');
    await page.screenshot({ path: `${output}chat-${width}.png` });
    await page.close();
  });
}
