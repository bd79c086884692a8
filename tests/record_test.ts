import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import {
  decodeInner,
  decodeRecordHeader,
  deriveTrafficKeys,
  encodeInner,
  encodeRecordHeader,
  InnerType,
  openRecord,
  recordNonce,
  sealRecord,
} from "../lib/record.ts";
import { importSecret } from "../lib/suite.ts";

const U64_MAX = (1n << 64n) - 1n;
const isCode = (code: string) => (e: unknown) =>
  e instanceof ProtocolError && e.code === code;

Deno.test("header round trip, including counter 2^64 − 1", () => {
  for (
    const [epoch, counter] of [[0, 0n], [7, 123456789n], [
      0xffffffff,
      U64_MAX,
    ]] as const
  ) {
    const h = encodeRecordHeader(epoch, counter);
    assert.equal(h.length, 14);
    assert.deepEqual([h[0], h[1]], [1, 4]);
    const packet = new Uint8Array(14 + 16);
    packet.set(h);
    assert.deepEqual(decodeRecordHeader(packet), { epoch, counter });
  }
  assert.throws(
    () => decodeRecordHeader(new Uint8Array(29)),
    isCode("malformed"),
  );
  const p = new Uint8Array(30);
  p.set(encodeRecordHeader(0, 0n));
  p[0] = 2;
  assert.throws(() => decodeRecordHeader(p), isCode("unsupported-version"));
  p[0] = 1;
  p[1] = 1;
  assert.throws(() => decodeRecordHeader(p), isCode("malformed"));
});

Deno.test("nonce = iv XOR (0^4 ‖ u64(counter))", () => {
  const iv = Uint8Array.fromHex("000102030405060708090a0b");
  assert.deepEqual(recordNonce(iv, 0n), iv);
  assert.equal(recordNonce(iv, 1n).toHex(), "000102030405060708090a0a");
  assert.equal(recordNonce(iv, U64_MAX).toHex(), "00010203fbfaf9f8f7f6f5f4");
});

Deno.test("inner plaintext: round trip, padding to bucket, strict decoding", () => {
  const sig = new Uint8Array(64).fill(9);
  const m = {
    type: InnerType.DATA,
    seq: 3n,
    body: new Uint8Array([1, 2, 3]),
    signature: sig,
  };
  const pt = encodeInner(m);
  assert.equal(pt.length, 204);
  assert.deepEqual(decodeInner(pt), m);
  const unsigned = { type: InnerType.DATA, seq: 3n, body: new Uint8Array(190) };
  assert.equal(encodeInner(unsigned).length, 204);
  assert.equal(
    encodeInner({ ...unsigned, body: new Uint8Array(191) }).length,
    460,
  );
  const bad = (mutate: (b: Uint8Array) => void) => {
    const b = pt.slice();
    mutate(b);
    assert.throws(() => decodeInner(b), isCode("malformed"));
  };
  bad((b) => b[b.length - 1] = 1); // non-zero padding
  bad((b) => b[0] = 0); // unknown type
  bad((b) => b[0] = 8);
  bad((b) => b[1] = 2); // unknown flag
  bad((b) => b[9] = 0); // seq 0 on DATA
  bad((b) => b[13] = 200); // body past the end
  bad((b) => b[0] = InnerType.ACK); // seq and signature on ACK
  assert.throws(() => decodeInner(pt.subarray(0, 203)), isCode("malformed"));
  // A small message padded into a bigger bucket is refused (no silent over-padding).
  const big = new Uint8Array(460);
  big.set(encodeInner(unsigned).subarray(0, 14 + 190));
  assert.throws(() => decodeInner(big), isCode("malformed"));
});

Deno.test("seal/open: AAD binds header and both IDs; keys differ per direction and epoch", async () => {
  const master = await importSecret(new Uint8Array(32).fill(1));
  const sh = new Uint8Array(32).fill(2);
  const k = await deriveTrafficKeys(master, sh, "i2r", 0);
  const other = await deriveTrafficKeys(master, sh, "r2i", 0);
  const next = await deriveTrafficKeys(master, sh, "i2r", 1);
  assert.notDeepEqual(k.iv, other.iv);
  assert.notDeepEqual(k.iv, next.iv);
  const a = new Uint8Array(16).fill(0xa), b = new Uint8Array(16).fill(0xb);
  const pt = encodeInner({
    type: InnerType.DATA,
    seq: 1n,
    body: new Uint8Array([42]),
  });
  const packet = await sealRecord(k, 5n, pt, a, b);
  assert.equal(packet.length, 256 - 22);
  assert.deepEqual(await openRecord(k, packet, 5n, a, b), pt);
  await assert.rejects(
    openRecord(k, packet, 5n, b, a),
    isCode("decrypt-failed"),
  );
  await assert.rejects(
    openRecord(other, packet, 5n, a, b),
    isCode("decrypt-failed"),
  );
  await assert.rejects(
    openRecord(k, packet, 6n, a, b),
    isCode("decrypt-failed"),
  );
});
