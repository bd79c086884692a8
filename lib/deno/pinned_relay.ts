/**
 * A relay connection that trusts exactly one CA (certificate pinning).
 *
 * Deno's `WebSocket` verifies the server with the default roots plus
 * `Deno.createHttpClient({ caCerts })`, `--cert` and `DENO_CERT`: certificates
 * can only be added, never excluded, and the peer certificate is not exposed.
 * `node:tls` in Deno, given `ca`, verifies against those certificates ONLY
 * (Node semantics: `ca` replaces the root store; `DENO_CERT`/`--cert` and the
 * system store are not consulted — checked in tests/client_pin_test.ts). So
 * this module speaks WebSocket (RFC 6455, client side: handshake, masking,
 * fragmentation, ping/pong, close) itself over a `node:tls` socket created
 * with `ca: [pinnedCaPem]`, and registers exactly like `RelayConnection`.
 * The host name is verified against the certificate as usual.
 *
 * Latency (README → Performance, "Latency stalls"): the socket has
 * `TCP_NODELAY`, frames written in one task go out in one `write` (one TLS
 * record, one segment), and after every read (even one that ended inside a
 * frame) the connection answers with an empty unsolicited Pong (RFC 6455
 * §5.5.3) unless it is already sending something: that segment carries the
 * TCP ACK at once, so the relay's Nagle algorithm (`Deno.serve` cannot set
 * `TCP_NODELAY` on accepted sockets) never waits for Linux's 40 ms delayed
 * ACK. The relay ignores unsolicited pongs.
 * @module
 */

import tls from "node:tls";
import type { Bytes } from "../bytes.ts";
import { concat, utf8 } from "../bytes.ts";
import { RELAY_SUBPROTOCOL } from "../constants.ts";
import { decodePemAll } from "../pem.ts";
import { decodeFrame, encodeDataHeader, type Frame } from "../relay_frame.ts";
import { type MailboxKey, registrationStep } from "../registration.ts";
import { type CloseInfo, RelayConnectError } from "./relay_client.ts";
import { netPermissionProblem } from "./net_permission.ts";
import {
  encodeClosePayload,
  maskedFrameLength,
  Opcode,
  writeMaskedFrame,
  WS_NO_STATUS,
  WS_TOO_BIG,
  wsAccept,
  WsDecoder,
} from "../ws_codec.ts";

/** Options of {@link PinnedRelayConnection.connect}. */
export interface PinnedConnectOptions {
  /** Relay URL (`wss://host:port/path`). */
  url: string;
  /** Mailbox key to register. */
  mailbox: MailboxKey;
  /** The only CA certificate (PEM) trusted for this connection. */
  caPem: string;
  /** Give up after this many ms (default 10000). */
  timeoutMs?: number;
}

/** Largest WebSocket message accepted (the relay's frames are ≤ 64 KiB). */
const MAX_MESSAGE = 1 << 20;
/** Largest HTTP upgrade response accepted. */
const MAX_HTTP_HEADER = 16 * 1024;
/** Time to wait for the relay's close frame before dropping the socket (ms). */
const CLOSE_GRACE_MS = 1000;
/** Random bytes drawn at once for frame masks (4 per frame): one `getRandomValues` per 1,024 frames. */
const MASK_POOL_BYTES = 4096;
/** An empty frame payload. */
const EMPTY = new Uint8Array(0);

const OP_BINARY = Opcode.BINARY,
  OP_CLOSE = Opcode.CLOSE,
  OP_PONG = Opcode.PONG;

/** A registered relay connection over a pinned TLS socket (same surface as `RelayConnection`). */
export class PinnedRelayConnection {
  /** Our registered session ID. */
  id: Bytes = new Uint8Array(16);
  /** Receives every frame after registration. */
  onFrame: (frame: Frame) => void = () => {};
  /** Resolves when the connection ends. */
  readonly closed: Promise<CloseInfo>;
  readonly #socket: tls.TLSSocket;
  readonly #resolveClosed: (info: CloseInfo) => void;
  #open = false;
  #ended = false;
  #frameNo = 0;
  #buf: Uint8Array = new Uint8Array(0);
  readonly #decoder = new WsDecoder("client", MAX_MESSAGE);
  #closeTimer?: ReturnType<typeof setTimeout>;
  #closeInfo: CloseInfo = { code: 1006, reason: "" };
  #onMessage: (data: Bytes) => void = () => {};
  /** Frames waiting for the end of the task (one write): opcode and payload parts. */
  #out: { op: number; parts: Uint8Array[] }[] = [];
  /** Bytes of `#out` as masked frames. */
  #outBytes = 0;
  /** Bytes were read since the last write: answer with a pong if nothing else goes out. */
  #ackDue = false;
  #flushQueued = false;
  #masks = new Uint8Array(0);
  #maskAt = 0;

