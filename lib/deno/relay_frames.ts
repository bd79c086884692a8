/**
 * What the relay does with the frames of a registered or registering
 * WebSocket (PROTOCOL.md §1.2–§1.5): registration, forwarding with the
 * sender's ID stamped (to a local connection or the remote hook), ERROR
 * frames carrying the refused frame's IDs, abuse counting and the closes
 * that follow. The socket stages before this (TLS, HTTP, upgrade) are in
 * lib/deno/relay_server.ts.
 * @module
 */

import type { Bytes } from "../bytes.ts";
import { shortSessionId, verifyRegistration } from "../registration.ts";
import {
  ABUSE_LIMIT,
  ABUSE_WINDOW_MS,
  DATA_HEADER_LENGTH,
  RELAY_VERSION,
  SESSION_ID_LENGTH,
} from "../constants.ts";
import {
  CloseCode,
  encodeError,
  encodeRegistered,
  FrameType,
  REGISTER_FRAME_LENGTH,
  type RelayErrorName,
} from "../relay_frame.ts";
import type { TokenBucket } from "../token_bucket.ts";
import type { RelayMetrics } from "./relay_metrics.ts";
import type { Delivery, Registry, RemoteForwarder } from "./relay_registry.ts";
import { type RelaySocket, SocketState } from "./relay_socket.ts";
import type { FrontConn } from "./tls_front.ts";

/** Lifecycle of one accepted socket. */
export type Stage = "tls" | "http" | "ws" | "registered" | "gone";

/** One accepted socket and, once upgraded, its WebSocket and registration. */
export interface Conn {
  /** The client's TLS socket (lib/deno/tls_front.ts). */
  front: FrontConn;
  /** Client IP address (of the public socket). */
  ip: string;
  /** Where the socket is in its life. */
  stage: Stage;
  /** Counted against the per-IP limit of unregistered connections. */
  unauth: boolean;
  /** The WebSocket, once upgraded. */
  ws?: RelaySocket;
  /** The CHALLENGE bytes sent on this connection. */
  challenge: Bytes;
  /** Origins a registration may be signed for: `wss://` + Host, then the public origins. */
  origins: string[];
  /** Per-connection rate limit (token bucket). */
  bucket?: TokenBucket;
  /** Registered session ID. */
  id?: Bytes;
  /** `id` in hex while this connection holds it in the registry. */
  idKey?: string;
  /** A REGISTER is being verified. */
  registering: boolean;
  /** Fires the 4001 close. */
  registerTimer?: ReturnType<typeof setTimeout>;
  /** Abuse errors in the current window. */
  abuseCount: number;
  /** Start of the abuse window (ms, performance.now()). */
  abuseWindowStart: number;
  /** The last recipient this connection sent to: skips the table lookup for a steady peer. */
  lastTarget?: Conn;
}

const ZERO_ID = new Uint8Array(SESSION_ID_LENGTH);

/** What the frame handler needs from the relay. */
export interface FrameContext {
  /** Largest frame (bytes). */
  maxFrame: number;
  /** Send-buffer high-water mark (bytes). */
  highWater: number;
  /** Counters. */
  metrics: RelayMetrics;
  /** Session ID → connection. */
  registry: Registry<Conn>;
  /** Where frames for IDs not connected here go. */
  remote?: RemoteForwarder;
  /** True when --public-origin is configured (the refusal hint is then not needed). */
  hasPublicOrigins: boolean;
  /** Event lines. */
  log: (line: string) => void;
  /** Per-connection event lines (silent with --quiet). */
  connLog: (line: string) => void;
  /** A registration succeeded: the connection is no longer unauthenticated. */
  onRegistered: (conn: Conn) => void;
}

/** The frame handler of one relay. */
export interface FrameHandler {
  /**
   * A complete WebSocket message from `conn`; `framed` as in
   * {@link RelaySocket.send} (it is sent on without a copy).
   */
  onMessage(conn: Conn, bytes: Bytes, text: boolean, framed?: boolean): void;
  /** A frame header above maxFrame (refused at the header). */
  onTooLarge(conn: Conn, length: number, prefix: Bytes): void;
  /** Closes `conn`'s WebSocket with `code` (counted once). */
  closeConn(conn: Conn, code: number, reason: string): void;
  /** Delivers a stamped DATA frame to the local connection holding `dst`. */
  deliver(dst: Bytes, frame: Bytes): Delivery;
}

