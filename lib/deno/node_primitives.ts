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
 * Here SHA-256 of a 256-byte record costs ~1.5 µs and AES-GCM ~5 µs, inline
 * (SHA-256 of up to {@link JS_SHA256_MAX} bytes — a chain step of a short
 * body — runs in lib/sha256.ts, plain JS: the same function without a
 * native call, hasher and buffer per step).
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
 * key schedule, the MACs and the transcript hash run synchronously in plain
 * JavaScript (lib/sha256_state.ts: an incremental SHA-256 whose state forks
 * for free, so each message is hashed once per side, and HMAC-SHA256; a
 * `node:crypto` hasher or `hkdfSync` call costs more in wrapper objects and
 * buffers than the few compressions a handshake needs), AES-GCM in
 * `node:crypto`, instead of ~20 WebCrypto round trips. The ECDH output goes
 * into a secret `KeyObject` (outside the JS heap), from which the master is
 * derived by `hkdfSync` at the end; before its raw bytes are zeroed, the
 * extract salted with th_hello (whose PRK yields the four handshake keys
 * only, and is zeroed at once) runs on them. The four handshake keys are
 * plain `Uint8Array`s in the JS heap for the
 * handshake's lifetime (milliseconds, one message each way), zeroed when it
 * ends or fails. The master secret is imported into a non-extractable
 * CryptoKey as before with {@link nodeHashPrimitives} (`--crypto keys`, whose
 * traffic keys are non-extractable WebCrypto keys); {@link nodePrimitives}
 * (`--crypto fast`, traffic keys in KeyObjects already) keeps it in a secret
 * KeyObject too (`keepMaster`), so traffic keys and rekeys derive from it by
 * `hkdfSync`: no WebCrypto import, no round trip per derived key. Ed25519 identity signatures (the handshake's, and the
 * session's chain signatures, which lib/session.ts makes and checks with
 * the provider's `sign`/`verify` too) use a `KeyObject` made
 * from the non-extractable CryptoKey (`KeyObject.from`, which Deno allows;
 * cached per key, never exported). X25519 ephemerals are generated and used
 * in node:crypto (the private half in a KeyObject, dropped with the
 * handshake: ~5× less CPU than WebCrypto's generate + export), and Ed25519
 * handshake signatures are checked by node:crypto with a KeyObject cached
 * per peer SPKI (bounded; ~⅓ less CPU). P-256 is the other way round: its
 * signatures, their checks and its ephemerals (`p256Ephemeral`) go through
 * WebCrypto, which costs less CPU here for each of them than node:crypto
 * (which derives the public key again on every signature and uses no
 * precomputed table for key generation); lib/identity.ts imports P-256
 * identity keys so that a signature does not recompute their public key
 * either. The peer's key is imported into WebCrypto once per SPKI
 * (`importPeerKey` in lib/handshake_keys.ts), as the session needs it.
 * Peer keys are validated as on the WebCrypto path before any DH
 * (`sharedSecret`: lengths, the P-256 on-curve check, small-order X25519).
 * @module
 */

import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
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
import { sha256Js } from "../sha256.ts";
import { HmacKey, hmacSha256, Sha256Js } from "../sha256_state.ts";
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
  p256Pkcs8Parts,
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
/** DER prefix of an uncompressed P-256 SPKI (RFC 5480: id-ecPublicKey, prime256v1); the 65-byte point follows. */
const P256_SPKI_PREFIX = Uint8Array.fromHex(
  "3059301306072a8648ce3d020106082a8648ce3d030107034200",
);

/** A public KeyObject from `prefix ‖ raw` (an SPKI). */
function spkiKey(prefix: Uint8Array, raw: Uint8Array): KeyObject {
  const der = new Uint8Array(prefix.length + raw.length);
  der.set(prefix);
  der.set(raw, prefix.length);
  return createPublicKey({
    key: der as Uint8Array as Buffer,
    format: "der",
    type: "spki",
  });
}

/**
 * A fresh X25519 ephemeral whose private half stays in a node KeyObject
 * (outside the JS heap). The caller validates the peer's key first
 * (lib/handshake_keys.ts `sharedSecret`).
 */
function nodeEphemeral(): ProviderEphemeral {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return ephemeralOf(privateKey, publicKey);
}

const ECDH_P256 = { name: "ECDH", namedCurve: "P-256" } as const;

/**
 * A fresh P-256 ephemeral, cheapest path measured in Deno 2.9.6 (CPU per
 * key pair + one DH, 4 alternating rounds: ~330 µs, against ~700 µs for
 * node's `generateKeyPairSync` + `diffieHellman`): WebCrypto's `generateKey`
 * (ring: a fixed-base multiplication with precomputed tables, ~60 µs; node
 * and WebCrypto's export of the public key use a generic one, ~300 µs),
 * exported once as PKCS#8 to read the public point from it, and re-imported
 * non-extractable from the private scalar alone (`p256Pkcs8Parts`: with the
 * public key in it, every `deriveBits` would re-check it with a
 * multiplication). The exported bytes and the scalar copy are zeroed at once.
 * The scalar is in the JS heap for those few microseconds, as the DH output
 * and the handshake keys are for the whole handshake (Deno's WebCrypto keeps
 * key bytes in the JS heap anyway).
 */
async function p256Ephemeral(): Promise<ProviderEphemeral | null> {
  const pair = await crypto.subtle.generateKey(ECDH_P256, true, [
    "deriveBits",
  ]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
  const parts = p256Pkcs8Parts(pkcs8);
  pkcs8.fill(0);
  if (!parts) return null; // not the expected form: the WebCrypto path
  return await p256EphemeralOf(
    parts.scalarOnly,
    parts.publicRaw ??
      new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)),
  );
}

/** The P-256 ephemeral of a scalar-only PKCS#8 (zeroed here) and its public point. */
async function p256EphemeralOf(
  scalarOnly: Bytes,
  publicRaw: Bytes,
): Promise<ProviderEphemeral> {
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey(
      "pkcs8",
      scalarOnly,
      ECDH_P256,
      false,
      ["deriveBits"],
    );
  } finally {
    scalarOnly.fill(0);
  }
  return {
    publicRaw,
    async dh(peerRaw) {
      const publicKey = await crypto.subtle.importKey(
        "raw",
        peerRaw,
        ECDH_P256,
        false,
        [],
      );
      return new Uint8Array(
        await crypto.subtle.deriveBits(
          { name: "ECDH", public: publicKey },
          privateKey,
          256,
        ),
      );
    },
  };
}

