import assert from "node:assert/strict";
import { createHash, pbkdf2Sync } from "node:crypto";
import {
  fingerprint,
  formatFingerprint,
  parseFingerprint,
  safetyNumber,
  shortFingerprint,
} from "../lib/fingerprint.ts";
import { generateIdentity } from "../lib/identity.ts";

/** Independent re-implementation of the documented safety-number half (node:crypto). */
function referenceHalf(spki: Uint8Array): string {
  const salt = new Uint8Array([
    0,
    1,
    ...new TextEncoder().encode("e2e.v1 safety number\0"),
  ]);
  const h = pbkdf2Sync(spki, salt, 1024, 30, "sha512");
  let out = "";
  for (let c = 0; c < 6; c++) {
    let n = 0n;
    for (let j = 0; j < 5; j++) n = (n << 8n) | BigInt(h[c * 5 + j]);
    out += String(n % 100000n).padStart(5, "0");
  }
  return out;
}

Deno.test("fingerprint: SHA-256 of the SPKI, formatted in groups of 4", async () => {
  const { spki } = await generateIdentity();
  const fp = await fingerprint(spki);
  assert.deepEqual(
    fp,
    new Uint8Array(createHash("sha256").update(spki).digest()),
  );
  const text = formatFingerprint(fp);
  assert.match(text, /^([0-9A-F]{4} ){15}[0-9A-F]{4}$/);
  assert.equal(text.replaceAll(" ", "").toLowerCase(), fp.toHex());
  assert.equal(shortFingerprint(fp), text.slice(0, 19));
  assert.equal(parseFingerprint(text), fp.toHex());
  assert.equal(
    parseFingerprint(fp.toHex().match(/../g)!.join(":")),
    fp.toHex(),
  );
});

Deno.test("fingerprint: fixed vector", () => {
  const fp = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
  assert.equal(
    formatFingerprint(fp),
    "0007 0E15 1C23 2A31 383F 464D 545B 6269 7077 7E85 8C93 9AA1 A8AF B6BD C4CB D2D9",
  );
  assert.equal(shortFingerprint(fp), "0007 0E15 1C23 2A31");
});

Deno.test("parseFingerprint: rejects wrong length and non-hex", () => {
  assert.throws(() => parseFingerprint("abcd"), SyntaxError);
  assert.throws(() => parseFingerprint("g".repeat(64)), SyntaxError);
  assert.throws(() => parseFingerprint("a".repeat(66)), SyntaxError);
});

Deno.test("safetyNumber: symmetric, 60 digits in 12 groups of 5, matches the documented construction", async () => {
  const a = await generateIdentity();
  const b = await generateIdentity();
  const ab = await safetyNumber(a.spki, b.spki);
  const ba = await safetyNumber(b.spki, a.spki);
  assert.equal(ab, ba);
  assert.match(ab, /^(\d{5} ){11}\d{5}$/);
  const halves = [referenceHalf(a.spki), referenceHalf(b.spki)].sort();
  assert.equal(ab.replaceAll(" ", ""), halves.join(""));
});

Deno.test("safetyNumber: different when either key differs", async () => {
  const [a, b, c] = await Promise.all([
    generateIdentity(),
    generateIdentity(),
    generateIdentity(),
  ]);
  const [ab, ac, cb] = await Promise.all([
    safetyNumber(a.spki, b.spki),
    safetyNumber(a.spki, c.spki),
    safetyNumber(c.spki, b.spki),
  ]);
  assert.notEqual(ab, ac);
  assert.notEqual(ab, cb);
  assert.notEqual(ac, cb);
});
