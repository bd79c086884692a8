/**
 * Tests of lib/handshake.ts: success, active attackers (ephemeral swap,
 * re-encrypting MITM, identity misbinding, splicing, replay), every byte
 * flipped, length bounds, version/suite, timeout, invalid points, typestate.
 *
 * The attacker is written here from the spec with lib/suite.ts primitives
 * (not with lib/handshake.ts internals), so it also checks the key schedule.
 */

import { requireWycheproof, WYCHEPROOF_DIR } from "./helpers/wycheproof_dir.ts";
import assert from "node:assert/strict";
import { type Bytes, concat, sha256, u16, utf8 } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  HANDSHAKE_LABELS,
  importEphemeralPkcs8,
  Initiator,
  INITIATOR_SIGNATURE_CONTEXT,
  Responder,
  RESPONDER_SIGNATURE_CONTEXT,
  transcriptPrologue,
  type TrustCallback,
} from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import { generateIdentity, type Identity } from "../lib/identity.ts";
import { Session } from "../lib/session.ts";
import {
  deriveLabel,
  ecdh,
  type EphemeralKeyPair,
  generateEphemeral,
  importAeadKey,
  importEphemeralPublic,
  importMacKey,
  importSecret,
  mac,
  open,
  seal,
  sign,
  SUITE_P256_NAME,
} from "../lib/suite.ts";

// ── Fixtures ────────────────────────────────────────────────────────────────

const ID_A = new Uint8Array(16).fill(0xaa);
const ID_B = new Uint8Array(16).fill(0xbb);
const ID_M = new Uint8Array(16).fill(0x33);
const EMPTY = new Uint8Array(0);
const ZERO_NONCE = new Uint8Array(12);
const T0 = 1_000_000;
/** HS1 with one P-256 offer: ver type randomI[2..34] n[34] suite[35..37] len[37] eI[38..103] zeros. */
const EI = 38;
const EI_END = EI + 65;
const HS1_P256_LENGTH = 234;

/** Padded length of a handshake message of `n` content bytes: the relay frame (n + 22) in a power-of-two bucket ≥ 256 (PROTOCOL.md §2.1, below 1 KiB). */
function padded(n: number): number {
  let bucket = 256;
  while (bucket < n + 22) bucket *= 2;
  return bucket - 22;
}

/** A proof zero-padded so the message (`header` cleartext bytes + proof + 16-byte tag) is padded. */
function padProof(proof: Bytes, header: number): Bytes {
  const out = new Uint8Array(padded(header + proof.length + 16) - header - 16);
  out.set(proof);
  return out;
}

const alice = await generateIdentity();
const bob = await generateIdentity();
const mallory = await generateIdentity();

async function fixedEphemeral(): Promise<EphemeralKeyPair> {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDH", namedCurve: "P-256" },
    true,
    ["deriveBits"],
  ) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
  return importEphemeralPkcs8(pkcs8);
}
const ephI = await fixedEphemeral();
const ephR = await fixedEphemeral();
const randomI = new Uint8Array(32).fill(0x11);
const randomR = new Uint8Array(32).fill(0x22);

const anyone: TrustCallback = () => "ok";
/** Trust that accepts only `expected` (as pinned known peer). */
function pinned(expected: Identity): TrustCallback {
  const want = expected.spki.toHex();
  return (spki) =>
    spki.toHex() === want
      ? "ok"
      : { code: "identity-changed", message: "peer key differs from pinned" };
}
const asResult = (r: HandshakeResult) => r;

interface Opts {
  fixed?: boolean;
  trustI?: TrustCallback;
  trustR?: TrustCallback;
  initiatorIdentity?: Identity;
  responderIdentity?: Identity;
  /** The initiator's one suite (default: its own choice). */
  suite?: number;
}

function startI(o: Opts = {}, now = T0) {
  return Initiator.start({
    identity: o.initiatorIdentity ?? alice,
    localId: ID_A,
    peerId: ID_B,
    now,
    trust: o.trustI ?? pinned(o.responderIdentity ?? bob),
    complete: asResult,
    ...(o.fixed ? { ephemeral: ephI, random: randomI } : {}),
    ...(o.suite === undefined ? {} : { suite: o.suite }),
  });
}

