/**
 * Checks tests/vectors/good_record_{rekey,close}.json and
 * fail_session_*.json (fail_record_dummy_*.json are checked with the other
 * fail_record_* by tests/vectors_session_test.ts, and here once more through
 * a Session): the reference of generate_session.ts /
 * generate_session_control.ts (PROTOCOL.md §2.2.6–9, crypto.subtle only,
 * labels typed out) reproduces every deterministic value; lib/ reproduces
 * them; a `Session` pair driven through both scenarios emits the same packets
 * (the rekey ephemerals are injected by standing in for
 * `crypto.subtle.generateKey` while the pair runs); every ECDSA signature is
 * verified, never compared. Regenerate with the command in
 * generate_session_control.ts.
 */

import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  chainSignatureInput,
  chainStart,
  chainStep,
  chainStepInput,
} from "../lib/hash_chain.ts";
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
import {
  nextMaster,
  rekeySignatureInput,
  Session,
  type SessionEvent,
  type SessionOptions,
} from "../lib/session.ts";
import { importSecret } from "../lib/suite.ts";
import {
  BODY_1,
  BODY_2,
  cat,
  type DirectionKeys,
  type FailVector,
  refAad,
  refAckBody,
  refBucket,
  refChainSignatureInput,
  refChainStart,
  refEcdh,
  refHeader,
  refInner,
  refNonce,
  refOpen,
  refRekeyMaster,
  refSeal,
  refTrafficKeys,
  sha,
} from "./vectors/generate_session.ts";
import {
  type CloseVector,
  type ControlRecord,
  refEphemeralPublic,
  refRekeySignatureInput,
  refVerify,
  type RekeyVector,
  type SessionFailVector,
  T,
} from "./vectors/generate_session_control.ts";
import {
  checkSealedReference,
  D,
  h,
  initiatorId,
  K,
  loadVector,
  responderId,
  sessionHash,
  vectorNames,
  vectorSession,
} from "./helpers/session_vectors.ts";

const load = loadVector;
const R = await load<RekeyVector>("good_record_rekey.json");
const C = await load<CloseVector>("good_record_close.json");
const sessionFailNames = vectorNames("fail_session_");

const text = new TextEncoder();
const spki = {
  initiator: h(D.initiator.identitySpki),
  responder: h(D.responder.identitySpki),
};
const fp = {
  initiator: h(D.initiator.fingerprint),
  responder: h(D.responder.fingerprint),
};
const ids = (d: "i2r" | "r2i"): [Bytes, Bytes] =>
  d === "i2r" ? [initiatorId, responderId] : [responderId, initiatorId];
const [rekeyInit, rekeyResp, dataE1] = R.records;
const [data3, checkpoint, dummy, closeI] = C.initiatorRecords;
const [ackR, closeR] = C.responderRecords;

/** Reference keys of a record's direction and epoch. */
function refKeysOf(r: ControlRecord): DirectionKeys {
  return (r.epoch === 0 ? K.epoch0 : R.epoch1)[r.direction];
}

/** The signature carried by a record: chain signature (flags bit 0) or rekey share. */
function carriedSignature(
  r: ControlRecord,
): { at: number; sig: string; input: string } | undefined {
  const bodyLen = h(r.body).length;
  if (r.chain?.signature) {
    return {
      at: 14 + bodyLen,
      sig: r.chain.signature,
      input: r.chain.signatureInput!,
    };
  }
  if (r.rekey) {
    return {
      at: 14 + 65,
      sig: r.rekey.signature,
      input: r.rekey.signatureInput,
    };
  }
  return undefined;
}

