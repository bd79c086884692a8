/**
 * Sharded pub/sub over one Redis or a Redis Cluster: a publishing and a
 * subscribing {@link RedisClient} per master, channels routed by hash slot
 * (lib/redis_slot.ts). Started from one seed URL: when the seed answers
 * `CLUSTER SLOTS`, every master it lists gets its own pair of connections and
 * each channel goes to the master owning its slot; when the seed says
 * cluster support is disabled, everything goes to the seed. The slot map is
 * refreshed every {@link RedisShardsOptions.refreshMs} and after a `MOVED`
 * reply; channels whose slot moved are re-subscribed on their new master.
 * @module
 */

import { keySlot, parseClusterSlots, SLOT_COUNT } from "../redis_slot.ts";
import {
  type BackoffOptions,
  parseRedisUrl,
  RedisClient,
  RedisReplyError,
  type RespArgument,
  type RespLimits,
  type RespValue,
} from "./redis_client.ts";

/** One master: where it is and its two connections. */
interface Shard {
  addr: string;
  pub: RedisClient;
  sub: RedisClient;
}

/** Options of {@link RedisShards}. */
export interface RedisShardsOptions {
  /** Seed: `redis://[[user]:password@]host[:port]` (credentials reused for every master). */
  url: string;
  /** Prefix of the connections' `CLIENT SETNAME` (`-pub` / `-sub` appended). */
  clientName: string;
  /** A sharded message arrived. */
  onMessage: (channel: string, payload: Uint8Array) => void;
  /** A connection of master `addr` came up or went down. */
  onState: (
    addr: string,
    role: "publish" | "subscribe",
    state: "up" | "down",
    why: string,
    reconnected: boolean,
  ) => void;
  /** A slot map change or refusal worth a log line. */
  log: (line: string) => void;
  /** Reconnect schedule of every connection. */
  backoff?: BackoffOptions;
  /** Liveness PING period of every connection (ms). */
  pingIntervalMs?: number;
  /** Decoder bounds. */
  limits?: Partial<RespLimits>;
  /** Slot map refresh period in cluster mode (default 10 s). */
  refreshMs?: number;
}

/** Routes sharded pub/sub commands to the right master. */
export class RedisShards {
  readonly #o: RedisShardsOptions;
  readonly #seed: Shard;
  readonly #shards = new Map<string, Shard>();
  /** Owner of each slot (all the seed until a slot map says otherwise). */
  #owner: Shard[];
  /** Channel → the shard it is subscribed on. */
  readonly #subscribed = new Map<string, Shard>();
  #mode: "unknown" | "single" | "cluster" = "unknown";
  #refreshTimer: ReturnType<typeof setInterval> | undefined;
  #refreshing = false;
  #closed = false;

  /** Creates the router (no I/O until {@link start}); throws TypeError on a bad URL. */
  constructor(options: RedisShardsOptions) {
    this.#o = options;
    const seed = parseRedisUrl(options.url);
    this.#seed = this.#shard(`${seed.hostname}:${seed.port}`, options.url);
    this.#owner = new Array(SLOT_COUNT).fill(this.#seed);
  }

  /** "single" (one Redis), "cluster" (slot map loaded) or "unknown" (not asked yet). */
  get mode(): "unknown" | "single" | "cluster" {
    return this.#mode;
  }

  /** Masters with connections. */
  get size(): number {
    return this.#shards.size;
  }

  /** True when every connection of every master is up. */
  get allUp(): boolean {
    for (const s of this.#shards.values()) {
      if (s.pub.state !== "up" || s.sub.state !== "up") return false;
    }
    return this.#mode !== "unknown";
  }

  /** The last error of the first connection that is not up, if any. */
  get lastError(): string {
    for (const s of this.#shards.values()) {
      if (s.pub.state !== "up") return `${s.addr}: ${s.pub.lastError}`;
      if (s.sub.state !== "up") return `${s.addr}: ${s.sub.lastError}`;
    }
    return this.#mode === "unknown" ? "slot map not loaded yet" : "";
  }

  /** Commands and socket writes so far, summed over masters. */
  counts(): {
    pubCommands: number;
    pubWrites: number;
    subCommands: number;
    subWrites: number;
  } {
    let pubCommands = 0, pubWrites = 0, subCommands = 0, subWrites = 0;
    for (const s of this.#shards.values()) {
      pubCommands += s.pub.commands;
      pubWrites += s.pub.writes;
      subCommands += s.sub.commands;
      subWrites += s.sub.writes;
    }
    return { pubCommands, pubWrites, subCommands, subWrites };
  }

  /** Connects to the seed (and, once the slot map is known, to every master). */
  start(): void {
    this.#seed.pub.start();
    this.#seed.sub.start();
  }

  /** True when the master owning `channel` can publish now. */
  canPublish(channel: string): boolean {
    return this.#mode !== "unknown" &&
      this.#owner[keySlot(channel)].pub.state === "up";
  }

