// One benchmark peer in its own process: `node bench/server.mjs <peer> [room]`.
// Every peer runs the same tiny app: echo each message, and on
// {push: n, size} send n messages of about `size` bytes. GET /__stats
// reports memory after a full GC (run node with --expose-gc), GET /__cpu
// the process's CPU time so far.
//
// With `room`, every session joins the room "room" when it opens, and
// GET /__broadcast?seq=N sends one message of about 50 bytes to all of
// them, each peer through its own public API: ours `channel.to(room)
// .send()`, socket.io `io.to(room).emit()`, and for 2.1.0 and engine.io,
// which have no rooms, a loop over the sessions calling `send`.
import http from 'node:http';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const peer = process.argv[2];
const inRoom = process.argv[3] === 'room';
// BENCH_DIST=/path/to/dist/esm/ runs another build of ours (say, the one
// before a change), for before/after comparisons.
const dist = process.env.BENCH_DIST ? pathToFileURL(`${resolve(process.env.BENCH_DIST)}/`).href : new URL('../dist/esm/', import.meta.url).href;
const roomMembers = new Set();
let broadcast = null;
const payload = (size) => 'x'.repeat(Math.max(0, size - 12));
let sessions = 0;
let received = 0;

function app(send, message) {
  received++;
  if (message && typeof message === 'object' && message.push) {
    const text = payload(message.size);
    for (let i = 0; i < message.push; i++) send({ i, text });
  } else if (message && typeof message === 'object' && message.bulk) {
    // forward-throughput messages: counted, not answered
  } else {
    send(message);
  }
}

function stats(req, res) {
  if (req.url.startsWith('/__broadcast?')) {
    const seq = Number(new URL(req.url, 'http://x').searchParams.get('seq'));
    broadcast({ b: seq, text: payload(50) });
    res.end('ok');
    return true;
  }
  if (req.url === '/__cpu') {
    const cpu = process.cpuUsage();
    res.end(String(cpu.user + cpu.system));
    return true;
  }
  if (req.url === '/__cpu-split') {
    res.end(JSON.stringify(process.cpuUsage()));
    return true;
  }
  if (req.url !== '/__stats') return false;
  globalThis.gc?.();
  globalThis.gc?.();
  const memory = process.memoryUsage();
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ heapUsed: memory.heapUsed, rss: memory.rss, sessions, received }));
  return true;
}