/** The X25519 ephemeral of a node key pair. */
function ephemeralOf(
  privateKey: KeyObject,
  publicKey: KeyObject,
): ProviderEphemeral {
  const prefix = X25519_SPKI_PREFIX;
  const spki = publicKey.export({ format: "der", type: "spki" });
  return {
    publicRaw: new Uint8Array(spki.subarray(prefix.length)),
    dh(peerRaw) {
      return asBytes(
        diffieHellman({ privateKey, publicKey: spkiKey(prefix, peerRaw) }),
      );
    },
  };
}

/**
 * A provider ephemeral from a fixed PKCS#8 private key (X25519 or P-256),
 * held as {@link nodeHandshakePrimitives} holds a generated one: for test
 * vectors only (Wycheproof ECDH through `sharedSecret`); a real handshake
 * generates its ephemeral.
 */
export async function importNodeEphemeral(
  pkcs8: Bytes,
  suite: number,
): Promise<ProviderEphemeral> {
  const key = createPrivateKey({
    key: pkcs8 as Uint8Array as Buffer,
    format: "der",
    type: "pkcs8",
  });
  if (suite === SUITE_X25519) {
    return ephemeralOf(key, createPublicKey(key));
  }
  const parts = p256Pkcs8Parts(pkcs8);
  if (!parts) throw new RangeError("not a P-256 PKCS#8 key");
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return await p256EphemeralOf(
    parts.scalarOnly,
    new Uint8Array(spki.subarray(P256_SPKI_PREFIX.length)),
  );
}

