/**
 * Synchronous session primitives from `node:crypto` (built into Deno), for
 * drivers that need throughput: pass `{ primitives: nodePrimitives }` in
 * `SessionOptions`. Same functions as the WebCrypto default (SHA-256,
 * AES-256-GCM with a 16-byte tag), so the bytes on the wire are identical;
 * tests/node_primitives_test.ts runs a node session against a WebCrypto one.
 *
 * Why: WebCrypto is asynchronous only. Every digest is a thread-pool round
 * trip, so the per-direction hash chain (sequential by construction) runs at
 * ~28k steps/s, and every small seal/open costs ~10 µs of CPU plus a promise.
 * Here SHA-256 of a 256-byte record costs ~1.5 µs and AES-GCM ~5 µs, inline.
 *
 * Measured crossover (Deno 2.9.6, x86-64 with AES-NI): `node:crypto`'s GCM
 * costs ~5 µs + ~4 ns/byte, WebCrypto's ~10 µs + ~1.5 ns/byte of CPU, so
 * plaintexts above {@link NODE_AEAD_MAX_PLAINTEXT} still go to WebCrypto
 * (asynchronously, pipelined). Results are the same either way.
 *
 * Key handling: each traffic key goes into a `node:crypto` secret KeyObject
 * (`createSecretKey`), which holds its bytes outside the JS heap, and the
 * caller zeroes the raw bytes it derived — the same exposure as a CryptoKey
 * except that a KeyObject can be exported by code running in this process
 * (`keyObject.export()`), where a non-extractable CryptoKey cannot. The
 * session never hands the KeyObject out. An attacker who runs code in the
 * process can use either kind of key anyway, so this matters little for a
 * server-side driver; a browser keeps the WebCrypto default.
 *
 * Handshake ({@link nodeHandshakePrimitives}, in both providers below): the
 * key schedule runs as synchronous `hkdfSync`, `createHmac` and AES-GCM over
 * raw bytes instead of ~20 WebCrypto round trips. The ECDH secret and the
 * four handshake keys are then plain `Uint8Array`s in the JS heap for the
 * handshake's lifetime (milliseconds, one message each way), zeroed when it
 * ends or fails; the master secret is imported into a non-extractable
 * CryptoKey as before. Ed25519 identity signatures use a `KeyObject` made
 * from the non-extractable CryptoKey (`KeyObject.from`, which Deno allows;
 * cached per key, never exported).
 * X25519 ephemerals are generated and used in node:crypto (their private
 * half in a KeyObject, dropped with the handshake; ~5× less CPU than
 * WebCrypto's generate + export here), and Ed25519 handshake signatures are
 * checked by node:crypto (~⅓ less CPU; the peer's key is still imported
 * into WebCrypto, as the session needs it). P-256 ephemerals, signatures and
 * checks stay on WebCrypto: `node:crypto` is no faster for
 * P-256 here, and the peer's identity must be a CryptoKey for the session.
 * @module
 */

import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  hash,
  hkdfSync,
  KeyObject,
  sign,
  verify,
} from "node:crypto";
import type { Bytes } from "../bytes.ts";
import {
  type AeadKey,
  checkAeadKeyLength,
  type HandshakeKeyPrimitives,
  type ProviderEphemeral,
  type SessionPrimitives,
  webCryptoAeadKey,
} from "../primitives.ts";
import {
  AEAD_TAG_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  spkiAlgorithm,
  SUITE_X25519,
} from "../suite.ts";

/**
 * Largest plaintext sealed/opened by `node:crypto`; longer ones use
 * WebCrypto, which is cheaper per byte (see the module doc). 2048 keeps every
 * record up to the 2 KiB bucket (plaintext 1996 bytes) synchronous.
 */
export const NODE_AEAD_MAX_PLAINTEXT = 2048;

const GCM = "aes-256-gcm";

/** A Bytes view of a node Buffer (no copy). */
function asBytes(b: Uint8Array): Bytes {
  return new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength);
}

/** AES-256-GCM seal in node:crypto: ciphertext ‖ 16-byte tag. */
function gcm(
  key: Bytes | KeyObject,
  nonce: Bytes,
  plaintext: Uint8Array,
  aad: Bytes,
): Bytes {
  const cipher = createCipheriv(GCM, key, nonce);
  cipher.setAAD(aad);
  const ct = cipher.update(plaintext);
  cipher.final();
  const out = new Uint8Array(plaintext.length + AEAD_TAG_LENGTH);
  out.set(ct);
  out.set(cipher.getAuthTag(), plaintext.length);
  return out;
}

/** AES-256-GCM open in node:crypto (`sealed` ≥ 16 bytes); `null` when the tag does not verify. */
function gcmOpen(
  key: Bytes | KeyObject,
  nonce: Bytes,
  sealed: Uint8Array,
  aad: Bytes,
): Bytes | null {
  const ctLength = sealed.length - AEAD_TAG_LENGTH;
  const decipher = createDecipheriv(GCM, key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(ctLength));
  const pt = decipher.update(sealed.subarray(0, ctLength));
  try {
    decipher.final(); // throws when the tag does not verify
  } catch {
    return null;
  }
  return asBytes(pt);
}

