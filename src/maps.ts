// # Maps: decoding what the client sends up the forward channel
//
// Clients send data to the server in POST bodies, as *maps*: flat
// string-to-string dictionaries, numbered from 0 for the life of the
// session. One body carries a run of consecutive maps, form-encoded:
//
// ```text illustrative
// count=2&ofs=7&req0_JSON=%7B%22a%22%3A1%7D&req1_x=3&req1_y=hi
// ```
//
// reads as *two maps, the first of which is map 7*: map 7 is
// `{JSON: '{"a":1}'}` and map 8 is `{x: '3', y: 'hi'}`.
//
// | field | meaning |
// |---|---|
// | `count` | how many maps the body holds |
// | `ofs` | the id of the first of them |
// | `reqN_key` | `key` of the N-th map in this body (N counts from 0) |
// | `reqN_type=_badmap` | the client failed to encode map N; skip it but keep its id |
// | `headers` | WebChannel only: HTTP headers the client could not send as headers |
//
// node-browserchannel also accepts a JSON body, which shares the same map
// ids: `{"ofs": 7, "data": [{"a": 1}, "hi"]}` carries messages 7 and 8.
//
// This module only *decodes*; putting maps in order is the inbox's job
// (`inbox.ts`), and the session delivers them to the app. Decoding is all-or-nothing:
// a body with one bad part is refused whole with a `400`, so a session never
// sees half a request.
/** Forward-channel body decoding: form-encoded maps and JSON bodies. @module */
import { badBody } from './errors.ts';

// ## What decoding produces
/** A map as the client sent it: string keys to string values. */
export type ClientMap = Record<string, string>;

// A map travels to the session as its fields, `[reqN_key, value, …]` in
// the order they came, and becomes a `ClientMap` object only if the
// session has a `map` listener when its turn comes (see `mapOf`). The
// message it carries is read out here, so a session that listens only
// for `message`, as nearly every app does, never pays for the object.
//
// > **Note (speed):** building an object per map (a keyed store per key,
// > and a hidden class per set of keys) was a tenth of a forward map's
// > instructions, for an event few apps listen to.
/** One numbered item of a forward-channel body, ready for delivery. */
export type ForwardItem =
  /** A form-encoded map (as its fields), with the message it carries if it has one. */
  | {
      readonly kind: 'map';
      readonly fields: readonly string[];
      readonly hasMessage: boolean;
      readonly message: unknown;
    }
  /** One element of a JSON body: a message without a map. */
  | { readonly kind: 'json'; readonly message: unknown }
  /** A map the client marked `_badmap`: it only takes up its id. */
  | { readonly kind: 'skip' };

/** A decoded forward-channel body. */
export interface ForwardBatch {
  /** Id of the first item. */
  readonly ofs: number;
  /** The items, in id order starting at `ofs`. */
  readonly items: readonly ForwardItem[];
  /** WebChannel's encoded init headers (`headers=` field), lower-cased names, or null. */
  readonly initHeaders: Record<string, string> | null;
}

// ## Limits
//
// The Closure client never puts more than 1,000 maps in one request
// (`MAX_MAPS_PER_REQUEST_` in `goog.net.BrowserChannel`), so the default
// `maxMapsPerRequest` is 1,000; `maxKeysPerMap` bounds the other
// dimension. Both come from the options.
/** Bounds a decoder enforces. */
export interface DecodeLimits {
  /** Most maps (or JSON messages) in one body. */
  readonly maxMaps: number;
  /** Most keys in one map. */
  readonly maxKeys: number;
}

const UNLIMITED: DecodeLimits = { maxMaps: 1000, maxKeys: Infinity };

// ## Choosing the decoder
//
// The `Content-Type` decides. 2.1.0 compared it with `application/json`
// exactly, so `application/json; charset=utf-8` fell through to the form
// decoder and failed; here only the media type counts.
/**
 * Decodes a forward-channel body.
 * @returns the batch, or null for a body that carries no maps (`count=0`, empty, or `data: []`).
 * @throws ProtocolError - `400 BAD_BODY` naming what is wrong.
 */
export function decodeBody(
  body: string,
  contentType: string | undefined,
  limits: DecodeLimits = UNLIMITED,
): ForwardBatch | null {
  if (mediaType(contentType) === 'application/json')
    return decodeJsonBody(parseJson(body, 'body'), limits);
  if (body === NO_MAPS) return null;
  return decodeJsonMaps(body, limits) ?? decodeForm(formFields(body), limits);
}

