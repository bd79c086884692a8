/**
 * Checks tests/vectors/good_record_{keys,data,ack,data_coalesced,body_lengths}.json and
 * fail_record_*.json: the reference computation of
 * tests/vectors/generate_session.ts (written from PROTOCOL.md §2.2 with
 * crypto.subtle only) reproduces every deterministic value; lib/record.ts,
 * lib/hash_chain.ts and lib/session.ts reproduce them too; each fail_*
 * vector gives its outcome both at record level (strict open) and through a
 * receiving Session. Regenerate with the command in generate_session.ts.
 */

import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import { fingerprint } from "../lib/fingerprint.ts";
import {
  chainSignatureInput,
  chainStart,
  chainStep,
  chainStepInput,
} from "../lib/hash_chain.ts";
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
  openRecord,
  recordAad,
  recordNonce,
  sealRecord,
  type TrafficKeys,
} from "../lib/record.ts";
import { nextMaster, type SessionStats } from "../lib/session.ts";
import { importSecret } from "../lib/suite.ts";
import type { SecretKey } from "../lib/primitives.ts";
import { nodePrimitives } from "../lib/deno/node_primitives.ts";
import { ACK_BODY_LENGTH, REKEY_BODY_LENGTH } from "../lib/constants.ts";
import {
  type AckVector,
  be,
  BODY_1,
  BODY_2,
  type BodyLengthsVector,
  cat,
  COALESCED_BODIES,
  type CoalescedVector,
  type DirectionKeys,
  type FailVector,
  INITIATOR_ID,
  labelInfo,
  LARGE_BODY_LENGTHS,
  largeBody,
  type LargeVector,
  MASTER,
  type RecordVector,
  REF_BODY_LENGTH,
  REF_BUCKETS,
  refAad,
  refAckBody,
  refBucket,
  refChainSignatureInput,
  refChainStart,
  refChainStepInput,
  refDecodeInner,
  refEcdh,
  refHeader,
  refInner,
  refInnerMany,
  type RefMessage,
  refNonce,
  refOpen,
  refRekeyMaster,
  refSeal,
  refTrafficKeys,
  RESPONDER_ID,
  SESSION_HASH,
  sha,
} from "./vectors/generate_session.ts";
import {
  checkSealedReference,
  D,
  h,
  idI,
  initiatorId,
  K,
  loadVector,
  responderId,
  sessionHash,
  vectorDir,
  vectorNames,
  vectorSession,
} from "./helpers/session_vectors.ts";
import { runReference } from "./helpers/python_reference.ts";

const load = loadVector;
const A = await load<AckVector>("good_record_ack.json");
const C = await load<CoalescedVector>("good_record_data_coalesced.json");
const L = await load<LargeVector>("good_record_data_large.json");
const failNames = vectorNames("fail_record_");

const text = new TextEncoder();
const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const [rec1, rec2] = D.records;

/** Library traffic keys of `direction` in `epoch` from a raw master. */
function libKeys(master: SecretKey, direction: "i2r" | "r2i", epoch: number) {
  return deriveTrafficKeys(master, sessionHash, direction, epoch);
}

/** Arguments of (ref)chainSignatureInput for the initiator's `head` at `seq`, with the vectors' fingerprints and session hash. */
const initiatorSigArgs = (seq: bigint, head: Bytes) =>
  [
    "initiator",
    h(D.initiator.fingerprint),
    h(D.responder.fingerprint),
    sessionHash,
    seq,
    head,
  ] as const;

/** The library's non-extractable key equals `expected`: both seal a probe alike. */
async function assertSameKeys(
  lib: TrafficKeys,
  expected: DirectionKeys,
): Promise<void> {
  assert.equal(lib.iv.toHex(), expected.iv);
  const probe = text.encode("probe");
  const nonce = new Uint8Array(12).fill(7), aad = new Uint8Array(3);
  assert.equal(
    (await lib.aead.seal(nonce, probe, aad)).toHex(),
    (await refSeal(h(expected.key), nonce, probe, aad)).toHex(),
  );
}

