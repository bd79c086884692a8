/**
 * The browser's conversation driver: one lib/conversation.ts `Conversation`
 * with the bank (the same sans-I/O state machine the CLI and the bank
 * service run), fed with the relay's frames, the user's input and the clock;
 * its packets go to the relay, its events to the page (web/conversation_view.ts),
 * and one timer follows its `nextDeadline()`. Trust decisions use the known
 * peers kept in IndexedDB (web/store.ts), keyed by the peer's relay ID.
 * Payment requests and answers are lib/payment.ts messages.
 * @module
 */

import { type Bytes, bytesEqual, utf8 } from "../lib/bytes.ts";
import { MAX_BODY } from "../lib/constants.ts";
import {
  Conversation,
  type ConversationEvent,
  type ConversationOptions,
  type ConversationOutput,
  type TrustLookup,
} from "../lib/conversation.ts";
import { safetyNumber } from "../lib/fingerprint.ts";
import type { Identity } from "../lib/identity.ts";
import type { KnownPeers, PeerRef } from "../lib/known_peers.ts";
import {
  encodePaymentMessage,
  parsePaymentMessage,
  type PaymentRequest,
  paymentResponse,
} from "../lib/payment.ts";
import type { Frame } from "../lib/relay_frame.ts";
import { PACKET_HS1 } from "../lib/handshake.ts";
import { formatSessionId } from "../lib/registration.ts";
import type { Session } from "../lib/session.ts";
import type { Transcript } from "../lib/transcript.ts";
import {
  conversationLine,
  endLine,
  messageLine,
  type RoleLabels,
  type SessionEndReason,
  sessionLine,
} from "../lib/conversation_transcript.ts";
import { ConversationView, type TrustView } from "./conversation_view.ts";
import { download } from "./dom.ts";
import type { RelaySocket } from "./relay_socket.ts";

/** Dummy packets per second while a session is live (cover traffic on). */
const COVER_RATE = 0.5;

/** What the driver needs. */
export interface ChatDeps {
  identity: Identity;
  localId: Bytes;
  relay: RelaySocket;
  peers: KnownPeers;
  savePeers: () => Promise<void>;
}

