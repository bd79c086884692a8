import assert from "node:assert/strict";
import { ACK_BITMAP_BITS } from "../lib/constants.ts";
import { bitmapCovers, ReplayWindow } from "../lib/replay_window.ts";
import {
  readU32,
  readU64,
  writeU32,
  writeU64,
  xorU64,
} from "../lib/int_codec.ts";
import { prng } from "./session_helpers.ts";

/** The ACK bitmap as specified: bit i set iff counter highest − i was accepted. */
function reference(w: ReplayWindow): Uint8Array {
  const out = new Uint8Array(ACK_BITMAP_BITS / 8);
  for (let i = 0; i < ACK_BITMAP_BITS; i++) {
    const c = w.highest - BigInt(i);
    if (c >= 0n && w.has(c)) out[i >> 3] |= 1 << (i & 7);
  }
  return out;
}

Deno.test("ACK bitmap read from the ring equals the bit-by-bit definition (random traffic, ring wrap, start near 0 and near 2^64)", () => {
  const rand = prng(11);
  for (
    const start of [0n, 5n, 1000n, (1n << 53n) - 700n, (1n << 64n) - 100_000n]
  ) {
    const w = new ReplayWindow();
    let next = start;
    for (let step = 0; step < 400; step++) {
      const r = rand(2);
      next += BigInt(r[0] % 40); // gaps of 0..39 counters, some large jumps
      if (r[1] === 0) next += 3000n;
      // Accept `next` and a few random older counters still inside the window.
      for (
        const c of [next, next - BigInt(r[1] % 64), next - BigInt(r[0] * 4)]
      ) {
        if (c >= start && w.check(c) === "ok") w.accept(c);
      }
      const bm = w.bitmap();
      assert.deepEqual(bm, reference(w), `start ${start}, step ${step}`);
      for (const d of [0n, 1n, 31n, 32n, 1023n, 1024n]) {
        const c = w.highest - d;
        if (c < 0n) continue;
        assert.equal(bitmapCovers(w.highest, bm, c), d < 1024n && w.has(c));
      }
    }
  }
  assert.deepEqual(new ReplayWindow().bitmap(), new Uint8Array(128));
});

Deno.test("int codec: same bytes as DataView big-endian, at any offset", () => {
  const rand = prng(5);
  const buf = new Uint8Array(20);
  const dv = new DataView(buf.buffer);
  const values = [
    0n,
    1n,
    0xffn,
    0xffff_ffffn,
    1n << 32n,
    (1n << 53n) - 1n,
    1n << 53n,
    (1n << 53n) + 1n,
    (1n << 64n) - 1n,
  ];
  for (let i = 0; i < 500; i++) {
    const b = rand(8);
    values.push(new DataView(b.buffer).getBigUint64(0) >> BigInt(i % 64));
  }
  for (const v of values) {
    for (const off of [0, 3, 12]) {
      writeU64(buf, off, v);
      assert.equal(dv.getBigUint64(off), v);
      assert.equal(readU64(buf, off), v);
      const before = dv.getBigUint64(off);
      xorU64(buf, off, v);
      assert.equal(dv.getBigUint64(off), 0n, "x ^ x = 0");
      xorU64(buf, off, before);
      assert.equal(dv.getBigUint64(off), before);
    }
  }
  for (const v of [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 123456789]) {
    writeU32(buf, 5, v);
    assert.equal(dv.getUint32(5), v);
    assert.equal(readU32(buf, 5), v);
  }
});