Deno.test("vector good_record_keys: reference reproduces keys, IVs and the rekey master", async () => {
  assert.equal(K.master, MASTER.toHex());
  assert.equal(K.sessionHash, SESSION_HASH.toHex());
  // The info strings spelled out: u16(len) ‖ u8(len) ‖ "e2e.v1 i2r key" ‖ u8(4) ‖ u32(0).
  assert.equal(
    K.epoch0.i2r.keyInfo,
    cat(
      new Uint8Array([0, 32, 14]),
      text.encode("e2e.v1 i2r key"),
      new Uint8Array([4, 0, 0, 0, 0]),
    ).toHex(),
  );
  assert.equal(
    K.epoch1.r2i.ivInfo,
    cat(
      new Uint8Array([0, 12, 13]),
      text.encode("e2e.v1 r2i iv"),
      new Uint8Array([4, 0, 0, 0, 1]),
    ).toHex(),
  );
  assert.equal(
    K.rekey.info,
    cat(
      new Uint8Array([0, 32, 12]),
      text.encode("e2e.v1 rekey"),
      new Uint8Array([4, 0, 0, 0, 1]),
    ).toHex(),
  );
  for (const d of ["i2r", "r2i"] as const) {
    const r0 = await refTrafficKeys(h(K.master), sessionHash, d, 0);
    assert.deepEqual(
      [r0.key.toHex(), r0.keyInfo.toHex(), r0.iv.toHex(), r0.ivInfo.toHex()],
      [
        K.epoch0[d].key,
        K.epoch0[d].keyInfo,
        K.epoch0[d].iv,
        K.epoch0[d].ivInfo,
      ],
    );
    const r1 = await refTrafficKeys(h(K.rekey.master1), sessionHash, d, 1);
    assert.equal(r1.key.toHex(), K.epoch1[d].key);
    assert.equal(r1.iv.toHex(), K.epoch1[d].iv);
  }
  assert.notEqual(K.epoch0.i2r.key, K.epoch0.r2i.key);
  assert.notEqual(K.epoch0.i2r.key, K.epoch1.i2r.key);
  // Both sides of the rekey ECDH agree.
  const R = K.rekey;
  const sI = await refEcdh(
    h(R.initiatorEphemeralPkcs8),
    h(R.responderEphemeralPublic),
  );
  const sR = await refEcdh(
    h(R.responderEphemeralPkcs8),
    h(R.initiatorEphemeralPublic),
  );
  assert.equal(sI.toHex(), R.sharedSecret);
  assert.equal(sR.toHex(), R.sharedSecret);
  const m1 = await refRekeyMaster(h(K.master), sI, R.newEpoch);
  assert.equal(m1.master.toHex(), R.master1);
  assert.equal(m1.info.toHex(), R.info);
  assert.equal(
    labelInfo("rekey", new Uint8Array([0, 0, 0, 1]), 32).toHex(),
    R.info,
  );
});

Deno.test("vector good_record_keys: lib derives the same keys, IVs and master_1", async () => {
  const master0 = await importSecret(h(K.master));
  for (const d of ["i2r", "r2i"] as const) {
    await assertSameKeys(await libKeys(master0, d, 0), K.epoch0[d]);
  }
  const master1 = await nextMaster(master0, h(K.rekey.sharedSecret), 1);
  for (const d of ["i2r", "r2i"] as const) {
    await assertSameKeys(await libKeys(master1, d, 1), K.epoch1[d]);
  }
});

Deno.test("vector good_record_keys: the same keys, IVs and master_1 from a provider-held master (node:crypto)", async () => {
  // A handshake on a provider hands the session its master as the provider's
  // key object; every derive from it must match the vectors too.
  const hs = nodePrimitives.handshake!;
  const master0: SecretKey = { hkdf: hs.hkdfFrom(h(K.master)) };
  for (const d of ["i2r", "r2i"] as const) {
    await assertSameKeys(await libKeys(master0, d, 0), K.epoch0[d]);
  }
  const master1 = await nextMaster(
    master0,
    h(K.rekey.sharedSecret),
    1,
    nodePrimitives,
  );
  assert.ok("hkdf" in master1, "master_1 stays with the provider");
  for (const d of ["i2r", "r2i"] as const) {
    await assertSameKeys(await libKeys(master1, d, 1), K.epoch1[d]);
  }
});

/** Recomputes one record from its fields with the reference and compares. */
async function checkRecordReference(
  r: RecordVector,
  keys: DirectionKeys,
  senderId: Bytes,
  recipientId: Bytes,
): Promise<void> {
  const counter = BigInt(r.counter);
  const header = refHeader(r.epoch, counter);
  assert.equal(header.toHex(), r.header);
  assert.equal(refNonce(h(keys.iv), counter).toHex(), r.nonce);
  assert.equal(refAad(header, senderId, recipientId).toHex(), r.aad);
  const sig = r.chain ? h(r.chain.signature) : undefined;
  assert.equal(r.flags, sig ? 1 : 0);
  const inner = refInner(r.innerType, r.flags, BigInt(r.seq), h(r.body), sig);
  assert.equal(inner.toHex(), r.innerPlaintext);
  assert.equal(
    inner.length,
    refBucket(14 + h(r.body).length + (sig ? 64 : 0)) - 52,
  );
  await checkSealedReference(keys.key, r, header, inner);
  assert.ok(REF_BUCKETS.includes(r.bucket), `${r.bucket} is a bucket`);
}

/** The library builds, seals, opens and decodes the record alike. */
async function checkRecordLibrary(
  r: RecordVector,
  keys: TrafficKeys,
  senderId: Bytes,
  recipientId: Bytes,
): Promise<void> {
  const counter = BigInt(r.counter);
  const header = encodeRecordHeader(r.epoch, counter);
  assert.equal(header.toHex(), r.header);
  assert.equal(recordNonce(keys.iv, counter).toHex(), r.nonce);
  assert.equal(recordAad(header, senderId, recipientId).toHex(), r.aad);
  const msg = {
    type: r.innerType,
    seq: BigInt(r.seq),
    body: h(r.body),
    ...(r.chain ? { signature: h(r.chain.signature) } : {}),
  };
  const inner = encodeInner(msg);
  assert.equal(inner.toHex(), r.innerPlaintext);
  const packet = await sealRecord(keys, counter, inner, senderId, recipientId);
  assert.equal(packet.toHex(), r.packet);
  assert.deepEqual(decodeRecordHeader(h(r.packet)), {
    epoch: r.epoch,
    counter,
  });
  const pt = await openRecord(
    keys,
    h(r.packet),
    counter,
    senderId,
    recipientId,
  );
  assert.deepEqual(decodeInner(pt), msg);
}