// The whole body of every create and of every POST that only
// acknowledges: no maps, nothing to read.
const NO_MAPS = 'count=0';

/** @internal `decodeBody` for a form body without its fast path (for tests). */
export function decodeFormBody(
  body: string,
  limits: DecodeLimits = UNLIMITED,
): ForwardBatch | null {
  return decodeForm(formFields(body), limits);
}

/**
 * Decodes a body that an earlier middleware (such as express's body parsers) already parsed.
 * @throws ProtocolError - `400 BAD_BODY` naming what is wrong.
 */
export function decodeParsedBody(
  body: unknown,
  contentType: string | undefined,
  limits: DecodeLimits = UNLIMITED,
): ForwardBatch | null {
  if (typeof body === 'string') return decodeBody(body, contentType, limits);
  if (mediaType(contentType) === 'application/json') return decodeJsonBody(body, limits);
  if (body === null || typeof body !== 'object') throw badBody('Unreadable body');
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(body)) form.append(key, String(value));
  return decodeForm(flatten(form), limits);
}

// Nearly every body is `application/x-www-form-urlencoded`, so that is
// answered without splitting the header.
function mediaType(contentType: string | undefined): string {
  if (contentType === 'application/x-www-form-urlencoded') return contentType;
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

// ## Reading the form
//
// A form body is `name=value` pairs joined by `&`, with `+` for a space
// and `%XX` escapes of UTF-8 bytes. `URLSearchParams` reads it, but every
// forward request has one, and a hand-written split with
// `decodeURIComponent` on just the parts that hold an escape costs a
// fraction of building one. Where the two could differ (an escape that is
// not valid UTF-8 or a malformed `%`, which `URLSearchParams` keeps or
// replaces with U+FFFD, or text that is not well-formed UTF-16) this
// gives up, returning null, and the body goes through `URLSearchParams`,
// so the result is always what `URLSearchParams` would give.
//
// Fields are kept flat, `[name, value, name, value, …]`, rather than as
// pairs: one array for the whole body instead of one more per field.
/** Form fields in order, flat: names at even indexes, each followed by its value. */
type FormFields = readonly string[];

/** @internal A form body's fields in order, flat, exactly as `URLSearchParams` reads them. */
export function formFields(text: string): string[] {
  return parseForm(text) ?? flatten(new URLSearchParams(text));
}

/** The body's fields in order, or null to let `URLSearchParams` decide. */
function parseForm(text: string): string[] | null {
  if (!(text as WellFormedCheck).isWellFormed()) return null;
  return parseFormDecodedOnce(text) ?? parseFormByParts(text);
}

// ### One decode for the whole body
//
// A forward body is mostly escaped JSON, a `decodeURIComponent` per value,
// and most of what that call costs is the call, not the characters. So
// the body is decoded once, and each value is cut out of the decoded text:
// the fields line up, since only `%26` decodes to an `&` (a body holding
// one goes field by field instead), and a name's decoded length says where
// its value starts. Names seldom hold an escape (`req0_JSON`), so decoding
// each one on its own costs almost nothing.
//
// ```text illustrative
// raw      count=1&ofs=0&req0_JSON=%7B%22a%22%3A1%7D
// decoded  count=1&ofs=0&req0_JSON={"a":1}
// ```
//
// An escape never spans an `&`, so a malformed one fails the whole decode
// exactly when it would fail its own field's, and the body then goes field
// by field too.
//
// > **Note (speed):** this took about a tenth off a forward map's
// > instructions under callgrind (20 maps a body).
function parseFormDecodedOnce(text: string): string[] | null {
  if (text.indexOf('%26') !== -1) return null;
  const decoded = decodeFormPart(text);
  if (decoded === null) return null;
  const fields: string[] = [];
  let start = text.charCodeAt(0) === 0x3f ? 1 : 0; // a leading `?` is ignored
  let from = start; // where the same field starts in `decoded`
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    let next = decoded.indexOf('&', from);
    if (next === -1) next = decoded.length;
    if (end > start) {
      let equals = text.indexOf('=', start);
      if (equals === -1 || equals > end) equals = end;
      const name = decodeFormPart(text.slice(start, equals));
      if (name === null) return null;
      fields.push(name, equals === end ? '' : decoded.slice(from + name.length + 1, next));
    }
    start = end + 1;
    from = next + 1;
  }
  return fields;
}