/** AES-256-GCM key over `node:crypto` (small records) and WebCrypto (large ones). */
async function nodeAeadKey(raw: Bytes): Promise<AeadKey> {
  checkAeadKeyLength(raw);
  const key = createSecretKey(raw); // copied out of the JS heap; the caller zeroes `raw`
  const large = await webCryptoAeadKey(raw);
  return {
    seal(nonce, plaintext, aad) {
      if (plaintext.length > NODE_AEAD_MAX_PLAINTEXT) {
        return large.seal(nonce, plaintext, aad);
      }
      return gcm(key, nonce, plaintext, aad);
    },
    open(nonce, sealed, aad) {
      if (sealed.length < AEAD_TAG_LENGTH) return null;
      const ctLength = sealed.length - AEAD_TAG_LENGTH;
      if (ctLength > NODE_AEAD_MAX_PLAINTEXT) {
        return large.open(nonce, sealed, aad);
      }
      return gcmOpen(key, nonce, sealed, aad);
    },
  };
}

/** DER prefix of an X25519 SPKI (RFC 8410: OID 1.3.101.110); the raw key follows. */
const X25519_SPKI_PREFIX = Uint8Array.fromHex("302a300506032b656e032100");

/** A fresh X25519 ephemeral whose private half stays in a node KeyObject (outside the JS heap). */
function nodeX25519(): ProviderEphemeral {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const spki = publicKey.export({ format: "der", type: "spki" });
  return {
    publicRaw: new Uint8Array(spki.subarray(X25519_SPKI_PREFIX.length)),
    dh(peerRaw) {
      const peer = new Uint8Array(X25519_SPKI_PREFIX.length + peerRaw.length);
      peer.set(X25519_SPKI_PREFIX);
      peer.set(peerRaw, X25519_SPKI_PREFIX.length);
      const publicKey = createPublicKey({
        key: peer as Uint8Array as Buffer,
        format: "der",
        type: "spki",
      });
      return asBytes(diffieHellman({ privateKey, publicKey }));
    },
  };
}

/** Ed25519 identity keys as node KeyObjects, per CryptoKey (never exported). */
const signingKeys = new WeakMap<CryptoKey, KeyObject>();

/** The handshake's key schedule and Ed25519 signing over `node:crypto` (see the module doc). */
export const nodeHandshakePrimitives: HandshakeKeyPrimitives = {
  hkdf(ikm, salt, info, length) {
    return new Uint8Array(hkdfSync("sha256", ikm, salt, info, length));
  },
  hmac(key, data) {
    return asBytes(createHmac("sha256", key).update(data).digest());
  },
  seal: gcm,
  open: gcmOpen,
  sign(privateKey, data) {
    if (privateKey.algorithm.name !== "Ed25519") return null;
    let key = signingKeys.get(privateKey);
    if (!key) {
      key = KeyObject.from(privateKey);
      signingKeys.set(privateKey, key);
    }
    return asBytes(sign(null, data, key));
  },
  verify(spki, signature, data) {
    // The SPKI was already imported and checked by suite.ts importIdentityPublic.
    if (spkiAlgorithm(spki) !== "Ed25519") return null;
    if (signature.length !== ED25519_SIGNATURE_LENGTH) return false;
    try {
      const key = createPublicKey({
        key: spki as Uint8Array as Buffer,
        format: "der",
        type: "spki",
      });
      return verify(null, data, key, signature);
    } catch {
      return false;
    }
  },
  generateEphemeral(suite) {
    return suite === SUITE_X25519 ? nodeX25519() : null;
  },
};

/** Synchronous SHA-256 and (for records up to 2 KiB) AES-256-GCM from `node:crypto`. */
export const nodePrimitives: SessionPrimitives = {
  name: "node",
  sha256(data) {
    // One-shot `hash()`: no Hash object per call (~⅓ less CPU per chain step at 256 B than createHash).
    return asBytes(hash("sha256", data, "buffer"));
  },
  importAeadKey: nodeAeadKey,
  handshake: nodeHandshakePrimitives,
};

/**
 * Middle ground: synchronous `node:crypto` SHA-256 for the hash chain, but
 * AES-256-GCM stays on WebCrypto with non-extractable keys. Costs ~30 % more CPU per message than {@link nodePrimitives}
 * at 256 B; the chain is no longer the bottleneck either way.
 */
export const nodeHashPrimitives: SessionPrimitives = {
  name: "node-hash",
  sha256: nodePrimitives.sha256,
  importAeadKey: webCryptoAeadKey,
  handshake: nodeHandshakePrimitives,
};
