/**
 * Long-term identities: an ECDSA P-256 key pair (suite 0x0001) or an Ed25519
 * key pair (suite 0x0002), and the JSON key file that stores it
 * (`<role>_identity_keys.json`, `<role>_identity_ed25519_keys.json`) with the
 * keys as PEM inside (`"algorithm": "Ed25519"` for the latter):
 *
 * ```json
 * { "version": 1, "algorithm": "ECDSA-P256-SHA256", "created": "2026-…Z",
 *   "publicKey": "-----BEGIN PUBLIC KEY-----…",       // SPKI
 *   "privateKey": "-----BEGIN PRIVATE KEY-----…" }    // PKCS#8
 * ```
 *
 * With a passphrase, `privateKey` is replaced by
 * `"encryptedPrivateKey": { "kdf": "PBKDF2-SHA256", "iterations", "salt",
 * "cipher": "AES-256-GCM", "nonce", "ciphertext" }` (base64): the PKCS#8 DER
 * sealed under PBKDF2-SHA256(passphrase NFC-normalised, salt, iterations),
 * with AAD binding the format version, the algorithm and the public key, so
 * a file whose public key was swapped does not open.
 *
 * Loading checks everything and names the file in every error; it also proves
 * the private key matches the public key by signing and verifying a probe.
 * Sans-I/O: the Deno file handling is in `lib/deno/key_file.ts`.
 * @module
 */

import { type Bytes, bytesEqual, concat, u32, utf8 } from "./bytes.ts";
import {
  IDENTITY_ALGORITHM,
  IDENTITY_ALGORITHM_ED25519,
  IDENTITY_FILE_VERSION,
  PBKDF2_ITERATIONS,
  PBKDF2_MAX_ITERATIONS,
  PBKDF2_MIN_ITERATIONS,
  PBKDF2_SALT_LENGTH,
} from "./constants.ts";
import { ProtocolError } from "./errors.ts";
import {
  AEAD_NONCE_LENGTH,
  AEAD_TAG_LENGTH,
  type IdentityAlgorithm,
  importAeadKey,
  importIdentityPublic,
  open,
  p256Pkcs8Parts,
  seal,
  sign,
  spkiAlgorithm,
  verify,
} from "./suite.ts";

export type { IdentityAlgorithm } from "./suite.ts";

/** A long-term identity key pair; the private key is non-extractable. */
export interface Identity {
  /** ECDSA P-256 or Ed25519 private key (non-extractable), usage `sign`. */
  privateKey: CryptoKey;
  /** The matching public key, usage `verify`. */
  publicKey: CryptoKey;
  /** DER SubjectPublicKeyInfo of `publicKey`. */
  spki: Bytes;
}

/** Options for {@link serializeIdentity} and {@link createIdentity}. */
export interface SerializeOptions {
  /** Protects the private key with this passphrase (must not be empty). */
  passphrase?: string;
  /** PBKDF2 iterations (default `PBKDF2_ITERATIONS`); lower values are for tests only. */
  iterations?: number;
  /** Creation time written in the file (default: now). */
  created?: Date;
  /** Key algorithm of a new identity (default `"ECDSA-P256-SHA256"`). */
  algorithm?: IdentityAlgorithm;
}

/** Options for {@link parseIdentityFile}. */
export interface ParseOptions {
  /** Fewest PBKDF2 iterations accepted (default `PBKDF2_MIN_ITERATIONS`); lower only in tests. */
  minIterations?: number;
}

/** A new identity together with its key-file JSON. */
export interface CreatedIdentity {
  /** The usable identity (private key non-extractable). */
  identity: Identity;
  /** The key file contents, ready to be written with mode 0600. */
  json: string;
}

const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
/** WebCrypto parameters of each identity algorithm. */
function keyParams(
  algorithm: IdentityAlgorithm,
): typeof ECDSA_P256 | "Ed25519" {
  return algorithm === IDENTITY_ALGORITHM_ED25519 ? "Ed25519" : ECDSA_P256;
}
/** Name of the key-derivation function in encrypted key files. */
const KDF_NAME = "PBKDF2-SHA256";
/** Name of the cipher in encrypted key files. */
const CIPHER_NAME = "AES-256-GCM";
/** Domain separator of the AAD of an encrypted private key. */
const KEY_FILE_AAD_LABEL = "e2e.v1 identity key file\0";
/** Message signed and verified on load to prove the two keys belong together. */
const PROBE_MESSAGE = "e2e.v1 identity key check\0";
/** PEM labels (RFC 7468): SPKI and unencrypted PKCS#8. */
const PEM_PUBLIC = "PUBLIC KEY";
const PEM_PRIVATE = "PRIVATE KEY";

