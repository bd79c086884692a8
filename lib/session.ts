/**
 * The transport session after the handshake, sans-I/O: it turns application
 * bodies into RECORD packets and received packets into events, and keeps
 * every protocol timer as a deadline the caller polls. No sockets, no timers,
 * no clock: every method takes `now` (ms) from the caller.
 *
 * Guarantees: AES-256-GCM per direction and epoch with counter nonces (never
 * reused; the session refuses to send past `maxCounter`); a replay window
 * per direction; in-order, exactly-once delivery of reliable messages;
 * acknowledgements and byte-identical retransmission (`unacked()`); a hash
 * chain per direction signed every `signEvery` messages, after
 * `signIntervalMs`, and on CLOSE; in-channel signed rekeying; cover traffic.
 *
 * Shape of results: `send`/`sendMany`/`poll`/`close` return the packets to
 * put into relay frames, in counter order. `receive`/`receiveMany` return
 * `{ events, packets }`: events for the application and packets the session
 * wants sent at once (ACKs, REKEY_RESP, the answering CLOSE).
 *
 * Errors: a ProtocolError thrown by `receive` ends the session (`failed`;
 * every later call rethrows it). Per-packet rejections that a relay could
 * cause (malformed header, unknown epoch, replay, too old, failed AEAD tag)
 * only drop the packet and count it in `stats`: a relay can drop traffic
 * anyway, so letting it kill sessions with one forged packet would add
 * nothing. `send` throws without ending the session: `window-full` (retry
 * after ACKs), `too-large`, `counter-exhausted`, `closed`.
 * @module
 */

import { type Bytes, concat, u32, view } from "./bytes.ts";
import {
  ACK_BITMAP_BITS,
  ACK_BODY_LENGTH,
  ACK_DELAY_MS,
  ACK_EVERY,
  ACK_SEND_LIMIT,
  COALESCE_PLAINTEXT_MAX,
  DEFAULT_MAX_COUNTER,
  DEFAULT_MIN_SIGN_GAP_MS,
  DEFAULT_REKEY_AFTER_MESSAGES,
  DEFAULT_REKEY_AFTER_MS,
  DEFAULT_SIGN_EVERY,
  DEFAULT_SIGN_INTERVAL_MS,
  FLOW_WINDOW,
  MAX_BODY,
  MAX_EPOCH_STASH,
  MAX_MESSAGES_PER_RECORD,
  MAX_UNSIGNED,
  REKEY_BODY_LENGTH,
  REKEY_HARD_LIMIT_MESSAGES,
} from "./constants.ts";
import { ProtocolError } from "./errors.ts";
import { fingerprint } from "./fingerprint.ts";
import type { HandshakeResult, HandshakeRole } from "./handshake_result.ts";
import {
  chainSignatureInput,
  chainStart,
  chainStepEager,
} from "./hash_chain.ts";
import {
  all,
  andThen,
  isPromise,
  type MaybePromise,
  type SecretKey,
  type SessionPrimitives,
  webCryptoPrimitives,
} from "./primitives.ts";
import {
  decodeInnerAll,
  decodeRecordHeader,
  deriveTrafficKeys,
  type Direction,
  directionOf,
  encodeInner,
  encodeInnerMany,
  innerLength,
  type InnerMessage,
  InnerType,
  openRecordEager,
  sealRecordEager,
  type TrafficKeys,
} from "./record.ts";
import { ReplayWindow } from "./replay_window.ts";
import { emptyMap, shrink, writable } from "./lazy_map.ts";
import { importPeerKey } from "./handshake_keys.ts";
import {
  deriveLabel,
  ecdh,
  type EphemeralKeyPair,
  generateEphemeral,
  importEphemeralPublic,
  importSecret,
  P256_POINT_LENGTH,
  P256_SIGNATURE_LENGTH,
  sign,
  spkiAlgorithm,
  verify,
} from "./suite.ts";
import { Transcript, type TranscriptMessage } from "./transcript.ts";

/** Options of a session; every field has a default. */
export interface SessionOptions {
  /** Sign the chain on every Nth reliable message (default 64; 1 = per-message signing; at most 256). */
  signEvery?: number;
  /** Sign (CHECKPOINT) at most this many ms after the first unsigned reliable message (default 1000). */
  signIntervalMs?: number;
  /** Seal DATA messages given to one `sendMany` call into shared records (default true); false = one record per message. */
  coalesce?: boolean;
  /** Batch signatures under load: a due chain signature waits until this many ms after the previous one, short of MAX_UNSIGNED (default 10; 0 = never wait; per-message signing never waits). */
  minSignGapMs?: number;
  /** Cover traffic: mean DUMMY packets per second, exponential intervals (default 0 = off). */
  coverRate?: number;
  /** Start a rekey after this many packets sent in one epoch (default 100 000). */
  rekeyAfterMessages?: number;
  /** Start a rekey after this many ms in one epoch (default 10 minutes). */
  rekeyAfterMs?: number;
  /** Last counter the session may use (test hook for exhaustion; default 2^64 − 1 − 2^16). */
  maxCounter?: bigint;
  /** Uniform random numbers in [0, 1) for cover timing (default: crypto.getRandomValues). */
  random?: () => number;
  /** Record the transcript (default true; benchmarks turn it off to save memory). */
  keepTranscript?: boolean;
  /**
   * SHA-256 and AES-256-GCM for the per-message path (default: WebCrypto,
   * browser-safe, non-extractable keys). Deno drivers may pass the faster
   * synchronous `nodePrimitives` of `lib/deno/node_primitives.ts` (keys then
   * live in exportable `node:crypto` KeyObjects; see there). The wire bytes do not depend on it.
   */
  primitives?: SessionPrimitives;
}

/** What `sendMany` returns: the packets (sealed in the background) and, at once, the seqs assigned to the bodies, in order. */
export type SendResult = Promise<Bytes[]> & {
  readonly seqs: readonly bigint[];
};

/** Something the application must know about. */
export type SessionEvent =
  /** A DATA message, delivered exactly once in seq order. */
  | { type: "message"; seq: bigint; counter: bigint; body: Bytes }
  /** The peer acknowledged our reliable messages with these seqs. */
  | { type: "acked"; seqs: bigint[] }
  /** The peer's chain signature over its messages 1..seq verified. */
  | { type: "signature-verified"; seq: bigint }
  /** Both directions now use keys of `epoch` (old send key dropped). */
  | { type: "rekeyed"; epoch: number }
  /** The peer's CLOSE was delivered (its messages all arrived). */
  | { type: "peer-closed" }
  /** The conversation is over: both CLOSEs delivered and acknowledged. */
  | { type: "closed" };

/** Result of `receive`: events for the app and packets to send now. */
export interface ReceiveResult {
  /** Events in order. */
  events: SessionEvent[];
  /** Packets to put into relay frames at once, in order. */
  packets: Bytes[];
}

