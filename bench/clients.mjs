// Load-generating clients, one per protocol, shared by bench/run.mjs (time
// windows) and bench/callgrind.mjs (fixed numbers of operations). Each is a
// small hand-written client of the wire protocol rather than the
// project's browser client: light enough that the server, not the client,
// is what gets measured.
//
// Every client can `handshake()` (create a session and leave it) and
// `connect(onMessage, { ack })` → `{ send(messages), close() }`, keeping one
// forward request in flight, as the real clients do.
import http from 'node:http';

// 1,000 sessions with a hanging back channel each (the broadcast scenario)
// need more sockets than a default agent lends.
export const agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });

// ## HTTP helpers
//
// A keep-alive socket that the server closes just as a request goes out on
// it fails with ECONNRESET before any answer; such a request never reached
// the server, and is sent once more on a fresh socket.
export async function call(port, method, path, body, headers = {}) {
  try {
    return await callOnce(port, method, path, body, headers);
  } catch (error) {
    if (error.code !== 'ECONNRESET' || !error.reusedSocket) throw error;
    return callOnce(port, method, path, body, headers);
  }
}

function callOnce(port, method, path, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
      res.on('error', reject);
    });
    req.on('error', (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })));
    req.end(body);
  });
}

// A streaming request; onText gets each piece; resolves when it ends.
export function stream(port, method, path, body, onText, headers = {}) {
  let request;
  const done = new Promise((resolve) => {
    request = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      res.setEncoding('utf8');
      res.on('data', onText);
      res.on('end', resolve);
      res.on('close', resolve);
    });
    request.on('error', resolve);
    request.end(body);
  });
  return { done, abort: () => request.destroy() };
}

/** The peer's CPU time so far (user + system, µs), from its /__cpu endpoint. */
export const serverCpu = async (port) => Number((await call(port, 'GET', '/__cpu')).body);

const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

// One forward request in flight at a time, as the real clients do:
// messages queued meanwhile go in the next request, up to 1000 a request.
// `post(batch)` sends one batch (BrowserChannel also posts empty batches,
// to acknowledge).
function serialSender(post) {
  const queue = [];
  let busy = false;
  return {
    get busy() {
      return busy;
    },
    async send(messages) {
      queue.push(...messages);
      if (busy) return;
      busy = true;
      do await post(queue.splice(0, 1000));
      while (queue.length > 0);
      busy = false;
    },
  };
}

