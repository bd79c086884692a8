/**
 * The end-to-end handshake: three messages, SIGMA-I style (PROTOCOL.md
 * §Handshake). Sans-I/O: the caller moves bytes and passes the time; this
 * module only computes. Typestate: a handshake object hands its result to a
 * session factory only after every check passed; it never exposes keys, and
 * once finished (or failed) every further call throws `unexpected-message`.
 *
 * ```
 * I → R  HS1  ver type randomI offers(suite, eI)…            ‖ zeros
 * R → I  HS2  ver type suite eR randomR ‖ AEAD(k_hs_r; spki_R, sig_R, mac_R ‖ zeros)
 * I → R  HS3  ver type ‖ AEAD(k_hs_i; spki_I, sig_I, mac_I ‖ zeros)
 * ```
 *
 * Suites: the initiator offers one key share per suite in its preference
 * order; the responder takes the first offered suite it accepts
 * (`suites`), and each side proves the identity of that suite's algorithm
 * (P-256 → ECDSA P-256, X25519 → Ed25519). Byte layouts and padding are in
 * `lib/handshake_wire.ts`.
 *
 * Calls on one handshake object must be serialized (await each `receive`).
 * Without a `complete` factory both sides yield a `Session`
 * (`Session.fromHandshake(result, sessionOptions)`).
 *
 * @example
 * ```ts
 * import { Initiator, Responder } from "./handshake.ts";
 * import { generateIdentity } from "./identity.ts";
 *
 * const [alice, bob] = [await generateIdentity(), await generateIdentity()];
 * const idA = new Uint8Array(16).fill(1), idB = new Uint8Array(16).fill(2);
 * const trust = () => "ok" as const; // a real driver checks known peers (TOFU)
 * const { handshake, message: hs1 } = await Initiator.start({
 *   identity: alice, localId: idA, peerId: idB, now: Date.now(), trust,
 * });
 * const responder = Responder.create({ identity: bob, localId: idB, trust });
 * const { send: hs2 } = await responder.receive(hs1, { now: Date.now(), from: idA });
 * const { send: hs3, session: aliceSession } = await handshake.receive(hs2!, Date.now());
 * const { session: bobSession } = await responder.receive(hs3, { now: Date.now() });
 * ```
 * @module
 */

import { type Bytes, concat, view } from "./bytes.ts";
import {
  E2E_VERSION,
  HANDSHAKE_TIMEOUT_MS,
  MAX_SUITE_OFFERS,
  SESSION_ID_LENGTH,
} from "./constants.ts";
import { ProtocolError } from "./errors.ts";
import type { HandshakeResult, HandshakeRole } from "./handshake_result.ts";
import {
  checkSealedLength,
  encodeHs1,
  encodeHs2Prefix,
  HANDSHAKE_RANDOM_LENGTH,
  hex4,
  hs2PrefixLength,
  type Offer,
  PACKET_HS1,
  PACKET_HS2,
  PACKET_HS3,
  PACKET_RECORD,
  parseHs1,
  parseProof,
} from "./handshake_wire.ts";
import {
  checkProof,
  type Ephemeral,
  type HandshakeSecrets,
  handshakeSecrets,
  type HashFn,
  INITIATOR_SIGNATURE_CONTEXT,
  makeProof,
  newEphemeral,
  RESPONDER_SIGNATURE_CONTEXT,
  sharedSecret,
  type Transcript,
  transcript,
  transcriptPrologue,
  type TrustCallback,
} from "./handshake_keys.ts";
import type { Identity } from "./identity.ts";
import type { HandshakeKeyPrimitives } from "./primitives.ts";
import { Session, type SessionOptions } from "./session.ts";
import {
  type EphemeralKeyPair,
  keyAlgorithm,
  P256_POINT_LENGTH,
  SUITE_P256,
  SUITE_X25519,
  type SuiteInfo,
  SUITES,
} from "./suite.ts";