Deno.test("vector good_record_data: reference reproduces every record value and the chain", async () => {
  assert.equal(D.initiatorId, INITIATOR_ID.toHex());
  assert.equal(D.responderId, RESPONDER_ID.toHex());
  assert.equal(rec1.bodyText, BODY_1);
  assert.equal(rec2.bodyText, BODY_2);
  assert.equal(new TextDecoder().decode(h(rec1.body)), BODY_1);
  assert.deepEqual([rec1.counter, rec1.seq, rec2.counter, rec2.seq], [
    "0",
    "1",
    "1",
    "2",
  ]);
  for (const r of D.records) {
    assert.equal(r.direction, "i2r");
    await checkRecordReference(r, K.epoch0.i2r, initiatorId, responderId);
  }
  // Chain: H_0, H_1, H_2 and the signature input spelled out.
  const c = rec2.chain!;
  assert.equal(c.senderRole, "initiator");
  const h0 = await sha(
    cat(text.encode("e2e.v1 chain\0"), sessionHash, text.encode("initiator")),
  );
  assert.equal(h0.toHex(), c.h0);
  assert.equal((await refChainStart(sessionHash, "initiator")).toHex(), c.h0);
  const h1 = await sha(refChainStepInput(h0, 1n, 1, h(rec1.body)));
  assert.equal(h1.toHex(), c.h1);
  const step2 = cat(
    h1,
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, h(rec2.body).length]),
    h(rec2.body),
  );
  assert.equal(step2.toHex(), c.step2Input);
  assert.equal((await sha(step2)).toHex(), c.h2);
  for (const p of [D.initiator, D.responder]) {
    assert.equal((await sha(h(p.identitySpki))).toHex(), p.fingerprint);
  }
  const sigInput = cat(
    text.encode("e2e.v1 chain signature\0initiator"),
    h(D.initiator.fingerprint),
    h(D.responder.fingerprint),
    sessionHash,
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 2]),
    h(c.h2),
  );
  assert.equal(sigInput.toHex(), c.signatureInput);
  assert.equal(
    refChainSignatureInput(...initiatorSigArgs(2n, h(c.h2))).toHex(),
    c.signatureInput,
  );
  const pub = await crypto.subtle.importKey(
    "spki",
    h(D.initiator.identitySpki),
    ECDSA,
    false,
    ["verify"],
  );
  const alg = { name: "ECDSA", hash: "SHA-256" };
  assert.ok(await crypto.subtle.verify(alg, pub, h(c.signature), sigInput));
  // The signature binds the recipient: it fails over swapped fingerprints.
  const swapped = refChainSignatureInput(
    "initiator",
    h(D.responder.fingerprint),
    h(D.initiator.fingerprint),
    sessionHash,
    2n,
    h(c.h2),
  );
  assert.ok(!(await crypto.subtle.verify(alg, pub, h(c.signature), swapped)));
});

Deno.test("vector good_record_data: lib reproduces records and chain", async () => {
  const keys = await libKeys(await importSecret(h(K.master)), "i2r", 0);
  for (const r of D.records) {
    await checkRecordLibrary(r, keys, initiatorId, responderId);
  }
  const c = rec2.chain!;
  const h0 = await chainStart(sessionHash, "initiator");
  assert.equal(h0.toHex(), c.h0);
  const h1 = await chainStep(h0, 1n, 1, h(rec1.body));
  assert.equal(h1.toHex(), c.h1);
  assert.equal(chainStepInput(h1, 2n, 1, h(rec2.body)).toHex(), c.step2Input);
  assert.equal((await chainStep(h1, 2n, 1, h(rec2.body))).toHex(), c.h2);
  assert.equal(
    (await fingerprint(h(D.initiator.identitySpki))).toHex(),
    D.initiator.fingerprint,
  );
  assert.equal(
    chainSignatureInput(...initiatorSigArgs(2n, h(c.h2))).toHex(),
    c.signatureInput,
  );
});

Deno.test("vector good_record_ack: reference and lib reproduce the ACK", async () => {
  const r = A.record;
  assert.deepEqual([r.direction, r.innerType, r.seq, r.flags, r.counter], [
    "r2i",
    3,
    "0",
    0,
    "0",
  ]);
  const body = refAckBody(
    BigInt(A.highest),
    A.acknowledgedCounters.map(BigInt),
    BigInt(A.cumulativeSeq),
  );
  assert.equal(body.length, 144);
  assert.equal(body.toHex(), r.body);
  assert.equal(body.subarray(8, 136).toHex(), A.bitmap);
  assert.equal(h(A.bitmap)[0], 0b11, "bit 0 = counter 1, bit 1 = counter 0");
  assert.ok(h(A.bitmap).subarray(1).every((b) => b === 0));
  await checkRecordReference(r, K.epoch0.r2i, responderId, initiatorId);
  const keys = await libKeys(await importSecret(h(K.master)), "r2i", 0);
  await checkRecordLibrary(r, keys, responderId, initiatorId);
});

