/**
 * The cipher suites (PROTOCOL.md §2.1 Suite): every primitive the end-to-end
 * layer uses, wrapped once over `crypto.subtle`, so the handshake and session
 * code never touch algorithm parameters. Sans-I/O; runs in a browser.
 *
 * - `0x0001` `P256-ECDSA-AES256GCM-SHA256`: ECDH P-256, ECDSA P-256.
 * - `0x0002` `X25519-Ed25519-AES256GCM-SHA256`: X25519, Ed25519.
 *
 * Both share AES-256-GCM, SHA-256 and HKDF-SHA256. {@link sign} and
 * {@link verify} follow the key's algorithm, so the session's chain
 * signatures and transcripts work with either identity; the session's rekey
 * ephemerals are P-256 in both suites (`generateEphemeral`, PROTOCOL.md §2.2.7).
 * @module
 */

import { type Bytes, bytesEqual, concat, utf8 } from "./bytes.ts";
import { readChildren, readOnly, Tag } from "./der.ts";
import { ProtocolError } from "./errors.ts";
import type { SecretKey } from "./primitives.ts";

/** Wire identifier of the suite (u16 in handshake message 1). */
export const SUITE_P256 = 0x0001;
/** Human name of the suite, bound into the transcript. */
export const SUITE_P256_NAME = "P256-ECDSA-AES256GCM-SHA256";
/** Length of an uncompressed P-256 point (0x04 ‖ X ‖ Y). */
export const P256_POINT_LENGTH = 65;
/** Length of a P-256 ECDSA signature in IEEE P1363 form (r ‖ s). */
export const P256_SIGNATURE_LENGTH = 64;
/** Wire identifier of the fast suite: X25519 + Ed25519. */
export const SUITE_X25519 = 0x0002;
/** Name of the fast suite, bound into the transcript. */
export const SUITE_X25519_NAME = "X25519-Ed25519-AES256GCM-SHA256";
/** Length of an X25519 public key (RFC 7748 u-coordinate). */
export const X25519_POINT_LENGTH = 32;
/** Length of an Ed25519 signature (RFC 8032). */
export const ED25519_SIGNATURE_LENGTH = 64;
/** Length of an Ed25519 SubjectPublicKeyInfo (RFC 8410): 12-byte prefix ‖ 32-byte key. */
export const ED25519_SPKI_LENGTH = 44;
/** DER prefix of every Ed25519 SPKI (RFC 8410 §4: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }). */
const ED25519_SPKI_PREFIX = Uint8Array.fromHex("302a300506032b6570032100");
/** Length of a P-256 SPKI (uncompressed point). */
export const P256_SPKI_LENGTH = 91;
/** DER prefix of the canonical P-256 SPKI (RFC 5480: id-ecPublicKey, prime256v1, BIT STRING of 66 bytes); the 65-byte point follows. */
const P256_SPKI_PREFIX = Uint8Array.fromHex(
  "3059301306072a8648ce3d020106082a8648ce3d030107034200",
);

/** DER of the P-256 AlgorithmIdentifier (id-ecPublicKey, prime256v1) in a PKCS#8 or SPKI. */
const P256_ALGORITHM_ID = P256_SPKI_PREFIX.subarray(2, 23);
/**
 * A P-256 PKCS#8 up to the 32-byte private scalar (RFC 5208 / RFC 5915):
 * PrivateKeyInfo { 0, id-ecPublicKey prime256v1, OCTET STRING {
 * ECPrivateKey { 1, OCTET STRING d } } }, with the optional parameters and
 * public key left out.
 */
const P256_SCALAR_PKCS8_PREFIX = Uint8Array.fromHex(
  "3041020100" + P256_ALGORITHM_ID.toHex() + "042730250201010420",
);

/** What {@link p256Pkcs8Parts} finds in a P-256 PKCS#8. */
export interface P256Pkcs8Parts {
  /** The same private key as a PKCS#8 of its scalar only (a fresh copy: the caller zeroes it). */
  scalarOnly: Bytes;
  /** The public point (65 bytes, uncompressed) when the PKCS#8 carries it. */
  publicRaw?: Bytes;
}

