/**
 * Generates the handshake test vectors `good_handshake.json` and
 * `fail_handshake_*.json` in this folder, and exports the reference key
 * schedule (written from PROTOCOL.md with lib/suite.ts primitives only, not
 * with lib/handshake.ts) that tests/vectors_handshake_test.ts checks them with.
 *
 * Run by hand from the repository root:
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/vectors/generate.ts [--fresh]
 *
 * Keys, ephemerals and randoms are read back from the existing
 * good_handshake.json so that a re-run only changes what ECDSA randomizes;
 * `--fresh` draws new ones. ECDSA signatures are randomized by WebCrypto, so
 * HS2 after its 101-byte prefix and HS3 are one recorded run: a checker
 * reproduces HS1, the HS2 prefix and every key exactly, and verifies the
 * recorded ciphertexts, signatures and MACs with them.
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
  ecdh,
  importAeadKey,
  importEphemeralPublic,
  importMacKey,
  importSecret,
  mac,
  open,
  seal,
  sign,
  SUITE_P256,
  SUITE_P256_NAME,
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

/** good_handshake.json */
export interface GoodVector {
  description: string;
  version: number;
  suite: number;
  suiteName: string;
  initiatorId: string;
  responderId: string;
  initiator: PartyVector;
  responder: PartyVector;
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
  base: "good_handshake.json";
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

/** Computes the handshake keys from the ECDH inputs and the cleartext messages. */
export async function referenceKeys(
  initiatorId: Bytes,
  responderId: Bytes,
  hs1: Bytes,
  hs2Prefix: Bytes,
  ownEphemeral: CryptoKey,
  peerEphemeralPublic: Bytes,
): Promise<ReferenceKeys> {
  const prologue = concat(
    utf8(PROLOGUE_LABEL + SUITE_P256_NAME + "\0"),
    initiatorId,
    responderId,
  );
  const t = (...parts: Bytes[]) => sha256(prologue, ...parts);
  const sharedSecret = await ecdh(
    ownEphemeral,
    await importEphemeralPublic(peerEphemeralPublic),
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

/** A decrypted proof: u16 spki_len ‖ spki ‖ sig(64) ‖ mac(32). */
export interface ReferenceProof {
  spki: Bytes;
  sig: Bytes;
  mac: Bytes;
}

/** Opens a sealed proof under `key` (nonce 0, `aad`) and splits it. */
export async function openProof(
  key: Bytes,
  sealed: Bytes,
  aad: Bytes,
): Promise<ReferenceProof> {
  const p = await open(await importAeadKey(key), ZERO_NONCE, sealed, aad);
  const n = (p[0] << 8) | p[1];
  if (p.length !== 2 + n + 64 + 32) throw new Error("bad proof length");
  return {
    spki: p.slice(2, 2 + n),
    sig: p.slice(2 + n, 2 + n + 64),
    mac: p.slice(2 + n + 64),
  };
}

/** Builds a sealed proof by `who` (optionally tampered) under the reference keys. */
export async function sealProof(
  who: Identity,
  context: string,
  finished: Bytes,
  key: Bytes,
  aad: Bytes,
  th: (...parts: Bytes[]) => Promise<Bytes>,
  tamper: "none" | "signature" | "mac" | "extra-byte" = "none",
): Promise<Bytes> {
  const sig = await sign(
    who.privateKey,
    concat(utf8(context), await th(who.spki)),
  );
  if (tamper === "signature") sig[10] ^= 0x01;
  const tag = await mac(await importMacKey(finished), await th(who.spki, sig));
  if (tamper === "mac") tag[0] ^= 0x01;
  const proof = concat(u16(who.spki.length), who.spki, sig, tag);
  const plain = tamper === "extra-byte"
    ? concat(proof, new Uint8Array(1))
    : proof;
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

async function freshParty(): Promise<PartyVector> {
  const id = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const eph = await crypto.subtle.generateKey(
    { name: "ECDH", namedCurve: "P-256" },
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

async function generate(dir: URL, fresh: boolean): Promise<void> {
  const goodUrl = new URL("good_handshake.json", dir);
  let old: GoodVector | undefined;
  if (!fresh) {
    try {
      old = JSON.parse(await Deno.readTextFile(goodUrl));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const initiatorV = old?.initiator ?? await freshParty();
  const responderV = old?.responder ?? await freshParty();
  const initiatorId = old
    ? Uint8Array.fromHex(old.initiatorId)
    : crypto.getRandomValues(new Uint8Array(16));
  const responderId = old
    ? Uint8Array.fromHex(old.responderId)
    : crypto.getRandomValues(new Uint8Array(16));
  const I = await importParty(initiatorV);
  const R = await importParty(responderV);

  // One real run of lib/handshake.ts with the fixed inputs.
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: I.identity,
    localId: initiatorId,
    peerId: responderId,
    now: 0,
    trust: pinnedTrust(R.identity.spki),
    complete: asResult,
    ephemeral: I.ephemeral,
    random: I.random,
  });
  const hr = Responder.create({
    identity: R.identity,
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
  const prefix = hs2.slice(0, 101);
  const k = await referenceKeys(
    initiatorId,
    responderId,
    hs1,
    prefix,
    I.ephemeral.privateKey,
    R.ephemeral.publicRaw,
  );
  const p2 = await openProof(k.kHsR, hs2.slice(101), prefix);
  const p3 = await openProof(k.kHsI, hs3.slice(2), hs3.slice(0, 2));
  const sessionHash = await k.t(hs1, hs2, hs3);
  if (
    sessionHash.toHex() !== si.sessionHash.toHex() ||
    sessionHash.toHex() !== sr.sessionHash.toHex()
  ) {
    throw new Error("reference session hash differs from the library's");
  }
  const good: GoodVector = {
    description:
      "A complete handshake with fixed identities, ephemerals, randoms and relay IDs. " +
      "'deterministic' values are reproducible from the inputs; 'recorded' values are one run " +
      "(ECDSA P-256 signatures are randomized): verify them, do not expect to reproduce them.",
    version: 1,
    suite: SUITE_P256,
    suiteName: SUITE_P256_NAME,
    initiatorId: initiatorId.toHex(),
    responderId: responderId.toHex(),
    initiator: initiatorV,
    responder: responderV,
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

  // ── fail vectors ──
  const other = await freshParty();
  const otherParty = await importParty(other);
  const hex = (b: Bytes) => b.toHex();
  const with1 = (at: number, value: number) => {
    const m = hs1.slice();
    m[at] = value;
    return m;
  };
  const offCurve = hs1.slice();
  offCurve[68] ^= 0x01;
  const swapped = hs2.slice();
  swapped.set(otherParty.ephemeral.publicRaw, 4);
  const sealedHs2 = async (
    tamper: "signature" | "mac" | "extra-byte",
  ) =>
    concat(
      prefix,
      await sealProof(
        R.identity,
        RESPONDER_SIGNATURE_CONTEXT,
        k.finR,
        k.kHsR,
        prefix,
        (...parts) => k.t(hs1, prefix, ...parts),
        tamper,
      ),
    );
  // HS2 from a responder that saw the HS1 arrive from another relay session.
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
  // An HS3 sealed correctly by the initiator but with the wrong-role context:
  // signature verification fails whatever HS2 the responder sent.
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

  const ok = (m: Bytes, now = 0): FailStep => ({
    message: hex(m),
    now,
    expect: "ok",
  });
  const fail = (
    description: string,
    role: "initiator" | "responder",
    steps: FailStep[],
    extra: Partial<FailVector> = {},
  ): FailVector => ({
    description,
    base: "good_handshake.json",
    role,
    ...extra,
    steps,
    expectedError: steps[steps.length - 1].expect,
  });
  const step = (m: Bytes, expect: string, now = 0, from?: Bytes): FailStep => ({
    message: hex(m),
    now,
    ...(from ? { from: hex(from) } : {}),
    expect,
  });
  const fails: Record<string, FailVector> = {
    wrong_version: fail("HS1 with version byte 2", "responder", [
      step(with1(0, 2), "unsupported-version"),
    ]),
    wrong_suite: fail("HS1 offering suite 0x0002 (unknown)", "responder", [
      step(with1(3, 2), "unsupported-suite"),
    ]),
    truncated_hs1: fail("HS1 one byte short", "responder", [
      step(hs1.slice(0, 100), "malformed"),
    ]),
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
      [step(await sealedHs2("signature"), "bad-signature")],
    ),
    bad_mac: fail(
      "HS2 sealed under the right key with a valid signature and a wrong MAC",
      "initiator",
      [step(await sealedHs2("mac"), "mac-mismatch")],
    ),
    malformed_proof: fail(
      "HS2 whose sealed proof has one trailing byte",
      "initiator",
      [step(await sealedHs2("extra-byte"), "malformed")],
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

  await Deno.writeTextFile(goodUrl, JSON.stringify(good, null, 2) + "\n");
  for (const [name, v] of Object.entries(fails)) {
    await Deno.writeTextFile(
      new URL(`fail_handshake_${name}.json`, dir),
      JSON.stringify(v, null, 2) + "\n",
    );
  }
  console.log(
    `wrote good_handshake.json and ${
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
