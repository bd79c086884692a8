/**
 * The 1:1 clients (`deno task bank|customer` without `--serve`): one
 * conversation over the {@link Engine} — with `--peer`, the conversation with
 * that peer; without, the first peer whose handshake completes (strangers'
 * failed attempts are ignored, never fatal). Adds what a person at a
 * terminal or a script on stdin needs: input lines, `/` commands and
 * prompts, the payment scenario, and the exit code. Reports
 * {@link ClientEvent}s to a callback (terminal or JSON renderer).
 * @module
 */

import type { Bytes } from "../lib/bytes.ts";
import { Backoff } from "../lib/backoff.ts";
import { formatFingerprint } from "../lib/fingerprint.ts";
import type { Identity } from "../lib/identity.ts";
import type { KnownPeers } from "../lib/known_peers.ts";
import {
  describePaymentRequest,
  encodePaymentMessage,
  parsePaymentMessage,
  type PaymentRequest,
  paymentRequest,
  paymentResponse,
} from "../lib/payment.ts";
import { formatSessionId, parseSessionId } from "../lib/registration.ts";
import { parsePeerAddress, type PeerAddress } from "../lib/address.ts";
import type { SessionPrimitives } from "../lib/primitives.ts";
import {
  nodeHashPrimitives,
  nodePrimitives,
} from "../lib/deno/node_primitives.ts";
import { type ClientOptions, EXIT } from "./args.ts";
import type { InputLine } from "./stdin_lines.ts";
import {
  type ClientEvent,
  type Connector,
  Engine,
  IncomingMessageEvent,
} from "./engine.ts";
import { internalErrorText } from "./events.ts";

/** `--crypto` modes → session primitives (undefined = WebCrypto only, the lib default). */
export const PRIMITIVES: Record<
  ClientOptions["crypto"],
  SessionPrimitives | undefined
> = {
  keys: nodeHashPrimitives,
  fast: nodePrimitives,
  webcrypto: undefined,
};

/** Dependencies of a {@link ChatClient}: loaded files and I/O. */
export interface ClientDeps {
  /** Our identity (ECDSA P-256; its fingerprint is the one shown). */
  identity: Identity;
  /** Our identities for the other suites (an Ed25519 one for suite 0x0002). */
  identities?: Identity[];
  /** Known peers (mutated and saved to `knownPeersPath`). */
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
  /**
   * Called once the conversation has ended and before `closed` is reported:
   * reads what is left of the input (bounded), so lines never read are
   * reported as not sent instead of vanishing.
   */
  drainInput?: () => Promise<void>;
}

const CR = 0x0d;
/** Decodes an input line's bytes (a BOM there is text, as the stream decoder kept it). */
const UTF8 = new TextDecoder("utf-8", { ignoreBOM: true });

/** An input line as text (bytes of a line are valid UTF-8). */
function lineText(line: InputLine): string {
  return typeof line === "string" ? line : UTF8.decode(line);
}

/**
 * Whether a message's text starts with "{": from the engine's UTF-8 body
 * when there is one (the decoder drops a leading byte-order mark), else from
 * the text.
 */
function startsLikeObject(ev: ClientEvent & { type: "message" }): boolean {
  const b = IncomingMessageEvent.bodyOf(ev);
  if (b === undefined) return ev.text.startsWith("{");
  const bom = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  return b[bom] === 0x7b;
}

/** Error codes that mean some input was not delivered to the peer (exit {@link EXIT.undelivered}). */
const LOSS_CODES = new Set([
  "not-sent",
  "undelivered",
  "too-large",
  "invalid-text",
  "outbox-full",
]);

/** Exit code and `closed` reason per way a conversation ends. */
const ENDINGS: Record<string, [number, string]> = {
  closed: [EXIT.ok, "conversation closed"],
  "close-timeout": [EXIT.other, "close timed out"],
  "peer-timeout": [EXIT.noPeer, "peer never arrived"],
  "handshake-failed": [EXIT.handshake, "failed"],
  failed: [EXIT.other, "failed"],
};

