/**
 * The cipher suite `P256-ECDSA-AES256GCM-SHA256`: every primitive the
 * end-to-end layer uses, wrapped once over `crypto.subtle`, so the handshake
 * and session code never touch algorithm parameters. Sans-I/O; runs in a
 * browser. A second suite (X25519/Ed25519) would implement the same shape.
 * @module
 */

import { type Bytes, bytesEqual, concat, utf8 } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";

/** Wire identifier of the suite (u16 in handshake message 1). */
export const SUITE_P256 = 0x0001;
/** Human name of the suite, bound into the transcript. */
export const SUITE_P256_NAME = "P256-ECDSA-AES256GCM-SHA256";
/** Length of an uncompressed P-256 point (0x04 ‖ X ‖ Y). */
export const P256_POINT_LENGTH = 65;
/** Length of a P-256 ECDSA signature in IEEE P1363 form (r ‖ s). */
export const P256_SIGNATURE_LENGTH = 64;
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
 * Imports a peer's ephemeral public key, validating it: exactly 65 bytes,
 * uncompressed form, and a point on P-256 (checked explicitly, see
 * `isOnP256`). Throws `invalid-public-key`.
 */
export async function importEphemeralPublic(
  raw: Bytes,
): Promise<CryptoKey> {
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
  try {
    return await crypto.subtle.importKey("raw", raw, ECDH, true, []);
  } catch {
    throw new ProtocolError(
      "invalid-public-key",
      "ephemeral key is not a point on P-256",
    );
  }
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

/** Imports an identity (ECDSA P-256) public key from SPKI DER; throws `invalid-public-key`. */
export async function importIdentityPublic(
  spki: Bytes,
): Promise<CryptoKey> {
  let key: CryptoKey;
  let raw: Uint8Array;
  let canonical: Uint8Array;
  try {
    key = await crypto.subtle.importKey("spki", spki, ECDSA, true, ["verify"]);
    raw = new Uint8Array(await crypto.subtle.exportKey("raw", key));
    canonical = new Uint8Array(await crypto.subtle.exportKey("spki", key));
  } catch {
    throw new ProtocolError(
      "invalid-public-key",
      "identity key is not a valid P-256 SPKI",
    );
  }
  if (!isOnP256(raw)) {
    throw new ProtocolError(
      "invalid-public-key",
      "identity key is not a point on P-256",
    );
  }
  // One key, one encoding: a compressed-point SPKI would give the same key a
  // second fingerprint and slip past known-peer checks.
  if (!bytesEqual(canonical, spki)) {
    throw new ProtocolError(
      "invalid-public-key",
      "identity key must be the canonical uncompressed P-256 SPKI",
    );
  }
  return key;
}

/** ECDSA P-256 / SHA-256 signature over `data`, P1363 form (64 bytes). */
export async function sign(
  privateKey: CryptoKey,
  data: Bytes,
): Promise<Bytes> {
  return new Uint8Array(
    await crypto.subtle.sign(ECDSA_SHA256, privateKey, data),
  );
}

/** Verifies an ECDSA P-256 / SHA-256 P1363 signature; false on any malformation. */
export async function verify(
  publicKey: CryptoKey,
  signature: Bytes,
  data: Bytes,
): Promise<boolean> {
  if (signature.length !== P256_SIGNATURE_LENGTH) return false;
  try {
    return await crypto.subtle.verify(ECDSA_SHA256, publicKey, signature, data);
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
  return crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveBits"]);
}

/** Raw HKDF-SHA256 (extract with `salt`, expand with `info`) to `length` bytes. */
export async function hkdf(
  secret: CryptoKey,
  salt: Bytes,
  info: Bytes,
  length: number,
): Promise<Bytes> {
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
  secret: CryptoKey,
  salt: Bytes,
  label: string,
  context: Bytes,
  length: number,
): Promise<Bytes> {
  const fullLabel = utf8(LABEL_PREFIX + label);
  if (fullLabel.length > 255 || context.length > 255) {
    throw new RangeError("label too long");
  }
  const info = concat(
    new Uint8Array([length >> 8, length & 0xff, fullLabel.length]),
    fullLabel,
    new Uint8Array([context.length]),
    context,
  );
  return hkdf(secret, salt, info, length);
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
