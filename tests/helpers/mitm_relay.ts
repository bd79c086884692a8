/**
 * Test helper: a MALICIOUS relay. It speaks relay.v1 to real clients over
 * TLS (test certificates, real registration with challenge and signature
 * check, so real clients accept it) and hands every DATA frame to a
 * per-test `tamper` hook that may forward, drop, duplicate, hold back,
 * alter, re-stamp or inject frames. Everything it forwarded is kept in
 * `log` so tests can replay earlier frames.
 * @module
 */

import type { Bytes } from "../../lib/bytes.ts";
import { RELAY_SUBPROTOCOL } from "../../lib/constants.ts";
import {
  decodeFrame,
  encodeChallenge,
  encodeData,
  encodeError,
  encodeRegistered,
} from "../../lib/relay_frame.ts";
import { verifyRegistration } from "../../lib/registration.ts";
import { testCerts } from "./relay_fixture.ts";

/** One DATA frame a client sent through the malicious relay. */
export interface Captured {
  /** Sender's session ID (hex). */
  from: string;
  /** Addressed recipient's session ID (hex). */
  to: string;
  /** The e2e payload as the client sent it. */
  payload: Bytes;
  /** e2e packet type byte (1 HS1, 2 HS2, 3 HS3, 4 RECORD). */
  kind: number;
  /** Index of this frame among the frames of its direction (0-based). */
  index: number;
}

/** What the hook decides; `forward` is the honest default. */
export type Tamper = (frame: Captured, relay: MitmRelay) => void | "drop";

/** The relay a test controls. */
export class MitmRelay {
  /** Every DATA frame received from clients, in arrival order. */
  readonly log: Captured[] = [];
  /** Session IDs (hex) in registration order. */
  readonly registered: string[] = [];
  /** The per-test hook (default: forward honestly). */
  tamper: Tamper = () => {};
  readonly #sockets = new Map<string, WebSocket>();
  readonly #counts = new Map<string, number>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #open = new Set<WebSocket>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** `wss://localhost:PORT/ws`. */
  readonly url: string;
  /** CA certificate file that clients must trust. */
  readonly caFile: string;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, caFile: string) {
    this.#server = server;
    this.url = `wss://localhost:${server.addr.port}/ws`;
    this.caFile = caFile;
  }

  /** Starts the malicious relay on a free loopback port. */
  static async start(): Promise<MitmRelay> {
    const certs = await testCerts();
    const ref: { relay?: MitmRelay } = {};
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: certs.cert,
      key: certs.key,
      onListen: () => {},
    }, (req) => ref.relay!.#handle(req));
    const relay = ref.relay = new MitmRelay(server, `${certs.dir}/ca.pem`);
    return relay;
  }

  #handle(req: Request): Response {
    if (req.headers.get("upgrade") !== "websocket") {
      return new Response("not here", { status: 404 });
    }
    const origin = `wss://${req.headers.get("host")}`;
    const { socket, response } = Deno.upgradeWebSocket(req, {
      protocol: RELAY_SUBPROTOCOL,
      idleTimeout: 0,
    });
    socket.binaryType = "arraybuffer";
    const challenge = crypto.getRandomValues(new Uint8Array(32));
    let id: string | undefined;
    this.#open.add(socket);
    socket.onopen = () => socket.send(encodeChallenge(challenge, 65536));
    socket.onclose = () => {
      this.#open.delete(socket);
      if (id && this.#sockets.get(id) === socket) this.#sockets.delete(id);
    };
    socket.onerror = () => {};
    socket.onmessage = async (ev) => {
      if (typeof ev.data === "string") return;
      const frame = decodeFrame(new Uint8Array(ev.data as ArrayBuffer));
      if (frame.type === "register") {
        const bound = await verifyRegistration(
          frame.publicKey,
          frame.signature,
          origin,
          challenge,
        );
        if (!bound) return socket.close(4003, "bad registration");
        id = bound.toHex();
        this.#sockets.get(id)?.close(4000, "replaced");
        this.#sockets.set(id, socket);
        if (!this.registered.includes(id)) this.registered.push(id);
        socket.send(encodeRegistered(bound));
      } else if (frame.type === "data" && id) {
        const to = frame.peer.toHex();
        const key = `${id}>${to}`;
        const index = this.#counts.get(key) ?? 0;
        this.#counts.set(key, index + 1);
        const c: Captured = {
          from: id,
          to,
          payload: frame.payload.slice(),
          kind: frame.payload[1] ?? 0,
          index,
        };
        this.log.push(c);
        if (this.tamper(c, this) !== "drop") {
          this.deliver(c.from, c.to, c.payload);
        }
      }
    };
    return response;
  }

  /** Delivers `payload` to `to`, stamped as coming from `from` (hex IDs); peer-offline to the sender when absent. */
  deliver(from: string, to: string, payload: Uint8Array): void {
    const dst = this.#sockets.get(to);
    if (dst && dst.readyState === WebSocket.OPEN) {
      dst.send(encodeData(Uint8Array.fromHex(from), 0, payload));
      return;
    }
    const src = this.#sockets.get(from);
    if (src && src.readyState === WebSocket.OPEN) {
      src.send(
        encodeError("peer-offline", Uint8Array.fromHex(to), 0, "not here"),
      );
    }
  }

  /** Tells `to` that `peer` is offline (a forged ERROR frame: the peer may be there). */
  reportOffline(peer: string, to: string): void {
    const dst = this.#sockets.get(to);
    if (dst && dst.readyState === WebSocket.OPEN) {
      dst.send(
        encodeError("peer-offline", Uint8Array.fromHex(peer), 0, "not here"),
      );
    }
  }

  /** Delivers later (ms); cancelled by close(). */
  deliverLater(
    from: string,
    to: string,
    payload: Uint8Array,
    ms: number,
  ): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.deliver(from, to, payload);
    }, ms);
    this.#timers.add(t);
  }

  /** Frames of one direction seen so far. */
  frames(from: string, to: string, kind?: number): Captured[] {
    return this.log.filter((c) =>
      c.from === from && c.to === to && (kind === undefined || c.kind === kind)
    );
  }

  /** Closes every socket and the server. */
  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    for (const s of this.#open) {
      try {
        s.close(1001, "bye");
      } catch { /* gone */ }
    }
    await this.#server.shutdown();
  }
}
