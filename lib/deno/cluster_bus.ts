/**
 * The relay's cluster bus (PROTOCOL.md §1.8): relay nodes forward to each
 * other over Redis sharded pub/sub, as Signal's server does for its
 * WebSockets. Each node holds two Redis connections per Redis master
 * (lib/deno/redis_shards.ts): one that publishes, one that subscribes; on a
 * Redis Cluster, channels are routed by hash slot.
 *
 * - A connection registers ID X here → SSUBSCRIBE X's channel, then publish a
 *   CLAIM (this node's name, registration time, random nonce) on it.
 * - DATA for an ID with no local connection → SPUBLISH to its channel; the
 *   number of receivers Redis returns is 0 → the sender gets `peer-offline`.
 * - A node receiving DATA for X delivers it to its local X; when X's send
 *   buffer is full, an ERROR `peer-busy` travels back on the sender's channel.
 * - A CLAIM newer than this node's registration of X displaces the local X
 *   (close 4000, as on one node); an older one is answered with this node's
 *   own CLAIM so the other node learns it lost. After every Redis reconnect
 *   each node re-publishes its CLAIMs (what was said during the outage is lost).
 * - Redis down: the relay keeps forwarding between its own connections, DATA
 *   for other nodes is refused with `peer-offline`, {@link ClusterBus.status}
 *   is `degraded`, and both connections reconnect with backoff.
 *
 * The relay sees this module only through {@link ClusterHook}.
 * @module
 */

import {
  busDataParts,
  channelFor,
  channelForHex,
  type Claim,
  CLAIM_NONCE_LENGTH,
  compareClaims,
  decodeBusMessage,
  encodeBusClaim,
  encodeBusError,
} from "../cluster_frame.ts";
import { SESSION_ID_LENGTH } from "../constants.ts";
import { encodeError } from "../relay_frame.ts";
import { shortSessionId } from "../registration.ts";
import type { BackoffOptions } from "./redis_client.ts";
import { RedisShards } from "./redis_shards.ts";

export type { BackoffOptions, Claim };

/** What the bus may do to the relay's local connections. */
export interface LocalRelay {
  /** Sends a stamped DATA frame to the local holder of `idHex`. */
  deliver(idHex: string, frame: Uint8Array): "sent" | "offline" | "busy";
  /** Sends an ERROR frame to the local holder of `idHex`, if any. */
  deliverError(idHex: string, frame: Uint8Array): void;
  /** Closes the local holder of `idHex` with 4000: `by` registered it more recently. */
  displace(idHex: string, by: Claim): void;
}

/** The relay's hook for destinations that are not local (one implementation: {@link ClusterBus}). */
export interface ClusterHook {
  /** Called once by the relay when it starts. */
  attach(local: LocalRelay): void;
  /** A local connection registered `id` (after any local replacement). */
  bound(id: Uint8Array, idHex: string): void;
  /** The local registration of `idHex` ended (its connection closed). */
  unbound(idHex: string): void;
  /**
   * Hands a DATA frame (sender's ID already stamped) on towards `recipient`
   * on another node. `"offline"` at once when the bus is down; otherwise
   * `"sent"`, and when Redis then reports no receiver, the sender gets an
   * ERROR `peer-offline` through {@link LocalRelay.deliverError}.
   */
  forward(recipient: Uint8Array, frame: Uint8Array): "sent" | "offline";
  /** `ok`, or `degraded` while Redis is unreachable. */
  status(): "ok" | "degraded";
  /** Fields added to `/healthz`. */
  health(): Record<string, unknown>;
  /** Prometheus lines added to `/metrics`. */
  metricsText(): string;
  /** Stops both Redis connections. */
  close(): Promise<void>;
}

/** What {@link attachRelay} needs of a running relay (lib/deno/relay_server.ts's handle). */
export interface RelayEndpoints {
  /** Sends a frame to the local connection holding `dst`. */
  deliver(
    dst: Uint8Array<ArrayBuffer>,
    frame: Uint8Array<ArrayBuffer>,
  ): "sent" | "offline" | "busy";
  /** Closes the local connection holding `idHex` with 4000. */
  displace(idHex: string, reason: string): void;
}