/**
 * Splits a P-256 PKCS#8 into a PKCS#8 of the private scalar alone and the
 * public point it carries; `null` when `pkcs8` is not a P-256 key in the
 * usual form (the caller then uses it as it is).
 *
 * Why: Deno 2.9.6's WebCrypto (the RustCrypto `p256` crate) decodes the
 * PKCS#8 on every `sign` and `deriveBits`, and when the optional public key
 * is present it recomputes d·G to check it — a scalar multiplication, ~⅓ of
 * a signature's CPU and ~½ of a key agreement's. The scalar alone is the
 * same key.
 */
export function p256Pkcs8Parts(pkcs8: Bytes): P256Pkcs8Parts | null {
  try {
    const [version, algorithm, privateKey, ...rest] = readChildren(
      readOnly(pkcs8, Tag.SEQUENCE).content,
    );
    if (
      rest.length > 0 || version.tag !== Tag.INTEGER ||
      algorithm.tag !== Tag.SEQUENCE ||
      !bytesEqual(algorithm.encoded, P256_ALGORITHM_ID) ||
      privateKey.tag !== Tag.OCTET_STRING
    ) return null;
    const [ecVersion, d, ...optional] = readChildren(
      readOnly(privateKey.content, Tag.SEQUENCE).content,
    );
    if (
      ecVersion.tag !== Tag.INTEGER || ecVersion.content.length !== 1 ||
      ecVersion.content[0] !== 1 || d.tag !== Tag.OCTET_STRING ||
      d.content.length !== 32
    ) return null;
    let publicRaw: Bytes | undefined;
    for (const field of optional) {
      // [1] publicKey BIT STRING: 0 unused bits ‖ the uncompressed point.
      if (field.tag !== 0xa1) continue;
      const bits = readOnly(field.content, Tag.BIT_STRING).content;
      if (
        bits.length === P256_POINT_LENGTH + 1 && bits[0] === 0 && bits[1] === 4
      ) {
        publicRaw = bits.slice(1);
      }
    }
    const scalarOnly = new Uint8Array(P256_SCALAR_PKCS8_PREFIX.length + 32);
    scalarOnly.set(P256_SCALAR_PKCS8_PREFIX);
    scalarOnly.set(d.content, P256_SCALAR_PKCS8_PREFIX.length);
    return { scalarOnly, publicRaw };
  } catch {
    return null;
  }
}

/** Identity key algorithms: one per suite. */
export type IdentityAlgorithm = "ECDSA-P256-SHA256" | "Ed25519";

/** What the handshake needs to know about one suite. */
export interface SuiteInfo {
  /** Wire id (u16). */
  id: number;
  /** Name bound into the transcript prologue. */
  name: string;
  /** Short name for flags and messages (`p256`, `x25519`). */
  flag: string;
  /** Ephemeral public key length on the wire. */
  pointLength: number;
  /** The identity algorithm both parties must use in this suite. */
  identityAlgorithm: IdentityAlgorithm;
  /** SPKI length of that identity algorithm. */
  spkiLength: number;
  /** Signature length. */
  signatureLength: number;
}

/** The suites this implementation speaks, by wire id. */
export const SUITES: ReadonlyMap<number, SuiteInfo> = new Map([
  [SUITE_P256, {
    id: SUITE_P256,
    name: SUITE_P256_NAME,
    flag: "p256",
    pointLength: P256_POINT_LENGTH,
    identityAlgorithm: "ECDSA-P256-SHA256",
    spkiLength: P256_SPKI_LENGTH,
    signatureLength: P256_SIGNATURE_LENGTH,
  }],
  [SUITE_X25519, {
    id: SUITE_X25519,
    name: SUITE_X25519_NAME,
    flag: "x25519",
    pointLength: X25519_POINT_LENGTH,
    identityAlgorithm: "Ed25519",
    spkiLength: ED25519_SPKI_LENGTH,
    signatureLength: ED25519_SIGNATURE_LENGTH,
  }],
]);

