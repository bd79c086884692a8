/**
 * A small Redis client over `Deno.connect` (driver for lib/resp.ts): one TCP
 * connection, pipelined commands (every command issued in the same tick goes
 * out in one write), sharded pub/sub (`SSUBSCRIBE`/`SUNSUBSCRIBE`, messages
 * to {@link RedisClientOptions.onMessage}), and reconnection with jittered
 * exponential backoff (lib/backoff.ts) that re-subscribes every channel.
 *
 * Fail fast: while the connection is down, {@link RedisClient.command}
 * rejects at once with {@link RedisUnavailableError} (the cluster bus then
 * runs degraded) instead of queueing without bound. Commands in flight when
 * the connection drops are rejected too. A PING every `pingIntervalMs`
 * detects a server that stopped answering.
 *
 * Use one client for commands and another for subscriptions: in RESP2 a
 * subscribed connection accepts nothing but (un)subscribe and PING.
 * @module
 */

import { setImmediate } from "node:timers";
import { Backoff, type BackoffOptions } from "../backoff.ts";
import {
  encodeCommand,
  replyText,
  type RespArgument,
  RespDecoder,
  type RespLimits,
  type RespValue,
} from "../resp.ts";

export type { BackoffOptions, RespArgument, RespLimits, RespValue };

/** Receives a command's reply, or why there is none. */
export type ReplyCallback = (reply: RespValue | Error) => void;

/** Where and how to connect. */
export interface RedisClientOptions {
  /** `redis://[[user]:password@]host[:port]` (port default 6379). */
  url: string;
  /** RESP version to speak (3 sends `HELLO 3` on connect; default 2). */
  protocol?: 2 | 3;
  /** `CLIENT SETNAME` on connect (letters, digits, `-_.:` only). */
  clientName?: string;
  /** A sharded pub/sub message arrived (`smessage`). */
  onMessage?: (channel: string, payload: Uint8Array) => void;
  /** The connection came up (after handshake and re-subscription) or went down. */
  onState?: (state: "up" | "down", detail: string) => void;
  /** Reconnect schedule (default 100 ms … 5 s). */
  backoff?: BackoffOptions;
  /** Give up a connect attempt after this long (default 2000 ms). */
  connectTimeoutMs?: number;
  /** Liveness PING period; no reply within it drops the connection (default 5000 ms; 0 = off). */
  pingIntervalMs?: number;
  /** Refuse commands while this many bytes wait to be written (default 16 MiB). */
  maxPendingBytes?: number;
  /** Decoder bounds. */
  limits?: Partial<RespLimits>;
}

/** The server answered a command with an error reply (`-ERR …`). */
export class RedisReplyError extends Error {
  /** Creates the error from the server's text. */
  constructor(message: string) {
    super(message);
    this.name = "RedisReplyError";
  }
}

/** The connection is down (or went down before the reply arrived). */
export class RedisUnavailableError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "RedisUnavailableError";
  }
}

/** Connection state; `closed` is final. */
export type RedisState = "connecting" | "up" | "down" | "closed";

interface Pending {
  /** Upper-case command name (matches pub/sub confirmations). */
  name: string;
  /** Gets the reply, a RedisReplyError or a RedisUnavailableError. */
  done: ReplyCallback;
}

interface Link {
  conn: Deno.TcpConn;
  decoder: RespDecoder;
  pending: Pending[];
  out: Uint8Array[];
  outBytes: number;
  flushing: boolean;
  /** Commands are accepted from callers (handshake done). */
  ready: boolean;
  /** The read loop; settles after the socket closes. */
  reading?: Promise<void>;
}

const PUSH_KINDS = new Set(["smessage", "message", "pmessage"]);

/** Parses `redis://[[user]:pass@]host[:port]`. */
export function parseRedisUrl(
  url: string,
): { hostname: string; port: number; username?: string; password?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not a URL: '${url}' (expected redis://HOST:PORT)`);
  }
  if (u.protocol !== "redis:") {
    throw new TypeError(
      `unsupported scheme '${u.protocol}' (redis:// only; no TLS client here)`,
    );
  }
  if (u.hostname === "") throw new TypeError("redis URL without a host");
  const port = u.port === "" ? 6379 : Number(u.port);
  return {
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port,
    username: u.username === "" ? undefined : decodeURIComponent(u.username),
    password: u.password === "" ? undefined : decodeURIComponent(u.password),
  };
}

