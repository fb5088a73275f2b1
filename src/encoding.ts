// # Encoding: how arrays travel down the back channel
//
// The server never pushes bare JSON. Each batch of arrays becomes one
// *chunk*, and a chunk is framed for the transport the client chose with
// `TYPE`:
//
// **`TYPE=xmlhttp`**: the JSON text, prefixed by its length and a newline.
// The client reads `responseText` as it grows and cuts it into chunks by
// those lengths:
//
// ```text illustrative
// 28
// [[4,["hello"]],[5,{"a":1}]]
// ```
//
// (27 characters of JSON and the newline after it: 28.) A chunk's length
// counts its trailing newline; the answer to a forward POST, framed by
// the same `lengthPrefixed`, has no trailing newline, so its length is
// just the JSON's: `10` then `[1,57,312]`. The guide's walkthrough
// replays both.
//
// **`TYPE=html`**: the old iframe transport. The page loads a never-ending
// HTML document, and every chunk is a script element that hands the same
// JSON text, as a string, to the parent page:
//
// ```html
// <html><body><script>try{parent.m("[[4,[\"hello\"]]]\n")}catch(e){}</script>
// ```
/** Back-channel framing for the xmlhttp and html transports. @module */
import { CONTENT_TYPE } from './headers.ts';
import type { ChunkJson } from './outbox.ts';

// ## Lengths are UTF-16 code units
//
// The Closure client compares the prefix with `responseText.length`, which
// counts UTF-16 code units, not bytes: `"é"` is 1, `"😀"` is 2. JavaScript's
// own `string.length` counts the same thing, so the prefix is simply the
// length of the text we are about to write.
/** Frames text as `<length>\n<text>`, where the length counts UTF-16 code units. */
export function lengthPrefixed(text: string): string {
  return `${text.length}\n${text}`;
}

// ## Line separators
//
// U+2028 and U+2029 are legal inside JSON strings but end a string literal
// in pre-ES2019 JavaScript, and an html chunk *is* JavaScript. Escaping them
// everywhere costs nothing (JSON parsers read `\u2028` back as the same
// character) and means no transport ever carries them raw.
//
// The escape runs where a payload is serialised (`stringify` below, once
// per `send` and once per broadcast, whatever its audience), so every
// text in an outbox is already safe and a chunk is only ever copied,
// never scanned.
//
// > **Note (speed):** the test is two `indexOf` calls, not a regular
// > expression. V8 answers `indexOf` at once for a string with no
// > character above U+00FF, which cannot hold either separator, where the
// > expression scanned the whole text: 2.7 µs for a 4 KB payload.
const LINE_SEPARATORS = /[\u2028\u2029]/g;

/**
 * JSON.stringify with line separators escaped.
 * @throws TypeError - if `value` has no JSON form.
 */
export function stringify(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new TypeError('browserChannel: cannot send a value that has no JSON form');
  }
  return escapeLineSeparators(json);
}

// `["noop"]` is the array the server says when it has nothing else to
// say: a heartbeat. The back channel sends it, and recovery knows it on
// sight, so that heartbeats are neither saved nor replayed.
/** The JSON text of the heartbeat array. */
export const NOOP_JSON = '["noop"]';

/** `json` with U+2028 and U+2029 written as `\u2028` and `\u2029`. */
function escapeLineSeparators(json: string): string {
  if (json.indexOf('\u2028') === -1 && json.indexOf('\u2029') === -1) return json;
  return json.replace(LINE_SEPARATORS, lineSeparatorEscape);
}

function lineSeparatorEscape(char: string): string {
  return char === '\u2028' ? '\\u2028' : '\\u2029';
}

// ## Text inside a script element
//
// Anything placed in a `<script>` must be unable to close it (`</script>`),
// open an HTML comment (`<!--`), or start an entity. 2.1.0 JSON-encoded
// messages but left `<` alone, so a chat message `</script><script>…` ran
// on the server's origin. Here the JSON string literal has `<`, `>` and `&`
// replaced by their `\uXXXX` escapes: the browser's HTML parser sees none of
// them, and the JavaScript engine turns them back into the same characters.
const SCRIPT_UNSAFE = /[<>&\u2028\u2029]/g;

/** A JavaScript string literal for `text` that is safe inside an HTML `<script>` element. */
export function scriptString(text: string): string {
  return JSON.stringify(text).replace(SCRIPT_UNSAFE, unicodeEscape);
}

function unicodeEscape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