/** The suite of an identity algorithm. */
export function suiteForAlgorithm(algorithm: IdentityAlgorithm): SuiteInfo {
  return SUITES.get(
    algorithm === "Ed25519" ? SUITE_X25519 : SUITE_P256,
  )!;
}

/** Parses a `--suites` list (`p256`, `x25519`, comma-separated, in preference order); throws RangeError. */
export function parseSuiteList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(",").map((p) => p.trim().toLowerCase())) {
    const info = [...SUITES.values()].find((s) => s.flag === part);
    if (!info) {
      throw new RangeError(
        `unknown suite '${part}' (known: ${
          [...SUITES.values()].map((s) => s.flag).join(", ")
        })`,
      );
    }
    if (out.includes(info.id)) {
      throw new RangeError(`suite '${part}' listed twice`);
    }
    out.push(info.id);
  }
  if (out.length === 0) throw new RangeError("no suite given");
  return out;
}

/** The algorithm of an identity key (from the WebCrypto key). */
export function keyAlgorithm(key: CryptoKey): IdentityAlgorithm {
  return key.algorithm.name === "Ed25519" ? "Ed25519" : "ECDSA-P256-SHA256";
}

/** The algorithm of a DER SPKI by its prefix (Ed25519, else assumed P-256: checked on import). */
export function spkiAlgorithm(spki: Bytes): IdentityAlgorithm {
  return isEd25519Spki(spki) ? "Ed25519" : "ECDSA-P256-SHA256";
}

function isEd25519Spki(spki: Bytes): boolean {
  return spki.length === ED25519_SPKI_LENGTH &&
    bytesEqual(
      spki.subarray(0, ED25519_SPKI_PREFIX.length),
      ED25519_SPKI_PREFIX,
    );
}
/** AES-256-GCM key length in bytes. */
export const AEAD_KEY_LENGTH = 32;
/** AES-GCM nonce length in bytes. */
export const AEAD_NONCE_LENGTH = 12;
/** AES-GCM tag length in bytes. */
export const AEAD_TAG_LENGTH = 16;
/** SHA-256 output length in bytes. */
export const HASH_LENGTH = 32;

const ECDH = { name: "ECDH", namedCurve: "P-256" } as const;
const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;

/** An ephemeral ECDH key pair; the private half is non-extractable. */
export interface EphemeralKeyPair {
  /** Non-extractable ECDH private key. */
  privateKey: CryptoKey;
  /** Uncompressed public point, 65 bytes. */
  publicRaw: Bytes;
}

/** Generates an ephemeral ECDH P-256 key pair (private key non-extractable). */
export async function generateEphemeral(): Promise<EphemeralKeyPair> {
  const pair = await crypto.subtle.generateKey(ECDH, false, ["deriveBits"]);
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  return { privateKey: pair.privateKey, publicRaw: new Uint8Array(raw) };
}

// P-256 domain parameters (SEC 2 §2.4.2 / FIPS 186-4 D.1.2.3): y² = x³ − 3x + b mod p.
const P256_P =
  0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const P256_B =
  0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

/**
 * True when `raw` (0x04 ‖ X ‖ Y) is a point on P-256 with coordinates < p.
 * Checked explicitly because Deno's WebCrypto (2.9.6) imports any 65-byte
 * point and fails only later, in `deriveBits`/`verify`, with a TypeError
 * (found by the Wycheproof InvalidCurveAttack vectors). The cofactor is 1, so
 * every curve point other than infinity (not encodable here) is in the group.
 */
function isOnP256(raw: Uint8Array): boolean {
  if (raw.length !== P256_POINT_LENGTH || raw[0] !== 0x04) return false;
  const x = BigInt("0x" + raw.subarray(1, 33).toHex());
  const y = BigInt("0x" + raw.subarray(33, 65).toHex());
  if (x >= P256_P || y >= P256_P) return false;
  const rhs = (((x * x) % P256_P) * x - 3n * x + P256_B) % P256_P;
  return (y * y - rhs) % P256_P === 0n;
}