/**
 * Generates a fresh identity (default ECDSA P-256) whose private key is
 * non-extractable (not savable). A P-256 key is imported as a loaded key file
 * is (see {@link importIdentity}: its PKCS#8 passes through memory once and
 * is zeroed), so it signs as cheaply as one.
 */
export async function generateIdentity(
  algorithm: IdentityAlgorithm = IDENTITY_ALGORITHM,
): Promise<Identity> {
  if (algorithm !== IDENTITY_ALGORITHM_ED25519) {
    const { identity, pkcs8 } = await generateIdentityWithPkcs8(algorithm);
    pkcs8.fill(0);
    return identity;
  }
  const pair = await crypto.subtle.generateKey(keyParams(algorithm), false, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", pair.publicKey),
  );
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, spki };
}

/**
 * Generates an identity and keeps its PKCS#8 for a later backup: the key is
 * generated extractable only long enough to export it; the returned
 * identity holds a non-extractable re-import. The caller wipes `pkcs8`
 * (`fill(0)`) once the backup is made or no longer possible (the browser
 * client keeps it in memory on the visit that created the key).
 */
export async function generateIdentityWithPkcs8(
  algorithm: IdentityAlgorithm = IDENTITY_ALGORITHM,
): Promise<{ identity: Identity; pkcs8: Bytes }> {
  const pair = await crypto.subtle.generateKey(
    keyParams(algorithm),
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", pair.publicKey),
  );
  try {
    return {
      identity: await importIdentity(pkcs8, spki, "new identity"),
      pkcs8,
    };
  } catch (e) {
    pkcs8.fill(0);
    throw e;
  }
}

/**
 * Generates an identity and its key file in one go (see
 * {@link generateIdentityWithPkcs8}); the PKCS#8 is wiped after.
 */
export async function createIdentity(
  options: SerializeOptions = {},
): Promise<CreatedIdentity> {
  const { identity, pkcs8 } = await generateIdentityWithPkcs8(
    options.algorithm ?? IDENTITY_ALGORITHM,
  );
  try {
    const json = await serializeIdentity(pkcs8, identity.spki, options);
    return { identity, json };
  } finally {
    pkcs8.fill(0);
  }
}

/**
 * Imports PKCS#8 and SPKI DER as an identity (private key non-extractable),
 * checking that the two keys belong together. Errors name `source`.
 */
export async function importIdentity(
  pkcs8: Bytes,
  spki: Bytes,
  source: string,
): Promise<Identity> {
  const algorithm = spkiAlgorithm(spki);
  let publicKey: CryptoKey;
  try {
    publicKey = await importIdentityPublic(spki);
  } catch {
    throw keyFileError(
      source,
      `publicKey is not a ${
        algorithm === IDENTITY_ALGORITHM_ED25519 ? "Ed25519" : "P-256"
      } public key (SPKI)`,
    );
  }
  // One key, one fingerprint: refuse other encodings (e.g. a compressed point).
  const canonical = new Uint8Array(
    await crypto.subtle.exportKey("spki", publicKey),
  );
  if (!bytesEqual(canonical, spki)) {
    throw keyFileError(
      source,
      "publicKey is not in canonical form (uncompressed point SPKI)",
    );
  }
  let privateKey: CryptoKey;
  try {
    privateKey = await importSigningKey(pkcs8, algorithm);
  } catch {
    throw keyFileError(
      source,
      `private key is not a ${algorithm} PKCS#8 key`,
    );
  }
  const probe = utf8(PROBE_MESSAGE);
  if (!await verify(publicKey, await sign(privateKey, probe), probe)) {
    throw keyFileError(
      source,
      "the private key does not match the public key (file corrupted or edited)",
    );
  }
  return { privateKey, publicKey, spki: spki.slice() };
}

/**
 * Imports an identity's PKCS#8 as a non-extractable signing key. A P-256 key
 * is imported from its private scalar alone (`p256Pkcs8Parts`; the copy is
 * zeroed): Deno's WebCrypto would otherwise re-check the embedded public key
 * with a scalar multiplication on every signature (~⅓ of its CPU). A runtime
 * that refuses that form (some browsers want the public key) gets the PKCS#8
 * as it is. The caller's probe signature checks the pair either way.
 */
async function importSigningKey(
  pkcs8: Bytes,
  algorithm: IdentityAlgorithm,
): Promise<CryptoKey> {
  const params = keyParams(algorithm);
  const parts = algorithm === IDENTITY_ALGORITHM_ED25519
    ? null
    : p256Pkcs8Parts(pkcs8);
  if (parts) {
    try {
      return await crypto.subtle.importKey(
        "pkcs8",
        parts.scalarOnly,
        params,
        false,
        ["sign"],
      );
    } catch {
      // Refused here: import the PKCS#8 as given.
    } finally {
      parts.scalarOnly.fill(0);
    }
  }
  return await crypto.subtle.importKey("pkcs8", pkcs8, params, false, [
    "sign",
  ]);
}

