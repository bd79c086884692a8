/**
 * Types of lib/conversation.ts: its options, events and outputs (public),
 * and the phase union with each phase's data plus the {@link Host} view the
 * sibling modules (lib/conversation_handshake.ts, lib/conversation_secure.ts)
 * work through (internal).
 * @module
 */

import type { Backoff } from "./backoff.ts";
import type { Bytes } from "./bytes.ts";
import type { Inbox, Outbox } from "./delivery.ts";
import type { Initiator, Responder } from "./handshake.ts";
import type { HandshakeResult, HandshakeRole } from "./handshake_result.ts";
import type { Identity } from "./identity.ts";
import type { Session, SessionOptions } from "./session.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** What the caller's known-peers lookup says about a presented identity. */
export type TrustLookup =
  | { status: "new" | "known" | "verified" }
  | { status: "changed"; previous: string };

/** Trust of an accepted peer. */
export type TrustStatus = "new" | "known" | "verified" | "expected";

/** Options of a {@link Conversation}. */
export interface ConversationOptions {
  /** Our long-term identity. */
  identity: Identity;
  /** Our identities for other suites (an Ed25519 one for suite 0x0002; PROTOCOL.md §2.1). */
  identities?: readonly Identity[];
  /** Handshake suites in preference order (offered / accepted; default: the identities' suites). */
  suites?: readonly number[];
  /** Our relay session ID (16 bytes). */
  localId: Bytes;
  /** The peer's relay session ID (16 bytes). */
  peerId: Bytes;
  /**
   * The address's `fp=` (64 lower-case hex digits, the peer's P-256
   * identity): with it (or {@link expectEd25519Fingerprint}) only an
   * identity whose fingerprint is one of these is accepted, in every suite
   * and every handshake; no trust on first use (PROTOCOL.md §1.3).
   */
  expectFingerprint?: string;
  /**
   * The address's `ed=` (64 lower-case hex digits, the peer's Ed25519
   * identity of suite 0x0002): pinned as {@link expectFingerprint} is; with
   * it, suite x25519 (when among ours) is offered first.
   */
  expectEd25519Fingerprint?: string;
  /** Known-peers lookup for a presented fingerprint (synchronous: the caller keeps the file's state in memory). */
  trust: (fingerprintHex: string, spki: Bytes) => TrustLookup;
  /** Options of every session (cover rate, signing, primitives). */
  sessionOptions?: SessionOptions;
  /** Queued-message bound (default DEFAULT_OUTBOX). */
  outbox?: number;
  /** Report sent messages not acknowledged after this long (ms; default 30 s). */
  deliverTimeoutMs?: number;
  /** Time allowed for a clean close (ms; default 30 s). */
  closeTimeoutMs?: number;
  /** Give up when no session was set up within this long (ms) of the start; undefined = never. */
  waitMs?: number;
  /** Our application role, sent in `resume` (signed: the transcript's proven label). */
  role?: string;
  /** Our message stream ID (32 hex digits; default random). */
  stream?: string;
  /** The receiver state restored from an earlier run (what we delivered of the peer's stream). */
  inbox?: { stream: string | null; delivered: number };
  /** Uniform random numbers in [0, 1) for the backoff jitter (default Math.random). */
  random?: () => number;
}

/** Why a conversation ended. */
export type EndReason =
  | "closed" // clean close, both sides flushed and acknowledged
  | "quit" // closed by us without a session
  | "close-timeout"
  | "peer-timeout" // no session within waitMs
  | "handshake-failed" // the handshake with the peer we contacted failed, or a responder attempt failed before any session
  | "failed"; // the peer broke the protocol inside an authenticated session

/** Everything a conversation reports. */
export type ConversationEvent =
  | {
    type: "secure";
    role: HandshakeRole;
    fingerprint: string;
    spki: Bytes;
    trust: TrustStatus;
    sessionHash: string;
    session: Session;
  }
  | { type: "sent"; messages: { id: number; body: Uint8Array }[] }
  | { type: "delivered"; ids: number[]; byResume?: boolean }
  | { type: "undelivered"; ids: number[] }
  | { type: "message"; id?: number; body: Bytes; seq: bigint; counter: bigint }
  | {
    type: "refused";
    code: string;
    message: string;
    fingerprint: string;
    spki: Bytes;
    previous?: string;
    /**
     * Our role in the refused handshake. As initiator we refused at HS2: the
     * peer has no session and so no safety number (only its fingerprint to
     * compare). As responder we refused at HS3: the peer holds a session
     * and shows the same safety number (PROTOCOL.md §2.3).
     */
    role: HandshakeRole;
  }
  | { type: "not-sent"; ids: number[]; code: string; message: string }
  | { type: "notice"; text: string }
  | {
    type: "session-ended";
    session: Session;
    sessionHash: string;
    /** Why (the transcript's `end` reason): a new session took over, clean close, stopped, failed. */
    reason: "closed" | "replaced" | "stopped" | "failed";
  }
  | { type: "peer-closed" }
  | { type: "closed"; reason: EndReason; code?: string; message?: string };

