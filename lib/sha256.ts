/**
 * SHA-256 (FIPS 180-4) in plain JavaScript, synchronous, for short inputs:
 * the hash chain hashes one short step per message (45 bytes + the body),
 * where a native call costs more in call and allocation overhead than the
 * compression itself (`node:crypto` `hash()` of 301 bytes: ~4 µs and a
 * native hasher object, a buffer and a GC-traced wrapper per call; this:
 * ~3 µs and one 32-byte array — the rounds unrolled by eight and the tail
 * copied by hand took ~15 % off the earlier ~3.5 µs, 5 compressions per
 * step). Longer inputs belong to native code (~1 GB/s there against
 * ~130–160 MB/s here). Not constant-time, and needs not be:
 * it hashes public chain inputs, never a secret. Checked against
 * `node:crypto` at every length up to 2 KiB (tests/sha256_test.ts).
 * @module
 */

import type { Bytes } from "./bytes.ts";

/** Round constants (FIPS 180-4 §4.2.2): the first 32 bits of the fractional parts of the cube roots of the first 64 primes; lib/sha256_state.ts uses them too. */
export const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/** Initial hash value: the first 32 bits of the fractional parts of the square roots of the first 8 primes. */
const H0 = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** Message schedule, state and the padded last block(s): reused (one hash at a time, synchronous). */
const W = new Int32Array(64);
const S = new Int32Array(8);
const TAIL = new Uint8Array(128);

/** The message schedule W[0..63] of the 64-byte block of `p` at `o` (FIPS 180-4 §6.2.2 step 1); lib/sha256_state.ts uses it too. */
export function messageSchedule(w: Int32Array, p: Uint8Array, o: number): void {
  for (let i = 0; i < 16; i++, o += 4) {
    w[i] = (p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15], y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (s0 + w[i - 7] + s1 + w[i - 16]) | 0;
  }
}

