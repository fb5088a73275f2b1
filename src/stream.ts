// # Stream: a session as an object-mode Duplex stream
//
// Some libraries take a connection as a Node stream of objects rather than
// as an event emitter. ShareDB, the successor of ShareJS (for which
// node-browserchannel was written), is the main one: its server handles a
// client once it is given a stream,
//
// ```ts
// browserChannel((session, req) => backend.listen(sessionStream(session), req));
// ```
//
// and this module makes that stream. What the client sends comes out of
// the readable side, one chunk per message; what is written to the
// writable side goes to the client with `session.send`:
//
// ```text
// up    socket.send('{"a":"op",…}') → forward channel → 'message' → 'data' {a:'op',…}
// down  stream.write({a:'op',…})    → session.send    → back channel → onmessage
// ```
//
// The stream and the session end together, whichever side ends first.
/** `sessionStream`: a session as an object-mode Duplex stream, for ShareDB and the like. @module */
import { Duplex } from 'node:stream';
import type { AnySession, Session } from './session.ts';

// ## Options
/** Options of {@link sessionStream}; all optional. */
export interface SessionStreamOptions {
  /**
   * Turns a message from the client into a chunk. Default: a string is parsed
   * as JSON text (ShareDB's client sends every message that way), anything
   * else passes unchanged. A throw closes the session with the error's message.
   */
  decode?: (message: unknown) => unknown;
  /** Unacknowledged JSON characters past which a write waits for `drain`. Default 1 MiB. */
  highWaterBytes?: number;
  /** Writes the stream may hold while it waits; one more closes the session. Default 10000. */
  maxQueuedWrites?: number;
}

const DEFAULT_HIGH_WATER_BYTES = 1024 * 1024;
const DEFAULT_MAX_QUEUED_WRITES = 10_000;

// ShareDB's client calls `socket.send(JSON.stringify(message))`, so its
// messages arrive as `_S` strings; our BCSocket's `send(object)` arrives
// parsed already. Both come out as objects.
function decodeJsonText(message: unknown): unknown {
  return typeof message === 'string' ? (JSON.parse(message) as unknown) : message;
}

// ## Making the stream
//
// Call it inside `onConnect`: maps that came with the creating request are
// delivered right after `onConnect` returns, and a stream made later would
// miss them.
/**
 * Wraps a session in an object-mode Duplex stream.
 * @param session - a session that is not closed; the stream takes over its `message` events.
 * @returns a stream that reads the client's messages and writes to the client.
 */
export function sessionStream(
  session: Session<unknown, unknown, object>,
  options: SessionStreamOptions = {},
): Duplex {
  const decode = options.decode ?? decodeJsonText;
  const highWaterBytes = options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
  const maxQueuedWrites = options.maxQueuedWrites ?? DEFAULT_MAX_QUEUED_WRITES;
  let reading = true;
  const endReadable = (): void => {
    if (reading) stream.push(null);
    reading = false;
  };
  const stream = new Duplex({
    objectMode: true,
    read() {},
    write: (chunk: unknown, _encoding, callback) =>
      writeToSession(session, chunk, highWaterBytes, callback),
    final(callback) {
      callback();
      endReadable();
      endSession(session, 'Stream ended');
    },
    destroy(error, callback) {
      reading = false;
      endSession(session, error?.message ?? 'Stream destroyed');
      callback(error);
    },
  });
  boundQueue(stream, session, maxQueuedWrites);
  session.on('message', (message) => {
    if (reading) readFromSession(session, stream, message, decode);
  });
  session.once('close', () => {
    endReadable();
    if (stream.readableFlowing && !stream.readableEnded) stream.once('end', () => stream.destroy());
    else stream.destroy();
  });
  return stream;
}

// ## Up: messages become chunks
//
// A message that `decode` refuses closes the session: the client is not
// speaking the stream's language. `null` and `undefined` are dropped,
// because pushing `null` would end the stream.
//
// The readable side has no backpressure to give: BrowserChannel cannot
// ask a client to send more slowly. What one client may have in flight is
// bounded by the server's limits (`maxBodyBytes`, `maxHeldBytes`), and
// ShareDB reads every chunk as it comes.
type Decode = (message: unknown) => unknown;

function readFromSession(
  session: AnySession,
  stream: Duplex,
  message: unknown,
  decode: Decode,
): void {
  let chunk: unknown;
  try {
    chunk = decode(message);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return session.close(`Undecodable message: ${why}`);
  }
  if (chunk !== null && chunk !== undefined) stream.push(chunk);
}

// ## Down: writes become arrays, with backpressure
//
// Each write is sent at once. If the client then holds more than
// `highWaterBytes` unacknowledged (`session.bufferedBytes`), the write's
// callback waits for the session's `drain` (everything acknowledged).
// Later writes queue inside the stream meanwhile, and past its own
// high-water mark (16 objects) `write()` returns false, so a producer
// that listens pauses until the stream's `drain`. A session that closes
// meanwhile releases the wait; what was written then is lost with the
// session, as on any connection that drops.
type Done = (error?: Error) => void;

function writeToSession(session: AnySession, chunk: unknown, limit: number, done: Done): void {
  if (session.state === 'closed') return done();
  try {
    session.send(chunk);
  } catch (error) {
    return done(error as Error);
  }
  if (session.bufferedBytes <= limit) return done();
  const release = (): void => {
    session.off('drain', release);
    session.off('close', release);
    done();
  };
  session.on('drain', release);
  session.on('close', release);
}

// While a write waits, later writes queue inside the stream, and a
// producer that ignores `write()`'s answer (ShareDB's agent does) would
// queue without end for a client that stopped acknowledging. Past
// `maxQueuedWrites` the session closes, and says why.
function boundQueue(stream: Duplex, session: AnySession, maxQueuedWrites: number): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((...args: unknown[]): boolean => {
    const accepted = write(...args);
    if (stream.writableLength <= maxQueuedWrites) return accepted;
    session.close(`Stream queue over ${maxQueuedWrites} writes (maxQueuedWrites)`);
    return accepted;
  }) as typeof stream.write;
}

// ## Ending
//
// When the session closes (the client said goodbye, timed out, or hit a
// limit), the readable side ends and the stream is destroyed: listeners
// get `end` first if they are reading (ShareDB is), and `close` always.
//
// When the app ends or destroys the stream (ShareDB does when it refuses a
// client, in a `connect` middleware or for a bad message), the client is
// told `["stop"]`, so it does not come back just to be refused again, and
// the session closes once that is written. The readable side ends at once:
// messages still arriving are dropped.
function endSession(session: AnySession, reason: string): void {
  if (session.state === 'closed') return;
  session.stop(() => session.close(reason));
}