/** One run of a bank or customer client with one peer; see the module doc. */
export class ChatClient {
  readonly #o: ClientOptions;
  readonly #d: ClientDeps;
  readonly #engine: Engine;
  readonly #done = Promise.withResolvers<number>();
  #finished = false;
  /** The peer of this run (given by --peer, or the first to complete a handshake). */
  #peer?: Bytes;
  #peerShown?: { id: Bytes; text: string };
  #secureOnce = false;
  /** Lines typed before a conversation exists. */
  #pending: InputLine[] = [];
  #eof = false;
  #closeRequested = false;
  #quitReason?: string;
  #refused?: { fingerprint: string };
  #prompt?: {
    kind: "payment" | "verify" | "trust";
    answer: (yes: boolean) => Promise<void>;
  };
  #scenarioDone = false;
  /** Our Ed25519 identity's fingerprint (from `ready`), when suite x25519 is enabled. */
  #ed25519Fingerprint?: string;
  /** What was not delivered, one entry per message id or input line (for the exit code and `closed`). */
  #lost: string[] = [];
  #paymentSent?: { body: string; request: PaymentRequest };
  #waitTimer?: ReturnType<typeof setTimeout>;
  /** Serializes input handling (lines in order). */
  #queue: Promise<void> = Promise.resolve();

  /** Creates the client; call {@link run}. */
  constructor(options: ClientOptions, deps: ClientDeps) {
    this.#o = options;
    this.#d = deps;
    this.#engine = new Engine({
      role: options.role,
      identity: deps.identity,
      identities: deps.identities,
      suites: options.suites,
      knownPeers: deps.knownPeers,
      knownPeersPath: deps.knownPeersPath,
      connect: deps.connect,
      address: deps.address,
      now: deps.now,
      peerName: () => options.peerName,
      accept: (id) => this.#accepts(id),
      sessionOptions: {
        coverRate: options.coverRate,
        signEvery: options.scenario ? 1 : options.signEvery,
        primitives: PRIMITIVES[options.crypto],
      },
      outbox: options.outbox,
      deliverTimeoutMs: options.deliverTimeoutS * 1000,
      closeTimeoutMs: options.closeTimeoutS * 1000,
      reconnectMs: options.reconnectS * 1000,
      transcriptPath: () => options.transcript,
      emit: (ev) => this.#onEvent(ev),
      onFatal: (kind, message) => {
        this.#error(kind, message);
        this.#finish(
          kind === "replaced" ? EXIT.other : EXIT.relay,
          kind === "replaced" ? "replaced" : "relay lost",
        );
      },
    });
  }

  /** Connects and runs until the conversation ends; resolves to the exit code. */
  async run(): Promise<number> {
    const started = await startRetryingWhenFull(() => this.#engine.start(), {
      reconnectMs: this.#o.reconnectS * 1000,
      now: this.#d.now ?? Date.now,
      notice: (text) => this.#notice(text),
      stopped: this.#done.promise.then(() => {}),
    });
    if (started === "stopped") return this.#done.promise;
    if (started !== "started") {
      this.#error(connectErrorCode(started), (started as Error).message);
      return EXIT.relay;
    }
    const peer = this.#o.peer;
    if (peer) {
      this.#peer = peer.id.slice();
      await this.#engine.dial(this.#peer, peer, this.#o.waitS * 1000);
    } else {
      if (!this.#o.json) {
        this.#notice(
          "No conversation yet. Paste your peer's ID or address and press Enter to contact them, " +
            "or just wait here to be contacted.",
        );
      }
      if (this.#o.waitS > 0) this.#startWaitTimer();
    }
    return this.#done.promise;
  }

  #startWaitTimer(): void {
    {
      this.#waitTimer = setTimeout(() => {
        if (this.#secureOnce || this.#finished) return;
        this.#error(
          "peer-timeout",
          `no peer arrived within ${this.#o.waitS} s (did your peer get this client's address, and is it connected to the same relay? --wait 0 waits forever)`,
        );
        this.#finish(EXIT.noPeer, "peer never arrived");
      }, this.#o.waitS * 1000);
    }
  }

  /**
   * Interactive, before any conversation: a line is the peer to contact
   * (an ID or address), never chat. Returns true when the line was taken.
   */
  async #pastedPeer(text: string): Promise<boolean> {
    if (this.#o.json || this.#o.peer || this.#peer !== undefined) return false;
    const s = text.trim();
    if (s === "") return true; // Enter alone: keep waiting to be contacted
    let addr: PeerAddress;
    try {
      addr = parsePeerAddress(s);
    } catch (e) {
      this.#notice(
        `not sent: there is no conversation yet, and this is not a peer ID or address (${
          (e as Error).message
        }). Paste the ID or address your peer printed, or wait to be contacted.`,
      );
      return true;
    }
    if (
      addr.relay !== undefined && addr.relay !== new URL(this.#o.relay).href
    ) {
      this.#notice(
        `not contacted: that address is on another relay (${addr.relay}); this client is connected to ${this.#o.relay}. Restart with --peer '${s}'.`,
      );
      return true;
    }
    if (
      addr.ca !== undefined && this.#o.pin !== undefined &&
      addr.ca !== this.#o.pin
    ) {
      this.#notice(
        "not contacted: that address pins another relay CA than this client uses. Restart with --peer and that address.",
      );
      return true;
    }
    this.#peer = addr.id.slice();
    clearTimeout(this.#waitTimer);
    this.#notice(`contacting ${formatSessionId(this.#peer)}…`);
    await this.#engine.dial(this.#peer, addr, this.#o.waitS * 1000);
    return true;
  }

  /** A line typed by the user (interactive) or read from stdin (scripted). */
  input(line: string): void {
    this.inputLines([line]);
  }

  /**
   * Lines read together (a stdin chunk): handled in order, their messages
   * sealed in batches. A line may come as its UTF-8 bytes
   * (clients/stdin_lines.ts): a message line then needs no string.
   */
  inputLines(lines: InputLine[]): void {
    if (lines.length === 0) return;
    this.#serial(async () => {
      if (this.#finished) return this.#notSentAfterEnd(lines.length);
      let batch: InputLine[] = [];
      for (const raw of lines) {
        if (typeof raw !== "string") {
          const bytes = raw.at(-1) === CR ? raw.subarray(0, -1) : raw;
          // A message as it is, in the usual case (scripted, no question asked).
          if (this.#o.json && !this.#prompt && !this.#refused) {
            if (bytes.length > 0) batch.push(bytes);
            continue;
          }
        }
        const text = typeof raw === "string"
          ? raw.replace(/\r$/, "")
          : UTF8.decode(raw.at(-1) === CR ? raw.subarray(0, -1) : raw);
        if (this.#prompt && !text.startsWith("/")) {
          await this.#sendLines(batch);
          batch = [];
          const p = this.#prompt;
          this.#prompt = undefined;
          await p.answer(/^\s*(y|yes)\s*$/i.test(text));
        } else if (!this.#o.json && text.startsWith("/")) {
          await this.#sendLines(batch);
          batch = [];
          await this.#command(text.trim());
        } else if (await this.#pastedPeer(text)) {
          continue;
        } else if (this.#refused && text.length > 0) {
          await this.#sendLines(batch);
          batch = [];
          this.#error(
            "not-sent",
            `not sent: the conversation with ${this.#o.peerName} is refused (its key changed); ` +
              "type /trust to decide, or /quit",
            { lines: 1 },
          );
        } else if (text.length > 0) batch.push(text);
      }
      await this.#sendLines(batch);
    });
  }

  /** End of input: close once everything sent is acknowledged (a waiting client first waits for its peer). */
  eof(): void {
    this.#serial(async () => {
      this.#eof = true;
      await this.#maybeRequestClose();
    });
  }

  /** /quit or Ctrl-C: close cleanly now (a second time: stop at once). */
  quit(reason = "quit"): void {
    this.#serial(() => this.#quit(reason));
  }

  #serial(fn: () => void | Promise<void>): void {
    this.#queue = this.#queue.then(fn).catch((e) => {
      this.#error("internal", internalErrorText(e));
      this.#finish(EXIT.other, "failed");
    });
  }

  #notSentAfterEnd(count: number): void {
    this.#error(
      "not-sent",
      `${count} input line(s) not sent: the conversation has already ended`,
      { lines: count },
    );
  }

  #accepts(id: Bytes): boolean {
    if (this.#finished) return false;
    if (this.#o.peer) return id.toHex() === this.#o.peer.id.toHex();
    return this.#peer === undefined || id.toHex() === this.#peer.toHex();
  }

  async #sendLines(texts: InputLine[]): Promise<void> {
    if (texts.length === 0) return;
    if (
      this.#peer === undefined || !this.#engine.conversations.get(this.#peer)
    ) {
      for (const t of texts) {
        if (this.#pending.length >= this.#o.outbox) {
          this.#error(
            "outbox-full",
            `message not sent: the outbox is full (${this.#o.outbox} messages waiting for the peer)`,
            { text: lineText(t) },
          );
        } else this.#pending.push(t);
      }
      return;
    }
    const conv = this.#engine.conversations.get(this.#peer);
    const verdicts = await this.#engine.send(this.#peer, texts) ?? [];
    // (Only for that notice: no string per message in the usual case.)
    const queued = !this.#o.json && conv?.secure === false
      ? verdicts.filter((v) => v.ok).map((v) => `#${v.id}`)
      : [];
    if (queued.length > 0) {
      // Typed before the session is up: say it waits, and for whom.
      this.#notice(
        `${queued.join(", ")} queued for ${this.#o.peerName} ${
          formatSessionId(this.#peer)
        }: sent once the secure session is up (/status shows where it is)`,
      );
    }
    for (let i = 0; i < verdicts.length; i++) {
      const v = verdicts[i];
      if (v.ok) continue;
      const extra = v.code === "outbox-full"
        ? { text: lineText(texts[i]) }
        : {};
      this.#error(
        v.code,
        v.code === "outbox-full"
          ? `${v.message} (${this.#o.outbox} messages waiting for the peer)`
          : v.message,
        { ids: [v.id], ...extra },
      );
    }
    if (verdicts.length === 0) this.#notSentAfterEnd(texts.length);
  }

  // ── events ───────────────────────────────────────────────────────────────

  /** `#peer` as events name it (formatted once per peer). */
  #peerText(): string | undefined {
    const id = this.#peer;
    if (id === undefined) return undefined;
    if (this.#peerShown?.id !== id) {
      this.#peerShown = { id, text: formatSessionId(id) };
    }
    return this.#peerShown.text;
  }

  #onEvent(ev: ClientEvent): void {
    if (ev.type === "ready") this.#ed25519Fingerprint = ev.ed25519Fingerprint;
    const from = ev.peer;
    const mine = this.#peer !== undefined && from === this.#peerText();
    if (from !== undefined && !mine && ev.type !== "ready") {
      return this.#stranger(ev, from);
    }
    if (ev.type === "error") {
      this.#noteLoss(ev.code, ev as unknown as Record<string, unknown>);
    }
    if (ev.type === "delivered") {
      // A late acknowledgement after `undelivered`: it did arrive after all.
      if (this.#lost.length > 0) {
        this.#lost = this.#lost.filter((l) => l !== `#${ev.id}`);
      }
    }
    if (ev.type === "closed") return this.#ended(ev.reason);
    if (ev.type === "error" && ev.code === "identity-changed") {
      this.#d.emit(ev);
      return this.#serial(() => this.#onRefused(ev));
    }
    if (
      ev.type === "error" && this.#quitReason !== undefined &&
      ev.code === "not-sent"
    ) {
      return this.#d.emit(ev);
    }
    this.#d.emit(ev);
    if (ev.type === "secure") this.#serial(() => this.#onSecure());
    // Only a JSON object can be a payment message (parsePaymentMessage):
    // told from the body's first byte, without decoding the text.
    if (ev.type === "message" && startsLikeObject(ev)) {
      this.#serial(() => this.#onPayment(ev.text));
    }
  }

  /**
   * An event of another conversation while waiting for the peer: its first
   * secure one (or identity-changed refusal) becomes the peer. Its ID is the
   * event's own: the engine reports `secure` after its file work
   * (known_peers.json under its lock), by when the conversation may have
   * ended and left the engine's set (the peer sent, closed and left
   * meanwhile); its messages and `closed`, reported after it, are this run's.
   */
  #stranger(ev: ClientEvent, from: string): void {
    if (this.#peer !== undefined) return; // the run has its peer: others are not served
    if (
      ev.type === "secure" ||
      (ev.type === "error" && ev.code === "identity-changed")
    ) {
      const id = parseSessionId(from);
      this.#peer = id;
      this.#peerShown = { id, text: from }; // so this event and the next are `mine`
      return this.#onEvent(ev);
    }
    // A bug is shown as it is, not as a peer's failed attempt.
    if (ev.type === "error" && ev.code === "internal") return this.#d.emit(ev);
    if (ev.type === "error" && ev.code !== "undelivered") {
      return this.#notice(
        `a handshake attempt failed (${ev.code}): ignored; still waiting for the peer`,
      );
    }
  }

  async #onSecure(): Promise<void> {
    this.#secureOnce = true;
    this.#refused = undefined;
    clearTimeout(this.#waitTimer);
    if (
      this.#o.scenario === "payment" && this.#o.role === "bank" &&
      !this.#paymentSent
    ) {
      const request = paymentRequest(this.#o.payment);
      const body = encodePaymentMessage(request);
      this.#paymentSent = { body, request };
      this.#d.emit({
        type: "payment",
        event: "request",
        direction: "sent",
        ...request,
      });
      await this.#sendLines([body]);
    }
    const pending = this.#pending;
    this.#pending = [];
    await this.#sendLines(pending);
    await this.#maybeRequestClose();
  }

  async #onRefused(ev: ClientEvent): Promise<void> {
    const fp = (ev as { presentedFingerprint?: string }).presentedFingerprint;
    this.#refused = fp ? { fingerprint: fp } : undefined;
    if (this.#o.trust !== undefined) return await this.#trustFlag(fp);
    if (this.#o.json) return this.#finish(EXIT.trust, "peer identity changed");
    // Refused until /trust is typed and answered: the confirmation is armed by
    // /trust, not here (a line typed meanwhile is not an answer).
    this.#notice(
      `The conversation with ${this.#o.peerName} stays refused until you decide. ` +
        "Type /trust to accept the new key (only once the comparison above matched), or /quit.",
    );
  }

  /** `--trust FP`: a changed key with exactly that fingerprint is trusted; any other ends the run (exit 5). */
  async #trustFlag(fp: string | undefined): Promise<void> {
    if (fp === undefined || !this.#peer || fp !== this.#o.trust) {
      return this.#finish(
        EXIT.trust,
        "peer identity changed to a key other than --trust",
      );
    }
    await this.#engine.retrust(this.#peer, fp);
    this.#refused = undefined;
    this.#notice(
      `new key of ${this.#o.peerName} trusted (--trust ${
        formatFingerprint(Uint8Array.fromHex(fp))
      }); starting a new handshake`,
    );
  }

  /** /trust after a refusal: asks, and arms the yes/no answer. */
  #askTrust(refused: { fingerprint: string }): void {
    this.#d.emit({
      type: "prompt",
      kind: "trust",
      text:
        `Trust the NEW key of ${this.#o.peerName} (fingerprint ${
          formatFingerprint(Uint8Array.fromHex(refused.fingerprint))
        })? ` +
        `Only if ${this.#o.peerName} read you this same fingerprint over another channel. Type yes to trust it.`,
    });
    this.#prompt = {
      kind: "trust",
      answer: async (yes) => {
        if (
          !yes || this.#refused?.fingerprint !== refused.fingerprint ||
          !this.#peer
        ) {
          return this.#notice(
            "key not trusted; the conversation stays refused (/trust to be asked again, /quit to leave)",
          );
        }
        await this.#engine.retrust(this.#peer, refused.fingerprint);
        this.#refused = undefined;
        this.#notice(
          `new key of ${this.#o.peerName} trusted; starting a new handshake`,
        );
      },
    };
  }

  #ended(reason: string): void {
    if (this.#quitReason !== undefined && reason === "quit") {
      const forced = this.#quitReason === "forced quit";
      return this.#finish(forced ? EXIT.other : EXIT.ok, this.#quitReason);
    }
    const [code, why] = ENDINGS[reason] ?? [EXIT.other, reason];
    this.#finish(code, why);
  }

  // ── input, close ─────────────────────────────────────────────────────────

  async #maybeRequestClose(): Promise<void> {
    if (!this.#eof || this.#closeRequested) return;
    if (this.#o.scenario === "payment" && !this.#scenarioDone) return;
    if (this.#peer === undefined || this.#pending.length > 0) return;
    this.#closeRequested = true;
    await this.#engine.close(this.#peer, true);
  }

  async #quit(reason: string): Promise<void> {
    const c = this.#peer && this.#engine.conversations.get(this.#peer);
    if (!c || !c.secure) {
      if (this.#pending.length) {
        this.#error("not-sent", `${this.#pending.length} message(s) not sent`, {
          lines: this.#pending.length,
        });
        this.#pending = [];
      }
      this.#quitReason = reason;
      if (c) return void await this.#engine.close(this.#peer!);
      return this.#finish(EXIT.ok, reason);
    }
    if (this.#quitReason !== undefined) this.#quitReason = "forced quit";
    else {
      this.#quitReason = reason;
      this.#notice(
        "closing: flushing messages and waiting for acknowledgements (again to force)",
      );
    }
    this.#closeRequested = true;
    await this.#engine.close(this.#peer!);
  }

  async #command(cmd: string): Promise<void> {
    const [name] = cmd.split(/\s+/);
    const p = this.#peer && this.#engine.peer(this.#peer);
    switch (name) {
      case "/quit":
        return await this.#quit("quit");
      case "/status": {
        const s = this.#peer &&
          this.#engine.conversations.get(this.#peer)?.status();
        this.#d.emit({
          type: "status",
          phase: s ? s.phase : "waiting",
          relay: this.#engine.connected ? "connected" : "reconnecting",
          peerOnline: s?.phase === "secure" && !s.peerAway,
          ...(this.#peer ? { peer: formatSessionId(this.#peer) } : {}),
          outbox: (s?.queued ?? 0) + this.#pending.length,
          unacked: s?.inflight ?? 0,
          epoch: s?.epoch,
          trust: p?.trust,
        });
        return;
      }
      case "/verify": {
        const own = this.#ownFingerprints();
        const c = this.#peer && this.#engine.conversations.get(this.#peer);
        if (!p?.safetyNumber || !p.fingerprint || !c?.secure) {
          // The side whose key a peer refused has no session: what it can
          // compare is its own fingerprint (the peer's "presented" one).
          return this.#notice(
            `${own}\nNo secure session, so no safety number yet. A peer warned that your key changed ` +
              `sees your fingerprint as "presented fingerprint": read it to them over another channel.`,
          );
        }
        const peer = this.#peer!;
        this.#d.emit({
          type: "prompt",
          kind: "verify",
          text:
            `Safety number: ${p.safetyNumber}\nPeer fingerprint: ${
              formatFingerprint(Uint8Array.fromHex(p.fingerprint))
            }\n${own}\n` +
            `Does your peer see exactly the same safety number? Type yes to mark ${this.#o.peerName} verified.`,
        });
        this.#prompt = {
          kind: "verify",
          answer: async (yes) => {
            if (!yes) return this.#notice("not verified");
            await this.#engine.markVerified(peer);
            this.#d.emit({ type: "verified", peerName: this.#o.peerName });
          },
        };
        return;
      }
      case "/trust":
        if (!this.#refused) {
          return this.#notice(
            "/trust is only needed after a peer's key CHANGED; nothing to do",
          );
        }
        return this.#askTrust(this.#refused);
      case "/help":
        return this.#notice(COMMAND_HELP);
      default:
        return this.#notice(
          `unknown command ${name} (commands: /help /verify /trust /status /quit)`,
        );
    }
  }

  // ── payment scenario ─────────────────────────────────────────────────────

  async #onPayment(text: string): Promise<void> {
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
        await this.#sendLines([body]);
        this.#d.emit({
          type: "payment",
          event: "response",
          direction: "sent",
          reference: m.reference,
          decision: approve ? "approved" : "declined",
        });
        this.#scenarioDone = true;
        await this.#maybeRequestClose();
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
      await this.#maybeRequestClose();
    }
  }

  // ── reporting, end ───────────────────────────────────────────────────────

  #finish(code: number, reason: string): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#waitTimer);
    this.#prompt = undefined;
    const end = async () => {
      await this.#engine.stop().catch(() => {});
      await this.#d.drainInput?.().catch(() => {});
      await this.#queue; // not-sent reports of lines drained above
      const lost = this.#lost;
      const final = code === EXIT.ok && lost.length > 0
        ? EXIT.undelivered
        : code;
      this.#d.emit({
        type: "closed",
        reason,
        ...(lost.length > 0 ? { undelivered: lost } : {}),
      });
      this.#done.resolve(final);
    };
    end();
  }

  /** Our fingerprints as the banner shows them (the Ed25519 one when suite x25519 is enabled). */
  #ownFingerprints(): string {
    const line = (label: string, hex: string) =>
      `${label}${formatFingerprint(Uint8Array.fromHex(hex))}`;
    return line("Your fingerprint: ", this.#engine.fingerprint) +
      (this.#ed25519Fingerprint
        ? "\n" +
          line(
            "Your Ed25519 fingerprint (suite x25519): ",
            this.#ed25519Fingerprint,
          )
        : "");
  }

  #notice(text: string): void {
    this.#d.emit({ type: "notice", text });
  }

  #error(
    code: string,
    message: string,
    extra: Record<string, unknown> = {},
  ): void {
    this.#noteLoss(code, extra);
    this.#d.emit({ type: "error", code, message, ...extra });
  }

  /** Records what an error event says was not delivered. */
  #noteLoss(code: string, extra: Record<string, unknown>): void {
    if (!LOSS_CODES.has(code)) return;
    const ids = extra.ids;
    if (Array.isArray(ids) && ids.length > 0) {
      for (const id of ids) this.#lost.push(`#${id}`);
    } else {
      const n = typeof extra.lines === "number" ? extra.lines : 1;
      this.#lost.push(`${n} input line(s)`);
    }
  }
}