/**
 * Checks a peer's P-256 ephemeral public key as on the wire: exactly 65
 * bytes, uncompressed form, and a point on P-256 (checked explicitly, see
 * `isOnP256`). Throws `invalid-public-key`.
 */
export function checkP256Point(raw: Uint8Array): void {
  if (raw.length !== P256_POINT_LENGTH || raw[0] !== 0x04) {
    throw new ProtocolError(
      "invalid-public-key",
      "ephemeral key must be a 65-byte uncompressed P-256 point",
    );
  }
  if (!isOnP256(raw)) {
    throw new ProtocolError(
      "invalid-public-key",
      "ephemeral key is not a point on P-256",
    );
  }
}

/**
 * Imports a peer's ephemeral public key, validated by
 * {@link checkP256Point}. Throws `invalid-public-key`.
 */
export async function importEphemeralPublic(
  raw: Bytes,
): Promise<CryptoKey> {
  checkP256Point(raw);
  try {
    return await crypto.subtle.importKey("raw", raw, ECDH, true, []);
  } catch {
    throw new ProtocolError(
      "invalid-public-key",
      "ephemeral key is not a point on P-256",
    );
  }
}

/** Generates an ephemeral X25519 key pair (private key non-extractable; public 32 bytes). */
export async function generateX25519(): Promise<EphemeralKeyPair> {
  const pair = await crypto.subtle.generateKey(
    { name: "X25519" },
    false,
    ["deriveBits"],
  ) as CryptoKeyPair;
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  return { privateKey: pair.privateKey, publicRaw: new Uint8Array(raw) };
}

/**
 * Imports a peer's X25519 public key: exactly 32 bytes (RFC 7748 §5; any
 * value is accepted here, small-order points fail in {@link dh}). Throws
 * `invalid-public-key`.
 */
export async function importX25519Public(raw: Bytes): Promise<CryptoKey> {
  if (raw.length !== X25519_POINT_LENGTH) {
    throw new ProtocolError(
      "invalid-public-key",
      "ephemeral key must be a 32-byte X25519 public key",
    );
  }
  try {
    return await crypto.subtle.importKey(
      "raw",
      raw,
      { name: "X25519" },
      true,
      [],
    );
  } catch {
    throw new ProtocolError("invalid-public-key", "invalid X25519 public key");
  }
}

/** Generates the ephemeral of `suite`. */
export function generateSuiteEphemeral(
  suite: number,
): Promise<EphemeralKeyPair> {
  return suite === SUITE_X25519 ? generateX25519() : generateEphemeral();
}

/** Imports a peer ephemeral of `suite` (validated); throws `invalid-public-key`. */
export function importSuiteEphemeral(
  suite: number,
  raw: Bytes,
): Promise<CryptoKey> {
  return suite === SUITE_X25519
    ? importX25519Public(raw)
    : importEphemeralPublic(raw);
}

/**
 * Diffie-Hellman of either suite: ECDH P-256 (x coordinate) or X25519; 32
 * bytes. An X25519 result of all zeros (a small-order peer key, RFC 7748 §6.1)
 * — which Deno's WebCrypto refuses with an OperationError — is
 * `invalid-public-key`.
 */
export async function dh(
  privateKey: CryptoKey,
  peerPublic: CryptoKey,
): Promise<Bytes> {
  if (privateKey.algorithm.name !== "X25519") {
    return ecdh(privateKey, peerPublic);
  }
  let out: Bytes;
  try {
    out = new Uint8Array(
      await crypto.subtle.deriveBits(
        { name: "X25519", public: peerPublic },
        privateKey,
        256,
      ),
    );
  } catch {
    throw new ProtocolError(
      "invalid-public-key",
      "X25519 with this ephemeral key fails (small-order point)",
    );
  }
  if (out.every((b) => b === 0)) {
    throw new ProtocolError(
      "invalid-public-key",
      "X25519 shared secret is all zeros (small-order point)",
    );
  }
  return out;
}

