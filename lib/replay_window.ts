/**
 * Anti-replay sliding window after RFC 6479 ("IPsec Anti-Replay Algorithm
 * without Bit Shifting"): a ring of 32-bit blocks; advancing the window
 * clears whole blocks instead of shifting bits. With 64 blocks the ring holds
 * 2048 bits and guarantees a window of (64 − 1) × 32 = 2016 counters.
 *
 * Counters are `bigint` in [0, 2^64). Usage per received packet: `check`
 * before decryption (no mutation), `accept` only after the AEAD tag verified,
 * so a forged packet can never move the window. Not safe for concurrent use
 * across an `await` between `check` and `accept`: `accept` re-checks.
 * @module
 */

import type { Bytes } from "./bytes.ts";
import {
  ACK_BITMAP_BITS,
  REPLAY_BLOCK_BITS,
  REPLAY_RING_BLOCKS,
  REPLAY_WINDOW,
} from "./constants.ts";

/** Verdict of {@link ReplayWindow.check}. */
export type ReplayVerdict = "ok" | "duplicate" | "too-old";

const U64_MAX = (1n << 64n) - 1n;
const BLOCK_SHIFT = BigInt(Math.log2(REPLAY_BLOCK_BITS));
const BLOCK_MASK = BigInt(REPLAY_BLOCK_BITS - 1);
const RING_MASK = BigInt(REPLAY_RING_BLOCKS - 1);
const WINDOW = BigInt(REPLAY_WINDOW);
const BLOCK_SHIFT_N = Math.log2(REPLAY_BLOCK_BITS);
const BLOCK_MASK_N = REPLAY_BLOCK_BITS - 1;
/** Bit positions in the ring (2048) minus one, as number and bigint. */
const RING_BITS_MASK_N = REPLAY_RING_BLOCKS * REPLAY_BLOCK_BITS - 1;
const RING_BITS_MASK = BigInt(RING_BITS_MASK_N);

/** RFC 6479 sliding-window replay filter over 64-bit counters. */
export class ReplayWindow {
  /** Guaranteed window size in counters (2016). */
  static readonly size: number = REPLAY_WINDOW;
  #ring = new Uint32Array(REPLAY_RING_BLOCKS);
  #highest = -1n;

  /** Highest counter accepted so far, or -1n before the first. */
  get highest(): bigint {
    return this.#highest;
  }

  /** Classifies `counter` without changing the window. */
  check(counter: bigint): ReplayVerdict {
    if (counter < 0n || counter > U64_MAX) {
      throw new RangeError("counter out of u64 range");
    }
    if (counter > this.#highest) return "ok";
    if (this.#highest - counter >= WINDOW) return "too-old";
    return this.#bit(counter) ? "duplicate" : "ok";
  }

  /** Records `counter` as received (call after authentication); throws if `check` would not say "ok". */
  accept(counter: bigint): void {
    const verdict = this.check(counter);
    if (verdict !== "ok") throw new RangeError(`counter is ${verdict}`);
    if (counter > this.#highest) {
      const newBlock = counter >> BLOCK_SHIFT;
      const oldBlock = this.#highest < 0n ? -1n : this.#highest >> BLOCK_SHIFT;
      let diff = newBlock - oldBlock;
      if (diff > BigInt(REPLAY_RING_BLOCKS)) diff = BigInt(REPLAY_RING_BLOCKS);
      for (let i = 1n; i <= diff; i++) {
        this.#ring[Number((oldBlock + i) & RING_MASK)] = 0;
      }
      this.#highest = counter;
    }
    const idx = Number((counter >> BLOCK_SHIFT) & RING_MASK);
    this.#ring[idx] |= 1 << Number(counter & BLOCK_MASK);
  }

  /** Whether `counter` was accepted and is still inside the window. */
  has(counter: bigint): boolean {
    if (counter < 0n || counter > this.#highest) return false;
    if (this.#highest - counter >= WINDOW) return false;
    return this.#bit(counter);
  }

  /**
   * ACK bitmap of the last 1024 counters: bit i (byte i>>3, bit i&7 with
   * bit 0 the least significant) is set when counter `highest − i` was
   * accepted. 128 bytes.
   */
  bitmap(): Bytes {
    const out = new Uint8Array(ACK_BITMAP_BITS / 8);
    if (this.#highest < 0n) return out;
    // Read the ring directly with small integers: position of `highest` in
    // the ring, then walk down (counter highest − i sits at top − i, mod).
    const top = Number(this.#highest & RING_BITS_MASK);
    const n = this.#highest < BigInt(ACK_BITMAP_BITS)
      ? Number(this.#highest) + 1
      : ACK_BITMAP_BITS;
    const ring = this.#ring;
    for (let i = 0; i < n; i++) {
      const pos = (top - i) & RING_BITS_MASK_N;
      if ((ring[pos >>> BLOCK_SHIFT_N] >>> (pos & BLOCK_MASK_N)) & 1) {
        out[i >> 3] |= 1 << (i & 7);
      }
    }
    return out;
  }

  #bit(counter: bigint): boolean {
    const idx = Number((counter >> BLOCK_SHIFT) & RING_MASK);
    return ((this.#ring[idx] >>> Number(counter & BLOCK_MASK)) & 1) === 1;
  }
}

/** Whether an ACK (`highest`, `bitmap` from {@link ReplayWindow.bitmap}) covers `counter`. */
export function bitmapCovers(
  highest: bigint,
  bitmap: Uint8Array,
  counter: bigint,
): boolean {
  if (counter > highest) return false;
  const d = highest - counter;
  if (d >= BigInt(bitmap.length * 8)) return false;
  const i = Number(d);
  return ((bitmap[i >> 3] >> (i & 7)) & 1) === 1;
}
