// Type test: what typed messages allow and forbid. `npm run typecheck`
// compiles this file; test/types.test.ts compiles it again with every
// `@ts-expect-error` comment removed and counts one error per such line,
// so each wrong use below is proven to fail on its own line.
import browserChannel, { type Session } from '../../src/index.ts';

type In = { type: 'chat'; text: string } | { type: 'typing' };
type Out = { type: 'said'; by: string; text: string };

const channel = browserChannel<In, Out, { name: string }>({ base: '/chat' }, (session) => {
  session.data.name = 'ada';
  session.on('message', (message) => {
    if (message.type === 'chat') session.to('lobby').send({ type: 'said', by: session.data.name, text: message.text });
    // @ts-expect-error `In` has no `body`
    void message.body;
  });
  session.on('close', (reason) => reason.toLowerCase());
  session.on('state changed', (state, previous) => `${state}${previous}`);
  session.on('drain', () => {});
  // @ts-expect-error a close reason is a string, not a number
  session.on('close', (reason: number) => reason);
  // @ts-expect-error no such event
  session.on('mesage', () => {});
  // @ts-expect-error `Out` needs `by`
  session.send({ type: 'said', text: 'x' });
  // @ts-expect-error data has no `age`
  void session.data.age;
  // @ts-expect-error rooms are read-only
  session.rooms.add('x');
  // @ts-expect-error join takes a room name
  void session.join(1);
});

channel.to(['a', 'b']).except('c').send({ type: 'said', by: 'x', text: 'y' });
// @ts-expect-error broadcasts are `Out` too
channel.send({ type: 'chat', text: 'wrong direction' });
channel.on('refused', (refusal) => refusal.status.toFixed());
channel.on('session', (session: Session<In, Out, { name: string }>) => session.id);
// @ts-expect-error no such channel event
channel.on('sesion', () => {});
void channel.shutdown({ timeout: 100 });

// Defaults stay loose: unknown in, anything JSON out.
browserChannel((session) => {
  session.on('message', (message) => {
    session.send({ echo: message });
    // @ts-expect-error an unknown message must be narrowed before use
    void message.anything;
  });
});
