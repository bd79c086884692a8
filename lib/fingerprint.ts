/**
 * Identity fingerprints and safety numbers, for people to compare out of band.
 *
 * - Fingerprint: SHA-256 of the DER SubjectPublicKeyInfo (32 bytes), shown as
 *   upper-case hex in 16 groups of 4 (`3F2A 9C01 …`); the short form is the
 *   first 4 groups. Stored in machine form as 64 lower-case hex digits.
 * - Safety number (after Signal's `NumericFingerprint`): for each key,
 *   h = SHA-512(u16(0) ‖ "e2e.v1 safety number\0" ‖ spki), then 5200 times
 *   h = SHA-512(h ‖ spki); the first 30 bytes make 6 chunks of 5 bytes, each a
 *   big-endian integer mod 100000 as 5 digits → 30 digits per key. The two
 *   30-digit strings are sorted and concatenated, so both sides compute the
 *   same 60 digits, shown as 12 groups of 5.
 * @module
 */

import { type Bytes, concat, sha256, u16, utf8 } from "./bytes.ts";
import {
  SAFETY_NUMBER_DIGITS_PER_KEY,
  SAFETY_NUMBER_ITERATIONS,
} from "./constants.ts";

/** Version of the safety-number construction, hashed in first (as Signal does). */
const SAFETY_NUMBER_VERSION = 0;
/** Domain separator, in place of Signal's stable identifier. */
const SAFETY_NUMBER_LABEL = "e2e.v1 safety number\0";
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
  const [a, b] = await Promise.all([numericCode(spkiA), numericCode(spkiB)]);
  const digits = a <= b ? a + b : b + a;
  return groups(digits, SAFETY_GROUP).join(" ");
}

/** The 30-digit half of a safety number contributed by one key. */
async function numericCode(spki: Bytes): Promise<string> {
  let h = await sha512(
    concat(u16(SAFETY_NUMBER_VERSION), utf8(SAFETY_NUMBER_LABEL), spki),
  );
  const buf = new Uint8Array(h.length + spki.length);
  buf.set(spki, h.length);
  for (let i = 0; i < SAFETY_NUMBER_ITERATIONS; i++) {
    buf.set(h, 0);
    h = await sha512(buf);
  }
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

async function sha512(data: Bytes): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.digest("SHA-512", data));
}

function groups(s: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}
