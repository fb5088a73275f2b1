// Option checking: every mistake throws a TypeError that names the option,
// what it must be and what it got; unknown names suggest the nearest one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import browserChannel, { type BrowserChannelOptions } from '../src/index.ts';

const make = (options: unknown) => () => browserChannel(options as BrowserChannelOptions, () => {});

test('unknown option names throw, with the nearest known name', () => {
  assert.throws(make({ bse: '/x' }), /unknown option `bse` \(did you mean `base`\?\)/);
  assert.throws(make({ keepAlive: 1000 }), /unknown option `keepAlive` \(did you mean `keepAliveInterval`\?\)/);
  assert.throws(make({ sessionTimeout: 1000 }), /did you mean `sessionTimeoutInterval`/);
  assert.throws(make({ maxBodySize: 1 }), /did you mean `maxBodyBytes`/);
  assert.throws(make({ zzzzzzzzzzzzzz: 1 }), /^TypeError: browserChannel: unknown option `zzzzzzzzzzzzzz`$/);
});

test('timers must be whole milliseconds from 1 to 2^31-1', () => {
  assert.throws(make({ keepAliveInterval: Infinity }), /`keepAliveInterval` must be a whole number of milliseconds from 1 to 2147483647, got number Infinity/);
  assert.throws(make({ sessionTimeoutInterval: 0 }), /sessionTimeoutInterval.*got number 0/);
  assert.throws(make({ bodyTimeout: 2 ** 31 }), /bodyTimeout/);
  assert.throws(make({ keepAliveInterval: 1.5 }), /keepAliveInterval.*got number 1.5/);
  assert.throws(make({ keepAliveInterval: '20000' }), /keepAliveInterval.*got string "20000"/);
});

test('counts must be whole numbers of at least 1', () => {
  for (const name of ['maxBodyBytes', 'maxMapsPerRequest', 'maxKeysPerMap', 'maxHeldRequests', 'maxHeldBytes',
    'maxBufferedBytes', 'maxBufferedArrays', 'maxSessions']) {
    assert.throws(make({ [name]: 2.5 }), new RegExp(`\`${name}\` must be a whole number of at least 1, got number 2.5`));
    assert.throws(make({ [name]: -1 }), new RegExp(name));
    assert.throws(make({ [name]: NaN }), new RegExp(name));
  }
  assert.doesNotThrow(make({ maxSessions: Infinity }));
});

test('shapes: hostPrefixes, headers, server, cors, booleans, hooks, adapter, base, nodeId', () => {
  assert.throws(make({ hostPrefixes: 'a.example' }), /`hostPrefixes` must be an array of hostnames, got string/);
  assert.throws(make({ hostPrefixes: ['ok', 'not a host'] }), /hostPrefixes.*got string "not a host"/);
  assert.throws(make({ headers: 'x' }), /`headers` must be an object/);
  assert.throws(make({ headers: { 'X-A': 1 } }), /`headers.X-A` must be a string/);
  assert.throws(make({ headers: { 'X-A': 'a\r\nSet-Cookie: x' } }), /without line breaks/);
  assert.throws(make({ server: {} }), /`server` must be an http.Server/);
  assert.throws(make({ cors: 5 }), /`cors` must be a string or a function/);
  assert.throws(make({ corsAllowCredentials: 'yes' }), /`corsAllowCredentials` must be a boolean, got string "yes"/);
  assert.throws(make({ allowRequest: true }), /`allowRequest` must be a function/);
  assert.throws(make({ adapter: { attach() {} } }), /`adapter` must be an Adapter \(missing join, leave/);
  assert.throws(make({ base: 3 }), /`base` must be a string, got number 3/);
  assert.throws(make({ base: '/a?b' }), /`base` must be a path/);
  assert.throws(make({ nodeId: 'a.b' }), /nodeId/);
  assert.throws(make({ httpHeadersOverwriteParam: 'a b' }), /httpHeadersOverwriteParam/);
});

test('options must be an object; a string base alone is a mistake', () => {
  assert.throws(() => browserChannel('/channel' as unknown as BrowserChannelOptions), /options must be an object, got string "\/channel" \(pass \{ base/);
  assert.throws(make([]), /options must be an object, got an array/);
  assert.throws(() => browserChannel({}, 'x' as unknown as () => void), /onConnect must be a function, got string/);
});

test('good options pass, null means default', () => {
  const channel = browserChannel({
    base: 'rt/', hostPrefixes: ['a', 'b.example'], keepAliveInterval: 15000, cors: '*', corsAllowCredentials: false,
    headers: { 'X-Powered-By': 'us' }, maxSessions: 10, nodeId: 'n1', allowRequest: null, adapter: null, server: null,
  }, () => {});
  assert.equal(typeof channel, 'function');
  channel.close();
  assert.doesNotThrow(() => browserChannel(null, () => {}).close());
  assert.doesNotThrow(() => browserChannel(() => {}).close());
});

test('recovery: a window in milliseconds, a history count, and an adapter that keeps history', () => {
  assert.throws(make({ recovery: 120000 }), /`recovery` must be an object \{ window, history\?, timeout\? \}, got number 120000/);
  assert.throws(make({ recovery: { window: 1000, timeout: 0 } }), /`recovery.timeout` must be a whole number of milliseconds/);
  assert.throws(make({ recovery: {} }), /`recovery.window` must be a whole number of milliseconds/);
  assert.throws(make({ recovery: { window: 1000, history: 0 } }), /`recovery.history` must be a whole number of at least 1/);
  assert.throws(make({ recovery: { window: 1000, windw: 1 } }), /`recovery.windw` must be absent \(known: window, history, timeout\)/);
  // The in-memory adapter keeps no history, so recovery cannot work with it.
  assert.throws(make({ recovery: { window: 1000 } }), /option `recovery` needs an adapter that keeps history/);
  assert.doesNotThrow(make({ recovery: null }));
});
