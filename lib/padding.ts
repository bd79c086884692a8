/**
 * Length hiding: every RECORD is padded so that the whole relay frame
 * (relay DATA header 22 + record header 14 + plaintext + GCM tag 16) is one
 * of a fixed set of bucket sizes from 256 to 65536 bytes. The relay and the
 * network then learn only the bucket, never the exact length.
 *
 * Buckets (PROTOCOL.md §2.2.3), n = inner length + 52:
 * - n ≤ 1024: the powers of two 256, 512, 1024;
 * - n > 1024: n rounded up to a multiple of 2^(⌈log2 n⌉ − 5), i.e. 16 steps
 *   per power of two (1088, 1152, …, 2048, 2176, …, 63488, 65536).
 *
 * Above 1 KiB a frame is then at most 1/16 larger than its content, so a
 * body of 1 KiB or more costs at most 1.125 wire bytes per body byte; the
 * relay learns such a frame's length to within 1/16 of its power of two.
 * @module
 */

import {
  BUCKET_OVERHEAD,
  BUCKET_STEPS_PER_OCTAVE,
  FINE_BUCKETS_FROM,
  MAX_BUCKET,
  MIN_BUCKET,
} from "./constants.ts";

/** log2 of the steps per octave (16 → 4). */
const STEP_SHIFT = Math.log2(BUCKET_STEPS_PER_OCTAVE);

/** Smallest bucket (whole relay frame length) holding a frame of `need` bytes. */
function bucketOfFrame(need: number): number {
  let pow = MIN_BUCKET;
  while (pow < need) pow *= 2;
  if (pow <= FINE_BUCKETS_FROM) return pow;
  // need in (pow/2, pow]: steps of pow / 2 / 16 = pow / 32.
  const step = pow >> (STEP_SHIFT + 1);
  return Math.ceil(need / step) * step;
}

/** Smallest bucket (whole relay frame length) holding `innerLen` plaintext bytes; throws RangeError beyond 65536. */
export function bucketFor(innerLen: number): number {
  if (!Number.isInteger(innerLen) || innerLen < 0) {
    throw new RangeError("inner length must be a non-negative integer");
  }
  const need = innerLen + BUCKET_OVERHEAD;
  if (need > MAX_BUCKET) {
    throw new RangeError(`inner length ${innerLen} exceeds the largest bucket`);
  }
  return bucketOfFrame(need);
}

/** Plaintext length after padding `innerLen` bytes of inner plaintext to its bucket. */
export function paddedPlaintextLength(innerLen: number): number {
  return bucketFor(innerLen) - BUCKET_OVERHEAD;
}

/** Whether `plaintextLen` is exactly a padded length (bucket − 52) of some bucket. */
export function isPaddedLength(plaintextLen: number): boolean {
  if (!Number.isInteger(plaintextLen)) return false;
  const frame = plaintextLen + BUCKET_OVERHEAD;
  return frame >= MIN_BUCKET && frame <= MAX_BUCKET &&
    bucketOfFrame(frame) === frame;
}
