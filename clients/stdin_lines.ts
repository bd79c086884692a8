/**
 * Splits the scripted clients' stdin into lines without a string per
 * message: a line that is valid UTF-8 is handed over as its bytes (the
 * message body as sent), any other line decoded with U+FFFD replacements —
 * exactly the text a streaming `TextDecoder` and a split on "\n" gave
 * (a byte-order mark at the very start is dropped, a truncated character at
 * the end of a line or of the input becomes U+FFFD). Sans-I/O: bytes in,
 * lines out.
 * @module
 */

import { isUtf8 } from "node:buffer";
import { concat, indexOfByte, lastIndexOfByte } from "../lib/bytes.ts";

const NEWLINE = 0x0a;
/** Decodes one line: a BOM inside the input is text (only the input's first one is dropped, by StdinLines). */
const DECODER = new TextDecoder("utf-8", { ignoreBOM: true });
const BOM = [0xef, 0xbb, 0xbf] as const;

/** One input line: its bytes (valid UTF-8) or its decoded text (it was not). */
export type InputLine = Uint8Array | string;

/** Incremental stdin line splitter; see the module doc. */
export class StdinLines {
  /** Bytes of the line not yet ended. */
  #rest: Uint8Array = new Uint8Array(0);
  /** Whether the start of the input was checked for a byte-order mark. */
  #started = false;

  /**
   * The lines that `chunk` completes, in order. `chunk` is only read during
   * the call (the caller may reuse it): the lines returned are copies (the
   * lines of one call may be views of one buffer: a line kept keeps that
   * buffer, at most one chunk, alive).
   */
  push(chunk: Uint8Array): InputLine[] {
    let data = chunk;
    if (!this.#started) {
      data = concat(this.#rest, chunk);
      this.#rest = new Uint8Array(0);
      const nl = indexOfByte(data, NEWLINE);
      if (data.length < BOM.length && nl < 0) {
        this.#rest = data; // too short to tell yet
        return [];
      }
      this.#started = true;
      if (BOM.every((b, i) => data[i] === b)) data = data.subarray(BOM.length);
    }
    // Newlines found four bytes per step (lib/bytes.ts): a 64 KiB read of
    // 60 KiB lines is scanned about once, ~2× faster than indexOf.
    const end = lastIndexOfByte(data, NEWLINE);
    if (end < 0) {
      this.#rest = concat(this.#rest, data);
      return [];
    }
    const lines: InputLine[] = [];
    const at = indexOfByte(data, NEWLINE);
    lines.push(line(concat(this.#rest, data.subarray(0, at))));
    // The other complete lines: one validation and one copy for all of
    // them, each line a view of that copy (no buffer per line: a 256-byte
    // line is a malloc'd backing store the GC tracks and sweeps).
    const region = data.slice(at + 1, end + 1);
    const valid = isUtf8(region.subarray(0, region.length - 1));
    for (let from = 0; from < region.length;) {
      const next = indexOfByte(region, NEWLINE, from);
      const bytes = region.subarray(from, next);
      lines.push(valid ? bytes : line(bytes));
      from = next + 1;
    }
    this.#rest = data.slice(end + 1);
    return lines;
  }

  /** The last line when the input did not end with a newline (undefined when it did). */
  end(): string | undefined {
    const rest = this.#rest;
    this.#rest = new Uint8Array(0);
    let bytes = rest;
    if (!this.#started && BOM.every((b, i) => rest[i] === b)) {
      bytes = rest.subarray(BOM.length);
    }
    this.#started = true;
    return bytes.length > 0 ? DECODER.decode(bytes) : undefined;
  }
}

/** A line's bytes when they are valid UTF-8, else its decoded text. */
function line(bytes: Uint8Array): InputLine {
  return isUtf8(bytes) ? bytes : DECODER.decode(bytes);
}
