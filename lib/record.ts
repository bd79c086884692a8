/**
 * The record layer: traffic keys per epoch and direction, the RECORD packet
 * (cleartext header + AES-256-GCM ciphertext), nonces, and the padded inner
 * plaintext. Pure codecs plus thin AEAD calls; no session state.
 *
 * RECORD = ver(1)=1 | type(1)=0x04 | epoch u32 | counter u64 | ciphertext ‖ tag(16)
 * AAD    = header(14) ‖ senderId(16) ‖ recipientId(16)
 * nonce  = iv XOR (0^4 ‖ u64(counter))
 * inner  = innerType u8 | flags u8 | seq u64 | bodyLen u32 | body | [sig 64] | zeros
 * @module
 */

import { type Bytes, u32 } from "./bytes.ts";
import {
  E2E_VERSION,
  INNER_HEADER_LENGTH,
  MAX_BODY,
  MAX_E2E_PACKET,
  RECORD_HEADER_LENGTH,
  RECORD_TYPE,
  SESSION_ID_LENGTH,
} from "./constants.ts";
import { ProtocolError } from "./errors.ts";
import type { HandshakeRole } from "./handshake_result.ts";
import { readU32, readU64, writeU32, writeU64, xorU64 } from "./int_codec.ts";
import { isPaddedLength, paddedPlaintextLength } from "./padding.ts";
import {
  type AeadKey,
  andThen,
  type MaybePromise,
  type SessionPrimitives,
  webCryptoPrimitives,
} from "./primitives.ts";
import {
  AEAD_KEY_LENGTH,
  AEAD_NONCE_LENGTH,
  AEAD_TAG_LENGTH,
  deriveLabel,
  P256_SIGNATURE_LENGTH,
} from "./suite.ts";

/** Inner message types (first plaintext byte). */
export const InnerType = {
  /** Application data (reliable). */
  DATA: 1,
  /** Cover traffic, dropped after authentication (unreliable). */
  DUMMY: 2,
  /** Acknowledgement (unreliable, never acknowledged). */
  ACK: 3,
  /** Rekey request: new ephemeral + signature (reliable). */
  REKEY_INIT: 4,
  /** Rekey answer: new ephemeral + signature (reliable). */
  REKEY_RESP: 5,
  /** End of the conversation, always signed (reliable). */
  CLOSE: 6,
  /** Empty reliable message that only carries a chain signature. */
  CHECKPOINT: 7,
} as const;

/** One of the {@link InnerType} values. */
export type InnerTypeValue = typeof InnerType[keyof typeof InnerType];

/** Human names of inner types, for transcripts and errors. */
export const INNER_TYPE_NAMES: Record<number, string> = {
  1: "data",
  2: "dummy",
  3: "ack",
  4: "rekey-init",
  5: "rekey-resp",
  6: "close",
  7: "checkpoint",
};

/** Whether messages of `type` carry a seq, enter the hash chain and are acknowledged. */
export function isReliable(type: number): boolean {
  return type !== InnerType.DUMMY && type !== InnerType.ACK;
}

/** Flags bit 0: a 64-byte chain signature follows the body. */
export const FLAG_SIGNATURE = 0x01;

/** Direction of traffic, named by who sends. */
export type Direction = "i2r" | "r2i";

/** The direction in which `sender` sends. */
export function directionOf(sender: HandshakeRole): Direction {
  return sender === "initiator" ? "i2r" : "r2i";
}

/** AEAD key and IV of one direction in one epoch. */
export interface TrafficKeys {
  /** Epoch number (0 from the handshake master). */
  epoch: number;
  /** AES-256-GCM key held by the session's primitive provider (non-extractable with WebCrypto). */
  aead: AeadKey;
  /** 12-byte IV XORed with the counter to form nonces. */
  iv: Bytes;
}

/**
 * Derives the traffic keys of `direction` in `epoch` from that epoch's master:
 * key = deriveLabel(master, sessionHash, "<d> key", u32(epoch), 32),
 * iv = deriveLabel(master, sessionHash, "<d> iv", u32(epoch), 12).
 * The key is imported by `primitives` (default: WebCrypto, non-extractable).
 */
export async function deriveTrafficKeys(
  master: CryptoKey,
  sessionHash: Bytes,
  direction: Direction,
  epoch: number,
  primitives: SessionPrimitives = webCryptoPrimitives,
): Promise<TrafficKeys> {
  const ctx = u32(epoch);
  const [raw, iv] = await Promise.all([
    deriveLabel(master, sessionHash, `${direction} key`, ctx, AEAD_KEY_LENGTH),
    deriveLabel(master, sessionHash, `${direction} iv`, ctx, AEAD_NONCE_LENGTH),
  ]);
  try {
    return { epoch, aead: await primitives.importAeadKey(raw), iv };
  } finally {
    raw.fill(0);
  }
}