// ── Sessions built on the vectors' fixed inputs ─────────────────────────────

const session = (role: "initiator" | "responder", signEvery = 64) =>
  vectorSession(role, { signEvery });

Deno.test("vector good_record_*: a Session sends the DATA records and answers with the ACK", async () => {
  const sender = await session("initiator", 2);
  const [p1] = await sender.send(text.encode(BODY_1), 0);
  assert.equal(p1.toHex(), rec1.packet);
  const [p2] = await sender.send(text.encode(BODY_2), 0);
  // Everything up to the signature is fixed; the signature must verify.
  assert.equal(p2.subarray(0, 14).toHex(), rec2.header);
  const pt = (await refOpen(
    h(K.epoch0.i2r.key),
    h(rec2.nonce),
    p2.subarray(14),
    h(rec2.aad),
  ))!;
  assert.ok(pt);
  const sigAt = 14 + h(rec2.body).length;
  assert.equal(
    pt.subarray(0, sigAt).toHex(),
    rec2.innerPlaintext.slice(0, sigAt * 2),
  );
  assert.equal(
    pt.subarray(sigAt + 64).toHex(),
    rec2.innerPlaintext.slice((sigAt + 64) * 2),
  );
  assert.ok(
    await crypto.subtle.verify(
      { name: "ECDSA", hash: "SHA-256" },
      idI.publicKey,
      pt.subarray(sigAt, sigAt + 64),
      h(rec2.chain!.signatureInput),
    ),
  );

  const receiver = await session("responder");
  const got = await receiver.receiveMany([h(rec1.packet), h(rec2.packet)], 0);
  const messages = got.events.filter((e) => e.type === "message");
  assert.deepEqual(
    messages.map((e) =>
      e.type === "message" && new TextDecoder().decode(e.body)
    ),
    [BODY_1, BODY_2],
  );
  assert.ok(
    got.events.some((e) => e.type === "signature-verified" && e.seq === 2n),
  );
  const acks = [...got.packets, ...await receiver.poll(1000)];
  assert.equal(acks.length, 1);
  assert.equal(acks[0].toHex(), A.record.packet);
  // The sender accepts the ACK and learns both seqs arrived.
  const back = await sender.receive(acks[0], 1000);
  assert.deepEqual(back.events, [{ type: "acked", seqs: [1n, 2n] }]);
});

Deno.test("vector fail_record_*: each gives its outcome at record level and in a Session", async (t) => {
  assert.ok(failNames.length >= 6, `only ${failNames.length} fail vectors`);
  const keys = await libKeys(await importSecret(h(K.master)), "i2r", 0);
  for (const name of failNames) {
    await t.step(name, async () => {
      const v = await load<FailVector>(name);
      assert.equal(v.base, "good_record_data.json");
      assert.equal(v.direction, "i2r");
      const packet = h(v.packet);
      const e = v.expected;
      // Record level: header, AEAD open with the right epoch-0 keys, strict
      // inner decode (of any number of messages, as the Session decodes).
      const strictOpen = async () => {
        const { counter } = decodeRecordHeader(packet);
        decodeInnerAll(
          await openRecord(keys, packet, counter, initiatorId, responderId),
        );
      };
      await assert.rejects(strictOpen(), (err: unknown) => {
        assert.ok(err instanceof ProtocolError, String(err));
        assert.equal(err.code, e.record, err.message);
        return true;
      });
      if (v.innerPlaintext) {
        // The reference opens it to the recorded (bad) plaintext.
        const pt = await refOpen(
          h(K.epoch0.i2r.key),
          h(rec1.nonce),
          packet.subarray(14),
          h(rec1.aad),
        );
        assert.equal(pt?.toHex(), v.innerPlaintext);
      }
      // Session level.
      const receiver = await session("responder");
      if (e.session === "dropped") {
        assert.ok(e.stat && e.stat in receiver.stats, `unknown stat ${e.stat}`);
        const stat = e.stat as keyof SessionStats;
        const before = receiver.stats[stat];
        const res = await receiver.receive(packet, 0);
        assert.deepEqual(res.events, []);
        assert.equal(receiver.stats[stat], before + 1);
        assert.equal(receiver.failed, undefined);
        // The session goes on: the genuine record is still delivered.
        const ok = await receiver.receive(h(rec1.packet), 0);
        assert.equal(ok.events.filter((x) => x.type === "message").length, 1);
      } else {
        await assert.rejects(receiver.receive(packet, 0), (err: unknown) => {
          assert.ok(err instanceof ProtocolError, String(err));
          assert.equal(err.code, e.error, err.message);
          return true;
        });
        assert.equal(receiver.failed?.code, e.error);
      }
    });
  }
});

// ── Coalesced records (PROTOCOL.md §2.2.3) ─────────────────────────────────

const alg = { name: "ECDSA", hash: "SHA-256" };
const decoder = new TextDecoder();
const isMalformed = (err: unknown) =>
  err instanceof ProtocolError && err.code === "malformed";

