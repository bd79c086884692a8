/**
 * Big-endian integer reads and writes at an offset inside an existing byte
 * array, without allocating a DataView per call: the record layer does
 * several per packet, and `new DataView` showed up in profiles. Same bytes
 * as `DataView` big-endian accessors (u64 values are taken modulo 2^64, as
 * `setBigUint64` does). Pure functions; safe in a browser.
 * @module
 */

const SCRATCH = new DataView(new ArrayBuffer(8));
const TWO_32 = 0x1_0000_0000;
/** High words below this keep a u64 under 2^53 (exact as a number). */
const SAFE_HI = 0x20_0000;

/** Writes `n` (0 ≤ n < 2^32) big-endian at `offset`. */
export function writeU32(buf: Uint8Array, offset: number, n: number): void {
  buf[offset] = n >>> 24;
  buf[offset + 1] = n >>> 16;
  buf[offset + 2] = n >>> 8;
  buf[offset + 3] = n;
}

/** Reads a big-endian u32 at `offset`. */
export function readU32(buf: Uint8Array, offset: number): number {
  return (buf[offset] * 0x100_0000) +
    ((buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]);
}

/** Writes `n` (u64, modulo 2^64) big-endian at `offset`. */
export function writeU64(buf: Uint8Array, offset: number, n: bigint): void {
  SCRATCH.setBigUint64(0, n);
  writeU32(buf, offset, SCRATCH.getUint32(0));
  writeU32(buf, offset + 4, SCRATCH.getUint32(4));
}

/** Reads a big-endian u64 at `offset`. */
export function readU64(buf: Uint8Array, offset: number): bigint {
  const hi = readU32(buf, offset);
  const lo = readU32(buf, offset + 4);
  // Below 2^53 the value is exact as a number: one BigInt conversion.
  if (hi < SAFE_HI) return BigInt(hi * TWO_32 + lo);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** XORs `n` (u64, modulo 2^64, big-endian) into the 8 bytes at `offset`. */
export function xorU64(buf: Uint8Array, offset: number, n: bigint): void {
  SCRATCH.setBigUint64(0, n);
  for (let i = 0; i < 8; i++) buf[offset + i] ^= SCRATCH.getUint8(i);
}
