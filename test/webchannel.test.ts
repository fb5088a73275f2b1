// Google's WebChannel client (@firebase/webchannel-wrapper, the transport under
// Firestore's web SDK) against our server, with XHR and with fetch streams.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Session } from '../src/index.ts';
import { startServer, until, type TestServer } from './helpers.ts';
import { openWebChannel } from './webchannel-client.ts';

const open = (url: string, options: Record<string, unknown>) => {
  const opened = openWebChannel(url, options);
  return { ...opened, channel: opened.client };
};

for (const useFetchStreams of [false, true]) {
  describe(`WebChannel client, useFetchStreams: ${useFetchStreams}`, { concurrency: true }, () => {
    let server: TestServer;
    const closeReasons = new Map<string, string | undefined>();
    const maps: Array<Record<string, string>> = [];
    before(async () => {
      server = await startServer({}, (session: Session) => {
        session.on('close', (reason) => closeReasons.set(session.id, reason));
        session.on('map', (map) => maps.push(map));
        session.on('message', (message) => session.send({ echo: message }));
      });
    });
    after(() => server.close());
    const bindUrl = () => server.url('/channel/bind');

    test('sendRawJson: 300 messages each way arrive in order, unicode and </script> intact', async () => {
      const client = open(bindUrl(), { useFetchStreams, sendRawJson: true, messageUrlParams: { tag: 'raw' } });
      await client.opened;
      const session = server.sessions.find((s) => s.query.tag === 'raw')!;
      assert.equal(session.appVersion, '22', 'WebChannel identifies itself with CVER=22');
      const samples = Array.from({ length: 300 }, (_, i) => ({ i, text: i % 3 ? `</script>😀\u2028${i}` : `plain ${i}` }));
      for (const sample of samples) client.channel.send(sample);
      await until(() => client.received.length === 300, 15000, '300 echoes');
      assert.deepEqual(client.received, samples.map((sample) => ({ echo: sample })));
      client.channel.close();
      await until(() => closeReasons.get(session.id) === 'Disconnected', 5000, 'Disconnected');
    });

    test('without sendRawJson a message object is a map', async () => {
      const client = open(bindUrl(), { useFetchStreams, messageUrlParams: { tag: 'maps' } });
      await client.opened;
      client.channel.send({ kind: 'plain', n: '1' });
      await until(() => maps.some((m) => m.kind === 'plain'), 5000, 'the map');
      assert.deepEqual({ ...maps.find((m) => m.kind === 'plain') }, { kind: 'plain', n: '1' });
      client.channel.close();
    });

    test('server push reaches the client on the streaming back channel', async () => {
      const client = open(bindUrl(), { useFetchStreams, messageUrlParams: { tag: 'push' } });
      await client.opened;
      const session = server.sessions.find((s) => s.query.tag === 'push')!;
      for (let i = 0; i < 100; i++) session.send(['pushed', i]);
      await until(() => client.received.length === 100, 5000, '100 pushes');
      assert.deepEqual(client.received, Array.from({ length: 100 }, (_, i) => ['pushed', i]));
      client.channel.close();
    });
  });
}