export {
  HANDSHAKE_RANDOM_LENGTH,
  PACKET_HS1,
  PACKET_HS2,
  PACKET_HS3,
  PACKET_RECORD,
} from "./handshake_wire.ts";
/** HS2's cleartext prefix length for P-256 (ver type suite eR randomR); 68 for X25519. */
export const HS2_PREFIX_LENGTH: number = hs2PrefixLength(P256_POINT_LENGTH);

/** Suites this implementation speaks: wire id → name bound into the transcript. */
export const HANDSHAKE_SUITES: ReadonlyMap<number, string> = new Map(
  [...SUITES.values()].map((s) => [s.id, s.name]),
);

export {
  HANDSHAKE_LABELS,
  importEphemeralPkcs8,
  INITIATOR_SIGNATURE_CONTEXT,
  PROLOGUE_LABEL,
  RESPONDER_SIGNATURE_CONTEXT,
  spkiFingerprintHex,
  transcriptPrologue,
  type TrustCallback,
  type TrustDecision,
} from "./handshake_keys.ts";
const EMPTY = new Uint8Array(0);

/** Turns a completed handshake into the caller's session object (e.g. `Session.fromHandshake`). */
export type SessionFactory<S> = (result: HandshakeResult) => S | Promise<S>;

/** Options shared by both roles. */
export interface HandshakeOptions<S> {
  /** Our long-term identity (its algorithm decides its suite). */
  identity: Identity;
  /** More identities, at most one per algorithm (e.g. an Ed25519 one beside a P-256 one). */
  identities?: readonly Identity[];
  /**
   * Suites, in preference order: what the initiator offers, what the
   * responder accepts. Default: the suites of the identities, in their order.
   * Each needs an identity of its algorithm.
   */
  suites?: readonly number[];
  /** Our 16-byte relay session ID. */
  localId: Bytes;
  /** Accepts or refuses the peer's identity (see {@link TrustCallback}). */
  trust: TrustCallback;
  /**
   * Receives the result on success; its return value is the session.
   * Default: `Session.fromHandshake(result, sessionOptions)`.
   */
  complete?: SessionFactory<S>;
  /** Options for the default factory `Session.fromHandshake`. */
  sessionOptions?: SessionOptions;
  /** Time allowed for the handshake (ms); default `HANDSHAKE_TIMEOUT_MS`. */
  deadlineMs?: number;
  /** Fixed ephemeral key pair (test vectors only; see {@link importEphemeralPkcs8}); used for the suite of its algorithm. */
  ephemeral?: EphemeralKeyPair;
  /** More fixed ephemerals, one per suite (test vectors only). */
  ephemerals?: readonly EphemeralKeyPair[];
  /** Fixed 32-byte random (test vectors only). */
  random?: Bytes;
}

/** Options of {@link Initiator.start}. */
export interface InitiatorOptions<S> extends HandshakeOptions<S> {
  /** The responder's 16-byte relay session ID. */
  peerId: Bytes;
  /** Current time (ms); the deadline runs from here. */
  now: number;
  /** Shorthand for `suites: [suite]`. */
  suite?: number;
}

/** Options of {@link Responder.create}. */
export type ResponderOptions<S> = HandshakeOptions<S>;

/** What {@link Initiator.start} returns: the handshake object and HS1 to send. */
export interface InitiatorStart<S> {
  /** The initiator, waiting for HS2. */
  handshake: Initiator<S>;
  /** HS1, to be sent to the responder. */
  message: Bytes;
}

/** Without `complete`, the handshake yields a `Session`. */
type DefaultFactory = { complete?: undefined };
/** With `complete`, the handshake yields what it returns. */
type CustomFactory<S> = { complete: SessionFactory<S> };

/** What the initiator's `receive` yields: HS3 to send and the session. */
export interface InitiatorOutput<S> {
  /** HS3, to be sent to the responder. */
  send: Bytes;
  /** The session (our side is complete once HS3 is sent). */
  session: S;
}

/** What the responder's `receive` yields: HS2 to send after HS1, the session after HS3. */
export type ResponderOutput<S> =
  | { send: Bytes; session?: undefined }
  | { send?: undefined; session: S };

