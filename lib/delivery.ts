/**
 * Delivery tracking of one conversation, both directions, across sessions
 * (PROTOCOL.md §2.4). Sans-I/O, no crypto.
 *
 * Sender ({@link Outbox}): every user message gets a message id (1, 2, …,
 * stable for the life of the conversation) and exactly one delivery state:
 * `queued` → `sent` in session S as seq N → `delivered` (acknowledged, or
 * confirmed by the peer's `resume`; the message is then forgotten). A session
 * that is lost puts its `sent` messages back to `queued`, in id order, ahead
 * of newer ones; `undelivered` is not a state but a report (sent and not
 * acknowledged within the deliver timeout: retransmission goes on).
 *
 * Receiver ({@link Inbox}): which message ids of the peer's stream were
 * delivered, so a message re-sent in a later session is recognised and
 * dropped, whatever delayed what.
 * @module
 */

import { UNDELIVERED_COALESCE_MS } from "./constants.ts";
import { emptyMap, shrink, writable } from "./lazy_map.ts";

/** Where a message is. */
export type DeliveryState =
  | {
    kind:
      "queued"; /** True when an earlier session sent it (re-queued): held until the peer's resume. */
    resent: boolean;
  }
  | { kind: "sent"; /** Session hash (hex). */ session: string; seq: bigint };

/** One user message of ours, not yet delivered. */
export interface OutMessage {
  /** Message id (stable across sessions). */
  readonly id: number;
  /** The DATA body (user text, UTF-8). */
  readonly body: Uint8Array;
  /** Its one delivery state. */
  state: DeliveryState;
  /** First time (ms) it was sent; undefined while never sent. */
  firstSentAt?: number;
  /** Reported `undelivered` (and not acknowledged since). */
  reported: boolean;
}

/** The sender side: messages by id, the queue, the current session's seq map. */
export class Outbox {
  /** Every undelivered message, by id (insertion = id order). */
  #all = emptyMap<number, OutMessage>();
  /** Queued messages in id order; `#head` is the first live index. */
  #queue: OutMessage[] = [];
  #head = 0;
  /** Current session: seq → message. */
  #bySeq = emptyMap<bigint, OutMessage>();
  /** Sent, not acknowledged, not reported: id → first sent time (insertion = time order). */
  #unconfirmed = emptyMap<number, number>();
  #nextId = 1;
  readonly #limit: number;

  /** An empty outbox holding at most `limit` queued messages. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Messages queued (not yet sent in the current session). */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Messages sent in the current session and not acknowledged. */
  get inflight(): number {
    return this.#bySeq.size;
  }

  /** Undelivered messages in any state. */
  get size(): number {
    return this.#all.size;
  }

  /** True when the queue is full. */
  get full(): boolean {
    return this.queued >= this.#limit;
  }

  /** The id the next accepted message gets. */
  get nextId(): number {
    return this.#nextId;
  }

  /** Queues a body (the caller checked `full`); returns its id. */
  add(body: Uint8Array): number {
    const m: OutMessage = {
      id: this.#nextId++,
      body,
      state: { kind: "queued", resent: false },
      reported: false,
    };
    (this.#all = writable(this.#all)).set(m.id, m);
    this.#queue.push(m);
    return m.id;
  }

  /** Consumes an id for a message that was refused (ids stay unique). */
  skipId(): void {
    this.#nextId++;
  }

  /** The first `n` queued messages (not removed). */
  peek(n: number): OutMessage[] {
    return this.#queue.slice(this.#head, this.#head + n);
  }

  /** True when a queued message was sent in an earlier session (it waits for the peer's resume). */
  hasResent(): boolean {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const st = this.#queue[i].state;
      if (st.kind === "queued" && st.resent) return true;
    }
    return false;
  }

