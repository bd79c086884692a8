/**
 * The client driver core shared by the 1:1 clients (`clients/chat.ts`) and
 * the bank service (`clients/serve.ts`): one identity, one relay
 * registration, any number of conversations (lib/conversations.ts, the
 * sans-I/O protocol core), keyed by the peer's relay ID. This module owns
 * what lib/ must not: the relay socket and its reconnects, the one timer
 * (armed for the earliest conversation deadline), the known-peers file and
 * the per-conversation transcript files. It reports {@link ClientEvent}s
 * (each naming its `peer`) to a callback.
 * @module
 */

import { describeClose, isAbnormalClose } from "../lib/close_code.ts";
import type { Bytes } from "../lib/bytes.ts";
import { Backoff } from "../lib/backoff.ts";
import { MAX_BODY } from "../lib/constants.ts";
import {
  type Conversation,
  type ConversationEvent,
  type ConversationOutput,
  type SendVerdict,
  type TrustLookup,
} from "../lib/conversation.ts";
import {
  Conversations,
  type ConversationsOutput,
  type PeerEvent,
} from "../lib/conversations.ts";
import { fingerprint, safetyNumber } from "../lib/fingerprint.ts";
import type { Identity } from "../lib/identity.ts";
import type { KnownPeers, PeerRef } from "../lib/known_peers.ts";
import type { Frame } from "../lib/relay_frame.ts";
import { formatSessionId } from "../lib/registration.ts";
import type { SessionOptions } from "../lib/session.ts";
import { updateKnownPeers } from "../lib/deno/known_peers_file.ts";
import { InOrder } from "../lib/in_order.ts";
import { keyAlgorithm, spkiAlgorithm } from "../lib/suite.ts";
import { TranscriptFile } from "../lib/deno/transcript_file.ts";

export type {
  ClientEvent,
  Connector,
  RelayLink,
  TrustStatus,
} from "./events.ts";
import {
  type ClientEvent,
  type Connector,
  internalErrorText,
  type RelayLink,
  type TrustStatus,
} from "./events.ts";

/** Options of an {@link Engine}. */
export interface EngineOptions {
  /** Our role ("bank", "customer"): file names, transcript label, `resume.role`. */
  role: string;
  /** Our identity (ECDSA P-256; its fingerprint is the one shown). */
  identity: Identity;
  /** Our identities for the other suites (an Ed25519 one for suite 0x0002). */
  identities?: Identity[];
  /** Handshake suites, in preference order. */
  suites?: number[];
  /** Known peers: the latest snapshot; changes go through `updateKnownPeers` (one entry, under the file's lock) and replace it. */
  knownPeers: KnownPeers;
  /** Path of known_peers.json. */
  knownPeersPath: string;
  /** Opens a relay connection. */
  connect: Connector;
  /** The address printed for the peer (computed by the caller). */
  address: (id: Uint8Array) => string;
  /** The display name of a peer (1:1 clients: `--peer-name`; the service: its relay ID); known_peers.json keys peers by fingerprint and relay ID. */
  peerName: (peerId: Bytes) => string;
  /** Whether an HS1 from an unknown ID may start a conversation. */
  accept: (peerId: Bytes) => boolean;
  /** Session options (cover traffic, signing, primitives). */
  sessionOptions: SessionOptions;
  /** Outbox bound per conversation. */
  outbox: number;
  /** `undelivered` after this long (ms). */
  deliverTimeoutMs: number;
  /** Clean-close allowance (ms). */
  closeTimeoutMs: number;
  /** How long to keep reconnecting to a lost relay (ms). */
  reconnectMs: number;
  /** The transcript file of the conversation with a peer (undefined = none). */
  transcriptPath?: (peerId: Bytes) => string | undefined;
  /** Receives every event. */
  emit: (event: ClientEvent) => void;
  /** The relay connection failed for good: `kind` relay-unreachable or replaced. */
  onFatal: (kind: "relay-unreachable" | "replaced", message: string) => void;
  /**
   * Whether relay DATA frames are taken now (default: always). The service
   * says no while its API reader is far behind (clients/serve.ts). A frame
   * not taken waits, unread, in arrival order, with every frame after it
   * (so no peer's records overtake each other), until {@link Engine.resume}
   * finds `admit` saying yes again; nothing in a waiting frame is
   * acknowledged. Past {@link EngineOptions.heldMaxBytes} of waiting frames a
   * frame is dropped unread, as a lost packet would be: its sender
   * retransmits it (nothing is lost or delivered twice). This bounds the
   * output waiting for that reader without a retransmission delay.
   */
  admit?: () => boolean;
  /** Bytes of relay DATA frames that may wait for {@link admit} (default {@link HELD_FRAMES_MAX_BYTES}). */
  heldMaxBytes?: number;
  /** Clock (ms); default Date.now. */
  now?: () => number;
  /** The deadline timer (default setTimeout/clearTimeout; tests pass a fake one with a fake clock). */
  timers?: Timers;
}