type Phase = "wait-hs2" | "wait-hs1" | "wait-hs3" | "busy" | "done" | "failed";

/** The identities and suites of one side, resolved from its options. */
interface Config {
  /** Suites in preference order, each with an identity. */
  suites: SuiteInfo[];
  /** Identity per suite id. */
  identity: Map<number, Identity>;
  /** Fixed ephemerals per suite id (vectors). */
  ephemeral: Map<number, EphemeralKeyPair>;
}

function config<S>(o: HandshakeOptions<S>, single?: number): Config {
  const identity = new Map<number, Identity>();
  for (const id of [o.identity, ...(o.identities ?? [])]) {
    const alg = keyAlgorithm(id.privateKey);
    const suite = [...SUITES.values()].find((s) =>
      s.identityAlgorithm === alg
    )!;
    if (identity.has(suite.id)) {
      throw new RangeError(`two ${alg} identities given`);
    }
    identity.set(suite.id, id);
  }
  const ids = single !== undefined
    ? [single]
    : o.suites ?? [...identity.keys()];
  if (ids.length < 1 || ids.length > MAX_SUITE_OFFERS) {
    throw new RangeError(`1..${MAX_SUITE_OFFERS} suites`);
  }
  const suites: SuiteInfo[] = [];
  for (const id of ids) {
    const info = SUITES.get(id);
    if (info === undefined) {
      throw new ProtocolError(
        "unsupported-suite",
        `suite 0x${hex4(id)} is not implemented`,
      );
    }
    if (!identity.has(id)) {
      throw new RangeError(
        `suite ${info.name} needs an ${info.identityAlgorithm} identity`,
      );
    }
    if (suites.includes(info)) throw new RangeError("a suite listed twice");
    suites.push(info);
  }
  const ephemeral = new Map<number, EphemeralKeyPair>();
  for (const e of [o.ephemeral, ...(o.ephemerals ?? [])]) {
    if (!e) continue;
    const suite = e.privateKey.algorithm.name === "X25519"
      ? SUITE_X25519
      : SUITE_P256;
    ephemeral.set(suite, e);
  }
  return { suites, identity, ephemeral };
}

/**
 * The phase of one handshake and its deadline: the guard both roles use so a
 * message is accepted only in the phase that expects it, a concurrent call or
 * a late message ends the handshake, and failure drops the role's secrets.
 */
class PhaseGuard {
  phase: Phase;
  deadline: number;
  readonly #role: HandshakeRole;
  readonly #dropSecrets: () => void;

  constructor(
    role: HandshakeRole,
    initial: Phase,
    deadline: number,
    dropSecrets: () => void,
  ) {
    this.#role = role;
    this.phase = initial;
    this.deadline = deadline;
    this.#dropSecrets = dropSecrets;
  }

  /** Throws `timeout` (and fails) if `now` is at or past the deadline of a live handshake. */
  checkTimeout(now: number): void {
    if (!live(this.phase) || now < this.deadline) return;
    this.fail();
    throw new ProtocolError("timeout", "handshake did not complete in time");
  }

  /** Moves from `expected` to busy; any other phase fails with `unexpected-message`. */
  enter(expected: Phase): void {
    if (this.phase !== expected) {
      const was = this.phase;
      this.fail();
      throw new ProtocolError(
        "unexpected-message",
        `${this.#role} received a message while ${was}`,
      );
    }
    this.phase = "busy";
  }

  /** Moves from busy to `next`; a concurrent call that already failed it throws. */
  leave(next: Phase): void {
    if (this.phase !== "busy") {
      throw new ProtocolError(
        "unexpected-message",
        "handshake aborted by a concurrent call",
      );
    }
    this.phase = next;
  }

  /** Ends the handshake (unless done) and drops its secrets. */
  fail(): void {
    if (this.phase !== "done") this.phase = "failed";
    this.#dropSecrets();
  }
}