// ### Field by field
function parseFormByParts(text: string): string[] | null {
  const fields: string[] = [];
  let start = text.charCodeAt(0) === 0x3f ? 1 : 0;
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    if (end > start) {
      let equals = text.indexOf('=', start);
      if (equals === -1 || equals > end) equals = end;
      const name = decodeFormPart(text.slice(start, equals));
      const value = equals === end ? '' : decodeFormPart(text.slice(equals + 1, end));
      if (name === null || value === null) return null;
      fields.push(name, value);
    }
    start = end + 1;
  }
  return fields;
}

function flatten(form: URLSearchParams): string[] {
  const fields: string[] = [];
  for (const [name, value] of form) fields.push(name, value);
  return fields;
}

// `String.prototype.isWellFormed` is in every Node this package supports
// (20 and later), but not in the ES2022 library the types are checked with.
type WellFormedCheck = string & { isWellFormed(): boolean };

function decodeFormPart(part: string): string | null {
  const spaced = part.indexOf('+') === -1 ? part : part.replaceAll('+', ' ');
  if (spaced.indexOf('%') === -1) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return null;
  }
}

// The first value of `name`, as `URLSearchParams.get` gives it.
function field(form: FormFields, name: string): string | null {
  for (let at = 0; at < form.length; at += 2) if (form[at] === name) return form[at + 1]!;
  return null;
}

// ## Form-encoded maps
//
// `count` and `ofs` must be plain non-negative integers: 2.1.0's check
// `isNaN count or isNaN ofs` compiled to `isNaN(count || isNaN(ofs))` and let
// a bad `count` through. Every `reqN_` key must name a map inside `count`.
function decodeForm(form: FormFields, limits: DecodeLimits): ForwardBatch | null {
  const headerBlock = field(form, 'headers');
  const initHeaders = headerBlock !== null ? parseHeaderBlock(headerBlock) : null;
  const countText = field(form, 'count');
  const count = countText !== null ? integer(countText, 'count') : 0;
  if (count > limits.maxMaps) throw badBody(`count is above ${limits.maxMaps} (maxMapsPerRequest)`);
  if (count === 0) return initHeaders ? { ofs: 0, items: [], initHeaders } : null;
  const ofs = integer(field(form, 'ofs') ?? '', 'ofs');
  const maps = collectMaps(form, count, limits.maxKeys);
  return { ofs, items: maps.map(toItem), initHeaders };
}

// Keys look like `req12_name`: the digits pick the map, the rest is the key.
// A map whose keys include `type=_badmap` is one the client could not encode.
// (That is `/^req(\d{1,4})_(.+)$/s`, read a character at a time: this runs
// for every field of every forward request.) Each map's fields come out
// flat, like the form's, and keep their whole form names (`req12_name`):
// the key is cut out only if a `map` listener asks for it.
//
// > **Note (memory):** a map's array is made by its first field, holding
// > exactly that field: an empty array's first `push` reserves room for
// > seventeen elements, and most maps have one key.
function collectMaps(
  form: FormFields,
  count: number,
  maxKeys: number,
): Array<string[] | undefined> {
  const maps: Array<string[] | undefined> = new Array<string[] | undefined>(count).fill(undefined);
  for (let at = 0; at < form.length; at += 2) {
    const name = form[at]!;
    const underscore = mapKeyEnd(name);
    if (underscore === -1) continue;
    const index = digitsValue(name, 3, underscore);
    if (index >= count) throw badBody(`map ${index} is outside count=${count}`);
    const fields = maps[index];
    if ((fields === undefined ? 0 : fields.length) >= 2 * maxKeys)
      throw badBody(`map ${index} has more than ${maxKeys} keys (maxKeysPerMap)`);
    if (fields === undefined) maps[index] = [name, form[at + 1]!];
    else fields.push(name, form[at + 1]!);
  }
  return maps;
}

