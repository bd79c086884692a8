/**
 * The client engine shared by the bank and the customer: relay connection
 * with reconnects, the handshake over the relay (with retransmission, restarts
 * and simultaneous-open tie-break), the secure session (outbox, retransmission
 * of unacknowledged packets, cover traffic, clean close), trust on first use,
 * and the payment scenario. It owns timers and the relay socket but no
 * terminal: it reports {@link ClientEvent}s to a callback and takes input
 * through {@link ChatClient.input}, {@link ChatClient.eof} and
 * {@link ChatClient.quit}, so the terminal UI, the JSON mode and the demo
 * drive the same code.
 * @module
 */

import { keyAlgorithm, spkiAlgorithm } from "../lib/suite.ts";
import { type Bytes, bytesEqual, utf8 } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  fingerprint,
  formatFingerprint,
  safetyNumber,
} from "../lib/fingerprint.ts";
import {
  Initiator,
  PACKET_HS1,
  PACKET_HS2,
  PACKET_HS3,
  PACKET_RECORD,
  Responder,
  type TrustDecision,
} from "../lib/handshake.ts";
import type { Identity } from "../lib/identity.ts";
import type { KnownPeers, PeerRef, PeerStatus } from "../lib/known_peers.ts";
import type { Frame } from "../lib/relay_frame.ts";
import { formatSessionId } from "../lib/registration.ts";
import type { Session, SessionEvent } from "../lib/session.ts";
import { Backoff } from "../lib/backoff.ts";
import {
  describePaymentRequest,
  encodePaymentMessage,
  parsePaymentMessage,
  type PaymentRequest,
  paymentRequest,
  paymentResponse,
} from "../lib/payment.ts";
import { E2E_VERSION, MAX_BODY } from "../lib/constants.ts";
import { TranscriptFile } from "../lib/deno/transcript_file.ts";
import { updateKnownPeers } from "../lib/deno/known_peers_file.ts";
import { type ClientOptions, EXIT } from "./args.ts";
import {
  nodeHashPrimitives,
  nodePrimitives,
} from "../lib/deno/node_primitives.ts";
import type { SessionPrimitives } from "../lib/primitives.ts";
import { encodeControl, isControl, parseControl } from "./control.ts";

/** Messages that fall due within this many ms of the oldest one are reported in the same `undelivered` event. */
const UNDELIVERED_COALESCE_MS = 1000;

/** `--crypto` modes → session primitives (undefined = WebCrypto only, the lib default). */
const PRIMITIVES: Record<
  ClientOptions["crypto"],
  SessionPrimitives | undefined
> = {
  keys: nodeHashPrimitives,
  fast: nodePrimitives,
  webcrypto: undefined,
};

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

/** Trust status shown after the handshake. */
export type TrustStatus = Exclude<PeerStatus, "changed">;

/** Everything the engine reports. */
export type ClientEvent =
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
  | { type: "message"; text: string; counter: number; seq: number; at: string }
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
  | { type: "closed"; reason: string };

/** Dependencies of a {@link ChatClient}: loaded files and I/O. */
export interface ClientDeps {
  /** Our identity (ECDSA P-256; its fingerprint is the one shown). */
  identity: Identity;
  /** Our identities for the other suites (an Ed25519 one for suite 0x0002). */
  identities?: Identity[];
  /** Known peers: the latest snapshot; changes go through `updateKnownPeers` (one entry, under the file's lock) and replace it. */
  knownPeers: KnownPeers;
  /** Path of known_peers.json. */
  knownPeersPath: string;
  /** Opens a relay connection. */
  connect: Connector;
  /** Receives every event. */
  emit: (event: ClientEvent) => void;
  /** The address printed for the peer (computed by the caller). */
  address: (id: Uint8Array) => string;
  /** Clock (ms); default Date.now. */
  now?: () => number;
}

/** Handshake retransmission: first retry after ~0.5 s, at most every 4 s. */
const HS_RETRY = { baseMs: 500, maxMs: 4000 };
/** Retransmission of unacknowledged packets when no ACK comes (ms). */
const RTO = { baseMs: 1500, maxMs: 15000 };
/** Probes towards a peer the relay reported offline/busy (ms). */
const PEER_RETRY = { baseMs: 250, maxMs: 2000 };
/** Probe interval once the relay stopped reporting the peer offline but it stays silent (ms). */
const SILENT_PROBE_MS = 1000;
/**
 * Retransmissions the peer may leave unanswered while the relay delivers
 * them (no peer-offline) before we conclude it lost the session (it
 * restarted) and start a new handshake, re-sending unconfirmed messages.
 */
const SILENT_LIMIT = 3;
/**
 * How long messages re-queued from a lost session are held in a new session
 * waiting for the peer's `resume` (which says what it already delivered);
 * after that they are re-sent anyway (at-least-once fallback).
 */
const RESUME_WAIT_MS = 5000;
/** Relay reconnect schedule (ms). */
const RECONNECT = { baseMs: 200, maxMs: 5000 };
/** Records kept while the responder waits for a lost HS3. */
const MAX_EARLY_RECORDS = 256;
/** Messages sealed per batch by the pump. */
const PUMP_BATCH = 64;
/** Decodes received bodies (non-fatal: invalid UTF-8 shows as U+FFFD). */
const UTF8_DECODER = new TextDecoder();
const UTF8_ENCODER = new TextEncoder();
/** Scratch for {@link fitsBody}: one byte more than a body may have. */
const BODY_SCRATCH = new Uint8Array(MAX_BODY + 1);

/** Whether `text` is at most MAX_BODY bytes of UTF-8, without allocating its encoding. */
export function fitsBody(text: string): boolean {
  if (text.length * 3 <= MAX_BODY) return true; // ≤ 3 UTF-8 bytes per UTF-16 unit
  const { read, written } = UTF8_ENCODER.encodeInto(text, BODY_SCRATCH);
  return read === text.length && written <= MAX_BODY;
}
/** Relay error names that mean "the peer cannot take it right now". */
const TRANSIENT_ERRORS = new Set(["peer-offline", "peer-busy", "rate-limited"]);
/** Close code of a registration replaced by a newer connection with the same ID. */
const CLOSE_REPLACED = 4000;

interface OutMessage {
  id: number;
  text: string;
  /** Where it was last sent without confirmation: session hash (hex) and seq (re-queued messages). */
  was?: { session: string; seq: bigint };
}

type Phase =
  | "connecting"
  | "handshake"
  | "refused"
  | "secure"
  | "closing"
  | "done";

/** The earlier of two optional times. */
function earliest(
  a: number | undefined,
  b: number | undefined,
): number | undefined {
  return a === undefined || (b !== undefined && b < a) ? b : a;
}

/** One run of a bank or customer client; see the module doc. */
export class ChatClient {
  readonly #o: ClientOptions;
  readonly #d: ClientDeps;
  readonly #now: () => number;
  readonly #done = Promise.withResolvers<number>();
  #finished = false;
  /** The conversation's transcript file (`--transcript`), opened at the first secure session. */
  #transcriptFile?: TranscriptFile;
  #queue: Promise<void> = Promise.resolve();
  /** Operations queued by #do and not started yet. */
  #waiting = 0;
  #timer?: ReturnType<typeof setTimeout>;
  /** The deadline #timer is armed for (undefined = none). */
  #timerAt?: number;
  #phase: Phase = "connecting";

