// # A terminal chat client
//
// Joins the chat demo's room (`npm start`) with the Closure `BCSocket`
// client that node-browserchannel ships for Node, to show that a Google
// client talks to this server unchanged. Lines typed on stdin are said in
// the room; what the room says is printed.
import { createRequire } from 'node:module';
import readline from 'node:readline';

interface RoomMessage {
  type: string;
  from?: string;
  text?: string;
  count?: number;
  user?: { pid: string; nick: string; node: string };
}
interface BCSocketLike {
  onopen: () => void;
  onmessage: (message: { data: RoomMessage }) => void;
  onclose: (reason: string) => void;
  send(message: unknown): void;
  close(): void;
}
const require = createRequire(import.meta.url);
const { BCSocket } = require('browserchannel') as { BCSocket: new (url: string, options: object) => BCSocketLike };

const port = process.env.PORT ?? '4321';
const nick = process.argv[2] ?? 'terminal';
const socket = new BCSocket(`http://127.0.0.1:${port}/channel`, { reconnect: true, extraParams: { nick } });
let counter = 0;
socket.onopen = () => console.log(`connected as ${nick}; type a line to send, Ctrl-D to quit`);
socket.onmessage = ({ data }) => {
  if (data.type === 'said') console.log(`<${data.from}> ${data.text}`);
  if (data.type === 'joined') console.log(`* ${data.user?.nick} joined`);
  if (data.type === 'presence') console.log(`* ${data.count} online`);
  // Answer newcomers as the page does, so they list us too.
  if (data.type === 'joined' && data.user) socket.send({ type: 'here', to: data.user.pid });
};
socket.onclose = (reason) => console.log(`disconnected: ${reason}`);

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (text) => socket.send({ type: 'say', id: `${nick}-${process.pid}-${++counter}`, text }));
lines.on('close', () => {
  socket.close();
  setTimeout(() => process.exit(0), 200);
});
