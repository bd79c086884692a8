/**
 * The handshake's cryptography apart from its state machines
 * (`lib/handshake.ts`): transcript labels and prologue, the key schedule,
 * the proofs (sign, MAC; verify, MAC, trust), and fixed ephemerals for test
 * vectors. PROTOCOL.md §2.1 Transcript, Key schedule.
 * @module
 */

import {
  type Bytes,
  concat,
  constantTimeEqual,
  sha256,
  utf8,
} from "./bytes.ts";
import { ProtocolError } from "./errors.ts";
import { encodeProof, type Proof } from "./handshake_wire.ts";
import type { Identity } from "./identity.ts";
import type { HandshakeRole } from "./handshake_result.ts";
import type {
  HandshakeKeyPrimitives,
  ProviderEphemeral,
  SecretKey,
  Sha256State,
} from "./primitives.ts";
import {
  AEAD_NONCE_LENGTH,
  AEAD_TAG_LENGTH,
  checkP256Point,
  deriveLabel,
  deriveLabelKey,
  dh,
  type EphemeralKeyPair,
  generateSuiteEphemeral,
  HASH_LENGTH,
  type IdentityAlgorithm,
  importIdentityPublic,
  importSecret,
  importSuiteEphemeral,
  labelInfo,
  mac,
  macVerify,
  open,
  seal,
  sign,
  spkiAlgorithm,
  SUITE_X25519,
  type SuiteInfo,
  verify,
  X25519_POINT_LENGTH,
} from "./suite.ts";

/** Transcript prologue label; the NUL ends it unambiguously. */
export const PROLOGUE_LABEL = "e2e.v1 handshake\0";
/** Context prefixed to the transcript hash the responder signs. */
export const RESPONDER_SIGNATURE_CONTEXT = "e2e.v1 responder signature\0";
/** Context prefixed to the transcript hash the initiator signs. */
export const INITIATOR_SIGNATURE_CONTEXT = "e2e.v1 initiator signature\0";
/** HKDF labels of the key schedule (deriveLabel adds the "e2e.v1 " prefix). */
export const HANDSHAKE_LABELS = {
  responderKey: "hs r key",
  initiatorKey: "hs i key",
  responderFinished: "hs r finished",
  initiatorFinished: "hs i finished",
  master: "master",
} as const;

/** Each handshake AEAD key encrypts exactly one message, so a zero nonce is safe. */
export const ZERO_NONCE = new Uint8Array(AEAD_NONCE_LENGTH);
const EMPTY = new Uint8Array(0);

/** Verdict of a {@link TrustCallback}: accept, or refuse with a specific code. */
export type TrustDecision = "ok" | {
  code: "identity-changed" | "identity-rejected";
  message: string;
};

/**
 * Decides whether the peer's identity is acceptable (TOFU, known peers, an
 * expected fingerprint). Called after the peer's signature and key
 * confirmation verified and before the handshake completes; a refusal ends
 * the handshake with the returned code. `peerFingerprintHex` is the
 * lower-case hex SHA-256 of `peerSpki`.
 */
export type TrustCallback = (
  peerSpki: Bytes,
  peerFingerprintHex: string,
) => TrustDecision;

/**
 * Handshake-phase keys behind one interface; never leave this module. The
 * WebCrypto path holds non-extractable CryptoKeys; with a
 * {@link HandshakeKeyPrimitives} provider the DH output is in the provider's
 * key object and the four derived 32-byte keys are raw bytes in this object
 * until {@link HandshakeSecrets.drop} zeroes them.
 */
export interface HandshakeSecrets {
  /** AES-256-GCM with the role's handshake key and the zero nonce. */
  seal(role: HandshakeRole, plaintext: Bytes, aad: Bytes): Promise<Bytes>;
  /** Opens with the role's handshake key; throws `decrypt-failed`. */
  open(role: HandshakeRole, sealed: Bytes, aad: Bytes): Promise<Bytes>;
  /** HMAC with the role's finished key. */
  mac(role: HandshakeRole, data: Bytes): Promise<Bytes>;
  /** Constant-time check of an HMAC with the role's finished key. */
  macVerify(role: HandshakeRole, tag: Bytes, data: Bytes): Promise<boolean>;
  /**
   * master = HKDF key of deriveLabel(hs, th_final, "master", ∅, 32):
   * non-extractable WebCrypto key, or with a provider its secret key object.
   */
  master(sessionHash: Bytes): Promise<SecretKey>;
  /** Forgets (zeroes, for raw bytes) every handshake secret. */
  drop(): void;
}

