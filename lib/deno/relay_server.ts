/**
 * The relay (Deno driver): TLS on a `Deno.listen` socket through `node:tls`
 * (lib/deno/tls_front.ts) with our own RFC 6455 framing
 * (lib/deno/relay_socket.ts over lib/ws_codec.ts), WebSocket endpoint `/ws`
 * and `/healthz`; `/metrics` on a separate loopback listener. It binds
 * self-certifying session IDs to connections and forwards opaque DATA
 * frames, stamping the sender's ID. Its only state is the table of live
 * connections (lib/deno/relay_registry.ts). PROTOCOL.md §1.
 *
 * Every stage before registration has a deadline (TLS handshake, request
 * head, registration), unregistered connections are limited per client IP,
 * running out of file descriptors sheds the oldest unregistered connection
 * and keeps serving, and a connection the relay closes frees its slot after
 * RELAY_CLOSE_GRACE_MS whether or not the client answers.
 * @module
 */

import { describeClose, isAbnormalClose } from "../close_code.ts";
import type { Bytes } from "../bytes.ts";
import { shortSessionId } from "../registration.ts";
import {
  CHALLENGE_LENGTH,
  DEFAULT_BURST,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_HIGH_WATER,
  DEFAULT_IDLE_TIMEOUT_S,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_FRAME,
  DEFAULT_MAX_UNAUTH_PER_IP,
  DEFAULT_RATE,
  DEFAULT_REGISTER_TIMEOUT_MS,
  DEFAULT_TLS_TIMEOUT_MS,
  FD_EXHAUSTED_BACKOFF_MS,
  RELAY_CLOSE_GRACE_MS,
  RELAY_SUBPROTOCOL,
  SOCKET_HEADROOM,
} from "../constants.ts";
import { CloseCode, encodeChallenge } from "../relay_frame.ts";
import {
  checkUpgrade,
  encodeResponse,
  logSafe,
  normaliseHost,
  parsePublicOrigin,
  type RequestHead,
} from "../http_head.ts";
import { wsAccept } from "../ws_codec.ts";
import { TokenBucket } from "../token_bucket.ts";
import { RelayMetrics } from "./relay_metrics.ts";
import { readRequestHead, tlsHandshake, writeAll } from "./relay_accept.ts";
import {
  type Delivery,
  Registry,
  type RemoteForwarder,
} from "./relay_registry.ts";
import {
  RelaySocket,
  type RelaySocketHandlers,
  SocketState,
} from "./relay_socket.ts";
import { type Conn, frameHandler } from "./relay_frames.ts";
import { type FrontConn, TlsFront } from "./tls_front.ts";

/** Relay configuration; every limit has a default in lib/constants.ts. */
export interface RelayOptions {
  /** Address to bind (default 127.0.0.1). */
  hostname?: string;
  /** Port to bind; 0 picks a free one (default 8765). */
  port?: number;
  /** Certificate chain PEM. */
  cert: string;
  /** Private key PEM. */
  key: string;
  /** Largest frame in bytes, header included. */
  maxFrame?: number;
  /** Maximum simultaneous WebSocket connections. */
  maxConnections?: number;
  /** Sustained frames/s per connection. */
  rate?: number;
  /** Token bucket burst per connection. */
  burst?: number;
  /** Per-recipient send buffer high-water mark in bytes. */
  highWater?: number;
  /** Idle timeout in seconds (0 disables pings). */
  idleTimeoutS?: number;
  /** Time an upgraded, unregistered connection may live, in ms. */
  registerTimeoutMs?: number;
  /** Deadline for the TLS handshake, in ms. */
  tlsTimeoutMs?: number;
  /** Deadline for the HTTP request head after the TLS handshake, in ms. */
  headerTimeoutMs?: number;
  /** Most unregistered connections per client IP. */
  maxUnauthPerIp?: number;
  /** Extra host names clients may use to reach the relay (Host header / origin). */
  names?: string[];
  /** Public origins (`wss://host[:port]`) of reverse proxies in front of the relay. */
  publicOrigins?: string[];
  /** Browser origins allowed to open WebSockets (a request without `Origin` is always allowed). */
  allowOrigins?: string[];
  /** Serve `/metrics` on 127.0.0.1 at this port (0 = any free port); unset = no metrics listener. */
  metricsPort?: number;
  /** Where frames for IDs not connected here go (a cluster bus); unset = `peer-offline`. */
  remote?: RemoteForwarder;
  /** Where event lines go (default: stderr with a timestamp). */
  log?: (line: string) => void;
  /** Suppress per-connection log lines. */
  quiet?: boolean;
}