/** The vector's messages as lib/record.ts InnerMessages (and reference RefMessages). */
function coalescedMessages(): InnerMessage[] {
  return C.record.messages.map((m) => ({
    type: m.innerType,
    seq: BigInt(m.seq),
    body: h(m.body),
    ...(m.chain.signature ? { signature: h(m.chain.signature) } : {}),
  }));
}

Deno.test("vector good_record_data_coalesced: reference reproduces the record, each chain link and the signature", async () => {
  const r = C.record;
  assert.equal(C.base, "good_record_data.json");
  assert.deepEqual([r.direction, r.epoch, r.counter], ["i2r", 0, "2"]);
  assert.deepEqual(
    r.messages.map((m) => [m.innerType, m.seq, m.flags, m.bodyText]),
    [
      [1, "3", 0, COALESCED_BODIES[0]],
      [1, "4", 1, COALESCED_BODIES[1]],
      [1, "5", 0, COALESCED_BODIES[2]],
    ],
  );
  const header = refHeader(0, 2n);
  assert.equal(header.toHex(), "0104" + "00000000" + "0000000000000002");
  assert.equal(header.toHex(), r.header);
  assert.equal(refNonce(h(K.epoch0.i2r.iv), 2n).toHex(), r.nonce);
  assert.equal(refAad(header, initiatorId, responderId).toHex(), r.aad);

  // Chain: H_3 extends H_2 of good_record_data.json; each step and the
  // signature input spelled out.
  const pub = await crypto.subtle.importKey(
    "spki",
    h(D.initiator.identitySpki),
    ECDSA,
    false,
    ["verify"],
  );
  let prev = h(rec2.chain!.h2);
  for (const [i, m] of r.messages.entries()) {
    const body = h(m.body);
    assert.equal(body.toHex(), text.encode(m.bodyText!).toHex());
    assert.equal(m.chain.senderRole, "initiator");
    assert.equal(m.chain.prev, prev.toHex());
    const step = cat(
      prev,
      new Uint8Array([0, 0, 0, 0, 0, 0, 0, 3 + i, 1, 0, 0, 0, body.length]),
      body,
    );
    assert.equal(step.toHex(), m.chain.stepInput);
    assert.equal(
      refChainStepInput(prev, BigInt(3 + i), 1, body).toHex(),
      m.chain.stepInput,
    );
    const head = await sha(step);
    assert.equal(head.toHex(), m.chain.head);
    if (m.flags === 1) {
      const sigInput = cat(
        text.encode("e2e.v1 chain signature\0initiator"),
        h(D.initiator.fingerprint),
        h(D.responder.fingerprint),
        sessionHash,
        new Uint8Array([0, 0, 0, 0, 0, 0, 0, 3 + i]),
        head,
      );
      assert.equal(sigInput.toHex(), m.chain.signatureInput);
      assert.ok(
        await crypto.subtle.verify(alg, pub, h(m.chain.signature!), sigInput),
      );
      // Bound to its own seq and head: it fails over the neighbour's.
      const other = h(r.messages[i + 1].chain.head);
      assert.ok(
        !(await crypto.subtle.verify(
          alg,
          pub,
          h(m.chain.signature!),
          refChainSignatureInput(...initiatorSigArgs(BigInt(4 + i), other)),
        )),
      );
    } else {
      assert.equal(m.chain.signatureInput, undefined);
      assert.equal(m.chain.signature, undefined);
    }
    prev = head;
  }

  // Plaintext: the messages back to back from offset 0, then zeros.
  const pt = h(r.innerPlaintext);
  let at = 0;
  for (const m of r.messages) {
    const body = h(m.body);
    const sig = m.chain.signature ? h(m.chain.signature) : new Uint8Array(0);
    const encoded = cat(
      new Uint8Array([m.innerType, m.flags]),
      be(BigInt(m.seq), 8),
      be(body.length, 4),
      body,
      sig,
    );
    assert.equal(m.offset, at);
    assert.equal(m.length, 14 + body.length + 64 * m.flags);
    assert.equal(m.length, encoded.length);
    assert.equal(pt.subarray(at, at + m.length).toHex(), encoded.toHex());
    at += m.length;
  }
  assert.equal(r.contentLength, at);
  assert.ok(pt.subarray(at).every((b) => b === 0), "zero padding");
  // The smallest bucket of the SUM (512), though each alone fits 256.
  assert.equal(pt.length, refBucket(at) - 52);
  assert.equal(refBucket(at), 512);
  assert.ok(r.messages.every((m) => refBucket(m.length) === 256));
  const msgs: RefMessage[] = coalescedMessages();
  assert.equal(refInnerMany(msgs).toHex(), r.innerPlaintext);
  assert.deepEqual(refDecodeInner(pt), msgs);

  const packet = cat(
    header,
    await refSeal(h(K.epoch0.i2r.key), h(r.nonce), pt, h(r.aad)),
  );
  assert.equal(packet.toHex(), r.packet);
  assert.equal(packet.length + 22, r.bucket);
  assert.equal(r.bucket, 512);
  const opened = await refOpen(
    h(K.epoch0.i2r.key),
    h(r.nonce),
    packet.subarray(14),
    h(r.aad),
  );
  assert.equal(opened?.toHex(), r.innerPlaintext);
});

