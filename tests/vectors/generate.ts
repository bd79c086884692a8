/**
 * Generates the handshake test vectors `good_handshake.json` (suite 0x0001,
 * P-256), `good_handshake_x25519.json` (suite 0x0002, the initiator offering
 * X25519 then P-256) and `fail_handshake_*.json` in this folder, and exports
 * the reference key schedule (written from PROTOCOL.md with lib/suite.ts
 * primitives only, not with lib/handshake.ts) that
 * tests/vectors_handshake_test.ts checks them with. The same vectors are
 * checked independently by tests/reference/handshake.py (Python
 * `cryptography`).
 *
 * Run by hand from the repository root:
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/vectors/generate.ts [--fresh]
 *
 * Keys, ephemerals and randoms are read back from the existing
 * good_handshake*.json so that a re-run only changes what ECDSA randomizes;
 * `--fresh` draws new ones. ECDSA signatures may be randomized by WebCrypto,
 * so for P-256 HS2 after its 101-byte prefix and HS3 are one recorded run: a
 * checker reproduces HS1, the HS2 prefix and every key exactly, and verifies
 * the recorded ciphertexts, signatures and MACs with them. Ed25519 is
 * deterministic (RFC 8032): the X25519 vector is reproduced byte for byte.
 * @module
 */

import { type Bytes, concat, sha256, u16, utf8 } from "../../lib/bytes.ts";
import { ProtocolError } from "../../lib/errors.ts";
import {
  importEphemeralPkcs8,
  Initiator,
  Responder,
  type TrustCallback,
} from "../../lib/handshake.ts";
import type { HandshakeResult } from "../../lib/handshake_result.ts";
import { type Identity, importIdentity } from "../../lib/identity.ts";
import {
  deriveLabel,
  dh,
  importAeadKey,
  importMacKey,
  importSecret,
  importSuiteEphemeral,
  mac,
  open,
  seal,
  sign,
  SUITE_P256,
  SUITE_X25519,
  SUITES,
} from "../../lib/suite.ts";

// ── Vector file shapes ──────────────────────────────────────────────────────

/** One party's fixed inputs (all hex). */
export interface PartyVector {
  identityPkcs8: string;
  identitySpki: string;
  ephemeralPkcs8: string;
  ephemeralPublic: string;
  random: string;
}

/** good_handshake.json, good_handshake_x25519.json */
export interface GoodVector {
  description: string;
  version: number;
  /** The negotiated suite. */
  suite: number;
  suiteName: string;
  /** Suites the initiator offers, in order (default [suite]). */
  initiatorSuites?: number[];
  /** Suites the responder accepts (default [suite]). */
  responderSuites?: number[];
  initiatorId: string;
  responderId: string;
  initiator: PartyVector;
  responder: PartyVector;
  /** The initiator's identity and ephemeral for its other offered suite (P-256 in the X25519 vector). */
  initiatorOther?: PartyVector;
  /** Reproducible from the inputs alone. */
  deterministic: {
    prologue: string;
    hs1: string;
    hs2Prefix: string;
    sharedSecret: string;
    thHello: string;
    kHsR: string;
    kHsI: string;
    finR: string;
    finI: string;
    thR: string;
  };
  /** One recorded run (ECDSA is randomized); checked, not reproduced. */
  recorded: {
    hs2: string;
    hs3: string;
    sigR: string;
    macR: string;
    thI: string;
    sigI: string;
    macI: string;
    sessionHash: string;
    master: string;
  };
}

/** One message delivered to the handshake under test. */
export interface FailStep {
  message: string;
  now: number;
  /** Responder only: relay sender ID (hex); default the vector's initiatorId. */
  from?: string;
  /** "ok" or the ProtocolError code this step must throw (only the last step may fail). */
  expect: string;
}

/** fail_handshake_*.json */
export interface FailVector {
  description: string;
  base: "good_handshake.json" | "good_handshake_x25519.json";
  /** Which side runs, with its fixed inputs from the base vector. */
  role: "initiator" | "responder";
  /** Trust: the SPKI (hex) the side under test accepts; default the base peer's SPKI. */
  pinnedPeerSpki?: string;
  /** Initiator only: time passed to Initiator.start (default 0); deadline 10000 ms. */
  startNow?: number;
  steps: FailStep[];
  expectedError: string;
}