/** Recomputes a record with the reference: header, nonce, AAD, padded inner, packet; verifies its signature. */
async function checkReference(r: ControlRecord): Promise<void> {
  const keys = refKeysOf(r);
  const [sender, recipient] = ids(r.direction);
  const counter = BigInt(r.counter);
  const header = refHeader(r.epoch, counter);
  // Header spelled out: ver 1 ‖ type 4 ‖ u32(epoch) ‖ u64(counter).
  assert.equal(header[0], 1);
  assert.equal(header[1], 4);
  assert.equal(new DataView(header.buffer).getUint32(2), r.epoch);
  assert.equal(header.toHex(), r.header);
  assert.equal(refNonce(h(keys.iv), counter).toHex(), r.nonce);
  assert.equal(refAad(header, sender, recipient).toHex(), r.aad);
  const flagSig = r.chain?.signature ? h(r.chain.signature) : undefined;
  assert.equal(r.flags, flagSig ? 1 : 0);
  const inner = refInner(
    r.innerType,
    r.flags,
    BigInt(r.seq),
    h(r.body),
    flagSig,
  );
  assert.equal(inner.toHex(), r.innerPlaintext);
  assert.equal(
    inner.length,
    refBucket(14 + h(r.body).length + (flagSig ? 64 : 0)) - 52,
  );
  await checkSealedReference(keys.key, r, header, inner);
  const s = carriedSignature(r);
  if (s) {
    assert.equal(inner.subarray(s.at, s.at + 64).toHex(), s.sig);
    const role = r.direction === "i2r" ? "initiator" : "responder";
    assert.ok(
      await refVerify(spki[role], h(s.sig), h(s.input)),
      `${r.name}: signature`,
    );
  }
}

/** Checks a record's chain link with the reference; returns H_s. */
async function checkLinkReference(
  r: ControlRecord,
  prev: Bytes,
): Promise<Bytes> {
  const c = r.chain!;
  assert.equal(c.prev, prev.toHex(), `${r.name}: chain continues`);
  const body = h(r.body);
  // H_{s−1} ‖ u64(s) ‖ u8(type) ‖ u32(bodyLen) ‖ body, spelled out.
  const step = cat(
    prev,
    new Uint8Array(7),
    new Uint8Array([Number(r.seq), r.innerType, 0, 0, 0, body.length]),
    body,
  );
  assert.equal(step.toHex(), c.stepInput);
  const head = await sha(step);
  assert.equal(head.toHex(), c.head);
  if (c.signatureInput) {
    const role = c.senderRole;
    const peer = role === "initiator" ? "responder" : "initiator";
    const input = cat(
      text.encode(`e2e.v1 chain signature\0${role}`),
      fp[role],
      fp[peer],
      sessionHash,
      new Uint8Array(7),
      new Uint8Array([Number(r.seq)]),
      head,
    );
    assert.equal(input.toHex(), c.signatureInput);
    assert.equal(
      refChainSignatureInput(
        role,
        fp[role],
        fp[peer],
        sessionHash,
        BigInt(r.seq),
        head,
      ).toHex(),
      c.signatureInput,
    );
  }
  return head;
}

/** lib builds, seals, opens and decodes the record alike; its chain step and signature input agree. */
async function checkLibrary(
  r: ControlRecord,
  keys: TrafficKeys,
): Promise<void> {
  const [sender, recipient] = ids(r.direction);
  const counter = BigInt(r.counter);
  assert.equal(encodeRecordHeader(r.epoch, counter).toHex(), r.header);
  assert.equal(recordNonce(keys.iv, counter).toHex(), r.nonce);
  assert.equal(recordAad(h(r.header), sender, recipient).toHex(), r.aad);
  const msg = {
    type: r.innerType,
    seq: BigInt(r.seq),
    body: h(r.body),
    ...(r.chain?.signature ? { signature: h(r.chain.signature) } : {}),
  };
  assert.equal(encodeInner(msg).toHex(), r.innerPlaintext);
  assert.equal(
    (await sealRecord(keys, counter, encodeInner(msg), sender, recipient))
      .toHex(),
    r.packet,
  );
  assert.deepEqual(decodeRecordHeader(h(r.packet)), {
    epoch: r.epoch,
    counter,
  });
  assert.deepEqual(
    decodeInner(
      await openRecord(keys, h(r.packet), counter, sender, recipient),
    ),
    msg,
  );
  if (r.chain) {
    const c = r.chain;
    assert.equal(
      chainStepInput(h(c.prev), msg.seq, r.innerType, msg.body).toHex(),
      c.stepInput,
    );
    assert.equal(
      (await chainStep(h(c.prev), msg.seq, r.innerType, msg.body)).toHex(),
      c.head,
    );
    if (c.signatureInput) {
      const peer = c.senderRole === "initiator" ? "responder" : "initiator";
      assert.equal(
        chainSignatureInput(
          c.senderRole,
          fp[c.senderRole],
          fp[peer],
          sessionHash,
          msg.seq,
          h(c.head),
        ).toHex(),
        c.signatureInput,
      );
    }
  }
  if (r.rekey) {
    assert.equal(
      rekeySignatureInput(
        sessionHash,
        1,
        r.rekey.senderRole,
        h(r.rekey.ephemeralPublic),
      ).toHex(),
      r.rekey.signatureInput,
    );
  }
}