/**
 * Bytes of relay DATA frames held unread while {@link EngineOptions.admit}
 * says no (see there): room for a burst of every customer's record (1,000
 * customers × one ~6 KB record of 20 messages) while the API reader catches
 * up; past it a frame is dropped unread and its sender retransmits it.
 */
export const HELD_FRAMES_MAX_BYTES = 16 * 1024 * 1024;

/** A relay DATA frame waiting for {@link EngineOptions.admit}. */
interface HeldFrame {
  peer: Bytes;
  payload: Bytes;
}

/** A one-shot timer API. */
export interface Timers {
  /** Calls `fn` once after `ms`; returns a handle for {@link clear}. */
  set(fn: () => void, ms: number): unknown;
  /** Cancels a timer (an undefined or spent handle is ignored). */
  clear(handle: unknown): void;
}

const REAL_TIMERS: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout> | undefined),
};

/** Per-conversation driver state (what lib/ does not keep: files, display). */
interface Peer {
  id: Bytes;
  label: string;
  fingerprint?: string;
  spki?: Bytes;
  safetyNumber?: string;
  trust?: TrustStatus;
  transcript?: TranscriptFile;
  /** The relay ID as events name it (formatted once). */
  name: string;
  /** Serializes the handling of this peer's events (some touch files). */
  chain: Promise<void>;
  /** Events waiting on {@link chain}; while 0, events that need no file work are emitted at once. */
  busy: number;
}

/** Events handled without file work or crypto: emitted at once when nothing is pending before them. */
const SYNC_EVENTS: ReadonlySet<ConversationEvent["type"]> = new Set([
  "sent",
  "delivered",
  "undelivered",
  "message",
  "not-sent",
  "notice",
  "session-ended",
  "peer-closed",
]);

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

/**
 * A `sent` event whose text is decoded only if read (the JSON renderer does
 * not: the script wrote the text). A class with the getter on its
 * prototype, not an object literal with a getter: that literal defines a
 * new accessor and closure per message (~0.5 µs). `text` is not an own
 * property, so a spread or `JSON.stringify` of the event has no text (the
 * service's notification names it explicitly, clients/rpc.ts).
 */
export class SentEvent {
  // Own fields in the order of the event's other shapes (type first).
  /** Always "sent". */
  readonly type = "sent" as const;
  /** Message id. */
  readonly id: number;
  /** ISO 8601 time. */
  readonly at: string;
  /** Relay ID of the peer. */
  readonly peer?: string;
  /** The peer's fingerprint, once known. */
  readonly peerFingerprint?: string;
  readonly #body: Uint8Array;

  /** Fields of the `sent` event (clients/events.ts); `body` is its UTF-8 text. */
  constructor(
    id: number,
    body: Uint8Array,
    at: string,
    peer?: string,
    peerFingerprint?: string,
  ) {
    this.id = id;
    this.at = at;
    this.peer = peer;
    this.peerFingerprint = peerFingerprint;
    this.#body = body;
  }

