/**
 * The relay (Deno driver): `Deno.serve` over TLS, WebSocket endpoint `/ws`,
 * `/healthz` and `/metrics`. It binds self-certifying session IDs to
 * connections and forwards opaque DATA frames, stamping the sender's ID.
 * Its only state is the table of live connections. PROTOCOL.md §1.
 * @module
 */

import type { Bytes } from "../bytes.ts";
import { shortSessionId, verifyRegistration } from "../registration.ts";
import {
  ABUSE_LIMIT,
  ABUSE_WINDOW_MS,
  CHALLENGE_LENGTH,
  DATA_HEADER_LENGTH,
  DEFAULT_BURST,
  DEFAULT_HIGH_WATER,
  DEFAULT_IDLE_TIMEOUT_S,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_FRAME,
  DEFAULT_RATE,
  DEFAULT_REGISTER_TIMEOUT_MS,
  RELAY_SUBPROTOCOL,
  RELAY_VERSION,
  SESSION_ID_LENGTH,
} from "../constants.ts";
import {
  CloseCode,
  encodeChallenge,
  encodeError,
  encodeRegistered,
  FrameType,
  REGISTER_FRAME_LENGTH,
  type RelayErrorName,
} from "../relay_frame.ts";
import { TokenBucket } from "../token_bucket.ts";
import { RelayMetrics } from "./relay_metrics.ts";

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
  /** Time an unregistered connection may live, in ms. */
  registerTimeoutMs?: number;
  /** Extra host names clients may use to reach the relay (Host header / origin). */
  names?: string[];
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
  /** Counters behind /metrics. */
  metrics: RelayMetrics;
  /** Closes every socket with 1001 and stops the server. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

interface Conn {
  ws: WebSocket;
  challenge: Bytes;
  origin: string;
  bucket: TokenBucket;
  id?: Uint8Array;
  idKey?: string;
  registering: boolean;
  registerTimer?: ReturnType<typeof setTimeout>;
  abuseCount: number;
  abuseWindowStart: number;
  /** The last recipient this connection sent to: skips the table lookup for a steady peer. */
  lastTarget?: Conn;
}

function defaultLog(line: string): void {
  console.error(`${new Date().toISOString()} ${line}`);
}

function bracketHost(name: string): string {
  return name.includes(":") && !name.startsWith("[") ? `[${name}]` : name;
}

