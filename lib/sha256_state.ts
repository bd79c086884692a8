/**
 * Incremental SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) in plain
 * JavaScript, for the handshake's transcript and key schedule on Deno
 * (lib/deno/node_primitives.ts): the transcript absorbs each message once and
 * forks its state for every transcript hash, HKDF and the key-confirmation
 * MACs are HMACs of ≤ 64 bytes. A native hasher costs a `node:crypto` object
 * per fork and per digest, and each typed array ~0.5 µs in Deno 2.9.6: here
 * the state is eight numbers and the unabsorbed bytes of a block in plain
 * arrays, so a fork allocates no typed array, and a digest one (its output).
 *
 * Running time depends only on the lengths of the inputs (no branch or table
 * index depends on their bytes), so HMAC may be keyed with handshake secrets;
 * {@link hmacSha256} and {@link HmacKey.wipe} zero what the key touched.
 * Checked against `node:crypto` (tests/sha256_state_test.ts).
 * @module
 */

import type { Bytes } from "./bytes.ts";
import type { Sha256State } from "./primitives.ts";
import { K, messageSchedule } from "./sha256.ts";

/** Initial hash value (FIPS 180-4 §5.3.3). */
const H0 = [
  0x6a09e667,
  0xbb67ae85 | 0,
  0x3c6ef372,
  0xa54ff53a | 0,
  0x510e527f,
  0x9b05688c | 0,
  0x1f83d9ab,
  0x5be0cd19,
];

/** Message schedule and the block assembled from a state's tail: one each, reused (synchronous). */
const W = new Int32Array(64);
const BLOCK = new Uint8Array(64);

