/**
 * A client's connection to the relay (Deno driver over the built-in
 * WebSocket): connects over TLS trusting the given CA, answers the
 * registration challenge with the mailbox key, then sends and receives
 * DATA frames. PROTOCOL.md §1.
 * @module
 */

import { netPermissionProblem } from "./net_permission.ts";
import type { Bytes } from "../bytes.ts";
import { RELAY_SUBPROTOCOL } from "../constants.ts";
import {
  decodeFrame,
  encodeData,
  type Frame,
  FrameError,
} from "../relay_frame.ts";
import { type MailboxKey, registrationStep } from "../registration.ts";

/** Options for {@link RelayConnection.connect}. */
export interface RelayConnectOptions {
  /** Relay WebSocket URL, e.g. `wss://localhost:8765/ws`. */
  url: string;
  /** The mailbox key whose ID this connection registers. */
  mailbox: MailboxKey;
  /** PEM CA certificates to trust (added to the default roots unless `httpClient` is given). */
  caCerts?: string[];
  /** A ready HTTP client (e.g. one that pins a CA); takes precedence over `caCerts`. */
  httpClient?: Deno.HttpClient;
  /** Give up connecting and registering after this many ms (default 10000). */
  timeoutMs?: number;
  /** Subprotocols to offer (tests only; default `relay.v1`). */
  protocols?: string[];
}

/** Why the connection ended. */
export interface CloseInfo {
  /** WebSocket close code (1006 when the transport failed). */
  code: number;
  /** Close reason text. */
  reason: string;
  /** True when this side closed it (e.g. the relay sent a malformed frame); absent when the relay or the network did. */
  byClient?: boolean;
}

/** Failure to connect or register, with a specific cause. */
export class RelayConnectError extends Error {
  /** `unreachable`, `tls`, `refused`, `full` (HTTP 503: at capacity or shutting down), `timeout` or `registration`. */
  readonly kind:
    | "unreachable"
    | "tls"
    | "refused"
    | "full"
    | "timeout"
    | "registration";
  /** Creates the error. */
  constructor(kind: RelayConnectError["kind"], message: string) {
    super(message);
    this.name = "RelayConnectError";
    this.kind = kind;
  }
}

/** A registered relay connection. */
export class RelayConnection {
  /** The session ID the relay bound to this connection. */
  readonly id: Bytes;
  /** Receives every frame after registration (DATA and ERROR). */
  onFrame: (frame: Frame) => void = () => {};
  /** Resolves when the socket closes. */
  readonly closed: Promise<CloseInfo>;
  /** Largest frame the relay accepts. */
  readonly maxFrame: number;
  readonly #ws: WebSocket;
  readonly #ownedClient?: Deno.HttpClient;
  #frameNo = 0;

  private constructor(
    ws: WebSocket,
    id: Bytes,
    maxFrame: number,
    closed: Promise<CloseInfo>,
    ownedClient?: Deno.HttpClient,
  ) {
    this.#ws = ws;
    this.id = id;
    this.maxFrame = maxFrame;
    this.closed = closed;
    this.#ownedClient = ownedClient;
  }

