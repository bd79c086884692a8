import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { MAX_BODY, MAX_MESSAGES_PER_RECORD } from "../lib/constants.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  decodeInner,
  decodeInnerAll,
  decodeRecordHeader,
  deriveTrafficKeys,
  encodeInner,
  encodeInnerMany,
  encodeRecordHeader,
  innerLengthMany,
  type InnerMessage,
  InnerType,
  openRecord,
  recordNonce,
  sealRecord,
} from "../lib/record.ts";
import { coalesce } from "../lib/session.ts";
import { importSecret } from "../lib/suite.ts";
import { exchange, messages, pair } from "./session_helpers.ts";

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

// ── Coalescing (PROTOCOL.md §2.2.3) ─────────────────────────────────────────

/** Frame overhead (relay header 22 + record header 14 + tag 16) and the coalescing budget, from the spec. */
const OVERHEAD = 52;
const BUDGET = 65536 - OVERHEAD;

/** Smallest frame holding `n` plaintext bytes (spec: 256, 512, 1024, then n + 52 rounded up to 1/32 of the power of two above it). */
function specBucket(n: number): number {
  const need = n + OVERHEAD;
  let pow = 256;
  while (pow < need) pow *= 2;
  return pow <= 1024 ? pow : Math.ceil(need / (pow / 32)) * (pow / 32);
}

/** `k` DATA messages from seq `first`, bodies of varied lengths, every `signEvery`th signed (0 = none). */
function dataRun(k: number, signEvery: number, first = 1n): InnerMessage[] {
  return Array.from({ length: k }, (_, i) => {
    const body = new Uint8Array((i * 37) % 300).fill(0x41 + (i % 26));
    const m: InnerMessage = {
      type: InnerType.DATA,
      seq: first + BigInt(i),
      body,
    };
    if (signEvery > 0 && (i + 1) % signEvery === 0) {
      m.signature = new Uint8Array(64).fill(i + 1);
    }
    return m;
  });
}

/** Σ (14 + bodyLen + 64 if signed), from the spec. */
const specLength = (msgs: InnerMessage[]) =>
  msgs.reduce((n, m) => n + 14 + m.body.length + (m.signature ? 64 : 0), 0);

Deno.test("coalesced inner plaintext: round trip of 1, 2, 14 and 64 DATA messages, with and without signatures, in the smallest bucket", () => {
  for (const k of [1, 2, 14, 64]) {
    for (const signEvery of [0, 1, 3]) {
      const msgs = dataRun(k, signEvery, 7n);
      const pt = encodeInnerMany(msgs);
      assert.equal(innerLengthMany(msgs), specLength(msgs));
      // Bucket: big enough, and the smallest such.
      const bucket = pt.length + OVERHEAD;
      assert.equal(bucket, specBucket(specLength(msgs)), `k=${k}`);
      assert.ok(bucket >= specLength(msgs) + OVERHEAD);
      // Layout: messages back to back, then zeros.
      let at = 0;
      for (const m of msgs) {
        assert.equal(pt[at], InnerType.DATA);
        assert.equal(pt[at + 1], m.signature ? 1 : 0);
        assert.equal(new DataView(pt.buffer).getBigUint64(at + 2), m.seq);
        assert.equal(new DataView(pt.buffer).getUint32(at + 10), m.body.length);
        at += 14 + m.body.length + (m.signature ? 64 : 0);
      }
      assert.ok(pt.subarray(at).every((b) => b === 0));
      assert.deepEqual(decodeInnerAll(pt), msgs);
      if (k === 1) {
        assert.deepEqual(decodeInner(pt), msgs[0]);
        assert.deepEqual(encodeInner(msgs[0]), pt);
      } else {
        // The single-message decoder refuses a coalesced plaintext.
        assert.throws(() => decodeInner(pt), isCode("malformed"));
      }
    }
  }
  // Padding is chosen for the sum: two messages that each fit 256 need 512.
  const two = [
    { type: InnerType.DATA, seq: 1n, body: new Uint8Array(100) },
    { type: InnerType.DATA, seq: 2n, body: new Uint8Array(100) },
  ];
  assert.equal(encodeInner(two[0]).length, 256 - OVERHEAD);
  assert.equal(encodeInnerMany(two).length, 512 - OVERHEAD);
  // Exactly at a bucket edge: 204 bytes of content fill the 256 bucket.
  const edge = [
    { type: InnerType.DATA, seq: 1n, body: new Uint8Array(90) },
    { type: InnerType.DATA, seq: 2n, body: new Uint8Array(86) },
  ];
  assert.equal(innerLengthMany(edge), 204);
  assert.equal(encodeInnerMany(edge).length, 204);
  edge[1].body = new Uint8Array(87);
  assert.equal(encodeInnerMany(edge).length, 460);
});

