import assert from "node:assert/strict";
import { ACK_BITMAP_BITS, REPLAY_WINDOW } from "../lib/constants.ts";
import { bitmapCovers, ReplayWindow } from "../lib/replay_window.ts";

const U64_MAX = (1n << 64n) - 1n;

Deno.test("window is at least 1024 counters (2016 guaranteed)", () => {
  assert.ok(ReplayWindow.size >= 1024);
  assert.equal(ReplayWindow.size, REPLAY_WINDOW);
});

Deno.test("fresh, duplicate, too-old; check does not mutate", () => {
  const w = new ReplayWindow();
  assert.equal(w.highest, -1n);
  assert.equal(w.check(0n), "ok");
  assert.equal(w.check(0n), "ok", "check alone records nothing");
  w.accept(0n);
  assert.equal(w.check(0n), "duplicate");
  assert.throws(() => w.accept(0n), RangeError);
  w.accept(5000n);
  assert.equal(w.highest, 5000n);
  assert.equal(w.check(5000n - BigInt(REPLAY_WINDOW) + 1n), "ok");
  assert.equal(w.check(5000n - BigInt(REPLAY_WINDOW)), "too-old");
  assert.equal(w.check(0n), "too-old");
  assert.equal(w.check(4999n), "ok");
  w.accept(4999n);
  assert.equal(w.check(4999n), "duplicate");
});

Deno.test("out-of-order acceptance inside the window, each exactly once", () => {
  const w = new ReplayWindow();
  const order = Array.from({ length: 3000 }, (_, i) => BigInt(i));
  // Deterministic shuffle within blocks of 500 (well inside the window).
  for (let b = 0; b < order.length; b += 500) {
    const part = order.slice(b, b + 500).reverse();
    order.splice(b, 500, ...part);
  }
  for (const c of order) {
    assert.equal(w.check(c), "ok", `first ${c}`);
    w.accept(c);
  }
  for (let c = 2999n - BigInt(REPLAY_WINDOW) + 1n; c <= 2999n; c++) {
    assert.equal(w.check(c), "duplicate");
  }
  assert.equal(w.check(2999n - BigInt(REPLAY_WINDOW)), "too-old");
});

Deno.test("large jumps clear stale bits (no false duplicates after wrap of the ring)", () => {
  const w = new ReplayWindow();
  w.accept(1n);
  w.accept(1n + 2048n); // same ring slot as 1, one ring later
  assert.equal(w.check(1n + 2048n - 64n), "ok");
  w.accept(100_000n);
  for (let c = 100_000n - 1000n; c < 100_000n; c++) {
    assert.equal(w.check(c), "ok", `${c} never seen`);
  }
});

Deno.test("counters near 2^64 work", () => {
  const w = new ReplayWindow();
  w.accept(U64_MAX - 10n);
  w.accept(U64_MAX);
  assert.equal(w.check(U64_MAX), "duplicate");
  assert.equal(w.check(U64_MAX - 10n), "duplicate");
  assert.equal(w.check(U64_MAX - 5n), "ok");
  assert.equal(w.check(U64_MAX - BigInt(REPLAY_WINDOW)), "too-old");
  assert.throws(() => w.check(U64_MAX + 1n), RangeError);
  assert.throws(() => w.check(-1n), RangeError);
  const bm = w.bitmap();
  assert.ok(bitmapCovers(w.highest, bm, U64_MAX));
  assert.ok(bitmapCovers(w.highest, bm, U64_MAX - 10n));
  assert.ok(!bitmapCovers(w.highest, bm, U64_MAX - 9n));
});

Deno.test("ACK bitmap: bit i is counter highest − i, last 1024 counters", () => {
  const w = new ReplayWindow();
  assert.deepEqual(w.bitmap(), new Uint8Array(ACK_BITMAP_BITS / 8));
  for (const c of [3000n, 2999n, 2990n, 3000n - 1023n, 3000n - 1024n]) {
    w.accept(c);
  }
  const bm = w.bitmap();
  assert.equal(bm.length, 128);
  assert.equal(bm[0], 0b11);
  assert.equal(bm[1], 1 << 2); // i = 10
  assert.equal(bm[127], 0x80); // i = 1023
  assert.ok(!bitmapCovers(3000n, bm, 3000n - 1024n), "beyond the bitmap");
  assert.ok(!bitmapCovers(3000n, bm, 3001n));
  let set = 0;
  for (const byte of bm) for (let k = 0; k < 8; k++) set += (byte >> k) & 1;
  assert.equal(set, 4);
});
