/**
 * The conversation part of the page: peer card (fingerprint, safety number,
 * trust state), messages with time and sent → delivered marks, payment cards
 * with Approve / Decline, the verify dialog and the blocking key-changed
 * warning. Rendering only: what to do on a click is the caller's. Peer text
 * goes through lib/display_text.ts and reaches the DOM by `textContent`.
 * @module
 */

import { neutralizeText } from "../lib/display_text.ts";
import { formatFingerprint } from "../lib/fingerprint.ts";
import type { PaymentRequest } from "../lib/payment.ts";
import { $, el, setText, timeOfDay } from "./dom.ts";

/** Trust state shown beside the peer. */
export type TrustView = "new" | "known" | "verified" | "changed";

const TRUST_HELP: Record<TrustView, string> = {
  new: "first contact: compare the safety number with your bank once",
  known: "same key as on your last visit",
  verified: "you compared the safety number",
  changed: "the key changed: refused",
};

/** What the user asked for. */
export interface ConversationActions {
  /** Send a message; returns an error text for a person, or undefined. */
  send(text: string): string | undefined;
  /** Answer a payment request (`key` from {@link ConversationView.addPayment}). */
  answerPayment(key: string, approve: boolean): void;
  /** The user compared the safety number and it matched. */
  markVerified(): void;
  /** The user explicitly accepts the peer's new key. */
  retrust(): void;
  /** Download the signed transcript. */
  transcript(): void;
}

/** Byte length of `text` in UTF-8. */
function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** The conversation section of the page. */
export class ConversationView {
  readonly #actions: ConversationActions;
  readonly #maxBytes: number;
  readonly #outgoing = new Map<number, HTMLElement>();
  #safety = "";
  #lastFocus: HTMLElement | null = null;