  /** Marks the first `seqs.length` queued messages sent in `session` under these seqs. */
  markSent(
    session: string,
    seqs: readonly bigint[],
    now: number,
  ): OutMessage[] {
    const batch = this.#queue.slice(this.#head, this.#head + seqs.length);
    this.#head += batch.length;
    if (this.#head === this.#queue.length) {
      this.#queue = []; // all sent: the array no longer holds their bodies
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (batch.length === 0) return batch;
    const bySeq = this.#bySeq = writable(this.#bySeq);
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i];
      const seq = seqs[i];
      m.state = { kind: "sent", session, seq };
      bySeq.set(seq, m);
      // Never sent before: not in #unconfirmed yet (only this method adds to it, with firstSentAt).
      const first = m.firstSentAt === undefined;
      if (first) m.firstSentAt = now;
      if (!m.reported && (first || !this.#unconfirmed.has(m.id))) {
        (this.#unconfirmed = writable(this.#unconfirmed)).set(m.id, now);
      }
    }
    return batch;
  }

  /** Acknowledged seqs of the current session → the ids now delivered (forgotten). */
  acked(seqs: readonly bigint[]): number[] {
    const ids: number[] = [];
    for (const seq of seqs) {
      const m = this.#bySeq.get(seq);
      if (!m) continue;
      this.#bySeq.delete(seq);
      this.#forget(m);
      ids.push(m.id);
    }
    this.#bySeq = shrink(this.#bySeq);
    this.#shrink();
    return ids;
  }

  /**
   * The session was lost: every message sent in it goes back to the queue,
   * ahead of the ones never sent, in id order, marked re-sent.
   */
  requeue(): number[] {
    const back = [...this.#bySeq.values()].sort((a, b) => a.id - b.id);
    this.#bySeq = emptyMap();
    for (const m of back) m.state = { kind: "queued", resent: true };
    this.#queue = [...back, ...this.#queue.slice(this.#head)];
    this.#head = 0;
    return back.map((m) => m.id);
  }

  /** The peer's resume says it delivered every id ≤ `delivered`: those queued are delivered now. */
  confirmUpTo(delivered: number): number[] {
    const ids: number[] = [];
    while (this.#head < this.#queue.length) {
      const m = this.#queue[this.#head];
      if (m.id > delivered) break;
      this.#head++;
      this.#forget(m);
      ids.push(m.id);
    }
    this.#bySeq = shrink(this.#bySeq);
    this.#shrink();
    return ids;
  }

  /** Ends the hold: re-queued messages are ordinary queued ones again; returns their ids. */
  release(): number[] {
    const ids: number[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const st = this.#queue[i].state;
      if (st.kind === "queued" && st.resent) {
        st.resent = false;
        ids.push(this.#queue[i].id);
      }
    }
    return ids;
  }

  /** Drops every queued message (closing, peer closed); returns their ids. */
  dropQueued(): number[] {
    const gone = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    for (const m of gone) this.#forget(m);
    this.#shrink();
    return gone.map((m) => m.id);
  }

  /** Ids of every undelivered message, in id order. */
  undeliveredIds(): number[] {
    return [...this.#all.keys()];
  }

  /** The time the oldest unreported unconfirmed message falls due, given the timeout. */
  undeliveredDue(timeoutMs: number): number | undefined {
    for (const at of this.#unconfirmed.values()) return at + timeoutMs;
    return undefined;
  }

  /**
   * Messages sent and not acknowledged for `timeoutMs`, reported once (those
   * falling due within UNDELIVERED_COALESCE_MS of the oldest come along).
   */
  takeUndelivered(now: number, timeoutMs: number): number[] {
    const first = this.undeliveredDue(timeoutMs);
    if (first === undefined || now < first) return [];
    const ids: number[] = [];
    for (const [id, at] of this.#unconfirmed) {
      if (now < at + timeoutMs - UNDELIVERED_COALESCE_MS) break;
      ids.push(id);
    }
    for (const id of ids) {
      this.#unconfirmed.delete(id);
      this.#all.get(id)!.reported = true;
    }
    this.#unconfirmed = shrink(this.#unconfirmed);
    return ids;
  }

  #forget(m: OutMessage): void {
    this.#all.delete(m.id);
    this.#unconfirmed.delete(m.id);
  }

  /** Frees the tables of maps that emptied (an idle conversation holds none). */
  #shrink(): void {
    this.#all = shrink(this.#all);
    this.#unconfirmed = shrink(this.#unconfirmed);
  }
}

/** What the receiver decides about a user message. */
export type InboxVerdict =
  | { deliver: true; id: number | undefined }
  | { deliver: false; id: number };

/** The receiver side: the peer's stream and the highest id delivered from it. */
export class Inbox {
  #stream: string | null = null;
  #delivered = 0;
  /** Id of the next user message in the current session (from `next`); undefined before one. */
  #expect?: number;

  /** Restores a state saved by {@link snapshot} (e.g. from the transcript after a restart). */
  constructor(state?: { stream: string | null; delivered: number }) {
    if (state) {
      this.#stream = state.stream;
      this.#delivered = state.stream === null ? 0 : state.delivered;
    }
  }

  /** The peer's stream and highest delivered id (what our `resume` says). */
  snapshot(): { stream: string | null; delivered: number } {
    return { stream: this.#stream, delivered: this.#delivered };
  }

  /** A new session started: ids are unknown until the peer's `next`. */
  newSession(): void {
    this.#expect = undefined;
  }

  /** The peer's `resume` named its stream: another stream (the peer restarted) starts from nothing. */
  peerStream(stream: string): void {
    if (stream !== this.#stream) {
      this.#stream = stream;
      this.#delivered = 0;
    }
  }

  /** The peer's `next`. */
  next(id: number): void {
    this.#expect = id;
  }

  /** A user message arrived (in session order): deliver it, or drop a duplicate. */
  message(): InboxVerdict {
    if (this.#expect === undefined) return { deliver: true, id: undefined };
    const id = this.#expect++;
    if (this.#stream !== null && id <= this.#delivered) {
      return { deliver: false, id };
    }
    this.#delivered = id;
    return { deliver: true, id };
  }
}