// ── Reference key schedule (PROTOCOL.md §Handshake) ─────────────────────────

// Spelled out from the spec rather than imported from lib/handshake.ts, so a
// change there shows up as a vector mismatch.
const EMPTY = new Uint8Array(0);
const ZERO_NONCE = new Uint8Array(12);
const PROLOGUE_LABEL = "e2e.v1 handshake\0";
/** Signature context strings of the two roles. */
export const RESPONDER_SIGNATURE_CONTEXT = "e2e.v1 responder signature\0";
/** Signature context string of the initiator. */
export const INITIATOR_SIGNATURE_CONTEXT = "e2e.v1 initiator signature\0";
const LABELS = {
  responderKey: "hs r key",
  initiatorKey: "hs i key",
  responderFinished: "hs r finished",
  initiatorFinished: "hs i finished",
  master: "master",
};

/** Raw bytes of every handshake-phase secret. */
export interface ReferenceKeys {
  prologue: Bytes;
  sharedSecret: Bytes;
  thHello: Bytes;
  kHsR: Bytes;
  kHsI: Bytes;
  finR: Bytes;
  finI: Bytes;
  /** HKDF key of the shared secret. */
  hs: CryptoKey;
  /** T(x) = SHA-256(prologue ‖ x). */
  t: (...parts: Bytes[]) => Promise<Bytes>;
}

/** Computes the handshake keys of `suite` from the DH inputs and the cleartext messages. */
export async function referenceKeys(
  initiatorId: Bytes,
  responderId: Bytes,
  hs1: Bytes,
  hs2Prefix: Bytes,
  ownEphemeral: CryptoKey,
  peerEphemeralPublic: Bytes,
  suite: number = SUITE_P256,
): Promise<ReferenceKeys> {
  const prologue = concat(
    utf8(PROLOGUE_LABEL + SUITES.get(suite)!.name + "\0"),
    initiatorId,
    responderId,
  );
  const t = (...parts: Bytes[]) => sha256(prologue, ...parts);
  const sharedSecret = await dh(
    ownEphemeral,
    await importSuiteEphemeral(suite, peerEphemeralPublic),
  );
  const hs = await importSecret(sharedSecret);
  const thHello = await t(hs1, hs2Prefix);
  const d = (label: string) => deriveLabel(hs, thHello, label, EMPTY, 32);
  const L = LABELS;
  return {
    prologue,
    sharedSecret,
    thHello,
    kHsR: await d(L.responderKey),
    kHsI: await d(L.initiatorKey),
    finR: await d(L.responderFinished),
    finI: await d(L.initiatorFinished),
    hs,
    t,
  };
}

/** master = deriveLabel(hs, sessionHash, "master", ∅, 32) as raw bytes. */
export function referenceMaster(
  hs: CryptoKey,
  sessionHash: Bytes,
): Promise<Bytes> {
  return deriveLabel(hs, sessionHash, LABELS.master, EMPTY, 32);
}

/** A decrypted proof: u16 spki_len ‖ spki ‖ sig(64) ‖ mac(32) ‖ zero padding. */
export interface ReferenceProof {
  spki: Bytes;
  sig: Bytes;
  mac: Bytes;
}

/**
 * Padded length of a handshake message with `n` content bytes: the relay
 * frame (n + 22) rounded up to a power-of-two bucket ≥ 256, minus 22
 * (PROTOCOL.md §2.1 Padding; every handshake message is below 1 KiB).
 */
export function referencePadded(n: number): number {
  let bucket = 256;
  while (bucket < n + 22) bucket *= 2;
  return bucket - 22;
}

/** Opens a sealed proof under `key` (nonce 0, `aad`), checks its padding and splits it. */
export async function openProof(
  key: Bytes,
  sealed: Bytes,
  aad: Bytes,
): Promise<ReferenceProof> {
  const p = await open(await importAeadKey(key), ZERO_NONCE, sealed, aad);
  const n = (p[0] << 8) | p[1];
  const end = 2 + n + 64 + 32;
  if (end > p.length || p.subarray(end).some((b) => b !== 0)) {
    throw new Error("bad proof length or padding");
  }
  if (aad.length + sealed.length !== referencePadded(aad.length + end + 16)) {
    throw new Error("proof not padded to its minimal bucket");
  }
  return {
    spki: p.slice(2, 2 + n),
    sig: p.slice(2 + n, 2 + n + 64),
    mac: p.slice(2 + n + 64, end),
  };
}