/** What `/help` shows in interactive mode. */
export const COMMAND_HELP = `commands:
  /help     this list
  /status   relay connection, peer, messages queued and awaiting acknowledgement
  /verify   show the safety number and both fingerprints (yours alone before a session);
            type yes if your peer sees the same number
  /trust    accept a peer's CHANGED key (only after comparing safety numbers)
  /quit     deliver what is queued, close and exit (Ctrl-C does the same)
Any other line is a message to the peer; before a conversation, paste the peer's ID or address.`;

/** Backoff between first-connection attempts while the relay is full (HTTP 503). */
export const FULL_RETRY = { baseMs: 1000, maxMs: 30_000 };

/** What {@link startRetryingWhenFull} needs. */
export interface StartRetryOptions {
  /** How long to keep retrying a full relay (the client's `--reconnect-timeout`). */
  reconnectMs: number;
  /** Clock (ms). */
  now: () => number;
  /** Shows a retry notice. */
  notice: (text: string) => void;
  /** Settles when the client is told to stop (Ctrl-C, SIGTERM): no more attempts. */
  stopped: Promise<void>;
  /** Waits `ms` (tests inject a fake). */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Runs the first connection, `start`; while the relay answers that it is at
 * capacity (HTTP 503), waits with exponential backoff and tries again, for up
 * to `reconnectMs`. Resolves to `"started"`, to `"stopped"` when `stopped`
 * settled first, or to the error that ended the attempts (every other error
 * ends them at once: a relay that is down or a certificate that is wrong does
 * not fix itself).
 */
export async function startRetryingWhenFull(
  start: () => Promise<void>,
  o: StartRetryOptions,
): Promise<"started" | "stopped" | unknown> {
  const backoff = new Backoff(FULL_RETRY);
  const giveUp = o.now() + o.reconnectMs;
  const sleep = o.sleep ??
    ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let stopped = false;
  o.stopped.then(() => stopped = true);
  for (;;) {
    try {
      await start();
      return "started";
    } catch (e) {
      if (stopped) return "stopped";
      if (connectErrorCode(e) !== "relay-full") return e;
      const wait = backoff.next();
      if (o.now() + wait > giveUp) {
        const tried = backoff.attempt;
        return Object.assign(
          new Error(
            `${(e as Error).message} (gave up after ${tried} attempt(s) in ${
              Math.round(o.reconnectMs / 1000)
            } s; --reconnect-timeout S waits longer)`,
          ),
          { kind: "full" },
        );
      }
      o.notice(
        `${(e as Error).message}: trying again in ${
          (wait / 1000).toFixed(1)
        } s (for up to ${
          Math.round(o.reconnectMs / 1000)
        } s in all: --reconnect-timeout; Ctrl-C stops)`,
      );
      const woke = await Promise.race([
        sleep(wait).then(() => "slept" as const),
        o.stopped.then(() => "stopped" as const),
      ]);
      if (woke === "stopped" || stopped) return "stopped";
    }
  }
}

/** The error code of a failed first connection: `tls`, `relay-full` or `relay-unreachable`. */
export function connectErrorCode(e: unknown): string {
  const kind = (e as { kind?: string }).kind;
  return kind === "tls"
    ? "tls"
    : kind === "full"
    ? "relay-full"
    : "relay-unreachable";
}