// The position of the `_` in `req<1 to 4 digits>_<key>`, or -1 if `field`
// is not a map key.
function mapKeyEnd(field: string): number {
  if (!field.startsWith('req')) return -1;
  let at = 3;
  while (at < 7 && isDigit(field.charCodeAt(at))) at++;
  if (at === 3 || field.charCodeAt(at) !== 0x5f || at + 1 >= field.length) return -1;
  return at;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

// What `Number(text.slice(start, end))` gives for those (at most four)
// digits, without making the slice.
function digitsValue(text: string, start: number, end: number): number {
  let value = 0;
  for (let at = start; at < end; at++) value = value * 10 + text.charCodeAt(at) - 0x30;
  return value;
}

// Whether the form name `name`, whose `_` is at `underscore`, names `key`.
function hasKey(name: string, underscore: number, key: string): boolean {
  return name.length === underscore + 1 + key.length && name.startsWith(key, underscore + 1);
}

// ## The usual body, read in one pass
//
// Nearly every forward body a real client sends has one shape: a count,
// an offset, and one `JSON` key per map, numbered in order.
//
// ```text illustrative
// count=2&ofs=7&req0_JSON=%7B%22a%22%3A1%7D&req1_JSON=%5B%5D
// ```
//
// For that shape alone, the fields are read straight off the raw text and
// the values off the body decoded once, and each map's item is made at
// once, without the flat field list and the per-map key scan above. Any
// other body (another key, a map out of order or twice, a `+`, an escape
// in a name, a value that is not JSON or not a plain number) gives null,
// and goes the general way, which decides, and words any error, exactly
// as it always did; this only skips work for bodies it fully understands.
//
// > **Note (speed):** a third of decoding a 20-map body, about 2 µs a
// > request, went into the general path's bookkeeping (`bench/` forward).
function decodeJsonMaps(text: string, limits: DecodeLimits): ForwardBatch | null {
  if (text.indexOf('+') !== -1 || text.indexOf('%26') !== -1) return null;
  if (text.charCodeAt(0) === 0x3f || !(text as WellFormedCheck).isWellFormed()) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(text);
  } catch {
    return null;
  }
  let count = -1;
  let ofs = -1;
  const items: ForwardItem[] = [];
  let start = 0; // a field's start in `text`, and the same field's in `decoded`
  let from = 0;
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    let next = decoded.indexOf('&', from);
    if (next === -1) next = decoded.length;
    if (text.startsWith('req', start)) {
      // `req<index>_JSON=`, with the next index in line and no leading zero.
      const name = jsonKeyName(items.length);
      if (!text.startsWith(name, start) || text.charCodeAt(start + name.length) !== 0x3d)
        return null;
      if (count === -1 || items.length >= count) return null;
      const json = decoded.slice(from + name.length + 1, next);
      let message: unknown;
      try {
        message = JSON.parse(json) as unknown;
      } catch {
        return null;
      }
      items.push({ kind: 'map', fields: [name, json], hasMessage: true, message });
    } else if (count === -1 && text.startsWith('count=', start)) {
      count = plainNumber(text, start + 6, end);
      if (count < 1 || count > limits.maxMaps) return null;
    } else if (ofs === -1 && text.startsWith('ofs=', start)) {
      ofs = plainNumber(text, start + 4, end);
      if (ofs === -1) return null;
    } else return null;
    start = end + 1;
    from = next + 1;
  }
  if (ofs === -1 || items.length !== count) return null;
  return { ofs, items, initHeaders: null };
}

// `req0_JSON`, `req1_JSON`, …: made once each, since every body repeats them.
const JSON_KEY_NAMES: string[] = [];
function jsonKeyName(index: number): string {
  return (JSON_KEY_NAMES[index] ??= `req${index}_JSON`);
}

// The value of the digits between `start` and `end`, or -1 unless there
// are 1 to 15 of them (so the value is exact), as `count` and `ofs` must be.
function plainNumber(text: string, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let value = 0;
  for (let at = start; at < end; at++) {
    const code = text.charCodeAt(at);
    if (!isDigit(code)) return -1;
    value = value * 10 + code - 0x30;
  }
  return value;
}

// ## The map object, for `map` listeners
//
// Built from the fields when a `map` listener is there to take it. A key
// sent twice keeps its last value. A key named `__proto__` would replace
// the map's prototype if assigned with `=`; defining it as an own property
// keeps it plain data.
/** @internal The `ClientMap` of a map's fields (`[reqN_key, value, …]`). */
export function mapOf(fields: readonly string[]): ClientMap {
  const map: ClientMap = {};
  for (let at = 0; at < fields.length; at += 2) {
    const name = fields[at]!;
    const key = name.slice(mapKeyEnd(name) + 1);
    if (key !== '__proto__') map[key] = fields[at + 1]!;
    else Object.defineProperty(map, key, OWN(fields[at + 1]!));
  }
  return map;
}

const NO_FIELDS: readonly string[] = [];

const OWN = (value: string): PropertyDescriptor => {
  return { value, enumerable: true, writable: true, configurable: true };
};