/** Ed25519 identity private keys as node KeyObjects, per CryptoKey (never exported). */
const signingKeys = new WeakMap<CryptoKey, KeyObject>();

/** Peer identity SPKIs (hex) → node KeyObjects, least recently used dropped first. */
const verifyingKeys = new Map<string, KeyObject>();
/** Bound of {@link verifyingKeys} (public keys only). */
const VERIFYING_KEYS_MAX = 1024;

function verifyingKey(spki: Bytes): KeyObject {
  const id = spki.toHex();
  let key = verifyingKeys.get(id);
  if (key) {
    verifyingKeys.delete(id);
  } else {
    key = createPublicKey({
      key: spki as Uint8Array as Buffer,
      format: "der",
      type: "spki",
    });
    if (verifyingKeys.size >= VERIFYING_KEYS_MAX) {
      verifyingKeys.delete(verifyingKeys.keys().next().value!);
    }
  }
  verifyingKeys.set(id, key);
  return key;
}

/** The handshake's key schedule, ephemerals and signatures over `node:crypto` (see the module doc). */
export const nodeHandshakePrimitives: HandshakeKeyPrimitives = {
  hkdfFrom(ikm) {
    const key = createSecretKey(ikm); // copied out of the JS heap
    return (salt, info, length) =>
      new Uint8Array(hkdfSync("sha256", key, salt, info, length));
  },
  hmac: hmacSha256,
  hmacKey: (key) => new HmacKey(key),
  seal: gcm,
  open: gcmOpen,
  sha256: () => new Sha256Js(),
  sign(privateKey, data) {
    // P-256: WebCrypto's signature costs less here (node's derives the
    // public key on every call; lib/identity.ts imports the key so that
    // WebCrypto's does not), and keeps the key to itself.
    if (privateKey.algorithm.name !== "Ed25519") return null;
    let key = signingKeys.get(privateKey);
    if (!key) {
      key = KeyObject.from(privateKey);
      signingKeys.set(privateKey, key);
    }
    return asBytes(sign(null, data, key));
  },
  verify(spki, signature, data) {
    // P-256: WebCrypto's check costs less CPU here (~450–540 µs against
    // node's ~600–720, 3 alternating rounds).
    if (spkiAlgorithm(spki) !== "Ed25519") return null;
    if (signature.length !== ED25519_SIGNATURE_LENGTH) return false;
    try {
      // The SPKI was already imported and checked by suite.ts importIdentityPublic.
      return verify(null, data, verifyingKey(spki), signature);
    } catch {
      return false;
    }
  },
  generateEphemeral(suite) {
    return suite === SUITE_X25519 ? nodeEphemeral() : p256Ephemeral();
  },
};

/**
 * Inputs up to this many bytes are hashed by lib/sha256.ts (plain JS, same
 * function): a chain step of a body up to 467 bytes. A native `hash()` call
 * costs more than that in call overhead and a native hasher, buffer and
 * GC-traced wrapper per call; above, native code is faster per byte.
 */
export const JS_SHA256_MAX = 512;

/** Synchronous SHA-256 and (for records up to 2 KiB) AES-256-GCM from `node:crypto`. */
export const nodePrimitives: SessionPrimitives = {
  name: "node",
  sha256(data) {
    if (data.length <= JS_SHA256_MAX) return sha256Js(data);
    // One-shot `hash()`: no Hash object per call (~⅓ less CPU per chain step at 256 B than createHash).
    return asBytes(hash("sha256", data, "buffer"));
  },
  importAeadKey: nodeAeadKey,
  // The traffic keys are KeyObjects here: the master may be one too.
  handshake: { ...nodeHandshakePrimitives, keepMaster: true },
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
