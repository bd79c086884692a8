import assert from "node:assert/strict";
import { MAX_BODY } from "../lib/constants.ts";
import {
  bucketFor,
  isPaddedLength,
  paddedPlaintextLength,
} from "../lib/padding.ts";

/** The bucket list of PROTOCOL.md §2.2.3, spelled out: 256, 512, 1024, then 16 steps per power of two. */
function specBuckets(): number[] {
  const out = [256, 512, 1024];
  for (let top = 2048; top <= 65536; top *= 2) {
    for (let j = 1; j <= 16; j++) out.push(top / 2 + j * (top / 32));
  }
  return out;
}

Deno.test("buckets: 256, 512, 1024, then 16 steps per power of two to 65536, counting 52 bytes of overhead", () => {
  assert.equal(bucketFor(0), 256);
  assert.equal(paddedPlaintextLength(0), 204);
  assert.equal(paddedPlaintextLength(204), 204);
  assert.equal(paddedPlaintextLength(205), 512 - 52);
  assert.equal(paddedPlaintextLength(972), 1024 - 52);
  assert.equal(paddedPlaintextLength(973), 1088 - 52);
  assert.equal(bucketFor(2048 - 52), 2048);
  assert.equal(bucketFor(2049 - 52), 2176);
  assert.equal(paddedPlaintextLength(65536 - 52), 65536 - 52);
  assert.throws(() => bucketFor(65536 - 51), RangeError);
  assert.throws(() => bucketFor(-1), RangeError);
  assert.throws(() => bucketFor(1.5), RangeError);
  const buckets = specBuckets();
  assert.equal(buckets.length, 99);
  // Every inner length: the smallest bucket of the list holding it.
  for (let n = 0; n <= 65484; n++) {
    const bucket = bucketFor(n);
    assert.equal(bucket, buckets.find((b) => b >= n + 52), `length ${n}`);
  }
  // Exactly the list's lengths are padded lengths.
  const set = new Set(buckets);
  for (let frame = 0; frame <= 65600; frame++) {
    assert.equal(isPaddedLength(frame - 52), set.has(frame), `frame ${frame}`);
  }
});

Deno.test("the largest body with header and signature fits the largest bucket", () => {
  assert.equal(paddedPlaintextLength(14 + MAX_BODY + 64), 65536 - 52);
  assert.ok(!isPaddedLength(100));
  assert.ok(!isPaddedLength(65536));
  assert.ok(!isPaddedLength(1100.5));
});

Deno.test("wire bytes per body byte ≤ 1.15 for every body of 1 KiB and more sent alone (≤ 1.125)", () => {
  let worst = 0;
  for (let body = 1024; body <= MAX_BODY; body++) {
    worst = Math.max(worst, bucketFor(14 + body) / body);
  }
  assert.ok(worst <= 1.125 + 1e-9, `worst ${worst}`);
  assert.equal(bucketFor(14 + 1024) / 1024, 1.125);
  // 60 KiB: 61440 + 66 → 63488 (steps of 2048): 3.3 % padding.
  assert.equal(bucketFor(14 + 61440), 63488);
});