/** Counters of the session, for diagnostics and tests. */
export interface SessionStats {
  /** Packets sealed (all inner types). */
  packetsSent: number;
  /** Packets that authenticated. */
  packetsReceived: number;
  /** DATA messages delivered. */
  delivered: number;
  /** Packets dropped as duplicates (replay window). */
  replays: number;
  /** Packets dropped as older than the replay window. */
  tooOld: number;
  /** Packets whose AEAD tag did not verify (forged or corrupted). */
  forgeries: number;
  /** Packets with a malformed cleartext header. */
  malformed: number;
  /** Packets for an epoch we hold no key for. */
  unknownEpoch: number;
  /** DUMMY packets sent / received. */
  dummiesSent: number;
  /** DUMMY packets received and dropped after authentication. */
  dummiesReceived: number;
  /** ACK packets sent. */
  acksSent: number;
  /** Chain signatures made / verified. */
  signaturesMade: number;
  /** Chain signatures of the peer verified. */
  signaturesVerified: number;
  /** Completed rekeys. */
  rekeys: number;
}

interface Outgoing {
  seq: bigint;
  counter: bigint;
  epoch: number;
  type: number;
  packet?: Bytes;
}

interface Received {
  msg: InnerMessage;
  counter: bigint;
}

interface PendingRekey {
  epoch: number;
  eph?: EphemeralKeyPair;
  sent: boolean;
}

/** Counters an ACK bitmap can name, as a bigint. */
const ACK_SPAN = BigInt(ACK_BITMAP_BITS);
const REKEY_LABEL = new TextEncoder().encode("e2e.v1 rekey\0");
const noop = () => {};

/** Bytes signed in REKEY_INIT / REKEY_RESP: "e2e.v1 rekey\0" ‖ sessionHash ‖ u32(newEpoch) ‖ role ‖ eph. */
export function rekeySignatureInput(
  sessionHash: Bytes,
  newEpoch: number,
  senderRole: HandshakeRole,
  ephemeral: Uint8Array,
): Bytes {
  return concat(
    REKEY_LABEL,
    sessionHash,
    u32(newEpoch),
    new TextEncoder().encode(senderRole),
    ephemeral,
  );
}

/**
 * master_{e+1} = importSecret(deriveLabel(master_e, ecdh_new, "rekey", u32(e+1), 32)):
 * a WebCrypto key, or the provider's secret when `master_e` is one (the
 * handshake ran on `primitives.handshake`).
 */
export async function nextMaster(
  master: SecretKey,
  sharedSecret: Bytes,
  newEpoch: number,
  primitives?: SessionPrimitives,
): Promise<SecretKey> {
  const raw = await deriveLabel(
    master,
    sharedSecret,
    "rekey",
    u32(newEpoch),
    32,
  );
  try {
    const p = primitives?.handshake;
    if (p && "hkdf" in master) return { hkdf: p.hkdfFrom(raw) };
    return await importSecret(raw);
  } finally {
    raw.fill(0);
  }
}

/** Fingerprints of our own identity keys, once per key (every session of an identity shares it). */
const ownFingerprints = new WeakMap<Uint8Array, Promise<Bytes>>();

function ownFingerprint(spki: Bytes): Promise<Bytes> {
  let fp = ownFingerprints.get(spki);
  if (!fp) {
    fp = fingerprint(spki);
    ownFingerprints.set(spki, fp);
    fp.catch(() => ownFingerprints.delete(spki));
  }
  return fp;
}

function defaultRandom(): number {
  const b = new Uint32Array(2);
  crypto.getRandomValues(b);
  return (b[0] * 2 ** 21 + (b[1] >>> 11)) / 2 ** 53;
}

/** One end of an established end-to-end session (see module doc). */
export class Session {
  readonly #role: HandshakeRole;
  readonly #peerRole: HandshakeRole;
  readonly #localId: Bytes;
  readonly #peerId: Bytes;
  readonly #privateKey: CryptoKey;
  /**
   * The peer's identity key as received (SPKI). Its WebCrypto key is taken
   * from the handshake's bounded per-SPKI cache when a signature is checked
   * (every signEvery messages, rekeys), not held per session: a CryptoKey
   * costs ~4.4 KB of process memory in Deno 2.9.6, and an idle session
   * checks nothing.
   */
  readonly #peerSpki: Bytes;
  readonly #localFp: Bytes;
  readonly #peerFp: Bytes;
  readonly #sessionHash: Bytes;
  readonly #sendDir: Direction;
  readonly #recvDir: Direction;
  readonly #signEvery: number;
  readonly #signIntervalMs: number;
  readonly #minSignGapMs: number;
  readonly #coalesce: boolean;
  #lastSignAt?: number;
  readonly #coverRate: number;
  readonly #rekeyAfterMessages: number;
  readonly #rekeyAfterMs: number;
  readonly #maxCounter: bigint;
  readonly #random: () => number;
  readonly #transcript?: Transcript;
  readonly #primitives: SessionPrimitives;

  #failed?: ProtocolError;
  #master: SecretKey;
  #epoch = 0;
  #epochStartedAt?: number;
  #sentInEpoch = 0;

  // send side
  #sendKeys: TrafficKeys;
  #nextCounter = 0n;
  #nextSeq = 1n;
  /** Head of our chain: a value with a synchronous provider, else a promise chain. */
  #sendChain: MaybePromise<Bytes>;
  #unsignedCount = 0;
  #firstUnsignedAt?: number;
  #inflight = emptyMap<bigint, Outgoing>();
  #closeSeq?: bigint;
  #closeAcked = false;
  #nextCoverAt?: number;

  // receive side
  #recvKeys = new Map<number, TrafficKeys>();
  #replay = new ReplayWindow();
  #nextDeliverSeq = 1n;
  /** Reorder buffer (allocated on first use: in-order records skip it). */
  #pending = emptyMap<bigint, Received>();
  #recvChain: MaybePromise<Bytes>;
  #unsignedRecv = 0;
  #ackCount = 0;
  #ackWanted = false;
  #ackDueAt?: number;
  #peerClosed = false;
  /** Seq of the peer's CLOSE once it arrived: its last reliable message. */
  #peerCloseSeq?: bigint;
  #closedEmitted = false;
  #stash: Bytes[] = [];

  // rekey
  #rekey?: PendingRekey;
  #respondTo?: { epoch: number; peerEph: CryptoKey };
  #responding = false;

  #lock: Promise<unknown> = Promise.resolve();
  #ackNow = false;
  #deferredEvents: SessionEvent[] = [];

  /** Counters for diagnostics and tests. */
  readonly stats: SessionStats = {
    packetsSent: 0,
    packetsReceived: 0,
    delivered: 0,
    replays: 0,
    tooOld: 0,
    forgeries: 0,
    malformed: 0,
    unknownEpoch: 0,
    dummiesSent: 0,
    dummiesReceived: 0,
    acksSent: 0,
    signaturesMade: 0,
    signaturesVerified: 0,
    rekeys: 0,
  };