/** A running relay. */
export interface RelayHandle {
  /** Bound port. */
  port: number;
  /** Bound address. */
  hostname: string;
  /** Port of the loopback metrics listener, if one runs. */
  metricsPort?: number;
  /** Counters behind /metrics. */
  metrics: RelayMetrics;
  /** Closes the local connection holding `idHex` with 4000 (it registered on another relay process). */
  displace(idHex: string, reason: string): void;
  /** Delivers a DATA frame (sender already stamped) to a locally connected `dst` (for a cluster bus). */
  deliver(dst: Bytes, frame: Bytes): Delivery;
  /** Closes every socket with 1001 and stops the server. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

/** Lifecycle of one accepted socket. */

function defaultLog(line: string): void {
  console.error(`${new Date().toISOString()} ${line}`);
}

function bracketHost(name: string): string {
  return name.includes(":") && !name.startsWith("[") ? `[${name}]` : name;
}

/** True once the socket was released (read through a call: stages change across awaits). */
function isGone(c: Conn): boolean {
  return c.stage === "gone";
}

/** The challenge of a registered connection (no longer needed). */
const NOTHING = new Uint8Array(0);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a relay and resolves once it listens. */
export async function startRelay(options: RelayOptions): Promise<RelayHandle> {
  const maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const rate = options.rate ?? DEFAULT_RATE;
  const burst = options.burst ?? DEFAULT_BURST;
  const highWater = options.highWater ?? DEFAULT_HIGH_WATER;
  const idleTimeoutS = options.idleTimeoutS ?? DEFAULT_IDLE_TIMEOUT_S;
  const registerTimeoutMs = options.registerTimeoutMs ??
    DEFAULT_REGISTER_TIMEOUT_MS;
  const tlsTimeoutMs = options.tlsTimeoutMs ?? DEFAULT_TLS_TIMEOUT_MS;
  const headerTimeoutMs = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const maxUnauthPerIp = options.maxUnauthPerIp ?? DEFAULT_MAX_UNAUTH_PER_IP;
  const publicOrigins = (options.publicOrigins ?? []).map(parsePublicOrigin);
  const allowOrigins = new Set(
    (options.allowOrigins ?? []).map((o) => o.toLowerCase()),
  );
  const remote = options.remote;
  const log = options.log ?? defaultLog;
  const connLog = options.quiet ? () => {} : log;
  const metrics = new RelayMetrics();
  /** Every accepted socket, in accept order (the oldest unregistered one is shed first). */
  const sockets = new Set<Conn>();
  /** Upgraded WebSockets, until dropped (a closing one keeps its slot for at most the grace period). */
  const conns = new Set<Conn>();
  const registry = new Registry<Conn>();
  const unauthByIp = new Map<string, number>();
  const allowedHosts = new Set<string>();
  let shuttingDown = false;

  /** Logs `line` at most once per 10 s per `key`, with how many were suppressed. */
  const throttled = new Map<string, { at: number; suppressed: number }>();
  function logThrottled(key: string, line: string): void {
    const now = performance.now();
    const t = throttled.get(key);
    if (t && now - t.at < 10_000) {
      t.suppressed++;
      return;
    }
    const extra = t?.suppressed
      ? ` (${t.suppressed} more since the last such line)`
      : "";
    throttled.set(key, { at: now, suppressed: 0 });
    log(line + extra);
  }

  function releaseUnauth(c: Conn): void {
    if (!c.unauth) return;
    c.unauth = false;
    const n = (unauthByIp.get(c.ip) ?? 1) - 1;
    if (n <= 0) unauthByIp.delete(c.ip);
    else unauthByIp.set(c.ip, n);
  }

  /** Forgets a socket that is gone (idempotent). */
  function release(c: Conn): void {
    if (isGone(c)) return;
    c.stage = "gone";
    clearTimeout(c.registerTimer);
    releaseUnauth(c);
    sockets.delete(c);
    conns.delete(c);
    // What was written still drains to the client; the socket goes within the grace period.
    c.front.end(RELAY_CLOSE_GRACE_MS);
  }

  const frames = frameHandler({
    maxFrame,
    highWater,
    metrics,
    registry,
    remote,
    hasPublicOrigins: publicOrigins.length > 0,
    log,
    connLog,
    onRegistered: (conn) => {
      releaseUnauth(conn);
      conn.stage = "registered";
      // What only registration needed goes (bytes per idle connection).
      clearTimeout(conn.registerTimer);
      conn.registerTimer = undefined;
      conn.challenge = NOTHING;
      conn.origins = [];
    },
  });
  const { onMessage, onTooLarge, closeConn } = frames;

  /**
   * One connection's socket handlers: methods on a shared prototype over
   * the connection, not three closures and an object per connection (bytes
   * per idle connection).
   */
  class ConnHandlers implements RelaySocketHandlers {
    readonly #c: Conn;
    constructor(c: Conn) {
      this.#c = c;
    }
    onMessage(data: Bytes, text: boolean, framed: boolean): void {
      onMessage(this.#c, data, text, framed);
    }
    onTooLarge(length: number, _opcode: number, prefix: Bytes): void {
      onTooLarge(this.#c, length, prefix);
    }
    onClosed(code: number, byRelay: boolean): void {
      const c = this.#c;
      const id = c.id;
      const wasBound = c.idKey !== undefined && registry.unbind(c.idKey, c);
      if (wasBound) remote?.unbound?.(c.idKey!);
      release(c);
      metrics.connectionClosed();
      if (wasBound) {
        // Who closed, and the code as sent (RFC 6455 names, lib/close_code.ts):
        // the same code the client reports.
        const how = byRelay
          ? ` by the relay: ${describeClose(code)}`
          : isAbnormalClose(code)
          ? `: connection dropped (${describeClose(code)})`
          : ` by the client: ${describeClose(code)}`;
        connLog(
          `closed ${shortSessionId(id!)}…${how} (${registry.size} online)`,
        );
      }
    }
  }

  // ── HTTP and upgrade ─────────────────────────────────────────────────────

  /** Writes a plain response, then drops the socket (after it drained, within the grace period). */
  function respond(
    c: Conn,
    status: number,
    body: string,
    headers: Record<string, string> = {},
  ): void {
    c.front.write(encodeResponse(status, headers, body));
    release(c);
  }

  /** Why a Host header is refused, with the flag that would accept it. */
  function hostHint(host: string): string {
    const name = host.replace(/:\d+$/, "");
    const known = [...allowedHosts].some((h) =>
      h.replace(/:\d+$/, "") === name
    );
    return known
      ? `a reverse proxy on another port? start the relay with --public-origin wss://${
        logSafe(host)
      }`
      : `start the relay with --public-origin wss://${
        logSafe(host)
      } (behind a reverse proxy) or --name ${
        logSafe(name)
      } (another name for this relay)`;
  }

  async function route(c: Conn, head: RequestHead): Promise<void> {
    const host = normaliseHost(head.headers.get("host") ?? "");
    if (!allowedHosts.has(host)) {
      metrics.dropped("bad-host");
      logThrottled(
        `host:${host}`,
        `refused Host '${logSafe(host)}' with 421 on ${
          logSafe(head.path, 40)
        }: ${hostHint(host)}`,
      );
      return respond(
        c,
        421,
        `unknown host '${
          logSafe(host)
        }': not a name of this relay (see the relay's log for the flag to add)\n`,
      );
    }
    if (head.path === "/healthz") {
      if (head.method !== "GET") return respond(c, 405, "GET only\n");
      return respond(
        c,
        shuttingDown ? 503 : 200,
        JSON.stringify({
          status: shuttingDown ? "stopping" : remote?.status?.() ?? "ok",
          protocol: RELAY_SUBPROTOCOL,
          connections: conns.size,
          registered: registry.size,
          uptimeSeconds: Math.round(metrics.uptimeSeconds()),
          ...remote?.health?.(),
        }),
        { "Content-Type": "application/json" },
      );
    }
    if (head.path !== "/ws") return respond(c, 404, "not found\n");
    const up = checkUpgrade(head);
    if (!up.ok) {
      return respond(
        c,
        up.status,
        `${up.reason} (subprotocol ${RELAY_SUBPROTOCOL})\n`,
        up.status === 426
          ? { "Sec-WebSocket-Version": "13", Upgrade: "websocket" }
          : {},
      );
    }
    const origin = head.headers.get("origin");
    if (origin !== undefined && !allowOrigins.has(origin.toLowerCase())) {
      metrics.dropped("bad-origin");
      logThrottled(
        `origin:${origin}`,
        `refused Origin '${
          logSafe(origin)
        }' with 403: a web page on that origin may not use this relay (allow it with --allow-origin ${
          logSafe(origin)
        })`,
      );
      return respond(c, 403, "origin not allowed\n");
    }
    if (shuttingDown) return respond(c, 503, "relay shutting down\n");
    if (conns.size >= maxConnections) {
      metrics.dropped("capacity");
      logThrottled(
        "capacity",
        `refused a WebSocket with 503: ${maxConnections} connections (--max-connections)`,
      );
      return respond(c, 503, "relay at connection capacity\n");
    }
    const offered = up.protocols.includes(RELAY_SUBPROTOCOL);
    const accept = await wsAccept(up.key);
    const headers: Record<string, string> = {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Accept": accept,
    };
    if (offered) headers["Sec-WebSocket-Protocol"] = RELAY_SUBPROTOCOL;
    const wrote = await writeAll(
      c.front,
      encodeResponse(101, headers),
      () => release(c),
      headerTimeoutMs,
    );
    if (!wrote.ok || isGone(c)) return release(c);
    c.stage = "ws";
    // The signed origin is the Host value as received (PROTOCOL.md §1.3), or a public origin.
    const rawHost = (head.headers.get("host") ?? "").trim();
    c.origins = [
      ...new Set([`wss://${rawHost}`, ...publicOrigins.map((p) => p.origin)]),
    ];
    c.bucket = new TokenBucket(rate, burst, performance.now());
    c.abuseWindowStart = performance.now();
    const ws = new RelaySocket(
      c.front,
      maxFrame,
      RELAY_CLOSE_GRACE_MS,
      new ConnHandlers(c),
    );
    c.ws = ws;
    conns.add(c);
    metrics.connectionOpened();
    if (!offered) {
      metrics.dropped("no-subprotocol");
      ws.start(new Uint8Array(0));
      ws.close(
        CloseCode.SUBPROTOCOL_REQUIRED,
        `subprotocol ${RELAY_SUBPROTOCOL} required`,
      );
      return;
    }
    ws.send(encodeChallenge(c.challenge, maxFrame));
    c.registerTimer = setTimeout(() => {
      c.registerTimer = undefined;
      if (c.id === undefined) {
        closeConn(c, CloseCode.REGISTER_TIMEOUT, "registration timeout");
      }
    }, registerTimeoutMs);
    ws.start(head.rest);
  }

  /** One accepted socket: TLS handshake, request head, then route (each stage with its deadline). */
  async function serve(front: FrontConn): Promise<void> {
    const ip = front.remoteAddr.hostname;
    const refuse = () => front.destroy();
    if (sockets.size >= maxConnections + SOCKET_HEADROOM || shuttingDown) {
      metrics.dropped("capacity");
      return refuse();
    }
    const pending = unauthByIp.get(ip) ?? 0;
    if (pending >= maxUnauthPerIp) {
      metrics.dropped("per-ip");
      logThrottled(
        `ip:${ip}`,
        `refused a connection from ${ip}: ${maxUnauthPerIp} unregistered connections from that address (--max-unauth-per-ip)`,
      );
      return refuse();
    }
    unauthByIp.set(ip, pending + 1);
    const c: Conn = {
      front,
      ip,
      stage: "tls",
      unauth: true,
      challenge: crypto.getRandomValues(new Uint8Array(CHALLENGE_LENGTH)),
      origins: [],
      registering: false,
      abuseCount: 0,
      abuseWindowStart: 0,
    };
    sockets.add(c);
    const hs = await tlsHandshake(front, () => release(c), tlsTimeoutMs);
    if (!hs.ok) {
      if (hs.why === "timeout") metrics.dropped("tls-timeout");
      return release(c);
    }
    if (isGone(c)) return;
    c.stage = "http";
    const r = await readRequestHead(front, () => release(c), headerTimeoutMs);
    if (!r.ok) {
      if (r.why === "timeout") metrics.dropped("header-timeout");
      return release(c);
    }
    if (isGone(c)) return;
    if (r.value.kind === "bad") {
      metrics.dropped("bad-request");
      return respond(c, r.value.status, `${r.value.reason}\n`);
    }
    await route(c, r.value.head);
  }

  /** Out of file descriptors: drop the oldest unregistered socket so the relay can breathe. */
  function shed(): void {
    for (const c of sockets) {
      if (c.stage !== "registered") {
        metrics.dropped("shed");
        if (c.ws) c.ws.abort();
        else {
          c.front.destroy(); // now, not after the close grace: descriptors are short
          release(c);
        }
        return;
      }
    }
  }

  function fdExhausted(code: string): void {
    metrics.dropped("fd-exhausted");
    logThrottled(
      "emfile",
      `out of file descriptors (${code}): shedding the oldest unregistered connection; raise the limit (ulimit -n, systemd LimitNOFILE=) or lower --max-connections`,
    );
    shed();
  }

  const listenOptions = {
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8765,
    cert: options.cert,
    key: options.key,
  };
  const listener = TlsFront.listen(listenOptions);
  const addr = listener.addr as Deno.NetAddr;

  async function acceptLoop(): Promise<void> {
    for (;;) {
      let conn: FrontConn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (shuttingDown || e instanceof Deno.errors.BadResource) return;
        const code = (e as { code?: string }).code;
        if (code === "EMFILE" || code === "ENFILE") {
          fdExhausted(code);
          await sleep(FD_EXHAUSTED_BACKOFF_MS);
        } else {
          logThrottled("accept", `accept error: ${(e as Error).message}`);
          await sleep(FD_EXHAUSTED_BACKOFF_MS);
        }
        continue;
      }
      serve(conn).catch((e) => {
        log(`connection error: ${e instanceof Error ? e.message : String(e)}`);
      });
    }
  }
  const accepting = acceptLoop();

  // Idle detection: one sweep for all connections every idle/2 s.
  const sweep = idleTimeoutS > 0
    ? setInterval(() => {
      for (const c of conns) {
        const ws = c.ws!;
        if (ws.readyState !== SocketState.OPEN) continue;
        if (ws.seen) {
          ws.seen = false;
        } else if (!ws.pinged) {
          ws.pinged = true;
          ws.ping();
        } else {
          closeConn(c, CloseCode.GOING_AWAY, "idle timeout");
        }
      }
    }, (idleTimeoutS * 1000) / 2)
    : undefined;

  let metricsServer: Deno.HttpServer | undefined;
  let metricsPort: number | undefined;
  if (options.metricsPort !== undefined) {
    const { promise, resolve } = Promise.withResolvers<number>();
    metricsServer = Deno.serve(
      {
        hostname: "127.0.0.1",
        port: options.metricsPort,
        onListen: (a) => resolve(a.port),
      },
      (req) =>
        new URL(req.url).pathname === "/metrics"
          ? new Response(
            metrics.render(conns.size, registry.size) +
              (remote?.metricsText?.() ?? ""),
            {
              headers: { "content-type": "text/plain; version=0.0.4" },
            },
          )
          : new Response("not found\n", { status: 404 }),
    );
    metricsPort = await promise;
  }

  const names = [
    "localhost",
    "127.0.0.1",
    "::1",
    addr.hostname,
    ...(options.names ?? []),
  ];
  for (const n of names) {
    const h = bracketHost(n.toLowerCase());
    allowedHosts.add(`${h}:${addr.port}`);
    if (addr.port === 443) allowedHosts.add(h);
  }
  for (const p of publicOrigins) allowedHosts.add(p.authority);

  const { promise: finished, resolve: onFinished } = Promise.withResolvers<
    void
  >();
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      shuttingDown = true;
      listener.close();
      clearInterval(sweep);
      for (const c of conns) {
        closeConn(c, CloseCode.GOING_AWAY, "relay shutting down");
      }
      for (const c of sockets) if (c.ws === undefined) release(c);
      const deadline = performance.now() + RELAY_CLOSE_GRACE_MS + 500;
      while (sockets.size > 0 && performance.now() < deadline) await sleep(20);
      for (const c of sockets) c.ws ? c.ws.abort() : release(c);
      await accepting;
      await metricsServer?.shutdown();
      await remote?.close?.();
      onFinished();
    })();
    return stopping;
  };

  return {
    port: addr.port,
    hostname: addr.hostname,
    metricsPort,
    metrics,
    deliver: frames.deliver,
    displace(idHex: string, reason: string) {
      const c = registry.get(idHex);
      if (c === undefined || !registry.unbind(idHex, c)) return;
      c.idKey = undefined; // its close must not unbind or unsubscribe again
      frames.closeConn(c, CloseCode.REPLACED, reason);
    },
    shutdown,
    finished,
  };
}