/** ECDH P-256 shared secret (32 bytes). */
export async function ecdh(
  privateKey: CryptoKey,
  peerPublic: CryptoKey,
): Promise<Bytes> {
  const bits = await crypto.subtle.deriveBits(
    { name: "ECDH", public: peerPublic },
    privateKey,
    256,
  );
  return new Uint8Array(bits);
}

/**
 * Imports an identity public key from SPKI DER: an Ed25519 SPKI (RFC 8410,
 * exactly 44 bytes) or a canonical uncompressed P-256 SPKI (91 bytes);
 * `expected` refuses the other algorithm. Throws `invalid-public-key`.
 */
export async function importIdentityPublic(
  spki: Bytes,
  expected?: IdentityAlgorithm,
): Promise<CryptoKey> {
  const algorithm = spkiAlgorithm(spki);
  if (expected !== undefined && algorithm !== expected) {
    throw new ProtocolError(
      "invalid-public-key",
      `identity key must be ${expected}, got ${algorithm}`,
    );
  }
  if (algorithm === "Ed25519") {
    try {
      return await crypto.subtle.importKey("spki", spki, "Ed25519", true, [
        "verify",
      ]);
    } catch {
      throw new ProtocolError(
        "invalid-public-key",
        "identity key is not a valid Ed25519 SPKI",
      );
    }
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("spki", spki, ECDSA, true, ["verify"]);
  } catch {
    throw new ProtocolError(
      "invalid-public-key",
      "identity key is not a valid P-256 SPKI",
    );
  }
  // One key, one encoding: a compressed-point SPKI would give the same key a
  // second fingerprint and slip past known-peer checks. The canonical SPKI
  // (what WebCrypto exports for the key) is the fixed 26-byte prefix and the
  // uncompressed point: compared here instead of exporting the key twice.
  if (
    spki.length !== P256_SPKI_LENGTH ||
    !bytesEqual(spki.subarray(0, P256_SPKI_PREFIX.length), P256_SPKI_PREFIX) ||
    spki[P256_SPKI_PREFIX.length] !== 0x04
  ) {
    throw new ProtocolError(
      "invalid-public-key",
      "identity key must be the canonical uncompressed P-256 SPKI",
    );
  }
  if (!isOnP256(spki.subarray(P256_SPKI_PREFIX.length))) {
    throw new ProtocolError(
      "invalid-public-key",
      "identity key is not a point on P-256",
    );
  }
  return key;
}

/**
 * Signature over `data` with the key's algorithm: ECDSA P-256 / SHA-256 in
 * P1363 form, or Ed25519 (RFC 8032); 64 bytes either way.
 */
export async function sign(
  privateKey: CryptoKey,
  data: Bytes,
): Promise<Bytes> {
  const params = privateKey.algorithm.name === "Ed25519"
    ? "Ed25519"
    : ECDSA_SHA256;
  return new Uint8Array(await crypto.subtle.sign(params, privateKey, data));
}

/** Verifies a signature with the key's algorithm (ECDSA P-256 P1363 or Ed25519); false on any malformation. */
export async function verify(
  publicKey: CryptoKey,
  signature: Bytes,
  data: Bytes,
): Promise<boolean> {
  if (signature.length !== P256_SIGNATURE_LENGTH) return false;
  const params = publicKey.algorithm.name === "Ed25519"
    ? "Ed25519"
    : ECDSA_SHA256;
  try {
    return await crypto.subtle.verify(params, publicKey, signature, data);
  } catch {
    return false;
  }
}

/** Imports 32 raw bytes as a non-extractable AES-256-GCM key. */
export function importAeadKey(raw: Bytes): Promise<CryptoKey> {
  if (raw.length !== AEAD_KEY_LENGTH) {
    throw new RangeError("AES-256 key must be 32 bytes");
  }
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

/** AES-256-GCM encryption; returns ciphertext ‖ 16-byte tag. */
export async function seal(
  key: CryptoKey,
  nonce: Bytes,
  plaintext: Bytes,
  aad: Bytes,
): Promise<Bytes> {
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 },
    key,
    plaintext,
  );
  return new Uint8Array(ct);
}