/** Builds the key-file JSON for PKCS#8 and SPKI DER, encrypting the private key when a passphrase is given. */
export async function serializeIdentity(
  pkcs8: Bytes,
  spki: Bytes,
  options: SerializeOptions = {},
): Promise<string> {
  const file: Record<string, unknown> = {
    version: IDENTITY_FILE_VERSION,
    algorithm: spkiAlgorithm(spki),
    created: (options.created ?? new Date()).toISOString(),
    publicKey: pemEncode(PEM_PUBLIC, spki),
  };
  if (options.passphrase === undefined) {
    file.privateKey = pemEncode(PEM_PRIVATE, pkcs8);
  } else {
    if (options.passphrase.length === 0) {
      throw new RangeError("the passphrase must not be empty");
    }
    const iterations = options.iterations ?? PBKDF2_ITERATIONS;
    if (
      !Number.isSafeInteger(iterations) || iterations < 1 ||
      iterations > PBKDF2_MAX_ITERATIONS
    ) {
      throw new RangeError(`invalid PBKDF2 iteration count ${iterations}`);
    }
    const salt = crypto.getRandomValues(new Uint8Array(PBKDF2_SALT_LENGTH));
    const nonce = crypto.getRandomValues(new Uint8Array(AEAD_NONCE_LENGTH));
    const key = await passphraseKey(options.passphrase, salt, iterations);
    const ciphertext = await seal(key, nonce, pkcs8, keyFileAad(spki));
    file.encryptedPrivateKey = {
      kdf: KDF_NAME,
      iterations,
      salt: salt.toBase64(),
      cipher: CIPHER_NAME,
      nonce: nonce.toBase64(),
      ciphertext: ciphertext.toBase64(),
    };
  }
  return JSON.stringify(file, null, 2) + "\n";
}

/**
 * Parses and checks a key file, returning the identity. `source` (the file
 * name) is named in every error: `bad-key-file` for anything malformed or
 * inconsistent, `bad-passphrase` when a passphrase is missing or wrong.
 */
export async function parseIdentityFile(
  json: string,
  source: string,
  passphrase?: string,
  options: ParseOptions = {},
): Promise<Identity> {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (e) {
    throw keyFileError(source, `not valid JSON (${(e as Error).message})`);
  }
  if (!isRecord(data)) throw keyFileError(source, "not a JSON object");
  if (data.version !== IDENTITY_FILE_VERSION) {
    throw keyFileError(
      source,
      `unsupported version ${
        JSON.stringify(data.version)
      } (expected ${IDENTITY_FILE_VERSION})`,
    );
  }
  if (
    data.algorithm !== IDENTITY_ALGORITHM &&
    data.algorithm !== IDENTITY_ALGORITHM_ED25519
  ) {
    throw keyFileError(
      source,
      `unsupported algorithm ${
        JSON.stringify(data.algorithm)
      } (expected "${IDENTITY_ALGORITHM}" or "${IDENTITY_ALGORITHM_ED25519}")`,
    );
  }
  if (
    typeof data.created !== "string" || Number.isNaN(Date.parse(data.created))
  ) {
    throw keyFileError(source, `"created" is not an ISO date`);
  }
  const spki = pemField(data, "publicKey", PEM_PUBLIC, source);
  if (spkiAlgorithm(spki) !== data.algorithm) {
    throw keyFileError(
      source,
      `publicKey is not an ${data.algorithm} key (the "algorithm" field and the key disagree)`,
    );
  }
  const hasPlain = "privateKey" in data;
  const hasEncrypted = "encryptedPrivateKey" in data;
  if (hasPlain === hasEncrypted) {
    throw keyFileError(
      source,
      `must contain exactly one of "privateKey" and "encryptedPrivateKey"`,
    );
  }
  const pkcs8 = hasPlain
    ? pemField(data, "privateKey", PEM_PRIVATE, source)
    : await decryptPrivateKey(
      data.encryptedPrivateKey,
      spki,
      source,
      passphrase,
      options.minIterations ?? PBKDF2_MIN_ITERATIONS,
    );
  try {
    return await importIdentity(pkcs8, spki, source);
  } finally {
    pkcs8.fill(0);
  }
}

/** True when the key-file JSON holds a passphrase-protected private key (does not validate the file). */
export function isEncryptedIdentityFile(json: string): boolean {
  try {
    const data: unknown = JSON.parse(json);
    return isRecord(data) && "encryptedPrivateKey" in data;
  } catch {
    return false;
  }
}

