/**
 * The simulated customers of the service bench (bench/service.ts): each
 * {@link Customer} its own identity, mailbox key, relay connection (the
 * clients' transport, lib/deno/pinned_relay.ts: TLS to the real relay) and
 * {@link Conversation}, speaking the real protocol to the bank. They run in
 * this thread, or spread over Worker threads ({@link CustomerThreads},
 * bench/service_worker.ts): the same code per customer, the load generator's
 * work on more than one core, for a machine where one thread of customers
 * caps what the bank is measured at (here one thread reached ~17k msgs/s of
 * 256 B; on this 2-core machine workers cost more CPU per message, see
 * bench/service.ts DEFAULT_WORKERS). The process's CPU time (/proc) counts
 * every thread.
 * @module
 */

import { Conversation } from "../lib/conversation.ts";
import type { ConversationOutput } from "../lib/conversation_types.ts";
import { generateIdentity, type Identity } from "../lib/identity.ts";
import {
  formatSessionId,
  generateMailboxKey,
  type MailboxKey,
} from "../lib/registration.ts";
import type { Bytes } from "../lib/bytes.ts";
import { PinnedRelayConnection } from "../lib/deno/pinned_relay.ts";
import { SUITE_X25519 } from "../lib/suite.ts";
import { nodePrimitives } from "../lib/deno/node_primitives.ts";

/** What a simulated customer offers and which bank identities it accepts. */
export interface CustomerPolicy {
  /** Suites offered, in preference order. */
  suites: number[];
  /** The address's pins: only these identities are accepted (`fp=` P-256, `ed=` Ed25519; 64 hex digits). */
  pins: { fp?: string; ed?: string };
}

/** What the bench drives of a customer, in this thread ({@link Customer}) or in a worker ({@link CustomerThreads}). */
export interface SimulatedCustomer {
  /** Our relay ID (base32), once connected. */
  readonly peerName: string;
  /** Relay connections lost and reopened. */
  readonly reconnects: number;
  /** Set once connected; `open` while the relay link is. */
  readonly conn?: { readonly open: boolean };
  /** Connects to the relay (and resumes a conversation, if any). */
  connect(url: string, caPem: string): Promise<void>;
  /** Reconnect a lost relay link on its own (default on). */
  setAutoReconnect(on: boolean): Promise<void>;
  /** Starts the conversation with the bank. */
  dial(): Promise<void>;
  /** Sends the bodies in one call. */
  send(bodies: Uint8Array[]): Promise<void>;
  /** Closes the conversation cleanly. */
  close(): Promise<void>;
  /** Drops the relay link and timers. */
  stop(): Promise<void>;
}

/** Reconnect schedule of a simulated customer's relay link (clients/engine.ts RECONNECT). */
const RECONNECT_BASE_MS = 200;
const RECONNECT_MAX_MS = 5000;

/**
 * One simulated customer: its own keys, relay connection and conversation.
 * Its relay link is the clients' own transport (lib/deno/pinned_relay.ts,
 * what `deno task customer --peer <bank address>` uses: the bank's address
 * pins the relay's CA), and it reconnects a lost link as the clients do:
 * a customer whose link the relay closed must not stay silent (measured
 * with Deno's built-in WebSocket client here: ~1 % of idle connections
 * missed the relay's idle-timeout ping while this process ran the set-up
 * handshakes, and their queued messages never left).
 */
export class Customer implements SimulatedCustomer {
  conn?: PinnedRelayConnection;
  /** Told when the relay link opens (`true`) or closes (`false`; `lost`: the relay closed it and it is reconnected). */
  onLink: (open: boolean, lost: boolean) => void = () => {};
  /** Reconnect a lost relay link on its own (off for the relay-restart phase, which reconnects explicitly). */
  autoReconnect = true;
  conv?: Conversation;
  peerName = "";
  /** Relay connections lost and reopened (the relay closed them, e.g. idle timeout). */
  reconnects = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #reconnectTimer?: ReturnType<typeof setTimeout>;
  #url = "";
  #caPem = "";
  constructor(
    readonly identity: Identity,
    readonly mailbox: MailboxKey,
    readonly identities: Identity[],
    readonly bankId: Bytes,
    readonly policy: CustomerPolicy,
  ) {}

  /** A customer offering `policy.suites` (an identity of each suite's algorithm), accepting only the identities `policy.pins` names. */
  static async create(
    bankId: Bytes,
    policy: CustomerPolicy,
  ): Promise<Customer> {
    const [identity, ...identities] = await Promise.all(
      policy.suites.map((s) =>
        generateIdentity(s === SUITE_X25519 ? "Ed25519" : undefined)
      ),
    );
    return new Customer(
      identity,
      (await generateMailboxKey()).key,
      identities,
      bankId,
      policy,
    );
  }

  async connect(url: string, caPem: string): Promise<void> {
    this.#url = url;
    this.#caPem = caPem;
    const conn = await PinnedRelayConnection.connect({
      url,
      mailbox: this.mailbox,
      caPem,
      timeoutMs: 30_000,
    });
    this.conn = conn;
    this.peerName = formatSessionId(conn.id);
    this.onLink(true, false);
    conn.onFrame = (f) => {
      if (!this.conv) return;
      if (f.type === "data") {
        this.conv.receive(f.payload, Date.now()).then((o) => this.apply(o));
      } else if (f.type === "error") {
        this.conv.relayError(f.name, Date.now()).then((o) => this.apply(o));
      }
    };
    conn.closed.then(() => {
      if (this.conn !== conn) return; // replaced or stopped
      this.onLink(false, this.autoReconnect);
      this.conv?.linkDown();
      if (!this.autoReconnect) return;
      this.reconnects++;
      this.#reconnect(RECONNECT_BASE_MS);
    });
    if (this.conv) this.apply(await this.conv.linkUp(Date.now()));
  }

