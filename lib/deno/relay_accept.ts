/**
 * The relay's stages before a WebSocket exists, each under its own deadline
 * (PROTOCOL.md §1.1): the TLS handshake, then the HTTP request head, then
 * the response. A stage that is not finished in time closes the socket, so
 * a client that sends nothing (no ClientHello), stops inside the handshake,
 * or trickles header bytes (slowloris) holds its slot for at most the
 * deadline — a trickle does not extend it.
 * @module
 */

import type { Bytes } from "../bytes.ts";
import { type HeadParse, parseRequestHead } from "../http_head.ts";
import { MAX_REQUEST_HEAD } from "../constants.ts";
import type { FrontConn } from "./tls_front.ts";

export type { HeadParse, RequestHead } from "../http_head.ts";

/** Result of one pre-upgrade stage. */
export type StageResult<T> =
  | { ok: true; value: T }
  | { ok: false; why: "timeout" | "closed" };

/** Runs `work`; calls `expire` (which must end the connection) if it has not finished within `ms`. */
export async function withDeadline<T>(
  expire: () => void,
  ms: number,
  work: () => Promise<T | null>,
): Promise<StageResult<T>> {
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    expire();
  }, ms);
  try {
    const value = await work();
    if (expired) return { ok: false, why: "timeout" };
    return value === null ? { ok: false, why: "closed" } : { ok: true, value };
  } catch {
    return { ok: false, why: expired ? "timeout" : "closed" };
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for the server side of the TLS handshake. */
export function tlsHandshake(
  conn: FrontConn,
  expire: () => void,
  ms: number,
): Promise<StageResult<true>> {
  return withDeadline(expire, ms, async () => {
    await conn.secure;
    return true as const;
  });
}

/**
 * Collects bytes until one request head is complete (or bad); null when
 * the client ends first. The connection is paused once the head is
 * complete: what follows waits in the socket for the WebSocket.
 */
export function readRequestHead(
  conn: FrontConn,
  expire: () => void,
  ms: number,
): Promise<StageResult<Exclude<HeadParse, { kind: "incomplete" }>>> {
  return withDeadline(
    expire,
    ms,
    () =>
      new Promise<Exclude<HeadParse, { kind: "incomplete" }> | null>(
        (resolve) => {
          let buf: Uint8Array = new Uint8Array(0);
          const finish = (
            r: Exclude<HeadParse, { kind: "incomplete" }> | null,
          ) => {
            conn.pause();
            conn.onData = null;
            conn.onEnd = null;
            resolve(r);
          };
          conn.onEnd = () => resolve(null);
          conn.onData = (chunk) => {
            buf = buf.length === 0 ? chunk : concat2(buf, chunk);
            const r = parseRequestHead(buf);
            if (r.kind !== "incomplete") return finish(r);
            if (buf.length >= MAX_REQUEST_HEAD + 4) {
              finish({
                kind: "bad",
                status: 431,
                reason: "request head too large",
              });
            }
          };
          conn.resume();
        },
      ),
  );
}

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Writes all of `bytes` within `ms` (until the socket handed them to the kernel). */
export function writeAll(
  conn: FrontConn,
  bytes: Bytes,
  expire: () => void,
  ms: number,
): Promise<StageResult<true>> {
  return withDeadline(
    expire,
    ms,
    () =>
      new Promise<true>((resolve, reject) => {
        conn.write(bytes, (err) => err ? reject(err) : resolve(true));
      }),
  );
}
