/**
 * The browser's relay connection (driver over the page's `WebSocket`):
 * connects, answers the registration challenge with the mailbox key
 * (lib/registration.ts, the same code as the CLI), then passes DATA and
 * ERROR frames up and sends DATA frames. Reconnects with the lib's backoff
 * and re-registers the same ID.
 *
 * A browser tells a script nothing about why a WebSocket failed — an
 * untrusted certificate and a relay that is down both give a bare `error`
 * event and close code 1006 — so {@link RelayState} `failed` says
 * "unreachable or untrusted" and the page explains both.
 * @module
 */

import { Backoff } from "../lib/backoff.ts";
import { RELAY_SUBPROTOCOL } from "../lib/constants.ts";
import { decodeFrame, encodeData, type Frame } from "../lib/relay_frame.ts";
import { type MailboxKey, registrationStep } from "../lib/registration.ts";

/** Where the relay connection is. */
export type RelayState =
  | { kind: "connecting"; attempt: number }
  | { kind: "registered"; id: Uint8Array }
  /** Socket failed before it opened: relay down, or its certificate not trusted. */
  | { kind: "failed"; attempt: number; retryInMs: number; opened: boolean }
  /** The relay refused us (registration error, replaced by another tab, origin refused). */
  | { kind: "refused"; code: number; reason: string };

/** Close code of a registration replaced by a newer connection with the same ID. */
const CLOSE_REPLACED = 4000;
/** Reconnect schedule (ms), as the CLI's. */
const RECONNECT = { baseMs: 200, maxMs: 5000 };

/** One relay connection that keeps itself registered. */
export class RelaySocket {
  readonly url: string;
  readonly #mailbox: MailboxKey;
  #ws: WebSocket | undefined;
  #registered = false;
  #stopped = false;
  #frameNo = 0;
  #attempt = 0;
  readonly #backoff = new Backoff(RECONNECT);
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** Frames after registration (DATA, ERROR). */
  onFrame: (frame: Frame) => void = () => {};
  /** Every state change. */
  onState: (state: RelayState) => void = () => {};

  constructor(url: string, mailbox: MailboxKey) {
    this.url = url;
    this.#mailbox = mailbox;
  }

  /** Starts connecting (and reconnecting until {@link stop}). */
  start(): void {
    this.#stopped = false;
    this.#connect();
  }

  /** True while registered. */
  get registered(): boolean {
    return this.#registered && this.#ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a DATA frame to `peer`; false when not registered (the caller retries). */
  send(peer: Uint8Array, payload: Uint8Array): boolean {
    if (!this.registered) return false;
    this.#frameNo = (this.#frameNo + 1) >>> 0;
    this.#ws!.send(encodeData(peer, this.#frameNo, payload));
    return true;
  }

  /** Reconnects at once (the user pressed "retry"). */
  retryNow(): void {
    if (this.#ws !== undefined || this.#stopped) return;
    clearTimeout(this.#retry);
    this.#connect();
  }

  /** Closes for good. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#ws?.close(1000, "");
  }

  #connect(): void {
    this.#attempt++;
    this.onState({ kind: "connecting", attempt: this.#attempt });
    const url = new URL(this.url);
    const origin = `wss://${url.host}`;
    const ws = new WebSocket(url, [RELAY_SUBPROTOCOL]);
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    let opened = false;
    let refusal: { code: number; reason: string } | undefined;
    ws.onopen = () => opened = true;
    ws.onerror = () => {/* no detail in browsers; see onclose */};
    ws.onmessage = async (ev) => {
      if (typeof ev.data === "string") return;
      let frame: Frame;
      try {
        frame = decodeFrame(new Uint8Array(ev.data as ArrayBuffer));
      } catch {
        return; // a malformed frame from the relay: ignored
      }
      if (this.#registered) return this.onFrame(frame);
      const step = await registrationStep(frame, this.#mailbox, origin);
      if (step.kind === "send") ws.send(step.frame);
      else if (step.kind === "registered") {
        this.#registered = true;
        this.#backoff.reset();
        this.#attempt = 0;
        this.onState({ kind: "registered", id: step.id });
      } else if (step.kind === "refused") {
        refusal = { code: 4003, reason: step.reason };
        ws.close(1000, "");
      }
    };
    ws.onclose = (ev) => {
      this.#ws = undefined;
      this.#registered = false;
      if (this.#stopped) return;
      if (refusal !== undefined || ev.code === CLOSE_REPLACED) {
        this.onState({
          kind: "refused",
          ...(refusal ?? {
            code: ev.code,
            reason: "this address was opened in another tab or device",
          }),
        });
        return;
      }
      const retryInMs = this.#backoff.next();
      this.onState({
        kind: "failed",
        attempt: this.#attempt,
        retryInMs,
        opened,
      });
      this.#retry = setTimeout(() => this.#connect(), retryInMs);
    };
  }
}
