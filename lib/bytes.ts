/**
 * Byte helpers shared by every wire codec: concatenation and big-endian
 * integers. Pure functions, no I/O; safe in a browser.
 * @module
 */

/** Bytes backed by a plain ArrayBuffer: what WebCrypto accepts (TS 6 typing). */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Concatenates byte arrays into one new array. */
export function concat(...parts: Uint8Array[]): Bytes {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Encodes a string as UTF-8 bytes. */
export function utf8(s: string): Bytes {
  return new TextEncoder().encode(s);
}

/** Big-endian 16-bit encoding of `n` (0 ≤ n < 2^16). */
export function u16(n: number): Bytes {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n);
  return b;
}

/** Big-endian 32-bit encoding of `n` (0 ≤ n < 2^32). */
export function u32(n: number): Bytes {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** Big-endian 64-bit encoding of `n` (0 ≤ n < 2^64). */
export function u64(n: bigint): Bytes {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return b;
}

/** A DataView over exactly the bytes of `b` (respects byteOffset). */
export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Equality of two public byte strings. Not constant-time: never use it on
 * secrets (MACs are checked with `crypto.subtle.verify`).
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Equality of two byte strings of equal length in time independent of their
 * contents (XOR-accumulate; no early exit): for MAC tags computed in JS.
 * Unequal lengths return false at once (lengths are public).
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Lower-case hex of `b`. */
export function hex(b: Uint8Array): string {
  return b.toHex();
}

/** SHA-256 of the concatenation of `parts`. */
export async function sha256(...parts: Uint8Array[]): Promise<Bytes> {
  const data = concat(...parts);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

/**
 * The index of the first `byte` in `buf` at or after `from`, or −1: as
 * `buf.indexOf(byte, from)` for 0 ≤ `from` (same result), four bytes per
 * step over the aligned words (SWAR: a word holds the byte iff `x = w ^
 * byte×0x01010101` has a zero byte, `(x − 0x01…) & ~x & 0x80…` ≠ 0):
 * ~2× faster than V8's `TypedArray.prototype.indexOf` on 64 KiB (a newline
 * at the end of a 60 KiB line).
 */
export function indexOfByte(buf: Uint8Array, byte: number, from = 0): number {
  const n = buf.length;
  let i = Math.max(0, from);
  if (i >= n) return -1;
  for (const head = Math.min(n, i + (-(buf.byteOffset + i) & 3)); i < head;) {
    if (buf[i] === byte) return i;
    i++;
  }
  const words = (n - i) >>> 2;
  if (words > 0) {
    const w32 = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    const pattern = byte * 0x01010101;
    for (let k = 0; k < words; k++) {
      const x = w32[k] ^ pattern;
      if (((x - 0x01010101) & ~x & 0x80808080) !== 0) {
        for (let j = i + 4 * k;; j++) if (buf[j] === byte) return j;
      }
    }
    i += 4 * words;
  }
  for (; i < n; i++) if (buf[i] === byte) return i;
  return -1;
}

/** The index of the last `byte` in `buf`, or −1: as `buf.lastIndexOf(byte)`, four bytes per step as {@link indexOfByte}. */
export function lastIndexOfByte(buf: Uint8Array, byte: number): number {
  let i = buf.length - 1;
  for (const stop = i - ((buf.byteOffset + i + 1) & 3); i > stop && i >= 0;) {
    if (buf[i] === byte) return i;
    i--;
  }
  const words = (i + 1) >>> 2;
  if (words > 0) {
    const start = i + 1 - 4 * words;
    const w32 = new Int32Array(buf.buffer, buf.byteOffset + start, words);
    const pattern = byte * 0x01010101;
    for (let k = words - 1; k >= 0; k--) {
      const x = w32[k] ^ pattern;
      if (((x - 0x01010101) & ~x & 0x80808080) !== 0) {
        for (let j = start + 4 * k + 3;; j--) if (buf[j] === byte) return j;
      }
    }
    i = start - 1;
  }
  for (; i >= 0; i--) if (buf[i] === byte) return i;
  return -1;
}
