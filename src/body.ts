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

// ## Reading a batch
//
// A pre-parsed body counts as size 0: its bytes were held by the earlier
// middleware, not by us.
/**
 * Reads and decodes a request body.
 * @returns the batch (null when it carries no maps) and the body's size in characters.
 * @throws ProtocolError - `413`, `408`, or `400` for a body that does not decode.
 */
export async function readBatch(req: IncomingMessage, options: ResolvedOptions): Promise<{ batch: ForwardBatch | null; bytes: number }> {
  const contentType = req.headers['content-type'];
  const parsed = (req as { body?: unknown }).body;
  if (parsed !== undefined && req.readableEnded) return { batch: decodeParsedBody(parsed, contentType, decodeLimits(options)), bytes: 0 };
  const text = await readText(req, options.maxBodyBytes, options.bodyTimeout);
  return { batch: decodeBody(text, contentType, decodeLimits(options)), bytes: text.length };
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
function readText(req: IncomingMessage, limit: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (error: ProtocolError): void => {
      clearTimeout(timer);
      req.removeListener('data', onData);
      req.resume();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) return stop(new ProtocolError(413, 'BODY_TOO_LARGE', `Body larger than ${limit} bytes (maxBodyBytes)`));
      chunks.push(chunk);
    };
    const timer = setTimeout(() => stop(new ProtocolError(408, 'TIMEOUT', `Body not received within ${timeoutMs} ms (bodyTimeout)`, { Connection: 'close' })), timeoutMs).unref();
    if (Number(req.headers['content-length']) > limit) return stop(new ProtocolError(413, 'BODY_TOO_LARGE', `Body larger than ${limit} bytes (maxBodyBytes)`));
    req.on('data', onData);
    req.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.once('error', (error) => stop(new ProtocolError(400, 'BAD_BODY', `Request failed: ${error.message}`)));
    req.once('close', () => {
      if (!req.readableEnded) stop(new ProtocolError(400, 'BAD_BODY', 'Request aborted'));
    });
  });
}
