import assert from "node:assert/strict";
import { MAX_BODY } from "../lib/constants.ts";
import {
  bucketFor,
  isPaddedLength,
  paddedPlaintextLength,
} from "../lib/padding.ts";

Deno.test("buckets are powers of two from 256 to 65536 counting 52 bytes of overhead", () => {
  assert.equal(bucketFor(0), 256);
  assert.equal(paddedPlaintextLength(0), 204);
  assert.equal(paddedPlaintextLength(204), 204);
  assert.equal(paddedPlaintextLength(205), 512 - 52);
  assert.equal(paddedPlaintextLength(65536 - 52), 65536 - 52);
  assert.throws(() => bucketFor(65536 - 51), RangeError);
  assert.throws(() => bucketFor(-1), RangeError);
  assert.throws(() => bucketFor(1.5), RangeError);
  for (let n = 0; n <= 65484; n += 97) {
    const p = paddedPlaintextLength(n);
    assert.ok(p >= n);
    assert.ok(isPaddedLength(p));
    const bucket = p + 52;
    assert.ok(
      bucket === 256 || (bucket / 2) - 52 < n,
      `smallest bucket for ${n}`,
    );
  }
});

Deno.test("the largest body with header and signature fits the largest bucket", () => {
  assert.equal(paddedPlaintextLength(14 + MAX_BODY + 64), 65536 - 52);
  assert.ok(!isPaddedLength(100));
  assert.ok(!isPaddedLength(65536));
});
