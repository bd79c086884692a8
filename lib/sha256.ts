/**
 * SHA-256 (FIPS 180-4) in plain JavaScript, synchronous, for short inputs:
 * the hash chain hashes one short step per message (45 bytes + the body),
 * where a native call costs more in call and allocation overhead than the
 * compression itself (`node:crypto` `hash()` of 301 bytes: ~4 µs and a
 * native hasher object, a buffer and a GC-traced wrapper per call; this:
 * ~3.5 µs and one 32-byte array). Longer inputs belong to native code
 * (~1 GB/s there against ~90 MB/s here). Not constant-time, and needs not be:
 * it hashes public chain inputs, never a secret. Checked against
 * `node:crypto` at every length up to 2 KiB (tests/sha256_test.ts).
 * @module
 */

import type { Bytes } from "./bytes.ts";

/** Round constants: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = new Int32Array([
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

/** One compression of the 64-byte block of `b` at `o` into S. */
function compress(b: Uint8Array, o: number): void {
  const w = W;
  for (let i = 0; i < 16; i++, o += 4) {
    w[i] = (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15], y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^
      (y >>> 10);
    w[i] = (s0 + w[i - 7] + s1 + w[i - 16]) | 0;
  }
  const s = S;
  let a = s[0], b1 = s[1], c = s[2], d = s[3];
  let e = s[4], f = s[5], g = s[6], h = s[7];
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

/** SHA-256 of `data` (32 bytes), computed in JavaScript; meant for short inputs. */
export function sha256Js(data: Uint8Array): Bytes {
  S.set(H0);
  const n = data.length;
  let o = 0;
  for (; o + 64 <= n; o += 64) compress(data, o);
  // Padding (FIPS 180-4 §5.1.1): 0x80, zeros, the bit length as u64.
  const r = n - o;
  const end = r < 56 ? 64 : 128;
  TAIL.fill(0, 0, end);
  TAIL.set(data.subarray(o), 0);
  TAIL[r] = 0x80;
  const hi = Math.floor(n / 0x20000000), lo = (n << 3) >>> 0;
  TAIL[end - 8] = hi >>> 24;
  TAIL[end - 7] = hi >>> 16;
  TAIL[end - 6] = hi >>> 8;
  TAIL[end - 5] = hi;
  TAIL[end - 4] = lo >>> 24;
  TAIL[end - 3] = lo >>> 16;
  TAIL[end - 2] = lo >>> 8;
  TAIL[end - 1] = lo;
  compress(TAIL, 0);
  if (end === 128) compress(TAIL, 64);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const v = S[i];
    out[4 * i] = v >>> 24;
    out[4 * i + 1] = v >>> 16;
    out[4 * i + 2] = v >>> 8;
    out[4 * i + 3] = v;
  }
  return out;
}
