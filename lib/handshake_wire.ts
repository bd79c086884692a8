/**
 * Byte layouts of the three handshake messages (PROTOCOL.md §2.1 Messages):
 * HS1's suite offers, the cleartext prefix of HS2, the sealed proofs, and the
 * padding that puts every handshake message into a record bucket (§1.7), so
 * the relay sees handshake frames in the same sizes as records. Pure
 * functions; the state machines are in `lib/handshake.ts`.
 *
 * ```
 * HS1  ver type randomI[32] n offers…(suite u16 ‖ len u8 ‖ eI) zeros…
 * HS2  ver type suite u16 eR randomR[32] ‖ AEAD(proof_R ‖ zeros)
 * HS3  ver type ‖ AEAD(proof_I ‖ zeros)
 * proof = u16 spki_len ‖ spki ‖ sig(64) ‖ mac(32)
 * ```
 * @module
 */

import { type Bytes, view } from "./bytes.ts";
import {
  BUCKET_OVERHEAD,
  E2E_VERSION,
  MAX_SPKI_LENGTH,
  MAX_SUITE_OFFERS,
  RELAY_DATA_HEADER_LENGTH,
} from "./constants.ts";
import { ProtocolError } from "./errors.ts";
import { bucketFor } from "./padding.ts";
import { AEAD_TAG_LENGTH, HASH_LENGTH, SUITES } from "./suite.ts";

/** Packet type of handshake message 1 (initiator → responder). */
export const PACKET_HS1 = 0x01;
/** Packet type of handshake message 2 (responder → initiator). */
export const PACKET_HS2 = 0x02;
/** Packet type of handshake message 3 (initiator → responder). */
export const PACKET_HS3 = 0x03;
/** Packet type of a transport record (handled by lib/session.ts, never here). */
export const PACKET_RECORD = 0x04;
/** Length of the handshake randoms (randomI, randomR). */
export const HANDSHAKE_RANDOM_LENGTH = 32;
/** HS1 bytes before the offers: ver(1) type(1) randomI(32) n(1). */
export const HS1_HEADER_LENGTH = 2 + HANDSHAKE_RANDOM_LENGTH + 1;
/** Signature length of both suites (P1363 ECDSA P-256, Ed25519). */
export const HANDSHAKE_SIGNATURE_LENGTH = 64;
/** Proof bytes besides the SPKI: spki_len(2) sig(64) mac(32). */
export const PROOF_OVERHEAD = 2 + HANDSHAKE_SIGNATURE_LENGTH + HASH_LENGTH;

/** One key share of HS1. */
export interface Offer {
  /** Suite wire id. */
  suite: number;
  /** The initiator's ephemeral public key for it. */
  ephemeral: Bytes;
}

/** A parsed HS1. */
export interface ParsedHs1 {
  /** randomI. */
  random: Bytes;
  /** Offers in the initiator's preference order (unknown suites included). */
  offers: Offer[];
}

/** A decrypted, unpadded proof. */
export interface Proof {
  /** DER SPKI of the prover's identity. */
  spki: Bytes;
  /** Signature over its transcript. */
  signature: Bytes;
  /** Key-confirmation MAC. */
  mac: Bytes;
}

function malformed(message: string): ProtocolError {
  return new ProtocolError("malformed", message);
}

/**
 * Length of a handshake packet whose unpadded content is `contentLength`
 * bytes: the smallest record bucket (whole relay frame, lib/padding.ts)
 * holding content + the relay's 22-byte DATA header, minus that header.
 */
export function paddedHandshakeLength(contentLength: number): number {
  const frame = contentLength + RELAY_DATA_HEADER_LENGTH;
  // bucketFor(x) is the smallest bucket ≥ x + BUCKET_OVERHEAD.
  return bucketFor(Math.max(0, frame - BUCKET_OVERHEAD)) -
    RELAY_DATA_HEADER_LENGTH;
}

