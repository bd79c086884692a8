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
 * call are opened together in one `receiveMany`, at most
 * MAX_RECORDS_PER_TURN per call (bounded work per turn).
 * @module
 */

import type { Bytes } from "./bytes.ts";
import {
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_DELIVER_TIMEOUT_MS,
  DEFAULT_OUTBOX,
  MAX_BODY,
  MAX_RECORDS_PER_TURN,
  RESPONDER_BURST_PER_PEER,
  RESPONDER_RATE_PER_PEER,
  RESUME_WAIT_MS,
  SILENT_HANDSHAKES_HINT,
} from "./constants.ts";
import { encodeControl, isControl } from "./control.ts";
import {
  completeFor,
  onHs1,
  onHs2,
  onHs3,
  startInitiator,
  withAddressSuites,
} from "./conversation_handshake.ts";
import {
  after,
  maybeClose,
  onRecords,
  retransmit,
  tickSecure,
} from "./conversation_secure.ts";
import type {
  Attempt,
  ConversationOptions,
  ConversationOutput,
  ConversationStatus,
  EndReason,
  Established,
  Host,
  Phase,
  Secure,
  SendVerdict,
  TrustStatus,
} from "./conversation_types.ts";
import { earliest, TRANSIENT } from "./conversation_types.ts";
import { Inbox, Outbox } from "./delivery.ts";
import {
  PACKET_HS1,
  PACKET_HS2,
  PACKET_HS3,
  PACKET_RECORD,
} from "./handshake.ts";
import type { HandshakeRole } from "./handshake_result.ts";
import { Backoff } from "./backoff.ts";
import {
  PEER_PROBE_BASE_MS,
  PEER_PROBE_MAX_MS,
  RETRANSMIT_BASE_MS,
  RETRANSMIT_MAX_MS,
} from "./constants.ts";
import { TokenBucket } from "./token_bucket.ts";