/** Initiator side of the handshake; see the module doc. */
export class Initiator<S> {
  readonly #guard: PhaseGuard;
  #config: Config;
  #trust: TrustCallback;
  #complete: SessionFactory<S>;
  #localId: Bytes;
  #peerId: Bytes;
  #hs1: Bytes;
  #ephemerals: Map<number, Ephemeral> | null;
  #hash: HashFn | undefined;
  #keys: HandshakeKeyPrimitives | undefined;

  private constructor(
    o: InitiatorOptions<S>,
    cfg: Config,
    hs1: Bytes,
    ephemerals: Map<number, Ephemeral>,
  ) {
    this.#guard = new PhaseGuard(
      "initiator",
      "wait-hs2",
      o.now + (o.deadlineMs ?? HANDSHAKE_TIMEOUT_MS),
      () => this.#ephemerals = null,
    );
    this.#config = cfg;
    this.#trust = o.trust;
    this.#complete = factory(o);
    this.#localId = o.localId.slice();
    this.#peerId = o.peerId.slice();
    this.#hs1 = hs1;
    this.#ephemerals = ephemerals;
    this.#hash = o.sessionOptions?.primitives?.sha256;
    this.#keys = o.sessionOptions?.primitives?.handshake;
  }

  /** Starts a handshake yielding a `Session`: returns the handshake object and HS1 to send. */
  static start(
    options: InitiatorOptions<Session> & DefaultFactory,
  ): Promise<InitiatorStart<Session>>;
  /** Starts a handshake yielding what `complete` returns. */
  static start<S>(
    options: InitiatorOptions<S> & CustomFactory<S>,
  ): Promise<InitiatorStart<S>>;
  static async start<S>(
    options: InitiatorOptions<S>,
  ): Promise<InitiatorStart<S>> {
    checkOptions(options);
    checkId(options.peerId, "peerId");
    if (!Number.isFinite(options.now)) {
      throw new RangeError("now must be finite");
    }
    const cfg = config(options, options.suite);
    const ephemerals = new Map<number, Ephemeral>();
    const keys = options.sessionOptions?.primitives?.handshake;
    const offers: Offer[] = [];
    for (const s of cfg.suites) {
      const e = cfg.ephemeral.get(s.id) ?? await newEphemeral(s.id, keys);
      ephemerals.set(s.id, e);
      offers.push({ suite: s.id, ephemeral: e.publicRaw });
    }
    const random = options.random?.slice() ?? randomBytes();
    const message = encodeHs1(random, offers);
    const handshake = new Initiator(options, cfg, message, ephemerals);
    return { handshake, message: message.slice() };
  }

  /** Current phase: "wait-hs2", "busy", "done" or "failed". */
  get phase(): string {
    return this.#guard.phase;
  }

  /** Throws `timeout` (and ends the handshake) if `now` is at or past the deadline. */
  checkTimeout(now: number): void {
    this.#guard.checkTimeout(now);
  }

  /** Ends the handshake and drops its secrets (e.g. when the connection closes). */
  abort(): void {
    this.#guard.fail();
  }

  /** Processes HS2; returns HS3 to send and the session. */
  async receive(bytes: Uint8Array, now: number): Promise<InitiatorOutput<S>> {
    if (!Number.isFinite(now)) throw new RangeError("now must be finite");
    this.#guard.enter("wait-hs2");
    try {
      this.#guard.checkTimeout(now);
      const out = await this.#onHs2(bytes.slice());
      this.#guard.leave("done");
      this.#ephemerals = null;
      return out;
    } catch (e) {
      this.#guard.fail();
      throw e;
    }
  }

  async #onHs2(hs2: Bytes): Promise<InitiatorOutput<S>> {
    checkHeader(hs2, PACKET_HS2);
    if (hs2.length < 4) throw malformed("HS2 shorter than its header");
    const suiteId = view(hs2).getUint16(2);
    const suite = this.#config.suites.find((s) => s.id === suiteId);
    if (suite === undefined) {
      throw new ProtocolError(
        "unsupported-suite",
        `HS2 names suite 0x${hex4(suiteId)}, not one offered`,
      );
    }
    const prefixLength = hs2PrefixLength(suite.pointLength);
    checkSealedLength(hs2, prefixLength, "HS2");
    const prefix = hs2.slice(0, prefixLength);
    const peerEphemeral = prefix.slice(4, 4 + suite.pointLength);
    const prologue = transcriptPrologue(
      suite.name,
      this.#localId,
      this.#peerId,
    );
    const hs1 = this.#hs1;
    const t = transcript(prologue, this.#hash, this.#keys).with(hs1, prefix);
    const own = this.#ephemerals!.get(suite.id)!;
    this.#ephemerals = null;
    const secrets = await handshakeSecrets(
      await sharedSecret(own, suite.id, peerEphemeral),
      await t.hash(),
      this.#keys,
    );
    try {
      return await this.#finish(suite, hs2, prefix.length, t, secrets);
    } finally {
      secrets.drop();
    }
  }

  /** `t` = the transcript after HS1 ‖ HS2's cleartext prefix (`prefixLength` bytes). */
  async #finish(
    suite: SuiteInfo,
    hs2: Bytes,
    prefixLength: number,
    t: Transcript,
    secrets: HandshakeSecrets,
  ): Promise<InitiatorOutput<S>> {
    const prefix = hs2.subarray(0, prefixLength);
    const sealed = hs2.subarray(prefixLength);
    const plain = await secrets.open("responder", sealed, prefix);
    const peer = await checkProof(
      parseProof(plain, prefixLength, hs2.length),
      suite,
      RESPONDER_SIGNATURE_CONTEXT,
      (tag, data) => secrets.macVerify("responder", tag, data),
      t,
      this.#trust,
      this.#hash,
      this.#keys,
    );
    const identity = this.#config.identity.get(suite.id)!;
    const hs3Header = new Uint8Array([E2E_VERSION, PACKET_HS3]);
    // T(HS1 ‖ HS2 ‖ …): HS2 = prefix ‖ sealed, and `t` has absorbed the prefix.
    const tHs2 = t.with(sealed);
    const proof = await makeProof(
      identity,
      hs3Header.length,
      INITIATOR_SIGNATURE_CONTEXT,
      (data) => secrets.mac("initiator", data),
      tHs2,
      this.#keys,
    );
    const hs3 = concat(
      hs3Header,
      await secrets.seal("initiator", proof, hs3Header),
    );
    const sessionHash = await tHs2.hash(hs3);
    const master = await secrets.master(sessionHash);
    const session = await this.#complete({
      role: "initiator",
      suite: suite.id,
      localId: this.#localId.slice(),
      peerId: this.#peerId.slice(),
      localIdentity: identity,
      peerIdentity: peer,
      sessionHash,
      master,
    });
    return { send: hs3, session };
  }
}