/** The conversation with the bank, driven by the page. */
export class Chat {
  readonly #d: ChatDeps;
  readonly #view: ConversationView;
  #conv: Conversation | undefined;
  #peerId: Bytes | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #session: Session | undefined;
  /** Every session of this conversation, for the transcript file. */
  readonly #sessions: {
    t: Transcript;
    labels: RoleLabels;
    at: number;
    end?: { reason: SessionEndReason; at: number };
  }[] = [];
  readonly #created = Date.now();
  #refusedFp: string | undefined;
  /** The fingerprint the bank's address names (`fp=`), if any. */
  #expected: string | undefined;
  /** We waited and were contacted (not dialled). */
  #listening = false;
  /** A session was set up at least once. */
  #everSecure = false;
  /** A key accepted after a change: shown `new` (compare the safety number) in its first session. */
  #retrusted: string | undefined;
  /** Payment requests received: card key → exact body and request. */
  readonly #payments = new Map<
    string,
    { body: string; request: PaymentRequest }
  >();
  /** Our outgoing payment answers: message id → card key and decision. */
  readonly #answers = new Map<
    number,
    { key: string; decision: "approved" | "declined" }
  >();
  #paymentNo = 0;

  constructor(deps: ChatDeps) {
    this.#d = deps;
    this.#view = new ConversationView({
      send: (text) => this.#send(text),
      answerPayment: (key, approve) => this.#answer(key, approve),
      markVerified: () => this.#markVerified(),
      retrust: () => this.#retrust(),
      transcript: () => this.#downloadTranscript(),
    }, MAX_BODY);
  }

  /** The peer as the known-peers set knows it: by its relay ID (entries are keyed by fingerprint). */
  #ref(): PeerRef {
    return { relayId: formatSessionId(this.#peerId!) };
  }

  #options(peerId: Bytes): ConversationOptions {
    return {
      identity: this.#d.identity,
      localId: this.#d.localId,
      peerId,
      trust: (fp) => this.#lookup(fp),
      role: "customer",
      sessionOptions: { coverRate: COVER_RATE, signEvery: 1 },
    };
  }

  #lookup(fp: string): TrustLookup {
    const c = this.#d.peers.check(this.#ref(), fp);
    return c.status === "changed"
      ? { status: "changed", previous: c.previous! }
      : { status: c.status };
  }

  /** True once a conversation exists (contacted or contacted by). */
  get started(): boolean {
    return this.#conv !== undefined;
  }

  /**
   * Contacts the bank at `peerId`. With `fingerprint` (the `fp=` of its
   * address) or `ed25519Fingerprint` (its `ed=`) only those identities are
   * accepted: no trust on first use. This page speaks suite P-256 only, so
   * the `ed=` pin never matches here but is kept (PROTOCOL.md §1.3).
   */
  async contact(
    peerId: Bytes,
    fingerprint?: string,
    ed25519Fingerprint?: string,
  ): Promise<void> {
    if (this.#conv !== undefined) return;
    this.#peerId = peerId;
    this.#expected = fingerprint;
    const { conversation, output } = await Conversation.dial(
      {
        ...this.#options(peerId),
        ...(fingerprint === undefined
          ? {}
          : { expectFingerprint: fingerprint }),
        ...(ed25519Fingerprint === undefined
          ? {}
          : { expectEd25519Fingerprint: ed25519Fingerprint }),
      },
      Date.now(),
    );
    this.#conv = conversation;
    this.#view.peerState("Contacting your bank…");
    await this.#apply(output);
  }

  /** A frame from the relay (after registration). */
  async frame(frame: Frame): Promise<void> {
    if (frame.type === "data") {
      if (this.#conv === undefined) {
        // Waiting to be contacted: the first peer that starts a handshake
        // (anything else from a stranger is ignored).
        if (frame.payload[1] !== PACKET_HS1) return;
        const peerId = frame.peer.slice();
        this.#peerId = peerId;
        this.#conv = Conversation.listen(this.#options(peerId), Date.now());
        this.#listening = true;
      }
      if (!bytesEqual(frame.peer, this.#peerId!)) return; // one conversation: the bank's
      await this.#apply(await this.#conv.receive(frame.payload, Date.now()));
    } else if (frame.type === "error" && this.#conv !== undefined) {
      await this.#apply(await this.#conv.relayError(frame.name, Date.now()));
      if (frame.name === "peer-offline") {
        this.#view.peerState(
          "Your bank is not connected right now. Messages wait here and go out when it is back.",
        );
      }
    }
  }

  /** The relay connection went down / came back. */
  async link(up: boolean): Promise<void> {
    if (this.#conv === undefined) return;
    if (!up) {
      this.#conv.linkDown();
      this.#view.peerState("Reconnecting to the relay… messages wait here.");
      return;
    }
    this.#view.peerState("");
    await this.#apply(await this.#conv.linkUp(Date.now()));
  }

  #send(text: string): string | undefined {
    if (this.#conv === undefined) return "Contact your bank first.";
    if (this.#view.blocked) return "Decide about the key change first.";
    const body = utf8(text);
    if (body.length > MAX_BODY) {
      return `This message is too long: ${body.length} bytes, at most ${MAX_BODY}.`;
    }
    this.#conv.send([body], Date.now()).then(async (out) => {
      for (const v of out.verdicts) {
        if (v.ok) this.#view.addOutgoing(v.id, text, new Date());
        else this.#view.notice(`Not sent: ${v.message}`);
      }
      await this.#apply(out);
    }).catch((e) => this.#view.notice(`Not sent: ${(e as Error).message}`));
    return undefined;
  }

  async #answer(key: string, approve: boolean): Promise<void> {
    const p = this.#payments.get(key);
    if (p === undefined || this.#conv === undefined) return;
    const response = await paymentResponse(p.body, p.request, approve);
    const out = await this.#conv.send(
      [utf8(encodePaymentMessage(response))],
      Date.now(),
    );
    for (const v of out.verdicts) {
      if (v.ok) {
        this.#answers.set(v.id, { key, decision: response.decision });
        this.#view.paymentAnswered(key, response.decision);
      } else this.#view.notice(`Answer not sent: ${v.message}`);
    }
    await this.#apply(out);
  }

  async #markVerified(): Promise<void> {
    const fp = this.#conv?.fingerprint;
    if (fp === undefined) return;
    this.#d.peers.markVerified(fp);
    await this.#d.savePeers();
    this.#view.setTrust("verified");
  }

  async #retrust(): Promise<void> {
    const fp = this.#refusedFp;
    if (fp === undefined || this.#conv === undefined) return;
    this.#d.peers.retrust(this.#ref(), fp, Date.now());
    this.#retrusted = fp;
    await this.#d.savePeers();
    this.#refusedFp = undefined;
    this.#view.hideKeyChanged();
    this.#view.notice("You accepted your bank's new key.");
    await this.#apply(await this.#conv.retry(Date.now()));
  }

  /**
   * Offers the conversation's signed transcript: every session of it, in the
   * JSON Lines file format the CLI's `--transcript` writes
   * (lib/conversation_transcript.ts), which `deno task verify-transcript`
   * checks. Role labels are display only.
   */
  #downloadTranscript(): void {
    if (this.#sessions.length === 0) {
      this.#view.notice("No secure session yet: nothing to download.");
      return;
    }
    let text = conversationLine(this.#created);
    this.#sessions.forEach((s, i) => {
      text += sessionLine(i + 1, s.t.context, s.labels, s.at);
      for (const m of s.t.messages) text += messageLine(i + 1, m);
      if (s.end) text += endLine(i + 1, s.end.reason, s.end.at);
    });
    const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "");
    download(`transcript-${stamp}.jsonl`, text, "application/jsonl");
  }

  /** Marks the current session ended (for the transcript). */
  #endSession(reason: SessionEndReason): void {
    const last = this.#sessions.at(-1);
    if (last !== undefined && last.end === undefined) {
      last.end = { reason, at: Date.now() };
    }
  }

  /** Sends the packets, shows the events, re-arms the timer. */
  async #apply(out: ConversationOutput): Promise<void> {
    for (const p of out.packets) this.#d.relay.send(this.#peerId!, p);
    for (const e of out.events) await this.#event(e);
    this.#arm();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const at = this.#conv?.nextDeadline();
    if (at === undefined) return;
    const conv = this.#conv!;
    this.#timer = setTimeout(() => {
      conv.poll(Date.now()).then((out) => this.#apply(out)).catch((e) =>
        this.#view.notice(`Conversation error: ${(e as Error).message}`)
      );
    }, Math.max(0, at - Date.now()));
  }

  async #event(e: ConversationEvent): Promise<void> {
    const now = new Date();
    switch (e.type) {
      case "secure": {
        this.#session = e.session;
        this.#everSecure = true;
        this.#endSession("replaced");
        if (e.session.transcript !== undefined) {
          const peerRole = e.role === "initiator" ? "responder" : "initiator";
          this.#sessions.push({
            t: e.session.transcript,
            labels: { [e.role]: "customer", [peerRole]: "bank" },
            at: Date.now(),
          });
        }
        this.#d.peers.record(this.#ref(), e.fingerprint, Date.now());
        await this.#d.savePeers();
        let trust: TrustView = e.trust === "expected" ? "known" : e.trust;
        if (e.fingerprint === this.#retrusted && trust === "known") {
          trust = "new";
        }
        this.#view.showPeer({
          fingerprint: Uint8Array.fromHex(e.fingerprint),
          safetyNumber: await safetyNumber(this.#d.identity.spki, e.spki),
          trust,
        });
        this.#view.peerState("");
        this.#view.notice("Secure connection with your bank established.");
        document.body.dataset.conversation = "secure";
        break;
      }
      case "message": {
        const text = new TextDecoder().decode(e.body);
        const pay = parsePaymentMessage(text);
        if (pay?.kind === "payment-request") {
          const key = String(++this.#paymentNo);
          this.#payments.set(key, { body: text, request: pay });
          this.#view.addPayment(key, pay, now);
        } else this.#view.addIncoming(text, now);
        break;
      }
      case "sent":
        for (const m of e.messages) this.#view.markSent(m.id);
        break;
      case "delivered":
        for (const id of e.ids) {
          this.#view.markDelivered(id, now);
          const a = this.#answers.get(id);
          if (a !== undefined) this.#view.paymentDelivered(a.key);
        }
        break;
      case "undelivered":
        this.#view.markUndelivered(e.ids);
        break;
      case "refused":
        this.#refusedFp = e.fingerprint;
        document.body.dataset.conversation = "refused";
        if (e.previous !== undefined) {
          this.#view.showKeyChanged(
            e.previous,
            Uint8Array.fromHex(e.fingerprint),
            false,
          );
        } else if (e.code === "identity-rejected" && this.#expected) {
          // The link named the bank's key and another one answered.
          this.#view.showKeyChanged(
            this.#expected,
            Uint8Array.fromHex(e.fingerprint),
            true,
          );
        } else this.#view.notice(`Refused: ${e.message}`);
        break;
      case "not-sent":
        this.#view.notice(`Not sent (${e.ids.join(", ")}): ${e.message}`);
        break;
      case "notice":
        this.#view.peerState(e.text);
        break;
      case "peer-closed":
        this.#view.notice("Your bank ended the conversation.");
        break;
      case "session-ended":
        this.#endSession("stopped");
        break;
      case "closed": {
        if (this.#listening && !this.#everSecure) {
          // A failed attempt by whoever contacted us: keep waiting for the bank.
          this.#conv = undefined;
          this.#peerId = undefined;
          this.#view.peerState("");
          return;
        }
        // A clean close ends the last session with both CLOSEs exchanged.
        const last = this.#sessions.at(-1);
        if (e.reason === "closed" && last?.end) last.end.reason = "closed";
        this.#endSession(e.reason === "closed" ? "closed" : "stopped");
        document.body.dataset.conversation = "closed";
        this.#view.peerState(
          e.reason === "closed"
            ? "The conversation is closed. Reload the page to start a new one."
            : `The conversation ended (${
              e.message ?? e.reason
            }). Reload the page to try again.`,
        );
        break;
      }
      default:
        break;
    }
  }
}
