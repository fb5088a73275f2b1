// Replays every request shown in docs/protocol.md against the real server
// and compares each response with the one printed beside it: status line,
// the headers shown, and the body. The page's notation is filled in:
// `<SID>` and `<SID2>` with the ids the server issued, in order, and
// `<N × "c">` with N copies of c. A fence's info string adds two words:
// ```http open (a request left open while the next ones run, and its
// answer, shown later) and ```http after=1500 (wait that long first).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { test } from 'node:test';
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
  assert.equal(requests.length, 15, 'the walkthrough shows fifteen requests');
  const titles = new Set(requests.map((block) => block.title));
  for (const topic of ['resent after `AID`', 'two chunks, then recycled', 'html transport', 'times out']) {
    assert.ok([...titles].some((title) => title.includes(topic)), `a replayed section on ${topic}`);
  }
  const server = await startServer({ keepAliveInterval: 1000, sessionTimeoutInterval: 1000 }, (session) => {
    session.send({ welcome: true });
    session.on('message', (message) => session.send({ echo: message }));
  });
  const sids: string[] = [];
  const fill = (text: string): string => expand(text.replaceAll('<SID2>', sids[1] ?? '').replaceAll('<SID>', sids[0] ?? ''));
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
        const answer = request(server.port, method!, path!, method === 'POST' ? sent.body : undefined, Object.fromEntries(sent.headers));
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
    assert.equal(checked, 15, 'every request had its answer checked');
    assert.equal(sids.length, 2);
    for (const sid of sids) assert.match(sid, /^[A-Za-z0-9_-]{22}$/);
  } finally {
    await server.close();
  }
});

test('the notation expands as the page says', () => {
  assert.equal(expand('a<3 × "x">b<2 × " ">'), 'axxxb  ');
});