  private constructor(
    result: HandshakeResult,
    fps: [Bytes, Bytes],
    keys: [TrafficKeys, TrafficKeys],
    chains: [Bytes, Bytes],
    options: SessionOptions,
  ) {
    this.#role = result.role;
    this.#peerRole = result.role === "initiator" ? "responder" : "initiator";
    // The five fixed byte strings share one buffer: a Uint8Array with its own
    // ArrayBuffer costs ~200 B more than a view, per idle session.
    const fixed = [result.localId, result.peerId, result.sessionHash, ...fps];
    const packed = new Uint8Array(fixed.reduce((n, b) => n + b.length, 0));
    const views = fixed.map((b, i, all) => {
      const at = all.slice(0, i).reduce((n, x) => n + x.length, 0);
      packed.set(b, at);
      return packed.subarray(at, at + b.length) as Bytes;
    });
    [
      this.#localId,
      this.#peerId,
      this.#sessionHash,
      this.#localFp,
      this.#peerFp,
    ] = views;
    this.#privateKey = result.localIdentity.privateKey;
    this.#peerSpki = result.peerIdentity.spki;
    this.#master = result.master;
    this.#sendDir = directionOf(this.#role);
    this.#recvDir = directionOf(this.#peerRole);
    this.#sendKeys = keys[0];
    this.#recvKeys.set(0, keys[1]);
    this.#sendChain = chains[0];
    this.#recvChain = chains[1];
    this.#primitives = options.primitives ?? webCryptoPrimitives;
    const signEvery = options.signEvery ?? DEFAULT_SIGN_EVERY;
    if (
      !Number.isInteger(signEvery) || signEvery < 1 || signEvery > MAX_UNSIGNED
    ) {
      throw new RangeError(
        `signEvery must be an integer in 1..${MAX_UNSIGNED}`,
      );
    }
    this.#signEvery = signEvery;
    this.#signIntervalMs = options.signIntervalMs ?? DEFAULT_SIGN_INTERVAL_MS;
    this.#coalesce = options.coalesce ?? true;
    this.#minSignGapMs = signEvery === 1
      ? 0
      : options.minSignGapMs ?? DEFAULT_MIN_SIGN_GAP_MS;
    this.#coverRate = options.coverRate ?? 0;
    if (!(this.#coverRate >= 0)) throw new RangeError("coverRate must be ≥ 0");
    this.#rekeyAfterMessages = options.rekeyAfterMessages ??
      DEFAULT_REKEY_AFTER_MESSAGES;
    this.#rekeyAfterMs = options.rekeyAfterMs ?? DEFAULT_REKEY_AFTER_MS;
    this.#maxCounter = options.maxCounter ?? DEFAULT_MAX_COUNTER;
    if (this.#maxCounter > DEFAULT_MAX_COUNTER || this.#maxCounter < 0n) {
      throw new RangeError("maxCounter out of range");
    }
    this.#random = options.random ?? defaultRandom;
    if (options.keepTranscript ?? true) {
      const [initiatorSpki, responderSpki] = result.role === "initiator"
        ? [result.localIdentity.spki, result.peerIdentity.spki]
        : [result.peerIdentity.spki, result.localIdentity.spki];
      this.#transcript = new Transcript({
        suite: result.suite,
        localRole: result.role,
        sessionHash: result.sessionHash,
        initiatorSpki,
        responderSpki,
      });
    }
  }

  /** Starts the session from a completed handshake: derives epoch-0 keys and chain starts. */
  static async fromHandshake(
    result: HandshakeResult,
    options: SessionOptions = {},
  ): Promise<Session> {
    const peerRole = result.role === "initiator" ? "responder" : "initiator";
    const primitives = options.primitives ?? webCryptoPrimitives;
    // Ours once per identity key; the peer's with the session's hash provider (synchronous in Deno drivers).
    const [lfp, pfp, sk, rk, sc, rc] = await Promise.all([
      ownFingerprint(result.localIdentity.spki),
      primitives.sha256(result.peerIdentity.spki),
      deriveTrafficKeys(
        result.master,
        result.sessionHash,
        directionOf(result.role),
        0,
        primitives,
      ),
      deriveTrafficKeys(
        result.master,
        result.sessionHash,
        directionOf(peerRole),
        0,
        primitives,
      ),
      chainStart(result.sessionHash, result.role, primitives),
      chainStart(result.sessionHash, peerRole, primitives),
    ]);
    return new Session(result, [lfp, pfp], [sk, rk], [sc, rc], options);
  }

  /** Our handshake role. */
  get role(): HandshakeRole {
    return this.#role;
  }

  /** Current key epoch (0 until the first rekey). */
  get epoch(): number {
    return this.#epoch;
  }

  /** True once both CLOSEs were delivered and acknowledged. */
  get closed(): boolean {
    return this.#closedEmitted;
  }

  /** The error that ended the session, if any. */
  get failed(): ProtocolError | undefined {
    return this.#failed;
  }

  /** The transcript so far (undefined when `keepTranscript` is false). */
  get transcript(): Transcript | undefined {
    return this.#transcript;
  }