/** A Session packet equals the vector's, apart from its signature bytes, which must verify. */
async function assertSessionPacket(
  packet: Bytes,
  r: ControlRecord,
): Promise<void> {
  assert.equal(packet.subarray(0, 14).toHex(), r.header, `${r.name}: header`);
  assert.equal(packet.length, h(r.packet).length, `${r.name}: length`);
  const keys = refKeysOf(r);
  const pt = await refOpen(
    h(keys.key),
    h(r.nonce),
    packet.subarray(14),
    h(r.aad),
  );
  assert.ok(pt, `${r.name}: opens with the vector's key`);
  const s = carriedSignature(r);
  if (!s) {
    assert.equal(packet.toHex(), r.packet, `${r.name}: packet`);
    return;
  }
  const want = h(r.innerPlaintext);
  assert.equal(
    pt.subarray(0, s.at).toHex(),
    want.subarray(0, s.at).toHex(),
    `${r.name}: before the signature`,
  );
  assert.equal(
    pt.subarray(s.at + 64).toHex(),
    want.subarray(s.at + 64).toHex(),
    `${r.name}: after the signature`,
  );
  const role = r.direction === "i2r" ? "initiator" : "responder";
  assert.ok(
    await refVerify(spki[role], pt.subarray(s.at, s.at + 64), h(s.input)),
    `${r.name}: signature`,
  );
}

// ── good_record_rekey ───────────────────────────────────────────────────────

