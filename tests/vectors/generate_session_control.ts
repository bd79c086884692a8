/**
 * Generates the session control-record vectors in this folder —
 * `good_record_rekey.json` (REKEY_INIT / REKEY_RESP and a DATA record under
 * epoch 1), `good_record_close.json` (DATA, CHECKPOINT, DUMMY and CLOSE, the
 * peer's ACK and answering CLOSE), `fail_record_dummy_*.json` and
 * `fail_session_*.json` — and exports the reference pieces
 * tests/vectors_session_control_test.ts checks them with. Like
 * generate_session.ts (whose reference functions it reuses) it is written
 * from PROTOCOL.md §2.2 with `crypto.subtle` only, labels typed out.
 *
 * Both scenarios continue good_record_data.json / good_record_ack.json: the
 * initiator sent DATA seq 1, 2 (counters 0, 1), the responder acknowledged
 * them with its counter-0 ACK. The rekey ephemerals are those of
 * good_record_keys.json, so shared secret, master_1 and the epoch-1 keys
 * equal that file's. Counters and seqs are the ones a `Session` pair uses
 * when driven as tests/vectors_session_control_test.ts does (initiator
 * `signEvery: 2`, responder default).
 *
 * Run by hand from the repository root (a re-run is byte-identical as long
 * as Deno signs deterministically; checkers verify signatures, never compare
 * them):
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/vectors/generate_session_control.ts
 * @module
 */

import {
  type AckVector,
  be,
  cat,
  type DataVector,
  type DirectionKeys,
  type FailVector,
  hexKeys,
  INITIATOR_ID,
  type KeysVector,
  type MessageChain,
  type RecordFields,
  type RecordVector,
  refAckBody,
  refChainSignatureInput,
  refChainStart,
  refChainStepInput,
  refEcdh,
  refInner,
  refRecord,
  refRekeyMaster,
  refSeal,
  refTrafficKeys,
  RESPONDER_ID,
  SESSION_HASH,
  sha,
  write,
} from "./generate_session.ts";

// ── Vector file shapes ──────────────────────────────────────────────────────

/** Where a reliable record sits in its sender's chain (hex): the fields of a coalesced message's {@link MessageChain}. */
export type ChainLink = MessageChain;

/** The signed rekey share in a REKEY_INIT / REKEY_RESP body (hex). */
export interface RekeyShare {
  senderRole: "initiator" | "responder";
  ephemeralPkcs8: string;
  /** 65-byte uncompressed point: body[0..65). */
  ephemeralPublic: string;
  /** "e2e.v1 rekey\0" ‖ sessionHash ‖ u32(newEpoch) ‖ senderRole ‖ eph. */
  signatureInput: string;
  /** body[65..129): one recorded signature (verify, do not compare). */
  signature: string;
}

/** A sealed record with its chain link and, for rekey messages, its share. */
export interface ControlRecord extends Omit<RecordVector, "chain"> {
  chain?: ChainLink;
  rekey?: RekeyShare;
}

/** good_record_rekey.json */
export interface RekeyVector {
  description: string;
  base: "good_record_ack.json";
  newEpoch: number;
  /** ECDH(own new eph, peer eph), equal on both sides. */
  sharedSecret: string;
  /** HKDF info of the "rekey" derivation. */
  info: string;
  master1: string;
  epoch1: { i2r: DirectionKeys; r2i: DirectionKeys };
  /** What fills the counters the records below skip. */
  counterNotes: string;
  /** rekey_init, rekey_resp, data_epoch1 (in sending order). */
  records: ControlRecord[];
}

/** good_record_close.json */
export interface CloseVector {
  description: string;
  base: "good_record_ack.json";
  /** Uniform draw the initiator's cover timer used, and its coverRate (packets/s). */
  cover: { random: number; coverRate: number };
  /** i2r, in sending order: data_seq3, checkpoint_seq4, dummy, close_seq5. */
  initiatorRecords: ControlRecord[];
  /** r2i, in sending order: ack (counter 1) then close_seq1. */
  responderRecords: ControlRecord[];
  /** The ACK's decoded fields (decimal). */
  ack: {
    highest: string;
    acknowledgedCounters: string[];
    cumulativeSeq: string;
  };
}