  private constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    const { promise, resolve } = Promise.withResolvers<CloseInfo>();
    this.closed = promise;
    this.#resolveClosed = resolve;
  }

  /** Connects with only `caPem` trusted, upgrades to WebSocket and registers. */
  static connect(opts: PinnedConnectOptions): Promise<PinnedRelayConnection> {
    const url = new URL(opts.url);
    if (url.protocol !== "wss:") {
      return Promise.reject(
        new RelayConnectError("refused", "relay URL must use wss://"),
      );
    }
    let certs = 0;
    try {
      certs = decodePemAll(opts.caPem).filter((b) =>
        b.label === "CERTIFICATE"
      ).length;
    } catch { /* counted as none */ }
    if (certs !== 1) {
      // node:tls would trust every certificate given: a pin is one CA.
      return Promise.reject(
        new RelayConnectError(
          "tls",
          `the pinned CA must be exactly one certificate, got ${certs}`,
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
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port || 443);
    const isIp = /^[0-9.]+$/.test(host) || host.includes(":");
    return new Promise((resolve, reject) => {
      let settled = false;
      const socket = tls.connect({
        host,
        port,
        ca: [opts.caPem],
        ...(isIp ? {} : { servername: host }),
        ALPNProtocols: ["http/1.1"],
      });
      socket.setNoDelay(true);
      const conn = new PinnedRelayConnection(socket);
      const fail = (kind: RelayConnectError["kind"], message: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(
          new RelayConnectError(
            kind,
            `cannot use relay ${url.origin}: ${message}`,
          ),
        );
      };
      const timer = setTimeout(
        () => fail("timeout", "no registration in time"),
        opts.timeoutMs ?? 10000,
      );
      socket.on("error", (e: Error & { code?: string }) => {
        const msg = e.message ?? String(e);
        const tlsError =
          /certificate|verify|self.signed|issuer|TLS|SSL|altname|Hostname/i
            .test(msg);
        fail(
          tlsError ? "tls" : "unreachable",
          !tlsError
            ? msg
            : /altname|Hostname/i.test(msg)
            ? `${msg} (the certificate is not valid for this host name)`
            : `${msg} (the relay's certificate does not chain to the pinned CA)`,
        );
        conn.#ended = true;
        conn.#resolveClosed(conn.#closeInfo);
      });
      socket.on("close", () => {
        clearTimeout(conn.#closeTimer);
        conn.#open = false;
        conn.#ended = true;
        conn.#resolveClosed(conn.#closeInfo);
        fail("unreachable", "connection closed during setup");
      });
      socket.on("secureConnect", async () => {
        if (!socket.authorized) {
          return fail(
            "tls",
            `certificate not trusted: ${socket.authorizationError}`,
          );
        }
        const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
        const expected = await wsAccept(key);
        const path = url.pathname + url.search;
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
            `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${RELAY_SUBPROTOCOL}\r\n\r\n`,
        );
        let upgraded = false;
        const origin = `wss://${url.host}`;
        conn.#onMessage = async (data) => {
          let frame: Frame;
          try {
            frame = decodeFrame(data);
          } catch (e) {
            if (!settled) {
              fail(
                "registration",
                `bad frame from relay: ${(e as Error).message}`,
              );
            }
            return;
          }
          if (settled) return conn.onFrame(frame);
          const step = await registrationStep(frame, opts.mailbox, origin);
          if (step.kind === "send") {
            conn.#sendFrame(OP_BINARY, step.frame);
          } else if (step.kind === "registered") {
            settled = true;
            clearTimeout(timer);
            conn.id = step.id;
            resolve(conn);
          } else if (step.kind === "refused") {
            fail("registration", step.reason);
          }
        };
        socket.on("data", (chunk: Uint8Array) => {
          if (!upgraded) {
            conn.#buf = conn.#buf.length
              ? concat(conn.#buf, chunk)
              : new Uint8Array(chunk);
            const text = new TextDecoder().decode(conn.#buf);
            const end = text.indexOf("\r\n\r\n");
            if (end < 0) {
              if (conn.#buf.length > MAX_HTTP_HEADER) {
                fail("refused", "oversized HTTP response");
              }
              return;
            }
            const head = text.slice(0, end);
            const status = head.split("\r\n")[0];
            if (/^HTTP\/1\.1 503 /.test(status)) {
              return fail(
                "full",
                "the relay is at capacity or shutting down (HTTP 503); try again later",
              );
            }
            if (!/^HTTP\/1\.1 101 /.test(status)) {
              return fail(
                "refused",
                `upgrade refused: ${status.slice(0, 100)}`,
              );
            }
            const headers = new Map(
              head.split("\r\n").slice(1).map((l) => {
                const i = l.indexOf(":");
                return [
                  l.slice(0, i).trim().toLowerCase(),
                  l.slice(i + 1).trim(),
                ] as const;
              }),
            );
            if (headers.get("sec-websocket-accept") !== expected) {
              return fail("refused", "bad Sec-WebSocket-Accept");
            }
            if (headers.get("sec-websocket-protocol") !== RELAY_SUBPROTOCOL) {
              return fail(
                "refused",
                `relay did not accept subprotocol ${RELAY_SUBPROTOCOL}`,
              );
            }
            upgraded = true;
            conn.#open = true;
            chunk = conn.#buf.slice(utf8(head).length + 4);
            conn.#buf = new Uint8Array(0);
            if (chunk.length === 0) return; // the 101 alone: no frame to acknowledge
          }
          // Every read is answered, also one that ended inside a frame: the
          // rest of that frame may be what the relay's Nagle is holding back.
          conn.#ackDue = true;
          conn.#parse(chunk);
          conn.#scheduleFlush();
        });
      });
    });
  }

  /** True while the WebSocket is open. */
  get open(): boolean {
    return this.#open;
  }

  /** Sends `payload` to `peer`; returns the frame number, or -1 when not open. */
  send(peer: Uint8Array, payload: Uint8Array): number {
    if (!this.#open) return -1;
    const no = this.#frameNo = (this.#frameNo + 1) >>> 0;
    this.#sendFrame(OP_BINARY, encodeDataHeader(peer, no), payload);
    return no;
  }

  /** Closes the connection (close handshake, then the socket). */
  close(code = 1000, reason = ""): Promise<CloseInfo> {
    if (this.#open) {
      this.#open = false;
      const r = utf8(reason).slice(0, 123);
      const body = new Uint8Array(2 + r.length);
      new DataView(body.buffer).setUint16(0, code);
      body.set(r, 2);
      this.#sendFrame(OP_CLOSE, body);
      this.#closeInfo = { code, reason, byClient: true };
      this.#closeTimer = setTimeout(
        () => this.#socket.destroy(),
        CLOSE_GRACE_MS,
      );
    } else if (!this.#ended) {
      this.#socket.destroy();
    }
    return this.closed;
  }

  /** Queues a frame whose payload is `parts` joined (copied when the task ends: the parts must not change before). */
  #sendFrame(op: number, ...parts: Uint8Array[]): void {
    let len = 0;
    for (const p of parts) len += p.length;
    this.#out.push({ op, parts });
    this.#outBytes += maskedFrameLength(len);
    this.#scheduleFlush();
  }

  /** The next frame's masking key, from the pool. */
  #nextMask(): Uint8Array {
    if (this.#maskAt + 4 > this.#masks.length) {
      this.#masks = crypto.getRandomValues(new Uint8Array(MASK_POOL_BYTES));
      this.#maskAt = 0;
    }
    const mask = this.#masks.subarray(this.#maskAt, this.#maskAt + 4);
    this.#maskAt += 4;
    return mask;
  }

  /** Writes everything queued in this task at its end, or a pong that acknowledges what was read. */
  #scheduleFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      if (this.#out.length === 0 && this.#ackDue && this.#open) {
        this.#out.push({ op: OP_PONG, parts: [] });
        this.#outBytes += maskedFrameLength(0);
      }
      this.#flushNow();
    });
  }

  /**
   * Writes the queued frames now, in one write: each masked frame (RFC 6455
   * §5.3, a fresh key per frame) is built in place in one buffer, its
   * payload (relay header and record) copied once.
   */
  #flushNow(): void {
    this.#ackDue = false;
    if (this.#out.length === 0) return;
    const chunk = new Uint8Array(this.#outBytes);
    let at = 0;
    for (const f of this.#out) {
      at = writeMaskedFrame(chunk, at, f.op, f.parts, this.#nextMask());
    }
    this.#out = [];
    this.#outBytes = 0;
    if (!this.#socket.destroyed) this.#socket.write(chunk);
  }

  /** Decodes complete frames out of what was read (lib/ws_codec.ts). */
  #parse(chunk: Uint8Array): void {
    const d = this.#decoder;
    d.push(chunk);
    for (let ev = d.next(); ev !== undefined; ev = d.next()) {
      switch (ev.kind) {
        case "ping":
          this.#sendFrame(OP_PONG, ev.data);
          break;
        case "pong":
          break;
        case "close":
          if (this.#open) {
            this.#open = false;
            this.#sendFrame(
              OP_CLOSE,
              ev.code === WS_NO_STATUS
                ? EMPTY
                : encodeClosePayload(ev.code, ""),
            );
          }
          this.#closeInfo = { code: ev.code, reason: ev.reason };
          this.#flushNow();
          this.#socket.end();
          return;
        case "message":
          if (ev.opcode === OP_BINARY) this.#onMessage(ev.data);
          break;
        case "too-large":
          return this.#protocolError("message too large", WS_TOO_BIG);
        case "error":
          return this.#protocolError(ev.reason, ev.code);
      }
    }
  }

  #protocolError(reason: string, code: number): void {
    this.close(code, reason);
  }
}
