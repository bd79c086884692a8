/**
 * RFC 4648 base32, lower-case, no padding: how session IDs are shown
 * (16 bytes → 26 characters). Decoding accepts either case.
 * @module
 */

import type { Bytes } from "./bytes.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** Encodes bytes as lower-case unpadded base32. */
export function encodeBase32(data: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes unpadded base32 (either case); throws `SyntaxError` on bad input. */
export function decodeBase32(text: string): Bytes {
  const s = text.toLowerCase();
  const out = new Uint8Array(Math.floor((s.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let idx = 0;
  for (const ch of s) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) throw new SyntaxError(`invalid base32 character '${ch}'`);
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[idx++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  if (bits >= 5 || (value & ((1 << bits) - 1)) !== 0) {
    throw new SyntaxError("invalid base32 length or trailing bits");
  }
  return out;
}