/** Starts a relay and resolves once it listens. */
export async function startRelay(options: RelayOptions): Promise<RelayHandle> {
  const maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const rate = options.rate ?? DEFAULT_RATE;
  const burst = options.burst ?? DEFAULT_BURST;
  const highWater = options.highWater ?? DEFAULT_HIGH_WATER;
  const idleTimeout = options.idleTimeoutS ?? DEFAULT_IDLE_TIMEOUT_S;
  const registerTimeoutMs = options.registerTimeoutMs ??
    DEFAULT_REGISTER_TIMEOUT_MS;
  const log = options.log ?? defaultLog;
  const connLog = options.quiet ? () => {} : log;
  const metrics = new RelayMetrics();
  const conns = new Set<Conn>();
  const byId = new Map<string, Conn>();
  const allowedHosts = new Set<string>();
  let shuttingDown = false;

  /** Counts one protocol error against `conn`; closes it with 1008 past the limit. */
  function abuse(conn: Conn, now: number): void {
    if (now - conn.abuseWindowStart > ABUSE_WINDOW_MS) {
      conn.abuseWindowStart = now;
      conn.abuseCount = 0;
    }
    if (++conn.abuseCount > ABUSE_LIMIT) {
      closeConn(conn, CloseCode.POLICY, "too many protocol errors");
    }
  }

  /** Refuses a frame: counts it, answers with an ERROR frame unless the sender is itself backed up. */
  function refuse(
    conn: Conn,
    code: RelayErrorName,
    peer: Uint8Array | undefined,
    frameNo: number,
    reason: string,
    countsAsAbuse: boolean,
    now: number,
  ): void {
    metrics.dropped(code);
    if (
      conn.ws.readyState === WebSocket.OPEN &&
      conn.ws.bufferedAmount <= highWater
    ) {
      metrics.error(code);
      conn.ws.send(encodeError(code, peer, frameNo, reason));
    }
    if (countsAsAbuse) abuse(conn, now);
  }

  function closeConn(conn: Conn, code: number, reason: string): void {
    if (
      conn.ws.readyState === WebSocket.OPEN ||
      conn.ws.readyState === WebSocket.CONNECTING
    ) {
      try {
        conn.ws.close(code, reason);
      } catch {
        // already closing: nothing to do
      }
    }
    metrics.closed(code);
  }

  /** Frame number of a DATA frame (read only when refusing it). */
  function frameNoOf(bytes: Bytes): number {
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      .getUint32(2 + SESSION_ID_LENGTH);
  }

  /** True when `target` holds the ID in bytes 2..18 of `bytes` (the cached recipient). */
  function isRecipient(target: Conn, bytes: Bytes): boolean {
    const id = target.id!;
    for (let i = 0; i < SESSION_ID_LENGTH; i++) {
      if (id[i] !== bytes[2 + i]) return false;
    }
    return true;
  }

  function onData(conn: Conn, bytes: Bytes, now: number): void {
    if (conn.id === undefined) {
      return refuse(
        conn,
        "not-registered",
        undefined,
        0,
        "register first",
        true,
        now,
      );
    }
    if (bytes.length < DATA_HEADER_LENGTH) {
      return refuse(
        conn,
        "malformed",
        undefined,
        0,
        "DATA header is 22 bytes",
        true,
        now,
      );
    }
    // Hot path: most frames go to the same peer as the previous one. A cached
    // target that closed or was replaced is never OPEN in the table's place,
    // so it falls back to the lookup.
    let target = conn.lastTarget;
    if (
      target === undefined || target.ws.readyState !== WebSocket.OPEN ||
      target.idKey === undefined || !isRecipient(target, bytes)
    ) {
      const peer = bytes.subarray(2, 2 + SESSION_ID_LENGTH);
      target = byId.get(peer.toHex());
      if (target === undefined || target.ws.readyState !== WebSocket.OPEN) {
        conn.lastTarget = undefined;
        return refuse(
          conn,
          "peer-offline",
          peer,
          frameNoOf(bytes),
          "recipient not connected",
          false,
          now,
        );
      }
      conn.lastTarget = target;
    }
    if (target.ws.bufferedAmount > highWater) {
      return refuse(
        conn,
        "peer-busy",
        bytes.subarray(2, 2 + SESSION_ID_LENGTH),
        frameNoOf(bytes),
        "recipient send buffer full",
        false,
        now,
      );
    }
    bytes.set(conn.id, 2); // stamp the sender: a client cannot spoof it
    target.ws.send(bytes);
    metrics.forwarded(bytes.length);
  }

  async function onRegister(
    conn: Conn,
    bytes: Uint8Array,
    now: number,
  ): Promise<void> {
    if (conn.id !== undefined || conn.registering) {
      return refuse(
        conn,
        "already-registered",
        undefined,
        0,
        "already registered",
        true,
        now,
      );
    }
    if (bytes.length !== REGISTER_FRAME_LENGTH) {
      return refuse(
        conn,
        "malformed",
        undefined,
        0,
        "REGISTER must be 98 bytes",
        true,
        now,
      );
    }
    conn.registering = true;
    const publicKey = bytes.slice(2, 34);
    const signature = bytes.slice(34);
    const id = await verifyRegistration(
      publicKey,
      signature,
      conn.origin,
      conn.challenge,
    );
    conn.registering = false;
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    if (id === null) {
      metrics.registrationFailed();
      refuse(
        conn,
        "bad-registration",
        undefined,
        0,
        "signature does not verify",
        true,
        now,
      );
      closeConn(conn, CloseCode.REGISTER_FAILED, "registration failed");
      return;
    }
    clearTimeout(conn.registerTimer);
    conn.id = id;
    conn.idKey = id.toHex();
    const previous = byId.get(conn.idKey);
    byId.set(conn.idKey, conn);
    if (previous !== undefined && previous !== conn) {
      previous.idKey = undefined; // its close must not unbind the new connection
      closeConn(
        previous,
        CloseCode.REPLACED,
        "session ID registered on a newer connection",
      );
      connLog(`replaced ${shortSessionId(id)}…`);
    }
    metrics.registered();
    conn.ws.send(encodeRegistered(id));
    connLog(`registered ${shortSessionId(id)}… (${byId.size} online)`);
  }

  function onMessage(conn: Conn, ev: MessageEvent): void {
    const now = performance.now();
    if (typeof ev.data === "string") {
      return refuse(
        conn,
        "text-frame",
        undefined,
        0,
        "binary frames only",
        true,
        now,
      );
    }
    const bytes = new Uint8Array(ev.data as ArrayBuffer);
    if (bytes.length > maxFrame) {
      metrics.dropped("too-large");
      refuse(
        conn,
        "too-large",
        undefined,
        0,
        `frame above ${maxFrame} bytes`,
        false,
        now,
      );
      closeConn(conn, CloseCode.TOO_BIG, `frame above ${maxFrame} bytes`);
      return;
    }
    if (!conn.bucket.take(now)) {
      const peer = bytes.length >= DATA_HEADER_LENGTH
        ? bytes.subarray(2, 18)
        : undefined;
      const no = bytes.length >= DATA_HEADER_LENGTH
        ? new DataView(bytes.buffer).getUint32(2 + SESSION_ID_LENGTH)
        : 0;
      return refuse(conn, "rate-limited", peer, no, "slow down", true, now);
    }
    if (bytes.length < 2) {
      return refuse(conn, "malformed", undefined, 0, "too short", true, now);
    }
    if (bytes[0] !== RELAY_VERSION) {
      return refuse(
        conn,
        "unsupported-version",
        undefined,
        0,
        `version ${bytes[0]}`,
        true,
        now,
      );
    }
    switch (bytes[1]) {
      case FrameType.DATA:
        return onData(conn, bytes, now);
      case FrameType.REGISTER:
        onRegister(conn, bytes, now).catch((e) =>
          log(`registration error: ${e}`)
        );
        return;
      default:
        return refuse(
          conn,
          "unknown-type",
          undefined,
          0,
          `type 0x${bytes[1].toString(16)}`,
          true,
          now,
        );
    }
  }

  function accept(req: Request): Response {
    const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",")
      .map((s) => s.trim());
    if (!offered.includes(RELAY_SUBPROTOCOL)) {
      // Upgrade anyway so the client receives a close reason instead of a silent failure.
      const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout });
      socket.onopen = () =>
        socket.close(
          CloseCode.SUBPROTOCOL_REQUIRED,
          `subprotocol ${RELAY_SUBPROTOCOL} required`,
        );
      metrics.dropped("no-subprotocol");
      return response;
    }
    // Read everything needed from the request first: it is closed once upgraded.
    const host = req.headers.get("host") ?? "";
    const { socket, response } = Deno.upgradeWebSocket(req, {
      protocol: RELAY_SUBPROTOCOL,
      idleTimeout,
    });
    socket.binaryType = "arraybuffer";
    const conn: Conn = {
      ws: socket,
      challenge: crypto.getRandomValues(new Uint8Array(CHALLENGE_LENGTH)),
      origin: `wss://${host}`,
      bucket: new TokenBucket(rate, burst, performance.now()),
      registering: false,
      abuseCount: 0,
      abuseWindowStart: performance.now(),
    };
    conns.add(conn);
    metrics.connectionOpened();
    socket.onopen = () => {
      socket.send(encodeChallenge(conn.challenge, maxFrame));
      conn.registerTimer = setTimeout(() => {
        if (conn.id === undefined) {
          closeConn(conn, CloseCode.REGISTER_TIMEOUT, "registration timeout");
        }
      }, registerTimeoutMs);
    };
    socket.onmessage = (ev) => onMessage(conn, ev);
    socket.onerror = () => metrics.socketError();
    socket.onclose = (ev) => {
      clearTimeout(conn.registerTimer);
      conns.delete(conn);
      metrics.connectionClosed();
      if (conn.idKey !== undefined && byId.get(conn.idKey) === conn) {
        byId.delete(conn.idKey);
        connLog(
          `closed ${
            shortSessionId(conn.id!)
          }… code ${ev.code} (${byId.size} online)`,
        );
      }
    };
    return response;
  }

  function handler(req: Request): Response {
    const url = new URL(req.url);
    switch (url.pathname) {
      case "/healthz":
        return Response.json({
          status: shuttingDown ? "stopping" : "ok",
          protocol: RELAY_SUBPROTOCOL,
          connections: conns.size,
          registered: byId.size,
          uptimeSeconds: Math.round(metrics.uptimeSeconds()),
        }, { status: shuttingDown ? 503 : 200 });
      case "/metrics":
        return new Response(metrics.render(conns.size, byId.size), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      case "/ws": {
        if ((req.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
          return new Response(
            `WebSocket upgrade required (subprotocol ${RELAY_SUBPROTOCOL})\n`,
            {
              status: 426,
            },
          );
        }
        if (!allowedHosts.has((req.headers.get("host") ?? "").toLowerCase())) {
          metrics.dropped("bad-host");
          return new Response(
            "unknown host: start the relay with --name for this host name\n",
            { status: 421 },
          );
        }
        if (shuttingDown) {
          return new Response("relay shutting down\n", { status: 503 });
        }
        if (conns.size >= maxConnections) {
          metrics.dropped("capacity");
          return new Response("relay at connection capacity\n", {
            status: 503,
          });
        }
        return accept(req);
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  }

  const { promise: listening, resolve: onListen } = Promise.withResolvers<
    Deno.NetAddr
  >();
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8765,
    cert: options.cert,
    key: options.key,
    onListen: (addr) => onListen(addr as Deno.NetAddr),
    onError: (e) => {
      log(`request error: ${e instanceof Error ? e.message : String(e)}`);
      return new Response("internal error\n", { status: 500 });
    },
  }, handler);
  const addr = await listening;
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

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      shuttingDown = true;
      for (const conn of conns) {
        closeConn(conn, CloseCode.GOING_AWAY, "relay shutting down");
      }
      const grace = new Promise<void>((r) => setTimeout(r, 1000));
      await Promise.race([server.shutdown(), grace]);
      // Any socket still open after the grace period is dropped by the runtime on exit.
      for (const conn of conns) clearTimeout(conn.registerTimer);
    })();
    return stopping;
  };

  return {
    port: addr.port,
    hostname: addr.hostname,
    metrics,
    shutdown,
    finished: server.finished,
  };
}
