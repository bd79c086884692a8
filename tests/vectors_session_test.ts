/**
 * Checks tests/vectors/good_record_{keys,data,ack}.json and
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
import type { HandshakeResult } from "../lib/handshake_result.ts";
import {
  chainSignatureInput,
  chainStart,
  chainStep,
  chainStepInput,
} from "../lib/hash_chain.ts";
import { type Identity, importIdentity } from "../lib/identity.ts";
import {
  decodeInner,
  decodeRecordHeader,
  deriveTrafficKeys,
  encodeInner,
  encodeRecordHeader,
  openRecord,
  recordAad,
  recordNonce,
  sealRecord,
  type TrafficKeys,
} from "../lib/record.ts";
import { nextMaster, Session, type SessionStats } from "../lib/session.ts";
import { importSecret } from "../lib/suite.ts";
import {
  type AckVector,
  BODY_1,
  BODY_2,
  cat,
  type DataVector,
  type DirectionKeys,
  type FailVector,
  INITIATOR_ID,
  type KeysVector,
  labelInfo,
  MASTER,
  type RecordVector,
  refAad,
  refAckBody,
  refBucket,
  refChainSignatureInput,
  refChainStart,
  refChainStepInput,
  refEcdh,
  refHeader,
  refInner,
  refNonce,
  refOpen,
  refRekeyMaster,
  refSeal,
  refTrafficKeys,
  RESPONDER_ID,
  SESSION_HASH,
  sha,
} from "./vectors/generate_session.ts";

const dir = new URL("./vectors/", import.meta.url);
const load = async <T>(name: string): Promise<T> =>
  JSON.parse(await Deno.readTextFile(new URL(name, dir)));
const K = await load<KeysVector>("good_record_keys.json");
const D = await load<DataVector>("good_record_data.json");
const A = await load<AckVector>("good_record_ack.json");
const failNames = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => n.startsWith("fail_record_") && n.endsWith(".json"))
  .sort();

const h = (s: string): Bytes => Uint8Array.fromHex(s);
const text = new TextEncoder();
const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const [rec1, rec2] = D.records;
const sessionHash = h(K.sessionHash);
const initiatorId = h(D.initiatorId), responderId = h(D.responderId);

/** Library traffic keys of `direction` in `epoch` from a raw master. */
function libKeys(master: CryptoKey, direction: "i2r" | "r2i", epoch: number) {
  return deriveTrafficKeys(master, sessionHash, direction, epoch);
}

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
  const packet = cat(
    header,
    await refSeal(h(keys.key), h(r.nonce), inner, h(r.aad)),
  );
  assert.equal(packet.toHex(), r.packet);
  assert.equal(packet.length + 22, r.bucket);
  assert.equal(r.bucket & (r.bucket - 1), 0, "bucket is a power of two");
  const opened = await refOpen(
    h(keys.key),
    h(r.nonce),
    packet.subarray(14),
    h(r.aad),
  );
  assert.equal(opened?.toHex(), r.innerPlaintext);
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
    refChainSignatureInput(
      "initiator",
      h(D.initiator.fingerprint),
      h(D.responder.fingerprint),
      sessionHash,
      2n,
      h(c.h2),
    ).toHex(),
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
    chainSignatureInput(
      "initiator",
      h(D.initiator.fingerprint),
      h(D.responder.fingerprint),
      sessionHash,
      2n,
      h(c.h2),
    ).toHex(),
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

async function identity(p: DataVector["initiator"]): Promise<Identity> {
  return await importIdentity(h(p.identityPkcs8), h(p.identitySpki), "vector");
}
const idI = await identity(D.initiator);
const idR = await identity(D.responder);

async function session(
  role: "initiator" | "responder",
  signEvery = 64,
): Promise<Session> {
  const [local, peer] = role === "initiator" ? [idI, idR] : [idR, idI];
  const result: HandshakeResult = {
    role,
    suite: 1,
    localId: role === "initiator" ? initiatorId : responderId,
    peerId: role === "initiator" ? responderId : initiatorId,
    localIdentity: local,
    peerIdentity: { publicKey: peer.publicKey, spki: peer.spki },
    sessionHash,
    master: await importSecret(h(K.master)),
  };
  return await Session.fromHandshake(result, {
    signEvery,
    keepTranscript: false,
  });
}

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
      // Record level: header, AEAD open with the right epoch-0 keys, strict inner decode.
      const strictOpen = async () => {
        const { counter } = decodeRecordHeader(packet);
        decodeInner(
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
