/**
 * Self-certifying relay addresses (PROTOCOL.md §1.3): a client's session ID
 * is the first 16 bytes of SHA-256 of its Ed25519 "mailbox" public key, and
 * it proves possession by signing the relay's fresh challenge bound to the
 * relay's origin. Ed25519 because the relay verifies one signature per
 * connection and it verifies ~10× faster than ECDSA P-256 in WebCrypto.
 * @module
 */

import { decodeBase32, encodeBase32 } from "./base32.ts";
import { type Bytes, bytesEqual, concat, sha256, utf8 } from "./bytes.ts";
import { encodeRegister, type Frame } from "./relay_frame.ts";
import {
  MAILBOX_KEY_LENGTH,
  MAILBOX_SIGNATURE_LENGTH,
  SESSION_ID_LENGTH,
} from "./constants.ts";

/** Domain-separation prefix of the registration signature input. */
export const REGISTER_CONTEXT = "relay.v1 register\0";

/** A mailbox key pair: the private half signs registrations only. */
export interface MailboxKey {
  /** Ed25519 private key (sign). */
  privateKey: CryptoKey;
  /** Raw 32-byte Ed25519 public key. */
  publicRaw: Bytes;
  /** Session ID derived from the public key. */
  id: Bytes;
}

/** Session ID of a mailbox public key: SHA-256(raw public key)[0..16]. */
export async function sessionIdOf(publicRaw: Bytes): Promise<Bytes> {
  return (await sha256(publicRaw)).slice(0, SESSION_ID_LENGTH);
}

/** Generates a mailbox key; returns it and its PKCS#8 bytes for persistence. */
export async function generateMailboxKey(): Promise<
  { key: MailboxKey; pkcs8: Bytes }
> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
  return { key: await importMailboxKey(pkcs8), pkcs8 };
}

/** Imports a mailbox private key (PKCS#8) as non-extractable and derives its ID. */
export async function importMailboxKey(pkcs8: Bytes): Promise<MailboxKey> {
  const extractable = await crypto.subtle.importKey(
    "pkcs8",
    pkcs8,
    "Ed25519",
    true,
    ["sign"],
  );
  const jwk = await crypto.subtle.exportKey("jwk", extractable);
  if (!jwk.x) throw new Error("mailbox key has no public part");
  const publicRaw = Uint8Array.fromBase64(jwk.x, { alphabet: "base64url" });
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    pkcs8,
    "Ed25519",
    false,
    ["sign"],
  );
  return { privateKey, publicRaw, id: await sessionIdOf(publicRaw) };
}

/** The exact bytes signed at registration: context ‖ u8 len ‖ origin ‖ challenge. */
export function registrationInput(origin: string, challenge: Bytes): Bytes {
  const o = utf8(origin);
  if (o.length > 255) throw new RangeError("origin longer than 255 bytes");
  return concat(
    utf8(REGISTER_CONTEXT),
    new Uint8Array([o.length]),
    o,
    challenge,
  );
}

/** Signs a registration for `origin` (e.g. `wss://localhost:8765`). */
export async function signRegistration(
  key: MailboxKey,
  origin: string,
  challenge: Bytes,
): Promise<Bytes> {
  const input = registrationInput(origin, challenge);
  return new Uint8Array(
    await crypto.subtle.sign("Ed25519", key.privateKey, input),
  );
}

/** Verifies a registration; returns the session ID, or null when invalid. */
export async function verifyRegistration(
  publicRaw: Bytes,
  signature: Bytes,
  origin: string,
  challenge: Bytes,
): Promise<Bytes | null> {
  if (
    publicRaw.length !== MAILBOX_KEY_LENGTH ||
    signature.length !== MAILBOX_SIGNATURE_LENGTH
  ) {
    return null;
  }
  try {
    const key = await crypto.subtle.importKey(
      "raw",
      publicRaw,
      "Ed25519",
      false,
      ["verify"],
    );
    const ok = await crypto.subtle.verify(
      "Ed25519",
      key,
      signature,
      registrationInput(origin, challenge),
    );
    return ok ? await sessionIdOf(publicRaw) : null;
  } catch {
    return null;
  }
}

/** Shows a session ID as 26 lower-case base32 characters. */
export function formatSessionId(id: Uint8Array): string {
  return encodeBase32(id);
}

/** Parses a session ID given as 26 base32 or 32 hex characters; throws a clear error. */
export function parseSessionId(text: string): Bytes {
  const s = text.trim();
  const shown = `'${s.slice(0, 40)}${s.length > 40 ? "…" : ""}'`;
  if (/^[0-9a-fA-F]{32}$/.test(s)) return new Uint8Array(Uint8Array.fromHex(s));
  if (/^[a-zA-Z2-7]{26}$/.test(s)) {
    try {
      return new Uint8Array(decodeBase32(s));
    } catch {
      // 26 × 5 = 130 bits carry 128: the last character's two low bits are 0.
      throw new SyntaxError(
        `invalid session ID ${shown}: the last character '${
          s.at(-1)
        }' cannot end an ID (a typo? copy the ID again)`,
      );
    }
  }
  const bad = s.match(/[^a-zA-Z2-7]/)?.[0];
  throw new SyntaxError(
    `invalid session ID ${shown}: ${
      s.length === 26 && bad !== undefined
        ? `'${bad}' is not a base32 character (A–Z, 2–7; no 0, 1, 8, 9)`
        : `${s.length} characters; an ID is 26 base32 characters (or 32 hex)`
    }`,
  );
}

/** A short form of an ID for logs (first 6 characters), so logs never hold full IDs. */
export function shortSessionId(id: Uint8Array): string {
  return encodeBase32(id).slice(0, 6);
}

/** What a client does with a frame that arrives before it is registered. */
export type RegistrationStep =
  | { kind: "send"; frame: Bytes; maxFrame: number }
  | { kind: "registered"; id: Bytes }
  | { kind: "refused"; reason: string }
  | { kind: "ignore" };

/**
 * The client side of registration, shared by every driver: CHALLENGE →
 * REGISTER to send (signed for `origin`); REGISTERED → done, if the relay
 * bound the ID of this key; ERROR → refused with the relay's reason.
 */
export async function registrationStep(
  frame: Frame,
  key: MailboxKey,
  origin: string,
): Promise<RegistrationStep> {
  switch (frame.type) {
    case "challenge": {
      const sig = await signRegistration(key, origin, frame.challenge);
      return {
        kind: "send",
        frame: encodeRegister(key.publicRaw, sig),
        maxFrame: frame.maxFrame,
      };
    }
    case "registered":
      return bytesEqual(frame.id, key.id)
        ? { kind: "registered", id: frame.id }
        : { kind: "refused", reason: "relay bound a different session ID" };
    case "error":
      return {
        kind: "refused",
        reason: `relay refused registration: ${frame.name} (${frame.reason})`,
      };
    default:
      return { kind: "ignore" };
  }
}
