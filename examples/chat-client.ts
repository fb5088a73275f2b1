// # A terminal chat client
//
// Uses the Closure `BCSocket` client that node-browserchannel ships for
// Node, to show that a Google client talks to this server unchanged. Lines
// typed on stdin are sent; messages from the room are printed.
import { createRequire } from 'node:module';
import readline from 'node:readline';

interface BCSocketLike {
  onopen: () => void;
  onmessage: (message: { data: { from: string; text: string } }) => void;
  onclose: (reason: string) => void;
  send(message: unknown): void;
  close(): void;
}
const require = createRequire(import.meta.url);
const { BCSocket } = require('browserchannel') as { BCSocket: new (url: string, options: object) => BCSocketLike };

const port = process.env.PORT ?? '4321';
const nick = process.argv[2] ?? 'guest';
const socket = new BCSocket(`http://127.0.0.1:${port}/channel`, { reconnect: true, extraParams: { nick } });
socket.onopen = () => console.log(`connected as ${nick}; type a line to send, Ctrl-D to quit`);
socket.onmessage = ({ data }) => console.log(`<${data.from}> ${data.text}`);
socket.onclose = (reason) => console.log(`disconnected: ${reason}`);

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (text) => socket.send({ text }));
lines.on('close', () => {
  socket.close();
  setTimeout(() => process.exit(0), 200);
});