  /** Connects, registers, and resolves once the relay confirmed the session ID. */
  static connect(opts: RelayConnectOptions): Promise<RelayConnection> {
    const url = new URL(opts.url);
    if (url.protocol !== "wss:") {
      return Promise.reject(
        new RelayConnectError(
          "refused",
          `relay URL must use wss:// (got ${url.protocol}//)`,
        ),
      );
    }
    const denied = netPermissionProblem(url);
    if (denied) {
      return Promise.reject(
        new RelayConnectError(
          "unreachable",
          `cannot use relay ${url.origin}: ${denied}`,
        ),
      );
    }
    const ownedClient =
      opts.httpClient === undefined && opts.caCerts !== undefined
        ? Deno.createHttpClient({ caCerts: opts.caCerts })
        : undefined;
    const client = opts.httpClient ?? ownedClient;
    const ws = new WebSocket(url, {
      protocols: opts.protocols ?? [RELAY_SUBPROTOCOL],
      ...(client ? { client } : {}),
    });
    ws.binaryType = "arraybuffer";
    const origin = `wss://${url.host}`;
    const { promise: closed, resolve: resolveClosed } = Promise.withResolvers<
      CloseInfo
    >();
    return new Promise<RelayConnection>((resolve, reject) => {
      let conn: RelayConnection | undefined;
      let lastError = "";
      let settled = false;
      const fail = (e: RelayConnectError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          ws.close();
        } catch { /* not open */ }
        reject(e);
      };
      const timer = setTimeout(
        () =>
          fail(
            new RelayConnectError(
              "timeout",
              `no registration from ${url.origin} in time`,
            ),
          ),
        opts.timeoutMs ?? 10000,
      );
      ws.onerror = (ev) => {
        lastError = (ev as ErrorEvent).message ?? "connection error";
      };
      ws.onclose = (ev) => {
        ownedClient?.close();
        resolveClosed({ code: ev.code, reason: ev.reason });
        if (!settled) {
          const kind = /certificate|UnknownIssuer|tls|TLS/.test(lastError)
            ? "tls"
            : ev.code === 1006 || ev.code === 0
            ? "unreachable"
            : "refused";
          const detail = ev.reason
            ? `closed ${ev.code}: ${ev.reason}`
            : lastError || `closed ${ev.code}`;
          const error = new RelayConnectError(
            kind,
            `cannot use relay ${url.origin}: ${detail}`,
          );
          // The built-in WebSocket hides the HTTP status of a refused
          // upgrade: ask once more by hand when TCP and TLS worked.
          if (kind !== "unreachable" || /tcp connect/i.test(lastError)) {
            return fail(error);
          }
          upgradeStatus(url, opts.caCerts).then((status) =>
            fail(
              status === 503
                ? new RelayConnectError(
                  "full",
                  `cannot use relay ${url.origin}: the relay is at capacity or shutting down (HTTP 503); try again later`,
                )
                : error,
            )
          );
        }
      };
      ws.onmessage = async (ev) => {
        if (typeof ev.data === "string") return;
        let frame: Frame;
        try {
          frame = decodeFrame(new Uint8Array(ev.data as ArrayBuffer));
        } catch (e) {
          if (!settled) {
            fail(
              new RelayConnectError(
                "registration",
                `bad frame from relay: ${(e as FrameError).message}`,
              ),
            );
          }
          return;
        }
        if (conn !== undefined) return conn.onFrame(frame);
        const step = await registrationStep(frame, opts.mailbox, origin);
        if (step.kind === "send") {
          ws.send(step.frame);
          maxFrame = step.maxFrame;
        } else if (step.kind === "registered") {
          settled = true;
          clearTimeout(timer);
          conn = new RelayConnection(
            ws,
            step.id,
            maxFrame,
            closed,
            ownedClient,
          );
          resolve(conn);
        } else if (step.kind === "refused") {
          fail(new RelayConnectError("registration", step.reason));
        }
      };
      let maxFrame = 0;
    });
  }

  /** Sends `payload` to `peer`; returns the frame number, or -1 when the socket is not open. */
  send(peer: Uint8Array, payload: Uint8Array): number {
    if (this.#ws.readyState !== WebSocket.OPEN) return -1;
    const no = this.#frameNo = (this.#frameNo + 1) >>> 0;
    this.#ws.send(encodeData(peer, no, payload));
    return no;
  }

  /** Sends pre-encoded bytes as-is (tests of malformed input). */
  sendRaw(bytes: Uint8Array | string): void {
    this.#ws.send(bytes as Bytes);
  }

  /** Bytes queued in the socket but not yet sent. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** True while the socket is open. */
  get open(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /** Closes the connection. */
  close(code = 1000, reason = ""): Promise<CloseInfo> {
    if (
      this.#ws.readyState === WebSocket.OPEN ||
      this.#ws.readyState === WebSocket.CONNECTING
    ) {
      this.#ws.close(code, reason);
    }
    return this.closed;
  }
}

/**
 * The HTTP status the relay answers a WebSocket upgrade with (a raw TLS
 * request, read up to the status line), or undefined when it cannot tell.
 */
async function upgradeStatus(
  url: URL,
  caCerts: string[] | undefined,
): Promise<number | undefined> {
  let conn: Deno.TlsConn | undefined;
  const timer = setTimeout(() => conn?.close(), 3000);
  try {
    conn = await Deno.connectTls({
      hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: Number(url.port || 443),
      caCerts,
      alpnProtocols: ["http/1.1"],
    });
    const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
    await conn.write(
      new TextEncoder().encode(
        `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\n` +
          `Upgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: ${RELAY_SUBPROTOCOL}\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(
      new TextDecoder().decode(buf.subarray(0, n ?? 0)),
    );
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed by the timer */ }
  }
}