function createR(o: Opts = {}) {
  return Responder.create({
    identity: o.responderIdentity ?? bob,
    localId: ID_B,
    trust: o.trustR ?? pinned(o.initiatorIdentity ?? alice),
    complete: asResult,
    ...(o.fixed ? { ephemeral: ephR, random: randomR } : {}),
  });
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `not a ProtocolError: ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/** A fresh responder refuses `message` from ID_A with the ProtocolError `code`. */
const refusedByR = (message: Uint8Array, code: string) =>
  rejects(createR().receive(message, { now: T0, from: ID_A }), code);

async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ProtocolError, `not a ProtocolError: ${e}`);
    return e.code;
  }
  return "no error";
}

function flip(msg: Bytes, at: number, mask = 0x01): Bytes {
  const out = msg.slice();
  out[at] ^= mask;
  return out;
}

/** A whole honest handshake; returns messages, both results and objects. */
async function runHandshake(o: Opts = {}) {
  const { handshake: hi, message: hs1 } = await startI(o);
  const hr = createR(o);
  const r2 = await hr.receive(hs1, { now: T0, from: ID_A });
  assert.ok(r2.send);
  const hs2 = r2.send;
  const { send: hs3, session: si } = await hi.receive(hs2, T0 + 1);
  const r3 = await hr.receive(hs3, { now: T0 + 2, from: ID_A });
  assert.ok(r3.session);
  return { hi, hr, hs1, hs2, hs3, si, sr: r3.session };
}

async function derivedCheck(r: HandshakeResult): Promise<string> {
  return (await deriveLabel(r.master, r.sessionHash, "test check", EMPTY, 32))
    .toHex();
}

// ── Reference key schedule (from the spec) for the attacker ─────────────────

interface RefKeys {
  t: (...parts: Bytes[]) => Promise<Bytes>;
  kR: CryptoKey;
  kI: CryptoKey;
  fR: CryptoKey;
  fI: CryptoKey;
}

async function refKeys(
  initiatorId: Bytes,
  responderId: Bytes,
  hs1: Bytes,
  prefix: Bytes,
  own: CryptoKey,
  peerPoint: Bytes,
): Promise<RefKeys> {
  const prologue = transcriptPrologue(
    SUITE_P256_NAME,
    initiatorId,
    responderId,
  );
  const t = (...parts: Bytes[]) => sha256(prologue, ...parts);
  const hs = await importSecret(
    await ecdh(own, await importEphemeralPublic(peerPoint)),
  );
  const thHello = await t(hs1, prefix);
  const d = (l: string) => deriveLabel(hs, thHello, l, EMPTY, 32);
  const L = HANDSHAKE_LABELS;
  return {
    t,
    kR: await importAeadKey(await d(L.responderKey)),
    kI: await importAeadKey(await d(L.initiatorKey)),
    fR: await importMacKey(await d(L.responderFinished)),
    fI: await importMacKey(await d(L.initiatorFinished)),
  };
}

function parseProof(p: Bytes) {
  const n = (p[0] << 8) | p[1];
  return {
    spki: p.slice(2, 2 + n),
    sig: p.slice(2 + n, 2 + n + 64),
    mac: p.slice(2 + n + 64, 2 + n + 96),
  };
}

type ProofBuilder = (
  keys: RefKeys,
  hs1: Bytes,
  prefix: Bytes,
) => Promise<Bytes>;

/** Attacker acting as responder towards the initiator: builds an HS2 with its own ephemeral. */
async function attackerHs2(
  hs1: Bytes,
  build: ProofBuilder,
  ids: [Bytes, Bytes] = [ID_A, ID_B],
): Promise<Bytes> {
  const eM = await generateEphemeral();
  const prefix = concat(new Uint8Array([1, 2, 0, 1]), eM.publicRaw, randomR);
  const keys = await refKeys(
    ids[0],
    ids[1],
    hs1,
    prefix,
    eM.privateKey,
    hs1.slice(EI, EI_END),
  );
  const proof = padProof(await build(keys, hs1, prefix), prefix.length);
  return concat(prefix, await seal(keys.kR, ZERO_NONCE, proof, prefix));
}

/** Honest responder proof by `who`, computed like the spec says. */
function honestProof(
  who: Identity,
  macTamper = false,
  context = RESPONDER_SIGNATURE_CONTEXT,
): ProofBuilder {
  return async (k, hs1, prefix) => {
    const th = await k.t(hs1, prefix, who.spki);
    const sig = await sign(who.privateKey, concat(utf8(context), th));
    const tag = await mac(k.fR, await k.t(hs1, prefix, who.spki, sig));
    if (macTamper) tag[0] ^= 1;
    return concat(u16(who.spki.length), who.spki, sig, tag);
  };
}

// ── Success ─────────────────────────────────────────────────────────────────

Deno.test("handshake: both sides agree on session hash, master and peers", async () => {
  const { hi, hr, si, sr } = await runHandshake();
  assert.equal(si.role, "initiator");
  assert.equal(sr.role, "responder");
  assert.equal(si.suite, 1);
  assert.equal(si.sessionHash.length, 32);
  assert.deepEqual(si.sessionHash, sr.sessionHash);
  assert.equal(await derivedCheck(si), await derivedCheck(sr));
  assert.deepEqual(si.peerIdentity.spki, bob.spki);
  assert.deepEqual(sr.peerIdentity.spki, alice.spki);
  assert.deepEqual(si.localId, ID_A);
  assert.deepEqual(si.peerId, ID_B);
  assert.deepEqual(sr.localId, ID_B);
  assert.deepEqual(sr.peerId, ID_A);
  // The WebCrypto path (no provider): the master is a non-extractable CryptoKey.
  for (const m of [si.master, sr.master]) {
    assert.ok(m instanceof CryptoKey);
    assert.equal(m.extractable, false);
  }
  assert.equal(hi.phase, "done");
  assert.equal(hr.phase, "done");
  // The typestate holds no reachable state: only true-private fields.
  assert.deepEqual(Object.getOwnPropertyNames(hi), []);
  assert.deepEqual(Object.getOwnPropertyNames(hr), []);
});

Deno.test("handshake: two runs with fresh ephemerals give different session hashes", async () => {
  const a = await runHandshake();
  const b = await runHandshake();
  assert.notDeepEqual(a.si.sessionHash, b.si.sessionHash);
  assert.notEqual(await derivedCheck(a.si), await derivedCheck(b.si));
});

Deno.test("handshake: trust callback sees SPKI and hex SHA-256 fingerprint", async () => {
  const seen: string[] = [];
  const record = (who: string): TrustCallback => (spki, fp) => {
    seen.push(`${who}:${spki.toHex()}:${fp}`);
    return "ok";
  };
  await runHandshake({ trustI: record("I"), trustR: record("R") });
  assert.deepEqual(seen, [
    `I:${bob.spki.toHex()}:${(await sha256(bob.spki)).toHex()}`,
    `R:${alice.spki.toHex()}:${(await sha256(alice.spki)).toHex()}`,
  ]);
});

Deno.test("handshake: fixed ephemeral and random make HS1 deterministic; keys non-extractable", async () => {
  const a = await startI({ fixed: true });
  const b = await startI({ fixed: true });
  assert.deepEqual(a.message, b.message);
  assert.equal(a.message.length, HS1_P256_LENGTH);
  assert.deepEqual(a.message.slice(EI, EI_END), ephI.publicRaw);
  assert.deepEqual(a.message.slice(2, 34), randomI);
  assert.deepEqual(a.message.slice(34, 38), new Uint8Array([1, 0, 1, 65]));
  assert.ok(a.message.slice(EI_END).every((b) => b === 0), "zero padding");
  assert.equal(ephI.privateKey.extractable, false);
});

// ── Active attackers ────────────────────────────────────────────────────────

/** A copy of `message` with a fresh ephemeral public key at `at`, and that key pair. */
async function swapEphemeral(message: Uint8Array, at: number) {
  const eM = await generateEphemeral();
  const forged = message.slice();
  forged.set(eM.publicRaw, at);
  return { forged, eM };
}

Deno.test("MITM: responder ephemeral swapped in HS2 → decrypt-failed", async () => {
  // The initiator derives k_hs_r from ECDH(eI, eM) and a th_hello holding eM:
  // not the key R sealed with, so the AEAD tag fails before anything else.
  const { handshake: hi, message: hs1 } = await startI();
  const { send: hs2 } = await createR().receive(hs1, { now: T0, from: ID_A });
  const { forged } = await swapEphemeral(hs2!, 4);
  await rejects(hi.receive(forged, T0), "decrypt-failed");
  assert.equal(hi.phase, "failed");
});

Deno.test("MITM: initiator ephemeral swapped in HS1 → initiator decrypt-failed", async () => {
  const { handshake: hi, message: hs1 } = await startI();
  const { forged } = await swapEphemeral(hs1, EI);
  const { send: hs2 } = await createR().receive(forged, {
    now: T0,
    from: ID_A,
  });
  await rejects(hi.receive(hs2!, T0), "decrypt-failed");
});

Deno.test("MITM: re-encrypting attacker with both ECDH secrets → bad-signature", async () => {
  // Mallory swaps eI for eM1 towards Bob and answers Alice with eM2,
  // re-encrypting Bob's genuine spki/signature under the key she shares with
  // Alice (she recomputes the MAC). Bob's signature covers a transcript with
  // eM1 and eM2… not Alice's eI: Alice refuses.
  const { handshake: hi, message: hs1 } = await startI();
  const { forged: toBob, eM: eM1 } = await swapEphemeral(hs1, EI);
  const { send: hs2b } = await createR().receive(toBob, {
    now: T0,
    from: ID_A,
  });
  const bobKeys = await refKeys(
    ID_A,
    ID_B,
    toBob,
    hs2b!.slice(0, 101),
    eM1.privateKey,
    hs2b!.slice(4, 69),
  );
  const bobProof = parseProof(
    await open(bobKeys.kR, ZERO_NONCE, hs2b!.slice(101), hs2b!.slice(0, 101)),
  );
  assert.deepEqual(bobProof.spki, bob.spki);
  const hs2 = await attackerHs2(hs1, async (k, h1, prefix) => {
    const tag = await mac(
      k.fR,
      await k.t(h1, prefix, bobProof.spki, bobProof.sig),
    );
    return concat(u16(bob.spki.length), bob.spki, bobProof.sig, tag);
  });
  await rejects(hi.receive(hs2, T0), "bad-signature");
});

Deno.test("MITM: attacker answering with her own identity → identity-changed", async () => {
  const { handshake: hi, message: hs1 } = await startI();
  const hs2 = await attackerHs2(hs1, honestProof(mallory));
  await rejects(hi.receive(hs2, T0), "identity-changed");
});

Deno.test("MITM: control — the attacker's HS2 builder is correct (accepted when trusted)", async () => {
  const { handshake: hi, message: hs1 } = await startI({ trustI: anyone });
  const hs2 = await attackerHs2(hs1, honestProof(mallory));
  const { session } = await hi.receive(hs2, T0);
  assert.deepEqual(session.peerIdentity.spki, mallory.spki);
});

Deno.test("MITM: correct signature, wrong key-confirmation MAC → mac-mismatch", async () => {
  const { handshake: hi, message: hs1 } = await startI({ trustI: anyone });
  const hs2 = await attackerHs2(hs1, honestProof(mallory, true));
  await rejects(hi.receive(hs2, T0), "mac-mismatch");
});

Deno.test("MITM: signature made with the other role's context → bad-signature", async () => {
  const { handshake: hi, message: hs1 } = await startI({ trustI: anyone });
  const hs2 = await attackerHs2(
    hs1,
    honestProof(mallory, false, INITIATOR_SIGNATURE_CONTEXT),
  );
  await rejects(hi.receive(hs2, T0), "bad-signature");
});

Deno.test("MITM: sealed proof with a malformed inner layout or bad SPKI", async () => {
  const cases: [string, ProofBuilder][] = [
    ["malformed", async (k, h, p) => {
      const good = await honestProof(mallory)(k, h, p);
      return concat(good, new Uint8Array([1])); // non-zero padding
    }],
    ["malformed", async (k, h, p) => {
      const good = await honestProof(mallory)(k, h, p);
      good[0] = 0xff; // spki_len > MAX_SPKI_LENGTH
      return good;
    }],
    ["malformed", async (k, h, p) => {
      const good = await honestProof(mallory)(k, h, p);
      good[0] = 0;
      good[1] = 0; // spki_len = 0
      return good;
    }],
    ["invalid-public-key", async (k, h, p) => {
      const good = await honestProof(mallory)(k, h, p);
      good[2 + 30] ^= 0xff; // inside the SPKI's point
      return good;
    }],
  ];
  for (const [code, build] of cases) {
    const { handshake: hi, message: hs1 } = await startI({ trustI: anyone });
    await rejects(hi.receive(await attackerHs2(hs1, build), T0), code);
  }
});

Deno.test("MITM: initiator identity not the expected one → identity-changed; refusal → identity-rejected", async () => {
  const { handshake: hi, message: hs1 } = await startI({
    initiatorIdentity: mallory,
    trustI: pinned(bob),
  });
  const hr = createR({ trustR: pinned(alice) });
  const { send: hs2 } = await hr.receive(hs1, { now: T0, from: ID_A });
  const { send: hs3 } = await hi.receive(hs2!, T0);
  await rejects(hr.receive(hs3, { now: T0 }), "identity-changed");

  await rejects(
    runHandshake({
      trustI: () => ({ code: "identity-rejected", message: "unknown peer" }),
    }),
    "identity-rejected",
  );
  // A responder whose identity differs from what the initiator pinned.
  await rejects(
    runHandshake({ responderIdentity: mallory, trustI: pinned(bob) }),
    "identity-changed",
  );
});

Deno.test("splice: HS1 relayed to B from another relay session → decrypt-failed", async () => {
  // A talks to ID_B; the relay (or M) delivers A's HS1 to B stamped ID_M.
  // B's prologue names ID_M as initiator, A's names ID_A: th_hello differs,
  // so B's handshake keys are not A's.
  const { handshake: hi, message: hs1 } = await startI();
  const { send: hs2 } = await createR().receive(hs1, { now: T0, from: ID_M });
  await rejects(hi.receive(hs2!, T0), "decrypt-failed");
});

Deno.test("splice: messages of two concurrent honest handshakes crossed → decrypt-failed", async () => {
  const one = await startI();
  const two = await startI();
  const r1 = createR();
  const r2 = createR();
  const { send: hs2one } = await r1.receive(one.message, {
    now: T0,
    from: ID_A,
  });
  const { send: hs2two } = await r2.receive(two.message, {
    now: T0,
    from: ID_A,
  });
  // HS2 of handshake 2 to initiator 1.
  await rejects(one.handshake.receive(hs2two!, T0), "decrypt-failed");
  // HS3 of handshake 1 (completed with its own HS2) to responder 2.
  const fresh = await startI({ fixed: true });
  const rf = createR();
  const { send: hs2f } = await rf.receive(fresh.message, {
    now: T0,
    from: ID_A,
  });
  const { send: hs3f } = await fresh.handshake.receive(hs2f!, T0);
  await rejects(r2.receive(hs3f, { now: T0 }), "decrypt-failed");
  assert.ok(hs2one);
});

Deno.test("splice: HS3 from another relay session than HS1 → unexpected-message", async () => {
  const { handshake: hi, message: hs1 } = await startI();
  const hr = createR();
  const { send: hs2 } = await hr.receive(hs1, { now: T0, from: ID_A });
  const { send: hs3 } = await hi.receive(hs2!, T0);
  await rejects(hr.receive(hs3, { now: T0, from: ID_M }), "unexpected-message");
});

Deno.test("replay: HS1 twice, HS3 twice, HS2 twice, old HS1+HS3 to a fresh responder", async () => {
  const { hi, hr, hs1, hs2, hs3 } = await runHandshake({ fixed: true });
  await rejects(hr.receive(hs3, { now: T0 }), "unexpected-message");
  await rejects(hr.receive(hs1, { now: T0, from: ID_A }), "unexpected-message");
  await rejects(hi.receive(hs2, T0), "unexpected-message");

  // HS1 replayed to a responder that already answered it.
  const { handshake: _h, message: m1 } = await startI();
  const r = createR();
  await r.receive(m1, { now: T0, from: ID_A });
  await rejects(r.receive(m1, { now: T0, from: ID_A }), "unexpected-message");
  assert.equal(r.phase, "failed");

  // A recorded HS1 replayed to a fresh responder gets a fresh HS2; the
  // recorded HS3 does not fit it (fresh eR → different k_hs_i).
  const fresh = createR();
  await fresh.receive(hs1, { now: T0, from: ID_A });
  await rejects(fresh.receive(hs3, { now: T0 }), "decrypt-failed");
});

Deno.test("state: wrong message types", async () => {
  const { handshake: hi, message: hs1 } = await startI();
  await rejects(hi.receive(hs1, T0), "unexpected-message"); // HS1 to initiator
  const r = createR();
  const hs3like = hs1.slice();
  hs3like[1] = 0x03;
  await rejects(
    r.receive(hs3like, { now: T0, from: ID_A }),
    "unexpected-message",
  );
  const record = hs1.slice();
  record[1] = 0x04;
  await refusedByR(record, "unexpected-message");
  const unknown = hs1.slice();
  unknown[1] = 0x09;
  await refusedByR(unknown, "malformed");
  // After any failure the object is spent.
  await rejects(hi.receive(hs1, T0), "unexpected-message");
});

// ── Every byte flipped ──────────────────────────────────────────────────────

Deno.test("tamper: every byte of HS1 flipped → a ProtocolError, never a session", async () => {
  const { message: hs1 } = await startI({ fixed: true });
  const codes = new Map<string, number>();
  for (let at = 0; at < hs1.length; at++) {
    const { handshake: hi } = await startI({ fixed: true });
    const hr = createR({ fixed: true });
    const code = await errorCode((async () => {
      const { send: hs2 } = await hr.receive(flip(hs1, at), {
        now: T0,
        from: ID_A,
      });
      await hi.receive(hs2!, T0);
    })());
    assert.notEqual(code, "no error", `HS1 byte ${at}`);
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  // version → unsupported-version; type 0x01→0x00, the offer count, the
  // key length and each of the 131 padding bytes → malformed; suite →
  // unsupported-suite; eI → invalid-public-key; randomI → decrypt-failed.
  assert.deepEqual(Object.fromEntries(codes), {
    "unsupported-version": 1,
    "malformed": 134,
    "unsupported-suite": 2,
    "invalid-public-key": 65,
    "decrypt-failed": 32,
  });
});

Deno.test("tamper: every byte of HS2 flipped → a ProtocolError, never a session", async () => {
  const { message: hs1 } = await startI({ fixed: true });
  const { send: hs2 } = await createR({ fixed: true }).receive(hs1, {
    now: T0,
    from: ID_A,
  });
  // Control: the untouched HS2 completes a fresh initiator with the same inputs.
  const ok = await startI({ fixed: true });
  await ok.handshake.receive(hs2!, T0);
  for (let at = 0; at < hs2!.length; at++) {
    const { handshake: hi } = await startI({ fixed: true });
    const code = await errorCode(hi.receive(flip(hs2!, at), T0));
    const want = at === 0
      ? "unsupported-version"
      : at === 1
      ? "unexpected-message"
      : at < 4
      ? "unsupported-suite"
      : at < 69
      ? ["invalid-public-key", "decrypt-failed"]
      : "decrypt-failed";
    if (Array.isArray(want)) {
      assert.ok(want.includes(code), `HS2 byte ${at}: ${code}`);
    } else assert.equal(code, want, `HS2 byte ${at}`);
  }
});

Deno.test("tamper: every byte of HS3 flipped → a ProtocolError, never a session", async () => {
  let length = 0;
  for (let at = 0; length === 0 || at < length; at++) {
    const { handshake: hi, message: hs1 } = await startI({ fixed: true });
    const hr = createR({ fixed: true });
    const { send: hs2 } = await hr.receive(hs1, { now: T0, from: ID_A });
    const { send: hs3 } = await hi.receive(hs2!, T0);
    length = hs3.length;
    const code = await errorCode(hr.receive(flip(hs3, at), { now: T0 }));
    const want = at === 0
      ? "unsupported-version"
      : at === 1
      ? "unexpected-message"
      : "decrypt-failed";
    assert.equal(code, want, `HS3 byte ${at}`);
  }
});

// ── Lengths, version, suite ─────────────────────────────────────────────────

Deno.test("lengths: truncated or extended messages", async () => {
  const { message: hs1 } = await startI({ fixed: true });
  for (
    const bad of [
      hs1.slice(0, 1),
      hs1.slice(0, 3),
      hs1.slice(0, 100),
      concat(hs1, new Uint8Array(1)),
    ]
  ) {
    await refusedByR(bad, "malformed");
  }
  await refusedByR(new Uint8Array(0), "malformed");
  const { send: hs2 } = await createR({ fixed: true }).receive(hs1, {
    now: T0,
    from: ID_A,
  });
  const h2 = hs2!;
  // Outside the bounds a sealed proof can have → malformed.
  for (
    const bad of [
      h2.slice(0, 101),
      h2.slice(0, 215),
      concat(h2, new Uint8Array(1)), // past the largest padded HS2
      concat(h2, new Uint8Array(200)),
    ]
  ) {
    const { handshake } = await startI({ fixed: true });
    await rejects(handshake.receive(bad, T0), "malformed");
  }
  // Inside the bounds only the AEAD tag can tell → decrypt-failed.
  for (const bad of [h2.slice(0, h2.length - 1), h2.slice(0, 300)]) {
    const { handshake } = await startI({ fixed: true });
    await rejects(handshake.receive(bad, T0), "decrypt-failed");
  }
  const { handshake: hi } = await startI({ fixed: true });
  const hr = createR({ fixed: true });
  await hr.receive(hs1, { now: T0, from: ID_A });
  const { send: hs3 } = await hi.receive(h2, T0);
  await rejects(hr.receive(hs3.slice(0, 2), { now: T0 }), "malformed");
  const hr2 = createR({ fixed: true });
  await hr2.receive(hs1, { now: T0, from: ID_A });
  await rejects(
    hr2.receive(concat(hs3, new Uint8Array(300)), { now: T0 }),
    "malformed",
  );
});

Deno.test("version and suite: specific errors", async () => {
  const { handshake: hi, message: hs1 } = await startI({ fixed: true });
  const v2 = hs1.slice();
  v2[0] = 2;
  await refusedByR(v2, "unsupported-version");
  const s2 = hs1.slice();
  s2[36] = 9; // suite 0x0009: unknown, skipped by its length → nothing accepted
  await refusedByR(s2, "unsupported-suite");
  // Truncated inside the offers → malformed.
  await refusedByR(s2.slice(0, 50), "malformed");
  await rejects(
    startI({ trustI: anyone, suite: 9 }),
    "unsupported-suite",
  );
  // Suite 0x0002 needs an Ed25519 identity.
  await assert.rejects(
    startI({ trustI: anyone, suite: 2 }),
    RangeError,
  );
  // The responder answering with another suite than offered (no downgrade).
  const { send: hs2 } = await createR({ fixed: true }).receive(hs1, {
    now: T0,
    from: ID_A,
  });
  const other = hs2!.slice();
  other[3] = 2;
  await rejects(hi.receive(other, T0), "unsupported-suite");
});

Deno.test("timeout: initiator and responder deadlines", async () => {
  const { handshake: hi, message: hs1 } = await startI({}, T0);
  hi.checkTimeout(T0 + 9999);
  const hr = createR();
  // The responder's deadline starts at HS1.
  const { send: hs2 } = await hr.receive(hs1, { now: T0 + 5000, from: ID_A });
  await rejects(hi.receive(hs2!, T0 + 10000), "timeout");
  assert.equal(hi.phase, "failed");
  assert.throws(
    () => hr.checkTimeout(T0 + 15000),
    (e: unknown) => e instanceof ProtocolError && e.code === "timeout",
  );
  await rejects(
    hr.receive(new Uint8Array(207), { now: T0 + 15000 }),
    "unexpected-message",
  );

  const custom = await Initiator.start({
    identity: alice,
    localId: ID_A,
    peerId: ID_B,
    now: 0,
    deadlineMs: 50,
    trust: anyone,
    complete: asResult,
  });
  custom.handshake.checkTimeout(49);
  assert.throws(() => custom.handshake.checkTimeout(50), ProtocolError);

  const late = await startI({}, T0);
  const r2 = createR();
  const { send: h2 } = await r2.receive(late.message, { now: T0, from: ID_A });
  const { send: h3 } = await late.handshake.receive(h2!, T0 + 1);
  await rejects(r2.receive(h3, { now: T0 + 10000 }), "timeout");
});

// ── Invalid points ──────────────────────────────────────────────────────────

const wycheproofUrl = new URL(
  "ecdh_secp256r1_ecpoint_test.json",
  WYCHEPROOF_DIR,
);

Deno.test("invalid ephemeral: hand-made off-curve, infinity, compressed → invalid-public-key", async () => {
  const { message: hs1 } = await startI({ fixed: true });
  const offCurve = hs1.slice();
  offCurve[EI_END - 1] ^= 0x01; // last byte of Y
  const zeros = hs1.slice();
  zeros.fill(0, EI, EI_END);
  zeros[EI] = 0x04;
  const compressed = hs1.slice();
  compressed[EI] = 0x02;
  for (const bad of [offCurve, zeros, compressed]) {
    await refusedByR(bad, "invalid-public-key");
  }
  // And in HS2.
  const { send: hs2 } = await createR({ fixed: true }).receive(hs1, {
    now: T0,
    from: ID_A,
  });
  const bad2 = hs2!.slice();
  bad2[68] ^= 0x01;
  const { handshake } = await startI({ fixed: true });
  await rejects(handshake.receive(bad2, T0), "invalid-public-key");
});

Deno.test({
  name: "invalid ephemeral: Wycheproof ecpoint cases in HS1",
  fn: async () => {
    requireWycheproof();
    const data = JSON.parse(await Deno.readTextFile(wycheproofUrl));
    const { message: hs1 } = await startI({ fixed: true });
    let invalid = 0, valid = 0;
    for (const group of data.testGroups) {
      for (const tc of group.tests) {
        const point = Uint8Array.fromHex(tc.public);
        if (point.length !== 65 || (tc.result === "valid" && valid >= 8)) {
          continue;
        }
        const msg = hs1.slice();
        msg.set(point, EI);
        const p = createR({ fixed: true }).receive(msg, {
          now: T0,
          from: ID_A,
        });
        if (tc.result === "invalid") {
          await rejects(p, "invalid-public-key");
          invalid++;
        } else {
          assert.ok((await p).send, `tcId ${tc.tcId}`);
          valid++;
        }
      }
    }
    assert.equal(invalid, 16);
    assert.equal(valid, 8);
  },
});

// ── API misuse ──────────────────────────────────────────────────────────────

Deno.test("api: bad IDs, random, deadline and missing from are programming errors", async () => {
  const base = {
    identity: alice,
    localId: ID_A,
    peerId: ID_B,
    now: 0,
    trust: anyone,
    complete: asResult,
  };
  await assert.rejects(
    Initiator.start({ ...base, localId: new Uint8Array(15) }),
    RangeError,
  );
  await assert.rejects(
    Initiator.start({ ...base, peerId: new Uint8Array(17) }),
    RangeError,
  );
  await assert.rejects(
    Initiator.start({ ...base, random: new Uint8Array(31) }),
    RangeError,
  );
  await assert.rejects(Initiator.start({ ...base, deadlineMs: 0 }), RangeError);
  const { message } = await Initiator.start(base);
  await assert.rejects(createR().receive(message, { now: 0 }), TypeError);
});

Deno.test("api: the session factory's value is returned and its failure fails the handshake", async () => {
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: alice,
    localId: ID_A,
    peerId: ID_B,
    now: T0,
    trust: anyone,
    complete: (r) => Promise.resolve({ wrapped: r.role }),
  });
  const hr = Responder.create({
    identity: bob,
    localId: ID_B,
    trust: anyone,
    complete: () => {
      throw new Error("factory failed");
    },
  });
  const { send: hs2 } = await hr.receive(hs1, { now: T0, from: ID_A });
  const { send: hs3, session } = await hi.receive(hs2!, T0);
  assert.deepEqual(session, { wrapped: "initiator" });
  await assert.rejects(hr.receive(hs3, { now: T0 }), /factory failed/);
  assert.equal(hr.phase, "failed");
});

Deno.test("api: default factory yields Session objects that talk to each other", async () => {
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: alice,
    localId: ID_A,
    peerId: ID_B,
    now: T0,
    trust: pinned(bob),
    sessionOptions: { keepTranscript: false },
  });
  const hr = Responder.create({
    identity: bob,
    localId: ID_B,
    trust: pinned(alice),
  });
  const { send: hs2 } = await hr.receive(hs1, { now: T0, from: ID_A });
  const { send: hs3, session: si } = await hi.receive(hs2!, T0);
  const { session: sr } = await hr.receive(hs3, { now: T0 });
  assert.ok(si instanceof Session && sr instanceof Session);
  assert.equal(si.role, "initiator");
  assert.equal(sr.role, "responder");
  const body = utf8("hello over the handshake keys");
  const events = [];
  for (const packet of await si.send(body, T0)) {
    events.push(...(await sr.receive(packet, T0)).events);
  }
  const message = events.find((e) => e.type === "message");
  assert.ok(message && message.type === "message");
  assert.deepEqual(message.body, body);
});
