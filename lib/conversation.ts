/**
 * One conversation with one peer (one relay session ID), across any number
 * of secure sessions — sans-I/O, in the style of h11 and `lib/session.ts`:
 * it takes packets from the peer, user input, relay signals and the current
 * time, and returns the packets to send to the peer and the events for the
 * application; {@link Conversation.nextDeadline} says when to call
 * {@link Conversation.poll}. It never touches sockets, files, timers or a
 * terminal, so the Deno clients, the bank service and a browser drive the
 * same code (PROTOCOL.md §2.4–§2.5).
 *
 * What it does: the handshake with retransmission, timeouts and the
 * simultaneous-open tie-break; trust decisions (an expected fingerprint, or
 * the caller's known-peers lookup); a new handshake beside a live session
 * that replaces it only once authenticated (a forged or changed-key one
 * leaves it alone); retransmission of unacknowledged packets, probing an
 * away peer, re-handshake after {@link REHANDSHAKE_AFTER_UNANSWERED}
 * unanswered rounds; delivery tracking per message id across sessions with
 * the `resume`/`next` exchange (exactly once, see lib/delivery.ts); the
 * `undelivered` report; clean close.
 *
 * Calls are serialized internally (each runs after the previous one ends), so
 * a driver may call them as events come; records queued behind a running
 * call are opened together in one `receiveMany`.
 * @module
 */

import { Backoff } from "./backoff.ts";
import type { Bytes } from "./bytes.ts";
import {
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_DELIVER_TIMEOUT_MS,
  DEFAULT_OUTBOX,
  HANDSHAKE_RETRY_BASE_MS,
  HANDSHAKE_RETRY_MAX_MS,
  HANDSHAKE_TIMEOUT_MS,
  MAX_BODY,
  MAX_EARLY_RECORDS,
  PEER_PROBE_BASE_MS,
  PEER_PROBE_MAX_MS,
  REHANDSHAKE_AFTER_UNANSWERED,
  RESPONDER_BURST_PER_PEER,
  RESPONDER_RATE_PER_PEER,
  RESUME_WAIT_MS,
  RETRANSMIT_BASE_MS,
  RETRANSMIT_MAX_MS,
  SEND_BATCH,
} from "./constants.ts";
import { encodeControl, isControl, parseControl } from "./control.ts";
import { Inbox, Outbox } from "./delivery.ts";
import { ProtocolError } from "./errors.ts";
import {
  Initiator,
  PACKET_HS1,
  PACKET_HS2,
  PACKET_HS3,
  PACKET_RECORD,
  Responder,
  type TrustDecision,
} from "./handshake.ts";
import type { HandshakeResult, HandshakeRole } from "./handshake_result.ts";
import type { Identity } from "./identity.ts";
import { formatSessionId } from "./registration.ts";
import { Session, type SessionOptions } from "./session.ts";
import { TokenBucket } from "./token_bucket.ts";

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
  /** Accept only this identity (64 lower-case hex digits: the address's `fp=`); no trust on first use. */
  expectFingerprint?: string;
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
interface Established {
  session: Session;
  hash: string;
  spki: Bytes;
}

/** A responder handshake in progress. */
interface Answering {
  hs: Responder<Established>;
  hs1: Bytes;
  hs2: Bytes;
  deadline: number;
  /** Records that may belong to the session being set up (HS3 lost). */
  early: Bytes[];
  attempt: Attempt;
}

/** What the trust callback saw in one attempt. */
interface Attempt {
  fingerprint?: string;
  spki?: Bytes;
  lookup?: TrustLookup;
}

/** The live session and its reliability state. */
interface Secure extends Established {
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
type Phase =
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

const TRANSIENT = new Set(["peer-offline", "peer-busy", "rate-limited"]);
const equal = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);
const earliest = (a: number | undefined, b: number | undefined) =>
  a === undefined || (b !== undefined && b < a) ? b : a;