/** Cleartext RECORD header fields. */
export interface RecordHeader {
  /** Key epoch the record is sealed under. */
  epoch: number;
  /** Per-direction 64-bit message counter (never reused). */
  counter: bigint;
}

/** Encodes the 14-byte RECORD header. */
export function encodeRecordHeader(epoch: number, counter: bigint): Bytes {
  const h = new Uint8Array(RECORD_HEADER_LENGTH);
  writeRecordHeader(h, epoch, counter);
  return h;
}

/** Writes the RECORD header into the first 14 bytes of `out`. */
function writeRecordHeader(
  out: Uint8Array,
  epoch: number,
  counter: bigint,
): void {
  out[0] = E2E_VERSION;
  out[1] = RECORD_TYPE;
  writeU32(out, 2, epoch);
  writeU64(out, 6, counter);
}

/**
 * Parses the RECORD header of `packet`; throws `malformed` (wrong type,
 * impossible length) or `unsupported-version`.
 */
export function decodeRecordHeader(packet: Uint8Array): RecordHeader {
  if (packet.length < RECORD_HEADER_LENGTH + AEAD_TAG_LENGTH) {
    throw new ProtocolError("malformed", "record shorter than header + tag");
  }
  if (packet.length > MAX_E2E_PACKET) {
    throw new ProtocolError("malformed", "record longer than a relay frame");
  }
  if (packet[0] !== E2E_VERSION) {
    throw new ProtocolError("unsupported-version", `version ${packet[0]}`);
  }
  if (packet[1] !== RECORD_TYPE) {
    throw new ProtocolError(
      "malformed",
      `packet type ${packet[1]} is not RECORD`,
    );
  }
  return { epoch: readU32(packet, 2), counter: readU64(packet, 6) };
}

/** AAD of a record: header ‖ senderId ‖ recipientId. */
export function recordAad(
  header: Uint8Array,
  senderId: Uint8Array,
  recipientId: Uint8Array,
): Bytes {
  if (
    senderId.length !== SESSION_ID_LENGTH ||
    recipientId.length !== SESSION_ID_LENGTH
  ) {
    throw new RangeError("relay session IDs must be 16 bytes");
  }
  const aad = new Uint8Array(RECORD_HEADER_LENGTH + 2 * SESSION_ID_LENGTH);
  aad.set(header.subarray(0, RECORD_HEADER_LENGTH));
  aad.set(senderId, RECORD_HEADER_LENGTH);
  aad.set(recipientId, RECORD_HEADER_LENGTH + SESSION_ID_LENGTH);
  return aad;
}

/** Placeholder header for building an AAD before the header is written into it. */
const EMPTY_HEADER = new Uint8Array(RECORD_HEADER_LENGTH);

/** Nonce = iv XOR (0^4 ‖ u64(counter)). */
export function recordNonce(iv: Uint8Array, counter: bigint): Bytes {
  const n = new Uint8Array(AEAD_NONCE_LENGTH);
  n.set(iv);
  xorU64(n, AEAD_NONCE_LENGTH - 8, counter);
  return n;
}

/** A decoded inner plaintext. */
export interface InnerMessage {
  /** Inner type ({@link InnerType}). */
  type: number;
  /** Reliable sequence number (1, 2, …), 0 for DUMMY and ACK. */
  seq: bigint;
  /** Message body. */
  body: Bytes;
  /** Chain signature over H_seq, when present. */
  signature?: Bytes;
}

/** Inner plaintext length before padding. */
export function innerLength(bodyLen: number, signed: boolean): number {
  return INNER_HEADER_LENGTH + bodyLen + (signed ? P256_SIGNATURE_LENGTH : 0);
}

/** Encodes and pads an inner plaintext to its bucket (zero padding). */
export function encodeInner(msg: InnerMessage): Bytes {
  if (msg.body.length > MAX_BODY) {
    throw new ProtocolError(
      "too-large",
      `body of ${msg.body.length} bytes exceeds ${MAX_BODY}`,
    );
  }
  const signed = msg.signature !== undefined;
  if (signed && msg.signature!.length !== P256_SIGNATURE_LENGTH) {
    throw new RangeError("signature must be 64 bytes");
  }
  const len = innerLength(msg.body.length, signed);
  const out = new Uint8Array(paddedPlaintextLength(len));
  out[0] = msg.type;
  out[1] = signed ? FLAG_SIGNATURE : 0;
  writeU64(out, 2, msg.seq);
  writeU32(out, 10, msg.body.length);
  out.set(msg.body, INNER_HEADER_LENGTH);
  if (signed) out.set(msg.signature!, INNER_HEADER_LENGTH + msg.body.length);
  return out;
}