Deno.test("coalesced inner plaintext: encodeInnerMany refuses non-DATA groups, seq gaps, 0 or 65 messages", () => {
  const d = (seq: bigint, type: number = InnerType.DATA): InnerMessage => ({
    type,
    seq,
    body: new Uint8Array(3),
  });
  assert.throws(() => encodeInnerMany([]), RangeError);
  assert.equal(
    decodeInnerAll(encodeInnerMany(dataRun(MAX_MESSAGES_PER_RECORD, 0)))
      .length,
    64,
  );
  assert.throws(() => encodeInnerMany(dataRun(65, 0)), RangeError);
  for (
    const t of [
      InnerType.CHECKPOINT,
      InnerType.CLOSE,
      InnerType.REKEY_INIT,
      InnerType.REKEY_RESP,
    ]
  ) {
    assert.throws(() => encodeInnerMany([d(1n), d(2n, t)]), RangeError);
    assert.throws(() => encodeInnerMany([d(1n, t), d(2n)]), RangeError);
    // Alone, any type is fine (with the body length its type requires).
    const alone = {
      ...d(1n, t),
      body: new Uint8Array(
        t === InnerType.CHECKPOINT || t === InnerType.CLOSE ? 0 : 129,
      ),
    };
    assert.deepEqual(decodeInnerAll(encodeInnerMany([alone])), [alone]);
  }
  const dummy = { type: InnerType.DUMMY, seq: 0n, body: new Uint8Array(0) };
  assert.throws(() => encodeInnerMany([dummy, d(1n)]), RangeError);
  assert.throws(() => encodeInnerMany([d(1n), dummy]), RangeError);
  assert.throws(() => encodeInnerMany([d(1n), d(3n)]), RangeError);
  assert.throws(() => encodeInnerMany([d(2n), d(1n)]), RangeError);
  assert.throws(() => encodeInnerMany([d(1n), d(1n)]), RangeError);
  assert.throws(() => encodeInnerMany([d(1n), d(2n), d(4n)]), RangeError);
  const big = { ...d(2n), body: new Uint8Array(MAX_BODY + 1) };
  assert.throws(() => encodeInnerMany([d(1n), big]), isCode("too-large"));
});

Deno.test("coalesced inner plaintext: decodeInnerAll refuses what the spec forbids", () => {
  const msgs = dataRun(3, 0, 1n); // bodies of 0, 37, 74 bytes
  const pt = encodeInnerMany(msgs);
  const second = 14, third = 14 + 14 + 37;
  const bad = (mutate: (b: Uint8Array) => void) => {
    const b = pt.slice();
    mutate(b);
    assert.throws(() => decodeInnerAll(b), isCode("malformed"));
  };
  bad((b) => b[third] = InnerType.CHECKPOINT); // non-DATA in a group
  bad((b) => b[second] = InnerType.CLOSE);
  bad((b) => b[third + 9] = 4); // seq 3 → 4: gap
  bad((b) => b[third + 9] = 2); // repeated seq
  bad((b) => b[second + 1] = 2); // unknown flag on a later message
  bad((b) => b[second + 1] = 1); // signature bit, but the bytes belong to the next message
  bad((b) => b[pt.length - 1] = 1); // non-zero padding
  // A zero byte ends the messages: a message after a gap is non-zero padding.
  bad((b) => {
    b.copyWithin(third + 1, third, third + 14 + 74);
    b[third] = 0;
  });
  // A later message's header running past the plaintext: DATA seq 1 fills
  // 200 of 204 bytes, then 4 bytes of a second header.
  const run = new Uint8Array(204);
  run.set(
    encodeInner({ type: InnerType.DATA, seq: 1n, body: new Uint8Array(186) })
      .subarray(0, 200),
  );
  run.set([1, 0, 0, 0], 200);
  assert.throws(() => decodeInnerAll(run), isCode("malformed"));
  run.fill(0, 200);
  assert.equal(decodeInnerAll(run).length, 1);
  // A later message's body running one byte past the plaintext.
  const pair = encodeInnerMany([
    { type: InnerType.DATA, seq: 1n, body: new Uint8Array(100) },
    { type: InnerType.DATA, seq: 2n, body: new Uint8Array(76) },
  ]);
  assert.equal(pair.length, 204);
  assert.equal(decodeInnerAll(pair).length, 2);
  assert.equal(pair[114 + 13], 76); // second bodyLen, low byte
  pair[114 + 13] = 77;
  assert.throws(() => decodeInnerAll(pair), isCode("malformed"));
  // 65 empty DATA messages (910 bytes) in a 972-byte plaintext: one too many.
  const many = encodeInnerMany(
    dataRun(64, 0).map((m) => ({ ...m, body: new Uint8Array(0) })),
  );
  assert.equal(many.length, 1024 - OVERHEAD);
  assert.equal(decodeInnerAll(many).length, 64);
  many.set(
    encodeInner({ type: InnerType.DATA, seq: 65n, body: new Uint8Array(0) })
      .subarray(0, 14),
    64 * 14,
  );
  assert.throws(() => decodeInnerAll(many), isCode("malformed"));
  // A bodyLen over MAX_BODY is refused even where the plaintext would hold it.
  const largest = encodeInner({
    type: InnerType.DATA,
    seq: 1n,
    body: new Uint8Array(MAX_BODY),
  });
  assert.equal(largest.length, 65536 - OVERHEAD);
  assert.equal(decodeInnerAll(largest)[0].body.length, MAX_BODY);
  new DataView(largest.buffer).setUint32(10, MAX_BODY + 1);
  assert.throws(() => decodeInnerAll(largest), isCode("malformed"));
});

