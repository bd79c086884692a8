/**
 * Length hiding: every RECORD is padded so that the whole relay frame
 * (relay DATA header 22 + record header 14 + plaintext + GCM tag 16) is a
 * power of two from 256 to 65536 bytes. The relay and the network then learn
 * only the bucket, never the exact body length.
 *
 * bucket(n) = max(256, 2^⌈log2(n + 52)⌉); padded plaintext = bucket − 52.
 * @module
 */

import { BUCKET_OVERHEAD, MAX_BUCKET, MIN_BUCKET } from "./constants.ts";

/** Smallest bucket (whole relay frame length) holding `innerLen` plaintext bytes; throws RangeError beyond 65536. */
export function bucketFor(innerLen: number): number {
  if (!Number.isInteger(innerLen) || innerLen < 0) {
    throw new RangeError("inner length must be a non-negative integer");
  }
  const need = innerLen + BUCKET_OVERHEAD;
  if (need > MAX_BUCKET) {
    throw new RangeError(`inner length ${innerLen} exceeds the largest bucket`);
  }
  let bucket = MIN_BUCKET;
  while (bucket < need) bucket *= 2;
  return bucket;
}

/** Plaintext length after padding `innerLen` bytes of inner plaintext to its bucket. */
export function paddedPlaintextLength(innerLen: number): number {
  return bucketFor(innerLen) - BUCKET_OVERHEAD;
}

/** Whether `plaintextLen` is exactly a padded length (bucket − 52) of some bucket. */
export function isPaddedLength(plaintextLen: number): boolean {
  const bucket = plaintextLen + BUCKET_OVERHEAD;
  return bucket >= MIN_BUCKET && bucket <= MAX_BUCKET &&
    (bucket & (bucket - 1)) === 0;
}
