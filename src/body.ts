// # Body: reading a forward-channel request body, within limits
//
// Forward requests carry their maps in the body, and a body is the one
// thing a client can make arbitrarily large or arbitrarily slow. So bytes
// are counted as they arrive, and the request is refused the moment it
// passes `maxBodyBytes` (`413`) or takes longer than `bodyTimeout` (`408`),
// with nothing past the limit held:
//
// ```http
// HTTP/1.1 413 Body larger than 1048576 bytes (maxBodyBytes)
// ```
//
// The text is then decoded by `maps.ts`. If an earlier middleware already
// parsed the body (express's `urlencoded()` or `json()`), its result is
// used instead.
/** Reads and decodes forward-channel bodies with size and time limits. @module */
import type { IncomingMessage } from 'node:http';
import { ProtocolError } from './errors.ts';
import { type DecodeLimits, type ForwardBatch, decodeBody, decodeParsedBody } from './maps.ts';
import type { ResolvedOptions } from './options.ts';
import { Deadlines } from './deadlines.ts';

// ## Reading a batch
//
// A pre-parsed body counts as size 0: its bytes were held by the earlier
// middleware, not by us.
//
// > **Note (speed):** the body is decoded inside the Promise that reads
// > it, so a request waits on one Promise, not on that and an `async`
// > function around it.
/**
 * Reads and decodes a request body.
 * @param timeouts - the server's `bodyTimeout` countdowns (see `deadlines.ts`).
 * @returns the batch (null when it carries no maps) and the body's size in characters.
 * @throws ProtocolError - (as a rejection) `413`, `408`, or `400` for a body that does not decode.
 */
export function readBatch(
  req: IncomingMessage,
  options: ResolvedOptions,
  timeouts: BodyTimeouts,
): Promise<ReadBody> {
  const contentType = req.headers['content-type'];
  const parsed = (req as { body?: unknown }).body;
  if (parsed !== undefined && req.readableEnded) {
    try {
      const batch = decodeParsedBody(parsed, contentType, decodeLimits(options));
      return Promise.resolve({ batch, bytes: 0 });
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return readText(req, options.maxBodyBytes, timeouts, (text) => ({
    batch: decodeBody(text, contentType, decodeLimits(options)),
    bytes: text.length,
  }));
}

/** A decoded body: its batch (null when it carries no maps) and its size in characters. */
export interface ReadBody {
  readonly batch: ForwardBatch | null;
  readonly bytes: number;
}

function decodeLimits(options: ResolvedOptions): DecodeLimits {
  return { maxMaps: options.maxMapsPerRequest, maxKeys: options.maxKeysPerMap };
}

// ## Counting while streaming
//
// Past a limit the rest of the body is drained unread, so the connection
// stays usable. A body that trickles in is cut off after `bodyTimeout`
// with `408` and `Connection: close`, so one slow client cannot hold a
// request (and its buffer) open for ever.
//
// A request that fails or is aborted always ends with `close` before its
// end, so there is no `error` listener (and `IncomingMessage` emits no
// `error` when nobody listens for one).
//
// > **Note (speed):** every forward POST reads a body, so its clock is not
// > a `setTimeout` of its own but an entry in the server's `BodyTimeouts`,
// > a `Deadlines` queue (`deadlines.ts`) whose key is the function that
// > gives up.
/** The server's queue of body countdowns; each key is called if its body is late. */
export type BodyTimeouts = Deadlines<() => void>;

/** Makes the queue for a server whose `bodyTimeout` is `timeoutMs`. */
export function bodyTimeouts(timeoutMs: number): BodyTimeouts {
  return new Deadlines(timeoutMs, (giveUp) => giveUp());
}

// `decode` turns the whole text into the result; what it throws rejects.
function readText<T>(
  req: IncomingMessage,
  limit: number,
  timeouts: BodyTimeouts,
  decode: (text: string) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > limit) {
      req.resume();
      return reject(tooLarge(limit));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const stop = (error: ProtocolError): void => {
      if (settled) return;
      settled = true;
      timeouts.cancel(giveUp);
      req.removeListener('data', onData);
      req.resume();
      reject(error);
    };
    const giveUp = (): void => {
      const late = `Body not received within ${timeouts.durationMs} ms (bodyTimeout)`;
      stop(new ProtocolError(408, 'TIMEOUT', late, { Connection: 'close' }));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) return stop(tooLarge(limit));
      chunks.push(chunk);
    };
    timeouts.start(giveUp);
    req.on('data', onData);
    req.on('end', () => {
      if (settled) return;
      settled = true;
      timeouts.cancel(giveUp);
      const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      try {
        resolve(decode(whole.toString('utf8')));
      } catch (error) {
        reject(error);
      }
    });
    req.on('close', () => {
      if (!req.readableEnded) stop(new ProtocolError(400, 'BAD_BODY', 'Request aborted'));
    });
  });
}

function tooLarge(limit: number): ProtocolError {
  return new ProtocolError(413, 'BODY_TOO_LARGE', `Body larger than ${limit} bytes (maxBodyBytes)`);
}
