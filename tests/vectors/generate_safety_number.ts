/**
 * Generates `good_safety_number_*.json` in this folder: safety numbers
 * (PROTOCOL.md §2.3, version 1) of fixed identity keys, with every
 * intermediate value (salt, each key's PBKDF2 output and 30 digits, the sort).
 * tests/safety_number_vectors_test.ts checks them against lib/fingerprint.ts
 * and against tests/reference/safety_number.py (Python hashlib, written from
 * the spec). Deterministic: a re-run is byte-identical.
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/vectors/generate_safety_number.ts
 * @module
 */

import { type Bytes, concat, u16, utf8 } from "../../lib/bytes.ts";
import {
  SAFETY_NUMBER_BYTES_PER_KEY,
  SAFETY_NUMBER_ITERATIONS,
} from "../../lib/constants.ts";
import {
  SAFETY_NUMBER_LABEL,
  SAFETY_NUMBER_VERSION,
  safetyNumber,
  safetyNumberHalf,
} from "../../lib/fingerprint.ts";

const dir = new URL(".", import.meta.url);

/** Ed25519 SPKI of a fixed seed (RFC 8032 test 1's secret key). */
async function ed25519Spki(seedHex: string): Promise<Bytes> {
  const pkcs8 = concat(
    Uint8Array.fromHex("302e020100300506032b657004220420"),
    Uint8Array.fromHex(seedHex),
  );
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, "Ed25519", true, [
    "sign",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const pub = await crypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "Ed25519", x: jwk.x },
    "Ed25519",
    true,
    ["verify"],
  );
  return new Uint8Array(await crypto.subtle.exportKey("spki", pub));
}

async function pbkdf2(spki: Bytes): Promise<Bytes> {
  const k = await crypto.subtle.importKey("raw", spki, "PBKDF2", false, [
    "deriveBits",
  ]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "PBKDF2",
        hash: "SHA-512",
        salt: salt(),
        iterations: SAFETY_NUMBER_ITERATIONS,
      },
      k,
      SAFETY_NUMBER_BYTES_PER_KEY * 8,
    ),
  );
}

function salt(): Bytes {
  return concat(u16(SAFETY_NUMBER_VERSION), utf8(SAFETY_NUMBER_LABEL));
}

async function vector(
  name: string,
  description: string,
  spkiA: Bytes,
  spkiB: Bytes,
): Promise<void> {
  const [halfA, halfB] = [
    await safetyNumberHalf(spkiA),
    await safetyNumberHalf(spkiB),
  ];
  const out = {
    description,
    safetyNumberVersion: SAFETY_NUMBER_VERSION,
    kdf: "PBKDF2-HMAC-SHA512",
    iterations: SAFETY_NUMBER_ITERATIONS,
    outputBytes: SAFETY_NUMBER_BYTES_PER_KEY,
    salt: salt().toHex(),
    spkiA: spkiA.toHex(),
    spkiB: spkiB.toHex(),
    pbkdf2A: (await pbkdf2(spkiA)).toHex(),
    pbkdf2B: (await pbkdf2(spkiB)).toHex(),
    digitsA: halfA,
    digitsB: halfB,
    firstHalf: halfA <= halfB ? "A" : "B",
    safetyNumber: await safetyNumber(spkiA, spkiB),
  };
  await Deno.writeTextFile(
    new URL(`good_safety_number_${name}.json`, dir),
    JSON.stringify(out, null, 2) + "\n",
  );
}

const hs = JSON.parse(
  await Deno.readTextFile(new URL("good_handshake.json", dir)),
);
const p256I = Uint8Array.fromHex(hs.initiator.identitySpki);
const p256R = Uint8Array.fromHex(hs.responder.identitySpki);
const edA = await ed25519Spki(
  "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
);
const edB = await ed25519Spki(
  "4ccd089b28ff96da9d6c2ec8d3a4e0c1a5c4b0d5e0c8a3a2f7a1c6e8b2d4f6a1",
);
await vector(
  "p256",
  "The identities of good_handshake.json (A = initiator, B = responder), ECDSA P-256 SPKIs (91 bytes).",
  p256I,
  p256R,
);
await vector(
  "p256_swapped",
  "The same two keys given in the other order: the same 60 digits (the halves are sorted).",
  p256R,
  p256I,
);
await vector(
  "ed25519",
  "Two Ed25519 SPKIs (44 bytes), as suite 0x0002 identities.",
  edA,
  edB,
);
await vector(
  "same_key",
  "Both sides hold the same key: the half appears twice.",
  p256I,
  p256I,
);
