// Google's WebChannel client, made to run in Node for the tests, and a small
// helper that opens a channel and records what it sees.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// Node has no XMLHttpRequest; the one browserchannel@2.1.0 ships is enough
// for the client's XHR mode (useFetchStreams: false).
(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest ??= require('browserchannel/XMLHttpRequest.js').XMLHttpRequest;

// The client arms 45 s watchdogs that outlive a closed channel. A browser tab
// does not care; a Node test process would wait for them, so the client's
// long timers are unref'd. (The server's own timers are unref'd already.)
const nodeSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const timer = nodeSetTimeout(callback, ms, ...args);
  if ((ms ?? 0) >= 5000) timer.unref();
  return timer;
}) as typeof setTimeout;

export interface WebChannel {
  open(): void;
  close(): void;
  send(message: unknown): void;
  listen(type: string, listener: (event: { data?: unknown; status?: number }) => void): void;
}
const wc = require('@firebase/webchannel-wrapper/webchannel-blob') as {
  createWebChannelTransport(): { createWebChannel(url: string, options: Record<string, unknown>): WebChannel };
  WebChannel: { EventType: { OPEN: string; CLOSE: string; ERROR: string; MESSAGE: string } };
};
const { EventType } = wc.WebChannel;

// Opens a channel (after `beforeOpen`, which may queue messages) and
// records messages and ERROR/CLOSE events.
export function openWebChannel(url: string, options: Record<string, unknown>, beforeOpen?: (channel: WebChannel) => void) {
  const client = wc.createWebChannelTransport().createWebChannel(url, options);
  const received: unknown[] = [];
  const events: string[] = [];
  client.listen(EventType.MESSAGE, (event) => received.push(event.data));
  client.listen(EventType.ERROR, () => events.push('error'));
  client.listen(EventType.CLOSE, () => events.push('close'));
  const opened = new Promise<void>((resolve) => client.listen(EventType.OPEN, () => resolve()));
  beforeOpen?.(client);
  client.open();
  return { client, received, events, opened };
}
