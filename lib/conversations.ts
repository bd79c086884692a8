/**
 * Many conversations over one identity and one relay registration, keyed by
 * the peer's relay session ID — sans-I/O like {@link Conversation}: relay
 * DATA payloads (with their sender ID) and input go in, packets addressed
 * to peers and events tagged with the peer come out.
 *
 * An HS1 from an ID without a conversation starts a new one beside the
 * others (bounded by NEW_CONVERSATION_RATE and MAX_CONVERSATIONS); a
 * conversation's failure or end never touches another, and nothing a
 * stranger sends ends the set. Per peer, responder work is bounded inside
 * the conversation (RESPONDER_RATE_PER_PEER).
 * @module
 */

import type { Bytes } from "./bytes.ts";
import {
  E2E_VERSION,
  MAX_CONVERSATIONS,
  NEW_CONVERSATION_BURST,
  NEW_CONVERSATION_RATE,
} from "./constants.ts";
import {
  Conversation,
  type ConversationEvent,
  type ConversationOptions,
  type ConversationOutput,
} from "./conversation.ts";
import { PACKET_HS1 } from "./handshake.ts";
import type { Identity } from "./identity.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Per-peer options: everything of {@link ConversationOptions} but our identity and the IDs. */
export type PeerOptions = Omit<
  ConversationOptions,
  "identity" | "localId" | "peerId"
>;

/** Options of a {@link Conversations} set. */
export interface ConversationsOptions {
  /** Our identity. */
  identity: Identity;
  /** Our relay session ID. */
  localId: Bytes;
  /** Options of the conversation with `peerId` (trust lookup, limits…), for both directions. */
  options: (peerId: Bytes) => PeerOptions;
  /** Whether an HS1 from an unknown ID may start a conversation (default: always). */
  accept?: (peerId: Bytes) => boolean;
  /** Most conversations held (default MAX_CONVERSATIONS). */
  max?: number;
  /** Current time at creation (ms), for the new-conversation rate limit. */
  now: number;
}

/** A packet for one peer. */
export interface Addressed {
  /** The peer's relay session ID. */
  to: Bytes;
  /** The e2e packet (relay DATA payload). */
  packet: Bytes;
}

/** An event of one conversation. */
export interface PeerEvent {
  /** The peer's relay session ID. */
  peer: Bytes;
  /** The conversation (still readable after it ended). */
  conversation: Conversation;
  /** What happened. */
  event: ConversationEvent;
}

/** What every call returns. */
export interface ConversationsOutput {
  /** Packets to send, in order. */
  packets: Addressed[];
  /** Events, in order per conversation. */
  events: PeerEvent[];
}

const key = (id: Uint8Array) => id.toHex();

/** The set of conversations of one client; see the module doc. */
export class Conversations {
  readonly #o: ConversationsOptions;
  readonly #all = new Map<string, Conversation>();
  readonly #newBucket: TokenBucket;
  /** Min-heap of (deadline, conversation); an entry is live while it matches `#due`. */
  #heap: { at: number; c: Conversation }[] = [];
  /** Each conversation's deadline as last registered (after every call that returns its output). */
  readonly #due = new Map<Conversation, number>();
  /** Conversations returned by {@link due} whose poll has not returned yet (kept off the heap). */
  readonly #polling = new Set<Conversation>();