async function decryptPrivateKey(
  value: unknown,
  spki: Bytes,
  source: string,
  passphrase: string | undefined,
  minIterations: number,
): Promise<Bytes> {
  if (!isRecord(value)) {
    throw keyFileError(source, `"encryptedPrivateKey" is not an object`);
  }
  if (value.kdf !== KDF_NAME) {
    throw keyFileError(
      source,
      `unsupported kdf ${JSON.stringify(value.kdf)} (expected "${KDF_NAME}")`,
    );
  }
  if (value.cipher !== CIPHER_NAME) {
    throw keyFileError(
      source,
      `unsupported cipher ${
        JSON.stringify(value.cipher)
      } (expected "${CIPHER_NAME}")`,
    );
  }
  const iterations = value.iterations;
  if (typeof iterations !== "number" || !Number.isSafeInteger(iterations)) {
    throw keyFileError(source, `"iterations" is not an integer`);
  }
  if (iterations < minIterations) {
    throw keyFileError(
      source,
      `PBKDF2 iteration count ${iterations} is below the minimum ${minIterations}; refusing a weakened key file`,
    );
  }
  if (iterations > PBKDF2_MAX_ITERATIONS) {
    throw keyFileError(
      source,
      `PBKDF2 iteration count ${iterations} is above the maximum ${PBKDF2_MAX_ITERATIONS}`,
    );
  }
  const salt = base64Field(value, "salt", source);
  if (salt.length < PBKDF2_SALT_LENGTH) {
    throw keyFileError(
      source,
      `"salt" must be at least ${PBKDF2_SALT_LENGTH} bytes`,
    );
  }
  const nonce = base64Field(value, "nonce", source);
  if (nonce.length !== AEAD_NONCE_LENGTH) {
    throw keyFileError(source, `"nonce" must be ${AEAD_NONCE_LENGTH} bytes`);
  }
  const ciphertext = base64Field(value, "ciphertext", source);
  if (ciphertext.length <= AEAD_TAG_LENGTH) {
    throw keyFileError(source, `"ciphertext" is too short`);
  }
  if (passphrase === undefined) {
    throw new ProtocolError(
      "bad-passphrase",
      `${source}: the private key is passphrase-protected; a passphrase is required`,
    );
  }
  const key = await passphraseKey(passphrase, salt, iterations);
  try {
    return await open(key, nonce, ciphertext, keyFileAad(spki));
  } catch {
    throw new ProtocolError(
      "bad-passphrase",
      `${source}: wrong passphrase, or the file was modified (public key or encryption parameters)`,
    );
  }
}

/** AES-256-GCM key from PBKDF2-SHA256 over the NFC-normalised passphrase. */
async function passphraseKey(
  passphrase: string,
  salt: Bytes,
  iterations: number,
): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey(
    "raw",
    utf8(passphrase.normalize("NFC")),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const raw = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt, iterations },
      material,
      256,
    ),
  );
  try {
    return await importAeadKey(raw);
  } finally {
    raw.fill(0);
  }
}

/** AAD of the encrypted private key: label ‖ u32(version) ‖ algorithm ‖ 0 ‖ SPKI DER. */
function keyFileAad(spki: Bytes): Bytes {
  return concat(
    utf8(KEY_FILE_AAD_LABEL),
    u32(IDENTITY_FILE_VERSION),
    utf8(spkiAlgorithm(spki) + "\0"),
    spki,
  );
}

function keyFileError(source: string, detail: string): ProtocolError {
  return new ProtocolError("bad-key-file", `${source}: ${detail}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function base64Field(
  obj: Record<string, unknown>,
  name: string,
  source: string,
): Bytes {
  const v = obj[name];
  if (typeof v !== "string") {
    throw keyFileError(source, `"${name}" is missing or not a string`);
  }
  try {
    return Uint8Array.fromBase64(v);
  } catch {
    throw keyFileError(source, `"${name}" is not valid base64`);
  }
}

function pemField(
  obj: Record<string, unknown>,
  name: string,
  label: string,
  source: string,
): Bytes {
  const v = obj[name];
  if (typeof v !== "string") {
    throw keyFileError(source, `"${name}" is missing or not a string`);
  }
  const der = pemDecode(v, label);
  if (der === undefined) {
    throw keyFileError(
      source,
      `"${name}" is not a PEM "-----BEGIN ${label}-----" block`,
    );
  }
  return der;
}

// PEM (RFC 7468), kept private here: one block, 64-column base64.

function pemEncode(label: string, der: Uint8Array): string {
  const b64 = der.toBase64();
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${
    lines.join("\n")
  }\n-----END ${label}-----\n`;
}

/** The DER of the single `label` block making up `text` (surrounding whitespace allowed), or undefined. */
function pemDecode(text: string, label: string): Bytes | undefined {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const t = text.trim();
  if (!t.startsWith(begin) || !t.endsWith(end)) return undefined;
  const body = t.slice(begin.length, t.length - end.length).replace(
    /\s+/g,
    "",
  );
  if (body.length === 0) return undefined;
  try {
    return Uint8Array.fromBase64(body);
  } catch {
    return undefined;
  }
}
