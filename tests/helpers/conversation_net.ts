/**
 * Test harness for lib/conversations.ts (after h11's ConnectionPair and
 * wireguard-go's genTestPair): clients — each a `Conversations` set with its
 * own identity and relay ID — joined by an in-memory relay on a fake clock.
 * The relay can drop, duplicate, reorder, delay and forge packets, report a
 * peer offline, and go down and up; a client can restart (new state, same
 * identity and ID). Everything runs as fast as the CPU allows: time only
 * moves when the harness advances the fake clock to the next deadline.
 * @module
 */

import type { Bytes } from "../../lib/bytes.ts";
import type { ConversationEvent, TrustLookup } from "../../lib/conversation.ts";
import {
  Conversations,
  type ConversationsOutput,
  type PeerOptions,
} from "../../lib/conversations.ts";
import { generateIdentity, type Identity } from "../../lib/identity.ts";
import { fingerprint } from "../../lib/fingerprint.ts";

/** A packet in flight on the fake relay. */
export interface InFlight {
  from: Bytes;
  to: Bytes;
  packet: Bytes;
  at: number;
}

/** What the relay does with one packet: deliver (after `delay` ms), drop, or deliver twice. */
export type Verdict = "deliver" | "drop" | "dup" | { delay: number };

/** One client on the fake relay. */
export class Client {
  readonly name: string;
  readonly id: Bytes;
  identity: Identity;
  fp = "";
  set!: Conversations;
  /** Every event, with the peer's ID in hex. */
  readonly events: { peer: string; event: ConversationEvent }[] = [];
  /** Known peers: peer ID hex → fingerprint (TOFU by relay ID). */
  readonly known = new Map<string, string>();
  readonly opts: Partial<PeerOptions>;
  readonly #net: Net;

  constructor(
    net: Net,
    name: string,
    id: Bytes,
    identity: Identity,
    opts: Partial<PeerOptions>,
  ) {
    this.#net = net;
    this.name = name;
    this.id = id;
    this.identity = identity;
    this.opts = opts;
    this.reset();
  }

  /** New state (a restart): same identity and ID unless given. */
  reset(identity = this.identity): void {
    this.identity = identity;
    this.set = new Conversations({
      identity,
      localId: this.id,
      now: this.#net.now,
      options: (peer) => ({
        trust: (fp): TrustLookup => {
          const prev = this.known.get(peer.toHex());
          if (prev === undefined) return { status: "new" };
          return prev === fp
            ? { status: "known" }
            : { status: "changed", previous: prev };
        },
        sessionOptions: { coverRate: 0 },
        random: () => 0.5,
        ...this.opts,
      }),
    });
  }

  /** Events of one type (optionally from one peer). */
  of<T extends ConversationEvent["type"]>(
    type: T,
    peer?: Client,
  ): Extract<ConversationEvent, { type: T }>[] {
    return this.events.filter((e) =>
      e.event.type === type && (!peer || e.peer === peer.id.toHex())
    )
      .map((e) => e.event as Extract<ConversationEvent, { type: T }>);
  }

  /** Text of every delivered message from `peer`, in order. */
  texts(peer?: Client): string[] {
    return this.of("message", peer).map((m) =>
      new TextDecoder().decode(m.body)
    );
  }

  /** Ids reported delivered to `peer`. */
  delivered(peer?: Client): number[] {
    return this.of("delivered", peer).flatMap((d) => d.ids).sort((a, b) =>
      a - b
    );
  }

