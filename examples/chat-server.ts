// # A chat server in forty lines
//
// The README's main command (`npm start`) runs this file. Every session
// joins one room: what a client sends is broadcast to everyone, tagged with
// the sender's nickname (`?nick=` on the connect URL, or a short id).
//
// ```text
// client → {"text":"hi"}          server → every client: {"from":"ada","text":"hi"}
// ```
//
// Try it with two terminals running `npm run chat -- ada` and
// `npm run chat -- bob` (the Closure BCSocket client from
// node-browserchannel, in Node).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import browserChannel, { type Session } from '../src/index.ts';

const room = new Set<Session>();

function broadcast(message: unknown): void {
  for (const member of room) member.send(message);
}

const channel = browserChannel({ base: '/channel' }, (session) => {
  const nick = (session.query.nick ?? session.id.slice(0, 6)).slice(0, 32);
  room.add(session);
  broadcast({ from: 'server', text: `${nick} joined (${room.size} online)` });
  session.on('message', (message) => {
    const text = typeof message === 'object' && message !== null && 'text' in message ? String(message.text) : String(message);
    broadcast({ from: nick, text: text.slice(0, 2000) });
  });
  session.on('close', (reason) => {
    room.delete(session);
    broadcast({ from: 'server', text: `${nick} left (${reason ?? 'closed'})` });
  });
});

const server = http.createServer((req, res) =>
  channel(req, res, () => {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('BrowserChannel chat server. Connect a client to /channel (see README).\n');
  }),
);

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`chat server listening on http://127.0.0.1:${port}/ (channel at /channel)`);
  console.log(`join from another terminal: PORT=${port} npm run chat -- yourname`);
});

// Ctrl-C closes every session, then the server; nothing else keeps us alive.
process.on('SIGINT', () => {
  channel.close();
  server.close();
  server.closeAllConnections();
});
