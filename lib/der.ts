/**
 * Minimal ASN.1 DER (ITU-T X.690) encoder and reader: just enough to build
 * and inspect X.509 certificates. Encoders return complete TLVs (tag, length,
 * value); compose them by nesting. Pure functions, no I/O; safe in a browser.
 * @module
 */

import { type Bytes, concat, utf8 } from "./bytes.ts";

/** Universal tag numbers (X.690 §8) used by the encoders below. */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Bit 6 of an identifier octet: the encoding is constructed. */
const CONSTRUCTED = 0x20;
/** Bits 7–8 of an identifier octet set to `10`: context-specific class. */
const CONTEXT_SPECIFIC = 0x80;
/** Largest tag number that fits in a single identifier octet. */
const MAX_LOW_TAG_NUMBER = 30;
/** Lengths below this use the short form (one octet). */
const SHORT_LENGTH_LIMIT = 0x80;
/** Longest length-of-length the reader accepts (4 octets: up to 4 GiB). */
const MAX_LENGTH_OCTETS = 4;
/** UTCTime covers 1950–2049 (RFC 5280 §4.1.2.5); later dates use GeneralizedTime. */
const UTC_TIME_FIRST_YEAR = 1950;
const UTC_TIME_END_YEAR = 2050;
/** PrintableString's character set (X.680 §41.4). */
const PRINTABLE_RE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
/** IA5String is 7-bit ASCII. */
const IA5_RE = /^[^\u0080-\uffff]*$/;

/** Encodes a DER length (short form below 128, long form otherwise). */
export function encodeLength(length: number): Bytes {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(
      `DER length must be a non-negative integer, got ${length}`,
    );
  }
  if (length < SHORT_LENGTH_LIMIT) return new Uint8Array([length]);
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
  return new Uint8Array([0x80 | octets.length, ...octets]);
}

/** Encodes one TLV with a single-octet identifier `tag`. */
export function tlv(tag: number, content: Uint8Array): Bytes {
  if (
    !Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f
  ) {
    throw new RangeError(
      `DER tag must be a single identifier octet, got ${tag}`,
    );
  }
  return concat(new Uint8Array([tag]), encodeLength(content.length), content);
}

/** SEQUENCE of already-encoded elements. */
export function sequence(...items: Uint8Array[]): Bytes {
  return tlv(Tag.SEQUENCE, concat(...items));
}

/** SET OF already-encoded elements, sorted by encoding as DER requires (X.690 §11.6). */
export function set(...items: Uint8Array[]): Bytes {
  const sorted = [...items].sort(compareBytes);
  return tlv(Tag.SET, concat(...sorted));
}

/** BOOLEAN (DER: TRUE is 0xff). */
export function boolean(value: boolean): Bytes {
  return tlv(Tag.BOOLEAN, new Uint8Array([value ? 0xff : 0x00]));
}

/** NULL. */
export function nullValue(): Bytes {
  return tlv(Tag.NULL, new Uint8Array());
}

/**
 * INTEGER from a non-negative value: a number, bigint, or unsigned big-endian
 * bytes. Redundant leading zeros are stripped and a 0x00 is prepended when the
 * top bit is set, so the value stays positive in two's complement.
 */
export function integer(value: number | bigint | Uint8Array): Bytes {
  return tlv(Tag.INTEGER, unsignedIntegerContent(toUnsignedBytes(value)));
}

/** OBJECT IDENTIFIER from dotted form, e.g. `"1.2.840.10045.2.1"`. */
export function oid(dotted: string): Bytes {
  if (!/^\d+(\.\d+)+$/.test(dotted)) {
    throw new SyntaxError(
      `OID must be dotted decimal with at least two arcs, got "${dotted}"`,
    );
  }
  const arcs = dotted.split(".").map((a) => BigInt(a));
  if (arcs[0] > 2n || (arcs[0] < 2n && arcs[1] > 39n)) {
    throw new RangeError(`OID "${dotted}" has an invalid first or second arc`);
  }
  const body: number[] = [...base128(arcs[0] * 40n + arcs[1])];
  for (const arc of arcs.slice(2)) body.push(...base128(arc));
  return tlv(Tag.OID, new Uint8Array(body));
}

/** BIT STRING with `unusedBits` (0–7) padding bits in the last octet. */
export function bitString(bits: Uint8Array, unusedBits = 0): Bytes {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7) {
    throw new RangeError(
      `BIT STRING unused bits must be 0..7, got ${unusedBits}`,
    );
  }
  if (bits.length === 0 && unusedBits !== 0) {
    throw new RangeError("an empty BIT STRING cannot have unused bits");
  }
  return tlv(Tag.BIT_STRING, concat(new Uint8Array([unusedBits]), bits));
}

/**
 * BIT STRING for a NamedBitList (e.g. X.509 KeyUsage) with the given bit
 * positions set (bit 0 is the most significant bit of the first octet).
 * Trailing zero bits are dropped as DER requires (X.690 §11.2.2).
 */
