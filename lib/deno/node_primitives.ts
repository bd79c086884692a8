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
 * @module
 */

import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hash,
} from "node:crypto";
import type { Bytes } from "../bytes.ts";
import {
  type AeadKey,
  checkAeadKeyLength,
  type SessionPrimitives,
  webCryptoAeadKey,
} from "../primitives.ts";
import { AEAD_TAG_LENGTH } from "../suite.ts";

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
      const cipher = createCipheriv(GCM, key, nonce);
      cipher.setAAD(aad);
      const ct = cipher.update(plaintext);
      cipher.final();
      const out = new Uint8Array(plaintext.length + AEAD_TAG_LENGTH);
      out.set(ct);
      out.set(cipher.getAuthTag(), plaintext.length);
      return out;
    },
    open(nonce, sealed, aad) {
      if (sealed.length < AEAD_TAG_LENGTH) return null;
      const ctLength = sealed.length - AEAD_TAG_LENGTH;
      if (ctLength > NODE_AEAD_MAX_PLAINTEXT) {
        return large.open(nonce, sealed, aad);
      }
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
    },
  };
}

/** Synchronous SHA-256 and (for records up to 2 KiB) AES-256-GCM from `node:crypto`. */
export const nodePrimitives: SessionPrimitives = {
  name: "node",
  sha256(data) {
    // One-shot `hash()`: no Hash object per call (~⅓ less CPU per chain step at 256 B than createHash).
    return asBytes(hash("sha256", data, "buffer"));
  },
  importAeadKey: nodeAeadKey,
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
};