const servers = {
  // This project, from the built package (npm run build).
  async ours() {
    const { default: browserChannel } = await import(new URL('index.js', dist).href);
    const channel = browserChannel({}, (session) => {
      sessions++;
      if (inRoom) void session.join('room');
      session.on('message', (message) => app((m) => session.send(m), message));
      session.on('close', () => sessions--);
    });
    broadcast = (message) => channel.to('room').send(message);
    return http.createServer((req, res) => stats(req, res) || channel(req, res));
  },
  // Ours with the always-on counters of `channel.stats()` switched off:
  // every method of the Observer (src/observe.ts) becomes a no-op. What is
  // left are a few `+=` on its fields, inline in the session. Compared
  // with `ours`, this prices the counters.
  async 'ours-nostats'() {
    const { Observer } = await import(new URL('observe.js', dist).href);
    for (const name of Object.getOwnPropertyNames(Observer.prototype)) {
      if (name !== 'constructor' && name !== 'snapshot') Observer.prototype[name] = () => {};
    }
    return servers.ours();
  },
  // node-browserchannel 2.1.0's server.
  async bc210() {
    const browserChannel = require('browserchannel').server;
    const channel = browserChannel({}, (session) => {
      sessions++;
      if (inRoom) roomMembers.add(session);
      session.on('message', (message) => app((m) => session.send(m), message));
      session.on('close', () => (sessions--, roomMembers.delete(session)));
    });
    broadcast = (message) => {
      for (const session of roomMembers) session.send(message);
    };
    return http.createServer((req, res) => stats(req, res) || channel(req, res, () => res.end()));
  },
  // engine.io, long-polling only (the same kind of work as BrowserChannel).
  async engineio() {
    const { Server } = require('engine.io');
    const engine = new Server({ transports: ['polling'], pingInterval: 25_000, pingTimeout: 60_000, maxHttpBufferSize: 1e7 });
    engine.on('connection', (socket) => {
      sessions++;
      if (inRoom) roomMembers.add(socket);
      socket.on('message', (data) => app((m) => socket.send(JSON.stringify(m)), JSON.parse(data)));
      socket.on('close', () => (sessions--, roomMembers.delete(socket)));
    });
    // engine.io sends strings: the app serialises once and loops.
    broadcast = (message) => {
      const json = JSON.stringify(message);
      for (const socket of roomMembers) socket.send(json);
    };
    const server = http.createServer((req, res) => stats(req, res) || engine.handleRequest(req, res));
    return server;
  },
  // socket.io over long polling, with its own rooms.
  async socketio() {
    const { Server } = require('socket.io');
    const server = http.createServer((req, res) => {
      if (stats(req, res)) return;
      res.writeHead(404);
      res.end();
    });
    const io = new Server(server, { transports: ['polling'], pingInterval: 25_000, pingTimeout: 60_000, maxHttpBufferSize: 1e7, serveClient: false });
    io.on('connection', (socket) => {
      sessions++;
      if (inRoom) socket.join('room');
      socket.on('m', (message) => app((m) => socket.emit('m', m), message));
      socket.on('disconnect', () => sessions--);
    });
    broadcast = (message) => io.to('room').emit('m', message);
    return server;
  },
  // sockjs, xhr-streaming.
  async sockjs() {
    const sockjs = require('sockjs');
    const service = sockjs.createServer({ prefix: '/echo', log: () => {}, disconnect_delay: 30_000 });
    service.on('connection', (connection) => {
      sessions++;
      connection.on('data', (data) => app((m) => connection.write(JSON.stringify(m)), JSON.parse(data)));
      connection.on('close', () => sessions--);
    });
    const server = http.createServer((req, res) => {
      if (stats(req, res)) return;
      res.writeHead(404);
      res.end();
    });
    service.installHandlers(server);
    return server;
  },
  // The HTTP floor of a handshake: read the small POST body, answer with
  // our headers and a body of the same size, create no session. What ours
  // spends beyond this is the protocol's own work.
  async floor() {
    const headers = {
      'Cache-Control': 'no-cache, no-store, max-age=0, must-revalidate',
      Pragma: 'no-cache',
      Expires: 'Fri, 01 Jan 1990 00:00:00 GMT',
      'X-Content-Type-Options': 'nosniff',
      'Content-Type': 'text/plain; charset=utf-8',
    };
    return http.createServer((req, res) => {
      if (stats(req, res)) return;
      req.on('data', () => {});
      req.on('end', () => {
        res.writeHead(200, headers);
        res.end('44\n[[0,["c","AAAAAAAAAAAAAAAAAAAAAA",null,8]]]\n');
      });
    });
  },
  // The least a BrowserChannel server can do on node:http, as a yardstick
  // for push, forward and broadcast: a session is an id, a back channel and
  // a counter. It parses a forward body just enough to find the `reqN_JSON`
  // maps, serialises each message once, and writes one chunk per session
  // per turn. It keeps nothing for resending, ignores `AID`, has no timers,
  // callbacks, limits or counters, and checks nothing: not a server, a
  // floor. What ours spends beyond it buys those.
  async minimal() {
    const headers = {
      'Cache-Control': 'no-cache, no-store, max-age=0, must-revalidate',
      'Content-Type': 'text/plain; charset=utf-8',
    };
    const live = new Map();
    let nextId = 0;
    const pending = new Set();
    const flush = () => {
      for (const session of pending) {
        if (session.res === null) continue;
        const json = `[${session.queue.join(',')}]`;
        session.queue.length = 0;
        session.res.write(`${json.length}\n${json}`);
      }
      pending.clear();
    };
    const queue = (session, json) => {
      session.queue.push(`[${++session.lastId},${json}]`);
      if (pending.size === 0) process.nextTick(flush);
      pending.add(session);
    };
    const send = (session) => (message) => queue(session, JSON.stringify(message));
    broadcast = (message) => {
      const json = JSON.stringify(message);
      for (const session of live.values()) queue(session, json);
    };
    return http.createServer((req, res) => {
      if (stats(req, res)) return;
      const sid = /[?&]SID=([^&]*)/.exec(req.url)?.[1] ?? null;
      const session = sid === null ? null : live.get(sid);
      if (req.method === 'GET' && req.url.includes('TYPE=terminate')) {
        live.delete(sid);
        session?.res?.end();
        return res.end();
      }
      if (req.method === 'GET') {
        res.writeHead(200, headers);
        res.flushHeaders();
        session.res = res;
        res.on('close', () => session.res === res && (session.res = null));
        if (session.queue.length > 0) pending.add(session), process.nextTick(flush);
        return;
      }
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (text) => (body += text));
      req.on('end', () => {
        res.writeHead(200, headers);
        if (session === null) {
          const id = `s${nextId++}`;
          const created = { res: null, queue: [], lastId: 0 };
          live.set(id, created);
          sessions++;
          const json = `[[0,["c","${id}",null,8]]]`;
          return res.end(`${json.length}\n${json}`);
        }
        for (const part of body.split('&')) {
          const eq = part.indexOf('=');
          if (part.endsWith('_JSON', eq)) {
            app(send(session), JSON.parse(decodeURIComponent(part.slice(eq + 1))));
          }
        }
        res.end('7\n[1,0,0]');
      });
    });
  },
  // The ceiling: node:http answering a fixed 200.
  async bare() {
    return http.createServer((req, res) => {
      if (stats(req, res)) return;
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
    });
  },
};

const server = await servers[peer]();
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => console.log(`PORT ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