Deno.test("vector good_record_data_coalesced: lib reproduces the record and the chain", async () => {
  const r = C.record;
  const keys = await libKeys(await importSecret(h(K.master)), "i2r", 0);
  const msgs = coalescedMessages();
  assert.equal(innerLengthMany(msgs), r.contentLength);
  const inner = encodeInnerMany(msgs);
  assert.equal(inner.toHex(), r.innerPlaintext);
  const packet = await sealRecord(keys, 2n, inner, initiatorId, responderId);
  assert.equal(packet.toHex(), r.packet);
  assert.deepEqual(decodeRecordHeader(packet), { epoch: 0, counter: 2n });
  const pt = await openRecord(keys, packet, 2n, initiatorId, responderId);
  assert.deepEqual(decodeInnerAll(pt), msgs);
  // The single-message decoder refuses it.
  assert.throws(() => decodeInner(pt), isMalformed);
  let prev = h(rec2.chain!.h2);
  for (const m of r.messages) {
    const seq = BigInt(m.seq);
    assert.equal(
      chainStepInput(prev, seq, m.innerType, h(m.body)).toHex(),
      m.chain.stepInput,
    );
    prev = await chainStep(prev, seq, m.innerType, h(m.body));
    assert.equal(prev.toHex(), m.chain.head);
    if (m.chain.signatureInput) {
      assert.equal(
        chainSignatureInput(...initiatorSigArgs(seq, prev)).toHex(),
        m.chain.signatureInput,
      );
    }
  }
});

Deno.test("vector good_record_data_coalesced: a Session coalesces the bodies alike; a receiving Session delivers three messages", async () => {
  const r = C.record;
  const sender = await session("initiator", 2);
  const [p1] = await sender.send(text.encode(BODY_1), 0);
  assert.equal(p1.toHex(), rec1.packet);
  await sender.send(text.encode(BODY_2), 0);
  // 1000 ms later (past minSignGapMs): seq 4 is due for a signature.
  const sent = await sender.sendMany(
    COALESCED_BODIES.map((b) => text.encode(b)),
    1000,
  );
  assert.equal(sent.length, 1, "one record for the three bodies");
  const p = sent[0];
  assert.equal(p.length * 2, r.packet.length);
  assert.equal(p.subarray(0, 14).toHex(), r.header);
  const pt = (await refOpen(
    h(K.epoch0.i2r.key),
    h(r.nonce),
    p.subarray(14),
    h(r.aad),
  ))!;
  assert.ok(pt);
  // Identical but for the (verified, not compared) signature of seq 4.
  const signed = r.messages[1];
  const sigAt = signed.offset + 14 + h(signed.body).length;
  assert.ok(
    await crypto.subtle.verify(
      alg,
      idI.publicKey,
      pt.subarray(sigAt, sigAt + 64),
      h(signed.chain.signatureInput!),
    ),
  );
  const patched = pt.slice();
  patched.set(h(signed.chain.signature!), sigAt);
  assert.equal(patched.toHex(), r.innerPlaintext);

  // In order: rec1, rec2, then the coalesced record.
  const receiver = await session("responder");
  const first = await receiver.receiveMany([h(rec1.packet), h(rec2.packet)], 0);
  assert.equal(first.events.filter((e) => e.type === "message").length, 2);
  const verifiedBefore = receiver.stats.signaturesVerified;
  const got = await receiver.receive(h(r.packet), 0);
  assert.deepEqual(
    got.events.flatMap((e) =>
      e.type === "message" ? [[e.seq, e.counter, decoder.decode(e.body)]] : []
    ),
    [
      [3n, 2n, COALESCED_BODIES[0]],
      [4n, 2n, COALESCED_BODIES[1]],
      [5n, 2n, COALESCED_BODIES[2]],
    ],
  );
  assert.deepEqual(
    got.events.filter((e) => e.type === "signature-verified"),
    [{ type: "signature-verified", seq: 4n }],
  );
  assert.equal(receiver.stats.signaturesVerified, verifiedBefore + 1);
  assert.equal(receiver.stats.packetsReceived, 3);
  assert.equal(receiver.failed, undefined);
  // One ACK: the three counters and cumulativeSeq 5; the sender learns 1..5.
  const acks = [...first.packets, ...got.packets, ...await receiver.poll(1000)];
  assert.equal(acks.length, 1);
  const ackPt = await refOpen(
    h(K.epoch0.r2i.key),
    refNonce(h(K.epoch0.r2i.iv), 0n),
    acks[0].subarray(14),
    refAad(refHeader(0, 0n), responderId, initiatorId),
  );
  assert.deepEqual(refDecodeInner(ackPt!), [{
    type: 3,
    seq: 0n,
    body: refAckBody(2n, [0n, 1n, 2n], 5n),
  }]);
  const back = await sender.receive(acks[0], 1000);
  assert.deepEqual(back.events, [{
    type: "acked",
    seqs: [1n, 2n, 3n, 4n, 5n],
  }]);

  // Out of order: the coalesced record first is held, then delivered in seq order.
  const late = await session("responder");
  const early = await late.receive(h(r.packet), 0);
  assert.deepEqual(early.events.filter((e) => e.type === "message"), []);
  const rest = await late.receiveMany([h(rec1.packet), h(rec2.packet)], 0);
  assert.deepEqual(
    rest.events.flatMap((e) => e.type === "message" ? [e.seq] : []),
    [1n, 2n, 3n, 4n, 5n],
  );
  assert.equal(late.failed, undefined);
});