Deno.test("vector good_record_rekey: reference reproduces shares, master_1, keys, records and chain", async () => {
  assert.equal(R.newEpoch, 1);
  assert.deepEqual(
    R.records.map((
      r,
    ) => [
      r.name,
      r.direction,
      r.epoch,
      r.counter,
      r.innerType,
      r.seq,
      r.flags,
    ]),
    [
      ["rekey_init", "i2r", 0, "2", T.REKEY_INIT, "3", 0],
      ["rekey_resp", "r2i", 0, "1", T.REKEY_RESP, "1", 0],
      ["data_epoch1_seq4_signed", "i2r", 1, "4", T.DATA, "4", 1],
    ],
  );
  for (const r of [rekeyInit, rekeyResp]) {
    const s = r.rekey!;
    assert.equal(
      s.senderRole,
      r.direction === "i2r" ? "initiator" : "responder",
    );
    const pub = await refEphemeralPublic(h(s.ephemeralPkcs8));
    assert.equal(pub.toHex(), s.ephemeralPublic);
    assert.equal(pub.length, 65);
    assert.equal(pub[0], 4, "uncompressed point");
    // "e2e.v1 rekey\0" ‖ sessionHash ‖ u32(1) ‖ role ‖ eph, spelled out.
    const input = cat(
      text.encode("e2e.v1 rekey\0"),
      sessionHash,
      new Uint8Array([0, 0, 0, 1]),
      text.encode(s.senderRole),
      pub,
    );
    assert.equal(input.toHex(), s.signatureInput);
    assert.equal(
      refRekeySignatureInput(sessionHash, 1, s.senderRole, pub).toHex(),
      s.signatureInput,
    );
    assert.equal(r.body, s.ephemeralPublic + s.signature, "body = eph ‖ sig");
    assert.ok(await refVerify(spki[s.senderRole], h(s.signature), input));
    // Bound to the epoch and to the role.
    const other = s.senderRole === "initiator" ? "responder" : "initiator";
    assert.ok(
      !(await refVerify(
        spki[s.senderRole],
        h(s.signature),
        refRekeySignatureInput(sessionHash, 2, s.senderRole, pub),
      )),
    );
    assert.ok(
      !(await refVerify(
        spki[s.senderRole],
        h(s.signature),
        refRekeySignatureInput(sessionHash, 1, other, pub),
      )),
    );
  }
  // Same ephemerals as good_record_keys.json.
  assert.equal(
    rekeyInit.rekey!.ephemeralPkcs8,
    K.rekey.initiatorEphemeralPkcs8,
  );
  assert.equal(
    rekeyResp.rekey!.ephemeralPkcs8,
    K.rekey.responderEphemeralPkcs8,
  );
  const sI = await refEcdh(
    h(rekeyInit.rekey!.ephemeralPkcs8),
    h(rekeyResp.rekey!.ephemeralPublic),
  );
  const sR = await refEcdh(
    h(rekeyResp.rekey!.ephemeralPkcs8),
    h(rekeyInit.rekey!.ephemeralPublic),
  );
  assert.equal(sI.toHex(), R.sharedSecret);
  assert.equal(sR.toHex(), R.sharedSecret);
  const m1 = await refRekeyMaster(h(K.master), sI, 1);
  assert.equal(m1.master.toHex(), R.master1);
  assert.equal(
    m1.info.toHex(),
    cat(
      new Uint8Array([0, 32, 12]),
      text.encode("e2e.v1 rekey"),
      new Uint8Array([4, 0, 0, 0, 1]),
    ).toHex(),
  );
  assert.equal(m1.info.toHex(), R.info);
  assert.equal(R.master1, K.rekey.master1);
  for (const d of ["i2r", "r2i"] as const) {
    const k = await refTrafficKeys(m1.master, sessionHash, d, 1);
    assert.deepEqual(R.epoch1[d], {
      key: k.key.toHex(),
      keyInfo: k.keyInfo.toHex(),
      iv: k.iv.toHex(),
      ivInfo: k.ivInfo.toHex(),
    });
    assert.deepEqual(R.epoch1[d], K.epoch1[d]);
  }
  for (const r of R.records) await checkReference(r);
  // DATA under epoch 1 does not open with the epoch-0 key.
  assert.equal(
    await refOpen(
      h(K.epoch0.i2r.key),
      h(dataE1.nonce),
      h(dataE1.packet).subarray(14),
      h(dataE1.aad),
    ),
    null,
  );
  // Chains: the initiator's continues from good_record_data's H_2 through REKEY_INIT (H_3) to DATA (H_4).
  const h3 = await checkLinkReference(rekeyInit, h(D.records[1].chain!.h2));
  await checkLinkReference(dataE1, h3);
  await checkLinkReference(
    rekeyResp,
    await refChainStart(sessionHash, "responder"),
  );
});

Deno.test("vector good_record_rekey: lib reproduces master_1, epoch-1 keys, records and chain", async () => {
  const master0 = await importSecret(h(K.master));
  const master1 = await nextMaster(master0, h(R.sharedSecret), 1);
  const probe = text.encode("probe"),
    nonce = new Uint8Array(12).fill(9),
    aad = new Uint8Array(2);
  for (const d of ["i2r", "r2i"] as const) {
    const k = await deriveTrafficKeys(master1, sessionHash, d, 1);
    assert.equal(k.iv.toHex(), R.epoch1[d].iv);
    assert.equal(
      (await k.aead.seal(nonce, probe, aad)).toHex(),
      (await refSeal(h(R.epoch1[d].key), nonce, probe, aad)).toHex(),
    );
  }
  for (const r of R.records) {
    const keys = await deriveTrafficKeys(
      r.epoch === 0 ? master0 : master1,
      sessionHash,
      r.direction,
      r.epoch,
    );
    await checkLibrary(r, keys);
  }
  assert.equal(
    (await chainStart(sessionHash, "responder")).toHex(),
    rekeyResp.chain!.prev,
  );
});

// ── Sessions on the vectors' fixed inputs ───────────────────────────────────

const session = vectorSession;