  /** How many DATA messages `sendMany` accepts right now (flow window, counter, key limits). */
  sendCapacity(): number {
    if (this.#failed || this.#closeSeq !== undefined) return 0;
    const byWindow = FLOW_WINDOW -
      Number(this.#nextCounter - this.#oldestInflight());
    const left = this.#maxCounter - this.#nextCounter + 1n;
    const byCounter = left > BigInt(FLOW_WINDOW) ? FLOW_WINDOW : Number(left);
    const byKey = REKEY_HARD_LIMIT_MESSAGES - this.#sentInEpoch;
    const bySeq = FLOW_WINDOW -
      Number(this.#nextSeq - this.#oldestInflightSeq());
    return Math.max(0, Math.min(byWindow, byCounter, byKey, bySeq));
  }

  /** Seals one DATA message; see {@link sendMany}. */
  send(body: Bytes, now: number): Promise<Bytes[]> {
    return this.sendMany([body], now);
  }

  /**
   * Seals DATA messages, assigning counters and seqs synchronously in call
   * order and running the crypto pipelined; resolves to the packets in
   * counter order; `seqs` (available at once) are the bodies' seqs. All or nothing: throws `window-full`, `too-large`,
   * `counter-exhausted` or `closed` before assigning anything.
   */
  sendMany(bodies: Bytes[], now: number): SendResult {
    let groups: Bytes[][];
    try {
      this.#throwIfFailed();
      if (this.#closeSeq !== undefined) {
        throw new ProtocolError("closed", "session is closing or closed");
      }
      for (const b of bodies) {
        if (b.length > MAX_BODY) {
          throw new ProtocolError(
            "too-large",
            `body of ${b.length} bytes exceeds ${MAX_BODY}`,
          );
        }
      }
      groups = this.#coalesce
        ? coalesce(bodies, this.#signEvery)
        : bodies.map((b) => [b]);
      this.#checkCanSend(groups.length, FLOW_WINDOW, bodies.length);
    } catch (e) {
      return Object.assign(Promise.reject(e), { seqs: [] });
    }
    this.#touch(now);
    const first = this.#nextSeq;
    // The caller may reuse its buffers once this returns: a group whose
    // bodies are used later (see #sealReliableGroup) seals copies.
    const sealing = all(
      groups.map((g, i) =>
        this.#sealReliableGroup(
          InnerType.DATA,
          g,
          now,
          false,
          true,
          i === groups.length - 1,
        )
      ),
    );
    const seqs: bigint[] = [];
    for (let q = first; q < this.#nextSeq; q++) seqs.push(q);
    return Object.assign(sealing, { seqs });
  }

  /** Starts closing: seals a signed CLOSE. `closed` follows when both sides' CLOSEs are acked. */
  close(now: number): Promise<Bytes[]> {
    try {
      this.#throwIfFailed();
      if (this.#closeSeq !== undefined) return Promise.resolve([]);
      this.#checkCanSend(1, FLOW_WINDOW);
    } catch (e) {
      return Promise.reject(e);
    }
    this.#touch(now);
    this.#closeSeq = this.#nextSeq;
    return all([
      this.#sealReliable(InnerType.CLOSE, new Uint8Array(0), now, true),
    ]);
  }

  /** Unacknowledged reliable packets, byte-identical, in counter order: resend them after a reconnect, before new ones. */
  unacked(): Bytes[] {
    const out: Bytes[] = [];
    let last: Bytes | undefined;
    for (const o of this.#inflight.values()) {
      // Coalesced messages share one packet: send it once.
      if (o.packet && o.packet !== last) out.push(last = o.packet);
    }
    return out;
  }

  /** The next time (ms) `poll` has work, or undefined when nothing is scheduled. */
  nextDeadline(): number | undefined {
    if (this.#failed) return undefined;
    let d: number | undefined;
    const at = (t: number | undefined) => {
      if (t !== undefined && (d === undefined || t < d)) d = t;
    };
    if (this.#ackCount > 0 || this.#ackWanted) at(this.#ackDueAt);
    if (this.#unsignedCount > 0 && this.#firstUnsignedAt !== undefined) {
      at(this.#firstUnsignedAt + this.#signIntervalMs);
      if (this.#signDeferred()) at(this.#lastSignAt! + this.#minSignGapMs);
    }
    if (this.#coverRate > 0 && this.#closeSeq === undefined) {
      at(this.#nextCoverAt);
    }
    if (this.#epochStartedAt !== undefined && this.#closeSeq === undefined) {
      at(this.#epochStartedAt + this.#rekeyAfterMs);
    }
    return d;
  }

  /**
   * Runs due timers: coalesced ACK, CHECKPOINT signature, cover DUMMY,
   * rekey initiation, a deferred REKEY_RESP. Returns packets to send in order;
   * events it causes (a `rekeyed`) are reported by the next `receive`.
   */
  poll(now: number): Promise<Bytes[]> {
    return this.#serialized(() => this.#poll(now));
  }

  /** Processes one received packet; see {@link receiveMany}. */
  receive(packet: Uint8Array, now: number): Promise<ReceiveResult> {
    return this.receiveMany([packet], now);
  }

  /**
   * Processes received packets (decrypting them in parallel, handling them in
   * order). Calls are serialized. Throws ProtocolError when the peer broke
   * the protocol inside an authenticated record; the session is then failed.
   */
  receiveMany(packets: Uint8Array[], now: number): Promise<ReceiveResult> {
    return this.#serialized(async () => {
      const events: SessionEvent[] = this.#deferredEvents;
      this.#deferredEvents = [];
      const out: MaybePromise<Bytes>[] = [];
      await this.#receiveBatch(packets, now, events, out);
      await this.#maybeRespond(now, events, out);
      const ackPending = this.#ackCount > 0 || this.#ackWanted;
      if (this.#ackCount >= ACK_EVERY || (this.#ackNow && ackPending)) {
        const ack = this.#sealAck();
        if (ack) out.push(ack);
      }
      this.#checkClosed(now, events, out);
      return { events, packets: await all(out) };
    });
  }

  // ── internals ────────────────────────────────────────────────────────────

  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(() => {
      this.#throwIfFailed();
      return fn();
    });
    this.#lock = run.then(noop, noop);
    return run.catch((e) => {
      if (e instanceof ProtocolError && !this.#failed && this.#isFatal(e)) {
        this.#fail(e);
      }
      throw e;
    });
  }

  #isFatal(e: ProtocolError): boolean {
    return !["window-full", "too-large", "counter-exhausted", "closed"]
      .includes(e.code);
  }

  #fail(e: ProtocolError): void {
    this.#failed = e;
    this.#pending.clear();
    this.#stash = [];
    this.#recvKeys.clear();
    this.#rekey = undefined;
    this.#respondTo = undefined;
  }

  #throwIfFailed(): void {
    if (this.#failed) throw this.#failed;
  }

  #touch(now: number): void {
    this.#epochStartedAt ??= now;
  }

  #oldestInflight(): bigint {
    const first = this.#inflight.values().next();
    return first.done ? this.#nextCounter : first.value.counter;
  }

  /** Seq of the oldest unacknowledged reliable message (nextSeq when none). */
  #oldestInflightSeq(): bigint {
    const first = this.#inflight.values().next();
    return first.done ? this.#nextSeq : first.value.seq;
  }

  /** Throws unless `n` more packets fit under `limit` counters past the oldest unacked one (and `seqs` more messages inside the flow window). */
  #checkCanSend(n: number, limit: number, seqs = 0): void {
    if (
      seqs > 0 &&
      this.#nextSeq + BigInt(seqs) - 1n - this.#oldestInflightSeq() >=
        BigInt(FLOW_WINDOW)
    ) {
      throw new ProtocolError(
        "window-full",
        "too many unacknowledged messages; retry after ACKs",
      );
    }
    if (this.#nextCounter + BigInt(n) - 1n > this.#maxCounter) {
      throw new ProtocolError(
        "counter-exhausted",
        "the message counter would pass its limit; a new session is needed",
      );
    }
    const span = this.#nextCounter + BigInt(n) - 1n - this.#oldestInflight();
    if (span >= BigInt(limit)) {
      throw new ProtocolError(
        "window-full",
        "too many unacknowledged packets; retry after ACKs",
      );
    }
    if (this.#sentInEpoch + n > REKEY_HARD_LIMIT_MESSAGES) {
      throw new ProtocolError(
        "window-full",
        "key usage limit reached; waiting for the rekey",
      );
    }
  }

  /** A signature is due (signEvery reached) but waits for the minimum gap since the last one. */
  #signDeferred(): boolean {
    return this.#unsignedCount >= this.#signEvery &&
      this.#lastSignAt !== undefined;
  }

  #canSend(limit: number): boolean {
    try {
      this.#checkCanSend(1, limit);
      return true;
    } catch {
      return false;
    }
  }