export type {
  ConversationEvent,
  ConversationOptions,
  ConversationOutput,
  ConversationStatus,
  EndReason,
  SendVerdict,
  TrustLookup,
  TrustStatus,
} from "./conversation_types.ts";

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
  /** Attempts in a row with no RECORD from the peer (see #silentAttempt). */
  #silentHandshakes = 0;
  /** Our previous session (named in our next `resume`). */
  #prev?: { hash: string; delivered: bigint };
  #lock: Promise<unknown> = Promise.resolve();
  #rx: Bytes[] = [];
  /** What lib/conversation_handshake.ts and lib/conversation_secure.ts see of this conversation. */
  readonly #host: Host;

  private constructor(o: ConversationOptions, now: number) {
    this.#o = withAddressSuites(o);
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
    this.#host = new Conversation.#Host(this);
  }

  /**
   * The {@link Host} view of one conversation: one small object whose
   * accessors and methods live on this class's prototype (not ~15 closures
   * per conversation). Declared inside Conversation, so it reads its
   * private fields.
   */
  static readonly #Host = class implements Host {
    readonly #c: Conversation;
    constructor(c: Conversation) {
      this.#c = c;
    }
    get o() {
      return this.#c.#o;
    }
    get outbox() {
      return this.#c.#outbox;
    }
    get inbox() {
      return this.#c.#inbox;
    }
    get stream() {
      return this.#c.#stream;
    }
    get responderBucket() {
      return this.#c.#responderBucket;
    }
    /** Made per handshake (a closure over the options), not kept. */
    get complete() {
      return completeFor(this.#c.#o);
    }
    get phase() {
      return this.#c.#phase;
    }
    set phase(p: Phase) {
      this.#c.#phase = p;
    }
    get dial() {
      return this.#c.#dial;
    }
    set dial(d: boolean) {
      this.#c.#dial = d;
    }
    get lastSecure() {
      return this.#c.#lastSecure;
    }
    get linkUp() {
      return this.#c.#linkUp;
    }
    get closing() {
      return this.#c.#closing;
    }
    notice(out: ConversationOutput, text: string): void {
      this.#c.#notice(out, text);
    }
    end(
      reason: EndReason,
      out: ConversationOutput,
      code?: string,
      message?: string,
    ): void {
      this.#c.#end(reason, out, code, message);
    }
    secure(
      est: Established,
      role: HandshakeRole,
      attempt: Attempt,
      now: number,
      out: ConversationOutput,
    ): Promise<void> {
      return this.#c.#secure(est, role, attempt, now, out);
    }
    async rehandshake(
      s: Secure,
      now: number,
      out: ConversationOutput,
    ): Promise<void> {
      const c = this.#c;
      c.#silentAttempt(out);
      c.#dropSession(s, out);
      c.#dial = true;
      await startInitiator(c.#host, now, out);
    }
  };

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
    const output = await c.#run((out) => startInitiator(c.#host, now, out));
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
      this.#silentHandshakes = 0; // a session answers (a forged one only delays a hint)
      this.#rx.push(packet);
      if (this.#rx.length > 1) return this.#run(() => {}); // drained by the call that queued the first
    }
    return this.#run(async (out) => {
      this.#heard(out);
      if (packet.length < 2 || packet[1] === PACKET_RECORD) return;
      if (packet[1] === PACKET_HS1) {
        return await onHs1(this.#host, packet, now, out);
      }
      if (packet[1] === PACKET_HS2) {
        return await onHs2(this.#host, packet, now, out);
      }
      if (packet[1] === PACKET_HS3) {
        return await onHs3(this.#host, packet, now, out);
      }
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
    // `after`, not only `pump`: what goes out arms the retransmission timer
    // now — an idle conversation had none, and a lost record then waited
    // for the next timer of any kind (the 30 s undelivered report).
    return this.#run((out) => after(this.#host, now, out)).then((o) => ({
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
      retransmit(p, out);
      await after(this.#host, now, out);
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
      await maybeClose(this.#host, now, out);
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
      await startInitiator(this.#host, now, out);
    });
  }

  // ── plumbing ─────────────────────────────────────────────────────────────

  #run(
    fn: (out: ConversationOutput) => void | Promise<void>,
  ): Promise<ConversationOutput> {
    const out: ConversationOutput = { packets: [], events: [] };
    const run = this.#lock.then(async () => {
      if (this.#rx.length > 0) {
        // Bounded work per turn: every queued record has a call of its own
        // behind this one (see receive), so the rest is drained by those.
        const batch = this.#rx.length <= MAX_RECORDS_PER_TURN
          ? this.#rx
          : this.#rx.splice(0, MAX_RECORDS_PER_TURN);
        if (batch === this.#rx) this.#rx = [];
        await onRecords(this.#host, batch, this.#rxNow, out);
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

  /**
   * A handshake timed out, or a session got no answer at all and is replaced:
   * after SILENT_HANDSHAKES_HINT of them in a row (no RECORD from the peer in
   * between) with a peer we had a session with, say once that it may be
   * refusing our key. A peer that refuses sends nothing (PROTOCOL.md §2.3), so
   * this is all we can tell; an unreachable peer looks the same.
   */
  #silentAttempt(out: ConversationOutput): void {
    if (
      ++this.#silentHandshakes !== SILENT_HANDSHAKES_HINT ||
      this.#lastSecure === undefined
    ) return;
    this.#notice(
      out,
      `the peer answered none of the last ${SILENT_HANDSHAKES_HINT} secure-session attempts although we had a session with it: ` +
        "it may be offline, or it may be refusing your identity key if that key changed (a new keys folder or identity file). " +
        "Give the peer your fingerprint and the safety number over another channel (the clients' /verify shows both; the peer's warning shows them " +
        'as "presented fingerprint" and "safety number with the new key"): if they match, the peer accepts your new key (/trust or --trust)',
    );
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
    retransmit(p, out);
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
    const trust: TrustStatus = this.#o.expectFingerprint !== undefined ||
        this.#o.expectEd25519Fingerprint !== undefined
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
    await after(this.#host, now, out);
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
          this.#silentAttempt(out);
          return await startInitiator(this.#host, now, out);
        }
        if (now >= p.retryAt) {
          out.packets.push(p.hs1);
          p.retryAt = now + p.backoff.next();
        }
        return;
      case "responding":
        if (now < p.deadline) return;
        p.hs.abort();
        if (this.#dial) return await startInitiator(this.#host, now, out);
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
        return await tickSecure(this.#host, p, now, out);
    }
  }
}