  /** The message text (decoded now). */
  get text(): string {
    return UTF8_DECODER.decode(this.#body);
  }
}

/**
 * A `message` event whose text is decoded only if read, and whose UTF-8
 * body the JSON renderer can copy as it is ({@link IncomingMessageEvent.bodyOf}):
 * the scriptable client writes a message line without a string per
 * message (decoding, `JSON.stringify` and encoding a 256-byte text cost
 * more than the rest of the line). `text` is a prototype getter: a spread
 * or `JSON.stringify` of the event has none (clients/rpc.ts names it).
 */
export class IncomingMessageEvent {
  // Own fields in the order of the event's literal shape (type first; `text` is the getter).
  /** Always "message". */
  readonly type = "message" as const;
  /** The sender's message id, once known. */
  readonly id?: number;
  /** Record counter. */
  readonly counter: number;
  /** Sequence number. */
  readonly seq: number;
  /** ISO 8601 time. */
  readonly at: string;
  /** Relay ID of the peer. */
  readonly peer?: string;
  /** The peer's fingerprint, once known. */
  readonly peerFingerprint?: string;
  readonly #body: Uint8Array;

  /** Fields of the `message` event (clients/events.ts); `body` is its UTF-8 text. */
  constructor(
    body: Uint8Array,
    id: number | undefined,
    counter: number,
    seq: number,
    at: string,
    peer?: string,
    peerFingerprint?: string,
  ) {
    this.id = id; // an own key even when undefined (JSON and the renderers leave it out)
    this.counter = counter;
    this.seq = seq;
    this.at = at;
    this.peer = peer;
    this.peerFingerprint = peerFingerprint;
    this.#body = body;
  }

  /** The message text (decoded now; invalid UTF-8 shows as U+FFFD, a leading BOM is dropped). */
  get text(): string {
    return UTF8_DECODER.decode(this.#body);
  }

  /** The UTF-8 body of an event made by the engine (undefined for any other object). */
  static bodyOf(ev: object): Uint8Array | undefined {
    return #body in ev ? (ev as IncomingMessageEvent).#body : undefined;
  }
}

/** Relay reconnect schedule (ms). */
const RECONNECT = { baseMs: 200, maxMs: 5000 };
/** Relay error names that mean "the peer cannot take it right now". */
const TRANSIENT_ERRORS = new Set(["peer-offline", "peer-busy", "rate-limited"]);
/** Close code of a registration replaced by a newer connection with the same ID. */
const CLOSE_REPLACED = 4000;

const hex = (b: Uint8Array) => b.toHex();

/** One client process's relay link and conversations; see the module doc. */
export class Engine {
  #o: EngineOptions;
  readonly #now: () => number;
  readonly #timers: Timers;
  #set!: Conversations;
  /**
   * Every conversation call's output is applied through this, in the order
   * of the calls per peer, whatever order they finish in (a timer poll
   * behind a slow handshake must not let the next frame's output overtake
   * it: messages would show out of order).
   */
  readonly #order = new InOrder<ConversationsOutput>(
    (out) => this.#apply(out),
    (e) => this.#internal(e),
  );
  #link?: RelayLink;
  #localId: Bytes = new Uint8Array(16);
  #fp = "";
  #edFp?: string;
  #timer?: unknown;
  #timerAt?: number;
  #reconnecting = false;
  #reconnectDeadline?: number;
  readonly #reconnectBackoff = new Backoff(RECONNECT);
  readonly #peers = new Map<string, Peer>();
  /** The same, by the ID object the conversations tag their output with. */
  readonly #byIdObject = new WeakMap<Uint8Array, Peer>();
  #stopped = false;
  #isoMs = NaN;
  #iso = "";

  /** Relay DATA frames waiting for {@link EngineOptions.admit}, oldest first from {@link #heldHead}. */
  #held: (HeldFrame | undefined)[] = [];
  #heldHead = 0;
  #heldBytes = 0;

  /** Relay DATA frames that waited for {@link EngineOptions.admit} (taken later, in order). */
  framesHeld = 0;
  /** Relay DATA frames dropped unread: {@link EngineOptions.heldMaxBytes} of frames were already waiting. */
  framesDropped = 0;

  /** Creates the engine; call {@link start}. */
  constructor(o: EngineOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#timers = o.timers ?? REAL_TIMERS;
  }

  /** Our relay session ID. */
  get localId(): Bytes {
    return this.#localId;
  }

  /** Our identity fingerprint (hex). */
  get fingerprint(): string {
    return this.#fp;
  }

