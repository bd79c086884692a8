/**
 * The record layer: traffic keys per epoch and direction, the RECORD packet
 * (cleartext header + AES-256-GCM ciphertext), nonces, and the padded inner
 * plaintext. Pure codecs plus thin AEAD calls; no session state.
 *
 * RECORD = ver(1)=1 | type(1)=0x04 | epoch u32 | counter u64 | ciphertext ‖ tag(16)
 * AAD    = header(14) ‖ senderId(16) ‖ recipientId(16)
 * nonce  = iv XOR (0^4 ‖ u64(counter))
 * inner  = message+ | zeros          (zeros up to the padding bucket)
 * message = innerType u8 | flags u8 | seq u64 | bodyLen u32 | body | [sig 64]
 * A record holds one message of any type, or 2..MAX_MESSAGES_PER_RECORD DATA
 * messages with consecutive seqs (coalescing); a zero type byte starts the
 * padding.
 * @module
 */

import { type Bytes, u32 } from "./bytes.ts";
import {
  ACK_BODY_LENGTH,
  E2E_VERSION,
  INNER_HEADER_LENGTH,
  MAX_BODY,
  MAX_E2E_PACKET,
  MAX_MESSAGES_PER_RECORD,
  RECORD_HEADER_LENGTH,
  RECORD_TYPE,
  REKEY_BODY_LENGTH,
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
  type SecretKey,
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

/**
 * Body length every message of a type must have (PROTOCOL.md §2.2.3), by
 * inner type; DATA (index 1) may be 0..MAX_BODY.
 */
const BODY_LENGTH: readonly (number | undefined)[] = [
  undefined,
  undefined, // DATA
  0, // DUMMY
  ACK_BODY_LENGTH,
  REKEY_BODY_LENGTH, // REKEY_INIT
  REKEY_BODY_LENGTH, // REKEY_RESP
  0, // CLOSE
  0, // CHECKPOINT
];

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
  master: SecretKey,
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
  return encodeInnerMany([msg]);
}

/** Inner plaintext length of `msgs` before padding. */
export function innerLengthMany(msgs: readonly InnerMessage[]): number {
  let len = 0;
  for (const m of msgs) {
    len += innerLength(m.body.length, m.signature !== undefined);
  }
  return len;
}

/**
 * Encodes one message, or several DATA messages with consecutive seqs
 * (coalescing), and pads to the bucket; throws `too-large` or RangeError.
 */
export function encodeInnerMany(msgs: readonly InnerMessage[]): Bytes {
  if (msgs.length === 0 || msgs.length > MAX_MESSAGES_PER_RECORD) {
    throw new RangeError(
      `a record holds 1..${MAX_MESSAGES_PER_RECORD} messages`,
    );
  }
  for (let i = 0; i < msgs.length; i++) {
    const msg = msgs[i];
    if (msg.body.length > MAX_BODY) {
      throw new ProtocolError(
        "too-large",
        `body of ${msg.body.length} bytes exceeds ${MAX_BODY}`,
      );
    }
    if (
      msg.signature !== undefined &&
      msg.signature.length !== P256_SIGNATURE_LENGTH
    ) {
      throw new RangeError("signature must be 64 bytes");
    }
    if (
      msgs.length > 1 &&
      (msg.type !== InnerType.DATA ||
        (i > 0 && msg.seq !== msgs[i - 1].seq + 1n))
    ) {
      throw new RangeError(
        "only DATA messages with consecutive seqs share a record",
      );
    }
  }
  const out = new Uint8Array(paddedPlaintextLength(innerLengthMany(msgs)));
  let at = 0;
  for (const msg of msgs) {
    const signed = msg.signature !== undefined;
    out[at] = msg.type;
    out[at + 1] = signed ? FLAG_SIGNATURE : 0;
    writeU64(out, at + 2, msg.seq);
    writeU32(out, at + 10, msg.body.length);
    out.set(msg.body, at + INNER_HEADER_LENGTH);
    if (signed) {
      out.set(msg.signature!, at + INNER_HEADER_LENGTH + msg.body.length);
    }
    at += innerLength(msg.body.length, signed);
  }
  return out;
}

