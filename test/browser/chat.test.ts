/// <reference lib="dom" />
// The chat demo in Debian's Chromium, driven by playwright-core: two pages
// chat, see each other, survive the server closing a session, and a third
// page does the same through Google's WebChannel client.
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

async function join(query: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  page.on('pageerror', (error) => console.error('page error:', error));
  await page.goto(`${base}/?${query}`);
  await waitFor(page, "document.body.dataset.status === 'online'");
  return page;
}

// Waits for a condition in the page; on timeout, says what the page showed.
async function waitFor(page: Page, condition: string, timeout = 15_000): Promise<void> {
  try {
    await page.waitForFunction(condition, undefined, { timeout });
  } catch {
    const state = await page.evaluate(() => JSON.stringify(document.body.dataset));
    throw new Error(`timed out waiting for ${condition}; page state ${state}`);
  }
}

const texts = (page: Page): Promise<string[]> =>
  page.$$eval('#messages li:not(.system)', (items) => items.map((li) => li.textContent ?? ''));

test('two pages chat in order, see each other, and survive a closed session', async () => {
  const ada = await join('nick=ada');
  const bob = await join('nick=bob');
  await waitFor(ada, "document.body.dataset.people === 'ada,bob'");
  assert.equal(await bob.textContent('#people'), 'adabob');

  // 100 messages, alternating senders, arrive in the same order on both pages.
  for (let i = 0; i < 100; i++) {
    await (i % 2 ? bob : ada).evaluate((n) => (window as unknown as { chat: { say(t: string): void } }).chat.say(`message ${n}`), i);
  }
  for (const page of [ada, bob]) await waitFor(page, "document.body.dataset.count === '100'");
  // Both pages show the one order the server saw; each sender's own
  // messages keep the order they were sent in.
  const seen = await texts(ada);
  assert.deepEqual(await texts(bob), seen);
  for (const [nick, parity] of [['ada', 0], ['bob', 1]] as const) {
    const expected = Array.from({ length: 50 }, (_, k) => `${nick}: message ${2 * k + parity}`);
    assert.deepEqual(seen.filter((text) => text.startsWith(`${nick}:`)), expected);
  }

  // Markup and emoji are text, not HTML.
  const tricky = '</script><b>bold?</b> 😀 & done';
  await ada.fill('#text', tricky);
  await ada.click('#send');
  await waitFor(bob, "document.body.dataset.count === '101'");
  assert.equal((await texts(bob)).at(-1), `ada: ${tricky}`);
  assert.equal(await bob.$$eval('#messages b', (bs) => bs.filter((b) => b.textContent === 'bold?').length), 0);

  // The server closes ada's session; her page reconnects, and a message she
  // sent while it was down arrives once.
  const sessionOf = (nick: string) => [...chat.channel.sessions].find((session) => session.data.user.nick === nick)!;
  const adaSession = sessionOf('ada');
  adaSession.close('kicked by test');
  await ada.evaluate(() => (window as unknown as { chat: { say(t: string): void } }).chat.say('sent during the outage'));
  await waitFor(ada, "document.body.dataset.status === 'online' && document.body.dataset.people === 'ada,bob'");
  await waitFor(bob, "document.body.dataset.count === '102'");
  assert.equal((await texts(bob)).filter((t) => t === 'ada: sent during the outage').length, 1);
  assert.notEqual(sessionOf('ada'), adaSession, 'a new session');
  assert.equal(await bob.evaluate(() => document.body.dataset.online), '2', 'presence counts from sessionIds()');
  assert.match(await ada.textContent('#me') ?? '', /you are ada/);

  await ada.screenshot({ path: `${output}chat-ada.png` });
  await bob.screenshot({ path: `${output}chat-bob.png` });
  await ada.close();
  await waitFor(bob, "document.body.dataset.people === 'bob'");
  await bob.close();
});

test('the WebChannel mode chats with a BCSocket page', async () => {
  const cara = await join('nick=cara&client=webchannel');
  const dan = await join('nick=dan');
  await waitFor(cara, "/(^|,)cara(,|$)/.test(document.body.dataset.people) && /(^|,)dan(,|$)/.test(document.body.dataset.people)");
  await cara.evaluate(() => (window as unknown as { chat: { say(t: string): void } }).chat.say('hello from WebChannel 👋'));
  await dan.evaluate(() => (window as unknown as { chat: { say(t: string): void } }).chat.say('hello from BCSocket'));
  for (const page of [cara, dan]) await waitFor(page, 'Number(document.body.dataset.count) >= 2');
  assert.deepEqual(await texts(dan), await texts(cara));
  assert.ok((await texts(dan)).includes('cara: hello from WebChannel 👋'));
  assert.equal(await cara.textContent('#client-name'), '(Google WebChannel client)');
  await cara.screenshot({ path: `${output}chat-webchannel.png` });
  await cara.close();
  await dan.close();
});

test('a nickname that breaks the rule is refused before a session exists, and the page says why', async () => {
  const created: string[] = [];
  const refused: number[] = [];
  const onSession = (session: { query: Record<string, string> }): void => void created.push(session.query.nick ?? '');
  const onRefused = (refusal: { status: number }): void => void refused.push(refusal.status);
  chat.channel.on('session', onSession);
  chat.channel.on('refused', onRefused);
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  await page.goto(`${base}/?nick=${encodeURIComponent('<script>')}`);
  await waitFor(page, "document.body.dataset.status === 'refused'");
  assert.match(await page.textContent('#messages') ?? '', /Not admitted: Request refused with status 403 \(Nickname: 1 to 24/);
  chat.channel.off('session', onSession);
  chat.channel.off('refused', onRefused);
  assert.deepEqual(created, [], 'no session was created');
  assert.deepEqual(refused, [403], 'one refusal, no retry');
  await page.close();
});