  constructor(actions: ConversationActions, maxBytes: number) {
    this.#actions = actions;
    this.#maxBytes = maxBytes;
    const text = $("compose-text") as HTMLTextAreaElement;
    const count = () => {
      const n = utf8Length(text.value);
      setText(
        "compose-count",
        n > this.#maxBytes * 0.8 ? `${n} of ${this.#maxBytes} bytes` : "",
      );
    };
    text.addEventListener("input", count);
    text.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $("compose").dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });
    $("compose").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = text.value;
      if (value.trim() === "") return;
      const n = utf8Length(value);
      if (n > this.#maxBytes) {
        setText(
          "compose-error",
          `This message is too long: ${n} bytes, at most ${this.#maxBytes} fit in one message. Shorten it or send it in parts.`,
        );
        return;
      }
      const err = this.#actions.send(value);
      setText("compose-error", err ?? "");
      if (err === undefined) {
        text.value = "";
        count();
      }
      text.focus();
    });
    $("verify-button").addEventListener("click", () => this.#openVerify());
    $("verify-yes").addEventListener("click", () => {
      ($("verify-dialog") as HTMLDialogElement).close();
      this.#actions.markVerified();
    });
    $("verify-no").addEventListener(
      "click",
      () => ($("verify-dialog") as HTMLDialogElement).close(),
    );
    $("transcript-button").addEventListener(
      "click",
      () => this.#actions.transcript(),
    );
    $("kc-trust").addEventListener("click", () => this.#actions.retrust());
    $("kc-refuse").addEventListener("click", () => {
      setText(
        "kc-text",
        "Refused. Nothing is exchanged with this key. Reload the page when you have talked to your bank.",
      );
    });
  }

  /** Shows the conversation with a peer whose identity is now authenticated. */
  showPeer(p: {
    fingerprint: Uint8Array;
    safetyNumber: string;
    trust: TrustView;
  }): void {
    $("conversation").hidden = false;
    $("connect").hidden = true;
    setText("peer-fingerprint", formatFingerprint(p.fingerprint));
    this.#safety = p.safetyNumber;
    setText("safety-number", p.safetyNumber);
    this.setTrust(p.trust);
  }

  /** Updates the trust state (always visible beside the peer). */
  setTrust(trust: TrustView): void {
    const t = $("trust-state");
    t.textContent = trust;
    t.className = `trust trust-${trust}`;
    setText("trust-help", `(${TRUST_HELP[trust]})`);
    ($("verify-button") as HTMLButtonElement).hidden = trust === "verified";
  }

  #openVerify(): void {
    setText("verify-number", this.#safety);
    ($("verify-dialog") as HTMLDialogElement).showModal();
    $("verify-no").focus();
  }

  /**
   * The blocking full-page warning: the peer's key is not the one we trusted
   * (`pinned` false: re-trust offered) or not the one the bank's link names
   * (`pinned` true: only a new link from the bank can change that).
   */
  showKeyChanged(oldFp: string, newFp: Uint8Array, pinned: boolean): void {
    this.#lastFocus = document.activeElement as HTMLElement | null;
    $("kc-trust").hidden = pinned;
    setText(
      "kc-old-label",
      pinned ? "Key named by your bank's link: " : "Key you trusted: ",
    );
    if (pinned) {
      setText(
        "kc-text",
        "The link you followed names your bank's key, and the party answering presents another one. Nothing is sent or shown. Ask your bank for a new link; do not continue with this one.",
      );
    }
    setText("kc-old", formatFingerprint(Uint8Array.fromHex(oldFp)));
    setText("kc-new", formatFingerprint(newFp));
    $("key-changed").hidden = false;
    // Everything behind the warning is inert: no click, no focus, no typing.
    document.querySelector("main")!.inert = true;
    document.querySelector("header")!.inert = true;
    this.setTrust("changed");
    $("kc-refuse").focus();
  }

  /** Removes the warning (after an explicit re-trust). */
  hideKeyChanged(): void {
    $("key-changed").hidden = true;
    document.querySelector("main")!.inert = false;
    document.querySelector("header")!.inert = false;
    (this.#lastFocus ?? $("compose-text")).focus();
  }

  /** True while the key-changed warning blocks the page. */
  get blocked(): boolean {
    return !$("key-changed").hidden;
  }

  /** Peer away / reconnecting / "" (nothing to say). */
  peerState(text: string): void {
    setText("peer-state", text);
  }

  /** A message from the peer. */
  addIncoming(text: string, at: Date): void {
    const li = el("li", "msg in");
    const p = el("p", "text", neutralizeText(text));
    p.dir = "auto";
    li.append(p, el("span", "meta", `${timeOfDay(at)} · from your bank`));
    this.#append(li);
  }

  /** A message we accepted for sending (shown at once: queued, then sent, then delivered). */
  addOutgoing(id: number, text: string, at: Date): void {
    const li = el("li", "msg out");
    li.dataset.id = String(id);
    const p = el("p", "text", text);
    p.dir = "auto";
    const meta = el("span", "meta", `${timeOfDay(at)} · waiting to be sent`);
    meta.dataset.state = "queued";
    li.append(p, meta);
    this.#outgoing.set(id, meta);
    this.#append(li);
  }

  /** Message `id` went out (sealed and handed to the relay). */
  markSent(id: number): void {
    const meta = this.#outgoing.get(id);
    if (meta === undefined || meta.dataset.state !== "queued") return;
    meta.dataset.state = "sent";
    meta.textContent = `${meta.textContent!.split(" · ")[0]} · sent`;
  }

  /** The peer acknowledged message `id`. */
  markDelivered(id: number, at: Date): void {
    const meta = this.#outgoing.get(id);
    if (meta === undefined) return;
    meta.dataset.state = "delivered";
    meta.textContent = `${meta.textContent!.split(" · ")[0]} · ✓ delivered ${
      timeOfDay(at)
    }`;
  }

  /** Messages not acknowledged in time (still being retried). */
  markUndelivered(ids: number[]): void {
    for (const id of ids) {
      const meta = this.#outgoing.get(id);
      if (meta === undefined || meta.dataset.state === "delivered") continue;
      meta.dataset.state = "undelivered";
      meta.textContent = `${
        meta.textContent!.split(" · ")[0]
      } · not delivered yet (retrying)`;
    }
  }

  /** A payment request card with Approve / Decline; returns the card. */
  addPayment(key: string, r: PaymentRequest, at: Date): HTMLElement {
    const li = el("li", "msg in payment");
    li.dataset.payment = key;
    li.setAttribute("aria-labelledby", `pay-h-${key}`);
    const h = el("h3", "", "Payment request");
    h.id = `pay-h-${key}`;
    const dl = el("dl");
    const field = (name: string, value: string) => {
      const dd = el("dd", "", neutralizeText(value, { singleLine: true }));
      dd.dir = "auto";
      dl.append(el("dt", "", name), dd);
    };
    field("Amount", `${r.amount} ${r.currency}`);
    field("Payee", r.payee);
    field("Reference", r.reference);
    const row = el("div", "row");
    const approve = el("button", "", "Approve");
    approve.type = "button";
    approve.dataset.action = "approve";
    const decline = el("button", "secondary", "Decline");
    decline.type = "button";
    decline.dataset.action = "decline";
    approve.addEventListener("click", () => {
      approve.disabled = decline.disabled = true;
      this.#actions.answerPayment(key, true);
    });
    decline.addEventListener("click", () => {
      approve.disabled = decline.disabled = true;
      this.#actions.answerPayment(key, false);
    });
    row.append(approve, decline);
    const status = el(
      "p",
      "decision",
      "Only approve if you started this payment.",
    );
    status.setAttribute("role", "status");
    li.append(h, dl, row, status, el("span", "meta", timeOfDay(at)));
    this.#append(li);
    return li;
  }

  /** Shows the decision sent for a payment card. */
  paymentAnswered(key: string, decision: "approved" | "declined"): void {
    const card = document.querySelector<HTMLElement>(
      `[data-payment="${CSS.escape(key)}"]`,
    );
    if (card === null) return;
    card.querySelector(".row")?.remove();
    const s = card.querySelector(".decision")!;
    s.textContent = decision === "approved"
      ? "You approved this payment. Your signed answer was sent."
      : "You declined this payment. Your signed answer was sent.";
    card.dataset.decision = decision;
  }

  /** The bank acknowledged our answer to a payment card. */
  paymentDelivered(key: string): void {
    const card = document.querySelector<HTMLElement>(
      `[data-payment="${CSS.escape(key)}"]`,
    );
    const s = card?.querySelector(".decision");
    if (!card || !s) return;
    s.textContent += " ✓ Delivered to your bank.";
    card.dataset.delivered = "true";
  }

  /** A line about the conversation (reconnected, peer back, …). */
  notice(text: string): void {
    this.#append(el("li", "msg notice", text));
  }

  #append(li: HTMLElement): void {
    const list = $("messages");
    list.append(li);
    list.scrollTop = list.scrollHeight; // the list scrolls, not the page
  }
}
