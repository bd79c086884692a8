/**
 * The symmetric primitives of the session's hot path — SHA-256 (hash chain)
 * and AES-256-GCM (records) — behind a small provider interface, so a runtime
 * with faster, synchronous implementations can supply them without touching
 * the protocol code. Every provider computes the same functions: bytes on
 * the wire never depend on the provider (cross-tested).
 *
 * The default, {@link webCryptoPrimitives}, uses `crypto.subtle` with
 * non-extractable keys and runs everywhere (browsers included). WebCrypto is
 * asynchronous only: each call is a thread-pool round trip (~35 µs in Deno),
 * which caps a sequential hash chain near 28k steps/s. Deno drivers may pass
 * `lib/deno/node_primitives.ts` (synchronous `node:crypto`) instead; see its
 * module doc for the key-handling trade-off.
 *
 * Results may be synchronous (`Bytes`) or asynchronous (`Promise<Bytes>`);
 * callers must handle both (see {@link isPromise}). DH, signature checks and
 * key generation default to `lib/suite.ts` (WebCrypto). A provider may add
 * {@link HandshakeKeyPrimitives} (synchronous HKDF/HMAC/AES-GCM/SHA-256 over
 * raw bytes, and ephemerals, signing and signature checks where it is
 * faster) for the handshake; the default has none, so the handshake keeps
 * non-extractable CryptoKeys.
 * @module
 */

import type { Bytes } from "./bytes.ts";
import { AEAD_KEY_LENGTH, AEAD_TAG_LENGTH } from "./suite.ts";

/** A value now or later: synchronous providers return the value itself. */
export type MaybePromise<T> = T | Promise<T>;

/** One AES-256-GCM key, held by the provider that imported it. */
export interface AeadKey {
  /** AES-256-GCM encryption with a 12-byte nonce; returns ciphertext ‖ 16-byte tag. */
  seal(nonce: Bytes, plaintext: Uint8Array, aad: Bytes): MaybePromise<Bytes>;
  /** AES-256-GCM decryption of ciphertext ‖ tag; `null` when authentication fails. */
  open(
    nonce: Bytes,
    sealed: Uint8Array,
    aad: Bytes,
  ): MaybePromise<Bytes | null>;
}

/** An ephemeral DH key pair held by a provider: the private half never reaches lib/. */
export interface ProviderEphemeral {
  /** Public key as on the wire (32 bytes for X25519, 65-byte uncompressed point for P-256). */
  readonly publicRaw: Bytes;
  /**
   * Raw DH output (32 bytes) with a peer public key that the caller has
   * already checked (length; for P-256 on the curve); may throw (or reject)
   * on a bad key.
   */
  dh(peerRaw: Bytes): MaybePromise<Bytes>;
}

/**
 * An incremental SHA-256 whose state can be copied: the handshake hashes a
 * transcript prefix once and forks it for each transcript hash it needs.
 */
export interface Sha256State {
  /** Absorbs `data`; returns this state. */
  update(data: Uint8Array): Sha256State;
  /** An independent copy of this state. */
  copy(): Sha256State;
  /** SHA-256 of everything absorbed (32 bytes); the state is finished. */
  digest(): Bytes;
  /** SHA-256 of everything absorbed followed by `parts`, this state unchanged (else: copy, update, digest). */
  digestWith?(parts: readonly Uint8Array[]): Bytes;
}

/** HKDF-SHA256 over one input key (see {@link HandshakeKeyPrimitives.hkdfFrom}). */
export type HkdfFn = (salt: Bytes, info: Bytes, length: number) => Bytes;

/**
 * An HKDF input key held by a provider ({@link HandshakeKeyPrimitives.hkdfFrom}):
 * the session's master secret when the handshake ran on a provider, so the
 * key schedule derives synchronously instead of through a WebCrypto import
 * and one round trip per derived key.
 */
export interface ProviderSecret {
  /** HKDF-SHA256 (extract with `salt`, expand with `info`) from this secret. */
  readonly hkdf: HkdfFn;
}

/** A secret the key schedule derives from: a non-extractable WebCrypto HKDF key, or a provider's. */
export type SecretKey = CryptoKey | ProviderSecret;

/**
 * Synchronous primitives for the handshake's key schedule and proofs
 * (`lib/handshake_keys.ts`). Same functions as the WebCrypto path, so the
 * handshake bytes never depend on the provider
 * (tests/vectors_handshake_test.ts, tests/node_primitives_test.ts).
 */