/** True when every byte of `b` from `from` on is zero. */
function zeroFrom(b: Bytes, from: number): boolean {
  for (let i = from; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Builds HS1: header, randomI, the offers in preference order, zero padding. */
export function encodeHs1(random: Bytes, offers: readonly Offer[]): Bytes {
  if (offers.length < 1 || offers.length > MAX_SUITE_OFFERS) {
    throw new RangeError(`1..${MAX_SUITE_OFFERS} suite offers`);
  }
  let content = HS1_HEADER_LENGTH;
  for (const o of offers) content += 3 + o.ephemeral.length;
  // One zeroed buffer of the padded length, written in place.
  const out = new Uint8Array(paddedHandshakeLength(content));
  out[0] = E2E_VERSION;
  out[1] = PACKET_HS1;
  out.set(random, 2);
  out[HS1_HEADER_LENGTH - 1] = offers.length;
  let at = HS1_HEADER_LENGTH;
  for (const o of offers) {
    out[at] = o.suite >> 8;
    out[at + 1] = o.suite & 0xff;
    out[at + 2] = o.ephemeral.length;
    out.set(o.ephemeral, at + 3);
    at += 3 + o.ephemeral.length;
  }
  return out;
}

/**
 * Parses HS1 after its version/type header was checked: the offer count
 * (1..MAX_SUITE_OFFERS), each offer inside the message, no suite twice, a
 * known suite's key of its exact length, zero padding, and the minimal
 * bucket. Throws `malformed`.
 */
export function parseHs1(hs1: Bytes): ParsedHs1 {
  if (hs1.length < HS1_HEADER_LENGTH) {
    throw malformed("HS1 shorter than its header");
  }
  const n = hs1[HS1_HEADER_LENGTH - 1];
  if (n < 1 || n > MAX_SUITE_OFFERS) {
    throw malformed(`HS1 offers ${n} suites (1..${MAX_SUITE_OFFERS})`);
  }
  const offers: Offer[] = [];
  let at = HS1_HEADER_LENGTH;
  for (let i = 0; i < n; i++) {
    if (at + 3 > hs1.length) throw malformed("HS1 offer runs past the end");
    const suite = view(hs1).getUint16(at);
    const len = hs1[at + 2];
    at += 3;
    if (at + len > hs1.length) throw malformed("HS1 key runs past the end");
    if (offers.some((o) => o.suite === suite)) {
      throw malformed(`HS1 offers suite 0x${hex4(suite)} twice`);
    }
    const known = SUITES.get(suite);
    if (known && len !== known.pointLength) {
      throw malformed(
        `HS1 key for suite 0x${hex4(suite)} must be ${known.pointLength} bytes`,
      );
    }
    offers.push({ suite, ephemeral: hs1.slice(at, at + len) });
    at += len;
  }
  if (hs1.length !== paddedHandshakeLength(at)) {
    throw malformed(
      `HS1 must be ${paddedHandshakeLength(at)} bytes, got ${hs1.length}`,
    );
  }
  if (!zeroFrom(hs1, at)) throw malformed("HS1 padding is not zero");
  return {
    random: hs1.slice(2, 2 + HANDSHAKE_RANDOM_LENGTH),
    offers,
  };
}

/** HS2's cleartext prefix: ver ‖ type ‖ suite ‖ eR ‖ randomR (also its AEAD AAD). */
export function encodeHs2Prefix(
  suite: number,
  ephemeral: Bytes,
  random: Bytes,
): Bytes {
  const out = new Uint8Array(4 + ephemeral.length + random.length);
  out[0] = E2E_VERSION;
  out[1] = PACKET_HS2;
  out[2] = suite >> 8;
  out[3] = suite & 0xff;
  out.set(ephemeral, 4);
  out.set(random, 4 + ephemeral.length);
  return out;
}

/** Length of HS2's prefix for a suite's point length. */
export function hs2PrefixLength(pointLength: number): number {
  return 4 + pointLength + HANDSHAKE_RANDOM_LENGTH;
}

/**
 * The proof plaintext, zero-padded so that the whole message (`header`
 * cleartext bytes + plaintext + GCM tag) is a padded handshake length.
 */
export function encodeProof(
  header: number,
  spki: Bytes,
  signature: Bytes,
  mac: Bytes,
): Bytes {
  const length = 2 + spki.length + signature.length + mac.length;
  const total = paddedHandshakeLength(header + length + AEAD_TAG_LENGTH);
  const out = new Uint8Array(total - header - AEAD_TAG_LENGTH);
  out[0] = spki.length >> 8;
  out[1] = spki.length & 0xff;
  out.set(spki, 2);
  out.set(signature, 2 + spki.length);
  out.set(mac, 2 + spki.length + signature.length);
  return out;
}

/** Bounds of a message sealing a proof after `header` cleartext bytes; throws `malformed` outside them. */
export function checkSealedLength(
  msg: Bytes,
  header: number,
  name: string,
): void {
  const min = header + PROOF_OVERHEAD + 1 + AEAD_TAG_LENGTH;
  const max = paddedHandshakeLength(
    header + PROOF_OVERHEAD + MAX_SPKI_LENGTH + AEAD_TAG_LENGTH,
  );
  if (msg.length < min || msg.length > max) {
    throw malformed(`${name} length ${msg.length} outside ${min}..${max}`);
  }
}

/**
 * Parses a decrypted proof of a message of `total` bytes with `header`
 * cleartext bytes: spki_len in 1..MAX_SPKI_LENGTH, the proof inside the
 * plaintext, zero padding, the minimal bucket. Throws `malformed`.
 */
export function parseProof(plain: Bytes, header: number, total: number): Proof {
  if (plain.length < 2) throw malformed("proof shorter than its length field");
  const spkiLength = view(plain).getUint16(0);
  if (spkiLength === 0 || spkiLength > MAX_SPKI_LENGTH) {
    throw malformed(`spki length ${spkiLength} outside 1..${MAX_SPKI_LENGTH}`);
  }
  const sigAt = 2 + spkiLength;
  const macAt = sigAt + HANDSHAKE_SIGNATURE_LENGTH;
  const end = macAt + HASH_LENGTH;
  if (end > plain.length) {
    throw malformed("proof length does not match its spki length");
  }
  if (!zeroFrom(plain, end)) throw malformed("proof padding is not zero");
  if (total !== paddedHandshakeLength(header + end + AEAD_TAG_LENGTH)) {
    throw malformed("proof padded past its minimal bucket");
  }
  return {
    spki: plain.slice(2, sigAt),
    signature: plain.slice(sigAt, macAt),
    mac: plain.slice(macAt, end),
  };
}

/** Four lower-case hex digits. */
export function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}