/** fail_session_*.json: an authenticated, well-formed record a Session must refuse. */
export interface SessionFailVector {
  description: string;
  base: "good_record_rekey.json" | "good_record_close.json";
  direction: "i2r" | "r2i";
  /** The session that receives the packets (its role). */
  receiver: "initiator" | "responder";
  /** Good packets of the base vectors delivered first, in order. */
  precededBy: { name: string; packet: string }[];
  epoch: number;
  counter: string;
  innerPlaintext: string;
  packet: string;
  expected: { record: "ok"; session: "failed"; error: string };
}

// ── Reference pieces (PROTOCOL.md §2.2.7) ───────────────────────────────────

type B = Uint8Array<ArrayBuffer>;
const enc = new TextEncoder();
const ECDH = { name: "ECDH", namedCurve: "P-256" } as const;
const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIG = { name: "ECDSA", hash: "SHA-256" } as const;

/** Inner types (PROTOCOL.md §2.2.3). */
export const T = {
  DATA: 1,
  DUMMY: 2,
  ACK: 3,
  REKEY_INIT: 4,
  REKEY_RESP: 5,
  CLOSE: 6,
  CHECKPOINT: 7,
} as const;

/** "e2e.v1 rekey\0" ‖ sessionHash ‖ u32(newEpoch) ‖ senderRole ‖ eph. */
export function refRekeySignatureInput(
  sessionHash: B,
  newEpoch: number,
  role: string,
  eph: B,
): B {
  return cat(
    enc.encode("e2e.v1 rekey\0"),
    sessionHash,
    be(newEpoch, 4),
    enc.encode(role),
    eph,
  );
}