/** Largest k such that k bodies of `len` bytes fit the budget with ⌈k/signEvery⌉ signatures (spec formula), capped at 64. */
function specGroupSize(len: number, signEvery: number): number {
  let k = 1;
  while (
    k < 64 &&
    (k + 1) * (14 + len) + 64 * Math.ceil((k + 1) / signEvery) <= BUDGET
  ) k++;
  return k;
}

/** Encodes a group with the most signatures it may carry (⌈k/signEvery⌉, on the first messages) and returns the frame length. */
function worstFrame(bodies: Bytes[], signEvery: number): number {
  const sigs = Math.ceil(bodies.length / signEvery);
  const msgs = bodies.map((body, i): InnerMessage => ({
    type: InnerType.DATA,
    seq: BigInt(i + 1),
    body,
    ...(i < sigs ? { signature: new Uint8Array(64) } : {}),
  }));
  return encodeInnerMany(msgs).length + OVERHEAD;
}

Deno.test("coalesce: the record size follows the message size — 64 of 256 B, 15 of 4 KiB, 1 of 60 KiB — frames ≤ 65536", () => {
  const of = (len: number, n: number) =>
    Array.from({ length: n }, () => new Uint8Array(len));
  // 256 B: the message count caps it, 64 × 270 + 64 = 17344 ≤ 65484.
  assert.equal(specGroupSize(256, 64), 64);
  assert.deepEqual(coalesce(of(256, 100), 64).map((g) => g.length), [64, 36]);
  assert.equal(worstFrame(of(256, 64), 64), 17408);
  assert.equal(worstFrame(of(256, 64), 1), 21504);
  // 4 KiB: 15 × 4110 + 64 = 61714 ≤ 65484 < 16 × 4110.
  assert.equal(specGroupSize(4096, 64), 15);
  assert.equal(specGroupSize(4096, 1), 15);
  const four = coalesce(of(4096, 40), 64);
  assert.deepEqual(four.map((g) => g.length), [15, 15, 10]);
  assert.equal(worstFrame(four[0], 64), 63488);
  // 60 KiB: alone.
  assert.deepEqual(coalesce(of(61440, 3), 64).map((g) => g.length), [1, 1, 1]);
  // Per-message signing costs room: 4030-byte bodies go 16 (64 s.), 15 (1 s.).
  assert.equal(specGroupSize(4030, 64), 16);
  assert.equal(specGroupSize(4030, 1), 15);
  assert.equal(coalesce(of(4030, 40), 64)[0].length, 16);
  assert.equal(coalesce(of(4030, 40), 1)[0].length, 15);
  for (const len of [0, 1, 256, 1000, 4030, 4096, 20000]) {
    for (const signEvery of [1, 2, 64]) {
      const groups = coalesce(of(len, 100), signEvery);
      assert.equal(groups.flat().length, 100);
      for (const g of groups) assert.ok(worstFrame(g, signEvery) <= 65536);
    }
  }
});

