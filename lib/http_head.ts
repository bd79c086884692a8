/**
 * The relay's HTTP/1.1 surface, sans-I/O: parse one request head (bounded),
 * check a WebSocket upgrade (RFC 6455 §4.2.1), the `Host` and `Origin`
 * rules of PROTOCOL.md §1.1, and encode the few responses the relay sends.
 * The relay answers one request per connection (`Connection: close`), so
 * there is no keep-alive state here. Deadlines are the driver's
 * (`lib/deno/relay_server.ts`).
 * @module
 */

import { type Bytes, utf8 } from "./bytes.ts";

import { MAX_REQUEST_HEAD, MAX_REQUEST_HEADERS } from "./constants.ts";

/** A parsed request head. */
export interface RequestHead {
  /** Request method (`GET`). */
  method: string;
  /** Path without the query string. */
  path: string;
  /** Header values by lower-case name (repeated headers joined with ", "). */
  headers: Map<string, string>;
  /** Bytes received after the head (the client's first frames, if it pipelined). */
  rest: Bytes;
}

/** Result of {@link parseRequestHead}. */
export type HeadParse =
  | { kind: "incomplete" }
  | { kind: "bad"; status: 400 | 431 | 505; reason: string }
  | { kind: "request"; head: RequestHead };

const CRLFCRLF = [13, 10, 13, 10];

function findHeadEnd(buf: Uint8Array, limit: number): number {
  const end = Math.min(buf.length, limit + 4);
  outer: for (let i = 0; i + 4 <= end; i++) {
    for (let j = 0; j < 4; j++) if (buf[i + j] !== CRLFCRLF[j]) continue outer;
    return i;
  }
  return -1;
}

/** Parses the request head at the start of `buf` (everything received so far). */
export function parseRequestHead(
  buf: Uint8Array,
  max = MAX_REQUEST_HEAD,
): HeadParse {
  const end = findHeadEnd(buf, max);
  if (end < 0) {
    return buf.length > max
      ? { kind: "bad", status: 431, reason: `request head above ${max} bytes` }
      : { kind: "incomplete" };
  }
  // Header bytes are ASCII; anything else is decoded as Latin-1 and fails the checks below.
  const text = new TextDecoder("latin1").decode(buf.subarray(0, end));
  const lines = text.split("\r\n");
  const m = /^([A-Z]{1,16}) (\S{1,2048}) HTTP\/(\d\.\d)$/.exec(lines[0]);
  if (!m) return { kind: "bad", status: 400, reason: "malformed request line" };
  if (m[3] !== "1.1") {
    return { kind: "bad", status: 505, reason: "HTTP/1.1 only" };
  }
  if (lines.length - 1 > MAX_REQUEST_HEADERS) {
    return { kind: "bad", status: 431, reason: "too many header lines" };
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, i))) {
      return { kind: "bad", status: 400, reason: "malformed header line" };
    }
    const name = line.slice(0, i).toLowerCase();
    const value = line.slice(i + 1).trim();
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  const q = m[2].indexOf("?");
  return {
    kind: "request",
    head: {
      method: m[1],
      path: q < 0 ? m[2] : m[2].slice(0, q),
      headers,
      rest: buf.slice(end + 4),
    },
  };
}

/** Result of {@link checkUpgrade}. */
export type UpgradeCheck =
  | { ok: true; key: string; protocols: string[] }
  | { ok: false; status: 400 | 426; reason: string };

/** Checks the WebSocket handshake headers of a request (RFC 6455 §4.2.1). */
export function checkUpgrade(head: RequestHead): UpgradeCheck {
  const h = head.headers;
  const tokens = (name: string) =>
    (h.get(name) ?? "").toLowerCase().split(",").map((s) => s.trim());
  if (head.method !== "GET" || !tokens("upgrade").includes("websocket")) {
    return { ok: false, status: 426, reason: "WebSocket upgrade required" };
  }
  if (!tokens("connection").includes("upgrade")) {
    return { ok: false, status: 400, reason: "Connection: Upgrade missing" };
  }
  if (h.get("sec-websocket-version") !== "13") {
    return {
      ok: false,
      status: 426,
      reason: "Sec-WebSocket-Version 13 required",
    };
  }
  const key = h.get("sec-websocket-key") ?? "";
  let raw: Uint8Array | undefined;
  try {
    raw = Uint8Array.fromBase64(key);
  } catch {
    raw = undefined;
  }
  if (raw?.length !== 16) {
    return { ok: false, status: 400, reason: "bad Sec-WebSocket-Key" };
  }
  const protocols = (h.get("sec-websocket-protocol") ?? "").split(",")
    .map((s) => s.trim()).filter(Boolean);
  return { ok: true, key, protocols };
}

/** Host header value normalised for comparison: lower case, `[v6]` kept bracketed. */
export function normaliseHost(host: string): string {
  return host.trim().toLowerCase();
}

/**
 * The authority of a `wss://` origin for comparison with a `Host` header:
 * lower case, the port omitted when it is 443 (RFC 6455 §3 default).
 * Throws `TypeError` with a reason for anything but `wss://host[:port]`.
 */
export function parsePublicOrigin(
  origin: string,
): { origin: string; authority: string } {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new TypeError(`not a URL: '${origin}' (expected wss://host[:port])`);
  }
  if (url.protocol !== "wss:") {
    throw new TypeError(`'${origin}' must start with wss://`);
  }
  if (
    (url.pathname !== "/" && url.pathname !== "") || url.search || url.hash ||
    url.username
  ) {
    throw new TypeError(`'${origin}' must be wss://host[:port] with no path`);
  }
  const authority = url.host.toLowerCase(); // URL drops :443 for wss
  return { origin: `wss://${authority}`, authority };
}

/** Printable, bounded form of attacker-controlled header text for a log line. */
export function logSafe(text: string, max = 100): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

const STATUS_TEXT: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  421: "Misdirected Request",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** A complete HTTP/1.1 response with `Connection: close` (or the 101 when status is 101). */
export function encodeResponse(
  status: number,
  headers: Record<string, string>,
  body = "",
): Bytes {
  const b = utf8(body);
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (status !== 101) {
    head += `Content-Length: ${b.length}\r\nConnection: close\r\n`;
    if (!("Content-Type" in headers)) {
      head += "Content-Type: text/plain; charset=utf-8\r\n";
    }
  }
  const h = utf8(head + "\r\n");
  const out = new Uint8Array(h.length + b.length);
  out.set(h);
  out.set(b, h.length);
  return out;
}