/** One compression of the 64-byte block of `b` at `o` into the chaining value `s`. */
function compress(s: number[], b: Uint8Array, o: number): void {
  const w = W;
  messageSchedule(w, b, o);
  let a = s[0] | 0, b1 = s[1] | 0, c = s[2] | 0, d = s[3] | 0;
  let e = s[4] | 0, f = s[5] | 0, g = s[6] | 0, h = s[7] | 0;
  for (let i = 0; i < 64; i++) {
    const e1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^
      ((e >>> 25) | (e << 7));
    const t1 = (h + e1 + (g ^ (e & (f ^ g))) + K[i] + w[i]) | 0;
    const a0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^
      ((a >>> 22) | (a << 10));
    const t2 = (a0 + ((a & b1) | (c & (a | b1)))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b1;
    b1 = a;
    a = (t1 + t2) | 0;
  }
  s[0] = (s[0] + a) | 0;
  s[1] = (s[1] + b1) | 0;
  s[2] = (s[2] + c) | 0;
  s[3] = (s[3] + d) | 0;
  s[4] = (s[4] + e) | 0;
  s[5] = (s[5] + f) | 0;
  s[6] = (s[6] + g) | 0;
  s[7] = (s[7] + h) | 0;
}

/** A block's worth of zeros: the pending bytes of a fresh state. */
const ZEROS: number[] = new Array(64).fill(0);

/** An incremental SHA-256 whose {@link Sha256Js.copy} is cheap (see the module doc). */
export class Sha256Js implements Sha256State {
  /** Chaining value. */
  #h: number[];
  /** Absorbed bytes not yet compressed: the first `#length % 64` of these 64. */
  #block: number[];
  /** Bytes absorbed in total. */
  #length: number;

  constructor(h: number[] = H0.slice(), block = ZEROS.slice(), length = 0) {
    this.#h = h;
    this.#block = block;
    this.#length = length;
  }

  /** Absorbs `data`; returns this state. */
  update(data: Uint8Array): this {
    const n = data.length, block = this.#block, h = this.#h;
    let used = this.#length % 64, o = 0;
    this.#length += n;
    if (used > 0) {
      const take = Math.min(64 - used, n);
      for (; o < take; o++) block[used++] = data[o];
      if (used < 64) return this;
      for (let i = 0; i < 64; i++) BLOCK[i] = block[i];
      compress(h, BLOCK, 0);
    }
    for (; o + 64 <= n; o += 64) compress(h, data, o);
    for (let i = 0; o < n; i++, o++) block[i] = data[o];
    return this;
  }

  /** An independent copy of this state. */
  copy(): Sha256Js {
    return new Sha256Js(this.#h.slice(), this.#block.slice(), this.#length);
  }

  /** SHA-256 of everything absorbed (32 bytes); this state must not be used afterwards. */
  digest(): Bytes {
    return this.digestWith([]);
  }

  /**
   * SHA-256 of everything absorbed followed by `parts` (32 bytes), on the
   * shared scratch state: this state is unchanged, and nothing but the
   * output is allocated.
   */
  digestWith(parts: readonly Uint8Array[]): Bytes {
    const t = T;
    for (let i = 0; i < 8; i++) t[i] = this.#h[i];
    let used = this.#length % 64, total = this.#length;
    for (let i = 0; i < used; i++) BLOCK[i] = this.#block[i];
    for (const data of parts) {
      const n = data.length;
      total += n;
      let o = 0;
      if (used > 0) {
        const take = Math.min(64 - used, n);
        for (; o < take; o++) BLOCK[used++] = data[o];
        if (used < 64) continue;
        compress(t, BLOCK, 0);
        used = 0;
      }
      for (; o + 64 <= n; o += 64) compress(t, data, o);
      for (; o < n; o++) BLOCK[used++] = data[o];
    }
    const out = new Uint8Array(32);
    padAndFinish(t, used, total, out);
    return out;
  }
}

/**
 * Pads the `used` bytes already in BLOCK (FIPS 180-4 §5.1.1: 0x80, zeros,
 * the bit length of all `total` bytes as u64), compresses into `h` and
 * writes the digest into `out`.
 */
function padAndFinish(
  h: number[],
  used: number,
  total: number,
  out: Uint8Array,
): void {
  BLOCK[used] = 0x80;
  BLOCK.fill(0, used + 1);
  if (used >= 56) {
    compress(h, BLOCK, 0);
    BLOCK.fill(0);
  }
  const hi = Math.floor(total / 0x20000000), lo = (total << 3) >>> 0;
  BLOCK[56] = hi >>> 24;
  BLOCK[57] = hi >>> 16;
  BLOCK[58] = hi >>> 8;
  BLOCK[59] = hi;
  BLOCK[60] = lo >>> 24;
  BLOCK[61] = lo >>> 16;
  BLOCK[62] = lo >>> 8;
  BLOCK[63] = lo;
  compress(h, BLOCK, 0);
  for (let i = 0; i < 8; i++) {
    const v = h[i];
    out[4 * i] = v >>> 24;
    out[4 * i + 1] = v >>> 16;
    out[4 * i + 2] = v >>> 8;
    out[4 * i + 3] = v;
  }
}

/**
 * Hashes `data` as the continuation of the chaining value `h` after `before`
 * bytes (a multiple of 64) and writes the digest into `out`; `h` is
 * overwritten. `data` is read before `out` is written (they may overlap).
 */
function finishFrom(
  h: number[],
  data: Uint8Array,
  before: number,
  out: Uint8Array,
): void {
  const n = data.length;
  let o = 0;
  for (; o + 64 <= n; o += 64) compress(h, data, o);
  const r = n - o;
  for (let i = 0; i < r; i++) BLOCK[i] = data[o + i];
  padAndFinish(h, r, before + n, out);
}

/** Working chaining value of {@link HmacKey.mac} and {@link hmacSha256}: one, reused (synchronous). */
const T = H0.slice();

/** Sets `h` to the chaining value after one block of `key` (≤ 64 bytes, zero-padded) XOR `x`. */
function padState(h: number[], key: Uint8Array, x: number): number[] {
  for (let i = 0; i < key.length; i++) BLOCK[i] = key[i] ^ x;
  BLOCK.fill(x, key.length);
  for (let i = 0; i < 8; i++) h[i] = H0[i];
  compress(h, BLOCK, 0);
  return h;
}

/** HMAC's inner then outer hash of `data` from the two pad states (RFC 2104); zeroes the scratch. */
function hmacFrom(inner: number[], outer: number[], data: Uint8Array): Bytes {
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) T[i] = inner[i];
  finishFrom(T, data, 64, out);
  for (let i = 0; i < 8; i++) T[i] = outer[i];
  finishFrom(T, out, 64, out);
  T.fill(0);
  W.fill(0);
  BLOCK.fill(0);
  return out;
}

/** Pad states of {@link hmacSha256}: reused (synchronous). */
const INNER = H0.slice(), OUTER = H0.slice();

/**
 * An HMAC-SHA256 key (RFC 2104; a key over 64 bytes is hashed first) with
 * its two padded blocks compressed once: each {@link HmacKey.mac} of data up
 * to 55 bytes costs two compressions. {@link HmacKey.wipe} zeroes the
 * key-derived states.
 */
export class HmacKey {
  readonly #inner: number[] = [];
  readonly #outer: number[] = [];

  constructor(key: Uint8Array) {
    const k = key.length > 64 ? new Sha256Js().update(key).digest() : key;
    padState(this.#inner, k, 0x36);
    padState(this.#outer, k, 0x5c);
    if (k !== key) k.fill(0);
    W.fill(0);
    BLOCK.fill(0);
  }

  /** HMAC of `data` (32 bytes). */
  mac(data: Uint8Array): Bytes {
    return hmacFrom(this.#inner, this.#outer, data);
  }

  /** Zeroes the key-derived states; the key cannot be used afterwards. */
  wipe(): void {
    this.#inner.fill(0);
    this.#outer.fill(0);
  }
}

/** HMAC-SHA256 of `data` with `key` (RFC 2104): a {@link HmacKey} used once, without the object. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Bytes {
  const k = key.length > 64 ? new Sha256Js().update(key).digest() : key;
  padState(INNER, k, 0x36);
  padState(OUTER, k, 0x5c);
  if (k !== key) k.fill(0);
  const tag = hmacFrom(INNER, OUTER, data);
  INNER.fill(0);
  OUTER.fill(0);
  return tag;
}