/**
 * Strictly decodes a padded inner plaintext: known type, only known flags,
 * seq present exactly for reliable types, no signature on DUMMY/ACK, lengths
 * inside the plaintext, plaintext length equal to a bucket, padding all zero.
 * Throws `malformed`.
 */
export function decodeInner(pt: Bytes): InnerMessage {
  const bad = (why: string): never => {
    throw new ProtocolError("malformed", `inner plaintext: ${why}`);
  };
  if (!isPaddedLength(pt.length)) bad("length is not a padding bucket");
  const type = pt[0];
  if (type < InnerType.DATA || type > InnerType.CHECKPOINT) {
    bad(`unknown type ${type}`);
  }
  const flags = pt[1];
  if ((flags & ~FLAG_SIGNATURE) !== 0) bad(`unknown flags ${flags}`);
  const signed = (flags & FLAG_SIGNATURE) !== 0;
  const seq = readU64(pt, 2);
  const reliable = isReliable(type);
  if (reliable && seq === 0n) bad("reliable message without seq");
  if (!reliable && seq !== 0n) bad("unreliable message with seq");
  if (!reliable && signed) bad("signature on an unreliable message");
  const bodyLen = readU32(pt, 10);
  if (bodyLen > MAX_BODY) bad("body length too large");
  const end = innerLength(bodyLen, signed);
  if (end > pt.length) bad("body runs past the plaintext");
  for (let i = end; i < pt.length; i++) {
    if (pt[i] !== 0) bad("non-zero padding");
  }
  if (paddedPlaintextLength(end) !== pt.length) bad("padded beyond its bucket");
  const body = pt.slice(INNER_HEADER_LENGTH, INNER_HEADER_LENGTH + bodyLen);
  const msg: InnerMessage = { type, seq, body };
  if (signed) {
    msg.signature = pt.slice(INNER_HEADER_LENGTH + bodyLen, end);
  }
  return msg;
}

/**
 * Seals `plaintext` as a RECORD with `keys` and `counter`; returns the
 * packet, synchronously when the key's provider is synchronous.
 */
export function sealRecordEager(
  keys: TrafficKeys,
  counter: bigint,
  plaintext: Bytes,
  senderId: Uint8Array,
  recipientId: Uint8Array,
): MaybePromise<Bytes> {
  const aad = recordAad(EMPTY_HEADER, senderId, recipientId);
  writeRecordHeader(aad, keys.epoch, counter);
  const sealed = keys.aead.seal(recordNonce(keys.iv, counter), plaintext, aad);
  return andThen(sealed, (ct) => {
    const packet = new Uint8Array(RECORD_HEADER_LENGTH + ct.length);
    packet.set(aad.subarray(0, RECORD_HEADER_LENGTH));
    packet.set(ct, RECORD_HEADER_LENGTH);
    return packet;
  });
}

/**
 * Opens a RECORD whose header was decoded to `counter`: the padded inner
 * plaintext, or `null` when the tag does not verify; synchronously when the
 * key's provider is synchronous.
 */
export function openRecordEager(
  keys: TrafficKeys,
  packet: Uint8Array,
  counter: bigint,
  senderId: Uint8Array,
  recipientId: Uint8Array,
): MaybePromise<Bytes | null> {
  if (packet.length < RECORD_HEADER_LENGTH + AEAD_TAG_LENGTH) return null;
  return keys.aead.open(
    recordNonce(keys.iv, counter),
    packet.subarray(RECORD_HEADER_LENGTH),
    recordAad(packet, senderId, recipientId),
  );
}

/** Seals `plaintext` as a RECORD with `keys` and `counter`; returns the packet. */
export async function sealRecord(
  keys: TrafficKeys,
  counter: bigint,
  plaintext: Bytes,
  senderId: Uint8Array,
  recipientId: Uint8Array,
): Promise<Bytes> {
  return await sealRecordEager(keys, counter, plaintext, senderId, recipientId);
}

/** Opens a RECORD whose header was decoded to `counter`; throws `decrypt-failed`. */
export async function openRecord(
  keys: TrafficKeys,
  packet: Uint8Array,
  counter: bigint,
  senderId: Uint8Array,
  recipientId: Uint8Array,
): Promise<Bytes> {
  const pt = await openRecordEager(
    keys,
    packet,
    counter,
    senderId,
    recipientId,
  );
  if (pt === null) {
    throw new ProtocolError("decrypt-failed", "authentication tag mismatch");
  }
  return pt;
}