  /** An empty set. */
  constructor(o: ConversationsOptions) {
    this.#o = o;
    this.#newBucket = new TokenBucket(
      NEW_CONVERSATION_RATE,
      NEW_CONVERSATION_BURST,
      o.now,
    );
  }

  /** Number of conversations held. */
  get size(): number {
    return this.#all.size;
  }

  /** The conversation with `peerId`, if any. */
  get(peerId: Uint8Array): Conversation | undefined {
    return this.#all.get(key(peerId));
  }

  /** Every conversation held. */
  list(): Conversation[] {
    return [...this.#all.values()];
  }

  /**
   * Contacts `peerId` (a conversation already held is returned as is, with
   * no output). `extra` overrides per-peer options (e.g. the address's
   * expected fingerprint).
   */
  async dial(
    peerId: Bytes,
    now: number,
    extra: Partial<PeerOptions> = {},
  ): Promise<{ conversation: Conversation; output: ConversationsOutput }> {
    const held = this.get(peerId);
    if (held && !held.ended) {
      return { conversation: held, output: { packets: [], events: [] } };
    }
    const { conversation, output } = await Conversation.dial(
      this.#optionsFor(peerId, extra),
      now,
    );
    this.#all.set(key(peerId), conversation);
    return { conversation, output: this.#tag(conversation, output) };
  }

  /** A relay DATA frame: `from` as stamped by the relay, `payload` the e2e packet. */
  async receive(
    from: Bytes,
    payload: Bytes,
    now: number,
  ): Promise<ConversationsOutput> {
    if (payload.length < 2 || payload[0] !== E2E_VERSION) return empty();
    let c = this.get(from);
    if (!c || c.ended) {
      if (payload[1] !== PACKET_HS1) return empty();
      if (this.#all.size >= (this.#o.max ?? MAX_CONVERSATIONS)) {
        this.#sweep();
        if (this.#all.size >= (this.#o.max ?? MAX_CONVERSATIONS)) {
          return empty();
        }
      }
      if (this.#o.accept && !this.#o.accept(from)) return empty();
      if (!this.#newBucket.take(now)) return empty();
      c = Conversation.listen(this.#optionsFor(from, {}), now);
      this.#all.set(key(from), c);
    }
    return this.#tag(c, await c.receive(payload, now));
  }

  /** A relay ERROR frame about `peer` (`peer-offline`, …). */
  async relayError(
    peer: Bytes,
    name: string,
    now: number,
  ): Promise<ConversationsOutput> {
    const c = this.get(peer);
    return c ? this.#tag(c, await c.relayError(name, now)) : empty();
  }

  /**
   * Runs the due timers of every conversation: O(due · log n) from a
   * min-heap of deadlines, not a scan of every conversation. The outputs
   * come merged, once every due conversation is done: a driver that makes
   * other calls meanwhile (relay frames, input) uses {@link due} and
   * {@link pollDue} instead and applies each output in its conversation's
   * call order (lib/in_order.ts), so a slow conversation never holds back
   * another's output, nor lets a later call's output overtake it.
   */
  async poll(now: number): Promise<ConversationsOutput> {
    return this.#merge(
      await Promise.all(this.due(now).map((c) => this.pollDue(c, now))),
    );
  }

  /**
   * The conversations whose deadline has come, each to be polled once with
   * {@link pollDue}: until that poll's output is back, a conversation is
   * not returned again (its deadline stays due until the poll runs, behind
   * its other pending calls).
   */
  due(now: number): Conversation[] {
    const picked = new Set<Conversation>();
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const { at, c } = heapPop(this.#heap);
      if (this.#due.get(c) === at) picked.add(c);
    }
    const due: Conversation[] = [];
    for (const c of picked) {
      this.#due.delete(c);
      const at = c.nextDeadline();
      // A deadline that moved later without output (linkDown) is re-registered, not polled.
      if (at !== undefined && at <= now) {
        this.#polling.add(c);
        due.push(c);
      } else this.#register(c);
    }
    return due;
  }

  /** Runs the timers of `c`, one of {@link due}'s conversations. */
  async pollDue(c: Conversation, now: number): Promise<ConversationsOutput> {
    let out: ConversationOutput;
    try {
      out = await c.poll(now);
    } finally {
      this.#polling.delete(c);
      this.#register(c);
    }
    return this.#tag(c, out);
  }

  /**
   * The earliest deadline over all conversations (from the heap: a
   * deadline that moved later without output may show early, which only
   * makes {@link poll} re-register it).
   */
  nextDeadline(): number | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0];
      if (this.#due.get(top.c) === top.at) return top.at;
      heapPop(this.#heap);
    }
    return undefined;
  }

  /** The relay connection went down. */
  linkDown(): void {
    for (const c of this.#all.values()) c.linkDown();
  }

  /** Records `c`'s current deadline in the heap (stale entries are skipped lazily). */
  #register(c: Conversation): void {
    if (this.#polling.has(c)) return; // registered when its poll returns
    const at = c.ended ? undefined : c.nextDeadline();
    if (at === undefined) {
      this.#due.delete(c);
      return;
    }
    if (this.#due.get(c) === at) return;
    this.#due.set(c, at);
    heapPush(this.#heap, { at, c });
    if (this.#heap.length > 4 * this.#due.size + 1024) {
      // Bound the stale entries: rebuild from the live deadlines.
      const live = [...this.#due].map(([c, at]) => ({ at, c }));
      this.#heap = [];
      for (const e of live) heapPush(this.#heap, e);
    }
  }

  /** The relay connection is back: every conversation resends what is pending. */
  async linkUp(now: number): Promise<ConversationsOutput> {
    return this.#merge(
      await Promise.all(
        this.list().map(async (c) => this.#tag(c, await c.linkUp(now))),
      ),
    );
  }

  /** Tags one conversation's output with its peer (and forgets it once ended). */
  tag(c: Conversation, out: ConversationOutput): ConversationsOutput {
    return this.#tag(c, out);
  }

  #tag(c: Conversation, out: ConversationOutput): ConversationsOutput {
    const peer = c.peerId;
    if (c.ended && this.#all.get(key(peer)) === c) this.#all.delete(key(peer));
    this.#register(c);
    return {
      packets: out.packets.map((packet) => ({ to: peer, packet })),
      events: out.events.map((event) => ({ peer, conversation: c, event })),
    };
  }

  #merge(outs: ConversationsOutput[]): ConversationsOutput {
    return {
      packets: outs.flatMap((o) => o.packets),
      events: outs.flatMap((o) => o.events),
    };
  }

  #optionsFor(peerId: Bytes, extra: Partial<PeerOptions>): ConversationOptions {
    return {
      ...this.#o.options(peerId),
      ...extra,
      identity: this.#o.identity,
      localId: this.#o.localId,
      peerId,
    };
  }

  /** Drops ended conversations. */
  #sweep(): void {
    for (const [k, c] of this.#all) {
      if (c.ended) {
        this.#all.delete(k);
        this.#due.delete(c);
      }
    }
  }
}

type HeapEntry = { at: number; c: Conversation };

function heapPush(h: HeapEntry[], e: HeapEntry): void {
  h.push(e);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p].at <= h[i].at) break;
    [h[p], h[i]] = [h[i], h[p]];
    i = p;
  }
}

function heapPop(h: HeapEntry[]): HeapEntry {
  const top = h[0];
  const last = h.pop()!;
  if (h.length > 0) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l].at < h[m].at) m = l;
      if (r < h.length && h[r].at < h[m].at) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i], h[m]];
      i = m;
    }
  }
  return top;
}

function empty(): ConversationsOutput {
  return { packets: [], events: [] };
}
