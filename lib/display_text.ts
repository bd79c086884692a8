/**
 * Peer text made safe to show: every character that can reorder, hide or
 * forge what a reader sees is replaced by a visible escape. One function for
 * every place peer text is displayed (terminal client, transcript verifier,
 * browser), so they all neutralise the same set. Pure; safe in a browser.
 *
 * Neutralised: C0 controls except tab and line feed (U+0000–0008,
 * U+000B–001F), DEL and C1 controls (U+007F–009F), the soft hyphen U+00AD,
 * the Arabic letter mark U+061C, the Mongolian vowel separator U+180E,
 * zero-width and directional marks U+200B–200F, line/paragraph separators
 * U+2028–2029, bidi embeddings and overrides U+202A–202E, word joiner and
 * invisible operators U+2060–2064, bidi isolates U+2066–2069, deprecated
 * format characters U+206A–206F, the BOM / zero-width no-break space
 * U+FEFF, interlinear annotation controls U+FFF9–FFFB, and tag characters
 * U+E0000–E007F.
 * @module
 */

/** Matches one character {@link neutralizeText} replaces (global, Unicode). */
export const UNSAFE_TEXT_RE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\u{e0000}-\u{e007f}]/gu;

/** Options of {@link neutralizeText}. */
export interface NeutralizeOptions {
  /** Also escape tab and line feed (single-line displays). Default false. */
  singleLine?: boolean;
}

function escapeOf(c: string): string {
  const cp = c.codePointAt(0)!;
  return cp <= 0xff
    ? `\\x${cp.toString(16).padStart(2, "0")}`
    : `<U+${cp.toString(16).toUpperCase().padStart(4, "0")}>`;
}

/**
 * Returns `text` with every unsafe character replaced by a visible escape
 * (`\x1b`, `<U+202E>`).
 *
 * @example
 * ```ts
 * import { neutralizeText } from "./display_text.ts";
 * neutralizeText("pay \u202eRCA"); // "pay <U+202E>RCA"
 * ```
 */
export function neutralizeText(
  text: string,
  options: NeutralizeOptions = {},
): string {
  const out = text.replace(UNSAFE_TEXT_RE, escapeOf);
  return options.singleLine
    ? out.replace(/[\t\n]/g, (c) => (c === "\t" ? "\\t" : "\\n"))
    : out;
}

/**
 * The first unsafe character of `text` (tab and line feed included) as
 * `U+XXXX` with its position, or undefined when there is none: for fields
 * that must refuse such text instead of showing it.
 */
export function findUnsafeText(
  text: string,
): { codePoint: string; index: number } | undefined {
  const re = new RegExp(UNSAFE_TEXT_RE.source + "|[\\t\\n]", "u");
  const m = re.exec(text);
  if (!m) return undefined;
  return {
    codePoint: `U+${
      m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")
    }`,
    index: m.index,
  };
}