  async dial(peer: Client, extra: Partial<PeerOptions> = {}): Promise<void> {
    const { output } = await this.set.dial(peer.id, this.#net.now, extra);
    this.#net.apply(this, output);
  }

  async send(peer: Client, ...texts: string[]): Promise<number[]> {
    const c = this.set.get(peer.id)!;
    const out = await c.send(
      texts.map((t) => new TextEncoder().encode(t)),
      this.#net.now,
    );
    this.#net.apply(this, this.set.tag(c, out));
    return out.verdicts.map((v) => v.id);
  }

  async close(peer: Client, waitForPeer = false): Promise<void> {
    const c = this.set.get(peer.id)!;
    this.#net.apply(
      this,
      this.set.tag(c, await c.close(this.#net.now, waitForPeer)),
    );
  }
}

/** The fake relay and clock. */
export class Net {
  now = 1_700_000_000_000;
  readonly clients: Client[] = [];
  inflight: InFlight[] = [];
  /** Decides the fate of each packet (default deliver). */
  verdict: (p: InFlight) => Verdict = () => "deliver";
  /** Clients the relay reports offline (their packets bounce with `peer-offline`). */
  readonly offline = new Set<Client>();
  /** Relay down: nothing moves. */
  down = false;
  /** Every packet that went through, for inspection and forging. */
  readonly log: InFlight[] = [];
  #pending: Promise<void>[] = [];

  async client(name: string, opts: Partial<PeerOptions> = {}): Promise<Client> {
    const id = new Uint8Array(16);
    id[0] = this.clients.length + 1;
    id[15] = name.charCodeAt(0);
    const c = new Client(this, name, id, await generateIdentity(), opts);
    c.fp = (await fingerprint(c.identity.spki)).toHex();
    this.clients.push(c);
    return c;
  }

  /** Takes a client's output: events recorded, packets onto the relay. */
  apply(from: Client, out: ConversationsOutput): void {
    for (const e of out.events) {
      from.events.push({ peer: e.peer.toHex(), event: e.event });
      if (e.event.type === "secure" && e.event.trust === "new") {
        from.known.set(e.peer.toHex(), e.event.fingerprint); // trust on first use
      }
    }
    for (const p of out.packets) {
      this.inject({ from: from.id, to: p.to, packet: p.packet, at: this.now });
    }
  }

  /** Puts a packet on the relay (forged ones too), subject to `verdict`. */
  inject(p: InFlight): void {
    if (this.down) return;
    this.log.push(p);
    const v = this.verdict(p);
    if (v === "drop") return;
    const to = this.clients.find((c) => c.id.toHex() === p.to.toHex());
    const from = this.clients.find((c) => c.id.toHex() === p.from.toHex());
    if (to && this.offline.has(to)) {
      if (from) {
        this.#pending.push(
          from.set.relayError(p.to, "peer-offline", this.now).then((o) =>
            this.apply(from, o)
          ),
        );
      }
      return;
    }
    const delay = typeof v === "object" ? v.delay : 0;
    this.inflight.push({ ...p, at: this.now + delay });
    if (v === "dup") this.inflight.push({ ...p, at: this.now + delay });
  }

  /** Delivers every packet due now (in order), until none is left due. */
  async deliver(): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      await Promise.all(this.#pending.splice(0));
      const due = this.inflight.filter((p) => p.at <= this.now);
      if (due.length === 0) return;
      this.inflight = this.inflight.filter((p) => p.at > this.now);
      for (const p of due) {
        const to = this.clients.find((c) => c.id.toHex() === p.to.toHex());
        if (!to) continue;
        const out = await to.set.receive(p.from, p.packet, this.now);
        this.apply(to, out);
      }
    }
    throw new Error("deliver: no quiescence after 10 000 rounds");
  }

  /** The earliest timer of any client or packet in flight. */
  next(): number | undefined {
    let at: number | undefined;
    const min = (d: number | undefined) => {
      if (d !== undefined && (at === undefined || d < at)) at = d;
    };
    for (const c of this.clients) min(c.set.nextDeadline());
    for (const p of this.inflight) min(p.at);
    return at;
  }

  /** Runs until `done()` holds (checked when quiet), or fails after `maxMs` of fake time. */
  async run(
    done: () => boolean,
    maxMs = 120_000,
    what = "condition",
  ): Promise<void> {
    const limit = this.now + maxMs;
    for (;;) {
      await this.deliver();
      if (done()) return;
      const at = this.next();
      if (at === undefined || at > limit) {
        throw new Error(
          `${what} not reached within ${maxMs} ms of fake time (next deadline ${
            at === undefined ? "none" : at - this.now + " ms"
          })`,
        );
      }
      this.now = Math.max(this.now, at);
      for (const c of this.clients) this.apply(c, await c.set.poll(this.now));
    }
  }

  /** Advances fake time by `ms`, running everything due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await this.run(() => (this.next() ?? Infinity) > end, ms + 1, "advance");
    this.now = end;
    await this.deliver();
  }
}

/** True when `c` has a secure session with `peer`. */
export function secure(c: Client, peer: Client): boolean {
  return c.set.get(peer.id)?.secure ?? false;
}