  // relay
  #link?: RelayLink;
  #localId: Uint8Array = new Uint8Array(16);
  #reconnecting = false;
  #reconnectDeadline?: number;
  #reconnectBackoff = new Backoff(RECONNECT);

  // peer & handshake
  #peerId?: Uint8Array;
  #initiator?: Initiator<Session>;
  #responder?: Responder<Session>;
  #hs1?: Bytes; // initiator: our HS1; responder: the HS1 answered
  #hs2?: Bytes; // responder: our HS2; initiator: the HS2 processed
  #hs3Pending?: Bytes; // initiator: resend until the responder is heard
  #hsRetryAt?: number;
  #hsBackoff = new Backoff(HS_RETRY);
  #waitDeadline?: number;
  #peerSeen = false;
  #lastTrust?: {
    status: PeerStatus;
    spki: Bytes;
    fp: string;
    previous?: string;
    /** Who presented this key, for known_peers.json (per identity algorithm, see #peerRefFor). */
    ref: PeerRef;
  };
  #early: Bytes[] = [];
  /** A pump for typed lines is queued (see #onInput). */
  #pumpQueued = false;
  /** Records from the peer not opened yet (see #queueRecord). */
  #rx: Bytes[] = [];

  // session
  #session?: Session;
  #trust?: TrustStatus;
  #peerFp?: string;
  #safety?: string;
  #nextMsgId = 1;
  #outbox: OutMessage[] = [];
  #inflight = new Map<bigint, OutMessage>();
  #peerOnline = true;
  #retryAt?: number;
  #peerBackoff = new Backoff(PEER_RETRY);
  #rtoAt?: number;
  #rtoBackoff = new Backoff(RTO);
  #silent = 0;
  #hs3Tries = 0;
  /** Sent, not yet acknowledged, not yet reported: message id → first `sent` time (insertion = time order). */
  #unconfirmedSince = new Map<number, number>();
  /** Reported `undelivered`, not acknowledged since. */
  #reportedUndelivered = new Set<number>();
  /** Highest seq delivered in order from the peer in the current session. */
  #rxSeq = 0n;
  /** Our previous session with the peer (told to it in our `resume`). */
  #prev?: { hash: string; delivered: bigint };
  /** Set while re-queued messages wait for the peer's `resume`: when we stop waiting. */
  #holdUntil?: number;

  // closing & UI state
  #eof = false;
  #closeRequested = false;
  #closeSent = false;
  #closeDeadline?: number;
  #prompt?: {
    kind: "payment" | "verify" | "trust";
    answer: (yes: boolean) => Promise<void>;
  };
  #scenarioDone = false;
  /** Cache of {@link #isoNow}. */
  #isoMs = NaN;
  #iso = "";
  #paymentSent?: { body: string; request: PaymentRequest };

  /** Creates the client; call {@link run}. */
  constructor(options: ClientOptions, deps: ClientDeps) {
    this.#o = options;
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** Connects and runs until the conversation ends; resolves to the exit code. */
  async run(): Promise<number> {
    try {
      this.#attach(await this.#d.connect());
    } catch (e) {
      const kind = (e as { kind?: string }).kind;
      this.#error(
        kind === "tls" ? "tls" : "relay-unreachable",
        (e as Error).message,
      );
      return EXIT.relay;
    }
    this.#localId = this.#link!.id.slice();
    this.#d.emit({
      type: "ready",
      role: this.#o.role,
      id: formatSessionId(this.#localId),
      fingerprint: (await fingerprint(this.#d.identity.spki)).toHex(),
      ...await this.#ed25519Fingerprint(),
      address: this.#d.address(this.#localId),
    });
    const now = this.#now();
    if (this.#o.waitS > 0) this.#waitDeadline = now + this.#o.waitS * 1000;
    this.#phase = "handshake";
    if (this.#o.peer) {
      this.#peerId = this.#o.peer.id.slice();
      this.#do(() => this.#startInitiator());
    } else {
      this.#newResponder();
    }
    this.#reschedule();
    return this.#done.promise;
  }

  /** A line typed by the user (interactive) or read from stdin (scripted). */
  input(line: string): void {
    this.#do(() => this.#onInput(line), false, () => this.#notSentAfterEnd(1));
  }

  /**
   * Lines read together (a stdin chunk): handled in order as by
   * {@link input}, in one queued operation, their messages sealed in batches.
   */
  inputLines(lines: string[]): void {
    if (lines.length === 0) return;
    this.#do(
      async () => {
        for (let i = 0; i < lines.length; i++) {
          if (this.#finished) return this.#notSentAfterEnd(lines.length - i);
          await this.#flushRecords();
          await this.#onInput(lines[i], true);
        }
        await this.#pump();
      },
      false,
      () => this.#notSentAfterEnd(lines.length),
    );
  }

  /** Input that arrived after the conversation ended is refused loudly, never dropped in silence. */
  #notSentAfterEnd(count: number): void {
    this.#error(
      "not-sent",
      `${count} input line(s) not sent: the conversation has already ended`,
      { lines: count },
    );
  }

  /** End of input: close once everything sent is acknowledged. */
  eof(): void {
    this.#do(() => {
      this.#eof = true;
      this.#maybeRequestClose();
      return this.#maybeClose();
    });
  }

  /** /quit or Ctrl-C: close cleanly now (give up at once if no session). */
  quit(reason = "quit"): void {
    this.#do(() => this.#quit(reason));
  }

  // ── serialization, timers ────────────────────────────────────────────────

  /**
   * Runs `fn` after everything queued before; an exception ends the run.
   * Records from the peer queued before `fn` are opened first (in one
   * `receiveMany`), unless `fn` only queues another record (`batchable`).
   */
  #do(
    fn: () => void | Promise<void>,
    batchable = false,
    onSkip?: () => void,
  ): void {
    this.#waiting++;
    this.#queue = this.#queue.then(async () => {
      this.#waiting--;
      if (this.#finished) return onSkip?.();
      try {
        if (!batchable) await this.#flushRecords();
        await fn();
      } catch (e) {
        await this.#crash(e);
      }
      if (!this.#finished) this.#reschedule();
    });
  }

  async #crash(e: unknown): Promise<void> {
    if (e instanceof ProtocolError) {
      if (e.code === "identity-changed") return await this.#refused(e);
      const inHandshake = this.#phase === "handshake";
      this.#error(e.code, e.message);
      return this.#finish(inHandshake ? EXIT.handshake : EXIT.other, "failed");
    }
    this.#error("internal", (e as Error)?.message ?? String(e));
    this.#finish(EXIT.other, "failed");
  }

  /** Arms the timer for the earliest deadline; left alone when that deadline is already armed. */
  #reschedule(): void {
    if (this.#finished) {
      clearTimeout(this.#timer);
      this.#timerAt = undefined;
      return;
    }
    const secure = this.#phase === "secure" || this.#phase === "closing";
    let at = earliest(this.#session?.nextDeadline(), this.#rtoAt);
    at = earliest(at, this.#retryAt);
    at = earliest(at, this.#hsRetryAt);
    at = earliest(at, secure ? undefined : this.#waitDeadline);
    at = earliest(at, this.#closeDeadline);
    at = earliest(at, this.#undeliveredDue());
    at = earliest(at, this.#holdUntil);
    if (at === this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    if (at === undefined) return;
    const delay = Math.max(0, at - this.#now());
    this.#timer = setTimeout(() => {
      this.#timerAt = undefined;
      this.#do(() => this.#tick());
    }, Math.min(delay, 2 ** 31 - 1));
  }

  async #tick(): Promise<void> {
    const now = this.#now();
    if (
      this.#waitDeadline !== undefined && now >= this.#waitDeadline &&
      (this.#phase === "handshake" || this.#phase === "connecting")
    ) {
      const who = this.#peerId
        ? `peer ${formatSessionId(this.#peerId)}`
        : "no peer";
      this.#error(
        "peer-timeout",
        `${who} ${
          this.#peerSeen ? "did not complete the handshake" : "never arrived"
        } within ${this.#o.waitS} s (is the ID right and is the peer connected to the same relay?)`,
      );
      return this.#finish(EXIT.noPeer, "peer never arrived");
    }
    if (this.#closeDeadline !== undefined && now >= this.#closeDeadline) {
      const ids = [...this.#inflight.values(), ...this.#outbox].map((m) =>
        m.id
      );
      this.#error(
        "close-timeout",
        `could not close cleanly within ${this.#o.closeTimeoutS} s` +
          (ids.length
            ? `; messages not confirmed as delivered: #${ids.join(", #")}`
            : ""),
        { ids },
      );
      return this.#finish(EXIT.other, "close timed out");
    }
    this.#reportUndelivered(now);
    // Handshake timers.
    if (this.#initiator?.phase === "wait-hs2") {
      try {
        this.#initiator.checkTimeout(now);
      } catch {
        this.#notice("handshake timed out; starting a new one");
        await this.#startInitiator();
      }
      if (
        this.#hsRetryAt !== undefined && now >= this.#hsRetryAt && this.#hs1
      ) {
        this.#sendToPeer(this.#hs1);
        this.#hsRetryAt = now + this.#hsBackoff.next();
      }
    } else {
      this.#hsRetryAt = undefined;
    }
    if (this.#responder?.phase === "wait-hs3") {
      try {
        this.#responder.checkTimeout(now);
      } catch {
        if (this.#session) {
          this.#handshakeBesideSessionFailed(
            new ProtocolError("timeout", "the new handshake was not finished"),
          );
        } else {
          this.#notice(
            "the peer did not finish the handshake in time; waiting again",
          );
          if (this.#o.peer) await this.#startInitiator();
          else this.#newResponder();
        }
      }
    }
    const s = this.#session;
    if (!s) return;
    if (this.#holdUntil !== undefined && now >= this.#holdUntil) {
      this.#releaseHeld(
        `no resume from the peer within ${RESUME_WAIT_MS / 1000} s; re-sending`,
      );
      await this.#afterSession();
    }
    const due = s.nextDeadline();
    if (due !== undefined && now >= due && !s.failed) {
      this.#sendPackets(await s.poll(now));
      await this.#afterSession();
    }
    if (this.#retryAt !== undefined && now >= this.#retryAt) {
      // Peer reported away: probe with what is unacknowledged (or one queued message).
      const wasSilent = this.#silent > 0;
      if (await this.#probe()) return;
      this.#retryAt = now +
        (wasSilent ? SILENT_PROBE_MS : this.#peerBackoff.next());
    }
    if (this.#rtoAt !== undefined && now >= this.#rtoAt && this.#peerOnline) {
      if (await this.#probe()) return;
      this.#rtoAt = s.unacked().length > 0 || this.#hs3Pending
        ? now + this.#rtoBackoff.next()
        : undefined;
    }
  }

  /**
   * Retransmits; after SILENT_LIMIT unanswered rounds that the relay did
   * deliver, starts a new session instead. Returns true in that case.
   */
  async #probe(): Promise<boolean> {
    const s = this.#session!;
    if (s.unacked().length === 0 && this.#outbox.length > 0) {
      await this.#pump(1);
    }
    if (s.unacked().length > 0) {
      if (++this.#silent > SILENT_LIMIT && this.#peerId) {
        await this.#rehandshake(
          "the peer stopped answering although the relay delivers to it (it restarted?)",
        );
        return true;
      }
      this.#retransmit();
    } else if (this.#hs3Pending) {
      // Nothing to acknowledge yet: resend HS3 a few times in case it was lost.
      if (++this.#hs3Tries > SILENT_LIMIT) this.#hs3Pending = undefined;
      else this.#sendToPeer(this.#hs3Pending);
    }
    return false;
  }

  /** Drops the session, re-queues unconfirmed messages and handshakes again as initiator. */
  async #rehandshake(why: string): Promise<void> {
    this.#notice(`${why}; starting a new secure session`);
    this.#dropSession();
    await this.#startInitiator();
    if (this.#o.waitS > 0) {
      this.#waitDeadline = this.#now() + this.#o.waitS * 1000;
    }
  }

  /** When the oldest sent-but-unacknowledged message becomes `undelivered`. */
  #undeliveredDue(): number | undefined {
    for (const at of this.#unconfirmedSince.values()) {
      return at + this.#o.deliverTimeoutS * 1000;
    }
    return undefined;
  }

  /**
   * Tells the user about sent messages the peer has not acknowledged within
   * --deliver-timeout (a relay that drops them silently, or a dead path):
   * error `undelivered` naming them; retransmission goes on, and a late
   * acknowledgement still produces `delivered`.
   */
  #reportUndelivered(now: number): void {
    const limit = this.#o.deliverTimeoutS * 1000;
    const ids: number[] = [];
    for (const [id, at] of this.#unconfirmedSince) {
      // Messages sent in one burst are reported together, not one event each.
      if (now < at + limit - UNDELIVERED_COALESCE_MS) break;
      ids.push(id);
    }
    if (ids.length > 0) {
      const first = this.#unconfirmedSince.get(ids[0])!;
      if (now < first + limit) return; // the oldest is not due yet
    }
    if (ids.length === 0) return;
    for (const id of ids) {
      this.#unconfirmedSince.delete(id);
      this.#reportedUndelivered.add(id);
    }
    this.#error(
      "undelivered",
      `no delivery confirmation from the peer within ${this.#o.deliverTimeoutS} s for message(s) #${
        ids.join(", #")
      } — the relay or the network may be dropping them; still retrying`,
      { ids },
    );
  }

  #finish(code: number, reason: string): void {
    if (this.#finished) return;
    const lost = [
      ...this.#unconfirmedSince.keys(),
      ...this.#reportedUndelivered,
    ]
      .sort((a, b) => a - b);
    if (code !== EXIT.ok && lost.length > 0 && reason !== "close timed out") {
      this.#error(
        "undelivered",
        `stopping; message(s) never confirmed as delivered: #${
          lost.join(", #")
        }`,
        { ids: lost },
      );
    }
    this.#finished = true;
    this.#phase = "done";
    clearTimeout(this.#timer);
    this.#timerAt = undefined;
    this.#initiator?.abort();
    this.#responder?.abort();
    const link = this.#link;
    this.#link = undefined;
    this.#d.emit({ type: "closed", reason });
    const tf = this.#transcriptFile;
    tf?.endSession("stopped", this.#now());
    const saving = tf?.close().catch((e) =>
      this.#error("transcript", `${tf.path}: ${(e as Error).message}`)
    );
    const closing = link
      ? link.close(1000, "bye").catch(() => {})
      : Promise.resolve();
    Promise.all([closing, saving]).then(() => this.#done.resolve(code));
  }

  // ── relay link ───────────────────────────────────────────────────────────

  #attach(link: RelayLink): void {
    this.#link = link;
    link.onFrame = (f) =>
      this.#do(
        () => this.#onFrame(f),
        f.type === "data" && f.payload[1] === PACKET_RECORD,
      );
    link.closed.then((info) => this.#do(() => this.#onLinkClosed(link, info)));
  }

  #onLinkClosed(link: RelayLink, info: { code: number; reason: string }): void {
    if (link !== this.#link) return;
    this.#link = undefined;
    if (info.code === CLOSE_REPLACED) {
      this.#error(
        "replaced",
        "another client registered the same session ID (same keys folder?); stopping",
      );
      return this.#finish(EXIT.other, "replaced");
    }
    this.#notice(
      `relay connection lost (${info.code}${
        info.reason ? " " + info.reason : ""
      }); reconnecting`,
    );
    this.#reconnectDeadline ??= this.#now() + this.#o.reconnectS * 1000;
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#reconnecting || this.#finished) return;
    this.#reconnecting = true;
    setTimeout(async () => {
      if (this.#finished) return;
      try {
        const link = await this.#d.connect();
        this.#reconnecting = false;
        if (this.#finished) {
          link.close();
          return;
        }
        this.#do(() => this.#reattached(link));
      } catch (e) {
        this.#reconnecting = false;
        if (this.#finished) return;
        if (this.#now() >= (this.#reconnectDeadline ?? 0)) {
          this.#do(() => {
            this.#error(
              "relay-unreachable",
              `the relay stayed unreachable for ${this.#o.reconnectS} s: ${
                (e as Error).message
              }`,
            );
            this.#finish(EXIT.relay, "relay lost");
          });
        } else {
          this.#scheduleReconnect();
        }
      }
    }, this.#reconnectBackoff.next());
  }

  async #reattached(link: RelayLink): Promise<void> {
    this.#attach(link);
    this.#reconnectBackoff.reset();
    this.#reconnectDeadline = undefined;
    this.#notice("reconnected to the relay");
    if (this.#initiator?.phase === "wait-hs2" && this.#hs1) {
      this.#sendToPeer(this.#hs1);
    }
    this.#peerOnline = true;
    this.#retransmit();
    await this.#pump();
    await this.#maybeClose();
  }

  #sendToPeer(packet: Uint8Array): void {
    if (this.#peerId && this.#link?.open) this.#link.send(this.#peerId, packet);
  }

  #sendPackets(packets: Uint8Array[]): void {
    for (const p of packets) this.#sendToPeer(p);
  }

  /** Resends HS3 (if not yet confirmed) and every unacknowledged packet, byte-identical. */
  #retransmit(): void {
    if (this.#hs3Pending) this.#sendToPeer(this.#hs3Pending);
    if (this.#session && !this.#session.failed) {
      this.#sendPackets(this.#session.unacked());
    }
  }

  async #onFrame(frame: Frame): Promise<void> {
    if (frame.type === "error") {
      if (!TRANSIENT_ERRORS.has(frame.name)) {
        this.#notice(`relay error ${frame.name}: ${frame.reason}`);
        return;
      }
      if (this.#peerId && !bytesEqual(frame.peer, this.#peerId)) return;
      this.#silent = 0;
      if (this.#session && this.#peerOnline) {
        this.#peerOnline = false;
        this.#rtoAt = undefined;
        this.#notice(
          `peer unavailable (${frame.name}); messages wait in the outbox`,
        );
      }
      if (this.#session && this.#retryAt === undefined) {
        this.#retryAt = this.#now() + this.#peerBackoff.next();
      }
      return;
    }
    if (frame.type !== "data") return;
    const p = frame.payload;
    if (p.length < 2 || p[0] !== E2E_VERSION) return;
    const from = frame.peer;
    const fromPeer = this.#peerId !== undefined &&
      bytesEqual(from, this.#peerId);
    if (fromPeer) {
      this.#peerSeen = true;
      const wasAway = !this.#peerOnline;
      this.#peerOnline = true;
      this.#silent = 0;
      this.#retryAt = undefined;
      this.#peerBackoff.reset();
      if (wasAway) {
        this.#notice("peer is back");
        this.#rtoBackoff.reset();
        this.#rtoAt = undefined;
        this.#retransmit();
      }
    }
    switch (p[1]) {
      case PACKET_HS1:
        return await this.#onHs1(from, p);
      case PACKET_HS2:
        if (fromPeer) await this.#onHs2(p);
        return;
      case PACKET_HS3:
        if (fromPeer) await this.#onHs3(p);
        return;
      case PACKET_RECORD:
        if (fromPeer) this.#queueRecord(p);
        return;
    }
  }

  // ── handshake ────────────────────────────────────────────────────────────

  /**
   * Who presented a key, for known_peers.json: the peer's relay ID (and
   * name) for its P-256 key; for the Ed25519 key of suite 0x0002 the name
   * `NAME/ed25519` alone, since the relay ID is bound to the P-256 key (each
   * identity key has its own entry, trust status and verified flag).
   */
  #peerRefFor(spki: Bytes): PeerRef {
    return spkiAlgorithm(spki) === "Ed25519"
      ? { name: `${this.#o.peerName}/ed25519` }
      : this.#peerRef();
  }

  async #ed25519Fingerprint(): Promise<{ ed25519Fingerprint?: string }> {
    const ed = this.#d.identities?.find((i) =>
      keyAlgorithm(i.privateKey) === "Ed25519"
    );
    return ed
      ? { ed25519Fingerprint: (await fingerprint(ed.spki)).toHex() }
      : {};
  }

  /** Our identity of the peer key's algorithm (the one the handshake proved). */
  #ownSpki(peerSpki: Bytes): Bytes {
    const alg = spkiAlgorithm(peerSpki);
    return [this.#d.identity, ...(this.#d.identities ?? [])].find((i) =>
      keyAlgorithm(i.privateKey) === alg
    )?.spki ?? this.#d.identity.spki;
  }

  #trustCallback = (spki: Bytes, fp: string): TrustDecision => {
    const ref = this.#peerRefFor(spki);
    const check = this.#d.knownPeers.check(ref, fp);
    this.#lastTrust = {
      status: check.status,
      spki: spki.slice(),
      fp,
      previous: check.previous,
      ref,
    };
    if (check.status === "changed") {
      return {
        code: "identity-changed",
        message:
          `the identity key of ${
            JSON.stringify(ref.name ?? this.#o.peerName)
          } has CHANGED ` +
          `(recorded ${check.previous}, presented ${fp}); refusing`,
      };
    }
    return "ok";
  };

  /** The peer as known_peers.json links it: its relay ID (and the display name). */
  #peerRef(): PeerRef {
    return {
      relayId: this.#peerId ? formatSessionId(this.#peerId) : undefined,
      name: this.#o.peerName,
    };
  }

  /** One change to known_peers.json, read-modify-write under its lock; keeps the fresh snapshot. */
  async #updatePeers(change: (peers: KnownPeers) => unknown): Promise<void> {
    const { peers } = await updateKnownPeers(this.#d.knownPeersPath, change);
    this.#d.knownPeers = peers;
  }

  #sessionOptions() {
    return {
      coverRate: this.#o.coverRate,
      signEvery: this.#o.scenario ? 1 : this.#o.signEvery,
      primitives: PRIMITIVES[this.#o.crypto],
    };
  }

  async #startInitiator(): Promise<void> {
    this.#responder = undefined;
    this.#initiator?.abort();
    const { handshake, message } = await Initiator.start({
      identity: this.#d.identity,
      identities: this.#d.identities,
      suites: this.#o.suites,
      localId: this.#localId as Bytes,
      peerId: this.#peerId! as Bytes,
      now: this.#now(),
      trust: this.#trustCallback,
      sessionOptions: this.#sessionOptions(),
    });
    this.#initiator = handshake;
    this.#hs1 = message;
    this.#hs2 = undefined;
    this.#hsBackoff.reset();
    this.#hsRetryAt = this.#now() + this.#hsBackoff.next();
    this.#phase = "handshake";
    this.#sendToPeer(message);
  }

  #newResponder(): void {
    this.#initiator = undefined;
    this.#responder = Responder.create({
      identity: this.#d.identity,
      identities: this.#d.identities,
      suites: this.#o.suites,
      localId: this.#localId as Bytes,
      trust: this.#trustCallback,
      sessionOptions: this.#sessionOptions(),
    });
    if (!this.#o.peer) this.#peerId = undefined;
    this.#hs1 = this.#hs2 = undefined;
    this.#early = [];
  }

  async #onHs1(from: Uint8Array, p: Bytes): Promise<void> {
    const fromPeer = this.#peerId !== undefined &&
      bytesEqual(from, this.#peerId);
    if (this.#o.peer && !fromPeer) return; // we only talk to the peer we were given
    if (this.#phase === "refused") return;
    if (this.#initiator?.phase === "wait-hs2") {
      // Simultaneous open: the side with the smaller ID becomes the responder.
      if (formatSessionId(this.#localId) > formatSessionId(from)) return;
      this.#notice("both sides started a handshake; answering the peer's");
      this.#newResponder();
      this.#peerId = from.slice();
    } else if (this.#session) {
      if (!fromPeer) return;
      if (this.#hs1 && bytesEqual(p, this.#hs1)) {
        if (this.#responder?.phase === "wait-hs3" && this.#hs2) {
          this.#sendToPeer(this.#hs2);
        }
        return;
      }
      // HS1 is unauthenticated (a relay can replay an old one): the live
      // session stays until the new handshake has authenticated the peer
      // (#onHs3 switches); a failed or abandoned attempt leaves it intact.
      this.#notice(
        "the peer started a new secure session (it restarted?); answering — the current session stays until the new one is authenticated",
      );
      const peerId = this.#peerId;
      this.#newResponder();
      this.#peerId = peerId;
      try {
        const out = await this.#responder!.receive(p, {
          now: this.#now(),
          from,
        });
        this.#hs1 = p.slice();
        this.#hs2 = out.send!;
        this.#sendToPeer(out.send!);
      } catch (e) {
        this.#handshakeBesideSessionFailed(e);
      }
      return;
    } else if (this.#responder?.phase === "wait-hs3") {
      if (!fromPeer) return;
      if (this.#hs1 && bytesEqual(p, this.#hs1)) {
        if (this.#hs2) this.#sendToPeer(this.#hs2);
        return;
      }
      this.#newResponder();
      this.#peerId = from.slice();
    } else if (this.#responder?.phase === "wait-hs1") {
      this.#peerId = from.slice();
    } else {
      return;
    }
    this.#peerSeen = true;
    let out;
    try {
      out = await this.#responder!.receive(p, { now: this.#now(), from });
    } catch (e) {
      return this.#waitingHandshakeFailed(e);
    }
    this.#hs1 = p.slice();
    this.#hs2 = out.send!;
    this.#sendToPeer(out.send!);
  }

  async #onHs2(p: Bytes): Promise<void> {
    if (this.#initiator?.phase !== "wait-hs2") {
      if (this.#hs2 && bytesEqual(p, this.#hs2) && this.#hs3Pending) {
        this.#sendToPeer(this.#hs3Pending);
      }
      return;
    }
    const out = await this.#initiator.receive(p, this.#now());
    this.#hs2 = p.slice();
    this.#hsRetryAt = undefined;
    this.#sendToPeer(out.send);
    this.#hs3Pending = out.send;
    this.#hs3Tries = 0;
    await this.#secure(out.session, "initiator");
  }

  async #onHs3(p: Bytes): Promise<void> {
    if (this.#responder?.phase !== "wait-hs3") return;
    let out;
    try {
      out = await this.#responder.receive(p, {
        now: this.#now(),
        from: this.#peerId,
      });
    } catch (e) {
      if (this.#session) return this.#handshakeBesideSessionFailed(e);
      return this.#waitingHandshakeFailed(e);
    }
    if (this.#session) this.#dropSession(); // the new session is authenticated: it replaces the old one
    await this.#secure(out.session!, "responder");
    const early = this.#early;
    this.#early = [];
    if (early.length > 0) await this.#onRecords(early);
  }

  /**
   * A responder handshake failed before any session existed. A client that
   * waits for whoever arrives (no --peer) must not be stopped by one bad HS1
   * from any registered stranger: it says so and keeps waiting. A client given
   * --peer, or a changed identity (a completed, signed handshake), still ends.
   */
  #waitingHandshakeFailed(e: unknown): void {
    if (
      this.#o.peer || !(e instanceof ProtocolError) ||
      e.code === "identity-changed"
    ) throw e;
    this.#notice(
      `a handshake attempt failed (${e.code}): ignored; still waiting for the peer`,
    );
    this.#newResponder();
    this.#peerSeen = false;
  }

  /**
   * A handshake started by an (unauthenticated) HS1 while a session is live
   * failed: forged, spliced or replayed. Drop the attempt, keep the session.
   */
  #handshakeBesideSessionFailed(e: unknown): void {
    if (
      !(e instanceof ProtocolError) || e.code === "identity-changed"
    ) throw e;
    this.#responder = undefined;
    this.#hs1 = this.#hs2 = undefined;
    this.#early = [];
    this.#notice(
      `a new handshake attempt failed (${e.code}): ignored; the current secure session continues`,
    );
  }

  async #refused(e: ProtocolError): Promise<void> {
    const t = this.#lastTrust;
    this.#phase = "refused";
    this.#initiator = this.#responder = undefined;
    this.#hsRetryAt = undefined;
    const sn = t
      ? await safetyNumber(this.#ownSpki(t.spki), t.spki)
      : undefined;
    this.#error("identity-changed", e.message, {
      peerName: this.#o.peerName,
      previousFingerprint: t?.previous,
      presentedFingerprint: t?.fp,
      safetyNumber: sn,
    });
    if (this.#o.json) return this.#finish(EXIT.trust, "peer identity changed");
    this.#prompt = {
      kind: "trust",
      answer: async (yes) => {
        if (!yes || !t) return this.#notice("key not trusted; /quit to leave");
        const ref = t.ref;
        await this.#updatePeers((p) => p.retrust(ref, t.fp, this.#now()));
        this.#notice(
          `new key of ${this.#o.peerName} trusted; starting a new handshake`,
        );
        if (this.#peerId) await this.#startInitiator();
        else this.#newResponder();
        this.#phase = "handshake";
      },
    };
    this.#notice(
      "Compare the safety number above with your peer over another channel. " +
        "Type /trust to accept the new key, or /quit.",
    );
  }

  // ── session ──────────────────────────────────────────────────────────────

  async #secure(
    session: Session,
    role: "initiator" | "responder",
  ): Promise<void> {
    const t = this.#lastTrust!;
    this.#session = session;
    this.#phase = this.#closeRequested ? "closing" : "secure";
    this.#peerFp = t.fp;
    this.#safety = await safetyNumber(this.#ownSpki(t.spki), t.spki);
    const ref = t.ref;
    await this.#updatePeers((p) => p.record(ref, t.fp, this.#now()));
    await this.#beginTranscript(session);
    this.#trust = t.status === "verified"
      ? "verified"
      : t.status === "known"
      ? "known"
      : "new";
    this.#waitDeadline = undefined;
    this.#hsRetryAt = undefined;
    this.#initiator = undefined;
    const now = this.#now();
    if (role === "initiator") this.#rtoAt = now + this.#rtoBackoff.next(); // until HS3 is confirmed
    this.#sendPackets(await session.poll(now)); // starts the session's timers (cover traffic)
    await this.#sendResume(session, now);
    this.#d.emit({
      type: "secure",
      peer: formatSessionId(this.#peerId!),
      peerName: this.#o.peerName,
      suite: spkiAlgorithm(t.spki) === "Ed25519" ? "x25519" : "p256",
      peerFingerprint: t.fp,
      safetyNumber: this.#safety,
      trust: this.#trust,
      role,
    });
    if (
      this.#o.scenario === "payment" && this.#o.role === "bank" &&
      !this.#paymentSent
    ) {
      const request = paymentRequest(this.#o.payment);
      const body = encodePaymentMessage(request);
      this.#paymentSent = { body, request };
      this.#outbox.unshift({ id: this.#nextMsgId++, text: body });
      this.#d.emit({
        type: "payment",
        event: "request",
        direction: "sent",
        ...request,
      });
    }
    await this.#pump();
  }

  /**
   * Sends our `resume` as the first DATA message of a new session, and holds
   * messages re-queued from a lost session until the peer's `resume` says
   * which of them it already delivered (PROTOCOL.md §2.4).
   */
  async #sendResume(session: Session, now: number): Promise<void> {
    this.#rxSeq = 0n;
    const body = encodeControl({
      kind: "resume",
      prev: this.#prev?.hash ?? null,
      delivered: Number(this.#prev?.delivered ?? 0n),
      role: this.#o.role,
    });
    this.#sendPackets(await session.send(body, now));
    this.#holdUntil = this.#outbox.some((m) => m.was)
      ? now + RESUME_WAIT_MS
      : undefined;
  }

  /** A control message from the peer (never shown as a chat message). */
  #onControl(body: Uint8Array): void {
    let m;
    try {
      m = parseControl(body);
    } catch (e) {
      return this.#notice(
        `ignored a malformed control message from the peer: ${
          (e as Error).message
        }`,
      );
    }
    if (m?.kind !== "resume" || this.#holdUntil === undefined) return;
    const delivered = BigInt(m.delivered);
    const confirmed = this.#outbox.filter((x) =>
      x.was !== undefined && m.prev !== null && x.was.session === m.prev &&
      x.was.seq <= delivered
    );
    if (confirmed.length > 0) {
      const gone = new Set(confirmed);
      this.#outbox = this.#outbox.filter((x) => !gone.has(x));
      const at = this.#isoNow();
      for (const x of confirmed) {
        this.#unconfirmedSince.delete(x.id);
        this.#reportedUndelivered.delete(x.id);
        this.#d.emit({ type: "delivered", id: x.id, at });
      }
      this.#notice(
        `the peer had already received message(s) #${
          confirmed.map((x) => x.id).join(", #")
        } in the previous session: not re-sent`,
      );
    }
    this.#releaseHeld(
      m.prev === null
        ? "the peer has no previous session (it restarted); re-sending"
        : "re-sending",
    );
  }

  /** Ends the hold of re-queued messages: what is left in the outbox goes out in this session. */
  #releaseHeld(why: string): void {
    this.#holdUntil = undefined;
    const left = this.#outbox.filter((m) => m.was);
    for (const m of this.#outbox) m.was = undefined;
    if (left.length > 0) {
      this.#notice(
        `${why} ${left.length} unconfirmed message(s): #${
          left.map((m) => m.id).join(", #")
        }`,
      );
    }
  }

  /**
   * Forgets a session the peer abandoned. Its unconfirmed messages go back to
   * the front of the outbox for the next session, tagged with the seq they
   * had: the new session holds them until the peer's `resume` tells which
   * ones it already delivered (exactly-once across a re-handshake; a peer
   * that really lost its session gets them all again).
   */
  #dropSession(): void {
    this.#transcriptFile?.endSession("replaced", this.#now());
    const hash = this.#session?.transcript?.context.sessionHash.toHex();
    if (hash !== undefined) {
      this.#prev = { hash, delivered: this.#rxSeq };
    }
    const unconfirmed = [...this.#inflight.entries()].sort((a, b) =>
      a[0] < b[0] ? -1 : 1
    )
      .map(([seq, m]) => ({
        ...m,
        was: hash === undefined ? undefined : { session: hash, seq },
      }));
    if (unconfirmed.length) {
      this.#notice(
        `${unconfirmed.length} unconfirmed message(s) will be re-sent in the new session: #${
          unconfirmed.map((m) => m.id).join(", #")
        } (unless the peer confirms it already has them)`,
      );
      this.#outbox.unshift(...unconfirmed);
    }
    this.#holdUntil = undefined;
    this.#inflight.clear();
    this.#silent = 0;
    this.#retryAt = undefined;
    this.#peerOnline = true;
    this.#closeSent = false;
    this.#session = undefined;
    this.#hs3Pending = undefined;
    this.#rtoAt = undefined;
    this.#phase = "handshake";
  }

  /**
   * Queues a record from the peer: consecutive records are opened together
   * by the next non-record operation (a no-op one is queued behind them), so
   * a burst costs one pipelined `receiveMany` instead of one crypto round
   * trip per record, in the same order as before.
   */
  #queueRecord(p: Bytes): void {
    this.#rx.push(p);
    if (this.#rx.length === 1) this.#do(() => {});
  }

  async #flushRecords(): Promise<void> {
    if (this.#rx.length === 0) return;
    const batch = this.#rx;
    this.#rx = [];
    await this.#onRecords(batch);
  }

  async #onRecords(ps: Bytes[]): Promise<void> {
    const s = this.#session;
    if (!s) {
      for (const p of ps) {
        if (
          this.#responder?.phase === "wait-hs3" &&
          this.#early.length < MAX_EARLY_RECORDS
        ) {
          this.#early.push(p.slice());
        }
      }
      return;
    }
    if (s.failed) return;
    for (const p of ps) {
      if (
        this.#responder?.phase === "wait-hs3" &&
        this.#early.length < MAX_EARLY_RECORDS
      ) {
        this.#early.push(p.slice()); // may belong to the session being negotiated
      }
    }
    const before = s.stats.packetsReceived;
    const { events, packets } = await s.receiveMany(ps, this.#now());
    if (s.stats.packetsReceived > before) this.#hs3Pending = undefined;
    this.#sendPackets(packets);
    for (const ev of events) await this.#onSessionEvent(ev);
    await this.#afterSession();
  }

  async #onSessionEvent(ev: SessionEvent): Promise<void> {
    const at = this.#isoNow();
    switch (ev.type) {
      case "message": {
        this.#rxSeq = ev.seq;
        if (isControl(ev.body)) {
          this.#onControl(ev.body);
          break;
        }
        const text = UTF8_DECODER.decode(ev.body);
        this.#d.emit({
          type: "message",
          text,
          counter: Number(ev.counter),
          seq: Number(ev.seq),
          at,
        });
        await this.#onPaymentMessage(text);
        break;
      }
      case "acked": {
        let progress = false;
        for (const seq of ev.seqs) {
          progress = true;
          const m = this.#inflight.get(seq);
          if (!m) continue;
          this.#inflight.delete(seq);
          this.#unconfirmedSince.delete(m.id);
          this.#reportedUndelivered.delete(m.id);
          this.#d.emit({ type: "delivered", id: m.id, at });
        }
        if (progress) {
          this.#rtoBackoff.reset();
          this.#rtoAt = undefined;
          this.#silent = 0;
        }
        break;
      }
      case "peer-closed":
        if (!this.#closeSent) this.#notice("the peer closed the conversation");
        if (this.#outbox.length) {
          const ids = this.#outbox.map((m) => m.id);
          this.#error(
            "not-sent",
            `the peer closed first; messages not sent: #${ids.join(", #")}`,
            {
              ids,
            },
          );
          this.#outbox = [];
        }
        this.#phase = "closing";
        break;
      case "closed":
        await this.#writeTranscript();
        return this.#finish(EXIT.ok, "conversation closed");
    }
  }

  /** After any session activity: arm the RTO, pump the outbox, maybe close. */
  async #afterSession(): Promise<void> {
    const s = this.#session;
    if (!s || this.#finished) return;
    this.#transcriptFile?.sync();
    this.#armRto(s);
    await this.#pump();
    await this.#maybeClose();
  }

  /** Seals and sends queued messages while the peer is reachable (or `limit` of them as a probe). */
  async #pump(limit?: number): Promise<void> {
    const s = this.#session;
    if (!s || !this.#link?.open || this.#phase === "done") return;
    if (this.#holdUntil !== undefined) return; // waiting for the peer's resume
    if (!this.#peerOnline && limit === undefined) return;
    if (this.#phase !== "secure" && this.#phase !== "closing") return;
    let budget = limit ?? Infinity;
    while (this.#outbox.length > 0 && !s.failed && budget > 0) {
      const n = Math.min(
        s.sendCapacity(),
        PUMP_BATCH,
        this.#outbox.length,
        budget,
      );
      budget -= n;
      if (n <= 0) break;
      const batch = this.#outbox.slice(0, n);
      const transcript = s.transcript;
      const mark = transcript?.messages.length ?? 0;
      const sealing = s.sendMany(batch.map((m) => utf8(m.text)), this.#now());
      // Seqs are assigned synchronously, in call order: read them from the transcript.
      const added = transcript?.messages.slice(mark) ?? [];
      let packets: Bytes[];
      try {
        packets = await sealing;
      } catch (e) {
        if (e instanceof ProtocolError && e.code === "window-full") break;
        if (e instanceof ProtocolError && e.code === "closed") {
          const ids = this.#outbox.map((m) => m.id);
          this.#outbox = [];
          this.#error(
            "not-sent",
            `the session is closing; messages not sent: #${ids.join(", #")}`,
            {
              ids,
            },
          );
          break;
        }
        throw e;
      }
      this.#outbox.splice(0, n);
      added.forEach((rec, i) => this.#inflight.set(rec.seq, batch[i]));
      this.#sendPackets(packets);
      const at = this.#isoNow();
      for (const m of batch) {
        if (!this.#reportedUndelivered.has(m.id)) {
          if (!this.#unconfirmedSince.has(m.id)) {
            this.#unconfirmedSince.set(m.id, this.#now());
          }
        }
        this.#d.emit({ type: "sent", id: m.id, text: m.text, at });
      }
    }
    this.#armRto(s);
  }

  /** Arms the retransmission timer when something waits for an ACK and none is armed. */
  #armRto(s: Session): void {
    if (
      this.#rtoAt === undefined && this.#peerOnline && this.#awaitingAck(s)
    ) {
      this.#rtoAt = this.#now() + this.#rtoBackoff.next();
    }
  }

  /**
   * True when the session has unacknowledged packets. Cheap in the busy
   * case: a message of ours in flight is one (without building the array).
   */
  #awaitingAck(s: Session): boolean {
    return this.#inflight.size > 0 || s.unacked().length > 0;
  }

  // ── input, close ─────────────────────────────────────────────────────────

  /** `more`: the caller pumps after this line (see {@link inputLines}), unless a batch is full. */
  async #onInput(line: string, more = false): Promise<void> {
    const text = line.replace(/\r$/, "");
    if (this.#prompt && !text.startsWith("/")) {
      const p = this.#prompt;
      const yes = /^\s*(y|yes)\s*$/i.test(text);
      this.#prompt = undefined;
      return await p.answer(yes);
    }
    if (!this.#o.json && text.startsWith("/")) {
      return await this.#command(text.trim());
    }
    if (text.length === 0) return;
    this.#queueText(text);
    // When more is queued behind this line (the rest of a stdin chunk), seal
    // the lines in one batch (one pump queued behind them) instead of one
    // by one; a lone line, or a full batch, is sealed now.
    const full = this.#outbox.length >= Math.min(PUMP_BATCH, this.#o.outbox);
    if (more && !full) return;
    if (this.#waiting === 0 || full) {
      await this.#pump();
    } else if (!this.#pumpQueued) {
      this.#pumpQueued = true;
      this.#do(() => {
        this.#pumpQueued = false;
        return this.#pump();
      });
    }
  }

  #queueText(text: string): number | undefined {
    const id = this.#nextMsgId++;
    if (text.startsWith("\u0000")) {
      // A leading NUL marks client control messages (PROTOCOL.md §2.4).
      this.#error(
        "invalid-text",
        `message #${id} not sent: it starts with a NUL character (reserved for client control messages)`,
        { ids: [id] },
      );
      return undefined;
    }
    if (!fitsBody(text)) {
      this.#error(
        "too-large",
        `message #${id} not sent: longer than ${MAX_BODY} bytes`,
        { ids: [id] },
      );
      return undefined;
    }
    if (this.#closeRequested || this.#phase === "closing") {
      this.#error(
        "not-sent",
        `message #${id} not sent: the conversation is closing`,
        { ids: [id] },
      );
      return undefined;
    }
    if (this.#outbox.length >= this.#o.outbox) {
      this.#error(
        "outbox-full",
        `message #${id} not sent: the outbox is full (${this.#o.outbox} messages waiting for the peer)`,
        { ids: [id], text },
      );
      return undefined;
    }
    this.#outbox.push({ id, text });
    return id;
  }

  async #command(cmd: string): Promise<void> {
    const [name] = cmd.split(/\s+/);
    switch (name) {
      case "/quit":
        return await this.#quit("quit");
      case "/status":
        this.#d.emit({
          type: "status",
          phase: this.#phase,
          relay: this.#link?.open ? "connected" : "reconnecting",
          peerOnline: this.#peerOnline,
          outbox: this.#outbox.length,
          unacked: this.#inflight.size,
          epoch: this.#session?.epoch,
          trust: this.#trust,
        });
        return;
      case "/verify": {
        if (!this.#session || !this.#safety || !this.#peerFp) {
          return this.#notice("no secure session yet: nothing to verify");
        }
        const fp = this.#peerFp;
        this.#d.emit({
          type: "prompt",
          kind: "verify",
          text:
            `Safety number: ${this.#safety}\nPeer fingerprint: ${
              formatFingerprint(Uint8Array.fromHex(fp))
            }\n` +
            `Does your peer see exactly the same safety number? Type yes to mark ${this.#o.peerName} verified.`,
        });
        this.#prompt = {
          kind: "verify",
          answer: async (yes) => {
            if (!yes) return this.#notice("not verified");
            await this.#updatePeers((p) => p.markVerified(fp));
            this.#trust = "verified";
            this.#d.emit({ type: "verified", peerName: this.#o.peerName });
          },
        };
        return;
      }
      case "/trust":
        if (this.#phase !== "refused" || !this.#lastTrust) {
          return this.#notice(
            "/trust is only needed after a peer's key CHANGED; nothing to do",
          );
        }
        this.#d.emit({
          type: "prompt",
          kind: "trust",
          text:
            `Trust the NEW key of ${this.#o.peerName} (fingerprint ${this.#lastTrust.fp})? ` +
            "Only if you compared the safety number out of band. Type yes to trust it.",
        });
        return;
      default:
        return this.#notice(
          `unknown command ${name} (commands: /verify /trust /status /quit)`,
        );
    }
  }

  async #quit(reason: string): Promise<void> {
    if (
      !this.#session || this.#phase === "refused" || this.#phase === "handshake"
    ) {
      if (this.#outbox.length) {
        const ids = this.#outbox.map((m) => m.id);
        this.#error("not-sent", `messages not sent: #${ids.join(", #")}`, {
          ids,
        });
      }
      return this.#finish(EXIT.ok, reason);
    }
    if (this.#closeRequested) {
      // Second request (e.g. Ctrl-C twice): stop now.
      return this.#finish(EXIT.other, "forced quit");
    }
    this.#closeRequested = true;
    this.#closeDeadline = this.#now() + this.#o.closeTimeoutS * 1000;
    this.#notice(
      "closing: flushing messages and waiting for acknowledgements (again to force)",
    );
    await this.#maybeClose();
  }

  #maybeRequestClose(): void {
    if (!this.#eof || this.#closeRequested) return;
    if (this.#o.scenario === "payment" && !this.#scenarioDone) return;
    this.#closeRequested = true;
    this.#closeDeadline = this.#now() + this.#o.closeTimeoutS * 1000;
  }

  async #maybeClose(): Promise<void> {
    const s = this.#session;
    if (!this.#closeRequested || this.#closeSent || !s || s.failed) return;
    if (this.#phase !== "secure" && this.#phase !== "closing") return;
    if (
      this.#outbox.length > 0 || this.#awaitingAck(s) || !this.#link?.open
    ) return;
    this.#closeSent = true;
    this.#phase = "closing";
    this.#sendPackets(await s.close(this.#now()));
    this.#rtoAt ??= this.#now() + this.#rtoBackoff.next();
  }

  // ── payment scenario ─────────────────────────────────────────────────────

  async #onPaymentMessage(text: string): Promise<void> {
    const m = parsePaymentMessage(text);
    if (!m) return;
    if (m.kind === "payment-request") {
      this.#d.emit({
        type: "payment",
        event: "request",
        direction: "received",
        ...m,
      });
      if (this.#o.scenario !== "payment" || this.#o.role !== "customer") return;
      const answer = async (approve: boolean) => {
        const body = encodePaymentMessage(
          await paymentResponse(text, m, approve),
        );
        this.#queueText(body);
        this.#d.emit({
          type: "payment",
          event: "response",
          direction: "sent",
          reference: m.reference,
          decision: approve ? "approved" : "declined",
        });
        this.#scenarioDone = true;
        this.#maybeRequestClose();
        await this.#pump();
      };
      if (this.#o.decision) return await answer(this.#o.decision === "approve");
      this.#prompt = { kind: "payment", answer };
      this.#d.emit({
        type: "prompt",
        kind: "payment",
        text: `The bank asks you to approve: ${
          describePaymentRequest(m)
        }. Approve? [y/N]`,
      });
      return;
    }
    const sent = this.#paymentSent;
    const matches = sent !== undefined &&
      m.request ===
        (await paymentResponse(sent.body, sent.request, true)).request;
    this.#d.emit({
      type: "payment",
      event: "response",
      direction: "received",
      reference: m.reference,
      decision: m.decision,
      matches,
    });
    if (this.#o.scenario === "payment" && this.#o.role === "bank") {
      if (!matches) {
        this.#error(
          "payment-mismatch",
          "the response does not answer the request we sent",
        );
      }
      this.#scenarioDone = true;
      this.#eof = true;
      this.#maybeRequestClose();
    }
  }

  /** Opens the `--transcript` file at the first session and starts recording `session` in it. */
  async #beginTranscript(session: Session): Promise<void> {
    const path = this.#o.transcript;
    if (!path || !session.transcript) return;
    this.#transcriptFile ??= await TranscriptFile.open(path, this.#now());
    // Our own label only: the peer's comes from its signed `resume`.
    this.#transcriptFile.beginSession(
      session.transcript,
      { [session.role]: this.#o.role },
      this.#now(),
    );
  }

  /** The session closed cleanly: finish its records in the transcript file. */
  async #writeTranscript(): Promise<void> {
    const tf = this.#transcriptFile;
    if (!tf) return;
    tf.endSession("closed", this.#now());
    await tf.flush();
    this.#notice(
      `transcript written to ${tf.path} (session ${tf.sessions} of this conversation)`,
    );
  }

  // ── reporting ────────────────────────────────────────────────────────────

  /** The clock as an ISO 8601 string, formatted once per millisecond. */
  #isoNow(): string {
    const now = this.#now();
    if (now !== this.#isoMs) {
      this.#isoMs = now;
      this.#iso = new Date(now).toISOString();
    }
    return this.#iso;
  }

  #notice(text: string): void {
    this.#d.emit({ type: "notice", text });
  }

  #error(
    code: string,
    message: string,
    extra: Record<string, unknown> = {},
  ): void {
    this.#d.emit({ type: "error", code, message, ...extra });
  }
}