  #sealReliable(
    type: number,
    body: Bytes,
    now: number,
    forceSign: boolean,
  ): MaybePromise<Bytes> {
    return this.#sealReliableGroup(type, [body], now, forceSign);
  }

  /**
   * Whether the last message of a send is signed because no signature went
   * out for `signIntervalMs` (PROTOCOL.md §2.2.6): after a quiet second the
   * message carries its own signature instead of a CHECKPOINT following it
   * a second later (one record and its ACK each way less per burst, and the
   * burst non-repudiable at once). Not before a first signature: a new
   * session signs by count, interval (CHECKPOINT) or CLOSE as before.
   */
  #quietDue(now: number): boolean {
    return this.#lastSignAt !== undefined &&
      now >= this.#lastSignAt + this.#signIntervalMs;
  }

  /** Whether one of the next `n` reliable messages will carry a chain signature (what {@link #signNext} decides, without counting; `quietEnd`: they end a send). */
  #signsWithin(
    n: number,
    forceSign: boolean,
    now: number,
    quietEnd = false,
  ): boolean {
    if (forceSign || (quietEnd && this.#quietDue(now))) return true;
    const due = this.#lastSignAt === undefined ||
      now >= this.#lastSignAt + this.#minSignGapMs;
    const first = Math.max(1, this.#signEvery - this.#unsignedCount);
    if (due && first <= n) return true;
    return MAX_UNSIGNED - this.#unsignedCount <= n;
  }

  /** Decides whether the next reliable message carries a chain signature, and counts it (`quiet`: it ends a send after a quiet interval, see {@link #quietDue}). */
  #signNext(now: number, forceSign: boolean, quiet = false): boolean {
    const signed = forceSign || quiet ||
      (this.#unsignedCount + 1 >= this.#signEvery &&
        (this.#lastSignAt === undefined ||
          now >= this.#lastSignAt + this.#minSignGapMs ||
          this.#unsignedCount + 1 >= MAX_UNSIGNED));
    if (signed) {
      this.#unsignedCount = 0;
      this.#firstUnsignedAt = undefined;
      this.#lastSignAt = now;
    } else {
      this.#unsignedCount++;
      this.#firstUnsignedAt ??= now;
    }
    return signed;
  }

  /**
   * Seals reliable messages of `type` into ONE record (one counter; several
   * only for DATA, see {@link coalesce}): seqs, chain steps, signature
   * decisions and transcript entries are assigned synchronously in order.
   * `last`: the group ends a send (its last message may be signed, see
   * {@link #quietDue}, when the signature still fits the record).
   */
  #sealReliableGroup(
    type: number,
    bodies: Bytes[],
    now: number,
    forceSign: boolean,
    borrowed = false,
    last = false,
  ): MaybePromise<Bytes> {
    // Borrowed bodies (the caller's buffers) are copied when they are used
    // after this call: kept by the transcript, hashed after an earlier chain
    // step that is still pending, or sealed after a signature. Otherwise the
    // chain step and the record's plaintext take their bytes now.
    if (
      borrowed &&
      (this.#transcript !== undefined || isPromise(this.#sendChain) ||
        this.#signsWithin(bodies.length, forceSign, now, last))
    ) {
      bodies = bodies.map((b) => b.slice());
    }
    const counter = this.#nextCounter++;
    const keys = this.#sendKeys;
    this.#sentInEpoch++;
    this.stats.packetsSent++;
    const primitives = this.#primitives;
    const epoch = keys.epoch;
    const transcript = this.#transcript;
    const inflight = this.#inflight = writable(this.#inflight);
    // Per message: its inner message and its in-flight entry; the signed
    // ones (a few per record at most) also get a part with their chain head.
    const n = bodies.length;
    const msgs: InnerMessage[] = new Array(n);
    const entries: Outgoing[] = new Array(n);
    const signedParts: {
      msg: InnerMessage;
      head: MaybePromise<Bytes>;
      record?: TranscriptMessage;
    }[] = [];
    let plaintext = 0;
    let chain = this.#sendChain;
    for (let i = 0; i < n; i++) {
      const body = bodies[i];
      const seq = this.#nextSeq++;
      const quiet = last && i === n - 1 && this.#quietDue(now) &&
        plaintext + innerLength(body.length, true) <= COALESCE_PLAINTEXT_MAX;
      const signed = this.#signNext(now, forceSign, quiet);
      plaintext += innerLength(body.length, signed);
      // The usual case (a synchronous chain): the step without a closure.
      chain = isPromise(chain)
        ? andThen(
          chain,
          (prev) => chainStepEager(primitives, prev, seq, type, body),
        )
        : chainStepEager(primitives, chain, seq, type, body);
      if (isPromise(chain)) chain.catch(noop);
      const entry: Outgoing = { seq, counter, epoch, type };
      inflight.set(seq, entry);
      entries[i] = entry;
      const msg: InnerMessage = { type, seq, body };
      msgs[i] = msg;
      const record = transcript?.add({
        direction: this.#sendDir,
        seq,
        type,
        body,
        pending: signed,
      });
      if (signed) signedParts.push({ msg, head: chain, record });
    }
    this.#sendChain = chain;
    const seal = (): MaybePromise<Bytes> =>
      andThen(
        sealRecordEager(
          keys,
          counter,
          encodeInnerMany(msgs),
          this.#localId,
          this.#peerId,
        ),
        (packet) => {
          for (const e of entries) e.packet = packet;
          return packet;
        },
      );
    if (signedParts.length === 0) return seal();
    return (async () => {
      for (const p of signedParts) {
        const h = await p.head;
        const input = chainSignatureInput(
          this.#role,
          this.#localFp,
          this.#peerFp,
          this.#sessionHash,
          p.msg.seq,
          h,
        );
        // The provider's synchronous signature (node:crypto Ed25519, the
        // handshake's), else WebCrypto's: the same bytes.
        const signature =
          this.#primitives.handshake?.sign(this.#privateKey, input) ??
            await sign(this.#privateKey, input);
        this.stats.signaturesMade++;
        p.msg.signature = signature;
        if (p.record) {
          p.record.head = h;
          p.record.signature = signature;
          p.record.pending = false;
        }
      }
      return await seal();
    })();
  }

  #sealUnreliable(type: number, body: Bytes): MaybePromise<Bytes> {
    const counter = this.#nextCounter++;
    const keys = this.#sendKeys;
    this.#sentInEpoch++;
    this.stats.packetsSent++;
    return sealRecordEager(
      keys,
      counter,
      encodeInner({ type, seq: 0n, body }),
      this.#localId,
      this.#peerId,
    );
  }

  /** Seals an ACK if the ACK send limit allows; resets the ACK schedule. */
  #sealAck(): MaybePromise<Bytes> | undefined {
    if (!this.#canSend(ACK_SEND_LIMIT)) return undefined;
    const body = new Uint8Array(ACK_BODY_LENGTH);
    const v = view(body);
    const highest = this.#replay.highest;
    v.setBigUint64(0, highest < 0n ? 0n : highest);
    body.set(this.#replay.bitmap(), 8);
    v.setBigUint64(8 + ACK_BITMAP_BITS / 8, this.#nextDeliverSeq - 1n);
    this.#ackCount = 0;
    this.#ackWanted = false;
    this.#ackNow = false;
    this.#ackDueAt = undefined;
    this.stats.acksSent++;
    return this.#sealUnreliable(InnerType.ACK, body);
  }

  #wantAck(now: number, count: boolean): void {
    if (count) this.#ackCount++;
    else this.#ackWanted = true;
    this.#ackDueAt ??= now + ACK_DELAY_MS;
  }

  async #poll(now: number): Promise<Bytes[]> {
    this.#touch(now);
    const out: MaybePromise<Bytes>[] = [];
    const events: SessionEvent[] = [];
    if (
      (this.#ackCount > 0 || this.#ackWanted) && this.#ackDueAt !== undefined &&
      now >= this.#ackDueAt
    ) {
      const ack = this.#sealAck();
      if (ack) out.push(ack);
    }
    if (
      this.#unsignedCount > 0 && this.#firstUnsignedAt !== undefined &&
      (now >= this.#firstUnsignedAt + this.#signIntervalMs ||
        (this.#signDeferred() &&
          now >= this.#lastSignAt! + this.#minSignGapMs)) &&
      this.#closeSeq === undefined && this.#canSend(FLOW_WINDOW)
    ) {
      out.push(
        this.#sealReliable(InnerType.CHECKPOINT, new Uint8Array(0), now, true),
      );
    }
    if (this.#coverRate > 0 && this.#closeSeq === undefined) {
      if (this.#nextCoverAt === undefined) {
        this.#nextCoverAt = now + this.#coverInterval();
      } else if (now >= this.#nextCoverAt) {
        if (this.#canSend(FLOW_WINDOW)) {
          this.stats.dummiesSent++;
          out.push(this.#sealUnreliable(InnerType.DUMMY, new Uint8Array(0)));
        }
        this.#nextCoverAt = now + this.#coverInterval();
      }
    }
    await this.#maybeStartRekey(now, out);
    await this.#maybeRespond(now, events, out);
    this.#checkClosed(now, events, out);
    this.#deferredEvents.push(...events); // reported by the next receive
    return all(out);
  }

  #coverInterval(): number {
    const u = this.#random();
    return (-Math.log(1 - Math.min(Math.max(u, 0), 1 - 2 ** -53)) /
      this.#coverRate) * 1000;
  }

  /** Starts a rekey (REKEY_INIT) when due and allowed. */
  async #maybeStartRekey(
    now: number,
    out: MaybePromise<Bytes>[],
  ): Promise<void> {
    if (
      this.#rekey || this.#respondTo || this.#closeSeq !== undefined ||
      this.#epochStartedAt === undefined
    ) return;
    const due = this.#sentInEpoch >= this.#rekeyAfterMessages ||
      now - this.#epochStartedAt >= this.#rekeyAfterMs;
    if (!due || !this.#oldEpochAcked() || !this.#canSend(FLOW_WINDOW)) return;
    const pending: PendingRekey = { epoch: this.#epoch + 1, sent: false };
    this.#rekey = pending;
    const eph = await generateEphemeral();
    const sig = await sign(
      this.#privateKey,
      rekeySignatureInput(
        this.#sessionHash,
        pending.epoch,
        this.#role,
        eph.publicRaw,
      ),
    );
    // A colliding INIT from the handshake initiator may have cancelled ours.
    if (
      this.#rekey !== pending || this.#failed || !this.#canSend(FLOW_WINDOW)
    ) {
      if (this.#rekey === pending) this.#rekey = undefined;
      return;
    }
    pending.eph = eph;
    pending.sent = true;
    out.push(
      this.#sealReliable(
        InnerType.REKEY_INIT,
        concat(eph.publicRaw, sig),
        now,
        false,
      ),
    );
  }

  /** Whether every unacknowledged packet we sent is of the current epoch. */
  #oldEpochAcked(): boolean {
    const first = this.#inflight.values().next();
    return first.done || first.value.epoch === this.#epoch;
  }

  /** Answers a received REKEY_INIT once our older-epoch packets are all acked. */
  async #maybeRespond(
    now: number,
    events: SessionEvent[],
    out: MaybePromise<Bytes>[],
  ): Promise<void> {
    const req = this.#respondTo;
    if (
      !req || this.#responding || this.#closeSeq !== undefined ||
      !this.#oldEpochAcked() ||
      !this.#canSend(FLOW_WINDOW)
    ) {
      return;
    }
    this.#responding = true;
    try {
      const eph = await generateEphemeral();
      const [sig, shared] = await Promise.all([
        sign(
          this.#privateKey,
          rekeySignatureInput(
            this.#sessionHash,
            req.epoch,
            this.#role,
            eph.publicRaw,
          ),
        ),
        ecdh(eph.privateKey, req.peerEph),
      ]);
      const next = await this.#deriveEpoch(shared, req.epoch);
      shared.fill(0);
      this.#respondTo = undefined;
      // Send RESP under the old key, then switch (PROTOCOL: responder switches after sending RESP).
      out.push(
        this.#sealReliable(
          InnerType.REKEY_RESP,
          concat(eph.publicRaw, sig),
          now,
          false,
        ),
      );
      this.#switchEpoch(next, now);
      events.push({ type: "rekeyed", epoch: req.epoch });
    } finally {
      this.#responding = false;
    }
  }

  async #deriveEpoch(shared: Bytes, epoch: number) {
    const master = await nextMaster(
      this.#master,
      shared,
      epoch,
      this.#primitives,
    );
    const [send, recv] = await Promise.all([
      deriveTrafficKeys(
        master,
        this.#sessionHash,
        this.#sendDir,
        epoch,
        this.#primitives,
      ),
      deriveTrafficKeys(
        master,
        this.#sessionHash,
        this.#recvDir,
        epoch,
        this.#primitives,
      ),
    ]);
    return { master, send, recv, epoch };
  }

  #switchEpoch(
    next: {
      master: SecretKey;
      send: TrafficKeys;
      recv: TrafficKeys;
      epoch: number;
    },
    now: number,
  ): void {
    this.#master = next.master;
    this.#epoch = next.epoch;
    this.#sendKeys = next.send;
    this.#recvKeys.set(next.epoch, next.recv);
    for (const e of [...this.#recvKeys.keys()]) {
      if (e < next.epoch - 1) this.#recvKeys.delete(e);
    }
    this.#sentInEpoch = 0;
    this.#epochStartedAt = now;
    this.stats.rekeys++;
  }

  async #receiveBatch(
    packets: Uint8Array[],
    now: number,
    events: SessionEvent[],
    out: MaybePromise<Bytes>[],
  ): Promise<void> {
    this.#touch(now);
    type Job = {
      packet: Uint8Array;
      counter: bigint;
      pt: MaybePromise<Bytes | null>;
    };
    const jobs: Job[] = [];
    for (const packet of packets) {
      let epoch: number, counter: bigint;
      try {
        ({ epoch, counter } = decodeRecordHeader(packet));
      } catch {
        this.stats.malformed++;
        continue;
      }
      const keys = this.#recvKeys.get(epoch);
      if (!keys) {
        if (
          this.#rekey?.sent && epoch === this.#epoch + 1 &&
          this.#stash.length < MAX_EPOCH_STASH
        ) {
          this.#stash.push(packet.slice() as Bytes);
        } else {
          this.stats.unknownEpoch++;
        }
        continue;
      }
      const verdict = this.#replay.check(counter);
      if (verdict !== "ok") {
        if (verdict === "duplicate") this.stats.replays++;
        else this.stats.tooOld++;
        this.#wantAck(now, false);
        continue;
      }
      const pt = openRecordEager(
        keys,
        packet,
        counter,
        this.#peerId,
        this.#localId,
      );
      jobs.push({ packet, counter, pt });
    }
    const verifications: Promise<void>[] = [];
    for (const job of jobs) {
      const pt = isPromise(job.pt) ? await job.pt : job.pt;
      if (pt === null) {
        this.stats.forgeries++;
        continue;
      }
      if (this.#replay.check(job.counter) !== "ok") {
        this.stats.replays++; // same packet twice in one batch
        this.#wantAck(now, false);
        continue;
      }
      this.#replay.accept(job.counter);
      this.stats.packetsReceived++;
      const msgs = decodeInnerAll(pt);
      if (msgs.length > 1) {
        // Coalesced DATA (consecutive seqs, checked by the decoder).
        for (const m of msgs) {
          this.#handleReliable(m, job.counter, now, events, verifications);
        }
        continue;
      }
      const msg = msgs[0];
      if (msg.type === InnerType.DUMMY) {
        this.stats.dummiesReceived++;
      } else if (msg.type === InnerType.ACK) {
        this.#handleAck(msg.body, events);
      } else {
        if (msg.type === InnerType.REKEY_INIT) {
          await this.#handleRekeyInit(msg.body);
        } else if (msg.type === InnerType.REKEY_RESP) {
          await this.#handleRekeyResp(msg.body, now, events);
        }
        this.#handleReliable(msg, job.counter, now, events, verifications);
      }
    }
    if (verifications.length > 0) await Promise.all(verifications);
    if (this.#failed) throw this.#failed;
    if (
      this.#stash.length > 0 && this.#recvKeys.has(this.#epoch) &&
      !this.#rekey?.sent
    ) {
      const stash = this.#stash;
      this.#stash = [];
      await this.#receiveBatch(stash, now, events, out);
    }
  }

  #handleAck(body: Bytes, events: SessionEvent[]): void {
    if (body.length !== ACK_BODY_LENGTH) {
      throw new ProtocolError("malformed", `ACK body of ${body.length} bytes`);
    }
    const v = view(body);
    const highest = v.getBigUint64(0);
    const bitmap = body.subarray(8, 8 + ACK_BITMAP_BITS / 8);
    const cumulative = v.getBigUint64(8 + ACK_BITMAP_BITS / 8);
    if (
      highest >= this.#nextCounter &&
      !(highest === 0n && this.#nextCounter === 0n)
    ) {
      throw new ProtocolError("malformed", "ACK names a counter never sent");
    }
    if (cumulative >= this.#nextSeq) {
      throw new ProtocolError("malformed", "ACK names a seq never sent");
    }
    const seqs: bigint[] = [];
    // Same test as `bitmapCovers`, inlined: this loop runs over the packets
    // in flight (up to the flow window) for every ACK. They are in seq order,
    // and a later seq was sealed under a later counter: past `highest` none
    // is acknowledged.
    const lowest = highest - ACK_SPAN + 1n;
    for (const o of this.#inflight.values()) {
      if (o.seq <= cumulative) {
        seqs.push(o.seq);
      } else if (o.counter > highest) {
        break;
      } else if (o.counter >= lowest) {
        const i = Number(highest - o.counter);
        if ((bitmap[i >> 3] >> (i & 7)) & 1) seqs.push(o.seq);
      }
    }
    for (const s of seqs) {
      this.#inflight.delete(s);
      if (s === this.#closeSeq) this.#closeAcked = true;
    }
    this.#inflight = shrink(this.#inflight);
    if (seqs.length > 0) events.push({ type: "acked", seqs });
  }

  #handleReliable(
    msg: InnerMessage,
    counter: bigint,
    now: number,
    events: SessionEvent[],
    verifications: Promise<void>[],
  ): void {
    const seq = msg.seq;
    if (seq < this.#nextDeliverSeq || this.#pending.has(seq)) {
      throw new ProtocolError(
        "unexpected-message",
        `seq ${seq} received twice under different counters`,
      );
    }
    if (seq >= this.#nextDeliverSeq + BigInt(FLOW_WINDOW)) {
      throw new ProtocolError(
        "unexpected-message",
        `seq ${seq} is beyond the flow window`,
      );
    }
    // CLOSE is the peer's last reliable message (PROTOCOL.md §2.2.9).
    if (msg.type === InnerType.CLOSE) {
      for (const later of this.#pending.keys()) {
        if (later > seq) this.#afterClose(later, seq);
      }
      this.#peerCloseSeq = seq;
    } else if (this.#peerCloseSeq !== undefined && seq > this.#peerCloseSeq) {
      this.#afterClose(seq, this.#peerCloseSeq);
    }
    const urgent = msg.type !== InnerType.DATA &&
      msg.type !== InnerType.CHECKPOINT;
    this.#wantAck(now, true);
    if (urgent) this.#ackNow = true;
    if (seq === this.#nextDeliverSeq && this.#pending.size === 0) {
      // In order (the usual case): delivered without the reorder buffer.
      this.#nextDeliverSeq = seq + 1n;
      return this.#deliver({ msg, counter }, events, verifications);
    }
    (this.#pending = writable(this.#pending)).set(seq, { msg, counter });
    for (;;) {
      const next = this.#pending.get(this.#nextDeliverSeq);
      if (!next) break;
      this.#pending.delete(this.#nextDeliverSeq);
      this.#nextDeliverSeq++;
      this.#deliver(next, events, verifications);
    }
    this.#pending = shrink(this.#pending);
  }

  #afterClose(seq: bigint, closeSeq: bigint): never {
    throw new ProtocolError(
      "unexpected-message",
      `seq ${seq} after the peer's CLOSE (seq ${closeSeq})`,
    );
  }

  #deliver(
    { msg, counter }: Received,
    events: SessionEvent[],
    verifications: Promise<void>[],
  ): void {
    const { seq, type, body, signature } = msg;
    const primitives = this.#primitives;
    const prev = this.#recvChain;
    // The usual case (a synchronous chain): the step without a closure.
    const head = isPromise(prev)
      ? andThen(
        prev,
        (p) => chainStepEager(primitives, p, seq, type, body),
      )
      : chainStepEager(primitives, prev, seq, type, body);
    if (isPromise(head)) head.catch(noop);
    this.#recvChain = head;
    const record = this.#transcript?.add({
      direction: this.#recvDir,
      seq,
      type,
      body,
      pending: signature !== undefined,
    });
    if (signature) {
      this.#unsignedRecv = 0;
      const event: SessionEvent = { type: "signature-verified", seq };
      events.push(event);
      const verification = (async () => {
        const h = await head;
        const input = chainSignatureInput(
          this.#peerRole,
          this.#peerFp,
          this.#localFp,
          this.#sessionHash,
          seq,
          h,
        );
        // The provider's synchronous check (node:crypto, as the handshake's
        // signatures), else WebCrypto's: the same verdict.
        const ok = this.#primitives.handshake?.verify(
          this.#peerSpki,
          signature,
          input,
        ) ?? await verify(await this.#peerKey(), signature, input);
        if (!ok) {
          const e = new ProtocolError(
            "chain-mismatch",
            `the peer's signature at seq ${seq} does not verify over the chain of messages received (a message was altered, skipped or forged)`,
          );
          if (!this.#failed) this.#fail(e);
          throw e;
        }
        this.stats.signaturesVerified++;
        if (record) {
          record.signature = signature;
          record.head = h;
          record.pending = false;
        }
      })();
      verification.catch(noop); // surfaced by the batch's Promise.all
      verifications.push(verification);
    } else if (++this.#unsignedRecv >= MAX_UNSIGNED) {
      // Agrees with the sender's #signNext: one of every MAX_UNSIGNED is signed.
      throw new ProtocolError(
        "unsigned-chain",
        `${MAX_UNSIGNED} unsigned messages in a row`,
      );
    } else if (type === InnerType.CLOSE) {
      throw new ProtocolError("unsigned-chain", "CLOSE without a signature");
    }
    if (type === InnerType.DATA) {
      this.stats.delivered++;
      events.push({ type: "message", seq, counter, body });
    } else if (type === InnerType.CLOSE) {
      this.#peerClosed = true;
      // Acknowledge at once, also when the CLOSE waited in the reorder buffer
      // for an earlier message: the peer may stop as soon as it is covered.
      this.#ackNow = true;
      events.push({ type: "peer-closed" });
    }
  }

  /** The peer's identity key (see #peerSpki). */
  async #peerKey(): Promise<CryptoKey> {
    const spki = this.#peerSpki;
    return (await importPeerKey(spki, spkiAlgorithm(spki))).publicKey;
  }

  #parseRekeyBody(body: Bytes, epoch: number, role: HandshakeRole) {
    if (body.length !== REKEY_BODY_LENGTH) {
      throw new ProtocolError(
        "malformed",
        `rekey body of ${body.length} bytes`,
      );
    }
    const eph = body.subarray(0, P256_POINT_LENGTH) as Bytes;
    const sig = body.subarray(P256_POINT_LENGTH) as Bytes;
    return {
      eph,
      check: async () => {
        const ok = await verify(
          await this.#peerKey(),
          sig,
          rekeySignatureInput(this.#sessionHash, epoch, role, eph),
        );
        if (!ok) {
          throw new ProtocolError(
            "bad-signature",
            `rekey signature for epoch ${epoch} does not verify`,
          );
        }
        return importEphemeralPublic(eph.slice());
      },
    };
  }

  async #handleRekeyInit(body: Bytes): Promise<void> {
    const epoch = this.#epoch + 1;
    if (this.#rekey && this.#role === "initiator") return; // collision: our INIT wins
    const parsed = this.#parseRekeyBody(body, epoch, this.#peerRole);
    if (this.#respondTo) {
      throw new ProtocolError(
        "unexpected-message",
        "second REKEY_INIT before our response",
      );
    }
    let peerEph: CryptoKey;
    try {
      peerEph = await parsed.check();
    } catch (e) {
      // A responder's INIT that lost a collision arrives after the switch: stale, ignore.
      if (
        this.#peerRole === "responder" && this.#epoch > 0 &&
        e instanceof ProtocolError && e.code === "bad-signature"
      ) {
        const stale = this.#parseRekeyBody(body, this.#epoch, this.#peerRole);
        await stale.check();
        return;
      }
      throw e;
    }
    if (this.#rekey) this.#rekey = undefined; // we are the responder: abandon our INIT
    this.#respondTo = { epoch, peerEph };
  }

  async #handleRekeyResp(
    body: Bytes,
    now: number,
    events: SessionEvent[],
  ): Promise<void> {
    const pending = this.#rekey;
    if (!pending?.sent || !pending.eph) {
      throw new ProtocolError(
        "unexpected-message",
        "REKEY_RESP without a pending REKEY_INIT",
      );
    }
    const peerEph = await this.#parseRekeyBody(
      body,
      pending.epoch,
      this.#peerRole,
    ).check();
    const shared = await ecdh(pending.eph.privateKey, peerEph);
    const next = await this.#deriveEpoch(shared, pending.epoch);
    shared.fill(0);
    this.#rekey = undefined;
    this.#switchEpoch(next, now);
    events.push({ type: "rekeyed", epoch: pending.epoch });
  }

  #checkClosed(
    now: number,
    events: SessionEvent[],
    out: MaybePromise<Bytes>[],
  ): void {
    if (
      this.#peerClosed && this.#closeSeq === undefined &&
      this.#canSend(FLOW_WINDOW)
    ) {
      // Answer the peer's CLOSE with ours (no half-open sessions).
      this.#closeSeq = this.#nextSeq;
      out.push(
        this.#sealReliable(InnerType.CLOSE, new Uint8Array(0), now, true),
      );
    }
    // Closed only when everything we sent is acknowledged, not just our
    // CLOSE: the peer delivers in seq order, so an unacknowledged earlier
    // message would hold our CLOSE back on its side forever.
    if (
      !this.#closedEmitted && this.#peerClosed && this.#closeAcked &&
      this.#inflight.size === 0
    ) {
      this.#closedEmitted = true;
      events.push({ type: "closed" });
    }
  }
}

/**
 * Splits DATA bodies into records: consecutive bodies share one while their
 * inner plaintext fits COALESCE_PLAINTEXT_MAX — counting the most chain
 * signatures k messages can carry, ⌈k / signEvery⌉, so the frame never
 * exceeds 65536 bytes — and at most MAX_MESSAGES_PER_RECORD. The record size
 * follows the message size: 64 messages of 256 B (a 17 KiB frame), 15 of
 * 4 KiB, one of 60 KiB. A body too large to share goes alone.
 */
export function coalesce(bodies: Bytes[], signEvery: number): Bytes[][] {
  const groups: Bytes[][] = [];
  let cur: Bytes[] = [];
  let unsignedLen = 0;
  const fits = (k: number, len: number) =>
    len + P256_SIGNATURE_LENGTH * Math.ceil(k / signEvery) <=
      COALESCE_PLAINTEXT_MAX;
  for (const b of bodies) {
    const len = innerLength(b.length, false);
    if (
      cur.length > 0 &&
      (cur.length === MAX_MESSAGES_PER_RECORD ||
        !fits(cur.length + 1, unsignedLen + len))
    ) {
      groups.push(cur);
      cur = [];
      unsignedLen = 0;
    }
    cur.push(b);
    unsignedLen += len;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}