  /** As the clients' engine does (clients/engine.ts): a lost relay link is reconnected with backoff, then the conversation resends what is pending. */
  #reconnect(ms: number): void {
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.connect(this.#url, this.#caPem).catch(() =>
        this.#reconnect(Math.min(2 * ms, RECONNECT_MAX_MS))
      );
    }, ms);
  }

  setAutoReconnect(on: boolean): Promise<void> {
    this.autoReconnect = on;
    return Promise.resolve();
  }

  async dial(): Promise<void> {
    const { conversation, output } = await Conversation.dial({
      identity: this.identity,
      identities: this.identities,
      localId: this.conn!.id,
      peerId: this.bankId,
      suites: this.policy.suites,
      ...(this.policy.pins.fp === undefined
        ? {}
        : { expectFingerprint: this.policy.pins.fp }),
      ...(this.policy.pins.ed === undefined
        ? {}
        : { expectEd25519Fingerprint: this.policy.pins.ed }),
      trust: () => ({ status: "new" }),
      // The customers' own CPU is not the bank's: the fastest provider, and
      // no transcript (as `deno task customer` without --transcript).
      sessionOptions: {
        coverRate: 0,
        primitives: nodePrimitives,
        keepTranscript: false,
      },
      role: "customer",
    }, Date.now());
    this.conv = conversation;
    this.apply(output);
  }

  async send(bodies: Uint8Array[]): Promise<void> {
    this.apply(await this.conv!.send(bodies, Date.now()));
  }

  apply(out: ConversationOutput): void {
    if (this.conn?.open) {
      for (const p of out.packets) this.conn.send(this.bankId, p);
    }
    clearTimeout(this.#timer);
    const at = this.conv?.nextDeadline();
    if (at !== undefined && !this.conv!.ended) {
      this.#timer = setTimeout(
        () => this.conv!.poll(Date.now()).then((o) => this.apply(o)),
        Math.max(0, at - Date.now()),
      );
    }
  }

  /** Closes the conversation cleanly (CLOSE both ways). */
  async close(): Promise<void> {
    this.apply(await this.conv!.close(Date.now()));
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const c = this.conn;
    this.conn = undefined;
    if (c) this.onLink(false, false);
    this.conv?.linkDown();
    await c?.close().catch(() => {});
  }
}

/** A request to a worker (bench/service_worker.ts): `op` on customer `idx` (create: a new one). */
export interface CustomerRequest {
  id: number;
  op: "create" | "connect" | "auto" | "dial" | "send" | "close" | "stop";
  idx: number;
  args: unknown[];
}

/** A worker's answer to a request, or a customer's relay link change. */
export type CustomerReply =
  | { kind: "reply"; id: number; value?: unknown; error?: string }
  | { kind: "link"; idx: number; open: boolean; lost: boolean };

/** A customer in a worker: each call is one message there and back. */
class RemoteCustomer implements SimulatedCustomer {
  peerName = "";
  reconnects = 0;
  conn?: { open: boolean };
  constructor(
    readonly call: (op: CustomerRequest["op"], args: unknown[]) => Promise<
      unknown
    >,
  ) {}
  async connect(url: string, caPem: string): Promise<void> {
    this.peerName = await this.call("connect", [url, caPem]) as string;
  }
  async setAutoReconnect(on: boolean): Promise<void> {
    await this.call("auto", [on]);
  }
  async dial(): Promise<void> {
    await this.call("dial", []);
  }
  async send(bodies: Uint8Array[]): Promise<void> {
    await this.call("send", [bodies]);
  }
  async close(): Promise<void> {
    await this.call("close", []);
  }
  async stop(): Promise<void> {
    await this.call("stop", []);
  }
}

/**
 * Simulated customers spread over `n` Worker threads (round-robin by
 * creation), or in this thread with `n` = 0. Call {@link terminate} at the
 * end.
 */
export class CustomerThreads {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  readonly #remote: Map<number, RemoteCustomer>[] = [];
  #next = 1;
  #created = 0;

  constructor(readonly n: number) {
    for (let w = 0; w < n; w++) {
      const worker = new Worker(
        new URL("./service_worker.ts", import.meta.url),
        { type: "module" },
      );
      const remote = new Map<number, RemoteCustomer>();
      worker.onmessage = (e: MessageEvent<CustomerReply>) => {
        const r = e.data;
        if (r.kind === "link") {
          const c = remote.get(r.idx);
          if (!c) return;
          c.conn = { open: r.open };
          if (r.lost) c.reconnects++;
          return;
        }
        const p = this.#pending.get(r.id);
        this.#pending.delete(r.id);
        if (r.error !== undefined) p?.reject(new Error(r.error));
        else p?.resolve(r.value);
      };
      this.#workers.push(worker);
      this.#remote.push(remote);
    }
  }

  #call(w: number, req: Omit<CustomerRequest, "id">): Promise<unknown> {
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#pending.set(id, { resolve, reject });
    this.#workers[w].postMessage({ id, ...req });
    return promise;
  }

  /** A new customer (keys made where it runs). */
  async create(
    bankId: Bytes,
    policy: CustomerPolicy,
  ): Promise<SimulatedCustomer> {
    if (this.n === 0) return Customer.create(bankId, policy);
    const w = this.#created++ % this.n;
    const idx = await this.#call(w, {
      op: "create",
      idx: -1,
      args: [bankId, policy],
    }) as number;
    const c = new RemoteCustomer((op, args) =>
      this.#call(w, { op, idx, args })
    );
    this.#remote[w].set(idx, c);
    return c;
  }

  /** Ends the workers (stop the customers first). */
  terminate(): void {
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.reject(new Error("terminated"));
    this.#pending.clear();
  }
}