/**
 * Strictly decodes a padded inner plaintext holding exactly one message;
 * throws `malformed` (see {@link decodeInnerAll}), also when it holds several.
 */
export function decodeInner(pt: Bytes): InnerMessage {
  const msgs = decodeInnerAll(pt);
  if (msgs.length !== 1) {
    throw new ProtocolError("malformed", "inner plaintext: several messages");
  }
  return msgs[0];
}

/**
 * Strictly decodes a padded inner plaintext: each message of a known type,
 * only known flags, seq present exactly for reliable types, no signature on
 * DUMMY/ACK, the body length its type requires, lengths inside the plaintext; several messages only when all
 * are DATA with consecutive seqs (at most MAX_MESSAGES_PER_RECORD); then
 * padding all zero, and the plaintext length equal to the smallest bucket.
 * Throws `malformed`. Bodies and signatures are views into `pt`.
 */
export function decodeInnerAll(pt: Bytes): InnerMessage[] {
  const bad = (why: string): never => {
    throw new ProtocolError("malformed", `inner plaintext: ${why}`);
  };
  if (!isPaddedLength(pt.length)) bad("length is not a padding bucket");
  const msgs: InnerMessage[] = [];
  let at = 0;
  while (at < pt.length && pt[at] !== 0) {
    if (msgs.length === MAX_MESSAGES_PER_RECORD) bad("too many messages");
    if (at + INNER_HEADER_LENGTH > pt.length) {
      bad("message header runs past the plaintext");
    }
    const type = pt[at];
    if (type > InnerType.CHECKPOINT) bad(`unknown type ${type}`);
    const flags = pt[at + 1];
    if ((flags & ~FLAG_SIGNATURE) !== 0) bad(`unknown flags ${flags}`);
    const signed = (flags & FLAG_SIGNATURE) !== 0;
    const seq = readU64(pt, at + 2);
    const reliable = isReliable(type);
    if (reliable && seq === 0n) bad("reliable message without seq");
    if (!reliable && seq !== 0n) bad("unreliable message with seq");
    if (!reliable && signed) bad("signature on an unreliable message");
    const bodyLen = readU32(pt, at + 10);
    if (bodyLen > MAX_BODY) bad("body length too large");
    const want = BODY_LENGTH[type];
    if (want !== undefined && bodyLen !== want) {
      bad(`${INNER_TYPE_NAMES[type]} body of ${bodyLen} bytes, not ${want}`);
    }
    const end = at + innerLength(bodyLen, signed);
    if (end > pt.length) bad("body runs past the plaintext");
    // Views into `pt` (no copy per message): the plaintext belongs to the caller.
    const body = pt.subarray(
      at + INNER_HEADER_LENGTH,
      at + INNER_HEADER_LENGTH + bodyLen,
    );
    const msg: InnerMessage = { type, seq, body };
    if (signed) {
      msg.signature = pt.subarray(at + INNER_HEADER_LENGTH + bodyLen, end);
    }
    if (msgs.length > 0) {
      const prev = msgs[msgs.length - 1];
      if (prev.type !== InnerType.DATA || type !== InnerType.DATA) {
        bad("only DATA messages share a record");
      }
      if (seq !== prev.seq + 1n) bad("seqs in a record are not consecutive");
    }
    msgs.push(msg);
    at = end;
  }
  if (msgs.length === 0) bad("unknown type 0");
  for (let i = at; i < pt.length; i++) {
    if (pt[i] !== 0) bad("non-zero padding");
  }
  if (paddedPlaintextLength(at) !== pt.length) bad("padded beyond its bucket");
  return msgs;
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