/** A conversation with one peer; see the module doc. */
export class Conversation {
  readonly #o: ConversationOptions;
  readonly #outbox: Outbox;
  readonly #inbox: Inbox;
  readonly #stream: string;
  readonly #deliverMs: number;
  readonly #closeMs: number;
  readonly #responderBucket: TokenBucket;
  #phase: Phase = { kind: "listening" };
  /** We contacted the peer (an address): we retry and re-handshake as initiator. */
  #dial = false;
  #waitUntil?: number;
  #closing?: { deadline?: number; waitForPeer: boolean };
  #linkUp = true;
  #lastSecure?: {
    fingerprint: string;
    trust: TrustStatus;
    role: HandshakeRole;
  };
  /** Something arrived from the peer. */
  #heardAny = false;
  /** Our previous session (named in our next `resume`). */
  #prev?: { hash: string; delivered: bigint };
  #lock: Promise<unknown> = Promise.resolve();
  #rx: Bytes[] = [];

  private constructor(o: ConversationOptions, now: number) {
    this.#o = o;
    this.#outbox = new Outbox(o.outbox ?? DEFAULT_OUTBOX);
    this.#inbox = new Inbox(o.inbox);
    this.#stream = o.stream ??
      crypto.getRandomValues(new Uint8Array(16)).toHex();
    this.#deliverMs = o.deliverTimeoutMs ?? DEFAULT_DELIVER_TIMEOUT_MS;
    this.#closeMs = o.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#responderBucket = new TokenBucket(
      RESPONDER_RATE_PER_PEER,
      RESPONDER_BURST_PER_PEER,
      now,
    );
    if (o.waitMs !== undefined) this.#waitUntil = now + o.waitMs;
  }

  /** A conversation that waits for the peer's HS1 (pass it to {@link receive}). */
  static listen(o: ConversationOptions, now: number): Conversation {
    return new Conversation(o, now);
  }

  /** A conversation that contacts the peer: returns it and the HS1 to send. */
  static async dial(
    o: ConversationOptions,
    now: number,
  ): Promise<{ conversation: Conversation; output: ConversationOutput }> {
    const c = new Conversation(o, now);
    c.#dial = true;
    const output = await c.#run((out) => c.#startInitiator(now, out));
    return { conversation: c, output };
  }

  /** The peer's relay session ID. */
  get peerId(): Bytes {
    return this.#o.peerId;
  }

  /** Our message stream ID (32 hex digits). */
  get stream(): string {
    return this.#stream;
  }

  /** True once the conversation ended (event `closed`). */
  get ended(): boolean {
    return this.#phase.kind === "closed";
  }

  /** True while a session is live. */
  get secure(): boolean {
    return this.#phase.kind === "secure";
  }

  /** Receiver state to save (what we delivered of the peer's stream). */
  inboxState(): { stream: string | null; delivered: number } {
    return this.#inbox.snapshot();
  }

  /** Status for displays and APIs. */
  status(): ConversationStatus {
    const p = this.#phase;
    const s = p.kind === "secure" ? p : undefined;
    const last = this.#lastSecure;
    return {
      phase: p.kind,
      peerAway: s?.peerAway ?? false,
      queued: this.#outbox.queued,
      inflight: this.#outbox.inflight,
      undelivered: this.#outbox.size,
      closing: this.#closing !== undefined,
      fingerprint: s?.fingerprint ?? last?.fingerprint,
      trust: s?.trust ?? last?.trust,
      role: s?.role ?? last?.role,
      epoch: s?.session.epoch,
    };
  }

  /** While the conversation refuses a presented identity: its fingerprint (hex). */
  get refusedFingerprint(): string | undefined {
    return this.#phase.kind === "refused" ? this.#phase.fingerprint : undefined;
  }

  /** Fingerprint (hex) of the peer's identity in the live or last session. */
  get fingerprint(): string | undefined {
    return this.#lastSecure?.fingerprint;
  }

  /** A packet from the peer (any e2e packet type). */
  receive(packet: Bytes, now: number): Promise<ConversationOutput> {
    this.#rxNow = now;
    if (packet.length >= 2 && packet[1] === PACKET_RECORD) {
      this.#rx.push(packet);
      if (this.#rx.length > 1) return this.#run(() => {}); // drained by the call that queued the first
    }
    return this.#run(async (out) => {
      this.#heard(out);
      if (packet.length < 2 || packet[1] === PACKET_RECORD) return;
      if (packet[1] === PACKET_HS1) return await this.#onHs1(packet, now, out);
      if (packet[1] === PACKET_HS2) return await this.#onHs2(packet, now, out);
      if (packet[1] === PACKET_HS3) return await this.#onHs3(packet, now, out);
    });
  }

  /**
   * User messages (UTF-8 text bodies): each gets a message id; refused ones
   * (NUL first, too large, outbox full, closing) say why and are not queued.
   */
  send(
    bodies: Uint8Array[],
    now: number,
  ): Promise<ConversationOutput & { verdicts: SendVerdict[] }> {
    const verdicts = bodies.map((b) => this.#accept(b));
    return this.#run((out) => this.#pump(now, out)).then((o) => ({
      ...o,
      verdicts,
    }));
  }

  /** Due timers. */
  poll(now: number): Promise<ConversationOutput> {
    return this.#run((out) => this.#tick(now, out));
  }

  /** The earliest time {@link poll} has work; undefined = none. */
  nextDeadline(): number | undefined {
    const p = this.#phase;
    let at = this.#outbox.undeliveredDue(this.#deliverMs);
    at = earliest(at, this.#closing?.deadline);
    switch (p.kind) {
      case "initiating":
        at = earliest(at, Math.min(p.retryAt, p.deadline));
        break;
      case "responding":
        at = earliest(at, p.deadline);
        break;
      case "secure":
        at = earliest(
          at,
          p.session.failed ? undefined : p.session.nextDeadline(),
        );
        if (this.#linkUp) at = earliest(at, p.peerAway ? p.probeAt : p.rtoAt);
        at = earliest(at, p.holdUntil);
        at = earliest(at, p.beside?.deadline);
        return at;
      case "closed":
        return undefined;
      case "refused":
        return at;
    }
    return earliest(at, this.#waitUntil);
  }

  /** The relay said the peer cannot take packets now (`peer-offline`, `peer-busy`, `rate-limited`). */
  relayError(name: string, now: number): Promise<ConversationOutput> {
    return this.#run((out) => {
      const p = this.#phase;
      if (!TRANSIENT.has(name) || p.kind !== "secure") return;
      p.unanswered = 0;
      if (!p.peerAway) {
        p.peerAway = true;
        p.rtoAt = undefined;
        out.events.push({
          type: "notice",
          text: `peer unavailable (${name}); messages wait in the outbox`,
        });
      }
      p.probeAt ??= now + p.probe.next();
    });
  }

  /** The relay connection went down: nothing is sent until {@link linkUp}. */
  linkDown(): void {
    this.#linkUp = false;
  }

  /** The relay connection is back: resend what is pending, byte-identical. */
  linkUp(now: number): Promise<ConversationOutput> {
    this.#linkUp = true;
    return this.#run(async (out) => {
      const p = this.#phase;
      if (p.kind === "initiating") out.packets.push(p.hs1);
      if (p.kind !== "secure") return;
      p.peerAway = false;
      this.#retransmit(p, out);
      await this.#after(now, out);
    });
  }

  /**
   * Close cleanly: flush, wait for every acknowledgement, CLOSE both ways.
   * `waitForPeer`: without a session yet, wait for one (scripted input at
   * EOF) instead of ending at once. A second call ends at once.
   */
  close(now: number, waitForPeer = false): Promise<ConversationOutput> {
    return this.#run(async (out) => {
      const p = this.#phase;
      if (p.kind === "closed") return;
      if (this.#closing !== undefined && !waitForPeer) {
        return this.#end("quit", out, undefined, "forced");
      }
      if (p.kind !== "secure" && !waitForPeer) return this.#end("quit", out);
      this.#closing ??= { waitForPeer };
      if (p.kind === "secure") this.#closing.deadline ??= now + this.#closeMs;
      await this.#maybeClose(now, out);
    });
  }

  /** Ends now without a clean close (what was not delivered is reported). */
  abort(reason: EndReason = "quit"): Promise<ConversationOutput> {
    return this.#run((out) => {
      if (this.#phase.kind !== "closed") this.#end(reason, out);
    });
  }

  /** After a refusal: the user accepted the new key (the caller updated its known peers); handshake again. */
  retry(now: number): Promise<ConversationOutput> {
    return this.#run(async (out) => {
      if (this.#phase.kind !== "refused") return;
      this.#dial = true;
      await this.#startInitiator(now, out);
    });
  }

  // ── plumbing ─────────────────────────────────────────────────────────────

  #run(
    fn: (out: ConversationOutput) => void | Promise<void>,
  ): Promise<ConversationOutput> {
    const out: ConversationOutput = { packets: [], events: [] };
    const run = this.#lock.then(async () => {
      if (this.#rx.length > 0) {
        const batch = this.#rx;
        this.#rx = [];
        await this.#onRecords(batch, this.#rxNow, out);
      }
      if (this.#phase.kind !== "closed") await fn(out);
      if (!this.#linkUp) out.packets = [];
      return out;
    });
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Time of the latest `receive` (records drained later are processed at it). */
  #rxNow = 0;

  #end(
    reason: EndReason,
    out: ConversationOutput,
    code?: string,
    message?: string,
  ): void {
    const p = this.#phase;
    const queued = this.#outbox.dropQueued();
    if (queued.length > 0 && reason !== "closed") {
      out.events.push({
        type: "not-sent",
        ids: queued,
        code: "not-sent",
        message: `messages not sent: #${queued.join(", #")}`,
      });
    }
    const lost = this.#outbox.undeliveredIds();
    if (lost.length > 0 && reason !== "closed") {
      out.events.push({ type: "undelivered", ids: lost });
    }
    if (p.kind === "initiating") p.hs.abort();
    if (p.kind === "responding") p.hs.abort();
    if (p.kind === "secure") {
      p.beside?.hs.abort();
      out.events.push({
        type: "session-ended",
        session: p.session,
        sessionHash: p.hash,
        reason: reason === "closed" || reason === "failed" ? reason : "stopped",
      });
    }
    this.#phase = { kind: "closed", reason };
    out.events.push({ type: "closed", reason, code, message });
  }

  #notice(out: ConversationOutput, text: string): void {
    out.events.push({ type: "notice", text });
  }

  #accept(body: Uint8Array): SendVerdict {
    const id = this.#outbox.nextId;
    const refuse = (code: string, message: string): SendVerdict => {
      this.#outbox.skipId();
      return {
        id,
        ok: false,
        code,
        message: `message #${id} not sent: ${message}`,
      };
    };
    if (isControl(body)) {
      return refuse(
        "invalid-text",
        "it starts with a NUL character (reserved for control messages)",
      );
    }
    if (body.length > MAX_BODY) {
      return refuse("too-large", `longer than ${MAX_BODY} bytes`);
    }
    const p = this.#phase;
    if (
      p.kind === "closed" || this.#closing ||
      (p.kind === "secure" && p.peerClosed)
    ) {
      return refuse("not-sent", "the conversation is closing");
    }
    if (this.#outbox.full) {
      return refuse("outbox-full", "the outbox is full");
    }
    this.#outbox.add(body);
    return { id, ok: true };
  }

  /** Any packet from the peer: it is reachable. */
  #heard(out: ConversationOutput): void {
    this.#heardAny = true;
    const p = this.#phase;
    if (p.kind !== "secure" || !p.peerAway) return;
    p.peerAway = false;
    p.probeAt = undefined;
    p.probe.reset();
    p.rto.reset();
    p.rtoAt = undefined;
    this.#notice(out, "peer is back");
    this.#retransmit(p, out);
  }

  // ── handshake ────────────────────────────────────────────────────────────

  #trustCallback(attempt: Attempt): (spki: Bytes, fp: string) => TrustDecision {
    return (spki, fp) => {
      attempt.spki = spki.slice();
      attempt.fingerprint = fp;
      const expect = this.#o.expectFingerprint;
      if (expect !== undefined) {
        if (fp === expect) return "ok";
        return {
          code: "identity-rejected",
          message:
            `the peer presented identity ${fp}, not the ${expect} its address names; refusing`,
        };
      }
      const lookup = this.#o.trust(fp, spki);
      attempt.lookup = lookup;
      if (lookup.status !== "changed") return "ok";
      return {
        code: "identity-changed",
        message:
          `the peer's identity key has CHANGED (recorded ${lookup.previous}, presented ${fp}); refusing`,
      };
    };
  }

  #complete = (r: HandshakeResult): Promise<Established> =>
    Session.fromHandshake(r, this.#o.sessionOptions).then((session) => ({
      session,
      hash: r.sessionHash.toHex(),
      spki: r.peerIdentity.spki,
    }));

  async #startInitiator(now: number, out: ConversationOutput): Promise<void> {
    const attempt: Attempt = {};
    const { handshake, message } = await Initiator.start({
      identity: this.#o.identity,
      identities: this.#o.identities,
      suites: this.#o.suites,
      localId: this.#o.localId,
      peerId: this.#o.peerId,
      now,
      trust: this.#trustCallback(attempt),
      complete: this.#complete,
    });
    const backoff = new Backoff({
      baseMs: HANDSHAKE_RETRY_BASE_MS,
      maxMs: HANDSHAKE_RETRY_MAX_MS,
      random: this.#o.random,
    });
    this.#phase = {
      kind: "initiating",
      hs: handshake,
      hs1: message,
      deadline: now + HANDSHAKE_TIMEOUT_MS,
      retryAt: now + backoff.next(),
      backoff,
      attempt,
    };
    out.packets.push(message);
  }

  /** Starts answering an HS1; undefined when it failed (reported) or was rate-limited. */
  async #answer(
    hs1: Bytes,
    now: number,
    out: ConversationOutput,
  ): Promise<Answering | undefined> {
    if (!this.#responderBucket.take(now)) return undefined; // responder work per peer ID is bounded
    const attempt: Attempt = {};
    const hs = Responder.create({
      identity: this.#o.identity,
      identities: this.#o.identities,
      suites: this.#o.suites,
      localId: this.#o.localId,
      trust: this.#trustCallback(attempt),
      complete: this.#complete,
    });
    const r = await hs.receive(hs1, { now, from: this.#o.peerId });
    out.packets.push(r.send!);
    return {
      hs,
      hs1: hs1.slice(),
      hs2: r.send!,
      deadline: now + HANDSHAKE_TIMEOUT_MS,
      early: [],
      attempt,
    };
  }

  async #onHs1(p: Bytes, now: number, out: ConversationOutput): Promise<void> {
    const ph = this.#phase;
    if (ph.kind === "secure") {
      if (ph.beside && equal(p, ph.beside.hs1)) {
        return void out.packets.push(ph.beside.hs2);
      }
      // HS1 is unauthenticated (a relay can replay or forge one): the live
      // session stays until the new handshake has authenticated the peer.
      ph.beside?.hs.abort();
      ph.beside = undefined;
      try {
        ph.beside = await this.#answer(p, now, out);
        if (ph.beside) {
          this.#notice(
            out,
            "the peer started a new secure session (it restarted?); answering — the current session stays until the new one is authenticated",
          );
        }
      } catch (e) {
        this.#besideFailed(ph, e, out);
      }
      return;
    }
    if (ph.kind === "initiating") {
      // Simultaneous open: the side with the smaller ID answers.
      if (formatSessionId(this.#o.localId) > formatSessionId(this.#o.peerId)) {
        return;
      }
      this.#notice(out, "both sides started a handshake; answering the peer's");
    }
    if (ph.kind === "responding" && equal(p, ph.hs1)) {
      return void out.packets.push(ph.hs2);
    }
    if (ph.kind === "closed") return;
    let answering: Answering | undefined;
    try {
      answering = await this.#answer(p, now, out);
    } catch (e) {
      return this.#handshakeFailed(e, out);
    }
    if (!answering) return;
    if (ph.kind === "initiating") ph.hs.abort();
    if (ph.kind === "responding") ph.hs.abort();
    this.#phase = { kind: "responding", ...answering };
  }

  async #onHs2(p: Bytes, now: number, out: ConversationOutput): Promise<void> {
    const ph = this.#phase;
    if (ph.kind === "secure" && ph.hs3) {
      return void out.packets.push(ph.hs3.packet); // our HS3 was lost
    }
    if (ph.kind !== "initiating") return;
    let r;
    try {
      r = await ph.hs.receive(p, now);
    } catch (e) {
      return this.#handshakeFailed(e, out, ph.attempt);
    }
    out.packets.push(r.send);
    await this.#secure(r.session, "initiator", ph.attempt, now, out);
    const s = this.#phase;
    if (s.kind === "secure") s.hs3 = { packet: r.send, tries: 0 };
  }

  async #onHs3(p: Bytes, now: number, out: ConversationOutput): Promise<void> {
    const ph = this.#phase;
    const answering = ph.kind === "responding"
      ? ph
      : ph.kind === "secure"
      ? ph.beside
      : undefined;
    if (!answering) return;
    let r;
    try {
      r = await answering.hs.receive(p, { now, from: this.#o.peerId });
    } catch (e) {
      if (ph.kind === "secure") return this.#besideFailed(ph, e, out);
      return this.#handshakeFailed(e, out, answering.attempt);
    }
    await this.#secure(r.session!, "responder", answering.attempt, now, out);
    if (answering.early.length > 0) {
      await this.#onRecords(answering.early, now, out);
    }
  }

  /** A handshake beside a live session failed (forged, replayed, changed key): the session goes on. */
  #besideFailed(s: Secure, e: unknown, out: ConversationOutput): void {
    if (!(e instanceof ProtocolError)) throw e;
    s.beside = undefined;
    this.#notice(
      out,
      `a new handshake attempt failed (${e.code}): ignored; the current secure session continues`,
    );
  }

  /** A handshake failed with no session live. */
  #handshakeFailed(
    e: unknown,
    out: ConversationOutput,
    attempt?: Attempt,
  ): void {
    if (!(e instanceof ProtocolError)) throw e;
    const refused = e.code === "identity-changed" ||
      e.code === "identity-rejected";
    if (refused && attempt?.fingerprint) {
      this.#phase = {
        kind: "refused",
        fingerprint: attempt.fingerprint,
        spki: attempt.spki!,
      };
      out.events.push({
        type: "refused",
        code: e.code,
        message: e.message,
        fingerprint: attempt.fingerprint,
        spki: attempt.spki!,
        previous: attempt.lookup?.status === "changed"
          ? attempt.lookup.previous
          : undefined,
      });
      return;
    }
    const p = this.#phase;
    if (p.kind === "initiating" && this.#dial) {
      // The peer we contacted failed the handshake (or a relay forged its HS2).
      return this.#end("handshake-failed", out, e.code, e.message);
    }
    if (this.#lastSecure === undefined && !this.#dial) {
      // A stranger's failed attempt: this conversation never existed.
      return this.#end("handshake-failed", out, e.code, e.message);
    }
    if (p.kind === "responding") this.#phase = { kind: "listening" };
    this.#notice(out, `a handshake attempt failed (${e.code}): ignored`);
  }

  // ── session ──────────────────────────────────────────────────────────────

  async #secure(
    est: Established,
    role: HandshakeRole,
    attempt: Attempt,
    now: number,
    out: ConversationOutput,
  ): Promise<void> {
    const old = this.#phase;
    if (old.kind === "secure") this.#dropSession(old, out); // the new one is authenticated: it replaces the old
    const trust: TrustStatus = this.#o.expectFingerprint !== undefined
      ? "expected"
      : attempt.lookup?.status === "verified"
      ? "verified"
      : attempt.lookup?.status === "known"
      ? "known"
      : "new";
    const s: { kind: "secure" } & Secure = {
      kind: "secure",
      ...est,
      role,
      fingerprint: attempt.fingerprint!,
      trust,
      rto: new Backoff({
        baseMs: RETRANSMIT_BASE_MS,
        maxMs: RETRANSMIT_MAX_MS,
        random: this.#o.random,
      }),
      probe: new Backoff({
        baseMs: PEER_PROBE_BASE_MS,
        maxMs: PEER_PROBE_MAX_MS,
        random: this.#o.random,
      }),
      unanswered: 0,
      peerAway: false,
      closeSent: false,
      peerClosed: false,
      rxSeq: 0n,
    };
    this.#phase = s;
    this.#waitUntil = undefined;
    this.#lastSecure = { fingerprint: s.fingerprint, trust, role };
    this.#inbox.newSession();
    if (role === "initiator") s.rtoAt = now + s.rto.next(); // until HS3 is confirmed
    out.packets.push(...await est.session.poll(now)); // starts the session's timers (cover traffic)
    const inbox = this.#inbox.snapshot();
    // The id our first user message of this session will have (a `next` follows if that changes).
    s.nextId = this.#outbox.peek(1)[0]?.id ?? this.#outbox.nextId;
    out.packets.push(
      ...await est.session.send(
        encodeControl({
          kind: "resume",
          prev: this.#prev?.hash ?? null,
          delivered: Number(this.#prev?.delivered ?? 0n),
          ...(this.#o.role === undefined ? {} : { role: this.#o.role }),
          stream: this.#stream,
          peerStream: inbox.stream,
          deliveredId: inbox.delivered,
          next: s.nextId,
        }),
        now,
      ),
    );
    if (this.#outbox.hasResent()) s.holdUntil = now + RESUME_WAIT_MS;
    if (this.#closing) this.#closing.deadline ??= now + this.#closeMs;
    out.events.push({
      type: "secure",
      role,
      fingerprint: s.fingerprint,
      spki: est.spki,
      trust,
      sessionHash: est.hash,
      session: est.session,
    });
    await this.#after(now, out);
  }

  /** Forgets the live session: its unacknowledged messages go back to the queue for the next one. */
  #dropSession(s: Secure, out: ConversationOutput): void {
    this.#prev = { hash: s.hash, delivered: s.rxSeq };
    const back = this.#outbox.requeue();
    if (back.length > 0) {
      this.#notice(
        out,
        `${back.length} unconfirmed message(s) will be re-sent in the new session: #${
          back.join(", #")
        } (unless the peer confirms it already has them)`,
      );
    }
    out.events.push({
      type: "session-ended",
      session: s.session,
      sessionHash: s.hash,
      reason: "replaced",
    });
  }

  async #onRecords(
    ps: Bytes[],
    now: number,
    out: ConversationOutput,
  ): Promise<void> {
    const p = this.#phase;
    const stash = p.kind === "responding"
      ? p
      : p.kind === "secure"
      ? p.beside
      : undefined;
    if (stash) {
      for (const r of ps) {
        if (stash.early.length < MAX_EARLY_RECORDS) {
          stash.early.push(r.slice());
        }
      }
    }
    if (p.kind !== "secure" || p.session.failed) return;
    const s = p.session;
    const before = s.stats.packetsReceived;
    let r;
    try {
      r = await s.receiveMany(ps, now);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return this.#end("failed", out, e.code, e.message);
    }
    if (s.stats.packetsReceived > before) p.hs3 = undefined;
    out.packets.push(...r.packets);
    for (const ev of r.events) {
      if (this.#phase !== p) break;
      switch (ev.type) {
        case "message":
          p.rxSeq = ev.seq;
          if (isControl(ev.body)) this.#onControl(p, ev.body, out);
          else {
            const v = this.#inbox.message();
            if (v.deliver) {
              out.events.push({
                type: "message",
                id: v.id,
                body: ev.body,
                seq: ev.seq,
                counter: ev.counter,
              });
            }
          }
          break;
        case "acked": {
          if (ev.seqs.length === 0) break;
          p.rto.reset();
          p.rtoAt = undefined;
          p.unanswered = 0;
          const ids = this.#outbox.acked(ev.seqs);
          if (ids.length > 0) out.events.push({ type: "delivered", ids });
          break;
        }
        case "peer-closed": {
          p.peerClosed = true;
          out.events.push({ type: "peer-closed" });
          const ids = this.#outbox.dropQueued();
          if (ids.length > 0) {
            out.events.push({
              type: "not-sent",
              ids,
              code: "not-sent",
              message: `the peer closed first; messages not sent: #${
                ids.join(", #")
              }`,
            });
          }
          break;
        }
        case "closed":
          return this.#end("closed", out);
      }
    }
    if (this.#phase === p) await this.#after(now, out);
  }

  #onControl(
    s: Secure,
    body: Bytes,
    out: ConversationOutput,
  ): void {
    let m;
    try {
      m = parseControl(body);
    } catch (e) {
      return this.#notice(
        out,
        `ignored a malformed control message from the peer: ${
          (e as Error).message
        }`,
      );
    }
    if (m?.kind === "next") return this.#inbox.next(m.id);
    if (m?.kind !== "resume") return;
    if (m.stream !== undefined) this.#inbox.peerStream(m.stream);
    if (m.next !== undefined) this.#inbox.next(m.next);
    if (m.peerStream === this.#stream) {
      const ids = this.#outbox.confirmUpTo(m.deliveredId ?? 0);
      if (ids.length > 0) {
        out.events.push({ type: "delivered", ids, byResume: true });
        this.#notice(
          out,
          `the peer had already received message(s) #${
            ids.join(", #")
          } in an earlier session: not re-sent`,
        );
      }
    }
    if (s.holdUntil !== undefined) {
      this.#release(
        s,
        m.peerStream === this.#stream
          ? "re-sending"
          : "the peer has none of them (it restarted); re-sending",
        out,
      );
    }
  }

  #release(s: Secure, why: string, out: ConversationOutput): void {
    s.holdUntil = undefined;
    const ids = this.#outbox.release();
    if (ids.length > 0) {
      this.#notice(
        out,
        `${why} ${ids.length} unconfirmed message(s): #${ids.join(", #")}`,
      );
    }
  }

  /** After session activity: arm the retransmission timer, pump, maybe close. */
  async #after(now: number, out: ConversationOutput): Promise<void> {
    const p = this.#phase;
    if (p.kind !== "secure") return;
    await this.#pump(now, out);
    await this.#maybeClose(now, out);
    this.#armRto(p, now);
  }

  #awaitingAck(s: Secure): boolean {
    return this.#outbox.inflight > 0 || s.session.unacked().length > 0;
  }

  #armRto(s: Secure, now: number): void {
    if (
      s.rtoAt === undefined && !s.peerAway && (this.#awaitingAck(s) || s.hs3)
    ) {
      s.rtoAt = now + s.rto.next();
    }
  }

  /** Seals queued messages while the peer is reachable (or `limit` of them as a probe). */
  async #pump(
    now: number,
    out: ConversationOutput,
    limit = Infinity,
  ): Promise<void> {
    const s = this.#phase;
    if (
      s.kind !== "secure" || s.session.failed || s.closeSent || !this.#linkUp
    ) return;
    if (s.holdUntil !== undefined) return; // waiting for the peer's resume
    if (s.peerAway && limit === Infinity) return;
    let budget = limit;
    while (this.#outbox.queued > 0 && budget > 0) {
      const room = s.session.sendCapacity();
      const batch = this.#outbox.peek(
        Math.min(SEND_BATCH, budget, this.#outbox.queued),
      );
      // A `next` precedes the first message and any gap in the ids (refused input, confirmed by resume).
      const bodies: Uint8Array[] = [];
      const user: number[] = [];
      let expect = s.nextId;
      for (const m of batch) {
        if (bodies.length + (m.id !== expect ? 2 : 1) > room) break;
        if (m.id !== expect) {
          bodies.push(encodeControl({ kind: "next", id: m.id }));
        }
        user.push(bodies.length);
        bodies.push(m.body);
        expect = m.id + 1;
      }
      if (user.length === 0) break;
      const sealing = s.session.sendMany(bodies as Bytes[], now);
      if (sealing.seqs.length === 0) {
        const e = await sealing.then(() => undefined, (e) => e);
        if (e instanceof ProtocolError && e.code === "window-full") break;
        if (e instanceof ProtocolError && e.code === "closed") {
          const ids = this.#outbox.dropQueued();
          out.events.push({
            type: "not-sent",
            ids,
            code: "not-sent",
            message: `the session is closing; messages not sent: #${
              ids.join(", #")
            }`,
          });
          break;
        }
        throw e;
      }
      const sent = this.#outbox.markSent(
        s.hash,
        user.map((i) => sealing.seqs[i]),
        now,
      );
      s.nextId = expect;
      budget -= sent.length;
      out.packets.push(...await sealing);
      out.events.push({
        type: "sent",
        messages: sent.map((m) => ({ id: m.id, body: m.body })),
      });
    }
  }

  async #maybeClose(now: number, out: ConversationOutput): Promise<void> {
    const s = this.#phase;
    if (
      !this.#closing || s.kind !== "secure" || s.closeSent || s.session.failed
    ) return;
    if (
      this.#outbox.queued > 0 || s.holdUntil !== undefined ||
      this.#awaitingAck(s) || !this.#linkUp
    ) return;
    s.closeSent = true;
    out.packets.push(...await s.session.close(now));
    s.rtoAt ??= now + s.rto.next();
  }

  /** Resends HS3 (if not yet confirmed) and every unacknowledged packet, byte-identical. */
  #retransmit(s: Secure, out: ConversationOutput): void {
    if (s.hs3) out.packets.push(s.hs3.packet);
    if (!s.session.failed) out.packets.push(...s.session.unacked());
  }

  // ── timers ───────────────────────────────────────────────────────────────

  async #tick(now: number, out: ConversationOutput): Promise<void> {
    const ids = this.#outbox.takeUndelivered(now, this.#deliverMs);
    if (ids.length > 0) out.events.push({ type: "undelivered", ids });
    if (
      this.#closing?.deadline !== undefined && now >= this.#closing.deadline
    ) {
      const left = this.#outbox.undeliveredIds();
      return this.#end(
        "close-timeout",
        out,
        "close-timeout",
        `could not close cleanly within ${this.#closeMs / 1000} s` +
          (left.length
            ? `; messages not confirmed as delivered: #${left.join(", #")}`
            : ""),
      );
    }
    const p = this.#phase;
    const waiting = p.kind === "listening" || p.kind === "initiating" ||
      p.kind === "responding";
    if (waiting && this.#waitUntil !== undefined && now >= this.#waitUntil) {
      return this.#end(
        "peer-timeout",
        out,
        "peer-timeout",
        `the peer ${
          this.#heardAny ? "did not complete the handshake" : "never arrived"
        } within ${
          (this.#o.waitMs ?? 0) / 1000
        } s (is the ID right and is the peer connected to the same relay?)`,
      );
    }
    switch (p.kind) {
      case "initiating":
        if (now >= p.deadline) {
          this.#notice(out, "handshake timed out; starting a new one");
          return await this.#startInitiator(now, out);
        }
        if (now >= p.retryAt) {
          out.packets.push(p.hs1);
          p.retryAt = now + p.backoff.next();
        }
        return;
      case "responding":
        if (now < p.deadline) return;
        p.hs.abort();
        if (this.#dial) return await this.#startInitiator(now, out);
        if (this.#lastSecure === undefined) {
          return this.#end(
            "handshake-failed",
            out,
            "timeout",
            "the peer did not finish the handshake in time",
          );
        }
        this.#phase = { kind: "listening" };
        return;
      case "secure":
        return await this.#tickSecure(p, now, out);
    }
  }

  async #tickSecure(
    p: { kind: "secure" } & Secure,
    now: number,
    out: ConversationOutput,
  ): Promise<void> {
    if (p.beside && now >= p.beside.deadline) {
      p.beside.hs.abort();
      p.beside = undefined;
      this.#notice(
        out,
        "a new handshake attempt failed (timeout): ignored; the current secure session continues",
      );
    }
    if (p.holdUntil !== undefined && now >= p.holdUntil) {
      this.#release(
        p,
        `no resume from the peer within ${
          RESUME_WAIT_MS / 1000
        } s; re-sending (the peer drops any it already has)`,
        out,
      );
    }
    const due = p.session.nextDeadline();
    if (due !== undefined && now >= due && !p.session.failed) {
      out.packets.push(...await p.session.poll(now));
    }
    const timer = p.peerAway ? p.probeAt : p.rtoAt;
    // Rounds while the relay link is down are not unanswered: nothing went out.
    if (timer !== undefined && now >= timer && this.#linkUp) {
      if (await this.#probe(p, now, out)) return;
      if (p.peerAway) p.probeAt = now + p.probe.next();
      else {
        p.rtoAt = this.#awaitingAck(p) || p.hs3
          ? now + p.rto.next()
          : undefined;
      }
    }
    if (this.#phase === p) await this.#after(now, out);
  }

  /**
   * One retransmission round (see REHANDSHAKE_AFTER_UNANSWERED); after that
   * many unanswered rounds, a new handshake instead. True in that case.
   */
  async #probe(
    p: { kind: "secure" } & Secure,
    now: number,
    out: ConversationOutput,
  ): Promise<boolean> {
    if (!this.#awaitingAck(p) && this.#outbox.queued > 0) {
      await this.#pump(now, out, 1);
    }
    if (this.#awaitingAck(p)) {
      if (++p.unanswered > REHANDSHAKE_AFTER_UNANSWERED) {
        this.#notice(
          out,
          "the peer stopped acknowledging although the relay delivers to it (it restarted?); starting a new secure session",
        );
        this.#dropSession(p, out);
        this.#dial = true;
        await this.#startInitiator(now, out);
        return true;
      }
      this.#retransmit(p, out);
    } else if (p.hs3) {
      if (++p.hs3.tries > REHANDSHAKE_AFTER_UNANSWERED) p.hs3 = undefined;
      else out.packets.push(p.hs3.packet);
    }
    return false;
  }
}