/** HS1 from the spec: ver type randomI n (suite u16 ‖ len u8 ‖ eI)… zero padding. */
export function referenceHs1(
  random: Bytes,
  offers: { suite: number; ephemeral: Bytes }[],
): Bytes {
  const content = concat(
    new Uint8Array([1, 1]),
    random,
    new Uint8Array([offers.length]),
    ...offers.flatMap((o) => [
      u16(o.suite),
      new Uint8Array([o.ephemeral.length]),
      o.ephemeral,
    ]),
  );
  const out = new Uint8Array(referencePadded(content.length));
  out.set(content);
  return out;
}

/** Builds a sealed proof by `who` (optionally tampered) under the reference keys. */
export async function sealProof(
  who: Identity,
  context: string,
  finished: Bytes,
  key: Bytes,
  aad: Bytes,
  th: (...parts: Bytes[]) => Promise<Bytes>,
  tamper: "none" | "signature" | "mac" | "extra-byte" | "bad-padding" = "none",
): Promise<Bytes> {
  const sig = await sign(
    who.privateKey,
    concat(utf8(context), await th(who.spki)),
  );
  if (tamper === "signature") sig[10] ^= 0x01;
  const tag = await mac(await importMacKey(finished), await th(who.spki, sig));
  if (tamper === "mac") tag[0] ^= 0x01;
  const proof = concat(u16(who.spki.length), who.spki, sig, tag);
  // Zero padding to the bucket; "extra-byte" pads to the next bucket instead.
  let total = referencePadded(aad.length + proof.length + 16);
  if (tamper === "extra-byte") total = referencePadded(total + 1);
  const plain = new Uint8Array(total - aad.length - 16);
  plain.set(proof);
  if (tamper === "bad-padding") plain[plain.length - 1] = 1;
  return seal(await importAeadKey(key), ZERO_NONCE, plain, aad);
}

/** Fixed inputs of one party, imported. */
export interface Party {
  identity: Identity;
  ephemeral: Awaited<ReturnType<typeof importEphemeralPkcs8>>;
  random: Bytes;
}

/** Imports a party's fixed keys from its vector entry. */
export async function importParty(v: PartyVector): Promise<Party> {
  return {
    identity: await importIdentity(
      Uint8Array.fromHex(v.identityPkcs8),
      Uint8Array.fromHex(v.identitySpki),
      "vector",
    ),
    ephemeral: await importEphemeralPkcs8(Uint8Array.fromHex(v.ephemeralPkcs8)),
    random: Uint8Array.fromHex(v.random),
  };
}

/** A trust callback accepting exactly `spki`, refusing others with identity-changed. */
export function pinnedTrust(spki: Bytes): TrustCallback {
  const want = spki.toHex();
  return (got) =>
    got.toHex() === want
      ? "ok"
      : { code: "identity-changed", message: "not the pinned peer key" };
}

// ── Generation ──────────────────────────────────────────────────────────────

