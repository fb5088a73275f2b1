// # Client entry: what the browser bundle and bundlers get
//
// Two ways in. Bundlers import the ES module:
//
// ```js
// import { BCSocket } from 'browserchannel-server/client';
// ```
//
// and a plain page loads the bundle the server hosts, which defines a
// global `BCSocket`, as node-browserchannel's did:
//
// ```html
// <script src="/channel/bcsocket.js"></script>
// <script>const socket = new BCSocket('/channel');</script>
// ```
/**
 * The browser client's public entry.
 * @module browserchannel-server/client
 */
import { BCSocket } from './bcsocket.ts';

export { BCSocket } from './bcsocket.ts';
export type { BCSocketOptions, BCMessageEvent, Listener } from './bcsocket.ts';
export type { ClientMap } from './wire.ts';

// ## The global
//
// In a page the bundle runs as a plain script, so it also sets
// `window.BCSocket`; an existing global of that name is left alone.
const scope = globalThis as { BCSocket?: typeof BCSocket };
scope.BCSocket ??= BCSocket;