/** A reconnecting Redis connection. Call {@link start}, then {@link close} when done. */
export class RedisClient {
  readonly #o: RedisClientOptions;
  readonly #target: ReturnType<typeof parseRedisUrl>;
  readonly #backoff: Backoff;
  readonly #channels = new Set<string>();
  #state: RedisState = "down";
  #link: Link | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #pingOutstanding = false;
  #lastError = "not started";
  #connects = 0;
  #commands = 0;
  #reported: "up" | "down" | undefined;
  #writes = 0;

  /** Creates a client (no I/O until {@link start}). Throws TypeError on a bad URL. */
  constructor(options: RedisClientOptions) {
    this.#o = options;
    this.#target = parseRedisUrl(options.url);
    this.#backoff = new Backoff(
      options.backoff ?? { baseMs: 100, maxMs: 5000 },
    );
  }

  /** Current state. */
  get state(): RedisState {
    return this.#state;
  }
  /** Why the connection is not up (last error). */
  get lastError(): string {
    return this.#lastError;
  }
  /** Successful connections so far (1 = never reconnected). */
  get connects(): number {
    return this.#connects;
  }
  /** Commands sent so far. */
  get commands(): number {
    return this.#commands;
  }
  /** Socket writes so far (commands ÷ writes = pipelining depth). */
  get writes(): number {
    return this.#writes;
  }
  /** Channels this client wants subscribed (re-subscribed after every reconnect). */
  get channels(): ReadonlySet<string> {
    return this.#channels;
  }

  /** Starts connecting (and keeps reconnecting until {@link close}). */
  start(): void {
    if (this.#state === "closed" || this.#link || this.#retryTimer) return;
    this.#attempt();
  }

  /**
   * Sends one command; resolves with its reply, rejects with
   * {@link RedisReplyError} for an error reply and {@link RedisUnavailableError}
   * while down. Commands of one tick share one write (pipelining).
   */
  command(args: readonly RespArgument[]): Promise<RespValue> {
    const { promise, resolve, reject } = Promise.withResolvers<RespValue>();
    this.send(args, (r) => r instanceof Error ? reject(r) : resolve(r));
    return promise;
  }

  /**
   * {@link command} without a promise (the cluster bus's hot path): `done`
   * gets the reply or the error (synchronously while down).
   */
  send(args: readonly RespArgument[], done: ReplyCallback): void {
    const link = this.#link;
    if (this.#state !== "up" || link === undefined || !link.ready) {
      return done(
        new RedisUnavailableError(`redis ${this.#state}: ${this.#lastError}`),
      );
    }
    this.#enqueue(link, args, done);
  }

  /** Subscribes to a shard channel (kept across reconnects); resolves on confirmation. */
  ssubscribe(channel: string): Promise<void> {
    if (this.#channels.has(channel)) return Promise.resolve();
    this.#channels.add(channel);
    return this.#subCommand("SSUBSCRIBE", channel);
  }

  /** Unsubscribes a shard channel; resolves on confirmation (or at once when down). */
  sunsubscribe(channel: string): Promise<void> {
    if (!this.#channels.delete(channel)) return Promise.resolve();
    return this.#subCommand("SUNSUBSCRIBE", channel);
  }

  #subCommand(name: string, channel: string): Promise<void> {
    const link = this.#link;
    // Not connected: the desired set is applied by the next handshake.
    if (link === undefined) return Promise.resolve();
    return this.#send(link, [name, channel]).then(() => {}, () => {});
  }

  /** Stops: closes the socket, rejects what is in flight, no more reconnects. */
  close(): Promise<void> {
    if (this.#state === "closed") return Promise.resolve();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const link = this.#link;
    this.#drop("client closed", false);
    this.#state = "closed";
    return link?.reading ?? Promise.resolve();
  }

  #send(link: Link, args: readonly RespArgument[]): Promise<RespValue> {
    const { promise, resolve, reject } = Promise.withResolvers<RespValue>();
    this.#enqueue(
      link,
      args,
      (r) => r instanceof Error ? reject(r) : resolve(r),
    );
    return promise;
  }

  #enqueue(
    link: Link,
    args: readonly RespArgument[],
    done: ReplyCallback,
  ): void {
    const bytes = encodeCommand(args);
    const max = this.#o.maxPendingBytes ?? 16 << 20;
    if (link.outBytes + bytes.length > max) {
      return done(
        new RedisUnavailableError(`redis write queue above ${max} bytes`),
      );
    }
    const name = typeof args[0] === "string" ? args[0].toUpperCase() : "";
    link.pending.push({ name, done });
    this.#commands++;
    link.out.push(bytes);
    link.outBytes += bytes.length;
    if (!link.flushing) {
      link.flushing = true;
      // After the I/O events of this turn of the event loop: every command
      // they issue shares one write.
      setImmediate(() => this.#flush(link));
    }
  }

  async #flush(link: Link): Promise<void> {
    try {
      while (link.out.length > 0 && this.#link === link) {
        const parts = link.out;
        link.out = [];
        const total = link.outBytes;
        const joined = parts.length === 1 ? parts[0] : new Uint8Array(total);
        if (parts.length > 1) {
          let o = 0;
          for (const p of parts) {
            joined.set(p, o);
            o += p.length;
          }
        }
        this.#writes++;
        for (let o = 0; o < joined.length;) {
          o += await link.conn.write(joined.subarray(o));
        }
        link.outBytes -= total;
      }
    } catch (e) {
      if (this.#link === link) this.#drop(`write failed: ${message(e)}`, true);
    } finally {
      link.flushing = false;
    }
  }

  async #attempt(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#state === "closed") return;
    this.#state = "connecting";
    let conn: Deno.TcpConn;
    try {
      conn = await withTimeout(
        Deno.connect({
          hostname: this.#target.hostname,
          port: this.#target.port,
        }),
        this.#o.connectTimeoutMs ?? 2000,
        (late) => late.close(),
      );
    } catch (e) {
      return this.#retry(`connect failed: ${message(e)}`);
    }
    if ((this.#state as RedisState) === "closed") {
      conn.close();
      return;
    }
    conn.setNoDelay(true);
    const link: Link = {
      conn,
      decoder: new RespDecoder(this.#o.limits),
      pending: [],
      out: [],
      outBytes: 0,
      flushing: false,
      ready: false,
    };
    this.#link = link;
    link.reading = this.#read(link);
    try {
      await this.#handshake(link);
    } catch (e) {
      if (this.#link === link) this.#drop(`handshake: ${message(e)}`, true);
      return;
    }
    if (this.#link !== link) return;
    link.ready = true;
    this.#state = "up";
    this.#connects++;
    this.#lastError = "";
    this.#backoff.reset();
    this.#startPing(link);
    this.#report("up", `${this.#target.hostname}:${this.#target.port}`);
  }

  async #handshake(link: Link): Promise<void> {
    const { username, password } = this.#target;
    if (this.#o.protocol === 3) {
      const hello: string[] = ["HELLO", "3"];
      if (password !== undefined) {
        hello.push("AUTH", username ?? "default", password);
      }
      await this.#expect(link, hello);
    } else if (password !== undefined) {
      await this.#expect(
        link,
        username ? ["AUTH", username, password] : ["AUTH", password],
      );
    }
    if (this.#o.clientName) {
      await this.#expect(link, ["CLIENT", "SETNAME", this.#o.clientName]);
    }
    const subs = [...this.#channels].map((c) =>
      this.#expect(link, ["SSUBSCRIBE", c])
    );
    await Promise.all(subs);
  }

  /** A handshake step: an error reply fails the connection attempt. */
  #expect(link: Link, args: string[]): Promise<RespValue> {
    return this.#send(link, args);
  }

  async #read(link: Link): Promise<void> {
    let why = "connection closed by server";
    try {
      // One buffer for every read: the decoder copies what it keeps.
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await link.conn.read(buf);
        if (n === null) break;
        for (const v of link.decoder.push(buf.subarray(0, n))) {
          this.#onReply(link, v);
        }
        if (this.#link !== link) return;
      }
    } catch (e) {
      why = `read failed: ${message(e)}`;
    }
    if (this.#link === link) this.#drop(why, true);
  }

  #onReply(link: Link, v: RespValue): void {
    if (v.type === "array" || v.type === "push") {
      const kind = v.items[0] ? replyText(v.items[0])?.toLowerCase() : "";
      if (kind !== undefined && PUSH_KINDS.has(kind)) {
        return this.#onPush(v.items);
      }
      if (kind === "sunsubscribe" && link.pending[0]?.name !== "SUNSUBSCRIBE") {
        // The server dropped a subscription by itself (Redis Cluster: slot
        // moved). Re-subscribe if still wanted; this is not a reply.
        const ch = v.items[1] ? replyText(v.items[1]) : undefined;
        if (ch !== undefined && this.#channels.has(ch)) {
          this.#send(link, ["SSUBSCRIBE", ch]).catch(() => {});
        }
        return;
      }
      if (v.type === "push" && !kind?.endsWith("subscribe")) {
        return; // other RESP3 pushes (e.g. invalidate): not ours
      }
    }
    const p = link.pending.shift();
    if (p === undefined) {
      this.#drop("reply without a command", true);
      return;
    }
    p.done(v.type === "error" ? new RedisReplyError(v.value) : v);
  }

  #onPush(items: RespValue[]): void {
    // ["smessage", channel, payload]; ["pmessage", pattern, channel, payload]
    const payload = items.at(-1);
    const channel = items.length >= 3 ? replyText(items.at(-2)!) : undefined;
    if (channel === undefined || payload?.type !== "bulk") return;
    try {
      this.#o.onMessage?.(channel, payload.value);
    } catch (e) {
      this.#lastError = `onMessage threw: ${message(e)}`;
    }
  }

  #startPing(link: Link): void {
    const every = this.#o.pingIntervalMs ?? 5000;
    if (every <= 0) return;
    this.#pingOutstanding = false;
    this.#pingTimer = setInterval(() => {
      if (this.#link !== link) return;
      if (this.#pingOutstanding) {
        this.#drop(`no PING reply within ${every} ms`, true);
        return;
      }
      this.#pingOutstanding = true;
      this.#send(link, ["PING"]).then(
        () => this.#pingOutstanding = false,
        () => {},
      );
    }, every);
  }

  /** Tears the link down, rejects what is in flight, and schedules a reconnect when `retry`. */
  #drop(why: string, retry: boolean): void {
    const link = this.#link;
    this.#link = undefined;
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
    const wasUp = this.#state === "up";
    if (link) {
      try {
        link.conn.close();
      } catch { /* already closed */ }
      const err = new RedisUnavailableError(`redis connection lost: ${why}`);
      for (const p of link.pending.splice(0)) p.done(err);
    }
    if (wasUp) this.#report("down", why);
    if (retry) this.#retry(why);
  }

  /** Tells onState about a change (once per change: not every failed retry). */
  #report(state: "up" | "down", why: string): void {
    if (this.#reported === state) return;
    this.#reported = state;
    this.#o.onState?.(state, why);
  }

  #retry(why: string): void {
    this.#lastError = why;
    if (this.#state === "closed") return;
    this.#report("down", why);
    this.#state = "down";
    this.#retryTimer = setTimeout(() => this.#attempt(), this.#backoff.next());
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Resolves like `p` unless `ms` pass first; a late value is handed to `onLate`. */
function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  onLate: (v: T) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const t = setTimeout(() => {
      done = true;
      reject(new Error(`timed out after ${ms} ms`));
    }, ms);
    p.then((v) => {
      if (done) return onLate(v);
      done = true;
      clearTimeout(t);
      resolve(v);
    }, (e) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      reject(e);
    });
  });
}