// ## BrowserChannel (ours and 2.1.0)
//
// `ack: false` turns off the acknowledging POST every 100 ms. Closure's
// client has no such timer (an `AID` rides on the next forward request or
// back channel), and a broadcast to a thousand listeners would otherwise
// be measured together with ten thousand acknowledgements a second.
function browserChannelClient(port) {
  const create = async () => {
    const rid = Math.floor(Math.random() * 1e5);
    const res = await call(port, 'POST', `/channel/bind?VER=8&RID=${rid}&CVER=1`, 'count=0', FORM);
    return { sid: /"c","([^"]+)"/.exec(res.body)[1], rid };
  };
  return {
    port,
    handshake: async () => void (await create()),
    async connect(onMessage, { ack = true } = {}) {
      let { sid, rid } = await create();
      let aid = 0;
      let nextMap = 0;
      let open = true;
      let back;
      const backLoop = async () => {
        while (open) {
          let pending = '';
          back = stream(port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${aid}&CI=0&TYPE=xmlhttp`, undefined, (text) => {
            pending += text;
            for (;;) {
              const nl = pending.indexOf('\n');
              if (nl === -1) return;
              const length = Number(pending.slice(0, nl));
              if (pending.length < nl + 1 + length) return;
              const arrays = JSON.parse(pending.slice(nl + 1, nl + 1 + length));
              pending = pending.slice(nl + 1 + length);
              for (const [id, data] of arrays) {
                if (id <= aid) continue;
                aid = id;
                if (!Array.isArray(data)) onMessage(data);
              }
            }
          });
          await back.done;
        }
      };
      void backLoop();
      let acked = 0;
      const sender = serialSender(async (batch) => {
        if (!open) return;
        const body = [`count=${batch.length}`, batch.length ? `ofs=${nextMap}` : '', ...batch.map((m, i) => `req${i}_JSON=${encodeURIComponent(JSON.stringify(m))}`)].filter(Boolean).join('&');
        nextMap += batch.length;
        acked = aid;
        await call(port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${++rid}&AID=${aid}`, body, FORM);
      });
      // Acknowledge what arrived even when not sending.
      const ackTimer = ack ? setInterval(() => {
        if (aid > acked && !sender.busy) void sender.send([]);
      }, 100) : null;
      return {
        send: (messages) => sender.send(messages),
        async close() {
          open = false;
          clearInterval(ackTimer);
          back?.abort();
          await call(port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=${++rid}&TYPE=terminate`).catch(() => {});
        },
      };
    },
  };
}

// ## engine.io and socket.io, long polling
//
// socket.io is engine.io underneath plus a namespace: after the engine.io
// handshake the client sends `40` (connect to `/`), the server answers
// `40{"sid":…}`, and events travel as `42["m",<data>]`.
function pollingClient(port, path, socketIo) {
  const open0 = async () => JSON.parse((await call(port, 'GET', `${path}?EIO=4&transport=polling`)).body.slice(1)).sid;
  return {
    port,
    handshake: async () => void (await open0()),
    async connect(onMessage) {
      const sid = await open0();
      let open = true;
      const base = `${path}?EIO=4&transport=polling&sid=${sid}`;
      const post = (body) => call(port, 'POST', base, body, { 'Content-Type': 'text/plain;charset=UTF-8' });
      let connected;
      const ready = socketIo ? new Promise((resolve) => (connected = resolve)) : null;
      if (socketIo) await post('40');
      const poll = async () => {
        while (open) {
          const res = await call(port, 'GET', base).catch(() => ({ status: 0, body: '' }));
          if (res.status !== 200) return;
          for (const packet of res.body.split('\x1e')) {
            if (socketIo && packet.startsWith('40')) connected();
            else if (socketIo && packet.startsWith('42')) onMessage(JSON.parse(packet.slice(2))[1]);
            else if (!socketIo && packet[0] === '4') onMessage(JSON.parse(packet.slice(1)));
            else if (packet === '2') void post('3');
          }
        }
      };
      void poll();
      await ready;
      const frame = socketIo ? (m) => `42${JSON.stringify(['m', m])}` : (m) => `4${JSON.stringify(m)}`;
      const sender = serialSender(async (batch) => {
        if (open && batch.length) await post(batch.map(frame).join('\x1e'));
      });
      return { send: (messages) => sender.send(messages), close: async () => ((open = false), await post('1').catch(() => {})) };
    },
  };
}

// ## sockjs, xhr-streaming
function sockjsClient(port) {
  const ids = () => `${100 + Math.floor(Math.random() * 900)}/${Math.random().toString(36).slice(2, 10)}`;
  return {
    port,
    handshake: async () => void (await call(port, 'POST', `/echo/${ids()}/xhr`)),
    async connect(onMessage) {
      const id = ids();
      let open = true;
      let back;
      let opened;
      const ready = new Promise((resolve) => (opened = resolve));
      const backLoop = async () => {
        while (open) {
          let pending = '';
          back = stream(port, 'POST', `/echo/${id}/xhr_streaming`, undefined, (text) => {
            pending += text;
            let nl;
            while ((nl = pending.indexOf('\n')) !== -1) {
              const frame = pending.slice(0, nl);
              pending = pending.slice(nl + 1);
              if (frame === 'o') opened();
              else if (frame[0] === 'a') for (const m of JSON.parse(frame.slice(1))) onMessage(JSON.parse(m));
            }
          });
          await back.done;
        }
      };
      void backLoop();
      await ready;
      const sender = serialSender(async (batch) => {
        if (open && batch.length) await call(port, 'POST', `/echo/${id}/xhr_send`, JSON.stringify(batch.map((m) => JSON.stringify(m))), { 'Content-Type': 'text/plain' });
      });
      return { send: (messages) => sender.send(messages), close: async () => ((open = false), back?.abort()) };
    },
  };
}

const bareClient = (port) => ({ port });

/** A client factory for each peer of bench/server.mjs. */
export const CLIENTS = {
  ours: browserChannelClient,
  'ours-nostats': browserChannelClient,
  bc210: browserChannelClient,
  engineio: (port) => pollingClient(port, '/engine.io/', false),
  socketio: (port) => pollingClient(port, '/socket.io/', true),
  sockjs: sockjsClient,
  minimal: browserChannelClient,
  floor: bareClient,
  bare: bareClient,
};

// Opens `count` sessions, twenty at a time; `onMessage(index, message)`.
export async function connectMany(client, count, onMessage, options) {
  const connections = [];
  for (let i = 0; i < count; i += 20) {
    connections.push(...(await Promise.all(Array.from({ length: Math.min(20, count - i) }, (_, k) => client.connect((m) => onMessage(i + k, m), options)))));
  }
  return connections;
}

// The handshake request of each protocol, as autocannon sends it: the
// request that creates a session and returns its id. sockjs names the
// session in the path, so each request gets a fresh one.
const BIND = { method: 'POST', path: '/channel/bind?VER=8&RID=1000&CVER=1', body: 'count=0', headers: FORM };
export const HANDSHAKES = {
  ours: BIND,
  'ours-nostats': BIND,
  bc210: BIND,
  engineio: { method: 'GET', path: '/engine.io/?EIO=4&transport=polling' },
  socketio: { method: 'GET', path: '/socket.io/?EIO=4&transport=polling' },
  sockjs: { method: 'POST', path: '/echo/000/x/xhr', setupRequest: (req) => ({ ...req, path: `/echo/${100 + Math.floor(Math.random() * 900)}/${Math.random().toString(36).slice(2, 10)}/xhr` }) },
  minimal: BIND,
  floor: BIND,
  bare: { method: 'GET', path: '/' },
};

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