Deno.test("vector fail_record_coalesced_*: each breaks one rule of §2.2.3; the same record without the defect is accepted", async (t) => {
  const off2 = 14 + text.encode(BODY_1).length; // second message of a pair
  const cases: Record<string, {
    ref: RegExp;
    lib: RegExp;
    fix: (pt: Bytes) => void;
    delivered: number;
  }> = {
    "fail_record_coalesced_checkpoint.json": {
      ref: /non-DATA/,
      lib: /only DATA/,
      fix: (pt) => pt[off2] = 1, // CHECKPOINT → DATA seq 2
      delivered: 2,
    },
    "fail_record_coalesced_dummy_first.json": {
      ref: /non-DATA/,
      lib: /only DATA/,
      fix: (pt) => pt.fill(0, 14), // the DUMMY alone
      delivered: 0,
    },
    "fail_record_coalesced_seq_gap.json": {
      ref: /not consecutive/,
      lib: /not consecutive/,
      fix: (pt) => pt[off2 + 9] = 2, // seq 3 → 2
      delivered: 2,
    },
    "fail_record_coalesced_too_many.json": {
      ref: /more than 64/,
      lib: /too many/,
      fix: (pt) => pt.fill(0, 64 * 14), // drop the 65th
      delivered: 64,
    },
    "fail_record_coalesced_truncated.json": {
      ref: /header past the end/,
      lib: /header runs past/,
      fix: (pt) => pt.fill(0, 200), // drop the 4 stray header bytes
      delivered: 1,
    },
  };
  assert.deepEqual(
    failNames.filter((n) => n.startsWith("fail_record_coalesced_")),
    Object.keys(cases).sort(),
  );
  const key = h(K.epoch0.i2r.key);
  for (const [name, c] of Object.entries(cases)) {
    await t.step(name, async () => {
      const v = await load<FailVector>(name);
      assert.deepEqual(v.expected, {
        record: "malformed",
        session: "failed",
        error: "malformed",
      });
      const pt = h(v.innerPlaintext!);
      // It authenticates: the packet is this plaintext sealed at counter 0.
      assert.equal(
        cat(
          h(rec1.header),
          await refSeal(key, h(rec1.nonce), pt, h(rec1.aad)),
        ).toHex(),
        v.packet,
      );
      assert.throws(() => refDecodeInner(pt), c.ref);
      assert.throws(() => decodeInnerAll(pt), (err: unknown) => {
        assert.ok(isMalformed(err), String(err));
        assert.match((err as Error).message, c.lib);
        return true;
      });
      const receiver = await session("responder");
      await assert.rejects(receiver.receive(h(v.packet), 0), isMalformed);
      assert.equal(receiver.failed?.code, "malformed");
      assert.equal(receiver.stats.delivered, 0);
      // Minimal pair: without the defect the reference, lib and a Session accept it.
      const fixed = pt.slice();
      c.fix(fixed);
      assert.equal(refDecodeInner(fixed).length, decodeInnerAll(fixed).length);
      const ok = await session("responder");
      const res = await ok.receive(
        cat(
          h(rec1.header),
          await refSeal(key, h(rec1.nonce), fixed, h(rec1.aad)),
        ),
        0,
      );
      assert.equal(
        res.events.filter((e) => e.type === "message").length,
        c.delivered,
      );
      assert.equal(ok.failed, undefined);
    });
  }
});

// ── Body length per inner type (PROTOCOL.md §2.2.3) ────────────────────────

Deno.test("vector good_record_body_lengths / fail_record_body_*: each type's body length (and seq ≥ 1) is enforced; the rule kept, the record is accepted", async (t) => {
  const G = await load<BodyLengthsVector>("good_record_body_lengths.json");
  // The rules are those of lib/constants.ts and of the reference.
  assert.deepEqual(G.rules, {
    "2": 0,
    "3": ACK_BODY_LENGTH,
    "4": REKEY_BODY_LENGTH,
    "5": REKEY_BODY_LENGTH,
    "6": 0,
    "7": 0,
  });
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(REF_BODY_LENGTH).map(([k, v]) => [k, v]),
    ),
    G.rules,
  );
  const listed = G.records.flatMap((r) => r.failVectors).sort();
  assert.deepEqual(
    listed,
    failNames.filter((n) => n.startsWith("fail_record_body_")),
  );
  const key = h(K.epoch0.i2r.key);
  const sealed = async (pt: Bytes) =>
    cat(h(rec1.header), await refSeal(key, h(rec1.nonce), pt, h(rec1.aad)))
      .toHex();
  for (const r of G.records) {
    await t.step(r.name, async () => {
      const pt = h(r.innerPlaintext);
      assert.equal(await sealed(pt), r.packet, "authentic at counter 0");
      const ref = refDecodeInner(pt);
      assert.equal(ref.length, 1);
      assert.equal(ref[0].body.length, r.bodyLength);
      const lib = decodeInnerAll(pt);
      assert.deepEqual(lib.map((m) => [m.type, m.seq, m.body.length]), [
        [r.innerType, BigInt(r.seq), r.bodyLength],
      ]);
      const ok = await session("responder");
      const res = await ok.receive(h(r.packet), 0);
      assert.deepEqual(res.events.map((e) => e.type), r.events);
      assert.equal(ok.failed, undefined);
      for (const name of r.failVectors) {
        const v = await load<FailVector>(name);
        assert.deepEqual(v.expected, {
          record: "malformed",
          session: "failed",
          error: "malformed",
        });
        const bad = h(v.innerPlaintext!);
        assert.equal(await sealed(bad), v.packet, `${name} authenticates`);
        assert.throws(() => refDecodeInner(bad), /needs a|seq rule/, name);
        assert.throws(() => decodeInnerAll(bad), (err: unknown) => {
          assert.ok(isMalformed(err), String(err));
          assert.match((err as Error).message, /body of|without seq/, name);
          return true;
        });
        const receiver = await session("responder");
        await assert.rejects(receiver.receive(h(v.packet), 0), isMalformed);
        assert.equal(receiver.failed?.code, "malformed");
      }
    });
  }
});
// ── Fine buckets above 1024 bytes (PROTOCOL.md §2.2.3) ────────────────────