export function namedBits(positions: number[]): Bytes {
  if (positions.length === 0) return bitString(new Uint8Array());
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0) {
      throw new RangeError(`bad bit position ${p}`);
    }
  }
  const highest = Math.max(...positions);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const p of positions) bytes[p >> 3] |= 0x80 >> (p & 7);
  return bitString(bytes, 7 - (highest & 7));
}

/** OCTET STRING. */
export function octetString(bytes: Uint8Array): Bytes {
  return tlv(Tag.OCTET_STRING, bytes);
}

/** UTF8String. */
export function utf8String(text: string): Bytes {
  return tlv(Tag.UTF8_STRING, utf8(text));
}

/** PrintableString; throws if `text` has characters outside its set. */
export function printableString(text: string): Bytes {
  if (!PRINTABLE_RE.test(text)) {
    throw new RangeError(
      `"${text}" has characters not allowed in a PrintableString`,
    );
  }
  return tlv(Tag.PRINTABLE_STRING, utf8(text));
}

/** IA5String (ASCII); throws on non-ASCII text. */
export function ia5String(text: string): Bytes {
  if (!IA5_RE.test(text)) {
    throw new RangeError(`"${text}" is not ASCII (IA5String)`);
  }
  return tlv(Tag.IA5_STRING, utf8(text));
}

/** UTCTime `YYMMDDHHMMSSZ` (whole seconds, UTC); only for 1950–2049. */
export function utcTime(date: Date): Bytes {
  const year = validDate(date).getUTCFullYear();
  if (year < UTC_TIME_FIRST_YEAR || year >= UTC_TIME_END_YEAR) {
    throw new RangeError(`UTCTime covers 1950–2049, got year ${year}`);
  }
  return tlv(Tag.UTC_TIME, utf8(timeDigits(date).slice(2) + "Z"));
}

/** GeneralizedTime `YYYYMMDDHHMMSSZ` (whole seconds, UTC). */
export function generalizedTime(date: Date): Bytes {
  const year = validDate(date).getUTCFullYear();
  if (year < 0 || year > 9999) {
    throw new RangeError(`GeneralizedTime needs a 4-digit year, got ${year}`);
  }
  return tlv(Tag.GENERALIZED_TIME, utf8(timeDigits(date) + "Z"));
}

/** X.509 `Time`: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function x509Time(date: Date): Bytes {
  const year = validDate(date).getUTCFullYear();
  return year >= UTC_TIME_FIRST_YEAR && year < UTC_TIME_END_YEAR
    ? utcTime(date)
    : generalizedTime(date);
}

/** `[n] EXPLICIT`: wraps a complete encoding in a constructed context tag. */
export function explicit(tagNumber: number, encoded: Uint8Array): Bytes {
  return tlv(contextTag(tagNumber, true), encoded);
}

/**
 * `[n] IMPLICIT`: a context tag around raw content octets. Pass
 * `constructed = true` when the underlying type is constructed (SEQUENCE, SET).
 */
export function implicit(
  tagNumber: number,
  content: Uint8Array,
  constructed = false,
): Bytes {
  return tlv(contextTag(tagNumber, constructed), content);
}

/** Identifier octet of a context-specific tag `[n]`. */
export function contextTag(tagNumber: number, constructed: boolean): number {
  if (
    !Number.isInteger(tagNumber) || tagNumber < 0 ||
    tagNumber > MAX_LOW_TAG_NUMBER
  ) {
    throw new RangeError(`context tag number must be 0..30, got ${tagNumber}`);
  }
  return CONTEXT_SPECIFIC | (constructed ? CONSTRUCTED : 0) | tagNumber;
}

// ---------------------------------------------------------------- reader

/** One decoded TLV: its identifier octet, content, and position in the input. */
export interface DerElement {
  /** Identifier octet (single-octet tags only). */
  tag: number;
  /** Content octets (a view into the input). */
  content: Uint8Array;
  /** The whole TLV including header (a view into the input). */
  encoded: Uint8Array;
  /** Offset just past this element in the input. */
  end: number;
}

/** Reads the TLV at `offset`; throws `SyntaxError` on malformed or non-DER input. */
export function readElement(input: Uint8Array, offset = 0): DerElement {
  if (offset >= input.length) {
    throw new SyntaxError(`DER: no element at offset ${offset}`);
  }
  const tag = input[offset];
  if ((tag & 0x1f) === 0x1f) {
    throw new SyntaxError(
      `DER: multi-octet tags are not supported (offset ${offset})`,
    );
  }
  const { length, headerLength } = readLength(input, offset + 1);
  const start = offset + 1 + headerLength;
  const end = start + length;
  if (end > input.length) {
    throw new SyntaxError(
      `DER: element at offset ${offset} needs ${length} bytes, only ${
        input.length - start
      } left`,
    );
  }
  return {
    tag,
    content: input.subarray(start, end),
    encoded: input.subarray(offset, end),
    end,
  };
}

