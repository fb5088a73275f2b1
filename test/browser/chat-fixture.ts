// The chat demo on a free port with Debian's Chromium beside it: what
// every Chromium test of the demo starts from.
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { createChatServer } from '../../examples/chat/server.ts';
import { launchChromium } from '../chromium.ts';

/** Where screenshots go. */
export const output = fileURLToPath(new URL('../../test-output/', import.meta.url));

/** Starts the demo and a browser; `stop` ends both. */
export async function startChatInChromium(): Promise<{
  chat: ReturnType<typeof createChatServer>;
  browser: Browser;
  base: string;
  stop: () => Promise<void>;
}> {
  const chat = createChatServer();
  await new Promise<void>((resolve) => chat.server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(chat.server.address() as AddressInfo).port}`;
  const browser = await launchChromium();
  mkdirSync(output, { recursive: true });
  const stop = async (): Promise<void> => {
    await browser.close();
    chat.channel.close();
    chat.server.closeAllConnections();
    chat.server.close();
  };
  return { chat, browser, base, stop };
}