async function freshParty(suite: number): Promise<PartyVector> {
  const x = suite === SUITE_X25519;
  const id = await crypto.subtle.generateKey(
    (x
      ? "Ed25519"
      : { name: "ECDSA", namedCurve: "P-256" }) as AlgorithmIdentifier,
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const eph = await crypto.subtle.generateKey(
    (x
      ? { name: "X25519" }
      : { name: "ECDH", namedCurve: "P-256" }) as AlgorithmIdentifier,
    true,
    ["deriveBits"],
  ) as CryptoKeyPair;
  const hexOf = async (format: "pkcs8" | "spki" | "raw", key: CryptoKey) =>
    new Uint8Array(await crypto.subtle.exportKey(format, key)).toHex();
  return {
    identityPkcs8: await hexOf("pkcs8", id.privateKey),
    identitySpki: await hexOf("spki", id.publicKey),
    ephemeralPkcs8: await hexOf("pkcs8", eph.privateKey),
    ephemeralPublic: await hexOf("raw", eph.publicKey),
    random: crypto.getRandomValues(new Uint8Array(32)).toHex(),
  };
}

const asResult = (r: HandshakeResult) => r;

async function readOld(
  url: URL,
  fresh: boolean,
): Promise<GoodVector | undefined> {
  if (fresh) return undefined;
  try {
    return JSON.parse(await Deno.readTextFile(url));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return undefined;
  }
}

/** What one good vector's generation yields for the fail vectors. */
interface Run {
  good: GoodVector;
  I: Party;
  R: Party;
  initiatorId: Bytes;
  responderId: Bytes;
  hs1: Bytes;
  hs2: Bytes;
  hs3: Bytes;
  prefix: Bytes;
  k: ReferenceKeys;
}

/** One real run of lib/handshake.ts with fixed inputs, checked against the reference schedule. */
async function goodRun(
  suite: number,
  old: GoodVector | undefined,
  initiatorV: PartyVector,
  responderV: PartyVector,
  ids: { initiatorId: Bytes; responderId: Bytes },
  other?: PartyVector,
): Promise<Run> {
  const { initiatorId, responderId } = ids;
  const I = await importParty(initiatorV);
  const R = await importParty(responderV);
  const O = other ? await importParty(other) : undefined;
  const initiatorSuites = O ? [suite, SUITE_P256] : [suite];
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: I.identity,
    identities: O ? [O.identity] : [],
    suites: initiatorSuites,
    localId: initiatorId,
    peerId: responderId,
    now: 0,
    trust: pinnedTrust(R.identity.spki),
    complete: asResult,
    ephemeral: I.ephemeral,
    ephemerals: O ? [O.ephemeral] : [],
    random: I.random,
  });
  const hr = Responder.create({
    identity: R.identity,
    suites: [suite],
    localId: responderId,
    trust: pinnedTrust(I.identity.spki),
    complete: asResult,
    ephemeral: R.ephemeral,
    random: R.random,
  });
  const { send: hs2 } = await hr.receive(hs1, { now: 0, from: initiatorId });
  if (!hs2) throw new Error("responder sent no HS2");
  const { send: hs3, session: si } = await hi.receive(hs2, 0);
  const { session: sr } = await hr.receive(hs3, { now: 0 });
  if (!sr) throw new Error("responder gave no session");

  // The reference schedule must agree with the library.
  const refHs1 = referenceHs1(I.random, [
    { suite, ephemeral: I.ephemeral.publicRaw },
    ...(O ? [{ suite: SUITE_P256, ephemeral: O.ephemeral.publicRaw }] : []),
  ]);
  if (refHs1.toHex() !== hs1.toHex()) throw new Error("HS1 differs from spec");
  const prefixLength = 4 + SUITES.get(suite)!.pointLength + 32;
  const prefix = hs2.slice(0, prefixLength);
  const k = await referenceKeys(
    initiatorId,
    responderId,
    hs1,
    prefix,
    I.ephemeral.privateKey,
    R.ephemeral.publicRaw,
    suite,
  );
  const p2 = await openProof(k.kHsR, hs2.slice(prefixLength), prefix);
  const p3 = await openProof(k.kHsI, hs3.slice(2), hs3.slice(0, 2));
  const sessionHash = await k.t(hs1, hs2, hs3);
  if (
    sessionHash.toHex() !== si.sessionHash.toHex() ||
    sessionHash.toHex() !== sr.sessionHash.toHex()
  ) {
    throw new Error("reference session hash differs from the library's");
  }
  const x = suite === SUITE_X25519;
  const good: GoodVector = {
    description: x
      ? "Suite 0x0002 (X25519 + Ed25519): the initiator offers X25519 then P-256, the responder " +
        "accepts X25519 only. Fixed identities, ephemerals, randoms and relay IDs. Ed25519 is " +
        "deterministic, so every value (the 'recorded' ones too) is reproducible from the inputs."
      : "A complete handshake with fixed identities, ephemerals, randoms and relay IDs. " +
        "'deterministic' values are reproducible from the inputs; 'recorded' values are one run " +
        "(ECDSA P-256 signatures are randomized): verify them, do not expect to reproduce them.",
    version: 1,
    suite,
    suiteName: SUITES.get(suite)!.name,
    ...(O ? { initiatorSuites, responderSuites: [suite] } : {}),
    initiatorId: initiatorId.toHex(),
    responderId: responderId.toHex(),
    initiator: initiatorV,
    responder: responderV,
    ...(other ? { initiatorOther: other } : {}),
    deterministic: {
      prologue: k.prologue.toHex(),
      hs1: hs1.toHex(),
      hs2Prefix: prefix.toHex(),
      sharedSecret: k.sharedSecret.toHex(),
      thHello: k.thHello.toHex(),
      kHsR: k.kHsR.toHex(),
      kHsI: k.kHsI.toHex(),
      finR: k.finR.toHex(),
      finI: k.finI.toHex(),
      thR: (await k.t(hs1, prefix, R.identity.spki)).toHex(),
    },
    recorded: {
      hs2: hs2.toHex(),
      hs3: hs3.toHex(),
      sigR: p2.sig.toHex(),
      macR: p2.mac.toHex(),
      thI: (await k.t(hs1, hs2, I.identity.spki)).toHex(),
      sigI: p3.sig.toHex(),
      macI: p3.mac.toHex(),
      sessionHash: sessionHash.toHex(),
      master: (await referenceMaster(k.hs, sessionHash)).toHex(),
    },
  };
  void old;
  return { good, I, R, initiatorId, responderId, hs1, hs2, hs3, prefix, k };
}

