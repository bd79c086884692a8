/**
 * What the client drivers report ({@link ClientEvent}) and what they need
 * from a relay connection ({@link RelayLink}): the types shared by
 * clients/engine.ts, clients/chat.ts, clients/serve.ts and the renderers.
 * @module
 */

import type { Frame } from "../lib/relay_frame.ts";
import type { PeerStatus } from "../lib/known_peers.ts";

/** What the engine needs from a relay connection (RelayConnection or the pinned one). */
export interface RelayLink {
  /** Our registered session ID. */
  readonly id: Uint8Array;
  /** Frames after registration. */
  onFrame: (frame: Frame) => void;
  /** Resolves when the connection ends. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Sends a DATA frame; -1 when not open. */
  send(peer: Uint8Array, payload: Uint8Array): number;
  /** Closes the connection. */
  close(
    code?: number,
    reason?: string,
  ): Promise<{ code: number; reason: string }>;
  /** True while open. */
  readonly open: boolean;
}

/** Opens and registers a new relay connection. */
export type Connector = () => Promise<RelayLink>;

/** Trust status shown after the handshake (`expected`: the address named this identity). */
export type TrustStatus = Exclude<PeerStatus, "changed"> | "expected";

/** Everything the clients report; per-conversation events carry `peer` (relay ID) and, once known, `peerFingerprint`. */
export type ClientEvent =
  & (
    | {
      type: "ready";
      role: string;
      id: string;
      fingerprint: string;
      /** Fingerprint of the Ed25519 identity (suite x25519), when enabled. */
      ed25519Fingerprint?: string;
      address: string;
    }
    | {
      type: "secure";
      peer: string;
      peerName: string;
      /** The negotiated suite (`--suites` names). */
      suite: "p256" | "x25519";
      peerFingerprint: string;
      safetyNumber: string;
      trust: TrustStatus;
      role: "initiator" | "responder";
    }
    | { type: "sent"; id: number; text: string; at: string }
    | { type: "delivered"; id: number; at: string }
    | {
      type: "message";
      text: string;
      id?: number;
      counter: number;
      seq: number;
      at: string;
    }
    | {
      type: "payment";
      event: "request" | "response";
      direction: "sent" | "received";
      amount?: string;
      currency?: string;
      payee?: string;
      reference: string;
      decision?: "approved" | "declined";
      matches?: boolean;
    }
    | { type: "prompt"; kind: "payment" | "verify" | "trust"; text: string }
    | { type: "notice"; text: string }
    | {
      type: "status";
      phase: string;
      relay: "connected" | "reconnecting";
      /** True only in a secure session whose peer answers (never before the session is up). */
      peerOnline: boolean;
      outbox: number;
      unacked: number;
      epoch?: number;
      trust?: string;
    }
    | { type: "verified"; peerName: string }
    | {
      type: "error";
      code: string;
      message: string;
      ids?: number[];
      [k: string]: unknown;
    }
    | {
      type: "closed";
      reason: string;
      /** What was not delivered (message ids as `#N`, or counts of input lines); absent when nothing was lost. */
      undelivered?: string[];
    }
  )
  & { peer?: string; peerFingerprint?: string };

/**
 * The message of an `internal` error (a bug: an exception no protocol rule
 * explains): the exception's class and message, and where it was thrown —
 * the function and file:line of its first stack frame — so that one report
 * says what threw (e.g. `RangeError: Maximum call stack size exceeded (at
 * ChatClient.#stranger, chat.ts:420)`). The location is a place in our code
 * or the runtime's, never data.
 */
export function internalErrorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const text = `${e.name}: ${e.message}`;
  const frame = /\n\s*at (?:(.+?) \()?(?:[^\s()]*\/)?([^/\s()]+:\d+):\d+\)?/
    .exec(e.stack ?? "");
  if (!frame) return text;
  return `${text} (at ${frame[1] ? `${frame[1]}, ` : ""}${frame[2]})`;
}
