// Replays every request shown in docs/protocol.md against the real server
// and compares each response with the one printed beside it: status line,
// the headers shown, and the body. The page's notation is filled in:
// `<SID>` and `<SID2>` with the ids the server issued, in order, and
// `<N × "c">` with N copies of c. A fence's info string adds two words:
// ```http open (a request left open while the next ones run, and its
// answer, shown later) and ```http after=1500 (wait that long first).
// Section 13 runs on two more processes' worth of servers, `n1` and `n2`,
// sharing a real Redis through the Redis adapter; ```http on=n2 sends a
// request to `n2`, and `<SID3>` is the id `n1` issued.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { test } from 'node:test';
import browserChannel, { type BrowserChannelOptions } from '../../src/index.ts';
import { redisAdapter } from '../../src/redis/index.ts';
import { startRedis } from '../cluster/harness.ts';
import { delay, request, startServer } from '../helpers.ts';

interface Block {
  readonly title: string;
  readonly info: string;
  readonly text: string;
}

function blocks(markdown: string): Block[] {
  const found: Block[] = [];
  let title = '';
  for (const [, heading, info, text] of markdown.matchAll(/^## (.+)$|^```http([^\n]*)\n([\s\S]*?)^```$/gm)) {
    if (heading) title = heading;
    else found.push({ title, info: info!.trim(), text: text! });
  }
  return found;
}

function parseMessage(text: string): { start: string; headers: Map<string, string>; body: string } {
  const [head, ...rest] = text.split('\n\n');
  const [start, ...lines] = head!.split('\n');
  const headers = new Map(lines.filter(Boolean).map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { start: start!, headers, body: rest.join('\n\n').replace(/\n$/, '') };
}

const expand = (text: string): string => text.replace(/<(\d+) × "(.)">/g, (_, count: string, char: string) => char.repeat(Number(count)));

interface Answer {
  readonly status: number;
  readonly statusMessage: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

test('every exchange in the protocol walkthrough matches the real server', async () => {
  const markdown = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
  const shown = blocks(markdown);
  const requests = shown.filter((block) => /^[A-Z]+ \//.test(block.text));
  assert.equal(requests.length, 18, 'the walkthrough shows eighteen requests');
  const titles = new Set(requests.map((block) => block.title));
  for (const topic of ['resent after `AID`', 'two chunks, then recycled', 'html transport', 'times out', 'relayed']) {
    assert.ok([...titles].some((title) => title.includes(topic)), `a replayed section on ${topic}`);
  }
  const app = (session: import('../../src/index.ts').Session): void => {
    session.send({ welcome: true });
    session.on('message', (message) => session.send({ echo: message }));
  };
  const server = await startServer({ keepAliveInterval: 1000, sessionTimeoutInterval: 1000 }, app);
  const redis = await startRedis();
  const nodes = new Map<string, { port: number; adapter: ReturnType<typeof redisAdapter>; close(): Promise<void> }>();
  for (const nodeId of ['n1', 'n2']) {
    const adapter = redisAdapter({ url: redis.url });
    const options: BrowserChannelOptions = { nodeId, adapter };
    const channel = browserChannel(options, app);
    const node = http.createServer(channel);
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
    await adapter.ready;
    nodes.set(nodeId, {
      port: (node.address() as import('node:net').AddressInfo).port,
      adapter,
      close: async () => {
        channel.close();
        node.closeAllConnections();
        await new Promise((resolve) => node.close(resolve));
      },
    });
  }
  const sids: string[] = [];
  const fill = (text: string): string =>
    expand(text.replaceAll('<SID3>', sids[2] ?? '').replaceAll('<SID2>', sids[1] ?? '').replaceAll('<SID>', sids[0] ?? ''));
  let pending: { block: Block; answer: Promise<Answer> } | null = null;
  let open: { block: Block; answer: Promise<Answer> } | null = null;
  let checked = 0;
  try {
    for (const block of shown) {
      if (/^[A-Z]+ \//.test(block.text)) {
        const after = /\bafter=(\d+)/.exec(block.info);
        if (after) await delay(Number(after[1]));
        const sent = parseMessage(fill(block.text));
        const [method, path] = sent.start.split(' ');
        const on = /\bon=(n\d)/.exec(block.info)?.[1];
        const port = on ? nodes.get(on)!.port : server.port;
        const answer = request(port, method!, path!, method === 'POST' ? sent.body : undefined, Object.fromEntries(sent.headers));
        if (/\bopen\b/.test(block.info)) {
          open = { block, answer };
          // Let the server take it up before the next request is sent.
          await delay(100);
        } else pending = { block, answer };
        continue;
      }
      assert.ok(block.text.startsWith('HTTP/1.1'), `${block.title}: an answer follows its request`);
      const awaited = /\bopen\b/.test(block.info) ? open : pending;
      assert.ok(awaited, `${block.title}: an answer with no request before it`);
      const response = await awaited.answer;
      for (const [, sid] of response.body.matchAll(/"c","([^"]+)"/g)) if (!sids.includes(sid!)) sids.push(sid!);
      const expected = parseMessage(fill(block.text));
      const title = `${block.title}: ${awaited.block.text.split('\n', 1)[0]}`;
      assert.equal(`HTTP/1.1 ${response.status} ${response.statusMessage}`, expected.start, title);
      for (const [name, value] of expected.headers) assert.equal(response.headers[name], value, `${title}: ${name}`);
      assert.equal(response.body.replace(/\n$/, ''), expected.body, title);
      if (awaited === open) open = null;
      else pending = null;
      checked++;
    }
    assert.equal(checked, 18, 'every request had its answer checked');
    assert.equal(sids.length, 3);
    for (const sid of sids.slice(0, 2)) assert.match(sid, /^[A-Za-z0-9_-]{22}$/);
    assert.match(sids[2]!, /^n1\.[A-Za-z0-9_-]{22}$/, 'n1 names itself in its ids');
    assert.equal(nodes.get('n2')!.adapter.relayed.sent, 2, 'n2 relayed both requests');
    assert.equal(nodes.get('n1')!.adapter.relayed.served, 2, 'n1 answered both');
  } finally {
    await server.close();
    for (const node of nodes.values()) await node.close();
    await redis.stop();
  }
});

test('the notation expands as the page says', () => {
  assert.equal(expand('a<3 × "x">b<2 × " ">'), 'axxxb  ');
});