const hex = (b: Bytes) => b.toHex();
const ok = (m: Bytes, now = 0): FailStep => ({
  message: hex(m),
  now,
  expect: "ok",
});
const step = (m: Bytes, expect: string, now = 0, from?: Bytes): FailStep => ({
  message: hex(m),
  now,
  ...(from ? { from: hex(from) } : {}),
  expect,
});
const failOf = (base: FailVector["base"]) =>
(
  description: string,
  role: "initiator" | "responder",
  steps: FailStep[],
  extra: Partial<FailVector> = {},
): FailVector => ({
  description,
  base,
  role,
  ...extra,
  steps,
  expectedError: steps[steps.length - 1].expect,
});

/** A sealed HS2 by the run's responder (optionally tampered or by another identity). */
function sealedHs2(
  r: Run,
  tamper: "signature" | "mac" | "extra-byte" | "bad-padding" | "none",
  who: Identity = r.R.identity,
): Promise<Bytes> {
  return sealProof(
    who,
    RESPONDER_SIGNATURE_CONTEXT,
    r.k.finR,
    r.k.kHsR,
    r.prefix,
    (...parts) => r.k.t(r.hs1, r.prefix, ...parts),
    tamper,
  ).then((sealed) => concat(r.prefix, sealed));
}

async function p256Fails(r: Run): Promise<Record<string, FailVector>> {
  const { hs1, hs2, hs3, k, I, R, responderId } = r;
  const fail = failOf("good_handshake.json");
  const other = await freshParty(SUITE_P256);
  const otherParty = await importParty(other);
  const with1 = (at: number, value: number) => {
    const m = hs1.slice();
    m[at] = value;
    return m;
  };
  // HS1 (one P-256 offer): ver type randomI[2..34] n[34] suite[35..37] len[37] eI[38..103] zeros.
  const offCurve = hs1.slice();
  offCurve[102] ^= 0x01;
  const swapped = hs2.slice();
  swapped.set(otherParty.ephemeral.publicRaw, 4);
  const spliceR = Responder.create({
    identity: R.identity,
    localId: responderId,
    trust: () => "ok",
    complete: asResult,
    ephemeral: R.ephemeral,
    random: R.random,
  });
  const otherId = new Uint8Array(16).fill(0x33);
  const { send: splicedHs2 } = await spliceR.receive(hs1, {
    now: 0,
    from: otherId,
  });
  const badTagHs3 = hs3.slice();
  badTagHs3[badTagHs3.length - 1] ^= 0x01;
  const wrongRoleHs3 = concat(
    hs3.slice(0, 2),
    await sealProof(
      I.identity,
      RESPONDER_SIGNATURE_CONTEXT,
      k.finI,
      k.kHsI,
      hs3.slice(0, 2),
      (...parts) => k.t(hs1, hs2, ...parts),
    ),
  );
  const nonZeroPadding = hs1.slice();
  nonZeroPadding[hs1.length - 1] = 0x01;
  const nonMinimal = new Uint8Array(referencePadded(hs1.length + 1));
  nonMinimal.set(hs1);
  return {
    wrong_version: fail("HS1 with version byte 2", "responder", [
      step(with1(0, 2), "unsupported-version"),
    ]),
    wrong_suite: fail(
      "HS1 offering only suite 0x0009 (unknown; skipped by its key length)",
      "responder",
      [step(with1(36, 9), "unsupported-suite")],
    ),
    truncated_hs1: fail("HS1 one byte short", "responder", [
      step(hs1.slice(0, hs1.length - 1), "malformed"),
    ]),
    hs1_nonzero_padding: fail(
      "HS1 whose last padding byte is 0x01",
      "responder",
      [step(nonZeroPadding, "malformed")],
    ),
    hs1_non_minimal_bucket: fail(
      "HS1 zero-padded to the 512-byte bucket instead of 256",
      "responder",
      [step(nonMinimal, "malformed")],
    ),
    invalid_ephemeral: fail(
      "HS1 whose eI is off the curve (last byte of Y flipped)",
      "responder",
      [step(offCurve, "invalid-public-key")],
    ),
    replayed_hs1: fail("HS1 delivered twice", "responder", [
      ok(hs1),
      step(hs1, "unexpected-message"),
    ]),
    hs3_bad_tag: fail("HS3 with its AEAD tag altered", "responder", [
      ok(hs1),
      step(badTagHs3, "decrypt-failed"),
    ]),
    hs3_wrong_role_signature: fail(
      "HS3 correctly sealed, signature made with the responder's context string",
      "responder",
      [ok(hs1), step(wrongRoleHs3, "bad-signature")],
    ),
    swapped_ephemeral: fail(
      "HS2 with eR replaced by another valid point (MITM)",
      "initiator",
      [step(swapped, "decrypt-failed")],
    ),
    spliced_relay_id: fail(
      "HS2 from a responder that received HS1 from relay session 3333…33, not the initiator's",
      "initiator",
      [step(splicedHs2!, "decrypt-failed")],
    ),
    bad_signature: fail(
      "HS2 sealed under the right key with a corrupted signature and a MAC over it",
      "initiator",
      [step(await sealedHs2(r, "signature"), "bad-signature")],
    ),
    bad_mac: fail(
      "HS2 sealed under the right key with a valid signature and a wrong MAC",
      "initiator",
      [step(await sealedHs2(r, "mac"), "mac-mismatch")],
    ),
    malformed_proof: fail(
      "HS2 whose sealed proof is zero-padded to the next bucket (non-minimal)",
      "initiator",
      [step(await sealedHs2(r, "extra-byte"), "malformed")],
    ),
    hs2_nonzero_padding: fail(
      "HS2 whose sealed proof has a non-zero padding byte",
      "initiator",
      [step(await sealedHs2(r, "bad-padding"), "malformed")],
    ),
    identity_changed: fail(
      "valid HS2, but the initiator pinned another responder key (TOFU)",
      "initiator",
      [step(hs2, "identity-changed")],
      { pinnedPeerSpki: other.identitySpki },
    ),
    timeout: fail(
      "valid HS2 arriving 10000 ms after Initiator.start (deadline 10000 ms)",
      "initiator",
      [step(hs2, "timeout", 10000)],
      { startNow: 0 },
    ),
  };
}