/** Responder side of the handshake; see the module doc. */
export class Responder<S> {
  readonly #guard: PhaseGuard = new PhaseGuard(
    "responder",
    "wait-hs1",
    Infinity,
    () => {
      this.#secrets?.drop();
      this.#secrets = null;
      this.#config.ephemeral.clear();
    },
  );
  #deadlineMs: number;
  #config: Config;
  #trust: TrustCallback;
  #complete: SessionFactory<S>;
  #localId: Bytes;
  #fixedRandom: Bytes | undefined;
  #hash: HashFn | undefined;
  #keys: HandshakeKeyPrimitives | undefined;
  // Set by HS1:
  #peerId: Bytes = EMPTY;
  #suite: SuiteInfo | undefined;
  /** The transcript after HS1 ‖ HS2 (public bytes only). */
  #tHs2: Transcript | undefined;
  #secrets: HandshakeSecrets | null = null;

  private constructor(o: ResponderOptions<S>) {
    this.#deadlineMs = o.deadlineMs ?? HANDSHAKE_TIMEOUT_MS;
    this.#config = config(o);
    this.#trust = o.trust;
    this.#complete = factory(o);
    this.#localId = o.localId.slice();
    this.#fixedRandom = o.random?.slice();
    this.#hash = o.sessionOptions?.primitives?.sha256;
    this.#keys = o.sessionOptions?.primitives?.handshake;
  }

  /**
   * Creates a responder waiting for HS1. The deadline starts when HS1
   * arrives (a responder may wait for an initiator indefinitely).
   */
  static create(
    options: ResponderOptions<Session> & DefaultFactory,
  ): Responder<Session>;
  /** Creates a responder yielding what `complete` returns. */
  static create<S>(
    options: ResponderOptions<S> & CustomFactory<S>,
  ): Responder<S>;
  static create<S>(options: ResponderOptions<S>): Responder<S> {
    checkOptions(options);
    return new Responder(options);
  }

  /** Current phase: "wait-hs1", "wait-hs3", "busy", "done" or "failed". */
  get phase(): string {
    return this.#guard.phase;
  }

  /** The suite chosen from HS1 (undefined before HS1). */
  get suite(): number | undefined {
    return this.#suite?.id;
  }

  /** Throws `timeout` (and ends the handshake) if `now` is at or past the deadline. */
  checkTimeout(now: number): void {
    this.#guard.checkTimeout(now);
  }

  /** Ends the handshake and drops its secrets. */
  abort(): void {
    this.#guard.fail();
  }

  /**
   * Processes HS1 (`from` = the sender's relay session ID as stamped by the
   * relay; required) → `{ send: HS2 }`, then HS3 → `{ session }`. When `from`
   * is given with HS3 it must be HS1's sender.
   */
  async receive(
    bytes: Uint8Array,
    context: { now: number; from?: Uint8Array },
  ): Promise<ResponderOutput<S>> {
    const { now, from } = context;
    if (!Number.isFinite(now)) throw new RangeError("now must be finite");
    const expected = this.#guard.phase === "wait-hs1" ? "wait-hs1" : "wait-hs3";
    if (expected === "wait-hs1") {
      if (from === undefined) throw new TypeError("HS1 needs `from`");
      checkId(from, "from");
    }
    this.#guard.enter(expected);
    try {
      this.#guard.checkTimeout(now);
      let out: ResponderOutput<S>;
      if (expected === "wait-hs1") {
        out = { send: await this.#onHs1(bytes.slice(), from!.slice(), now) };
        this.#guard.leave("wait-hs3");
      } else {
        if (from !== undefined && !sameBytes(from, this.#peerId)) {
          throw new ProtocolError(
            "unexpected-message",
            "HS3 came from a different relay session than HS1",
          );
        }
        out = { session: await this.#onHs3(bytes.slice()) };
        this.#guard.leave("done");
      }
      return out;
    } catch (e) {
      this.#guard.fail();
      throw e;
    }
  }

  async #onHs1(hs1: Bytes, from: Bytes, now: number): Promise<Bytes> {
    checkHeader(hs1, PACKET_HS1);
    const { offers } = parseHs1(hs1);
    // The initiator's preference order decides; we accept our `suites`.
    const offer = offers.find((o) =>
      this.#config.suites.some((s) => s.id === o.suite)
    );
    if (offer === undefined) {
      throw new ProtocolError(
        "unsupported-suite",
        `HS1 offers no accepted suite (offered ${
          offers.map((o) => "0x" + hex4(o.suite)).join(", ")
        })`,
      );
    }
    const suite = SUITES.get(offer.suite)!;
    this.#guard.deadline = now + this.#deadlineMs;
    this.#peerId = from;
    this.#suite = suite;
    const ephemeral = this.#config.ephemeral.get(suite.id) ??
      await newEphemeral(suite.id, this.#keys);
    this.#config.ephemeral.clear();
    const random = this.#fixedRandom ?? randomBytes();
    const prefix = encodeHs2Prefix(suite.id, ephemeral.publicRaw, random);
    const t = transcript(
      transcriptPrologue(suite.name, from, this.#localId),
      this.#hash,
      this.#keys,
    ).with(hs1, prefix);
    const secrets = await handshakeSecrets(
      await sharedSecret(ephemeral, suite.id, offer.ephemeral),
      await t.hash(),
      this.#keys,
    );
    this.#secrets = secrets;
    const proof = await makeProof(
      this.#config.identity.get(suite.id)!,
      prefix.length,
      RESPONDER_SIGNATURE_CONTEXT,
      (data) => secrets.mac("responder", data),
      t,
      this.#keys,
    );
    const sealed = await secrets.seal("responder", proof, prefix);
    this.#tHs2 = t.with(sealed);
    return concat(prefix, sealed);
  }

  async #onHs3(hs3: Bytes): Promise<S> {
    checkHeader(hs3, PACKET_HS3);
    checkSealedLength(hs3, 2, "HS3");
    const secrets = this.#secrets!;
    const suite = this.#suite!;
    const plain = await secrets.open(
      "initiator",
      hs3.subarray(2),
      hs3.subarray(0, 2),
    );
    const t = this.#tHs2!;
    const peer = await checkProof(
      parseProof(plain, 2, hs3.length),
      suite,
      INITIATOR_SIGNATURE_CONTEXT,
      (tag, data) => secrets.macVerify("initiator", tag, data),
      t,
      this.#trust,
      this.#hash,
      this.#keys,
    );
    const sessionHash = await t.hash(hs3);
    const master = await secrets.master(sessionHash);
    secrets.drop();
    this.#secrets = null;
    return await this.#complete({
      role: "responder",
      suite: suite.id,
      localId: this.#localId.slice(),
      peerId: this.#peerId.slice(),
      localIdentity: this.#config.identity.get(suite.id)!,
      peerIdentity: peer,
      sessionHash,
      master,
    });
  }
}

