// Real Google clients for cluster tests: Closure BCSocket (browserchannel@2.1.0)
// and WebChannel, each recording what it receives and how often it opened.
import { createRequire } from 'node:module';
import { openWebChannel, type WebChannel } from '../webchannel-client.ts';

interface BCSocketLike {
  readyState: number;
  onopen: (() => void) | null;
  onmessage: ((message: { data: unknown }) => void) | null;
  onclose: ((reason: string) => void) | null;
  onerror: ((message: string) => void) | null;
  send(message: unknown): void;
  close(): void;
}
// BCSocket in Node runs on browserchannel's XMLHttpRequest shim, which
// reports a network error (a stream cut off when a process dies) as status
// 503. A browser reports it as status 0, and Closure treats the two very
// differently: 0 is retried on the same session, any other status fails
// the channel. So the shim is made to say 0, as a browser does, before
// BCSocket loads it.
const require = createRequire(import.meta.url);
const shim = require('browserchannel/XMLHttpRequest.js') as { XMLHttpRequest: new () => object };
const NodeXhr = shim.XMLHttpRequest;
shim.XMLHttpRequest = function BrowserLikeXhr(this: Record<string, unknown>) {
  NodeXhr.call(this);
  let status: unknown = null;
  let networkError = false;
  Object.defineProperty(this, 'status', { get: () => (networkError ? 0 : status), set: (value) => (status = value) });
  const handleError = this.handleError as (error: Error) => void;
  this.handleError = function (this: unknown, error: Error) {
    networkError = true;
    handleError.call(this, error);
  };
} as unknown as new () => object;
const { BCSocket } = require('browserchannel') as {
  BCSocket: new (url: string, options?: Record<string, unknown>) => BCSocketLike;
};

/** One client, either kind. */
export interface TestClient {
  readonly name: string;
  readonly kind: 'bcsocket' | 'webchannel';
  /** Everything received, in order. */
  readonly received: Array<Record<string, unknown>>;
  /** How many times a session opened (1 = never reconnected). */
  opens: number;
  /** Errors and closes seen. */
  readonly events: string[];
  readonly opened: Promise<void>;
  send(message: unknown): void;
  close(): void;
  isOpen(): boolean;
}

export function bcsocket(url: string, name: string): TestClient {
  const socket = new BCSocket(url, { reconnect: true, extraParams: { name } });
  let markOpen: () => void = () => {};
  const client: TestClient = {
    name,
    kind: 'bcsocket',
    received: [],
    opens: 0,
    events: [],
    opened: new Promise((resolve) => (markOpen = resolve)),
    send: (message) => socket.send(message),
    close: () => socket.close(),
    isOpen: () => socket.readyState === 1,
  };
  socket.onopen = () => {
    client.opens++;
    markOpen();
  };
  socket.onmessage = (message) => client.received.push(message.data as Record<string, unknown>);
  socket.onerror = (message) => client.events.push(`error:${message}`);
  socket.onclose = (reason) => client.events.push(`close:${reason}`);
  return client;
}

export function webchannel(url: string, name: string): TestClient {
  const opened = openWebChannel(url, {
    useFetchStreams: true, sendRawJson: true, httpSessionIdParam: 'gsessionid', messageUrlParams: { name },
  });
  let open = false;
  const client: TestClient = {
    name,
    kind: 'webchannel',
    received: opened.received as Array<Record<string, unknown>>,
    opens: 0,
    events: opened.events,
    opened: opened.opened.then(() => {
      client.opens++;
      open = true;
    }),
    send: (message) => opened.client.send(message),
    close: () => opened.client.close(),
    isOpen: () => open && !opened.events.length,
  };
  return client;
}

export type { WebChannel };