/** One compression of the 64-byte block of `p` at `o` into S. */
function compress(p: Uint8Array, o: number): void {
  const w = W;
  messageSchedule(w, p, o);
  const s = S;
  let a = s[0],
    b = s[1],
    c = s[2],
    d = s[3],
    e = s[4],
    f = s[5],
    g = s[6],
    h = s[7];
  let t1 = 0;
  // Eight rounds per iteration, the working variables renamed instead of
  // shifted (a…h of round i + 1 are h, a…g of round i): no moves.
  for (let i = 0; i < 64; i += 8) {
    t1 = (h +
      (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^
        ((e >>> 25) | (e << 7))) +
      (g ^ (e & (f ^ g))) + K[i] + w[i]) | 0;
    d = (d + t1) | 0;
    h = (t1 +
      (((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^
        ((a >>> 22) | (a << 10))) +
      ((a & b) | (c & (a | b)))) | 0;
    t1 = (g +
      (((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^
        ((d >>> 25) | (d << 7))) +
      (f ^ (d & (e ^ f))) + K[i + 1] + w[i + 1]) | 0;
    c = (c + t1) | 0;
    g = (t1 +
      (((h >>> 2) | (h << 30)) ^ ((h >>> 13) | (h << 19)) ^
        ((h >>> 22) | (h << 10))) +
      ((h & a) | (b & (h | a)))) | 0;
    t1 = (f +
      (((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^
        ((c >>> 25) | (c << 7))) +
      (e ^ (c & (d ^ e))) + K[i + 2] + w[i + 2]) | 0;
    b = (b + t1) | 0;
    f = (t1 +
      (((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^
        ((g >>> 22) | (g << 10))) +
      ((g & h) | (a & (g | h)))) | 0;
    t1 = (e +
      (((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^
        ((b >>> 25) | (b << 7))) +
      (d ^ (b & (c ^ d))) + K[i + 3] + w[i + 3]) | 0;
    a = (a + t1) | 0;
    e = (t1 +
      (((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^
        ((f >>> 22) | (f << 10))) +
      ((f & g) | (h & (f | g)))) | 0;
    t1 = (d +
      (((a >>> 6) | (a << 26)) ^ ((a >>> 11) | (a << 21)) ^
        ((a >>> 25) | (a << 7))) +
      (c ^ (a & (b ^ c))) + K[i + 4] + w[i + 4]) | 0;
    h = (h + t1) | 0;
    d = (t1 +
      (((e >>> 2) | (e << 30)) ^ ((e >>> 13) | (e << 19)) ^
        ((e >>> 22) | (e << 10))) +
      ((e & f) | (g & (e | f)))) | 0;
    t1 = (c +
      (((h >>> 6) | (h << 26)) ^ ((h >>> 11) | (h << 21)) ^
        ((h >>> 25) | (h << 7))) +
      (b ^ (h & (a ^ b))) + K[i + 5] + w[i + 5]) | 0;
    g = (g + t1) | 0;
    c = (t1 +
      (((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^
        ((d >>> 22) | (d << 10))) +
      ((d & e) | (f & (d | e)))) | 0;
    t1 = (b +
      (((g >>> 6) | (g << 26)) ^ ((g >>> 11) | (g << 21)) ^
        ((g >>> 25) | (g << 7))) +
      (a ^ (g & (h ^ a))) + K[i + 6] + w[i + 6]) | 0;
    f = (f + t1) | 0;
    b = (t1 +
      (((c >>> 2) | (c << 30)) ^ ((c >>> 13) | (c << 19)) ^
        ((c >>> 22) | (c << 10))) +
      ((c & d) | (e & (c | d)))) | 0;
    t1 = (a +
      (((f >>> 6) | (f << 26)) ^ ((f >>> 11) | (f << 21)) ^
        ((f >>> 25) | (f << 7))) +
      (h ^ (f & (g ^ h))) + K[i + 7] + w[i + 7]) | 0;
    e = (e + t1) | 0;
    a = (t1 +
      (((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^
        ((b >>> 22) | (b << 10))) +
      ((b & c) | (d & (b | c)))) | 0;
  }
  s[0] = (s[0] + a) | 0;
  s[1] = (s[1] + b) | 0;
  s[2] = (s[2] + c) | 0;
  s[3] = (s[3] + d) | 0;
  s[4] = (s[4] + e) | 0;
  s[5] = (s[5] + f) | 0;
  s[6] = (s[6] + g) | 0;
  s[7] = (s[7] + h) | 0;
}

/** SHA-256 of `data` (32 bytes), computed in JavaScript; meant for short inputs. */
export function sha256Js(data: Uint8Array): Bytes {
  S.set(H0);
  const n = data.length;
  let o = 0;
  for (; o + 64 <= n; o += 64) compress(data, o);
  // Padding (FIPS 180-4 §5.1.1): 0x80, zeros, the bit length as u64. The
  // tail is copied byte by byte (at most 63): cheaper than a subarray + set.
  const r = n - o;
  const end = r < 56 ? 64 : 128;
  const t = TAIL;
  let i = 0;
  for (; i < r; i++) t[i] = data[o + i];
  t[i++] = 0x80;
  for (; i < end - 8; i++) t[i] = 0;
  const hi = Math.floor(n / 0x20000000), lo = (n << 3) >>> 0;
  t[end - 8] = hi >>> 24;
  t[end - 7] = hi >>> 16;
  t[end - 6] = hi >>> 8;
  t[end - 5] = hi;
  t[end - 4] = lo >>> 24;
  t[end - 3] = lo >>> 16;
  t[end - 2] = lo >>> 8;
  t[end - 1] = lo;
  compress(t, 0);
  if (end === 128) compress(t, 64);
  const out = new Uint8Array(32);
  for (let k = 0; k < 8; k++) {
    const v = S[k];
    out[4 * k] = v >>> 24;
    out[4 * k + 1] = v >>> 16;
    out[4 * k + 2] = v >>> 8;
    out[4 * k + 3] = v;
  }
  return out;
}
