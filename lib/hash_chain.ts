/**
 * The transcript hash chain that makes chain signing affordable: each
 * direction hashes its reliable messages in seq order, and one ECDSA
 * signature over the head H_s commits to every message 1..s.
 *
 *   H_0 = SHA-256("e2e.v1 chain\0" ‖ sessionHash ‖ senderRole)
 *   H_s = SHA-256(H_{s−1} ‖ u64(s) ‖ u8(innerType) ‖ u32(bodyLen) ‖ body)
 *   signed = "e2e.v1 chain signature\0" ‖ senderRole ‖ fp(sender SPKI)
 *            ‖ fp(recipient SPKI) ‖ sessionHash ‖ u64(s) ‖ H_s
 *
 * senderRole is the ASCII string "initiator" or "responder" (neither is a
 * prefix of the other); fp = SHA-256 of the DER SPKI.
 * @module
 */

import { type Bytes, concat, u64, utf8 } from "./bytes.ts";
import type { HandshakeRole } from "./handshake_result.ts";
import { writeU32, writeU64 } from "./int_codec.ts";
import {
  type MaybePromise,
  type SessionPrimitives,
  webCryptoPrimitives,
} from "./primitives.ts";

const CHAIN_LABEL = utf8("e2e.v1 chain\0");
const SIGNATURE_LABEL = utf8("e2e.v1 chain signature\0");

/** Bytes of H_{s−1} ‖ u64(s) ‖ u8(innerType) ‖ u32(bodyLen) in front of the body. */
const STEP_PREFIX_LENGTH = 32 + 8 + 1 + 4;

/** H_0 of the chain of messages sent by `senderRole` in the session `sessionHash`. */
export async function chainStart(
  sessionHash: Bytes,
  senderRole: HandshakeRole,
  primitives: SessionPrimitives = webCryptoPrimitives,
): Promise<Bytes> {
  return await primitives.sha256(
    concat(CHAIN_LABEL, sessionHash, utf8(senderRole)),
  );
}

/** The bytes hashed into H_s: H_{s−1} ‖ u64(s) ‖ u8(innerType) ‖ u32(bodyLen) ‖ body. */
export function chainStepInput(
  previous: Uint8Array,
  seq: bigint,
  innerType: number,
  body: Uint8Array,
): Bytes {
  if (previous.length !== 32) {
    throw new RangeError("chain head must be 32 bytes");
  }
  const input = new Uint8Array(STEP_PREFIX_LENGTH + body.length);
  input.set(previous);
  writeU64(input, 32, seq);
  input[40] = innerType;
  writeU32(input, 41, body.length);
  input.set(body, STEP_PREFIX_LENGTH);
  return input;
}

/**
 * One buffer for the step inputs of every chain in this process: a step is
 * written into it and hashed at once, and `SessionPrimitives.sha256` reads
 * its input before it returns (node:crypto hashes it; WebCrypto copies it),
 * so no step input is allocated per message. Grows to the largest step.
 */
let stepScratch = new Uint8Array(STEP_PREFIX_LENGTH + 1024);
/** The last step input's view of {@link stepScratch} (bodies of one size in a row reuse it: no view per message). */
let stepView = stepScratch.subarray(0, 0);

/** H_s from H_{s−1}, synchronously when `primitives` hashes synchronously. */
export function chainStepEager(
  primitives: SessionPrimitives,
  previous: Uint8Array,
  seq: bigint,
  innerType: number,
  body: Uint8Array,
): MaybePromise<Bytes> {
  if (previous.length !== 32) {
    throw new RangeError("chain head must be 32 bytes");
  }
  const n = STEP_PREFIX_LENGTH + body.length;
  if (n > stepScratch.length) {
    stepScratch = new Uint8Array(Math.max(n, 2 * stepScratch.length));
  }
  const input = stepScratch;
  input.set(previous);
  writeU64(input, 32, seq);
  input[40] = innerType;
  writeU32(input, 41, body.length);
  input.set(body, STEP_PREFIX_LENGTH);
  if (stepView.length !== n || stepView.buffer !== input.buffer) {
    stepView = input.subarray(0, n);
  }
  return primitives.sha256(stepView);
}

/** H_s from H_{s−1} and the reliable message (seq, innerType, body). */
export async function chainStep(
  previous: Bytes,
  seq: bigint,
  innerType: number,
  body: Uint8Array,
  primitives: SessionPrimitives = webCryptoPrimitives,
): Promise<Bytes> {
  return await chainStepEager(primitives, previous, seq, innerType, body);
}

/** The exact bytes a chain signature over head H_s signs. */
export function chainSignatureInput(
  senderRole: HandshakeRole,
  senderFingerprint: Bytes,
  recipientFingerprint: Bytes,
  sessionHash: Bytes,
  seq: bigint,
  head: Bytes,
): Bytes {
  return concat(
    SIGNATURE_LABEL,
    utf8(senderRole),
    senderFingerprint,
    recipientFingerprint,
    sessionHash,
    u64(seq),
    head,
  );
}