/**
 * Makes the next ECDH key generations return the given PKCS#8 keys, in
 * order (lib/suite.ts generateEphemeral uses crypto.subtle.generateKey);
 * returns the function that restores the original.
 */
async function injectEphemerals(pkcs8s: string[]): Promise<() => void> {
  const ECDH = { name: "ECDH", namedCurve: "P-256" } as const;
  const queue: CryptoKeyPair[] = [];
  for (const p of pkcs8s) {
    queue.push({
      privateKey: await crypto.subtle.importKey("pkcs8", h(p), ECDH, false, [
        "deriveBits",
      ]),
      publicKey: await crypto.subtle.importKey(
        "raw",
        await refEphemeralPublic(h(p)),
        ECDH,
        true,
        [],
      ),
    });
  }
  const subtle = crypto.subtle as unknown as Record<string, unknown>;
  const original = crypto.subtle.generateKey.bind(crypto.subtle);
  subtle.generateKey = (alg: AlgorithmIdentifier, ...rest: unknown[]) => {
    if ((alg as { name?: string }).name === "ECDH" && queue.length > 0) {
      return Promise.resolve(queue.shift()!);
    }
    return (original as (...a: unknown[]) => unknown)(alg, ...rest);
  };
  return () => {
    delete subtle.generateKey;
    assert.equal(queue.length, 0, "every injected ephemeral was used");
  };
}

const types = (events: SessionEvent[]) => events.map((e) => e.type);

/** Initiator sent DATA seq 1, 2; the responder acknowledged (good_record_data / good_record_ack). */
async function startPair(
  optionsI: SessionOptions,
): Promise<{ I: Session; Rs: Session }> {
  const I = await session("initiator", { signEvery: 2, ...optionsI });
  const Rs = await session("responder");
  const [p1] = await I.send(text.encode(BODY_1), 0);
  const [p2] = await I.send(text.encode(BODY_2), 0);
  assert.equal(p1.toHex(), D.records[0].packet);
  const got = await Rs.receiveMany([p1, p2], 0);
  const acks = [...got.packets, ...await Rs.poll(1000)];
  assert.equal(acks.length, 1);
  assert.deepEqual((await I.receive(acks[0], 50)).events, [{
    type: "acked",
    seqs: [1n, 2n],
  }]);
  return { I, Rs };
}

Deno.test("vector good_record_rekey: a Session pair with the vector's ephemerals rekeys alike", async () => {
  const restore = await injectEphemerals([
    rekeyInit.rekey!.ephemeralPkcs8,
    rekeyResp.rekey!.ephemeralPkcs8,
  ]);
  try {
    const { I, Rs } = await startPair({ rekeyAfterMs: 1000 });
    const out = await I.poll(1000);
    assert.equal(out.length, 1);
    await assertSessionPacket(out[0], rekeyInit);
    const r = await Rs.receive(out[0], 1000);
    assert.deepEqual(r.events, [{ type: "rekeyed", epoch: 1 }]);
    assert.equal(r.packets.length, 2, "REKEY_RESP then the ACK");
    await assertSessionPacket(r.packets[0], rekeyResp);
    assert.deepEqual(decodeRecordHeader(r.packets[1]), {
      epoch: 1,
      counter: 2n,
    });
    assert.equal(Rs.epoch, 1);
    const back = await I.receiveMany(r.packets, 1000);
    assert.deepEqual(types(back.events), ["rekeyed", "acked"]);
    assert.equal(I.epoch, 1);
    assert.equal(back.packets.length, 1);
    assert.deepEqual(decodeRecordHeader(back.packets[0]), {
      epoch: 1,
      counter: 3n,
    });
    const [d] = await I.send(text.encode(dataE1.bodyText!), 1000);
    await assertSessionPacket(d, dataE1);
    const last = await Rs.receiveMany([back.packets[0], d], 1000);
    assert.deepEqual(last.events.filter((e) => e.type !== "acked"), [
      { type: "signature-verified", seq: 4n },
      {
        type: "message",
        seq: 4n,
        counter: 4n,
        body: text.encode(dataE1.bodyText!),
      },
    ]);
    assert.equal(I.failed, undefined);
    assert.equal(Rs.failed, undefined);
  } finally {
    restore();
  }
});

