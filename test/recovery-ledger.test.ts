// The ledger's promise to a forward request (`recovery.ts`): the answer
// waits for a save made *after* its maps were delivered. A save already
// on its way when they arrived proves nothing about them, however late
// it answers. With a store whose answers the test hands out one by one,
// on a real server over HTTP.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MemoryAdapter, type RecoveryStore, type SessionRecord } from '../src/index.ts';
import { type TestServer, createSession, delay, request, startServer, until } from './helpers.ts';

interface PendingSave {
  readonly records: readonly SessionRecord[];
  readonly answer: () => void;
}

let hold = false;
const pending: PendingSave[] = [];
const store: RecoveryStore = {
  start: () => {},
  end: () => {},
  takeOver: () => Promise.resolve('no saved state (a test store)'),
  save: (records) => new Promise((resolve) => {
    const answer = () => resolve(records.map(() => true));
    if (hold) pending.push({ records: [...records], answer });
    else answer();
  }),
};

let server: TestServer;
before(async () => {
  const adapter = Object.assign(new MemoryAdapter(), { recovery: store });
  server = await startServer({ adapter, recovery: { window: 60_000 } });
});
after(() => server.close());

test('a forward answer waits for a save made after its maps, not for one already on its way', async () => {
  const { sid } = await createSession(server.port);
  const session = server.sessions.at(-1)!;
  hold = true;
  session.send('a save in flight');
  await until(() => pending.length === 1, 1000, 'the first save');
  const body = ['count=2', 'ofs=0', 'req0_JSON=%7B%22k%22%3A0%7D', 'req1_JSON=%7B%22k%22%3A1%7D'];
  let answered = false;
  const post = request(server.port, 'POST', `/channel/bind?VER=8&SID=${sid}&RID=1001&AID=0`,
    body.join('&'), { 'Content-Type': 'application/x-www-form-urlencoded' })
    .then((response) => ((answered = true), response));
  // The request's `AID` is saved first (on its arrival), then its maps.
  const counted = () => pending.findIndex((save) => save.records[0]!.maps === 2);
  await until(() => counted() !== -1, 1000, 'a save with the maps counted');
  const before = pending.slice(0, counted());
  assert.ok(before.length >= 1 && before.every((save) => save.records[0]!.maps === 0));
  for (const save of before) save.answer();
  await delay(100);
  assert.equal(answered, false, 'not answered by the saves made before the maps');
  pending[counted()]!.answer();
  assert.equal((await post).status, 200);
  hold = false;
});
