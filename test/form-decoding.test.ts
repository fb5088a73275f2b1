// Form bodies are read by hand, not by `URLSearchParams` (src/maps.ts: one
// decode for the whole body, or field by field), and must always give what
// `URLSearchParams` gives. Random bodies built from the characters that
// make the two ways differ (`%26` and `%3D` in names and values, `+`,
// malformed and multi-byte escapes, lone surrogates, empty fields, a
// leading `?`) are compared field by field; then maps whose keys and
// values hold `&`, `=` and `+` go through a real server. Last, the
// one-pass reader of the usual body (`req0_JSON=…` maps in order) must
// give what the general path gives, error and all, for bodies near that
// shape.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { decodeBody, decodeFormBody, formFields } from '../src/maps.ts';
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

// The outcome of decoding `body`: the batch, or the error's code and message.
function outcome(decode: () => unknown): unknown {
  try {
    return { batch: decode() };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    return { code, message };
  }
}

const NEAR_PIECES = [
  'count=', 'ofs=', 'req0_JSON=', 'req1_JSON=', 'req2_JSON=', 'req01_JSON=', 'req1_x=',
  'req1_type=', '_badmap', 'headers=', '0', '1', '2', '3', '1001', '-1', '&', '&&', '%7B%7D',
  '%5B1%2C2%5D', '%22a%26b%22', '%7B', '%22%E2%82%AC%22', '%E2%82', '+', '%2B', 'null', '?', '%',
  'x', '%31',
];

describe('the usual body, read in one pass', () => {
  test('gives what the general path gives, for 20,000 bodies near its shape', () => {
    const limits = { maxMaps: 3, maxKeys: 2 };
    let accepted = 0;
    for (let i = 0; i < 20000; i++) {
      // Mostly well-formed bodies with one thing changed, some pure noise.
      let body = '';
      if (random() < 0.7) {
        const count = Math.floor(random() * 4);
        body = `count=${count}&ofs=${Math.floor(random() * 9)}`;
        for (let n = 0; n < count; n++) body += `&req${n}_JSON=${pick(['%7B%7D', '1', '%22x%22'])}`;
        const at = Math.floor(random() * (body.length + 1));
        const cut = random() < 0.5 ? Math.floor(random() * 4) : 0;
        body = body.slice(0, at) + (random() < 0.8 ? pick(NEAR_PIECES) : '') + body.slice(at + cut);
      } else {
        const length = Math.floor(random() * 10);
        for (let n = 0; n < length; n++) body += pick(NEAR_PIECES);
      }
      const fast = outcome(() => decodeBody(body, 'application/x-www-form-urlencoded', limits));
      const general = outcome(() => decodeFormBody(body, limits));
      assert.deepEqual(fast, general, `body ${JSON.stringify(body)}`);
      if ((fast as { batch?: unknown }).batch) accepted++;
    }
    // Enough of them were good bodies that the one-pass reader took.
    assert.ok(accepted > 3000, `only ${accepted} bodies decoded`);
  });

  test('a 20-map body is read in one pass, and so is its error', () => {
    const maps = Array.from({ length: 20 }, (_, i) => ({ i, text: 'a&b=c+d €' }));
    const body = `count=20&ofs=40&${maps
      .map((m, n) => `req${n}_JSON=${encodeURIComponent(JSON.stringify(m))}`)
      .join('&')}`;
    const batch = decodeBody(body, 'application/x-www-form-urlencoded');
    assert.equal(batch?.ofs, 40);
    assert.deepEqual(batch?.items.map((item) => item.kind === 'map' && item.message), maps);
    assert.deepEqual(batch, decodeFormBody(body));
    const broken = body.replace('req7_JSON=%7B', 'req7_JSON=%7C');
    assert.throws(
      () => decodeBody(broken, 'application/x-www-form-urlencoded'),
      /map 7 JSON is not valid JSON/,
    );
  });
});