// ── good_record_close ───────────────────────────────────────────────────────

Deno.test("vector good_record_close: reference reproduces DATA, CHECKPOINT, DUMMY, CLOSE, ACK and chains", async () => {
  assert.deepEqual(
    [...C.initiatorRecords, ...C.responderRecords].map((
      r,
    ) => [r.name, r.direction, r.counter, r.innerType, r.seq, r.flags]),
    [
      ["data_seq3", "i2r", "2", T.DATA, "3", 0],
      ["checkpoint_seq4_signed", "i2r", "3", T.CHECKPOINT, "4", 1],
      ["dummy", "i2r", "4", T.DUMMY, "0", 0],
      ["close_seq5_signed", "i2r", "5", T.CLOSE, "5", 1],
      ["ack", "r2i", "1", T.ACK, "0", 0],
      ["close_seq1_signed", "r2i", "2", T.CLOSE, "1", 1],
    ],
  );
  for (const r of [...C.initiatorRecords, ...C.responderRecords]) {
    assert.equal(r.epoch, 0);
    await checkReference(r);
  }
  for (const r of [checkpoint, dummy, closeI, closeR]) {
    assert.equal(r.body, "", `${r.name}: empty body`);
  }
  // DUMMY: same bucket and header layout as a short DATA, nothing but the counter differs in the clear.
  const short = D.records[0];
  assert.equal(dummy.bucket, 256);
  assert.equal(h(dummy.packet).length, h(short.packet).length);
  assert.equal(dummy.header.slice(0, 12), short.header.slice(0, 12));
  assert.equal(dummy.chain, undefined, "DUMMY is not in the chain");
  // ACK: highest 5, counters 0..5 (the DUMMY's included), cumulativeSeq 5.
  const ackBody = refAckBody(
    BigInt(C.ack.highest),
    C.ack.acknowledgedCounters.map(BigInt),
    BigInt(C.ack.cumulativeSeq),
  );
  assert.equal(ackBody.toHex(), ackR.body);
  assert.equal(h(ackR.body)[8], 0b111111);
  // Chains: H_2 → DATA (H_3) → CHECKPOINT (H_4, signed) → CLOSE (H_5, signed); the responder's CLOSE is its H_1.
  const h3 = await checkLinkReference(data3, h(D.records[1].chain!.h2));
  const h4 = await checkLinkReference(checkpoint, h3);
  await checkLinkReference(closeI, h4);
  const h0R = await sha(
    cat(text.encode("e2e.v1 chain\0"), sessionHash, text.encode("responder")),
  );
  assert.equal(
    h0R.toHex(),
    (await refChainStart(sessionHash, "responder")).toHex(),
  );
  await checkLinkReference(closeR, h0R);
  assert.equal(data3.chain!.signature, undefined);
});

Deno.test("vector good_record_close: lib reproduces the records and chain", async () => {
  const master0 = await importSecret(h(K.master));
  for (const r of [...C.initiatorRecords, ...C.responderRecords]) {
    await checkLibrary(
      r,
      await deriveTrafficKeys(master0, sessionHash, r.direction, 0),
    );
  }
});

Deno.test("vector good_record_close: a Session pair sends and answers them alike", async () => {
  const { I, Rs } = await startPair({
    coverRate: C.cover.coverRate,
    random: () => C.cover.random,
  });
  assert.deepEqual(await I.poll(0), [], "arms the cover timer");
  const [d3] = await I.send(text.encode(data3.bodyText!), 100);
  await assertSessionPacket(d3, data3);
  const polled = await I.poll(1100);
  assert.equal(
    polled.length,
    2,
    "CHECKPOINT (signIntervalMs after seq 3) and a DUMMY",
  );
  await assertSessionPacket(polled[0], checkpoint);
  await assertSessionPacket(polled[1], dummy);
  const [cl] = await I.close(1200);
  await assertSessionPacket(cl, closeI);
  const got = await Rs.receiveMany([d3, ...polled, cl], 1200);
  assert.deepEqual(types(got.events), [
    "message",
    "signature-verified",
    "signature-verified",
    "peer-closed",
  ]);
  assert.equal(Rs.stats.dummiesReceived, 1);
  assert.equal(got.packets.length, 2);
  await assertSessionPacket(got.packets[0], ackR);
  await assertSessionPacket(got.packets[1], closeR);
  const back = await I.receiveMany(got.packets, 1300);
  assert.deepEqual(types(back.events), [
    "acked",
    "signature-verified",
    "peer-closed",
    "closed",
  ]);
  const end = await Rs.receiveMany(back.packets, 1300);
  assert.deepEqual(types(end.events), ["acked", "closed"]);
  assert.ok(I.closed && Rs.closed);
});