Deno.test("coalesce: the budget is exactly 65536 − 52 = 65484 plaintext bytes, signatures counted", () => {
  const two = (len: number, signEvery: number) =>
    coalesce([new Uint8Array(len), new Uint8Array(len)], signEvery).length;
  // signEvery 64: 2 × (14 + len) + 64 ≤ 65484 ⇔ len ≤ 32696.
  assert.equal(two(32696, 64), 1);
  assert.equal(two(32697, 64), 2);
  assert.equal(
    worstFrame([new Uint8Array(32696), new Uint8Array(32696)], 64),
    65536,
  );
  // signEvery 1: 2 × (14 + len + 64) ≤ 65484 ⇔ len ≤ 32664.
  assert.equal(two(32664, 1), 1);
  assert.equal(two(32665, 1), 2);
  assert.equal(
    worstFrame([new Uint8Array(32664), new Uint8Array(32664)], 1),
    65536,
  );
});

Deno.test("coalesce: empty bodies go 64 to a record; a MAX_BODY body goes alone; groups are greedy and within the budget", () => {
  const empty = (n: number) =>
    Array.from({ length: n }, () => new Uint8Array(0));
  assert.deepEqual(coalesce(empty(64), 64).map((g) => g.length), [64]);
  assert.deepEqual(coalesce(empty(65), 64).map((g) => g.length), [64, 1]);
  assert.deepEqual(coalesce(empty(129), 64).map((g) => g.length), [64, 64, 1]);
  assert.deepEqual(coalesce([], 64), []);
  // A MAX_BODY body alone, between small ones; its frame (signed) is exactly 65536.
  const small = new Uint8Array(10), huge = new Uint8Array(MAX_BODY);
  const g = coalesce([small, huge, small, small], 64);
  assert.deepEqual(g.map((x) => x.length), [1, 1, 2]);
  assert.equal(g[1][0], huge);
  assert.equal(worstFrame([huge], 1), 65536);
  // A body over the budget on its own also goes alone.
  const over = new Uint8Array(BUDGET);
  assert.deepEqual(coalesce([small, over, small], 64).map((x) => x.length), [
    1,
    1,
    1,
  ]);
  // Random sizes: every group is within the budget (or a single message),
  // and greedy (adding the next body would break the budget or the count).
  let seed = 12345;
  const rand = (n: number) =>
    (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (const signEvery of [1, 2, 5, 64, 256]) {
    const bodies = Array.from(
      { length: 500 },
      () => new Uint8Array(rand(3) === 0 ? rand(30000) : rand(4000)),
    );
    const groups = coalesce(bodies, signEvery);
    assert.equal(groups.flat().length, bodies.length);
    const need = (k: number, len: number) =>
      len + 64 * Math.ceil(k / signEvery);
    for (const [i, grp] of groups.entries()) {
      const len = grp.reduce((n, b) => n + 14 + b.length, 0);
      assert.ok(grp.length <= 64);
      if (grp.length > 1) {
        assert.ok(need(grp.length, len) <= BUDGET);
        assert.ok(worstFrame(grp, signEvery) <= 65536);
      }
      const next = groups[i + 1]?.[0];
      if (next) {
        assert.ok(
          grp.length === 64 ||
            need(grp.length + 1, len + 14 + next.length) > BUDGET,
          `group ${i} could have taken the next body`,
        );
      }
    }
  }
});

Deno.test("coalesce in a Session: sendMany frames stay ≤ 65536 wherever the signatures fall; every message delivered in order", async () => {
  for (const signEvery of [1, 2, 3, 64]) {
    const { a, b } = await pair({ coalesce: true, signEvery });
    const bodies = Array.from(
      { length: 107 },
      (_, i) => new Uint8Array(256).fill(i),
    );
    // Two calls, so the second starts with unsigned messages pending.
    const first = await a.sendMany(bodies.slice(0, 7), 0);
    const second = await a.sendMany(bodies.slice(7), 0);
    assert.equal(first.length, coalesce(bodies.slice(0, 7), signEvery).length);
    assert.equal(second.length, coalesce(bodies.slice(7), signEvery).length);
    if (signEvery === 64) assert.equal(second.length, 2); // ⌈100 / 64⌉
    for (const p of [...first, ...second]) {
      assert.ok(p.length + 22 <= 65536, `${p.length + 22}-byte frame`);
    }
    const ev = await exchange(a, b, [...first, ...second], 0);
    assert.deepEqual(messages(ev.get(b)!), bodies);
    assert.equal(b.failed, undefined);
  }
});
