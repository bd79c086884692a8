/**
 * Relay wire frames (PROTOCOL.md §1): a tiny binary codec, sans-I/O. Every
 * frame starts with a version byte and a type byte. The relay's data path
 * only reads the fixed DATA header and rewrites the peer ID in place.
 * @module
 */

import { type Bytes, concat, u16, u32, utf8 } from "./bytes.ts";
import {
  CHALLENGE_LENGTH,
  DATA_HEADER_LENGTH,
  ERROR_HEADER_LENGTH,
  MAILBOX_KEY_LENGTH,
  MAILBOX_SIGNATURE_LENGTH,
  MAX_ERROR_REASON,
  RELAY_VERSION,
  SESSION_ID_LENGTH,
} from "./constants.ts";

/** Frame type bytes. */
export const FrameType = {
  /** relay → client: fresh challenge and the relay's frame cap. */
  CHALLENGE: 0x01,
  /** client → relay: mailbox public key and signature over the challenge. */
  REGISTER: 0x02,
  /** relay → client: registration accepted, with the bound session ID. */
  REGISTERED: 0x03,
  /** both ways: opaque payload for / from a peer. */
  DATA: 0x10,
  /** relay → client: a frame was refused (code, peer, frame number). */
  ERROR: 0x11,
} as const;

/** Relay error codes carried in ERROR frames (u16) and their names. */
export const RelayError = {
  /** Frame too short or its length does not match its type. */
  "malformed": 1,
  /** Version byte is not RELAY_VERSION. */
  "unsupported-version": 2,
  /** Type byte is not one a client may send. */
  "unknown-type": 3,
  /** DATA before a successful REGISTER. */
  "not-registered": 4,
  /** REGISTER with a bad key or signature. */
  "bad-registration": 5,
  /** A second REGISTER on a registered connection. */
  "already-registered": 6,
  /** Frame above the relay's cap (the connection is then closed with 1009). */
  "too-large": 7,
  /** Token bucket empty: slow down and retry. */
  "rate-limited": 8,
  /** Recipient not connected: retry later. */
  "peer-offline": 9,
  /** Recipient's send buffer is over the high-water mark: retry later. */
  "peer-busy": 10,
  /** A text frame where only binary frames are allowed. */
  "text-frame": 11,
} as const;

/** Name of a relay error code. */
export type RelayErrorName = keyof typeof RelayError;

const ERROR_NAMES = new Map<number, RelayErrorName>(
  Object.entries(RelayError).map(([k, v]) => [v, k as RelayErrorName]),
);

/** Name for a numeric relay error code, or `unknown-<n>`. */
export function relayErrorName(code: number): string {
  return ERROR_NAMES.get(code) ?? `unknown-${code}`;
}

/** WebSocket close codes used by the relay (PROTOCOL.md §1.6). */
export const CloseCode = {
  /** Normal close. */
  NORMAL: 1000,
  /** Relay shutting down. */
  GOING_AWAY: 1001,
  /** Repeated protocol abuse. */
  POLICY: 1008,
  /** Frame above the cap. */
  TOO_BIG: 1009,
  /** The same session ID registered on a newer connection. */
  REPLACED: 4000,
  /** No registration within the registration timeout. */
  REGISTER_TIMEOUT: 4001,
  /** The client did not offer the `relay.v1` subprotocol. */
  SUBPROTOCOL_REQUIRED: 4002,
  /** Registration failed (bad signature, bad key). */
  REGISTER_FAILED: 4003,
} as const;

/** Total CHALLENGE length: version, type, challenge, max frame u32. */
export const CHALLENGE_FRAME_LENGTH: number = 2 + CHALLENGE_LENGTH + 4;
/** Total REGISTER length: version, type, public key, signature. */
export const REGISTER_FRAME_LENGTH: number = 2 + MAILBOX_KEY_LENGTH +
  MAILBOX_SIGNATURE_LENGTH;
/** Total REGISTERED length: version, type, session ID. */
export const REGISTERED_FRAME_LENGTH: number = 2 + SESSION_ID_LENGTH;

/** A decoded frame as a client sees it. */
export type Frame =
  | { type: "challenge"; challenge: Bytes; maxFrame: number }
  | { type: "register"; publicKey: Bytes; signature: Bytes }
  | { type: "registered"; id: Bytes }
  | { type: "data"; peer: Bytes; frameNo: number; payload: Bytes }
  | {
    type: "error";
    code: number;
    name: string;
    peer: Bytes;
    frameNo: number;
    reason: string;
  };