/** AES-256-GCM decryption; throws `decrypt-failed` on any authentication failure. */
export async function open(
  key: CryptoKey,
  nonce: Bytes,
  ciphertext: Bytes,
  aad: Bytes,
): Promise<Bytes> {
  if (ciphertext.length < AEAD_TAG_LENGTH) {
    throw new ProtocolError(
      "decrypt-failed",
      "ciphertext shorter than the tag",
    );
  }
  try {
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 },
      key,
      ciphertext,
    );
    return new Uint8Array(pt);
  } catch {
    throw new ProtocolError("decrypt-failed", "authentication tag mismatch");
  }
}

/** Imports secret bytes as a non-extractable HKDF base key. */
export function importSecret(raw: Bytes): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", raw, "HKDF", false, [
    "deriveBits",
    "deriveKey",
  ]);
}

/**
 * Raw HKDF-SHA256 (extract with `salt`, expand with `info`) to `length`
 * bytes, from a WebCrypto HKDF key or a provider's secret (synchronous there).
 */
export async function hkdf(
  secret: SecretKey,
  salt: Bytes,
  info: Bytes,
  length: number,
): Promise<Bytes> {
  if ("hkdf" in secret) return secret.hkdf(salt, info, length);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info },
    secret,
    length * 8,
  );
  return new Uint8Array(bits);
}

/** Prefix of every HKDF label, as TLS 1.3 uses "tls13 ". */
export const LABEL_PREFIX = "e2e.v1 ";

/**
 * HKDF with a structured label, after TLS 1.3's HKDF-Expand-Label:
 * info = u16(length) ‖ u8(len(label)) ‖ "e2e.v1 " ‖ label ‖ u8(len(context)) ‖ context.
 */
export function deriveLabel(
  secret: SecretKey,
  salt: Bytes,
  label: string,
  context: Bytes,
  length: number,
): Promise<Bytes> {
  return hkdf(secret, salt, labelInfo(label, context, length), length);
}

/** The HKDF info of {@link deriveLabel}: u16(length) ‖ u8(len(label)) ‖ "e2e.v1 " ‖ label ‖ u8(len(context)) ‖ context. */
export function labelInfo(
  label: string,
  context: Bytes,
  length: number,
): Bytes {
  const fullLabel = utf8(LABEL_PREFIX + label);
  if (fullLabel.length > 255 || context.length > 255) {
    throw new RangeError("label too long");
  }
  return concat(
    new Uint8Array([length >> 8, length & 0xff, fullLabel.length]),
    fullLabel,
    new Uint8Array([context.length]),
    context,
  );
}

/**
 * {@link deriveLabel} straight into a non-extractable key (one WebCrypto call
 * instead of derive + import; the raw bytes never reach JavaScript): a
 * 32-byte AES-256-GCM key or HMAC-SHA256 key.
 */
export function deriveLabelKey(
  secret: CryptoKey,
  salt: Bytes,
  label: string,
  kind: "aead" | "mac",
): Promise<CryptoKey> {
  const fullLabel = utf8(LABEL_PREFIX + label);
  const info = concat(
    new Uint8Array([0, 32, fullLabel.length]),
    fullLabel,
    new Uint8Array([0]),
  );
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt, info },
    secret,
    kind === "aead"
      ? { name: "AES-GCM", length: 256 }
      : { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    kind === "aead" ? ["encrypt", "decrypt"] : ["sign", "verify"],
  );
}

/** Imports a 32-byte HMAC-SHA256 key (non-extractable) for key confirmation. */
export function importMacKey(raw: Bytes): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    raw,
    { name: "HMAC", hash: "SHA-256" },
    false,
    [
      "sign",
      "verify",
    ],
  );
}

/** HMAC-SHA256 tag of `data`. */
export async function mac(
  key: CryptoKey,
  data: Bytes,
): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
}

/** Constant-time HMAC-SHA256 verification (done inside WebCrypto). */
export function macVerify(
  key: CryptoKey,
  tag: Bytes,
  data: Bytes,
): Promise<boolean> {
  return crypto.subtle.verify("HMAC", key, tag, data);
}