/**
 * Imports a fixed ephemeral private key (PKCS#8: ECDH P-256 or X25519) as a
 * non-extractable key pair. For deterministic test vectors only: a real
 * handshake generates its ephemeral.
 */
export async function importEphemeralPkcs8(
  pkcs8: Bytes,
): Promise<EphemeralKeyPair> {
  const x25519 = isX25519Pkcs8(pkcs8);
  const params = x25519
    ? { name: "X25519" }
    : { name: "ECDH", namedCurve: "P-256" };
  // Extractable only long enough to read the public key, then re-imported
  // non-extractable from JWK (which carries the private and public parts).
  const tmp = await crypto.subtle.importKey("pkcs8", pkcs8, params, true, [
    "deriveBits",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", tmp);
  const privateKey = await crypto.subtle.importKey("jwk", jwk, params, false, [
    "deriveBits",
  ]);
  const b64 = (s: string | undefined) =>
    Uint8Array.fromBase64(s!, { alphabet: "base64url" });
  const publicRaw = x25519
    ? b64(jwk.x)
    : concat(new Uint8Array([0x04]), b64(jwk.x), b64(jwk.y));
  return { privateKey, publicRaw };
}

/** PKCS#8 of an X25519 key (RFC 8410: OID 1.3.101.110). */
function isX25519Pkcs8(pkcs8: Bytes): boolean {
  const oid = Uint8Array.fromHex("06032b656e");
  for (let i = 0; i + oid.length <= Math.min(pkcs8.length, 16); i++) {
    if (oid.every((b, j) => pkcs8[i + j] === b)) return true;
  }
  return false;
}

/** Lower-case hex SHA-256 of an SPKI: the fingerprint passed to the trust callback. */
export async function spkiFingerprintHex(spki: Bytes): Promise<string> {
  return (await sha256(spki)).toHex();
}

/** PROLOGUE_LABEL ‖ suite name ‖ 0x00 per suite name, encoded once. */
const PROLOGUE_HEADS = new Map<string, Bytes>();

/** The transcript prologue: label, suite name, both relay IDs (initiator first). */
export function transcriptPrologue(
  suiteName: string,
  initiatorId: Bytes,
  responderId: Bytes,
): Bytes {
  let head = PROLOGUE_HEADS.get(suiteName);
  if (head === undefined) {
    head = concat(utf8(PROLOGUE_LABEL), utf8(suiteName), new Uint8Array([0]));
    if (PROLOGUE_HEADS.size < 16) PROLOGUE_HEADS.set(suiteName, head);
  }
  return concat(head, initiatorId, responderId);
}

// ── Transcript ──────────────────────────────────────────────────────────────

/** A SHA-256 provider (`SessionPrimitives.sha256`): synchronous in Deno drivers. */
export type HashFn = (data: Uint8Array) => Bytes | Promise<Bytes>;

/**
 * A position in the transcript: T(x) = SHA-256(prologue ‖ absorbed ‖ x).
 * Immutable: {@link Transcript.with} returns a longer transcript.
 */
export interface Transcript {
  /** This transcript extended by `parts` (this one is unchanged). */
  with(...parts: Bytes[]): Transcript;
  /** T(absorbed ‖ tail), 32 bytes. */
  hash(...tail: Bytes[]): Promise<Bytes>;
}

/**
 * The transcript after `prologue`. With a provider's incremental SHA-256
 * (`keys.sha256`), the absorbed part is hashed once and its state copied per
 * hash (each handshake message is hashed once per side instead of once per
 * transcript hash); else each hash is SHA-256 of the concatenation, with the
 * session's hash provider when given (the same function), else WebCrypto.
 */
export function transcript(
  prologue: Bytes,
  hash?: HashFn,
  keys?: HandshakeKeyPrimitives,
): Transcript {
  if (keys) return incremental(keys.sha256().update(prologue));
  return concatenated([prologue], hash);
}

function incremental(state: Sha256State): Transcript {
  return {
    with(...parts) {
      const next = state.copy();
      for (const p of parts) next.update(p);
      return incremental(next);
    },
    hash(...tail) {
      if (state.digestWith) return Promise.resolve(state.digestWith(tail));
      const s = state.copy();
      for (const p of tail) s.update(p);
      return Promise.resolve(s.digest());
    },
  };
}

function concatenated(absorbed: Bytes[], hash?: HashFn): Transcript {
  return {
    with: (...parts) => concatenated([...absorbed, ...parts], hash),
    hash: (...tail) =>
      hash
        ? Promise.resolve(hash(concat(...absorbed, ...tail)))
        : sha256(...absorbed, ...tail),
  };
}

// ── Peer identities ─────────────────────────────────────────────────────────

/** Peer identity keys kept imported (least recently used dropped first). */
export const PEER_KEY_CACHE_SIZE = 1024;

/** A peer identity as imported and checked once, with its fingerprint. */
interface PeerKey {
  publicKey: CryptoKey;
  fingerprintHex: string;
}

/**
 * SPKI (hex) → imported key and fingerprint: a bank sees the same customers
 * again (reconnects, re-handshakes), and importing and checking an SPKI
 * (for P-256 an import, two exports and an on-curve check) is the same
 * deterministic function of public bytes each time. Bounded; holds public
 * keys only; the trust callback still decides on every handshake.
 */
const peerKeys = new Map<string, PeerKey>();

/**
 * The peer's identity key of `algorithm` from its SPKI, imported and checked
 * by `importIdentityPublic` (throws `invalid-public-key`), with its
 * fingerprint; cached per SPKI (see {@link PEER_KEY_CACHE_SIZE}).
 */
export async function importPeerKey(
  spki: Bytes,
  algorithm: IdentityAlgorithm,
  hash?: HashFn,
): Promise<PeerKey> {
  const id = spkiAlgorithm(spki) === algorithm ? spki.toHex() : undefined;
  const cached = id === undefined ? undefined : peerKeys.get(id);
  if (cached) {
    peerKeys.delete(id!);
    peerKeys.set(id!, cached);
    return cached;
  }
  const publicKey = await importIdentityPublic(spki, algorithm);
  const fingerprintHex = hash
    ? (await hash(spki)).toHex()
    : await spkiFingerprintHex(spki);
  const entry = { publicKey, fingerprintHex };
  if (id !== undefined) {
    if (peerKeys.size >= PEER_KEY_CACHE_SIZE) {
      peerKeys.delete(peerKeys.keys().next().value!);
    }
    peerKeys.set(id, entry);
  }
  return entry;
}

// ── Proofs: spki ‖ signature ‖ key-confirmation MAC ─────────────────────────

/** UTF-8 of the two signature contexts, encoded once. */
const CONTEXT_BYTES = new Map<string, Bytes>(
  [RESPONDER_SIGNATURE_CONTEXT, INITIATOR_SIGNATURE_CONTEXT].map((
    c,
  ) => [c, utf8(c)]),
);

function contextBytes(context: string): Bytes {
  return CONTEXT_BYTES.get(context) ?? utf8(context);
}

/** Signs with the provider when it handles the key's algorithm, else WebCrypto. */
function signWith(
  p: HandshakeKeyPrimitives | undefined,
  privateKey: CryptoKey,
  data: Bytes,
): Bytes | Promise<Bytes> {
  return p?.sign(privateKey, data) ?? sign(privateKey, data);
}

/** sig = Sign(context ‖ T(… ‖ spki)); mac = HMAC(fin, T(… ‖ spki ‖ sig)); padded after `header` bytes. */
export async function makeProof(
  identity: Identity,
  header: number,
  context: string,
  finished: (data: Bytes) => Promise<Bytes>,
  th: Transcript,
  p?: HandshakeKeyPrimitives,
): Promise<Bytes> {
  const spki = identity.spki;
  const withSpki = th.with(spki);
  const signature = await signWith(
    p,
    identity.privateKey,
    concat(contextBytes(context), await withSpki.hash()),
  );
  const tag = await finished(await withSpki.hash(signature));
  return encodeProof(header, spki, signature, tag);
}

/** Verifies the SPKI's algorithm, the signature, then the MAC, then asks `trust`; returns the peer identity. */
export async function checkProof(
  proof: Proof,
  suite: SuiteInfo,
  context: string,
  finished: (tag: Bytes, data: Bytes) => Promise<boolean>,
  th: Transcript,
  trust: TrustCallback,
  hash?: HashFn,
  p?: HandshakeKeyPrimitives,
): Promise<{ publicKey: CryptoKey; spki: Bytes }> {
  const { publicKey, fingerprintHex } = await importPeerKey(
    proof.spki,
    suite.identityAlgorithm,
    hash,
  );
  const withSpki = th.with(proof.spki);
  const signed = concat(contextBytes(context), await withSpki.hash());
  const ok = p?.verify(proof.spki, proof.signature, signed) ??
    await verify(publicKey, proof.signature, signed);
  if (!ok) {
    throw new ProtocolError(
      "bad-signature",
      "peer's handshake signature does not verify",
    );
  }
  if (!await finished(proof.mac, await withSpki.hash(proof.signature))) {
    throw new ProtocolError(
      "mac-mismatch",
      "peer's key-confirmation MAC does not verify",
    );
  }
  const decision = trust(proof.spki.slice(), fingerprintHex);
  if (decision !== "ok") {
    const code = decision?.code === "identity-changed"
      ? "identity-changed"
      : "identity-rejected";
    throw new ProtocolError(
      code,
      decision?.message ?? "peer identity refused",
    );
  }
  return { publicKey, spki: proof.spki };
}

// ── Ephemerals ──────────────────────────────────────────────────────────────

/** An ephemeral of either kind: a WebCrypto key pair (lib default, vectors) or one a provider holds. */
export type Ephemeral = EphemeralKeyPair | ProviderEphemeral;

/** A fresh ephemeral of `suite`: from the provider when it offers one, else WebCrypto. */
export async function newEphemeral(
  suite: number,
  p?: HandshakeKeyPrimitives,
): Promise<Ephemeral> {
  return (await p?.generateEphemeral(suite)) ??
    await generateSuiteEphemeral(suite);
}

/**
 * DH of `own` with the peer's wire public key of `suite`, validated as in
 * `suite.ts` (`importSuiteEphemeral`, `dh`): a wrong length, a P-256 point
 * off the curve, a key the provider refuses, or an all-zero X25519 output is
 * `invalid-public-key`.
 */
export async function sharedSecret(
  own: Ephemeral,
  suite: number,
  peerRaw: Bytes,
): Promise<Bytes> {
  if (!("dh" in own)) {
    return dh(own.privateKey, await importSuiteEphemeral(suite, peerRaw));
  }
  const x25519 = suite === SUITE_X25519;
  if (!x25519) {
    checkP256Point(peerRaw);
  } else if (peerRaw.length !== X25519_POINT_LENGTH) {
    throw new ProtocolError(
      "invalid-public-key",
      "ephemeral key must be a 32-byte X25519 public key",
    );
  }
  let out: Bytes;
  try {
    out = await own.dh(peerRaw);
  } catch {
    throw new ProtocolError(
      "invalid-public-key",
      x25519
        ? "X25519 with this ephemeral key fails (small-order point)"
        : "ephemeral key is not a point on P-256",
    );
  }
  if (x25519 && out.every((b) => b === 0)) {
    throw new ProtocolError(
      "invalid-public-key",
      "X25519 shared secret is all zeros (small-order point)",
    );
  }
  return out;
}

// ── Key schedule ────────────────────────────────────────────────────────────

/**
 * hs = HKDF key of the ECDH secret; per-role AEAD and finished keys salted
 * with th_hello. With `p`, synchronously: one HKDF extract and an expand
 * per key with the provider's HMAC (see `rawSecrets`; raw bytes, zeroed by
 * `drop`), the master later from the provider's key object; else non-extractable WebCrypto
 * keys (four derives in parallel). Zeroes `shared` either way.
 */
export async function handshakeSecrets(
  shared: Bytes,
  thHello: Bytes,
  p?: HandshakeKeyPrimitives,
): Promise<HandshakeSecrets> {
  if (p) {
    const s = rawSecrets(p, shared, thHello);
    shared.fill(0);
    return s;
  }
  const hs = await importSecret(shared);
  shared.fill(0);
  const L = HANDSHAKE_LABELS;
  // deriveLabel(hs, th_hello, label, ∅, 32) straight into non-extractable keys.
  const [responderKey, initiatorKey, responderFinished, initiatorFinished] =
    await Promise.all([
      deriveLabelKey(hs, thHello, L.responderKey, "aead"),
      deriveLabelKey(hs, thHello, L.initiatorKey, "aead"),
      deriveLabelKey(hs, thHello, L.responderFinished, "mac"),
      deriveLabelKey(hs, thHello, L.initiatorFinished, "mac"),
    ]);
  const aead = (r: HandshakeRole) =>
    r === "responder" ? responderKey : initiatorKey;
  const fin = (r: HandshakeRole) =>
    r === "responder" ? responderFinished : initiatorFinished;
  return {
    seal: (r, pt, aad) => seal(aead(r), ZERO_NONCE, pt, aad),
    open: (r, ct, aad) => open(aead(r), ZERO_NONCE, ct, aad),
    mac: (r, data) => mac(fin(r), data),
    macVerify: (r, tag, data) => macVerify(fin(r), tag, data),
    master: (sessionHash) => deriveMaster(hs, sessionHash),
    drop() {},
  };
}

/** HKDF infos of the key schedule (deriveLabel with an empty context, 32 bytes), encoded once. */
const INFO = Object.fromEntries(
  Object.entries(HANDSHAKE_LABELS).map(([k, label]) => [
    k,
    labelInfo(label, EMPTY, 32),
  ]),
) as Record<keyof typeof HANDSHAKE_LABELS, Bytes>;

/** HKDF-Expand's info ‖ 0x01 for each key of the schedule: T(1), all a 32-byte key needs. */
const EXPAND = Object.fromEntries(
  Object.entries(INFO).map((
    [k, info],
  ) => [k, concat(info, new Uint8Array([1]))]),
) as Record<keyof typeof HANDSHAKE_LABELS, Bytes>;

/**
 * The {@link HandshakeSecrets} of a synchronous provider: the DH output in
 * the provider's key object (one per handshake, for the master), the four
 * derived keys as raw bytes zeroed by `drop`; the master in a key object of
 * its own (`keepMaster`) or a non-extractable WebCrypto key. The four keys
 * share HKDF's extract (same salt th_hello, same input): it runs once, as
 * the provider's HMAC (PRK = HMAC(th_hello, shared), RFC 5869 §2.2), and
 * each key is one HMAC expand (T(1) = HMAC(PRK, info ‖ 0x01), §2.3, as
 * L = 32): the same bytes as four HKDF calls, for five HMACs instead of
 * eight. The PRK is zeroed at once; it yields these four keys only (the
 * master is extracted with th_final from the key object).
 */
function rawSecrets(
  p: HandshakeKeyPrimitives,
  shared: Bytes,
  thHello: Bytes,
): HandshakeSecrets {
  const hkdf = p.hkdfFrom(shared); // the caller zeroes `shared`
  const prk = p.hmac(thHello, shared);
  const expander = p.hmacKey?.(prk) ??
    { mac: (info: Bytes) => p.hmac(prk, info), wipe() {} };
  const keys = {
    responder: expander.mac(EXPAND.responderKey),
    initiator: expander.mac(EXPAND.initiatorKey),
  };
  const fins = {
    responder: expander.mac(EXPAND.responderFinished),
    initiator: expander.mac(EXPAND.initiatorFinished),
  };
  expander.wipe();
  prk.fill(0);
  const all = [keys.responder, keys.initiator, fins.responder, fins.initiator];
  return {
    seal: (r, pt, aad) => Promise.resolve(p.seal(keys[r], ZERO_NONCE, pt, aad)),
    open(r, ct, aad) {
      const pt = ct.length < AEAD_TAG_LENGTH
        ? null
        : p.open(keys[r], ZERO_NONCE, ct, aad);
      if (pt === null) {
        return Promise.reject(
          new ProtocolError("decrypt-failed", "authentication tag mismatch"),
        );
      }
      return Promise.resolve(pt);
    },
    mac: (r, data) => Promise.resolve(p.hmac(fins[r], data)),
    macVerify: (r, tag, data) =>
      Promise.resolve(
        tag.length === HASH_LENGTH &&
          constantTimeEqual(p.hmac(fins[r], data), tag),
      ),
    async master(sessionHash) {
      const raw = hkdf(sessionHash, INFO.master, 32);
      try {
        // keepMaster: in the provider's key object (as `hs` is), so the
        // session derives from it synchronously; else a non-extractable
        // WebCrypto key.
        return p.keepMaster
          ? { hkdf: p.hkdfFrom(raw) }
          : await importSecret(raw);
      } finally {
        raw.fill(0);
      }
    },
    drop() {
      for (const k of all) k.fill(0);
    },
  };
}

/** master = HKDF key of deriveLabel(hs, th_final, "master", ∅, 32). */
export async function deriveMaster(
  hs: CryptoKey,
  sessionHash: Bytes,
): Promise<CryptoKey> {
  const raw = await deriveLabel(
    hs,
    sessionHash,
    HANDSHAKE_LABELS.master,
    EMPTY,
    32,
  );
  try {
    return await importSecret(raw);
  } finally {
    raw.fill(0);
  }
}
