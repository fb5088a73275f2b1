// Replays every request shown in docs/protocol.md against the real server
// and compares each response with the one printed beside it: status line,
// the headers shown, and the body. Only <SID> is filled in.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { request, startServer } from '../helpers.ts';

interface Exchange {
  readonly title: string;
  readonly request: string;
  readonly response: string;
}

// Pairs each ```http block that starts with a method with the ```http block
// after it that starts with a status line.
function exchanges(markdown: string): Exchange[] {
  const blocks = [...markdown.matchAll(/^## (.+)$|^```http\n([\s\S]*?)^```$/gm)];
  const found: Exchange[] = [];
  let title = '';
  let pending: string | null = null;
  for (const [, heading, body] of blocks) {
    if (heading) title = heading;
    else if (/^[A-Z]+ \//.test(body!)) pending = body!;
    else if (pending !== null && body!.startsWith('HTTP/1.1')) {
      found.push({ title, request: pending, response: body! });
      pending = null;
    }
  }
  return found;
}

function parseMessage(text: string): { start: string; headers: Map<string, string>; body: string } {
  const [head, ...rest] = text.split('\n\n');
  const [start, ...lines] = head!.split('\n');
  const headers = new Map(lines.filter(Boolean).map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { start: start!, headers, body: rest.join('\n\n').replace(/\n$/, '') };
}

test('every exchange in the protocol walkthrough matches the real server', async () => {
  const markdown = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
  const shown = exchanges(markdown);
  assert.equal(shown.length, 8, 'the walkthrough shows eight exchanges');
  const server = await startServer({ keepAliveInterval: 300 }, (session) => {
    session.send({ welcome: true });
    session.on('message', (message) => session.send({ echo: message }));
  });
  let sid = '';
  for (const exchange of shown) {
    const sent = parseMessage(exchange.request.replaceAll('<SID>', sid));
    const [method, path] = sent.start.split(' ');
    const headers = Object.fromEntries(sent.headers);
    const response = await request(server.port, method!, path!, method === 'POST' ? sent.body : undefined, headers);
    sid ||= /"c","([^"]+)"/.exec(response.body)?.[1] ?? '';
    const expected = parseMessage(exchange.response.replaceAll('<SID>', sid));
    assert.equal(`HTTP/1.1 ${response.status} ${response.statusMessage}`, expected.start, exchange.title);
    for (const [name, value] of expected.headers) assert.equal(response.headers[name], value, `${exchange.title}: ${name}`);
    assert.equal(response.body.replace(/\n$/, ''), expected.body, exchange.title);
  }
  assert.match(sid, /^[A-Za-z0-9_-]{22}$/);
  await server.close();
});
