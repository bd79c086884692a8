/**
 * What a completed handshake hands to the session layer (PROTOCOL.md,
 * "Handshake → session handoff"). Only `lib/handshake.ts` creates it, and only
 * after every check of the handshake passed: holding a `HandshakeResult` means
 * the peer is authenticated and both sides share `master`.
 * @module
 */

import type { Bytes } from "./bytes.ts";
import type { Identity } from "./identity.ts";
import type { SecretKey } from "./primitives.ts";

/** A long-term identity key pair (ECDSA P-256): `Identity` of `lib/identity.ts`. */
export type HandshakeIdentity = Identity;

/** The peer's authenticated identity public key. */
export interface PeerIdentity {
  /** ECDSA P-256 public key, usage `verify`. */
  publicKey: CryptoKey;
  /** DER SubjectPublicKeyInfo exactly as received in the handshake. */
  spki: Bytes;
}

/** The role a side played in the handshake. */
export type HandshakeRole = "initiator" | "responder";

/** Output of a successful handshake: input of `Session.fromHandshake`. */
export interface HandshakeResult {
  /** Which side of the handshake this is. */
  role: HandshakeRole;
  /** Negotiated cipher suite wire id (e.g. `SUITE_P256` = 0x0001). */
  suite: number;
  /** Our 16-byte relay session ID. */
  localId: Bytes;
  /** The peer's 16-byte relay session ID. */
  peerId: Bytes;
  /** Our identity key pair. */
  localIdentity: HandshakeIdentity;
  /** The peer's identity, verified by signature and accepted by `trust`. */
  peerIdentity: PeerIdentity;
  /** th_final = T(HS1 ‖ HS2 ‖ HS3), 32 bytes; identical on both sides. */
  sessionHash: Bytes;
  /**
   * The session's epoch-0 master secret: a non-extractable WebCrypto HKDF
   * key, or (handshake on a provider, e.g. node:crypto) the provider's
   * secret key object.
   */
  master: SecretKey;
}
