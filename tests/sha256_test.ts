import assert from "node:assert/strict";
import { hash } from "node:crypto";
import { sha256Js } from "../lib/sha256.ts";

Deno.test("sha256Js equals node:crypto SHA-256 at every length up to 2 KiB, and the FIPS 180-2 examples", async () => {
  const data = crypto.getRandomValues(new Uint8Array(2100));
  for (let n = 0; n <= 2100; n++) {
    const d = data.subarray(0, n);
    assert.equal(sha256Js(d).toHex(), hash("sha256", d, "hex"), `length ${n}`);
  }
  // Inputs at odd offsets of a larger buffer.
  for (let off = 1; off < 8; off++) {
    const d = data.subarray(off, off + 301);
    assert.equal(sha256Js(d).toHex(), hash("sha256", d, "hex"));
  }
  const enc = new TextEncoder();
  assert.equal(
    sha256Js(enc.encode("abc")).toHex(),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    sha256Js(
      enc.encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    ).toHex(),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
  const big = new Uint8Array(1_000_000).fill(0x61); // one million "a"
  assert.equal(
    sha256Js(big).toHex(),
    new Uint8Array(await crypto.subtle.digest("SHA-256", big)).toHex(),
  );
  assert.equal(
    sha256Js(big).toHex(),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
});