// ── Wire helpers ────────────────────────────────────────────────────────────

function malformed(message: string): ProtocolError {
  return new ProtocolError("malformed", message);
}

function live(phase: Phase): boolean {
  return phase !== "done" && phase !== "failed";
}

function randomBytes(): Bytes {
  return crypto.getRandomValues(new Uint8Array(HANDSHAKE_RANDOM_LENGTH));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The caller's session factory, or `Session.fromHandshake` with `sessionOptions`. */
function factory<S>(o: HandshakeOptions<S>): SessionFactory<S> {
  if (o.complete) return o.complete;
  // The overloads of start/create guarantee S = Session here.
  return (r) => Session.fromHandshake(r, o.sessionOptions) as Promise<S>;
}

function checkId(id: Uint8Array, name: string): void {
  if (!(id instanceof Uint8Array) || id.length !== SESSION_ID_LENGTH) {
    throw new RangeError(`${name} must be ${SESSION_ID_LENGTH} bytes`);
  }
}

function checkOptions<S>(o: HandshakeOptions<S>): void {
  checkId(o.localId, "localId");
  if (typeof o.trust !== "function") throw new TypeError("trust is required");
  if (o.complete !== undefined && typeof o.complete !== "function") {
    throw new TypeError("complete must be a function");
  }
  if (
    o.deadlineMs !== undefined &&
    !(Number.isFinite(o.deadlineMs) && o.deadlineMs > 0)
  ) {
    throw new RangeError("deadlineMs must be a positive number");
  }
  if (
    o.random !== undefined && o.random.length !== HANDSHAKE_RANDOM_LENGTH
  ) {
    throw new RangeError(`random must be ${HANDSHAKE_RANDOM_LENGTH} bytes`);
  }
}

/** Version, then type: known handshake type but not the one expected → unexpected-message. */
function checkHeader(msg: Bytes, type: number): void {
  if (msg.length < 2) throw malformed("message shorter than its 2-byte header");
  if (msg[0] !== E2E_VERSION) {
    throw new ProtocolError(
      "unsupported-version",
      `version ${msg[0]} (expected ${E2E_VERSION})`,
    );
  }
  const got = msg[1];
  if (got < PACKET_HS1 || got > PACKET_RECORD) {
    throw malformed(`unknown packet type 0x${got.toString(16)}`);
  }
  if (got !== type) {
    throw new ProtocolError(
      "unexpected-message",
      `packet type 0x${got.toString(16)} where 0x${
        type.toString(16)
      } was expected`,
    );
  }
}