// ## One framing per transport
//
// A `Framing` turns what the session wants to say into the text that goes
// on the wire. The session and the test handler never look at `TYPE`
// themselves; they ask for the framing once per response and use it.
/** One framed chunk as it goes on the wire, and its length in characters. */
export interface FramedChunk {
  /** Text, or for a big chunk the same text already encoded as UTF-8. */
  readonly data: string | Buffer;
  /** Its length in UTF-16 code units, the unit the protocol counts in. */
  readonly chars: number;
  /**
   * For a Buffer chunk that holds payloads of the session's own: where each
   * payload lies in `data`, `[start, end]` byte offsets in order.
   */
  readonly spans?: readonly number[];
}

/** How one back-channel response frames its chunks. */
export interface Framing {
  /** The `Content-Type` of the response. */
  readonly contentType: string;
  /** Text written right after the headers. */
  open(): string;
  /** One chunk of server arrays, given as the pieces of its JSON text. */
  chunk(json: ChunkJson): FramedChunk;
  /** Unframed test-phase text (`11111`, `2`). */
  raw(text: string): string;
  /** Text written just before the response ends. */
  close(): string;
}

// ### xmlhttp
//
// Chunks carry a trailing newline inside their counted length, as 2.1.0
// wrote them, so captures from either server read the same.
const XMLHTTP: Framing = Object.freeze({
  contentType: CONTENT_TYPE.text,
  open: () => '',
  chunk: xmlhttpChunk,
  raw: (text: string) => text,
  close: () => '',
});

// A chunk is usually small, and joining its pieces into one string is
// the cheapest way to make it. A big one, a backlog or fifty
// 4 KB messages, is another matter: V8 keeps a string over about 128 KB
// in a space of its own, where each one costs far more to make and soon
// to collect, and the joined text would then be copied once more into
// UTF-8 by the write. Past `BUFFER_CHARS` the pieces are encoded once,
// each straight into one Buffer of the exact size.
//
// > **Note (speed):** fifty 4 KB payloads took 27 µs this way against
// > 154 µs joined and then encoded (a micro-benchmark on the bench
// > machine). With the `indexOf` test above, this took the `push 4 KB`
// > benchmark from 24.3 to 17.4 µs of server CPU per message.
const BUFFER_CHARS = 32 * 1024;

// Payloads sit at the odd places of `pieces`, between the id prefixes.
// When the outbox asks (`owned`), their byte offsets are noted as they
// are written, so it can keep them as slices of this Buffer (`outbox.ts`).
function xmlhttpChunk({ pieces, chars, owned }: ChunkJson): FramedChunk {
  const head = `${chars + 1}\n`;
  const framed = head.length + chars + 1;
  if (chars < BUFFER_CHARS) return { data: `${head}${pieces.join('')}\n`, chars: framed };
  let bytes = head.length + 1;
  for (const piece of pieces) bytes += Buffer.byteLength(piece);
  const data = Buffer.allocUnsafe(bytes);
  const spans: number[] | undefined = owned ? [] : undefined;
  let offset = data.write(head, 0, 'latin1');
  for (let index = 0; index < pieces.length; index++) {
    const start = offset;
    offset += data.write(pieces[index]!, offset);
    if (spans !== undefined && index % 2 === 1) spans.push(start, offset);
  }
  data.write('\n', offset, 'latin1');
  return { data, chars: framed, spans };
}

/** `data` followed by `text`, whichever form `data` is in. */
export function appendText(data: string | Buffer, text: string): string | Buffer {
  if (text === '') return data;
  return typeof data === 'string' ? data + text : Buffer.concat([data, Buffer.from(text)]);
}

// ### html
//
// The document first sets `document.domain` when the client passed
// `DOMAIN` (the handler has already checked it is a hostname), then adds
// one script per chunk, and finally calls `parent.d()` to say "done".
// Old Internet Explorer renders nothing of a streaming document until it
// has about a kilobyte, so the first chunk is followed by that much padding.
const IE_PADDING = `<!--${' '.repeat(1024)}-->\n`;

function htmlFraming(domain: string | null): Framing {
  let padded = false;
  const script = (call: string): string => `<script>try{${call}}catch(e){}</script>\n`;
  return {
    contentType: CONTENT_TYPE.html,
    open: () => '<html><body>' + (domain ? script(`document.domain=${scriptString(domain)};`) : ''),
    chunk(json: ChunkJson) {
      let text = script(`parent.m(${scriptString(`${json.pieces.join('')}\n`)})`);
      if (!padded) text += IE_PADDING;
      padded = true;
      return { data: text, chars: text.length };
    },
    raw: (text: string) => script(`parent.m(${scriptString(text)})`),
    close: () => script('parent.d()'),
  };
}

/**
 * Picks the framing for a back-channel or test response.
 * @param type - the request's `TYPE`: `html` selects script chunks, anything else length prefixes.
 * @param domain - a validated `DOMAIN` for the html transport, or null.
 */
export function framingFor(type: string | undefined, domain: string | null = null): Framing {
  return type === 'html' ? htmlFraming(domain) : XMLHTTP;
}
