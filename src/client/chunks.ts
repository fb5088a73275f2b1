// # Chunks: reading the back channel as it arrives
//
// The back channel is one long response that the server writes into a
// chunk at a time, each chunk a length, a newline, and that many
// characters of JSON:
//
// ```text
// 28
// [[4,["hello"]],[5,{"a":1}]]
// 15
// [[6,["noop"]]]
// ```
//
// The network cuts this text wherever it likes: a read may end in the
// middle of a length, of a newline, or of the JSON. A `ChunkReader` keeps
// what it has not used yet and hands out each chunk once it is whole.
// Lengths count UTF-16 code units, the same unit as JavaScript's
// `string.length`, so the reader counts characters after decoding, never
// bytes.
/** Incremental parser for length-prefixed back-channel chunks. @module */

// ## The reader
/** Splits streamed text into whole chunks, however the network cut it. */
export class ChunkReader {
  /** Text received but not yet part of a whole chunk. */
  private pending = '';

  // Every call returns the chunks completed by this piece of text, parsed.
  // A chunk whose length line is not a number, or whose text is not JSON,
  // means the stream is corrupt: that throws, and the caller drops the
  // response and opens a new one.
  /**
   * Adds received text and returns each chunk it completes, parsed as JSON.
   * @throws Error - when the stream is not length-prefixed JSON.
   */
  push(text: string): unknown[] {
    this.pending += text;
    const chunks: unknown[] = [];
    for (;;) {
      const newline = this.pending.indexOf('\n');
      if (newline === -1) break;
      const length = Number(this.pending.slice(0, newline));
      if (!Number.isInteger(length) || length < 0)
        throw new Error(`bad chunk length ${JSON.stringify(this.pending.slice(0, newline))}`);
      if (this.pending.length < newline + 1 + length) break;
      chunks.push(JSON.parse(this.pending.slice(newline + 1, newline + 1 + length)));
      this.pending = this.pending.slice(newline + 1 + length);
    }
    return chunks;
  }

  /** Whether text is left over that is not a whole chunk. */
  get partial(): boolean {
    return this.pending.length > 0;
  }
}