/** What every call returns. */
export interface ConversationOutput {
  /** Packets for the peer, in order. */
  packets: Bytes[];
  /** Events, in order. */
  events: ConversationEvent[];
}

/** Verdict on one message given to {@link Conversation.send}. */
export type SendVerdict =
  | { id: number; ok: true }
  | { id: number; ok: false; code: string; message: string };

/** A snapshot for status displays and APIs. */
export interface ConversationStatus {
  phase: Phase["kind"];
  peerAway: boolean;
  queued: number;
  inflight: number;
  undelivered: number;
  closing: boolean;
  fingerprint?: string;
  trust?: TrustStatus;
  role?: HandshakeRole;
  epoch?: number;
}

/** A session with what we learned from its handshake. */
export interface Established {
  session: Session;
  hash: string;
  spki: Bytes;
}

/** A responder handshake in progress. */
export interface Answering {
  hs: Responder<Established>;
  hs1: Bytes;
  hs2: Bytes;
  deadline: number;
  /** Records that may belong to the session being set up (HS3 lost). */
  early: Bytes[];
  attempt: Attempt;
}

/** What the trust callback saw in one attempt. */
export interface Attempt {
  fingerprint?: string;
  spki?: Bytes;
  lookup?: TrustLookup;
}

/** The live session and its reliability state. */
export interface Secure extends Established {
  role: HandshakeRole;
  fingerprint: string;
  trust: TrustStatus;
  /** Initiator: HS3, resent until the responder is heard. */
  hs3?: { packet: Bytes; tries: number };
  /** A new handshake the peer started beside this session. */
  beside?: Answering;
  /** Re-queued messages wait for the peer's resume until then. */
  holdUntil?: number;
  /** The id our next user message in this session must have for no `next` to be needed. */
  nextId?: number;
  rtoAt?: number;
  /** Highest seq delivered from the peer in this session (our next `resume`'s `delivered`). */
  rxSeq: bigint;
  rto: Backoff;
  unanswered: number;
  peerAway: boolean;
  probeAt?: number;
  probe: Backoff;
  closeSent: boolean;
  peerClosed: boolean;
}

/** The phase: one discriminated union carrying its data. */
export type Phase =
  | { kind: "listening" }
  | {
    kind: "initiating";
    hs: Initiator<Established>;
    hs1: Bytes;
    deadline: number;
    retryAt: number;
    backoff: Backoff;
    attempt: Attempt;
  }
  | ({ kind: "responding" } & Answering)
  | ({ kind: "secure" } & Secure)
  | { kind: "refused"; fingerprint: string; spki: Bytes }
  | { kind: "closed"; reason: EndReason };

export const TRANSIENT = new Set(["peer-offline", "peer-busy", "rate-limited"]);
export const equal = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);
export const earliest = (a: number | undefined, b: number | undefined) =>
  a === undefined || (b !== undefined && b < a) ? b : a;

/** A live session's phase. */
export type SecurePhase = { kind: "secure" } & Secure;

/** What the sibling modules of lib/conversation.ts see of a conversation (internal). */
export interface Host {
  readonly o: ConversationOptions;
  readonly outbox: Outbox;
  readonly inbox: Inbox;
  /** Our message stream ID. */
  readonly stream: string;
  phase: Phase;
  /** We contacted the peer: we retry and re-handshake as initiator. */
  dial: boolean;
  readonly lastSecure?: {
    fingerprint: string;
    trust: TrustStatus;
    role: HandshakeRole;
  };
  readonly linkUp: boolean;
  readonly closing?: { deadline?: number; waitForPeer: boolean };
  readonly responderBucket: TokenBucket;
  readonly complete: (r: HandshakeResult) => Promise<Established>;
  notice(out: ConversationOutput, text: string): void;
  end(
    reason: EndReason,
    out: ConversationOutput,
    code?: string,
    message?: string,
  ): void;
  secure(
    est: Established,
    role: HandshakeRole,
    attempt: Attempt,
    now: number,
    out: ConversationOutput,
  ): Promise<void>;
  /** Drops the session (re-queueing its messages) and handshakes again as initiator. */
  rehandshake(s: Secure, now: number, out: ConversationOutput): Promise<void>;
}
