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

/** Completes the server side of the TLS handshake. */
export function tlsHandshake(
  conn: Deno.TlsConn,
  expire: () => void,
  ms: number,
): Promise<StageResult<true>> {
  return withDeadline(expire, ms, async () => {
    await conn.handshake();
    return true as const;
  });
}

/** Reads until one request head is complete (or bad); null at end of stream. */
export function readRequestHead(
  conn: Deno.Conn,
  expire: () => void,
  ms: number,
): Promise<StageResult<Exclude<HeadParse, { kind: "incomplete" }>>> {
  return withDeadline(expire, ms, async () => {
    const buf = new Uint8Array(MAX_REQUEST_HEAD + 4);
    let have = 0;
    for (;;) {
      const n = await conn.read(buf.subarray(have));
      if (n === null) return null;
      have += n;
      const r = parseRequestHead(buf.subarray(0, have));
      if (r.kind !== "incomplete") return r;
      if (have === buf.length) {
        return {
          kind: "bad" as const,
          status: 431 as const,
          reason: "request head too large",
        };
      }
    }
  });
}

/** Writes all of `bytes` within `ms`. */
export function writeAll(
  conn: Deno.Conn,
  bytes: Bytes,
  expire: () => void,
  ms: number,
): Promise<StageResult<true>> {
  return withDeadline(expire, ms, async () => {
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    return true as const;
  });
}
