// The wire diagrams in src/. A ```text diagram in a module's prose that
// shows requests or answers is either replayed here against a real server,
// or its fence says it is only an example: ```text illustrative. Nothing
// else is allowed, so a diagram cannot quietly drift from what the server
// does. (The guide's walkthrough is replayed by walkthrough.test.ts.)
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createSession, openStream, parseChunks, request, startServer } from '../helpers.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface Diagram {
  readonly file: string;
  readonly line: number;
  readonly info: string;
  readonly text: string;
}

function sources(folder: string, prefix = 'src/'): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return sources(path, `${prefix}${name}/`);
    return name.endsWith('.ts') ? [`${prefix}${name}`] : [];
  });
}

// Fenced blocks inside `//` comments, with their info string.
function diagrams(file: string): Diagram[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  const found: Diagram[] = [];
  for (let at = 0; at < lines.length; at++) {
    const open = /^\s*\/\/ ```(text.*)$/.exec(lines[at]!);
    if (!open) continue;
    const body: string[] = [];
    let end = at + 1;
    for (; end < lines.length && !/^\s*\/\/ ```\s*$/.test(lines[end]!); end++) {
      body.push(lines[end]!.replace(/^\s*\/\/ ?/, ''));
    }
    found.push({ file, line: at + 1, info: open[1]!.trim(), text: body.join('\n') });
    at = end;
  }
  return found;
}