async function x25519Fails(
  r: Run,
  p256Identity: Identity,
): Promise<Record<string, FailVector>> {
  const { hs1, hs3 } = r;
  const fail = failOf("good_handshake_x25519.json");
  // HS1: ver type randomI[2..34] n=2[34] [0002 20 eI(32)][35..70] [0001 41 eI(65)][70..138] zeros.
  const smallOrder = hs1.slice();
  smallOrder.fill(0, 38, 70);
  const p256Only = new Uint8Array(hs1.length);
  p256Only.set(hs1.slice(0, 34));
  p256Only[34] = 1;
  p256Only.set(hs1.slice(70, 138), 35);
  const badTagHs3 = hs3.slice();
  badTagHs3[badTagHs3.length - 1] ^= 0x01;
  const dup = hs1.slice();
  dup.set(hs1.slice(35, 37), 70); // the second offer names 0x0002 again
  return {
    x25519_small_order_ephemeral: fail(
      "HS1 whose X25519 key share is all zeros (small order)",
      "responder",
      [step(smallOrder, "invalid-public-key")],
    ),
    x25519_no_accepted_suite: fail(
      "HS1 offering only P-256 to a responder accepting only X25519",
      "responder",
      [step(p256Only, "unsupported-suite")],
    ),
    x25519_duplicate_offer: fail(
      "HS1 offering suite 0x0002 twice",
      "responder",
      [step(dup, "malformed")],
    ),
    x25519_hs3_bad_tag: fail("HS3 with its AEAD tag altered", "responder", [
      ok(hs1),
      step(badTagHs3, "decrypt-failed"),
    ]),
    x25519_p256_identity: fail(
      "HS2 sealed under the right keys, proving a P-256 identity in the Ed25519 suite",
      "initiator",
      [step(await sealedHs2(r, "none", p256Identity), "invalid-public-key")],
      { pinnedPeerSpki: p256Identity.spki.toHex() },
    ),
    x25519_bad_signature: fail(
      "HS2 sealed under the right key with a corrupted Ed25519 signature",
      "initiator",
      [step(await sealedHs2(r, "signature"), "bad-signature")],
    ),
    x25519_bad_mac: fail(
      "HS2 with a valid Ed25519 signature and a wrong MAC",
      "initiator",
      [step(await sealedHs2(r, "mac"), "mac-mismatch")],
    ),
    x25519_nonzero_padding: fail(
      "HS2 whose sealed proof has a non-zero padding byte",
      "initiator",
      [step(await sealedHs2(r, "bad-padding"), "malformed")],
    ),
  };
}

