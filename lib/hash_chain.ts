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

import { type Bytes, concat, sha256, u32, u64, utf8 } from "./bytes.ts";
import type { HandshakeRole } from "./handshake_result.ts";

const CHAIN_LABEL = utf8("e2e.v1 chain\0");
const SIGNATURE_LABEL = utf8("e2e.v1 chain signature\0");

/** H_0 of the chain of messages sent by `senderRole` in the session `sessionHash`. */
export function chainStart(
  sessionHash: Bytes,
  senderRole: HandshakeRole,
): Promise<Bytes> {
  return sha256(CHAIN_LABEL, sessionHash, utf8(senderRole));
}

/** H_s from H_{s−1} and the reliable message (seq, innerType, body). */
export function chainStep(
  previous: Bytes,
  seq: bigint,
  innerType: number,
  body: Uint8Array,
): Promise<Bytes> {
  return sha256(
    previous,
    u64(seq),
    new Uint8Array([innerType]),
    u32(body.length),
    body,
  );
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