// ## Messages inside maps
//
// Three conventions carry a message in a map, and the session emits it as
// `message` after the map's `map` event:
//
// | key | sent by | message |
// |---|---|---|
// | `JSON` | BCSocket's `send(object)` | the parsed JSON |
// | `__data__` | WebChannel with `sendRawJson` | the parsed JSON |
// | `_S` | BCSocket's `send(string)` | the string itself |
//
// When a map holds more than one, the first row of the table wins, and as
// in the map object, a key sent twice counts with its last value.
// (A map that sent no field at all has none here: `undefined`.)
function toItem(sent: string[] | undefined, index: number): ForwardItem {
  const fields = sent ?? NO_FIELDS;
  let type: string | undefined;
  let json: string | undefined;
  let data: string | undefined;
  let text: string | undefined;
  for (let at = 0; at < fields.length; at += 2) {
    const name = fields[at]!;
    const underscore = mapKeyEnd(name);
    if (hasKey(name, underscore, 'JSON')) json = fields[at + 1];
    else if (hasKey(name, underscore, '__data__')) data = fields[at + 1];
    else if (hasKey(name, underscore, '_S')) text = fields[at + 1];
    else if (hasKey(name, underscore, 'type')) type = fields[at + 1];
  }
  if (type === '_badmap') return { kind: 'skip' };
  let message: unknown;
  if (json !== undefined) message = parseJson(json, 'map', index, 'JSON');
  else if (data !== undefined) message = parseJson(data, 'map', index, '__data__');
  else if (text !== undefined) message = text;
  else return { kind: 'map', fields, hasMessage: false, message: undefined };
  return { kind: 'map', fields, hasMessage: true, message };
}

// ## JSON bodies
//
// ```json
// {"ofs": 7, "data": [{"a": 1}, "hi"]}
// ```
//
// Only that shape is a JSON body. Anything else (`null`, `[]`, a number,
// an object without `ofs` or `data`) is refused with a `400` before the
// session sees it, so the request's `RID` is not used up and the client
// may retry it with a good body. `{"ofs": 7, "data": []}` is a valid
// body with nothing in it.
function decodeJsonBody(body: unknown, limits: DecodeLimits): ForwardBatch | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badBody('JSON body must be an object {ofs, data}');
  }
  const { ofs, data } = body as { ofs?: unknown; data?: unknown };
  if (!Array.isArray(data)) throw badBody('JSON body needs a data array');
  if (data.length > limits.maxMaps) {
    throw badBody(`data holds more than ${limits.maxMaps} messages (maxMapsPerRequest)`);
  }
  if (typeof ofs !== 'number' || !Number.isSafeInteger(ofs) || ofs < 0) {
    throw badBody('ofs must be a non-negative integer');
  }
  if (data.length === 0) return null;
  const items = data.map((message: unknown): ForwardItem => ({ kind: 'json', message }));
  return { ofs, items, initHeaders: null };
}

// ## WebChannel's encoded headers
//
// With `encodeInitMessageHeaders`, a WebChannel client puts the headers it
// wants on the handshake (often an `Authorization`) into the body instead,
// one `Name:Value` per line, so the browser need not send a CORS preflight:
//
// ```text illustrative
// headers=X-Goog-Api-Client%3Agl-js%2F%0D%0AAuthorization%3ABearer%20abc%0D%0A&count=0
// ```
//
// Names come back lower-cased, as `node:http` spells `req.headers`. The same
// block arrives in a URL parameter with `httpHeadersOverwriteParam`.
const MAX_HEADER_LINES = 100;

/**
 * Parses a `Name:Value\r\n` header block.
 * @throws ProtocolError - `400 BAD_BODY` for a line without a colon or too many lines.
 */
export function parseHeaderBlock(block: string): Record<string, string> {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  const lines = block.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (lines.length > MAX_HEADER_LINES) {
    throw badBody(`more than ${MAX_HEADER_LINES} encoded headers`);
  }
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw badBody('encoded header line without a name');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

// ## Small parsers
function integer(text: string, name: string): number {
  const value = plainNumber(text, 0, text.length);
  if (value === -1) throw badBody(`${name} must be a non-negative integer`);
  return value;
}

// What failed to parse is named only when it fails: a label made per map
// would be a string built for every map of every request.
function parseJson(text: string, what: string, index = -1, key = ''): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const where = index === -1 ? what : `${what} ${index} ${key}`;
    throw badBody(`${where} is not valid JSON`);
  }
}