  /** Our Ed25519 identity's fingerprint (hex; suite x25519), when we hold one. */
  get ed25519Fingerprint(): string | undefined {
    return this.#edFp;
  }

  /** Our address (what a peer pastes to reach us). */
  get address(): string {
    return this.#o.address(this.#localId);
  }

  /** True while the relay connection is open. */
  get connected(): boolean {
    return this.#link?.open ?? false;
  }

  /** The conversations. */
  get conversations(): Conversations {
    return this.#set;
  }

  /** Display state of a peer (label, fingerprint, safety number, trust). */
  peer(id: Uint8Array): Readonly<Peer> | undefined {
    return this.#peers.get(hex(id));
  }

  /** Connects and registers; emits `ready`. Throws when the relay cannot be reached. */
  async start(): Promise<void> {
    const link = await this.#o.connect();
    this.#localId = link.id.slice();
    this.#fp = (await fingerprint(this.#o.identity.spki)).toHex();
    const ed = this.#o.identities?.find((i) =>
      keyAlgorithm(i.privateKey) === "Ed25519"
    );
    this.#edFp = ed && (await fingerprint(ed.spki)).toHex();
    this.#set = new Conversations({
      identity: this.#o.identity,
      localId: this.#localId,
      now: this.#now(),
      accept: (id) => !this.#stopped && this.#o.accept(id),
      options: (id) => this.#conversationOptions(id),
    });
    this.#attach(link);
    this.#o.emit({
      type: "ready",
      role: this.#o.role,
      id: formatSessionId(this.#localId),
      fingerprint: this.#fp,
      ...(this.#edFp === undefined ? {} : { ed25519Fingerprint: this.#edFp }),
      address: this.#o.address(this.#localId),
    });
  }

  /**
   * Starts a conversation with `peerId`. `pins`: an address's `fp` and `ed`,
   * if any — only those identities are accepted, and with `ed` suite x25519
   * is offered first (PROTOCOL.md §1.3). `waitMs`: give up without a session
   * after that long.
   */
  async dial(
    peerId: Bytes,
    pins: { fp?: string; ed?: string } = {},
    waitMs?: number,
  ): Promise<void> {
    const dialing = this.#set.dial(peerId, this.#now(), {
      ...(pins.fp === undefined ? {} : { expectFingerprint: pins.fp }),
      ...(pins.ed === undefined ? {} : { expectEd25519Fingerprint: pins.ed }),
      ...(waitMs ? { waitMs } : {}),
    });
    await this.#inOrder(peerId, dialing.then((d) => d.output));
    await dialing;
  }

  /** Queues user messages for `peerId` (text, or its UTF-8 bytes, kept by the engine); resolves to a verdict per message (`undefined`: no such conversation). */
  async send(
    peerId: Bytes,
    texts: (string | Uint8Array)[],
  ): Promise<SendVerdict[] | undefined> {
    const c = this.#set.get(peerId);
    if (!c || c.ended) return undefined;
    const sending = c.send(
      texts.map((t) => typeof t === "string" ? UTF8_ENCODER.encode(t) : t),
      this.#now(),
    );
    await this.#inOrder(peerId, sending.then((out) => this.#set.tag(c, out)));
    return (await sending).verdicts;
  }

  /** Closes the conversation with `peerId` cleanly (`waitForPeer`: also before a session exists). */
  async close(peerId: Bytes, waitForPeer = false): Promise<boolean> {
    const c = this.#set.get(peerId);
    if (!c || c.ended) return false;
    await this.#call(c, c.close(this.#now(), waitForPeer));
    return true;
  }

  /** The user accepted a peer's new key: record it and handshake again. */
  async retrust(peerId: Bytes, fp: string): Promise<void> {
    const ref = this.#ref(peerId, this.#peers.get(hex(peerId))?.spki);
    await this.#updatePeers((k) => k.retrust(ref, fp, this.#now()));
    const c = this.#set.get(peerId);
    if (c) await this.#call(c, c.retry(this.#now()));
  }

  /** The user compared the safety number: mark the peer's current key verified. */
  async markVerified(peerId: Bytes): Promise<string | undefined> {
    const p = this.#peers.get(hex(peerId));
    if (!p?.fingerprint) return undefined;
    const fp = p.fingerprint;
    await this.#updatePeers((k) => k.markVerified(fp));
    p.trust = "verified";
    return p.fingerprint;
  }

  /**
   * Stops: every conversation closes (cleanly where a session is live,
   * within the close timeout), transcripts are finished, the relay link
   * closed. Resolves when all that is done.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // Frames waiting for the API reader are taken now: what they carry is
    // acknowledged before the conversations close (the output is flushed at exit).
    if (this.#set) this.resume();
    const open = this.#set?.list().filter((c) => !c.ended) ?? [];
    await Promise.all(open.map((c) => this.#call(c, c.close(this.#now()))));
    const deadline = this.#now() + this.#o.closeTimeoutMs + 1000;
    while (
      this.#set?.list().some((c) => !c.ended) && this.#now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of this.#set?.list() ?? []) {
      if (!c.ended) await this.#call(c, c.abort("quit"));
    }
    await Promise.all([...this.#peers.values()].map((p) => p.chain));
    await Promise.all(
      [...this.#peers.values()].map((p) => p.transcript?.close()),
    );
    this.#timers.clear(this.#timer);
    const link = this.#link;
    this.#link = undefined;
    await link?.close(1000, "bye").catch(() => {});
  }

  // ── conversations ────────────────────────────────────────────────────────

  /** The peer as known_peers.json links it: its relay ID (and the display name). */
  #ref(peerId: Bytes, spki?: Bytes): PeerRef {
    // The relay ID is bound to the P-256 key; an Ed25519 key (suite 0x0002) has its own entry by name.
    if (spki && spkiAlgorithm(spki) === "Ed25519") {
      return { name: `${this.#o.peerName(peerId)}/ed25519` };
    }
    return { relayId: formatSessionId(peerId), name: this.#o.peerName(peerId) };
  }

  /** Our identity of the peer key's algorithm (the one the handshake proved). */
  #ownSpki(peerSpki: Bytes): Bytes {
    const alg = spkiAlgorithm(peerSpki);
    return [this.#o.identity, ...(this.#o.identities ?? [])].find((i) =>
      keyAlgorithm(i.privateKey) === alg
    )?.spki ?? this.#o.identity.spki;
  }

  /** One change to known_peers.json, read-modify-write under its lock; keeps the fresh snapshot. */
  async #updatePeers(change: (peers: KnownPeers) => unknown): Promise<void> {
    const { peers } = await updateKnownPeers(this.#o.knownPeersPath, change);
    this.#o.knownPeers = peers;
  }

  #conversationOptions(peerId: Bytes) {
    return {
      identities: this.#o.identities,
      suites: this.#o.suites,
      trust: (fp: string, spki: Bytes): TrustLookup => {
        const check = this.#o.knownPeers.check(this.#ref(peerId, spki), fp);
        if (check.status === "changed") {
          return { status: "changed", previous: check.previous ?? "" };
        }
        return { status: check.status };
      },
      role: this.#o.role,
      // The session keeps every message in memory for its transcript only
      // when a transcript file is written: without one it would only grow
      // (a 60 KiB body each) and cost the garbage collector.
      sessionOptions: {
        keepTranscript: this.#o.transcriptPath?.(peerId) !== undefined,
        ...this.#o.sessionOptions,
      },
      outbox: this.#o.outbox,
      deliverTimeoutMs: this.#o.deliverTimeoutMs,
      closeTimeoutMs: this.#o.closeTimeoutMs,
    };
  }

  /** Applies the output of a call on `peerId`'s conversation in call order (see #order); resolves once applied. */
  #inOrder(
    peerId: Bytes,
    result: Promise<ConversationsOutput>,
  ): Promise<void> {
    return this.#order.push(hex(peerId), result);
  }

  /** A call on `c` (its output tagged and applied in call order); resolves once applied, rejects if it failed. */
  async #call(c: Conversation, result: Promise<ConversationOutput>) {
    await this.#inOrder(c.peerId, result.then((out) => this.#set.tag(c, out)));
    await result;
  }

  /** Takes a conversation output: packets out now, events in order per peer. */
  #apply(out: ConversationsOutput): void {
    const link = this.#link;
    if (link?.open) { for (const p of out.packets) link.send(p.to, p.packet); }
    let last: Bytes | undefined;
    let peers: Set<Bytes> | undefined;
    for (const e of out.events) {
      this.#onEvent(e);
      if (last !== undefined && e.peer !== last) {
        (peers ??= new Set([last])).add(e.peer);
      }
      last = e.peer;
    }
    // Transcripts of the peers of this output (usually one), once each.
    for (const id of peers ?? (last ? [last] : [])) {
      this.#peerState(id).transcript?.sync();
    }
    this.#arm();
  }

  #peerState(id: Bytes): Peer {
    // By the ID object the conversations tag their output with: no hex per event.
    const known = this.#byIdObject.get(id);
    if (known) return known;
    const k = hex(id);
    let p = this.#peers.get(k);
    if (!p) {
      p = {
        id,
        label: this.#o.peerName(id),
        name: formatSessionId(id),
        chain: Promise.resolve(),
        busy: 0,
      };
      this.#peers.set(k, p);
    }
    this.#byIdObject.set(id, p);
    return p;
  }

  #onEvent(e: PeerEvent): void {
    const p = this.#peerState(e.peer);
    const ev = e.event;
    const failed = (err: unknown) =>
      this.#o.emit({
        type: "error",
        code: "internal",
        message: internalErrorText(err),
        peer: p.name,
      });
    // Events that need no file work are emitted at once, unless one that
    // does is pending before them (then in order behind it).
    if (p.busy === 0 && SYNC_EVENTS.has(ev.type)) {
      try {
        this.#handleSync(p, ev);
      } catch (err) {
        failed(err);
      }
      return;
    }
    p.busy++;
    p.chain = p.chain.then(() => this.#handle(p, ev)).catch(failed).finally(
      () => void p.busy--,
    );
  }

  /** The events of {@link SYNC_EVENTS}. */
  #handleSync(p: Peer, ev: ConversationEvent): void {
    const peer = p.name, peerFingerprint = p.fingerprint;
    const base = { peer, peerFingerprint };
    const emit = (x: ClientEvent) =>
      this.#o.emit({ ...x, ...base } as ClientEvent);
    // The per-message events are built whole (no spread per message).
    switch (ev.type) {
      case "sent": {
        const at = this.#isoNow();
        for (const m of ev.messages) {
          this.#o.emit(new SentEvent(m.id, m.body, at, peer, peerFingerprint));
        }
        return;
      }
      case "delivered": {
        const at = this.#isoNow();
        for (const id of ev.ids) {
          this.#o.emit({ type: "delivered", id, at, peer, peerFingerprint });
        }
        return;
      }
      case "undelivered":
        return emit({
          type: "error",
          code: "undelivered",
          message: `no delivery confirmation from the peer within ${
            this.#o.deliverTimeoutMs / 1000
          } s for message(s) #${
            ev.ids.join(", #")
          } — the relay or the network may be dropping them; still retrying`,
          ids: ev.ids,
        });
      case "message":
        return this.#o.emit(
          new IncomingMessageEvent(
            ev.body,
            ev.id,
            Number(ev.counter),
            Number(ev.seq),
            this.#isoNow(),
            peer,
            peerFingerprint,
          ),
        );
      case "not-sent":
        return emit({
          type: "error",
          code: ev.code,
          message: ev.message,
          ids: ev.ids,
        });
      case "notice":
        return emit({ type: "notice", text: ev.text });
      case "session-ended":
        p.transcript?.endSession(ev.reason, this.#now());
        return;
      case "peer-closed":
        return emit({
          type: "notice",
          text: "the peer closed the conversation",
        });
    }
  }

  async #handle(p: Peer, ev: ConversationEvent): Promise<void> {
    if (SYNC_EVENTS.has(ev.type)) return this.#handleSync(p, ev);
    const peer = p.name;
    const base = { peer, peerFingerprint: p.fingerprint };
    const emit = (x: ClientEvent) =>
      this.#o.emit({ ...x, ...base } as ClientEvent);
    switch (ev.type) {
      case "secure": {
        p.fingerprint = ev.fingerprint;
        p.spki = ev.spki;
        p.trust = ev.trust;
        p.safetyNumber = await safetyNumber(this.#ownSpki(ev.spki), ev.spki);
        const ref = this.#ref(p.id, ev.spki);
        await this.#updatePeers((k) =>
          k.record(ref, ev.fingerprint, this.#now())
        );
        await this.#beginTranscript(p, ev);
        return this.#o.emit({
          type: "secure",
          peer,
          peerName: p.label,
          suite: spkiAlgorithm(ev.spki) === "Ed25519" ? "x25519" : "p256",
          peerFingerprint: ev.fingerprint,
          safetyNumber: p.safetyNumber,
          trust: ev.trust,
          role: ev.role,
        });
      }
      case "refused": {
        p.spki = ev.spki;
        const sn = await safetyNumber(this.#ownSpki(ev.spki), ev.spki);
        return emit({
          type: "error",
          code: ev.code,
          message: ev.message,
          peerName: p.label,
          previousFingerprint: ev.previous,
          presentedFingerprint: ev.fingerprint,
          safetyNumber: sn,
          role: ev.role,
        });
      }
      case "closed": {
        const tf = p.transcript;
        if (tf) {
          await tf.close().catch((e) =>
            emit({
              type: "error",
              code: "transcript",
              message: `${tf.path}: ${(e as Error).message}`,
            })
          );
          if (ev.reason === "closed") {
            emit({
              type: "notice",
              text:
                `transcript written to ${tf.path} (session ${tf.sessions} of this conversation)`,
            });
          }
          p.transcript = undefined;
        }
        if (ev.code !== undefined && ev.reason !== "closed") {
          emit({
            type: "error",
            code: ev.code,
            message: ev.message ?? ev.reason,
          });
        }
        return emit({ type: "closed", reason: ev.reason });
      }
    }
  }

  async #beginTranscript(
    p: Peer,
    ev: Extract<ConversationEvent, { type: "secure" }>,
  ): Promise<void> {
    const path = this.#o.transcriptPath?.(p.id);
    if (!path || !ev.session.transcript) return;
    p.transcript ??= await TranscriptFile.open(path, this.#now());
    // Our own label only: the peer's comes from its signed `resume`.
    p.transcript.beginSession(
      ev.session.transcript,
      { [ev.role]: this.#o.role },
      this.#now(),
    );
  }

  // ── timer ────────────────────────────────────────────────────────────────

  /** Arms the one timer for the earliest conversation deadline. */
  #arm(): void {
    const at = this.#set.nextDeadline();
    if (at === this.#timerAt) return;
    this.#timers.clear(this.#timer);
    this.#timerAt = at;
    if (at === undefined) return;
    this.#timer = this.#timers.set(() => {
      this.#timerAt = undefined;
      const now = this.#now();
      for (const c of this.#set.due(now)) {
        this.#inOrder(c.peerId, this.#set.pollDue(c, now));
      }
      this.#arm();
    }, Math.min(Math.max(0, at - this.#now()), 2 ** 31 - 1));
  }

  #internal(e: unknown): void {
    this.#o.emit({
      type: "error",
      code: "internal",
      message: internalErrorText(e),
    });
  }

  // ── relay link ───────────────────────────────────────────────────────────

  #attach(link: RelayLink): void {
    this.#link = link;
    link.onFrame = (f) => this.#onFrame(f);
    link.closed.then((info) => this.#onLinkClosed(link, info));
  }

  #onFrame(frame: Frame): void {
    const now = this.#now();
    if (frame.type === "error") {
      if (!TRANSIENT_ERRORS.has(frame.name)) {
        return this.#o.emit({
          type: "notice",
          text: `relay error ${frame.name}: ${frame.reason}`,
        });
      }
      this.#inOrder(
        frame.peer,
        this.#set.relayError(frame.peer, frame.name, now),
      );
      return;
    }
    if (frame.type !== "data") return;
    // Behind a waiting frame every frame waits: records stay in order.
    // Once stopping, every frame is taken (the conversations close now).
    if (
      this.#o.admit && !this.#stopped &&
      (this.#heldHead < this.#held.length || !this.#o.admit())
    ) {
      return this.#hold(frame.peer, frame.payload);
    }
    this.#inOrder(
      frame.peer,
      this.#set.receive(frame.peer, frame.payload, now),
    );
  }

  #hold(peer: Bytes, payload: Bytes): void {
    const max = this.#o.heldMaxBytes ?? HELD_FRAMES_MAX_BYTES;
    if (this.#heldBytes + payload.length > max) {
      this.framesDropped++;
      return;
    }
    this.#held.push({ peer, payload });
    this.#heldBytes += payload.length;
    this.framesHeld++;
  }

  /** Bytes of relay DATA frames waiting for {@link EngineOptions.admit}. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /**
   * Takes the relay DATA frames that wait for {@link EngineOptions.admit},
   * in arrival order, while it says yes (all of them once stopping). The
   * service calls it as its API output drains (clients/serve.ts); nothing
   * happens when no frame waits.
   */
  resume(): void {
    if (this.#heldHead === this.#held.length) return;
    const now = this.#now();
    while (
      this.#heldHead < this.#held.length &&
      (this.#stopped || !this.#o.admit || this.#o.admit())
    ) {
      const f = this.#held[this.#heldHead]!;
      this.#held[this.#heldHead++] = undefined;
      this.#heldBytes -= f.payload.length;
      this.#inOrder(f.peer, this.#set.receive(f.peer, f.payload, now));
    }
    if (this.#heldHead === this.#held.length) {
      this.#held = [];
      this.#heldHead = 0;
    } else if (
      this.#heldHead >= 1024 && 2 * this.#heldHead > this.#held.length
    ) {
      this.#held = this.#held.slice(this.#heldHead);
      this.#heldHead = 0;
    }
  }

  #onLinkClosed(link: RelayLink, info: { code: number; reason: string }): void {
    if (link !== this.#link || this.#stopped) return;
    this.#link = undefined;
    this.#set.linkDown();
    if (info.code === CLOSE_REPLACED) {
      return this.#o.onFatal(
        "replaced",
        "another client registered the same session ID (same keys folder?); stopping",
      );
    }
    this.#o.emit({
      type: "notice",
      text: `${describeLinkClose(info)}; reconnecting`,
    });
    this.#reconnectDeadline ??= this.#now() + this.#o.reconnectMs;
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#reconnecting || this.#stopped) return;
    this.#reconnecting = true;
    setTimeout(async () => {
      if (this.#stopped) return;
      try {
        const link = await this.#o.connect();
        this.#reconnecting = false;
        if (this.#stopped) return void link.close();
        this.#attach(link);
        this.#reconnectBackoff.reset();
        this.#reconnectDeadline = undefined;
        this.#o.emit({ type: "notice", text: "reconnected to the relay" });
        const now = this.#now();
        for (const c of this.#set.list()) {
          this.#call(c, c.linkUp(now)).catch(() => {}); // reported by #order
        }
      } catch (e) {
        this.#reconnecting = false;
        if (this.#stopped) return;
        if (this.#now() >= (this.#reconnectDeadline ?? 0)) {
          this.#o.onFatal(
            "relay-unreachable",
            `the relay stayed unreachable for ${
              this.#o.reconnectMs / 1000
            } s: ${(e as Error).message}`,
          );
        } else {
          this.#scheduleReconnect();
        }
      }
    }, this.#reconnectBackoff.next());
  }

  /** The clock as an ISO 8601 string, formatted once per millisecond. */
  #isoNow(): string {
    const now = this.#now();
    if (now !== this.#isoMs) {
      this.#isoMs = now;
      this.#iso = new Date(now).toISOString();
    }
    return this.#iso;
  }
}

/** Why the relay connection ended, as the notice says it (the relay logs the same code, lib/close_code.ts). */
export function describeLinkClose(
  info: { code: number; reason: string; byClient?: boolean },
): string {
  if (info.byClient) {
    return `this client closed the relay connection (${
      describeClose(info.code, info.reason)
    })`;
  }
  if (isAbnormalClose(info.code)) {
    return "connection to the relay lost (no close frame: the network failed or the relay stopped abruptly)";
  }
  return `the relay closed the connection (${
    describeClose(info.code, info.reason)
  })`;
}