/** Why a frame could not be decoded: a relay error name. */
export class FrameError extends Error {
  /** The relay error name to report. */
  readonly code: RelayErrorName;
  /** Creates a decode error. */
  constructor(code: RelayErrorName, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

function header(type: number): Bytes {
  return new Uint8Array([RELAY_VERSION, type]);
}

/** Encodes CHALLENGE. */
export function encodeChallenge(
  challenge: Uint8Array,
  maxFrame: number,
): Bytes {
  return concat(header(FrameType.CHALLENGE), challenge, u32(maxFrame));
}

/** Encodes REGISTER. */
export function encodeRegister(
  publicKey: Uint8Array,
  signature: Uint8Array,
): Bytes {
  return concat(header(FrameType.REGISTER), publicKey, signature);
}

/** Encodes REGISTERED. */
export function encodeRegistered(id: Uint8Array): Bytes {
  return concat(header(FrameType.REGISTERED), id);
}

/** The DATA header alone (version, type, peer, frame number), for a sender that frames the payload itself. */
export function encodeDataHeader(peer: Uint8Array, frameNo: number): Bytes {
  const out = new Uint8Array(DATA_HEADER_LENGTH);
  out[0] = RELAY_VERSION;
  out[1] = FrameType.DATA;
  out.set(peer, 2);
  new DataView(out.buffer).setUint32(2 + SESSION_ID_LENGTH, frameNo >>> 0);
  return out;
}

/** Encodes DATA (the header plus payload in one new buffer). */
export function encodeData(
  peer: Uint8Array,
  frameNo: number,
  payload: Uint8Array,
): Bytes {
  const out = new Uint8Array(DATA_HEADER_LENGTH + payload.length);
  out[0] = RELAY_VERSION;
  out[1] = FrameType.DATA;
  out.set(peer, 2);
  new DataView(out.buffer).setUint32(2 + SESSION_ID_LENGTH, frameNo >>> 0);
  out.set(payload, DATA_HEADER_LENGTH);
  return out;
}

/** Encodes ERROR; the reason is truncated to MAX_ERROR_REASON bytes. */
export function encodeError(
  code: RelayErrorName,
  peer: Uint8Array | undefined,
  frameNo: number,
  reason: string,
): Bytes {
  let text = utf8(reason);
  if (text.length > MAX_ERROR_REASON) text = text.slice(0, MAX_ERROR_REASON);
  return concat(
    header(FrameType.ERROR),
    u16(RelayError[code]),
    peer ?? new Uint8Array(SESSION_ID_LENGTH),
    u32(frameNo >>> 0),
    text,
  );
}

/** Decodes any frame; throws FrameError naming the relay error code. */
export function decodeFrame(bytes: Bytes): Frame {
  if (bytes.length < 2) {
    throw new FrameError("malformed", "frame shorter than 2 bytes");
  }
  if (bytes[0] !== RELAY_VERSION) {
    throw new FrameError(
      "unsupported-version",
      `version ${bytes[0]} (expected ${RELAY_VERSION})`,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (bytes[1]) {
    case FrameType.CHALLENGE:
      expectLength(bytes, CHALLENGE_FRAME_LENGTH, "CHALLENGE");
      return {
        type: "challenge",
        challenge: bytes.slice(2, 2 + CHALLENGE_LENGTH),
        maxFrame: dv.getUint32(2 + CHALLENGE_LENGTH),
      };
    case FrameType.REGISTER:
      expectLength(bytes, REGISTER_FRAME_LENGTH, "REGISTER");
      return {
        type: "register",
        publicKey: bytes.slice(2, 2 + MAILBOX_KEY_LENGTH),
        signature: bytes.slice(2 + MAILBOX_KEY_LENGTH),
      };
    case FrameType.REGISTERED:
      expectLength(bytes, REGISTERED_FRAME_LENGTH, "REGISTERED");
      return { type: "registered", id: bytes.slice(2) };
    case FrameType.DATA:
      if (bytes.length < DATA_HEADER_LENGTH) {
        throw new FrameError(
          "malformed",
          `DATA shorter than its ${DATA_HEADER_LENGTH}-byte header`,
        );
      }
      return {
        type: "data",
        peer: bytes.slice(2, 2 + SESSION_ID_LENGTH),
        frameNo: dv.getUint32(2 + SESSION_ID_LENGTH),
        payload: bytes.subarray(DATA_HEADER_LENGTH),
      };
    case FrameType.ERROR: {
      if (bytes.length < ERROR_HEADER_LENGTH) {
        throw new FrameError("malformed", "ERROR shorter than its header");
      }
      const code = dv.getUint16(2);
      return {
        type: "error",
        code,
        name: relayErrorName(code),
        peer: bytes.slice(4, 4 + SESSION_ID_LENGTH),
        frameNo: dv.getUint32(4 + SESSION_ID_LENGTH),
        reason: new TextDecoder("utf-8", { fatal: false }).decode(
          bytes.subarray(ERROR_HEADER_LENGTH),
        ),
      };
    }
    default:
      throw new FrameError(
        "unknown-type",
        `frame type 0x${bytes[1].toString(16)}`,
      );
  }
}

function expectLength(bytes: Uint8Array, length: number, name: string): void {
  if (bytes.length !== length) {
    throw new FrameError(
      "malformed",
      `${name} must be ${length} bytes, got ${bytes.length}`,
    );
  }
}
