// Form bodies are read by hand, not by `URLSearchParams` (src/maps.ts: one
// decode for the whole body, or field by field), and must always give what
// `URLSearchParams` gives. Random bodies built from the characters that
// make the two ways differ (`%26` and `%3D` in names and values, `+`,
// malformed and multi-byte escapes, lone surrogates, empty fields, a
// leading `?`) are compared field by field; then maps whose keys and
// values hold `&`, `=` and `+` go through a real server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { formFields } from '../src/maps.ts';
import { createSession, request, startServer, type TestServer } from './helpers.ts';

// A small seeded generator, so a failure can be replayed.
let seed = 15;
const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const PIECES = [
  'a', 'req0_JSON', 'req1_', 'count', '=', '&', '+', '%26', '%3D', '%3d', '%2B', '%20', '%7B%22',
  '%C3%BC', '%E2%82%AC', '%E2%82', '%', '%2', '%zz', '%u0041', '?', '\uD800', 'é', '',
];

function randomBody(): string {
  let body = '';
  const length = Math.floor(random() * 12);
  for (let i = 0; i < length; i++) body += pick(PIECES);
  return body;
}

const reference = (body: string): string[] => [...new URLSearchParams(body)].flat();

describe('form bodies read exactly as URLSearchParams reads them', () => {
  test('5,000 random bodies', () => {
    for (let i = 0; i < 5000; i++) {
      const body = randomBody();
      assert.deepEqual(formFields(body), reference(body), `body ${JSON.stringify(body)}`);
    }
  });

  test('an escaped & or = in a name or a value keeps the fields apart', () => {
    for (const body of [
      'count=1&ofs=0&req0_a%26b=c%26d',
      'req0_a%3Db=c%3Dd=e&x=%7B%7D',
      '?req0_k=v&&req0_%3D=%3D%3D&last',
      'req0_JSON=%7B%22q%22%3A%22x%3Dy%22%7D&req0_+=+%2B+',
    ]) {
      assert.deepEqual(formFields(body), reference(body), body);
    }
  });
});

describe('maps with &, = and + in keys and values, over HTTP', () => {
  let server: TestServer;
  const maps: Array<Record<string, string>> = [];
  const messages: unknown[] = [];
  before(async () => {
    server = await startServer({}, (session: Session) => {
      session.on('map', (map) => maps.push({ ...map }));
      session.on('message', (message) => messages.push(message));
    });
  });
  after(() => server.close());

  test('each map and message arrives as sent', async () => {
    const { sid } = await createSession(server.port);
    const first = { JSON: JSON.stringify({ url: '/a?b=1&c=2', plus: '1+1' }) };
    const second = { 'k=1&k2': 'v=&v', _S: 'a+b c' };
    const body = `count=2&ofs=0&${[first, second]
      .flatMap((map, n) => Object.entries(map).map(([key, value]) =>
        `req${n}_${encodeURIComponent(key)}=${encodeURIComponent(value)}`))
      .join('&')}`;
    const response = await request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1&AID=0`, body);
    assert.equal(response.status, 200);
    assert.deepEqual(maps, [first, second]);
    assert.deepEqual(messages, [{ url: '/a?b=1&c=2', plus: '1+1' }, 'a+b c']);
  });
});