/** Builds the frame handler over `ctx`. */
export function frameHandler(ctx: FrameContext): FrameHandler {
  const { maxFrame, highWater, metrics, registry, remote, log, connLog } = ctx;

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

  /**
   * Refuses a frame: counts it once, answers with an ERROR frame unless the
   * sender is itself backed up. `about` is the refused frame when it is a
   * DATA frame with a complete header: its peerId and frameNo go back.
   */
  function refuse(
    conn: Conn,
    code: RelayErrorName,
    about: Bytes | undefined,
    reason: string,
    countsAsAbuse: boolean,
    now: number,
  ): void {
    metrics.dropped(code);
    const ws = conn.ws!;
    if (ws.readyState === SocketState.OPEN && ws.bufferedAmount <= highWater) {
      metrics.error(code);
      const isData = about !== undefined &&
        about.length >= DATA_HEADER_LENGTH &&
        about[1] === FrameType.DATA;
      ws.send(
        isData
          ? encodeError(
            code,
            about.subarray(2, 2 + SESSION_ID_LENGTH),
            frameNoOf(about),
            reason,
          )
          : encodeError(code, ZERO_ID, 0, reason),
      );
    }
    if (countsAsAbuse) abuse(conn, now);
  }

  function closeConn(conn: Conn, code: number, reason: string): void {
    if (conn.ws?.readyState === SocketState.OPEN) {
      conn.ws.close(code, reason);
      metrics.closed(code);
    }
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

  /** Sends a stamped DATA frame to a local connection. */
  function deliverTo(target: Conn, frame: Bytes, framed: boolean): Delivery {
    const ws = target.ws!;
    if (ws.bufferedAmount > highWater) return "busy";
    ws.send(frame, framed);
    metrics.forwarded(frame.length);
    return "sent";
  }

  /**
   * Forwards `bytes` (a DATA frame from `conn`) to the recipient in its
   * header: the local connection holding it, else the remote hook.
   */
  function forward(conn: Conn, bytes: Bytes, framed: boolean): Delivery {
    // Hot path: most frames go to the same peer as the previous one. A cached
    // target that closed or was replaced is not OPEN or has lost its idKey.
    let target = conn.lastTarget;
    if (
      target === undefined || target.ws!.readyState !== SocketState.OPEN ||
      target.idKey === undefined || !isRecipient(target, bytes)
    ) {
      target = registry.get(bytes.subarray(2, 2 + SESSION_ID_LENGTH).toHex());
      if (target !== undefined && target.ws!.readyState !== SocketState.OPEN) {
        target = undefined;
      }
      conn.lastTarget = target;
    }
    if (target === undefined) {
      if (remote === undefined) return "offline";
      const dst = bytes.slice(2, 2 + SESSION_ID_LENGTH);
      // A copy: the remote side may keep the frame (a view would keep its
      // whole read chunk alive).
      const frame = bytes.slice();
      frame.set(conn.id!, 2);
      return remote.forward(dst, frame); // `bytes` still names the recipient for an ERROR
    }
    if (target.ws!.bufferedAmount > highWater) return "busy";
    bytes.set(conn.id!, 2); // stamp the sender: a client cannot spoof it
    return deliverTo(target, bytes, framed);
  }

  function onData(
    conn: Conn,
    bytes: Bytes,
    now: number,
    framed: boolean,
  ): void {
    if (conn.id === undefined) {
      return refuse(conn, "not-registered", bytes, "register first", true, now);
    }
    if (bytes.length < DATA_HEADER_LENGTH) {
      return refuse(
        conn,
        "malformed",
        undefined,
        "DATA header is 22 bytes",
        true,
        now,
      );
    }
    const r = forward(conn, bytes, framed);
    if (r === "sent") return;
    if (r === "offline") {
      refuse(
        conn,
        "peer-offline",
        bytes,
        "recipient not connected",
        false,
        now,
      );
    } else {
      refuse(
        conn,
        "peer-busy",
        bytes,
        "recipient send buffer full",
        false,
        now,
      );
    }
  }

  async function onRegister(
    conn: Conn,
    bytes: Bytes,
    now: number,
  ): Promise<void> {
    if (conn.id !== undefined || conn.registering) {
      return refuse(
        conn,
        "already-registered",
        undefined,
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
        "REGISTER must be 98 bytes",
        true,
        now,
      );
    }
    conn.registering = true;
    const publicKey = bytes.slice(2, 34);
    const signature = bytes.slice(34);
    let id: Bytes | null = null;
    for (const origin of conn.origins) {
      id = await verifyRegistration(
        publicKey,
        signature,
        origin,
        conn.challenge,
      );
      if (id !== null) break;
    }
    conn.registering = false;
    if (conn.ws!.readyState !== SocketState.OPEN) return;
    if (id === null) {
      metrics.registrationFailed();
      connLog(
        `registration refused: signature does not verify for ${
          conn.origins.join(" or ")
        }` +
          (!ctx.hasPublicOrigins
            ? " (clients behind a reverse proxy sign its public origin: start the relay with --public-origin wss://PUBLIC-HOST[:PORT])"
            : ""),
      );
      refuse(
        conn,
        "bad-registration",
        undefined,
        "signature does not verify",
        true,
        now,
      );
      closeConn(conn, CloseCode.REGISTER_FAILED, "registration failed");
      return;
    }
    clearTimeout(conn.registerTimer);
    ctx.onRegistered(conn);
    conn.id = id;
    conn.idKey = id.toHex();
    const previous = registry.bind(conn.idKey, conn);
    if (previous !== undefined) {
      previous.idKey = undefined; // its close must not unbind the new connection
      closeConn(
        previous,
        CloseCode.REPLACED,
        "session ID registered on a newer connection",
      );
      connLog(`replaced ${shortSessionId(id)}…`);
    }
    metrics.registered();
    remote?.bound?.(id, conn.idKey);
    conn.ws!.send(encodeRegistered(id));
    connLog(`registered ${shortSessionId(id)}… (${registry.size} online)`);
  }

  function onMessage(
    conn: Conn,
    bytes: Bytes,
    text: boolean,
    framed = false,
  ): void {
    const now = performance.now();
    if (text) {
      return refuse(
        conn,
        "text-frame",
        undefined,
        "binary frames only",
        true,
        now,
      );
    }
    if (!conn.bucket!.take(now)) {
      return refuse(conn, "rate-limited", bytes, "slow down", true, now);
    }
    if (bytes.length < 2) {
      return refuse(conn, "malformed", undefined, "too short", true, now);
    }
    if (bytes[0] !== RELAY_VERSION) {
      return refuse(
        conn,
        "unsupported-version",
        undefined,
        `version ${bytes[0]}`,
        true,
        now,
      );
    }
    switch (bytes[1]) {
      case FrameType.DATA:
        return onData(conn, bytes, now, framed);
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
          `type 0x${bytes[1].toString(16)}`,
          true,
          now,
        );
    }
  }

  /** A frame above --max-frame, refused at its header: ERROR too-large, then close 1009. */
  function onTooLarge(conn: Conn, length: number, prefix: Bytes): void {
    refuse(
      conn,
      "too-large",
      prefix,
      `frame above ${maxFrame} bytes`,
      false,
      performance.now(),
    );
    closeConn(conn, CloseCode.TOO_BIG, `frame above ${maxFrame} bytes`);
    connLog(
      `closed a connection with 1009: a frame header announced ${length} bytes`,
    );
  }

  return {
    onMessage,
    onTooLarge,
    closeConn,
    deliver(dst: Bytes, frame: Bytes): Delivery {
      const target = registry.get(dst.toHex());
      if (target === undefined || target.ws!.readyState !== SocketState.OPEN) {
        return "offline";
      }
      return deliverTo(target, frame, false);
    },
  };
}