// ── fail vectors ────────────────────────────────────────────────────────────

Deno.test("vector fail_session_*: authenticated, well-formed, and refused by the receiving Session", async (t) => {
  assert.ok(
    sessionFailNames.length >= 4,
    `only ${sessionFailNames.length} fail_session vectors`,
  );
  const master0 = await importSecret(h(K.master));
  for (const name of sessionFailNames) {
    await t.step(name, async () => {
      const v = await load<SessionFailVector>(name);
      assert.equal(v.epoch, 0);
      assert.equal(v.expected.record, "ok");
      const packet = h(v.packet);
      const counter = BigInt(v.counter);
      const [sender, recipient] = ids(v.direction);
      assert.deepEqual(decodeRecordHeader(packet), { epoch: 0, counter });
      // Reference: opens to the recorded plaintext.
      const header = refHeader(0, counter);
      const pt = await refOpen(
        h(K.epoch0[v.direction].key),
        refNonce(h(K.epoch0[v.direction].iv), counter),
        packet.subarray(14),
        refAad(header, sender, recipient),
      );
      assert.equal(pt?.toHex(), v.innerPlaintext);
      // lib: strict open and decode succeed; the refusal is the session's.
      const keys = await deriveTrafficKeys(
        master0,
        sessionHash,
        v.direction,
        0,
      );
      decodeInner(await openRecord(keys, packet, counter, sender, recipient));
      const receiver = await session(v.receiver);
      for (const p of v.precededBy) await receiver.receive(h(p.packet), 0);
      await assert.rejects(receiver.receive(packet, 0), (err: unknown) => {
        assert.ok(err instanceof ProtocolError, String(err));
        assert.equal(err.code, v.expected.error, err.message);
        return true;
      });
      assert.equal(receiver.failed?.code, v.expected.error);
    });
  }
});

Deno.test("vector fail_record_dummy_*: a malformed DUMMY ends the receiving Session", async () => {
  for (
    const name of [
      "fail_record_dummy_signed.json",
      "fail_record_dummy_nonzero_seq.json",
    ]
  ) {
    const v = await load<FailVector>(name);
    const pt = h(v.innerPlaintext!);
    assert.equal(pt[0], T.DUMMY);
    assert.ok(
      pt[1] === 1 || pt.subarray(2, 10).some((b) => b !== 0),
      `${name}: signed or seq ≠ 0`,
    );
    const receiver = await session("responder");
    await assert.rejects(receiver.receive(h(v.packet), 0), (err: unknown) => {
      assert.ok(
        err instanceof ProtocolError && err.code === v.expected.error,
        String(err),
      );
      return true;
    });
    // A well-formed DUMMY is dropped after authentication, the session goes on.
    const ok = await session("responder");
    const [s] = await sealDummy();
    assert.deepEqual((await ok.receive(s, 0)).events, []);
    assert.equal(ok.stats.dummiesReceived, 1);
  }
});

/** The close vector's DUMMY re-sealed at counter 0 (a first packet). */
async function sealDummy(): Promise<Bytes[]> {
  const inner = refInner(T.DUMMY, 0, 0n, new Uint8Array(0));
  const header = refHeader(0, 0n);
  assert.equal(inner.toHex(), dummy.innerPlaintext);
  return [
    cat(
      header,
      await refSeal(
        h(K.epoch0.i2r.key),
        refNonce(h(K.epoch0.i2r.iv), 0n),
        inner,
        refAad(header, initiatorId, responderId),
      ),
    ),
  ];
}
