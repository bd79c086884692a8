/**
 * Identity fingerprints and safety numbers, for people to compare out of band.
 *
 * - Fingerprint: SHA-256 of the DER SubjectPublicKeyInfo (32 bytes), shown as
 *   upper-case hex in 16 groups of 4 (`3F2A 9C01 …`); the short form is the
 *   first 4 groups. Stored in machine form as 64 lower-case hex digits.
 * - Safety number (version 1, PROTOCOL.md §2.3): for each key,
 *   h = PBKDF2-HMAC-SHA512(password = spki, salt = u16(1) ‖ "e2e.v1 safety
 *   number\0", 1024 iterations, 30 bytes); 6 chunks of 5 bytes, each a
 *   big-endian integer mod 100000 as 5 digits → 30 digits per key. The two
 *   30-digit strings are sorted and concatenated, so both sides compute the
 *   same 60 digits, shown as 12 groups of 5. One native call per key (~1.5 ms
 *   here), and each key's half is cached: a client computes its own half once.
 * @module
 */

import { type Bytes, concat, sha256, u16, utf8 } from "./bytes.ts";
import {
  SAFETY_NUMBER_BYTES_PER_KEY,
  SAFETY_NUMBER_DIGITS_PER_KEY,
  SAFETY_NUMBER_ITERATIONS,
} from "./constants.ts";

/** Version of the safety-number construction, first in the salt (version 0 was 5200 chained SHA-512 calls). */
export const SAFETY_NUMBER_VERSION = 1;
/** Domain separator, in place of Signal's stable identifier. */
export const SAFETY_NUMBER_LABEL = "e2e.v1 safety number\0";
/** Halves kept by the cache (one per key seen; own key included). */
const SAFETY_CACHE_ENTRIES = 256;
/** Hex digits per displayed fingerprint group. */
const FINGERPRINT_GROUP = 4;
/** Groups shown by {@link shortFingerprint} (64 bits). */
const SHORT_FINGERPRINT_GROUPS = 4;
/** Digits per displayed safety-number group. */
const SAFETY_GROUP = 5;
/** Bytes of hash consumed per 5-digit group (40 bits mod 10^5: bias < 2^-23). */
const SAFETY_CHUNK_BYTES = 5;

/** SHA-256 of a DER SubjectPublicKeyInfo: the identity's fingerprint (32 bytes). */
export function fingerprint(spki: Bytes): Promise<Bytes> {
  return sha256(spki);
}

/** Readable form of a fingerprint: upper-case hex in space-separated groups of 4. */
export function formatFingerprint(fp: Uint8Array): string {
  return groups(fp.toHex().toUpperCase(), FINGERPRINT_GROUP).join(" ");
}

/** First 64 bits of a fingerprint in the readable form (for lists and prompts, not for verification). */
export function shortFingerprint(fp: Uint8Array): string {
  return groups(fp.toHex().toUpperCase(), FINGERPRINT_GROUP)
    .slice(0, SHORT_FINGERPRINT_GROUPS).join(" ");
}

/**
 * Parses a fingerprint typed or pasted by a person: 64 hex digits, any case,
 * spaces, colons and dashes ignored. Returns the 64 lower-case hex digits;
 * throws `SyntaxError` otherwise.
 */
export function parseFingerprint(text: string): string {
  const h = text.replace(/[\s:-]/g, "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(h)) {
    throw new SyntaxError(
      "a fingerprint is 64 hex digits (SHA-256 of the public key)",
    );
  }
  return h;
}

/**
 * The safety number of two identities: 60 digits in 12 space-separated groups
 * of 5, identical whichever side computes it (argument order does not matter).
 */
export async function safetyNumber(
  spkiA: Bytes,
  spkiB: Bytes,
): Promise<string> {
  const [a, b] = await Promise.all([
    safetyNumberHalf(spkiA),
    safetyNumberHalf(spkiB),
  ]);
  const digits = a <= b ? a + b : b + a;
  return groups(digits, SAFETY_GROUP).join(" ");
}

const halves = new Map<string, Promise<string>>();

/**
 * The 30-digit half of a safety number contributed by one key, cached per
 * SPKI (bounded: the oldest entry goes first). A failed computation is not
 * cached.
 */
export function safetyNumberHalf(spki: Bytes): Promise<string> {
  const key = spki.toHex();
  const hit = halves.get(key);
  if (hit) return hit;
  const half = computeHalf(spki.slice());
  halves.set(key, half);
  half.catch(() => halves.delete(key));
  if (halves.size > SAFETY_CACHE_ENTRIES) {
    halves.delete(halves.keys().next().value!);
  }
  return half;
}

async function computeHalf(spki: Bytes): Promise<string> {
  const password = await crypto.subtle.importKey(
    "raw",
    spki,
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const h = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "PBKDF2",
        hash: "SHA-512",
        salt: concat(u16(SAFETY_NUMBER_VERSION), utf8(SAFETY_NUMBER_LABEL)),
        iterations: SAFETY_NUMBER_ITERATIONS,
      },
      password,
      SAFETY_NUMBER_BYTES_PER_KEY * 8,
    ),
  );
  let out = "";
  const chunks = SAFETY_NUMBER_DIGITS_PER_KEY / SAFETY_GROUP;
  for (let c = 0; c < chunks; c++) {
    let n = 0;
    for (let j = 0; j < SAFETY_CHUNK_BYTES; j++) {
      n = n * 256 + h[c * SAFETY_CHUNK_BYTES + j];
    }
    out += String(n % 10 ** SAFETY_GROUP).padStart(SAFETY_GROUP, "0");
  }
  return out;
}

function groups(s: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}
