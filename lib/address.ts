/**
 * Shareable peer addresses: the relay URL plus, in the fragment, the SHA-256
 * fingerprint of the relay's CA certificate (`ca=`, a pin) and the peer's
 * relay session ID (`id=`), and optionally the peer's identity fingerprints
 * (`fp=` its P-256 identity, `ed=` its Ed25519 identity of suite 0x0002: a
 * conversation started from the address accepts only those identities, and
 * with `ed=` offers suite x25519 first; PROTOCOL.md §1.3), e.g.
 * `wss://localhost:8765/ws#ca=3f…9c&id=mfrggzdfmztwq2lknnwg23tpoa&fp=9a…01&ed=c4…7e`.
 * The fragment is never sent to the relay. Pure functions; safe in a browser.
 * @module
 */

import type { Bytes } from "./bytes.ts";
import { formatSessionId, parseSessionId } from "./registration.ts";

/** A parsed peer address or bare session ID. */
export interface PeerAddress {
  /** The peer's relay session ID (16 bytes). */
  id: Bytes;
  /** Relay WebSocket URL without fragment (absent for a bare ID). */
  relay?: string;
  /** Pinned CA fingerprint: 64 lower-case hex digits (absent when not pinned). */
  ca?: string;
  /** The peer's P-256 identity fingerprint: 64 lower-case hex digits; only a pinned identity is accepted (absent with `ed`: trust on first use). */
  fp?: string;
  /** The peer's Ed25519 identity fingerprint (suite x25519, SHA-256 of its RFC 8410 SPKI): 64 lower-case hex digits; only a pinned identity is accepted, and x25519 is offered first. */
  ed?: string;
}

const CA_PIN_RE = /^[0-9a-f]{64}$/;

/** Normalizes a CA pin (64 hex digits, `:`/space separators allowed); throws `SyntaxError`. */
export function parseCaPin(text: string): string {
  const pin = text.replace(/[\s:]/g, "").toLowerCase();
  if (!CA_PIN_RE.test(pin)) {
    throw new SyntaxError(
      `invalid CA pin '${
        text.slice(0, 80)
      }': expected the 64 hex digits of the CA certificate's SHA-256`,
    );
  }
  return pin;
}

/** Normalizes an identity fingerprint in an address (64 hex digits); throws `SyntaxError`. */
export function parseIdentityPin(text: string): string {
  const fp = text.replace(/[\s:]/g, "").toLowerCase();
  if (!CA_PIN_RE.test(fp)) {
    throw new SyntaxError(
      `invalid identity fingerprint '${
        text.slice(0, 80)
      }': expected the 64 hex digits of the peer's identity fingerprint`,
    );
  }
  return fp;
}

/**
 * Formats the address to share: `<relay>#ca=<pin>&id=<id>&fp=<fp>&ed=<ed>`
 * (`ca=`, `fp=` — the P-256 identity's fingerprint — and `ed=` — the Ed25519
 * identity's — only when given).
 */
export function formatAddress(
  relay: string,
  id: Uint8Array,
  ca?: string,
  fp?: string,
  ed?: string,
): string {
  const url = new URL(relay);
  url.hash = "";
  const parts = [];
  if (ca !== undefined) parts.push(`ca=${parseCaPin(ca)}`);
  parts.push(`id=${formatSessionId(id)}`);
  if (fp !== undefined) parts.push(`fp=${parseIdentityPin(fp)}`);
  if (ed !== undefined) parts.push(`ed=${parseIdentityPin(ed)}`);
  return `${url.href}#${parts.join("&")}`;
}

/**
 * Parses a full address (`wss://…#ca=…&id=…`) or a bare session ID (26 base32
 * or 32 hex characters). Throws `SyntaxError` naming what is wrong.
 */
export function parsePeerAddress(text: string): PeerAddress {
  const s = text.trim();
  if (!s.includes("://")) return { id: parseSessionId(s) };
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new SyntaxError(
      `invalid peer address '${s.slice(0, 80)}': not a URL`,
    );
  }
  if (url.protocol !== "wss:") {
    throw new SyntaxError(
      `invalid peer address: the relay must use wss:// (got ${url.protocol}//)`,
    );
  }
  const params = new URLSearchParams(url.hash.slice(1));
  const id = params.get("id");
  if (id === null) {
    throw new SyntaxError(
      "invalid peer address: no '#…id=<session ID>' part (copy the whole address the peer printed)",
    );
  }
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (key !== "id" && key !== "ca" && key !== "fp" && key !== "ed") {
      throw new SyntaxError(`invalid peer address: unknown parameter '${key}'`);
    }
    if (seen.has(key)) {
      throw new SyntaxError(`invalid peer address: '${key}=' given twice`);
    }
    seen.add(key);
  }
  const ca = params.get("ca");
  const fp = params.get("fp");
  const ed = params.get("ed");
  url.hash = "";
  return {
    id: parseSessionId(id),
    relay: url.href,
    ...(ca !== null ? { ca: parseCaPin(ca) } : {}),
    ...(fp !== null ? { fp: parseIdentityPin(fp) } : {}),
    ...(ed !== null ? { ed: parseIdentityPin(ed) } : {}),
  };
}
