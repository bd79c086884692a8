/**
 * The protocol's error type: every failure carries a stable, documented
 * machine-readable code (see PROTOCOL.md, "Error codes") and a human message.
 * @module
 */

/** Error codes of the end-to-end layer (PROTOCOL.md §E2E errors). */
export type E2EErrorCode =
  | "malformed"
  | "unsupported-version"
  | "unsupported-suite"
  | "unexpected-message"
  | "invalid-public-key"
  | "bad-signature"
  | "mac-mismatch"
  | "decrypt-failed"
  | "identity-changed"
  | "identity-rejected"
  | "timeout"
  | "replay"
  | "too-old"
  | "chain-mismatch"
  | "unsigned-chain"
  | "counter-exhausted"
  | "window-full"
  | "too-large"
  | "closed"
  | "bad-passphrase"
  | "bad-key-file"
  | "bad-known-peers"
  | "relabelled";

/** An error of the end-to-end protocol with a stable `code`. */
export class ProtocolError extends Error {
  /** Stable machine-readable code, listed in PROTOCOL.md. */
  readonly code: E2EErrorCode;

  /** Creates an error with `code` and a human-readable `message`. */
  constructor(code: E2EErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "ProtocolError";
    this.code = code;
  }
}
