import assert from "node:assert/strict";
import { fitsBody } from "../clients/engine.ts";
import { MAX_BODY } from "../lib/constants.ts";

Deno.test("fitsBody: at most MAX_BODY bytes of UTF-8, counted exactly at the edge for 1-, 2-, 3- and 4-byte characters", () => {
  const enc = new TextEncoder();
  for (const ch of ["x", "é", "€", "😀"]) {
    const n = enc.encode(ch).length;
    const fit = ch.repeat(Math.floor(MAX_BODY / n));
    assert.ok(fitsBody(fit), `${ch}: ${enc.encode(fit).length} bytes fit`);
    const over = fit + "x".repeat(MAX_BODY - enc.encode(fit).length + 1);
    assert.equal(enc.encode(over).length, MAX_BODY + 1);
    assert.ok(!fitsBody(over), `${ch}: MAX_BODY + 1 bytes do not fit`);
    assert.ok(!fitsBody(ch.repeat(MAX_BODY + 1)), `${ch}: over`);
  }
  assert.ok(fitsBody(""));
  assert.ok(fitsBody("x".repeat(21802))); // 3 × 21802 = 65406: no encoding needed
});