Deno.test("bucket list: 256, 512, 1024, then 16 equal steps per power of two up to 65536", () => {
  assert.equal(REF_BUCKETS.length, 3 + 6 * 16);
  assert.deepEqual(REF_BUCKETS.slice(0, 6), [256, 512, 1024, 1088, 1152, 1216]);
  assert.equal(REF_BUCKETS.at(-1), 65536);
  assert.ok(REF_BUCKETS.includes(2048) && REF_BUCKETS.includes(2176));
  // Each bucket above 1024 is at most 1/16 above the one before it.
  for (let i = 3; i < REF_BUCKETS.length; i++) {
    assert.ok(REF_BUCKETS[i] / REF_BUCKETS[i - 1] <= 1 + 1 / 16);
  }
});

Deno.test("vector good_record_data_large: reference and lib reproduce both records; a Session delivers them", async () => {
  assert.equal(L.base, "good_record_data.json");
  assert.deepEqual(L.records.map((r) => r.bucket), [1216, 5120]);
  const keys = await libKeys(await importSecret(h(K.master)), "i2r", 0);
  for (const [i, r] of L.records.entries()) {
    assert.equal(r.bodyText, largeBody(LARGE_BODY_LENGTHS[i]));
    assert.equal(h(r.body).length, LARGE_BODY_LENGTHS[i]);
    assert.equal(r.bucket, refBucket(14 + LARGE_BODY_LENGTHS[i]));
    await checkRecordReference(r, K.epoch0.i2r, initiatorId, responderId);
    await checkRecordLibrary(r, keys, initiatorId, responderId);
  }
  const receiver = await session("responder");
  const got: string[] = [];
  for (const r of L.records) {
    const { events } = await receiver.receive(h(r.packet), 0);
    for (const e of events) {
      if (e.type === "message") got.push(decoder.decode(e.body));
    }
  }
  assert.deepEqual(got, L.records.map((r) => r.bodyText));
  assert.equal(receiver.failed, undefined);
});

Deno.test("vectors: an independent Python (cryptography) decoder from PROTOCOL.md §2.2.1–2.2.4 agrees on every record vector", async () => {
  const ref = await runReference("records.py", vectorDir.pathname);
  for (const d of ["i2r", "r2i"] as const) {
    assert.equal(ref.keys[d].key, K.epoch0[d].key, `${d} key`);
    assert.equal(ref.keys[d].iv, K.epoch0[d].iv, `${d} iv`);
  }
  // Good records: the messages the vectors describe.
  const G = await load<BodyLengthsVector>("good_record_body_lengths.json");
  const expected: Record<string, [number, string][]> = {
    "good_record_data.json#data_seq1": [[1, "1"]],
    "good_record_data.json#data_seq2_signed": [[1, "2"]],
    "good_record_ack.json#ack": [[3, "0"]],
    ...Object.fromEntries(
      L.records.map((r) => [
        `good_record_data_large.json#${r.name}`,
        [[r.innerType, r.seq]],
      ]),
    ),
    "good_record_data_coalesced.json": C.record.messages.map((m) => [
      m.innerType,
      m.seq,
    ]),
    ...Object.fromEntries(
      G.records.map((r) => [
        `good_record_body_lengths.json#${r.name}`,
        [[r.innerType, r.seq]],
      ]),
    ),
  };
  assert.deepEqual(Object.keys(ref.good).sort(), Object.keys(expected).sort());
  for (const [name, msgs] of Object.entries(expected)) {
    assert.deepEqual(
      ref.good[name].map((m: { type: number; seq: string }) => [m.type, m.seq]),
      msgs,
      name,
    );
  }
  // Fail records: the record-level verdict each vector names.
  assert.deepEqual(Object.keys(ref.fail).sort(), failNames);
  for (const name of failNames) {
    const v = await load<FailVector>(name);
    assert.equal(ref.fail[name], v.expected.record, name);
  }
});
