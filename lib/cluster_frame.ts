/**
 * Inter-node messages of a relay cluster (PROTOCOL.md §1.8), sans-I/O: what
 * relay nodes publish to each other on Redis sharded pub/sub. One channel
 * per session ID ({@link channelFor}); three kinds of message:
 *
 * - DATA: a relay DATA frame, already stamped with the sender's ID, for the
 *   connection that holds the channel's ID;
 * - ERROR: a relay ERROR frame for the connection holding the channel's ID
 *   (a refusal of a frame it sent to another node);
 * - CLAIM: "ID X registered on node N at time T with nonce R": the older
 *   holder of X on any other node is displaced (close 4000).
 *
 * Clients never see these bytes: forwarding across nodes is transparent.
 * @module
 */

import { concat, u64, utf8, view } from "./bytes.ts";
import {
  DATA_HEADER_LENGTH,
  ERROR_HEADER_LENGTH,
  RELAY_VERSION,
  SESSION_ID_LENGTH,
} from "./constants.ts";
import { FrameType } from "./relay_frame.ts";

/** Version byte of every inter-node message. */
export const BUS_VERSION = 1;

/** Prefix of every cluster channel: `relay.v1:{<32 hex>}`. */
export const CHANNEL_PREFIX = "relay.v1:";

/** Kind byte of an inter-node message. */
export const BusKind = {
  /** A stamped relay DATA frame for the channel's ID. */
  DATA: 0x01,
  /** A relay ERROR frame for the channel's ID. */
  ERROR: 0x02,
  /** The channel's ID registered on another node. */
  CLAIM: 0x03,
} as const;

/** Longest node name in a CLAIM (bytes of UTF-8). */
export const MAX_NODE_NAME = 64;
/** Length of a CLAIM's registration nonce. */
export const CLAIM_NONCE_LENGTH = 16;

/** When and where an ID registered; the newer registration wins. */
export interface Claim {
  /** Name of the node holding the registration. */
  node: string;
  /** Registration time on that node, ms since the epoch. */
  timeMs: number;
  /** Random per registration: tells two registrations at the same ms apart. */
  nonce: Uint8Array;
}

/** A decoded inter-node message; `id` is the session ID it is addressed to. */
export type BusMessage =
  | { kind: "data"; id: Uint8Array; frame: Uint8Array }
  | { kind: "error"; id: Uint8Array; frame: Uint8Array }
  | { kind: "claim"; id: Uint8Array; claim: Claim };

/** Why an inter-node message was refused. */
export class BusMessageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(`cluster message: ${message}`);
    this.name = "BusMessageError";
  }
}

/**
 * The Redis channel of a session ID. The braces are a Redis Cluster hash tag:
 * the channel's slot depends on the ID only.
 *
 * @example
 * ```ts
 * import { channelFor } from "./cluster_frame.ts";
 * console.assert(channelFor(new Uint8Array(16)) === "relay.v1:{" + "0".repeat(32) + "}");
 * ```
 */
export function channelFor(id: Uint8Array): string {
  return `${CHANNEL_PREFIX}{${id.toHex()}}`;
}

/** The same channel from an ID already in hex (the relay's table key). */
export function channelForHex(idHex: string): string {
  return `${CHANNEL_PREFIX}{${idHex}}`;
}

const HEAD = 2 + SESSION_ID_LENGTH;

function head(kind: number, id: Uint8Array): Uint8Array {
  if (id.length !== SESSION_ID_LENGTH) {
    throw new RangeError(`session ID must be ${SESSION_ID_LENGTH} bytes`);
  }
  const h = new Uint8Array(HEAD);
  h[0] = BUS_VERSION;
  h[1] = kind;
  h.set(id, 2);
  return h;
}

/** DATA: `01 01 ‖ recipient ID (16) ‖ relay DATA frame`. */
export function encodeBusData(
  recipient: Uint8Array,
  frame: Uint8Array,
): Uint8Array {
  return concat(head(BusKind.DATA, recipient), frame);
}

/** {@link encodeBusData} as two parts (header, frame) for a writer that concatenates anyway. */
export function busDataParts(
  recipient: Uint8Array,
  frame: Uint8Array,
): Uint8Array[] {
  return [head(BusKind.DATA, recipient), frame];
}