/** Raw public point of a PKCS#8 P-256 ECDH key (via its JWK). */
export async function refEphemeralPublic(pkcs8: B): Promise<B> {
  const k = await crypto.subtle.importKey("pkcs8", pkcs8, ECDH, true, [
    "deriveBits",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", k);
  return cat(
    new Uint8Array([4]),
    Uint8Array.fromBase64(jwk.x!, { alphabet: "base64url" }),
    Uint8Array.fromBase64(jwk.y!, { alphabet: "base64url" }),
  );
}

/** ECDSA P-256/SHA-256 (P1363) with a PKCS#8 identity. */
export async function refSign(pkcs8: B, data: B): Promise<B> {
  const k = await crypto.subtle.importKey("pkcs8", pkcs8, ECDSA, false, [
    "sign",
  ]);
  return new Uint8Array(await crypto.subtle.sign(SIG, k, data));
}

/** Verifies an ECDSA P-256/SHA-256 (P1363) signature with an SPKI. */
export async function refVerify(spki: B, sig: B, data: B): Promise<boolean> {
  const k = await crypto.subtle.importKey("spki", spki, ECDSA, false, [
    "verify",
  ]);
  return await crypto.subtle.verify(SIG, k, sig, data);
}

// ── Generation ──────────────────────────────────────────────────────────────

const h = (s: string): B => Uint8Array.fromHex(s);

async function generate(dir: URL): Promise<void> {
  const load = async <V>(name: string): Promise<V> =>
    JSON.parse(await Deno.readTextFile(new URL(name, dir)));
  const K = await load<KeysVector>("good_record_keys.json");
  const D = await load<DataVector>("good_record_data.json");
  await load<AckVector>("good_record_ack.json"); // must exist: the base
  const master0 = h(K.master);
  const k0 = {
    i2r: await refTrafficKeys(master0, SESSION_HASH, "i2r", 0),
    r2i: await refTrafficKeys(master0, SESSION_HASH, "r2i", 0),
  };
  const ids = {
    i2r: [INITIATOR_ID, RESPONDER_ID],
    r2i: [RESPONDER_ID, INITIATOR_ID],
  };
  const fpI = h(D.initiator.fingerprint), fpR = h(D.responder.fingerprint);
  const pkcs8I = h(D.initiator.identityPkcs8);
  const pkcs8R = h(D.responder.identityPkcs8);
  const h2 = h(D.records[1].chain!.h2);
  const h0R = await refChainStart(SESSION_HASH, "responder");

  /** Chain link of (prev, seq, type, body); signed when `sign`. */
  const link = async (
    role: "initiator" | "responder",
    prev: B,
    seq: bigint,
    type: number,
    body: B,
    sign: boolean,
  ): Promise<{ chain: ChainLink; head: B; sig?: B }> => {
    const stepInput = refChainStepInput(prev, seq, type, body);
    const head = await sha(stepInput);
    const chain: ChainLink = {
      senderRole: role,
      prev: prev.toHex(),
      stepInput: stepInput.toHex(),
      head: head.toHex(),
    };
    if (!sign) return { chain, head };
    const [own, peer] = role === "initiator" ? [fpI, fpR] : [fpR, fpI];
    const input = refChainSignatureInput(
      role,
      own,
      peer,
      SESSION_HASH,
      seq,
      head,
    );
    const sig = await refSign(role === "initiator" ? pkcs8I : pkcs8R, input);
    chain.signatureInput = input.toHex();
    chain.signature = sig.toHex();
    return { chain, head, sig };
  };

  // ── rekey
  const share = async (
    role: "initiator" | "responder",
    ephPkcs8: string,
    newEpoch: number,
  ): Promise<RekeyShare> => {
    const pub = await refEphemeralPublic(h(ephPkcs8));
    const input = refRekeySignatureInput(SESSION_HASH, newEpoch, role, pub);
    const sig = await refSign(role === "initiator" ? pkcs8I : pkcs8R, input);
    return {
      senderRole: role,
      ephemeralPkcs8: ephPkcs8,
      ephemeralPublic: pub.toHex(),
      signatureInput: input.toHex(),
      signature: sig.toHex(),
    };
  };
  const shareI = await share("initiator", K.rekey.initiatorEphemeralPkcs8, 1);
  const shareR = await share("responder", K.rekey.responderEphemeralPkcs8, 1);
  if (
    shareI.ephemeralPublic !== K.rekey.initiatorEphemeralPublic ||
    shareR.ephemeralPublic !== K.rekey.responderEphemeralPublic
  ) throw new Error("ephemeral public keys differ from good_record_keys.json");
  const shared = await refEcdh(
    h(shareI.ephemeralPkcs8),
    h(shareR.ephemeralPublic),
  );
  const m1 = await refRekeyMaster(master0, shared, 1);
  const k1 = {
    i2r: await refTrafficKeys(m1.master, SESSION_HASH, "i2r", 1),
    r2i: await refTrafficKeys(m1.master, SESSION_HASH, "r2i", 1),
  };
  const shareBody = (s: RekeyShare) =>
    cat(h(s.ephemeralPublic), h(s.signature));

  const record = async (
    keys: { key: B; iv: B },
    r: RecordFields,
  ): Promise<ControlRecord> => {
    const [s, d] = ids[r.direction];
    const { chain: _none, ...rec } = await refRecord(keys, r, s, d);
    return rec;
  };

  const initBody = shareBody(shareI);
  const initLink = await link(
    "initiator",
    h2,
    3n,
    T.REKEY_INIT,
    initBody,
    false,
  );
  const rekeyInit: ControlRecord = {
    ...await record(k0.i2r, {
      name: "rekey_init",
      direction: "i2r",
      epoch: 0,
      counter: 2n,
      innerType: T.REKEY_INIT,
      seq: 3n,
      body: initBody,
    }),
    chain: initLink.chain,
    rekey: shareI,
  };
  const respBody = shareBody(shareR);
  const respLink = await link(
    "responder",
    h0R,
    1n,
    T.REKEY_RESP,
    respBody,
    false,
  );
  const rekeyResp: ControlRecord = {
    ...await record(k0.r2i, {
      name: "rekey_resp",
      direction: "r2i",
      epoch: 0,
      counter: 1n,
      innerType: T.REKEY_RESP,
      seq: 1n,
      body: respBody,
    }),
    chain: respLink.chain,
    rekey: shareR,
  };
  const body4 = "after rekey";
  const dataLink = await link(
    "initiator",
    initLink.head,
    4n,
    T.DATA,
    enc.encode(body4),
    true,
  );
  const data1: ControlRecord = {
    ...await record(k1.i2r, {
      name: "data_epoch1_seq4_signed",
      direction: "i2r",
      epoch: 1,
      counter: 4n,
      innerType: T.DATA,
      seq: 4n,
      body: enc.encode(body4),
      bodyText: body4,
      signature: dataLink.sig,
    }),
    chain: dataLink.chain,
  };
  const rekey: RekeyVector = {
    description:
      "Signed in-channel rekey (PROTOCOL.md §2.2.7) continuing good_record_ack.json. The initiator sends REKEY_INIT (i2r, epoch 0, counter 2, seq 3, unsigned in the chain: its own ECDSA signature is in the body), body = eph_I(65) ‖ ECDSA(identity_I, 'e2e.v1 rekey\\0' ‖ sessionHash ‖ u32(1) ‖ 'initiator' ‖ eph_I); the responder answers REKEY_RESP (r2i, epoch 0, counter 1, seq 1) likewise and switches; shared = ECDH(eph_I, eph_R), master_1 = deriveLabel(master_0, shared, 'rekey', u32(1), 32), epoch-1 keys as in good_record_keys.json (same ephemerals). Then the initiator sends DATA seq 4 under epoch 1 (header epoch = 1, counter 4), chain-signed over H_4, whose chain includes REKEY_INIT (H_3). Deterministic except the ECDSA signatures (verify them).",
    base: "good_record_ack.json",
    newEpoch: 1,
    sharedSecret: shared.toHex(),
    info: m1.info.toHex(),
    master1: m1.master.toHex(),
    epoch1: { i2r: hexKeys(k1.i2r), r2i: hexKeys(k1.r2i) },
    counterNotes:
      "Counters are never reset by a rekey. r2i counter 2 is the responder's ACK of REKEY_INIT, sealed under epoch 1 right after its switch; i2r counter 3 is the initiator's ACK of REKEY_RESP, under epoch 1 after its switch; so the next DATA is counter 4.",
    records: [rekeyInit, rekeyResp, data1],
  };

  // ── close: DATA seq 3, CHECKPOINT seq 4, DUMMY, CLOSE seq 5; the responder's ACK and CLOSE
  const bye = "bye";
  const l3 = await link("initiator", h2, 3n, T.DATA, enc.encode(bye), false);
  const l4 = await link(
    "initiator",
    l3.head,
    4n,
    T.CHECKPOINT,
    new Uint8Array(0),
    true,
  );
  const l5 = await link(
    "initiator",
    l4.head,
    5n,
    T.CLOSE,
    new Uint8Array(0),
    true,
  );
  const lR1 = await link(
    "responder",
    h0R,
    1n,
    T.CLOSE,
    new Uint8Array(0),
    true,
  );
  const i2r0 = (
    name: string,
    counter: bigint,
    innerType: number,
    seq: bigint,
    body: B,
    extra: { bodyText?: string; signature?: B } = {},
  ) =>
    record(k0.i2r, {
      name,
      direction: "i2r",
      epoch: 0,
      counter,
      innerType,
      seq,
      body,
      ...extra,
    });
  const closeAckBody = refAckBody(5n, [0n, 1n, 2n, 3n, 4n, 5n], 5n);
  const close: CloseVector = {
    description:
      "End of a conversation continuing good_record_ack.json, all epoch 0 (PROTOCOL.md §2.2.6, 8, 9). The initiator sends DATA seq 3 'bye' (counter 2, unsigned), then — signIntervalMs after it — an empty CHECKPOINT seq 4 (counter 3) signed over H_4, a DUMMY (counter 4: type 2, seq 0, no flags, empty body, same 256-byte bucket and header layout as a short DATA; not in the chain), then close(): CLOSE seq 5 (counter 5), empty body, signed over H_5. The responder receives all four at once and answers with an ACK (r2i counter 1: highest 5, counters 0..5 including the DUMMY's, cumulativeSeq 5) and its own CLOSE (r2i counter 2, seq 1, signed over its H_1). Deterministic except the ECDSA signatures (verify them).",
    base: "good_record_ack.json",
    cover: { random: 0.5, coverRate: 1 },
    initiatorRecords: [
      {
        ...await i2r0("data_seq3", 2n, T.DATA, 3n, enc.encode(bye), {
          bodyText: bye,
        }),
        chain: l3.chain,
      },
      {
        ...await i2r0(
          "checkpoint_seq4_signed",
          3n,
          T.CHECKPOINT,
          4n,
          new Uint8Array(0),
          { signature: l4.sig },
        ),
        chain: l4.chain,
      },
      await i2r0("dummy", 4n, T.DUMMY, 0n, new Uint8Array(0)),
      {
        ...await i2r0("close_seq5_signed", 5n, T.CLOSE, 5n, new Uint8Array(0), {
          signature: l5.sig,
        }),
        chain: l5.chain,
      },
    ],
    responderRecords: [
      await record(k0.r2i, {
        name: "ack",
        direction: "r2i",
        epoch: 0,
        counter: 1n,
        innerType: T.ACK,
        seq: 0n,
        body: closeAckBody,
      }),
      {
        ...await record(k0.r2i, {
          name: "close_seq1_signed",
          direction: "r2i",
          epoch: 0,
          counter: 2n,
          innerType: T.CLOSE,
          seq: 1n,
          body: new Uint8Array(0),
          signature: lR1.sig,
        }),
        chain: lR1.chain,
      },
    ],
    ack: {
      highest: "5",
      acknowledgedCounters: ["0", "1", "2", "3", "4", "5"],
      cumulativeSeq: "5",
    },
  };

  // ── fail_record_dummy_*: counter 0 i2r, same shape as generate_session.ts's fail_record_*
  const seal0 = async (
    counter: bigint,
    inner: B,
    keys = k0.i2r,
    dir: "i2r" | "r2i" = "i2r",
    epoch = 0,
  ) => {
    const [s, d] = ids[dir];
    const header = cat(new Uint8Array([1, 4]), be(epoch, 4), be(counter, 8));
    const nonce = keys.iv.map((x, i) =>
      x ^ cat(new Uint8Array(4), be(counter, 8))[i]
    );
    return cat(
      header,
      await refSeal(keys.key, nonce, inner, cat(header, s, d)),
    );
  };
  const recordFails: Record<string, FailVector> = {};
  {
    const inner = refInner(
      T.DUMMY,
      1,
      0n,
      new Uint8Array(0),
      new Uint8Array(64).fill(0x5a),
    );
    recordFails.dummy_signed = {
      description:
        "A DUMMY (counter 0) with flags bit 0 set and 64 signature bytes, correctly sealed: DUMMY never carries a signature; authenticates, then fails strict decoding; ends the session.",
      base: "good_record_data.json",
      direction: "i2r",
      packet: (await seal0(0n, inner)).toHex(),
      innerPlaintext: inner.toHex(),
      expected: { record: "malformed", session: "failed", error: "malformed" },
    };
  }
  {
    const inner = refInner(T.DUMMY, 0, 1n, new Uint8Array(0));
    recordFails.dummy_nonzero_seq = {
      description:
        "A DUMMY (counter 0) with seq 1, correctly sealed: unreliable types carry seq 0; authenticates, then fails strict decoding; ends the session.",
      base: "good_record_data.json",
      direction: "i2r",
      packet: (await seal0(0n, inner)).toHex(),
      innerPlaintext: inner.toHex(),
      expected: { record: "malformed", session: "failed", error: "malformed" },
    };
  }

  // ── fail_session_*: authenticated and well-formed, refused by the session
  const before = D.records.map((r) => ({
    name: `good_record_data.json#${r.name}`,
    packet: r.packet,
  }));
  const sessionFails: Record<string, SessionFailVector> = {};
  const initFail = async (
    name: string,
    description: string,
    body: B,
    error: string,
  ) => {
    const inner = refInner(T.REKEY_INIT, 0, 3n, body);
    sessionFails[name] = {
      description,
      base: "good_record_rekey.json",
      direction: "i2r",
      receiver: "responder",
      precededBy: before,
      epoch: 0,
      counter: "2",
      innerPlaintext: inner.toHex(),
      packet: (await seal0(2n, inner)).toHex(),
      expected: { record: "ok", session: "failed", error },
    };
  };
  {
    const bad = initBody.slice();
    bad[bad.length - 1] ^= 0x01;
    await initFail(
      "rekey_bad_signature",
      "rekey_init with the last bit of its rekey signature flipped, correctly sealed (i2r, epoch 0, counter 2, seq 3) after DATA seq 1, 2: authenticated and well-formed, but the signature over 'e2e.v1 rekey\\0' ‖ sessionHash ‖ u32(1) ‖ 'initiator' ‖ eph fails; the responder fails with bad-signature.",
      bad,
      "bad-signature",
    );
  }
  {
    const pub = h(shareI.ephemeralPublic);
    const sig = await refSign(
      pkcs8I,
      refRekeySignatureInput(SESSION_HASH, 2, "initiator", pub),
    );
    await initFail(
      "rekey_wrong_epoch",
      "rekey_init whose share is signed for newEpoch 2 instead of 1 (a replayed or future share), correctly sealed at counter 2, seq 3: the epoch is bound by the signature; bad-signature.",
      cat(pub, sig),
      "bad-signature",
    );
  }
  {
    // A valid initiator identity signature over a point not on the curve.
    const pub = h(shareI.ephemeralPublic);
    pub[64] ^= 0x01;
    const sig = await refSign(
      pkcs8I,
      refRekeySignatureInput(SESSION_HASH, 1, "initiator", pub),
    );
    await initFail(
      "rekey_invalid_ephemeral",
      "rekey_init whose ephemeral (last byte of Y flipped: not on P-256) is validly signed by the initiator's identity: the signature verifies, the point is refused with invalid-public-key.",
      cat(pub, sig),
      "invalid-public-key",
    );
  }
  sessionFails.rekey_unsolicited_resp = {
    description:
      "The good rekey_resp (r2i, epoch 0, counter 1, seq 1) delivered to an initiator that never sent REKEY_INIT: unexpected-message.",
    base: "good_record_rekey.json",
    direction: "r2i",
    receiver: "initiator",
    precededBy: [],
    epoch: 0,
    counter: rekeyResp.counter,
    innerPlaintext: rekeyResp.innerPlaintext,
    packet: rekeyResp.packet,
    expected: { record: "ok", session: "failed", error: "unexpected-message" },
  };
  {
    const inner = refInner(T.CLOSE, 0, 3n, new Uint8Array(0));
    sessionFails.close_unsigned = {
      description:
        "A CLOSE seq 3 without a signature (flags 0), correctly sealed at i2r counter 2 after DATA seq 1, 2: CLOSE must be signed; unsigned-chain.",
      base: "good_record_close.json",
      direction: "i2r",
      receiver: "responder",
      precededBy: before,
      epoch: 0,
      counter: "2",
      innerPlaintext: inner.toHex(),
      packet: (await seal0(2n, inner)).toHex(),
      expected: { record: "ok", session: "failed", error: "unsigned-chain" },
    };
  }

  {
    // §2.2.9: CLOSE is the sender's last reliable message.
    const inner = refInner(T.DATA, 0, 6n, enc.encode("after close"));
    sessionFails.data_after_close = {
      description:
        "After DATA seq 1, 2 (good_record_data.json) and the initiator records of good_record_close.json (DATA seq 3, CHECKPOINT seq 4, DUMMY, signed CLOSE seq 5), a DATA seq 6 'after close', correctly sealed at i2r counter 6: CLOSE is the sender's last reliable message; unexpected-message.",
      base: "good_record_close.json",
      direction: "i2r",
      receiver: "responder",
      precededBy: [
        ...before,
        ...close.initiatorRecords.map((r) => ({
          name: `good_record_close.json#${r.name}`,
          packet: r.packet,
        })),
      ],
      epoch: 0,
      counter: "6",
      innerPlaintext: inner.toHex(),
      packet: (await seal0(6n, inner)).toHex(),
      expected: {
        record: "ok",
        session: "failed",
        error: "unexpected-message",
      },
    };
  }

  await write(dir, "good_record_rekey.json", rekey);
  await write(dir, "good_record_close.json", close);
  for (const [n, v] of Object.entries(recordFails)) {
    await write(dir, `fail_record_${n}.json`, v);
  }
  for (const [n, v] of Object.entries(sessionFails)) {
    await write(dir, `fail_session_${n}.json`, v);
  }
  console.log(
    `wrote good_record_{rekey,close}.json, ${
      Object.keys(recordFails).length
    } fail_record_dummy_*.json, ${
      Object.keys(sessionFails).length
    } fail_session_*.json`,
  );
}

if (import.meta.main) await generate(new URL("./", import.meta.url));