async function generate(dir: URL, fresh: boolean): Promise<void> {
  const goodUrl = new URL("good_handshake.json", dir);
  const xUrl = new URL("good_handshake_x25519.json", dir);
  const old = await readOld(goodUrl, fresh);
  const oldX = await readOld(xUrl, fresh);
  const ids = (o: GoodVector | undefined) => ({
    initiatorId: o
      ? Uint8Array.fromHex(o.initiatorId)
      : crypto.getRandomValues(new Uint8Array(16)),
    responderId: o
      ? Uint8Array.fromHex(o.responderId)
      : crypto.getRandomValues(new Uint8Array(16)),
  });
  const p256I = old?.initiator ?? await freshParty(SUITE_P256);
  const p256 = await goodRun(
    SUITE_P256,
    old,
    p256I,
    old?.responder ?? await freshParty(SUITE_P256),
    ids(old),
  );
  // The X25519 initiator also offers P-256 with good_handshake.json's
  // initiator identity and ephemeral.
  const x = await goodRun(
    SUITE_X25519,
    oldX,
    oldX?.initiator ?? await freshParty(SUITE_X25519),
    oldX?.responder ?? await freshParty(SUITE_X25519),
    ids(oldX),
    p256I,
  );
  const fails = {
    ...await p256Fails(p256),
    ...await x25519Fails(x, p256.I.identity),
  };
  await Deno.writeTextFile(goodUrl, JSON.stringify(p256.good, null, 2) + "\n");
  await Deno.writeTextFile(xUrl, JSON.stringify(x.good, null, 2) + "\n");
  for (const [name, v] of Object.entries(fails)) {
    await Deno.writeTextFile(
      new URL(`fail_handshake_${name}.json`, dir),
      JSON.stringify(v, null, 2) + "\n",
    );
  }
  console.log(
    `wrote good_handshake.json, good_handshake_x25519.json and ${
      Object.keys(fails).length
    } fail_handshake_*.json`,
  );
}

if (import.meta.main) {
  try {
    await generate(
      new URL("./", import.meta.url),
      Deno.args.includes("--fresh"),
    );
  } catch (e) {
    console.error(e instanceof ProtocolError ? `${e.code}: ${e.message}` : e);
    Deno.exit(1);
  }
}