/** ERROR: `01 02 ‖ recipient ID (16) ‖ relay ERROR frame`. */
export function encodeBusError(
  recipient: Uint8Array,
  frame: Uint8Array,
): Uint8Array {
  return concat(head(BusKind.ERROR, recipient), frame);
}

/** CLAIM: `01 03 ‖ ID (16) ‖ time ms (u64) ‖ nonce (16) ‖ name length (u8) ‖ node name (UTF-8)`. */
export function encodeBusClaim(id: Uint8Array, claim: Claim): Uint8Array {
  const name = utf8(claim.node);
  if (name.length < 1 || name.length > MAX_NODE_NAME) {
    throw new RangeError(`node name must be 1..${MAX_NODE_NAME} bytes`);
  }
  if (claim.nonce.length !== CLAIM_NONCE_LENGTH) {
    throw new RangeError(`claim nonce must be ${CLAIM_NONCE_LENGTH} bytes`);
  }
  if (!Number.isSafeInteger(claim.timeMs) || claim.timeMs < 0) {
    throw new RangeError("claim time must be a non-negative integer");
  }
  return concat(
    head(BusKind.CLAIM, id),
    u64(BigInt(claim.timeMs)),
    claim.nonce,
    new Uint8Array([name.length]),
    name,
  );
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes an inter-node message strictly; throws {@link BusMessageError}.
 * `maxFrame` bounds the embedded relay frame.
 */
export function decodeBusMessage(
  bytes: Uint8Array,
  maxFrame: number,
): BusMessage {
  if (bytes.length < HEAD) throw new BusMessageError("shorter than its header");
  if (bytes[0] !== BUS_VERSION) {
    throw new BusMessageError(`version ${bytes[0]} (expected ${BUS_VERSION})`);
  }
  const id = bytes.slice(2, HEAD);
  const body = bytes.subarray(HEAD);
  switch (bytes[1]) {
    case BusKind.DATA:
    case BusKind.ERROR: {
      const isData = bytes[1] === BusKind.DATA;
      const min = isData ? DATA_HEADER_LENGTH : ERROR_HEADER_LENGTH;
      if (body.length < min || body.length > maxFrame) {
        throw new BusMessageError(
          `relay frame of ${body.length} bytes (expected ${min}..${maxFrame})`,
        );
      }
      if (
        body[0] !== RELAY_VERSION ||
        body[1] !== (isData ? FrameType.DATA : FrameType.ERROR)
      ) {
        throw new BusMessageError(
          "embedded frame has the wrong version or type",
        );
      }
      return { kind: isData ? "data" : "error", id, frame: body.slice() };
    }
    case BusKind.CLAIM: {
      const fixed = 8 + CLAIM_NONCE_LENGTH + 1;
      if (body.length < fixed + 1) throw new BusMessageError("CLAIM truncated");
      const time = view(body).getBigUint64(0);
      const nameLength = body[8 + CLAIM_NONCE_LENGTH];
      if (nameLength < 1 || nameLength > MAX_NODE_NAME) {
        throw new BusMessageError(`node name of ${nameLength} bytes`);
      }
      if (body.length !== fixed + nameLength) {
        throw new BusMessageError(
          "CLAIM length does not match its name length",
        );
      }
      if (time > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new BusMessageError("CLAIM time out of range");
      }
      let node: string;
      try {
        node = strictUtf8.decode(body.subarray(fixed));
      } catch {
        throw new BusMessageError("node name is not UTF-8");
      }
      return {
        kind: "claim",
        id,
        claim: {
          node,
          timeMs: Number(time),
          nonce: body.slice(8, 8 + CLAIM_NONCE_LENGTH),
        },
      };
    }
    default:
      throw new BusMessageError(`unknown kind 0x${bytes[1].toString(16)}`);
  }
}

/**
 * Orders two registrations of one ID: positive when `a` is newer than `b`
 * (later time; at the same ms, the larger nonce), 0 when they are the same
 * registration. The newest registration anywhere in the cluster keeps the ID.
 */
export function compareClaims(a: Claim, b: Claim): number {
  if (a.timeMs !== b.timeMs) return a.timeMs - b.timeMs;
  for (let i = 0; i < CLAIM_NONCE_LENGTH; i++) {
    if (a.nonce[i] !== b.nonce[i]) return a.nonce[i] - b.nonce[i];
  }
  return 0;
}
