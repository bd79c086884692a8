/**
 * PEM (RFC 7468) encoding and decoding: `-----BEGIN LABEL-----`, base64 in
 * 64-column lines, `-----END LABEL-----`. Text outside the blocks is ignored
 * on decode. Pure functions, no I/O; safe in a browser.
 * @module
 */

import type { Bytes } from "./bytes.ts";

/** Column width of base64 lines (RFC 7468 §2). */
const LINE_WIDTH = 64;
/** A label is printable ASCII without `-`, spaces allowed inside (RFC 7468 §3). */
const LABEL_RE =
  /^[\x21-\x2c\x2e-\x7e]([\x21-\x2c\x2e-\x7e ]*[\x21-\x2c\x2e-\x7e])?$/;
const BEGIN_RE = /-----BEGIN ([^\r\n-]*)-----/g;

/** One decoded PEM block. */
export interface PemBlock {
  /** The label, e.g. `CERTIFICATE` or `PRIVATE KEY`. */
  label: string;
  /** The decoded DER bytes. */
  der: Bytes;
}

/** Encodes DER bytes as a PEM block with trailing newline. */
export function encodePem(label: string, der: Uint8Array): string {
  if (!LABEL_RE.test(label)) {
    throw new RangeError(`invalid PEM label "${label}"`);
  }
  const b64 = der.toBase64();
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += LINE_WIDTH) {
    lines.push(b64.slice(i, i + LINE_WIDTH));
  }
  return `-----BEGIN ${label}-----\n${
    lines.join("\n")
  }\n-----END ${label}-----\n`;
}

/** Decodes every PEM block in `text`, in order; throws `SyntaxError` on a malformed block. */
export function decodePemAll(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  BEGIN_RE.lastIndex = 0;
  for (let m = BEGIN_RE.exec(text); m !== null; m = BEGIN_RE.exec(text)) {
    const label = m[1];
    const endMarker = `-----END ${label}-----`;
    const bodyStart = m.index + m[0].length;
    const endIndex = text.indexOf(endMarker, bodyStart);
    if (endIndex < 0) {
      throw new SyntaxError(
        `PEM: "-----BEGIN ${label}-----" has no matching "${endMarker}"`,
      );
    }
    blocks.push({
      label,
      der: decodeBody(label, text.slice(bodyStart, endIndex)),
    });
    BEGIN_RE.lastIndex = endIndex + endMarker.length;
  }
  return blocks;
}

/**
 * Decodes the first PEM block labelled `label` (e.g. `CERTIFICATE`); throws a
 * `SyntaxError` saying what was found instead when there is none.
 */
export function decodePem(text: string, label: string): Bytes {
  const blocks = decodePemAll(text);
  const found = blocks.find((b) => b.label === label);
  if (found) return found.der;
  const seen = blocks.length === 0
    ? "no PEM blocks"
    : `only ${blocks.map((b) => `"${b.label}"`).join(", ")}`;
  throw new SyntaxError(
    `PEM: expected a "-----BEGIN ${label}-----" block, found ${seen}`,
  );
}

function decodeBody(label: string, body: string): Bytes {
  if (body.includes(":")) {
    throw new SyntaxError(
      `PEM: "${label}" block has RFC 1421 headers, which are not supported`,
    );
  }
  const b64 = body.replace(/\s+/g, "");
  if (b64.length === 0) throw new SyntaxError(`PEM: "${label}" block is empty`);
  try {
    return Uint8Array.fromBase64(b64);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new SyntaxError(
      `PEM: "${label}" block is not valid base64 (${reason})`,
    );
  }
}
