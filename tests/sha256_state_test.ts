import assert from "node:assert/strict";
import { createHmac, hash } from "node:crypto";
import { HmacKey, hmacSha256, Sha256Js } from "../lib/sha256_state.ts";

const rand = (n: number) => crypto.getRandomValues(new Uint8Array(n));

Deno.test("Sha256Js equals node:crypto SHA-256 at every length up to 600, fed in pieces of every size", () => {
  const data = rand(600);
  for (let n = 0; n <= 600; n++) {
    const d = data.subarray(0, n);
    const expected = hash("sha256", d, "hex");
    assert.equal(new Sha256Js().update(d).digest().toHex(), expected, `n=${n}`);
    // Pieces of 1..70 bytes (crossing block boundaries in every phase).
    const piece = 1 + (n % 70);
    const s = new Sha256Js();
    for (let o = 0; o < n; o += piece) s.update(d.subarray(o, o + piece));
    assert.equal(s.digest().toHex(), expected, `n=${n} in ${piece}s`);
  }
  assert.equal(
    new Sha256Js().update(new TextEncoder().encode("abc")).digest().toHex(),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("Sha256Js.copy forks: the copy and the original go on independently", () => {
  const [a, b, c] = [rand(100), rand(37), rand(200)];
  const base = new Sha256Js().update(a);
  const left = base.copy().update(b);
  const right = base.copy().update(c);
  assert.equal(
    left.copy().digest().toHex(),
    hash("sha256", new Uint8Array([...a, ...b]), "hex"),
  );
  assert.equal(
    right.digest().toHex(),
    hash("sha256", new Uint8Array([...a, ...c]), "hex"),
  );
  assert.equal(base.digest().toHex(), hash("sha256", a, "hex"));
  assert.equal(
    left.update(c).digest().toHex(),
    hash("sha256", new Uint8Array([...a, ...b, ...c]), "hex"),
  );
});

Deno.test("Sha256Js.digestWith hashes the state followed by its parts and leaves the state as it was", () => {
  const data = rand(400);
  for (
    const [at, cuts] of [[0, [0]], [59, [5, 64]], [63, [1, 1, 200]], [64, [
      130,
    ]], [100, [0, 300]]] as const
  ) {
    const base = new Sha256Js().update(data.subarray(0, at));
    let o = at;
    const parts = cuts.map((n) => data.subarray(o, o += n));
    const expected = hash("sha256", data.subarray(0, o), "hex");
    assert.equal(base.digestWith(parts).toHex(), expected, `at ${at}`);
    assert.equal(
      base.digestWith(parts).toHex(),
      expected,
      "again: the state is unchanged",
    );
    assert.equal(
      base.digest().toHex(),
      hash("sha256", data.subarray(0, at), "hex"),
    );
  }
});

Deno.test("hmacSha256 and HmacKey equal createHmac for keys of 0..130 bytes and data of 0..200; RFC 4231 case 2", () => {
  for (let k = 0; k <= 130; k += 3) {
    const key = rand(k), before = key.slice();
    const hk = new HmacKey(key);
    for (const n of [0, 1, 21, 32, 55, 56, 64, 119, 200]) {
      const data = rand(n);
      const expected = createHmac("sha256", key).update(data).digest("hex");
      assert.equal(
        hmacSha256(key, data).toHex(),
        expected,
        `key ${k}, data ${n}`,
      );
      assert.equal(hk.mac(data).toHex(), expected, `HmacKey ${k}, data ${n}`);
    }
    assert.deepEqual(key, before, "the key is left as it was");
    hk.wipe();
  }
  const enc = new TextEncoder();
  assert.equal(
    hmacSha256(enc.encode("Jefe"), enc.encode("what do ya want for nothing?"))
      .toHex(),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});