/** Reads exactly one TLV covering all of `input` and checks its tag if given. */
export function readOnly(input: Uint8Array, expectedTag?: number): DerElement {
  const el = readElement(input);
  if (el.end !== input.length) {
    throw new SyntaxError(
      `DER: ${input.length - el.end} trailing bytes after element`,
    );
  }
  if (expectedTag !== undefined) expectTag(el, expectedTag);
  return el;
}

/** Splits constructed content (e.g. a SEQUENCE's) into its child elements. */
export function readChildren(content: Uint8Array): DerElement[] {
  const out: DerElement[] = [];
  for (let off = 0; off < content.length;) {
    const el = readElement(content, off);
    out.push(el);
    off = el.end;
  }
  return out;
}

/** Throws a `SyntaxError` naming both tags unless `el.tag === tag`. */
export function expectTag(el: DerElement, tag: number): void {
  if (el.tag !== tag) {
    throw new SyntaxError(
      `DER: expected tag 0x${hexByte(tag)}, found 0x${hexByte(el.tag)}`,
    );
  }
}

/** Decodes OBJECT IDENTIFIER content octets to dotted form. */
export function decodeOid(content: Uint8Array): string {
  if (content.length === 0) throw new SyntaxError("DER: empty OID");
  const arcs: bigint[] = [];
  let value = 0n;
  for (let i = 0; i < content.length; i++) {
    if (value === 0n && content[i] === 0x80) {
      throw new SyntaxError("DER: OID arc has a redundant leading octet");
    }
    value = (value << 7n) | BigInt(content[i] & 0x7f);
    if ((content[i] & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
    } else if (i === content.length - 1) {
      throw new SyntaxError("DER: OID ends inside an arc");
    }
  }
  const first = arcs[0] < 80n ? arcs[0] / 40n : 2n;
  return [first, arcs[0] - first * 40n, ...arcs.slice(1)].join(".");
}

/** Decodes INTEGER content octets as a non-negative value's unsigned bytes. */
export function decodeUnsignedInteger(content: Uint8Array): Uint8Array {
  if (content.length === 0) throw new SyntaxError("DER: empty INTEGER");
  if (content[0] & 0x80) throw new SyntaxError("DER: INTEGER is negative");
  if (content.length > 1 && content[0] === 0 && (content[1] & 0x80) === 0) {
    throw new SyntaxError("DER: INTEGER has a redundant leading zero");
  }
  return content[0] === 0 && content.length > 1 ? content.subarray(1) : content;
}

// ---------------------------------------------------------------- helpers

function readLength(
  input: Uint8Array,
  offset: number,
): { length: number; headerLength: number } {
  if (offset >= input.length) {
    throw new SyntaxError("DER: input ends before a length");
  }
  const first = input[offset];
  if (first < SHORT_LENGTH_LIMIT) return { length: first, headerLength: 1 };
  const count = first & 0x7f;
  if (count === 0) {
    throw new SyntaxError("DER: indefinite length is not allowed");
  }
  if (count > MAX_LENGTH_OCTETS) {
    throw new SyntaxError(`DER: length of ${count} octets is too long`);
  }
  if (offset + count >= input.length) {
    throw new SyntaxError("DER: input ends inside a length");
  }
  let length = 0;
  for (let i = 1; i <= count; i++) length = length * 256 + input[offset + i];
  if (length < SHORT_LENGTH_LIMIT || input[offset + 1] === 0) {
    throw new SyntaxError("DER: length is not minimally encoded");
  }
  return { length, headerLength: 1 + count };
}

function toUnsignedBytes(value: number | bigint | Uint8Array): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new RangeError(`INTEGER must be a safe integer, got ${value}`);
  }
  let n = BigInt(value);
  if (n < 0n) {
    throw new RangeError(`only non-negative INTEGERs are supported, got ${n}`);
  }
  const out: number[] = [];
  do {
    out.unshift(Number(n & 0xffn));
    n >>= 8n;
  } while (n > 0n);
  return new Uint8Array(out);
}

function unsignedIntegerContent(bytes: Uint8Array): Bytes {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.length === 0
    ? new Uint8Array([0])
    : bytes.subarray(start);
  return trimmed[0] & 0x80
    ? concat(new Uint8Array([0]), trimmed)
    : concat(trimmed);
}

function base128(value: bigint): number[] {
  const out = [Number(value & 0x7fn)];
  for (let n = value >> 7n; n > 0n; n >>= 7n) {
    out.unshift(Number(n & 0x7fn) | 0x80);
  }
  return out;
}

function validDate(date: Date): Date {
  if (Number.isNaN(date.getTime())) throw new RangeError("invalid Date");
  return date;
}

function timeDigits(date: Date): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return pad(date.getUTCFullYear(), 4) + pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) + pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds());
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function hexByte(n: number): string {
  return n.toString(16).padStart(2, "0");
}