export interface HandshakeKeyPrimitives {
  /**
   * HKDF-SHA256 (extract with `salt`, expand with `info`) with `ikm` as the
   * input key: `ikm` is copied into the provider's own key object (the
   * caller zeroes its bytes), and every derive from it reuses that object.
   */
  hkdfFrom(ikm: Bytes): HkdfFn;
  /** HMAC-SHA256 of `data` (32 bytes). */
  hmac(key: Bytes, data: Bytes): Bytes;
  /**
   * An HMAC-SHA256 key for several MACs (the key schedule's expands from one
   * PRK), its key-dependent work done once; `wipe` forgets it. Absent: each
   * MAC is a {@link HandshakeKeyPrimitives.hmac} call.
   */
  hmacKey?(key: Bytes): { mac(data: Bytes): Bytes; wipe(): void };
  /** AES-256-GCM; returns ciphertext ‖ 16-byte tag. */
  seal(key: Bytes, nonce: Bytes, plaintext: Bytes, aad: Bytes): Bytes;
  /** AES-256-GCM decryption; `null` when authentication fails. */
  open(key: Bytes, nonce: Bytes, sealed: Bytes, aad: Bytes): Bytes | null;
  /** A fresh incremental SHA-256. */
  sha256(): Sha256State;
  /**
   * Signature with an identity key when this provider is faster for its
   * algorithm (same bytes as `suite.ts` `sign` for Ed25519, a valid P1363
   * signature for P-256); `null` means "use WebCrypto".
   */
  sign(privateKey: CryptoKey, data: Bytes): Bytes | null;
  /**
   * Checks a signature by an identity SPKI that `suite.ts`
   * `importIdentityPublic` already accepted, when this provider is faster
   * for its algorithm (same result as `suite.ts` `verify`); `null` means
   * "use WebCrypto".
   */
  verify(spki: Bytes, signature: Bytes, data: Bytes): boolean | null;
  /** A fresh ephemeral of `suite` when this provider is faster for it; `null` means "use WebCrypto". */
  generateEphemeral(suite: number): MaybePromise<ProviderEphemeral | null>;
  /**
   * True: the handshake hands the session its master secret in this
   * provider's key object ({@link ProviderSecret}, from `hkdfFrom`), and the
   * session's key schedule (traffic keys, rekeys) derives from it
   * synchronously. For providers whose session keys are the provider's
   * anyway; absent or false: the master is imported into a non-extractable
   * WebCrypto HKDF key, as without a provider.
   */
  readonly keepMaster?: boolean;
}

/** Provider of the session's symmetric primitives (see module doc). */
export interface SessionPrimitives {
  /** Short name for diagnostics and benchmarks ("webcrypto", "node"). */
  readonly name: string;
  /**
   * SHA-256 of `data` (32 bytes). Reads `data` before it returns (hashes it
   * at once, or copies it as WebCrypto's `digest` does): the caller may
   * overwrite it right after the call.
   */
  sha256(data: Uint8Array): MaybePromise<Bytes>;
  /** Imports a 32-byte AES-256-GCM key; the caller zeroes `raw` afterwards. */
  importAeadKey(raw: Bytes): Promise<AeadKey>;
  /** Synchronous handshake key schedule; absent = WebCrypto with non-extractable keys. */
  readonly handshake?: HandshakeKeyPrimitives;
}

/** Whether `v` is a promise (the asynchronous branch of a {@link MaybePromise}). */
export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return v instanceof Promise;
}

/**
 * Applies `f` to `v` now when `v` is a value, after it resolves when it is a
 * promise. (Not named `then`: a module exporting `then` is a thenable, and
 * `await import()` of it would call it.)
 */
export function andThen<T, U>(
  v: MaybePromise<T>,
  f: (value: T) => MaybePromise<U>,
): MaybePromise<U> {
  return isPromise(v) ? v.then(f) : f(v);
}

/** Resolves a list of values and promises in order, without a promise per element when all are values. */
export function all<T>(values: MaybePromise<T>[]): Promise<T[]> {
  for (const v of values) {
    if (isPromise(v)) return Promise.all(values);
  }
  return Promise.resolve(values as T[]);
}

/** Checks the key length shared by every provider. */
export function checkAeadKeyLength(raw: Uint8Array): void {
  if (raw.length !== AEAD_KEY_LENGTH) {
    throw new RangeError("AES-256 key must be 32 bytes");
  }
}

const GCM = (iv: Bytes, additionalData: Bytes) =>
  ({ name: "AES-GCM", iv, additionalData, tagLength: 128 }) as const;

/** AES-256-GCM over `crypto.subtle` with a non-extractable key. */
export async function webCryptoAeadKey(raw: Bytes): Promise<AeadKey> {
  checkAeadKeyLength(raw);
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return {
    async seal(nonce, plaintext, aad) {
      return new Uint8Array(
        await crypto.subtle.encrypt(GCM(nonce, aad), key, plaintext as Bytes),
      );
    },
    async open(nonce, sealed, aad) {
      if (sealed.length < AEAD_TAG_LENGTH) return null;
      try {
        return new Uint8Array(
          await crypto.subtle.decrypt(GCM(nonce, aad), key, sealed as Bytes),
        );
      } catch {
        return null;
      }
    },
  };
}

/** The default provider: WebCrypto only, asynchronous, non-extractable keys; runs in browsers. */
export const webCryptoPrimitives: SessionPrimitives = {
  name: "webcrypto",
  async sha256(data) {
    return new Uint8Array(
      await crypto.subtle.digest("SHA-256", data as Bytes),
    );
  },
  importAeadKey: webCryptoAeadKey,
};