/**
 * Lets `bus` reach the local connections of `relay` (started with
 * `remote: bus`); call before {@link ClusterBus.start}.
 */
export function attachRelay(bus: ClusterHook, relay: RelayEndpoints): void {
  // Frames from the bus are fresh copies, so ArrayBuffer-backed.
  const bytes = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>;
  bus.attach({
    deliver: (idHex, frame) =>
      relay.deliver(Uint8Array.fromHex(idHex), bytes(frame)),
    deliverError: (idHex, frame) => {
      relay.deliver(Uint8Array.fromHex(idHex), bytes(frame));
    },
    displace: (idHex, by) =>
      relay.displace(
        idHex,
        `session ID registered on a newer connection (node ${by.node})`,
      ),
  });
}

/** Options of a {@link ClusterBus}. */
export interface ClusterBusOptions {
  /** `redis://HOST:PORT` of the bus. */
  url: string;
  /** This node's name (1..64 bytes; letters, digits, `-_.`), carried in CLAIMs. */
  node: string;
  /** The relay's frame cap (bounds what is accepted from Redis). */
  maxFrame: number;
  /** Redis reconnect schedule (default 100 ms … 5 s). */
  backoff?: BackoffOptions;
  /** Redis liveness PING period in ms (default 2000). */
  pingIntervalMs?: number;
  /** Event lines (state changes, displacements; never payloads). */
  log?: (line: string) => void;
  /** The clock for CLAIM times (default Date.now). */
  now?: () => number;
}

const SPUBLISH = new TextEncoder().encode("SPUBLISH");

/** Node names a CLAIM may carry. */
export const NODE_NAME_PATTERN: RegExp = /^[A-Za-z0-9._-]{1,64}$/;

/** Counters of the bus (exported in /metrics). */
interface BusCounters {
  published: number;
  publishFailed: number;
  remoteOffline: number;
  received: number;
  delivered: number;
  staleDropped: number;
  busyReturned: number;
  errorsReceived: number;
  malformed: number;
  claimsSent: number;
  displaced: number;
  reasserted: number;
  reconnects: number;
}

