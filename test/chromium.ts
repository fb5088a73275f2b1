// Debian's Chromium, driven by playwright-core, with the flags this
// sandboxed, offline machine needs: no sandbox (we run as root), no GPU,
// no QUIC, and none of the background traffic to Google's hosts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Launches Debian's Chromium headless; fails with the install command if it is missing. */
export async function launchChromium(): Promise<Browser> {
  const executablePath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
  assert.ok(executablePath, 'Debian chromium is installed (apt-get install chromium)');
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