// What counts as showing requests or answers: a method and a path, a
// request id, a form body's `count=`, or a length line above a JSON line.
function showsWire(text: string): boolean {
  return /(^|\s)(GET|POST|OPTIONS|HEAD)\s+\S/m.test(text) || /\bRID[ =]\d/.test(text) || /\bcount=\d/.test(text)
    || /^\d+\n\[/m.test(text);
}

// Diagrams in modules other branches own right now (this branch may not
// edit them). Each must still be there, word for word in its first line;
// when its owner marks it illustrative or it gets a replay, the entry goes.
const NOT_YET_MARKED = new Map<string, string>([
  ['src/client/channel.ts#GET  /test?VER=8&MODE=init                  → [null,null]', 'client overview; mark illustrative'],
  ['src/client/chunks.ts#28', 'client reading example; mark illustrative or replay'],
  ['src/client/wire.ts#count=2&ofs=7&req0_JSON=…&req1__S=hi', 'client body example; mark illustrative'],
]);

const key = (diagram: Diagram): string => `${diagram.file}#${diagram.text.split('\n', 1)[0]}`;

// ## Replays, by file and first line of the diagram

type Replay = (diagram: Diagram) => Promise<void>;

// inbox.ts: POSTs in the order shown; after each, the messages delivered.
async function replayInbox(diagram: Diagram): Promise<void> {
  const rows = diagram.text.split('\n').slice(1).map((line) => {
    const match = /^RID (\d+)\s+ofs=(\d+) \[([a-z, ]*)\]\s+(-|[a-z]( [a-z])*)\s/.exec(line);
    assert.ok(match, `inbox.ts diagram row: ${line}`);
    return {
      rid: Number(match[1]),
      ofs: Number(match[2]),
      maps: match[3]!.split(',').map((name) => name.trim()).filter(Boolean),
      delivered: match[4] === '-' ? [] : match[4]!.split(' '),
    };
  });
  const delivered: unknown[] = [];
  const server = await startServer({}, (session) => session.on('message', (message) => delivered.push(message)));
  try {
    const firstRid = Math.min(...rows.map((row) => row.rid)) - 1;
    const created = await request(server.port, 'POST', `/channel/bind?VER=8&RID=${firstRid}&CVER=1`, 'count=0');
    const sid = (parseChunks(created.body)[0] as [[number, [string, string]]])[0][1][1];
    for (const row of rows) {
      const body = [`count=${row.maps.length}`, `ofs=${row.ofs}`, ...row.maps.map((name, i) => `req${i}__S=${name}`)];
      const before = delivered.length;
      const answer = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=${row.rid}&AID=0`, body.join('&'));
      assert.equal(answer.status, 200, `RID ${row.rid}: ${answer.body}`);
      assert.deepEqual(delivered.slice(before), row.delivered, `inbox.ts: after RID ${row.rid} ofs=${row.ofs} [${row.maps}]`);
    }
  } finally {
    await server.close();
  }
}

// outbox.ts: the carets point at the ids their labels name; then a real
// session is brought to that state and asked what the diagram claims.
async function replayOutbox(diagram: Diagram): Promise<void> {
  const [ids, carets, labels, ack] = diagram.text.split('\n') as [string, string, string, string];
  const caretColumns = [...carets.matchAll(/\^/g)].map((match) => match.index);
  const named = [...labels.matchAll(/(\w+)=(\d+)/g)].map((match) => ({ name: match[1]!, value: match[2]! }));
  assert.equal(caretColumns.length, named.length, 'one caret per label');
  named.forEach(({ name, value }, i) => {
    assert.equal(ids[caretColumns[i]!], value, `outbox.ts: the caret for ${name}=${value} points at "${ids[caretColumns[i]!]}"`);
  });
  const lastSent = Number(named.find(({ name }) => name === 'lastSent')!.value);
  const lastQueued = Number(named.find(({ name }) => name === 'lastQueued')!.value);
  const aid = Number(/^AID=(\d+)/.exec(ack)![1]);
  const resent = /carries ([\d ]+)$/.exec(ack)![1]!.trim().split(' ').map(Number);
  assert.deepEqual(lastSent, 2, 'the replay below is written for lastSent=2');

  let session!: import('../../src/index.ts').Session;
  const server = await startServer({}, (created) => {
    session = created;
    created.send('welcome');
  });
  try {
    // Arrays 0 (handshake) and 1 go down with the create; array 2 on a back channel.
    const { sid } = await createSession(server.port);
    session.send('two');
    const poll = await request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=1&CI=1&TYPE=xmlhttp`);
    assert.deepEqual((parseChunks(poll.body)[0] as [number][]).map(([id]) => id), [2]);
    for (let id = lastSent + 1; id <= lastQueued; id++) session.send(`queued ${id}`);
    // The forward answer: no back channel, lastSent, and array 2's characters outstanding.
    const post = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=${aid}`, 'count=0');
    assert.equal(post.body, `7\n[0,${lastSent},${JSON.stringify('two').length}]`, 'outbox.ts: forward answer');
    const next = await request(server.port, 'GET', `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=${aid}&CI=1&TYPE=xmlhttp`);
    assert.deepEqual((parseChunks(next.body)[0] as [number][]).map(([id]) => id), resent, 'outbox.ts: the next back channel');
  } finally {
    await server.close();
  }
}

// handler.ts: a forward answer `[open, lastSent, outstanding]`, exactly.
// The session sends arrays up to `lastSent` down a streaming back channel;
// the POST acknowledges all but the last four, which weigh `outstanding`.
async function replayForwardAnswer(diagram: Diagram): Promise<void> {
  const [length, json] = diagram.text.split('\n') as [string, string];
  const [open, lastSent, outstanding] = JSON.parse(json) as [number, number, number];
  assert.equal(Number(length), json.length, 'a forward answer counts no trailing newline');
  assert.equal(open, 1, 'the replay below keeps a back channel open');
  const tail = 4;
  const sizes = Array.from({ length: tail }, (_, i) => Math.floor(outstanding / tail) + (i < outstanding % tail ? 1 : 0));
  const server = await startServer({}, (session) => {
    for (let id = 1; id <= lastSent - tail; id++) session.send(id);
    for (const size of sizes) session.send('x'.repeat(size - 2));
  });
  try {
    const { sid } = await createSession(server.port);
    const stream = openStream(server.port, `/channel/bind?VER=8&SID=${sid}&RID=rpc&AID=0&CI=0&TYPE=xmlhttp`);
    await stream.waitFor((text) => text.includes(`[${lastSent},`));
    const post = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=${lastSent - tail}`, 'count=0');
    assert.equal(post.body, diagram.text, 'handler.ts: the forward answer');
    stream.destroy();
  } finally {
    await server.close();
  }
}

const REPLAYS = new Map<string, Replay>([
  ['src/inbox.ts#POST      body          delivered  why', replayInbox],
  ['src/outbox.ts#queued:  0 1 2 3 4 5', replayOutbox],
  ['src/handler.ts#10', replayForwardAnswer],
  ['src/backchannel.ts#10', replayForwardAnswer],
]);

const all = sources(join(root, 'src')).flatMap(diagrams);

test('every request/answer diagram in src/ is replayed here or marked illustrative', () => {
  const unmarked = all.filter((diagram) => showsWire(diagram.text) && !/\billustrative\b/.test(diagram.info));
  const problems = unmarked
    .filter((diagram) => !REPLAYS.has(key(diagram)) && !NOT_YET_MARKED.has(key(diagram)))
    .map((diagram) => `${diagram.file}:${diagram.line} shows the wire but is neither replayed nor \`\`\`text illustrative`);
  const keys = new Set(all.filter((diagram) => !/\billustrative\b/.test(diagram.info)).map(key));
  for (const expected of [...REPLAYS.keys(), ...NOT_YET_MARKED.keys()]) {
    if (!keys.has(expected)) problems.push(`stale entry in diagrams.test.ts (diagram changed, gone or marked): ${expected}`);
  }
  assert.deepEqual(problems, []);
  assert.ok(all.some((diagram) => /\billustrative\b/.test(diagram.info)), 'the marker is in use');
});

test('the rule catches an unmarked wire diagram', () => {
  assert.ok(showsWire('POST /channel/bind?VER=8&RID=1'));
  assert.ok(showsWire('RID 4242  ofs=0 [a]'));
  assert.ok(showsWire('10\n[1,57,312]'));
  assert.ok(!showsWire('front → [A 31 200] [B 35 900]'));
});

for (const [name, replay] of REPLAYS) {
  test(`replay: ${name.split('#')[0]}`, async () => {
    const diagram = all.find((candidate) => key(candidate) === name);
    assert.ok(diagram, `${name} is still in the source`);
    await replay(diagram);
  });
}