  /** Sends a command about `channel` (e.g. SPUBLISH) to its master; `MOVED` triggers a refresh. */
  publish(
    channel: string,
    args: readonly RespArgument[],
    done: (r: RespValue | Error) => void,
  ): void {
    this.#owner[keySlot(channel)].pub.send(args, (r) => {
      if (r instanceof RedisReplyError && /^(MOVED|ASK) /.test(r.message)) {
        this.#refresh();
      }
      done(r);
    });
  }

  /** Subscribes `channel` on its master (kept across reconnects and slot moves). */
  ssubscribe(channel: string): void {
    if (this.#subscribed.has(channel)) return;
    const shard = this.#owner[keySlot(channel)];
    this.#subscribed.set(channel, shard);
    shard.sub.ssubscribe(channel);
  }

  /** Unsubscribes `channel`. */
  sunsubscribe(channel: string): void {
    const shard = this.#subscribed.get(channel);
    if (shard === undefined) return;
    this.#subscribed.delete(channel);
    shard.sub.sunsubscribe(channel);
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#refreshTimer);
    await Promise.all(
      [...this.#shards.values()].flatMap((s) => [s.pub.close(), s.sub.close()]),
    );
  }

  #shard(addr: string, url: string): Shard {
    const existing = this.#shards.get(addr);
    if (existing) return existing;
    const o = this.#o;
    const common = {
      url,
      backoff: o.backoff,
      pingIntervalMs: o.pingIntervalMs,
      limits: o.limits,
    };
    // Filled below; the callbacks only run after start(), when both exist.
    const shard = { addr } as Shard;
    const state =
      (role: "publish" | "subscribe") => (s: "up" | "down", why: string) => {
        const c = role === "publish" ? shard.pub : shard.sub;
        if (role === "publish" && s === "up" && shard === this.#seed) {
          this.#refresh();
        }
        if (this.#mode !== "unknown") {
          o.onState(addr, role, s, why, c.connects > 1);
        }
      };
    shard.pub = new RedisClient({
      ...common,
      clientName: `${o.clientName}-pub`,
      onState: state("publish"),
    });
    shard.sub = new RedisClient({
      ...common,
      clientName: `${o.clientName}-sub`,
      onMessage: o.onMessage,
      onState: state("subscribe"),
    });
    this.#shards.set(addr, shard);
    return shard;
  }

  /** Loads the slot map from the seed (or learns it is a single Redis). */
  #refresh(): void {
    if (this.#refreshing || this.#closed) return;
    this.#refreshing = true;
    this.#seed.pub.command(["CLUSTER", "SLOTS"]).then(
      (v) => this.#apply(v),
      (e) => {
        if (
          e instanceof RedisReplyError &&
          /cluster support disabled/i.test(e.message)
        ) {
          if (this.#mode === "unknown") {
            this.#mode = "single";
            this.#announce();
          }
        } else if (e instanceof RedisReplyError) {
          this.#o.log(`cluster: CLUSTER SLOTS refused: ${e.message}`);
        }
      },
    ).finally(() => this.#refreshing = false);
  }

  #apply(v: RespValue): void {
    if (this.#closed) return;
    let ranges;
    try {
      ranges = parseClusterSlots(v, parseRedisUrl(this.#o.url).hostname);
    } catch (e) {
      this.#o.log(`cluster: ${(e as Error).message}`);
      return;
    }
    const seedUrl = new URL(this.#o.url);
    const owner: Shard[] = new Array(SLOT_COUNT).fill(this.#seed);
    for (const r of ranges) {
      const host = r.host.includes(":") ? `[${r.host}]` : r.host;
      const url = new URL(seedUrl);
      url.host = `${host}:${r.port}`;
      const shard = this.#shard(`${r.host}:${r.port}`, url.href);
      shard.pub.start();
      shard.sub.start();
      for (let s = r.start; s <= r.end; s++) owner[s] = shard;
    }
    const first = this.#mode !== "cluster";
    this.#owner = owner;
    this.#mode = "cluster";
    let moved = 0;
    for (const [channel, was] of this.#subscribed) {
      const now = owner[keySlot(channel)];
      if (now === was) continue;
      was.sub.sunsubscribe(channel);
      now.sub.ssubscribe(channel);
      this.#subscribed.set(channel, now);
      moved++;
    }
    if (first) {
      this.#o.log(
        `cluster: Redis Cluster with ${
          new Set(owner).size
        } masters; channels routed by slot`,
      );
      this.#refreshTimer = setInterval(
        () => this.#refresh(),
        this.#o.refreshMs ?? 10_000,
      );
      this.#announce();
    } else if (moved > 0) {
      this.#o.log(`cluster: slot map changed, ${moved} channels re-subscribed`);
    }
  }

  /** The mode is known: report every connection that is up already. */
  #announce(): void {
    for (const s of this.#shards.values()) {
      if (s.pub.state === "up") {
        this.#o.onState(s.addr, "publish", "up", s.addr, false);
      }
      if (s.sub.state === "up") {
        this.#o.onState(s.addr, "subscribe", "up", s.addr, false);
      }
    }
  }
}