/** The Redis-backed {@link ClusterHook}. Call {@link start} after the relay attached. */
export class ClusterBus implements ClusterHook {
  readonly #o: ClusterBusOptions;
  readonly #redis: RedisShards;
  readonly #mine = new Map<string, Claim>();
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  #local: LocalRelay | undefined;
  #lastMalformedLog = 0;
  readonly #c: BusCounters = {
    published: 0,
    publishFailed: 0,
    remoteOffline: 0,
    received: 0,
    delivered: 0,
    staleDropped: 0,
    busyReturned: 0,
    errorsReceived: 0,
    malformed: 0,
    claimsSent: 0,
    displaced: 0,
    reasserted: 0,
    reconnects: 0,
  };

  /** Creates the bus (no I/O until {@link start}). Throws on a bad URL or node name. */
  constructor(options: ClusterBusOptions) {
    if (!NODE_NAME_PATTERN.test(options.node)) {
      throw new TypeError(
        `node name '${options.node}' must be 1-64 letters, digits, '.', '_' or '-'`,
      );
    }
    this.#o = options;
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? Date.now;
    this.#redis = new RedisShards({
      url: options.url,
      clientName: `relay-${options.node}`,
      backoff: options.backoff,
      pingIntervalMs: options.pingIntervalMs ?? 2000,
      limits: { maxBulk: options.maxFrame + 256 },
      onMessage: (ch, payload) => this.#onMessage(ch, payload),
      onState: (addr, role, s, why, reconnected) =>
        this.#onState(addr, role, s, why, reconnected),
      log: this.#log,
    });
  }

  /** This node's name. */
  get node(): string {
    return this.#o.node;
  }

  attach(local: LocalRelay): void {
    this.#local = local;
  }

  /** Connects to Redis (and keeps reconnecting until {@link close}). */
  start(): void {
    this.#redis.start();
  }

  status(): "ok" | "degraded" {
    return this.#redis.allUp ? "ok" : "degraded";
  }

  health(): Record<string, unknown> {
    const h: Record<string, unknown> = {
      cluster: this.status(),
      node: this.#o.node,
    };
    if (this.status() !== "ok") {
      h.clusterError = this.#redis.lastError;
    }
    return h;
  }

  bound(id: Uint8Array, idHex: string): void {
    const claim: Claim = {
      node: this.#o.node,
      timeMs: this.#now(),
      nonce: crypto.getRandomValues(new Uint8Array(CLAIM_NONCE_LENGTH)),
    };
    this.#mine.set(idHex, claim);
    this.#redis.ssubscribe(channelForHex(idHex));
    this.#sendClaim(id, idHex, claim);
  }

  unbound(idHex: string): void {
    if (this.#mine.delete(idHex)) {
      this.#redis.sunsubscribe(channelForHex(idHex));
    }
  }

  forward(recipient: Uint8Array, frame: Uint8Array): "sent" | "offline" {
    const channel = channelFor(recipient);
    if (!this.#redis.canPublish(channel)) {
      this.#c.publishFailed++;
      return "offline";
    }
    this.#c.published++;
    this.#redis.publish(
      channel,
      [SPUBLISH, channel, busDataParts(recipient, frame)],
      (r) => {
        if (r instanceof Error) this.#c.publishFailed++;
        else if (r.type === "integer" && r.value === 0n) {
          this.#c.remoteOffline++;
        } else return;
        this.#refuse(
          "peer-offline",
          recipient,
          frame,
          "recipient not connected",
        );
      },
    );
    return "sent";
  }

  async close(): Promise<void> {
    await this.#redis.close();
  }

  metricsText(): string {
    const c = this.#c;
    const n = this.#redis.counts();
    const lines = [
      "# HELP relay_cluster_up 1 when every Redis connection of the cluster bus is up, 0 when degraded.",
      "# TYPE relay_cluster_up gauge",
      `relay_cluster_up ${this.status() === "ok" ? 1 : 0}`,
      "# HELP relay_cluster_subscriptions Channels (local registrations) subscribed on Redis.",
      "# TYPE relay_cluster_subscriptions gauge",
      `relay_cluster_subscriptions ${this.#mine.size}`,
      "# HELP relay_cluster_messages_total Inter-node messages by event.",
      "# TYPE relay_cluster_messages_total counter",
    ];
    const events: [string, number][] = [
      ["published", c.published],
      ["publish_failed", c.publishFailed],
      ["remote_offline", c.remoteOffline],
      ["received", c.received],
      ["delivered", c.delivered],
      ["stale_dropped", c.staleDropped],
      ["busy_returned", c.busyReturned],
      ["error_received", c.errorsReceived],
      ["malformed", c.malformed],
      ["claim_sent", c.claimsSent],
      ["displaced", c.displaced],
      ["reasserted", c.reasserted],
    ];
    for (const [e, n] of events) {
      lines.push(`relay_cluster_messages_total{event="${e}"} ${n}`);
    }
    lines.push(
      "# HELP relay_cluster_redis_commands_total Commands sent to Redis, by connection.",
      "# TYPE relay_cluster_redis_commands_total counter",
      `relay_cluster_redis_commands_total{conn="publish"} ${n.pubCommands}`,
      `relay_cluster_redis_commands_total{conn="subscribe"} ${n.subCommands}`,
      "# HELP relay_cluster_redis_writes_total Socket writes to Redis (commands are pipelined), by connection.",
      "# TYPE relay_cluster_redis_writes_total counter",
      `relay_cluster_redis_writes_total{conn="publish"} ${n.pubWrites}`,
      `relay_cluster_redis_writes_total{conn="subscribe"} ${n.subWrites}`,
      "# HELP relay_cluster_redis_masters Redis masters the bus routes to (1 unless Redis Cluster).",
      "# TYPE relay_cluster_redis_masters gauge",
      `relay_cluster_redis_masters ${this.#redis.size}`,
      "# HELP relay_cluster_reconnects_total Redis connections re-established after a loss.",
      "# TYPE relay_cluster_reconnects_total counter",
      `relay_cluster_reconnects_total ${c.reconnects}`,
    );
    return lines.join("\n") + "\n";
  }

  #sendClaim(id: Uint8Array, idHex: string, claim: Claim): void {
    const channel = channelForHex(idHex);
    // When it cannot go now, it is re-sent for every registration on reconnect.
    if (!this.#redis.canPublish(channel)) return;
    this.#c.claimsSent++;
    this.#redis.publish(
      channel,
      [SPUBLISH, channel, encodeBusClaim(id, claim)],
      () => {},
    );
  }

  #onState(
    addr: string,
    which: "publish" | "subscribe",
    state: "up" | "down",
    why: string,
    reconnected: boolean,
  ): void {
    if (state === "down") {
      this.#log(
        `cluster: redis ${which} connection down (${addr}: ${why}): degraded, reconnecting with backoff`,
      );
      return;
    }
    if (reconnected) this.#c.reconnects++;
    this.#log(
      `cluster: redis ${which} connection up (${why})${
        this.status() === "ok" ? "" : ", still degraded"
      }`,
    );
    // Anything said while the bus was down is lost: repeat every CLAIM so a
    // double registration made during the outage is settled now.
    if (this.status() === "ok" && reconnected) {
      for (const [idHex, claim] of this.#mine) {
        this.#sendClaim(Uint8Array.fromHex(idHex), idHex, claim);
      }
    }
  }

  #onMessage(channel: string, payload: Uint8Array): void {
    this.#c.received++;
    let msg;
    try {
      msg = decodeBusMessage(payload, this.#o.maxFrame);
      if (channelFor(msg.id) !== channel) {
        throw new Error("message addressed to another channel");
      }
    } catch (e) {
      this.#c.malformed++;
      const now = performance.now();
      if (now - this.#lastMalformedLog > 10_000) {
        this.#lastMalformedLog = now;
        this.#log(
          `cluster: dropped a malformed message: ${(e as Error).message}`,
        );
      }
      return;
    }
    const local = this.#local;
    if (local === undefined) return;
    const idHex = msg.id.toHex();
    switch (msg.kind) {
      case "data": {
        const r = local.deliver(idHex, msg.frame);
        if (r === "sent") this.#c.delivered++;
        else if (r === "offline") this.#c.staleDropped++; // the holder just left; e2e retransmits
        else {
          this.#c.busyReturned++;
          this.#refuse(
            "peer-busy",
            msg.id,
            msg.frame,
            "recipient send buffer full",
          );
        }
        return;
      }
      case "error":
        this.#c.errorsReceived++;
        local.deliverError(idHex, msg.frame);
        return;
      case "claim": {
        const mine = this.#mine.get(idHex);
        if (mine === undefined) return;
        const order = compareClaims(msg.claim, mine);
        if (order > 0) {
          this.#mine.delete(idHex);
          this.#redis.sunsubscribe(channel);
          this.#c.displaced++;
          this.#log(
            `cluster: ${
              shortSessionId(msg.id)
            }… registered on node ${msg.claim.node}: displacing the local connection`,
          );
          local.displace(idHex, msg.claim);
        } else if (order < 0) {
          this.#c.reasserted++;
          this.#sendClaim(msg.id, idHex, mine);
        }
        return;
      }
    }
  }

  /**
   * Refuses a stamped DATA frame: the sender (its ID is in the frame) gets an
   * ERROR naming the recipient and its frame number — directly when it is
   * connected here, else on its own channel.
   */
  #refuse(
    code: "peer-offline" | "peer-busy",
    recipient: Uint8Array,
    frame: Uint8Array,
    reason: string,
  ): void {
    const sender = frame.slice(2, 2 + SESSION_ID_LENGTH);
    const frameNo = new DataView(frame.buffer, frame.byteOffset)
      .getUint32(2 + SESSION_ID_LENGTH);
    const error = encodeError(code, recipient, frameNo, reason);
    const senderHex = sender.toHex();
    if (this.#mine.has(senderHex)) {
      return this.#local?.deliverError(senderHex, error);
    }
    const channel = channelFor(sender);
    if (!this.#redis.canPublish(channel)) return;
    this.#redis.publish(
      channel,
      [SPUBLISH, channel, encodeBusError(sender, error)],
      () => {},
    );
  }
}
