/**
 * The interactive clients' input line, sans-I/O: decoded terminal input in
 * (keys, pasted text, escape sequences split across reads), the lines typed,
 * end of input and interrupts out, with the bytes to write to the screen.
 * Output arriving while the user types goes through {@link LineEditor.print}:
 * the line is cleared, the output printed, and the prompt redrawn with what
 * was typed and the cursor where it was. The line is one screen row: a line
 * wider than the terminal scrolls horizontally (`<` at the prompt says text
 * is hidden to the left), so redrawing never has to know how it wrapped.
 *
 * Keys: printable text (UTF-8, any length; a paste is typing), Enter (CR, LF
 * or CR LF), Backspace, Delete, ← →, ↑ ↓ (the lines entered before, in
 * memory only), Home/End (also Ctrl-A/Ctrl-E),
 * Ctrl-←/→ (word), Ctrl-U/Ctrl-K (delete to start/end), Ctrl-W or
 * Alt-Backspace (word before), Tab (a space), Ctrl-L (redraw), Ctrl-C (interrupt, when the terminal delivers it
 * as a key), Ctrl-D (end of input on an empty line, else delete). Other
 * control keys and unknown escape sequences are ignored. Typed characters
 * that could hide or reorder text (lib/display_text.ts) are kept in the line
 * but shown as `�`.
 *
 * Screen operations used: CR, LF, `ESC [ K` (erase to end of line) and
 * `ESC [ n G` (cursor to column n): one row, nothing else.
 * @module
 */

import { MAX_BODY } from "../lib/constants.ts";

/** What the editor reports besides the screen output. */
export type EditorEvent =
  /** Enter: the line typed (without the line ending). */
  | { type: "line"; text: string }
  /** Ctrl-D on an empty line. */
  | { type: "eof" }
  /** Ctrl-C read as a key (raw mode without signals). */
  | { type: "interrupt" };

/** Result of {@link LineEditor.feed}. */
export interface EditorOutput {
  /** Bytes to write to the terminal (as text), in order. */
  screen: string;
  /** What the input meant, in order. */
  events: EditorEvent[];
}

/** Options of a {@link LineEditor}. */
export interface LineEditorOptions {
  /** Terminal width in columns (see {@link LineEditor.resize}). */
  columns: number;
  /** The prompt; default `"> "`. */
  prompt?: string;
  /**
   * Longest line kept, in code points; typing beyond rings the bell and is
   * dropped. Default MAX_BODY + 1: a line that long is refused as too large
   * when sent, so dropping never shortens a line that would be sent.
   */
  maxChars?: number;
}

/** Longest escape sequence waited for (a longer one is dropped as garbage). */
const MAX_ESCAPE = 32;
/** Lines ↑ can recall (kept in memory only, never written anywhere). */
const HISTORY = 100;
/** Narrowest line window kept, whatever the terminal says. */
const MIN_WINDOW = 8;

/** A character shown as one replacement character instead of itself (cf. lib/display_text.ts). */
const HIDDEN_RE =
  // deno-lint-ignore no-control-regex
  /^[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\u{e0000}-\u{e007f}]$/u;
const ZERO_WIDTH_RE = /^[\p{Mn}\p{Me}]$/u;
/** East Asian wide and fullwidth ranges, and the emoji planes (two columns). */
const WIDE_RE =
  /^[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]$/u;

/** One typed character as shown, and its width in columns. */
function shown(c: string): [string, number] {
  if (HIDDEN_RE.test(c)) return ["\ufffd", 1];
  if (ZERO_WIDTH_RE.test(c)) return [c, 0];
  return [c, WIDE_RE.test(c) ? 2 : 1];
}

const isWordChar = (c: string | undefined) =>
  c !== undefined && /^[\p{L}\p{N}_]$/u.test(c);

/** The input line of an interactive client; see the module doc. */
export class LineEditor {
  readonly #prompt: string;
  readonly #maxChars: number;
  #columns: number;
  /** The line, one code point per element. */
  #chars: string[] = [];
  /** Cursor position (index into #chars). */
  #cursor = 0;
  /** First code point shown (horizontal scroll). */
  #scroll = 0;
  /** Start of an escape sequence not complete yet. */
  #pending = "";
  /** The last key was CR (a following LF is the same Enter). */
  #afterCR = false;
  /** Lines entered, oldest first (at most HISTORY; in memory only). */
  #history: string[] = [];
  /** Which history line is shown (history.length: the line being typed). */
  #recalled = 0;
  /** The line being typed when ↑ was first pressed. */
  #draft: string[] = [];

  /** An empty line; nothing is on the screen until the first output. */
  constructor(options: LineEditorOptions) {
    this.#prompt = options.prompt ?? "> ";
    this.#maxChars = options.maxChars ?? MAX_BODY + 1;
    this.#columns = options.columns;
  }

  /** The line typed so far. */
  get text(): string {
    return this.#chars.join("");
  }

  /** The cursor, in code points from the start of the line. */
  get cursor(): number {
    return this.#cursor;
  }

  /** Handles terminal input (decoded; may end inside an escape sequence). */
  feed(input: string): EditorOutput {
    const events: EditorEvent[] = [];
    let screen = "";
    let dirty = false;
    let bell = false;
    const s = this.#pending + input;
    this.#pending = "";
    let i = 0;
    while (i < s.length) {
      const c = String.fromCodePoint(s.codePointAt(i)!);
      if (c === "\x1b") {
        const n = escapeLength(s, i);
        if (n === 0) {
          this.#pending = s.slice(i); // incomplete: wait for the rest
          break;
        }
        dirty = this.#escape(s.slice(i, i + n)) || dirty;
        this.#afterCR = false;
        i += n;
        continue;
      }
      i += c.length;
      const cr = this.#afterCR;
      this.#afterCR = c === "\r";
      if (c === "\r" || (c === "\n" && !cr)) {
        // The line stays on screen as it was shown (the `sent` line that
        // follows shows all of it), cursor at its end.
        this.#cursor = this.#chars.length;
        screen += this.#redraw() + this.#enter(events);
        dirty = true;
      } else if (c === "\n") continue;
      else if (c === "\x03") events.push({ type: "interrupt" });
      else if (c === "\x04") {
        if (this.#chars.length === 0) events.push({ type: "eof" });
        else dirty = this.#delete(this.#cursor, this.#cursor + 1) || dirty;
      } else if (c === "\x7f" || c === "\x08") {
        dirty = this.#delete(this.#cursor - 1, this.#cursor) || dirty;
      } else if (c === "\x01") dirty = this.#move(0) || dirty;
      else if (c === "\x05") dirty = this.#move(this.#chars.length) || dirty;
      else if (c === "\x02") dirty = this.#move(this.#cursor - 1) || dirty;
      else if (c === "\x06") dirty = this.#move(this.#cursor + 1) || dirty;
      else if (c === "\x15") dirty = this.#delete(0, this.#cursor) || dirty;
      else if (c === "\x0b") {
        dirty = this.#delete(this.#cursor, this.#chars.length) || dirty;
      } else if (c === "\x17") {
        dirty = this.#delete(this.#wordStart(), this.#cursor) || dirty;
      } else if (c === "\x0c") dirty = true;
      else if (c !== "\t" && HIDDEN_RE.test(c) && c.codePointAt(0)! < 0xa0) {
        continue; // other controls
      } else if (this.#chars.length >= this.#maxChars) bell = true;
      else dirty = this.#insert(c === "\t" ? " " : c) || dirty;
    }
    if (bell) screen += "\x07";
    if (dirty) screen += this.#redraw();
    return { screen, events };
  }

  /**
   * Output to show above the line: clears it, prints `text` (its line feeds
   * as CR LF: raw mode may not translate them), then redraws the prompt,
   * the line and the cursor.
   */
  print(text: string): string {
    return `\r\x1b[K${text.replaceAll("\n", "\r\n")}\r\n` + this.#redraw();
  }

  /**
   * The last output of the program: clears the line and prints `text`, no
   * prompt after it. A line still being typed is shown once more under it,
   * marked not sent, and dropped (it never went anywhere: it must not vanish
   * unseen).
   */
  printFinal(text: string): string {
    const draft = this.#chars.length === 0
      ? ""
      : `(not sent: the line you were typing: ${
        this.#chars.map((c) => shown(c)[0]).join("")
      })\r\n`;
    this.#chars = [];
    this.#cursor = 0;
    this.#scroll = 0;
    return `\r\x1b[K${text.replaceAll("\n", "\r\n")}\r\n${draft}`;
  }

  /** The terminal's width changed: redraws the line for `columns`. */
  resize(columns: number): string {
    this.#columns = columns;
    return this.#redraw();
  }

  // ── editing ──────────────────────────────────────────────────────────────

  #insert(c: string): boolean {
    this.#chars.splice(this.#cursor, 0, c);
    this.#cursor++;
    return true;
  }

  /** Deletes [from, to) (clamped); true if anything changed. */
  #delete(from: number, to: number): boolean {
    from = Math.max(0, from);
    to = Math.min(this.#chars.length, to);
    if (from >= to) return false;
    this.#chars.splice(from, to - from);
    this.#cursor = from;
    return true;
  }

  #move(to: number): boolean {
    to = Math.max(0, Math.min(this.#chars.length, to));
    if (to === this.#cursor) return false;
    this.#cursor = to;
    return true;
  }

  /** Start of the word before the cursor (spaces and punctuation before it included). */
  #wordStart(): number {
    let i = this.#cursor;
    while (i > 0 && !isWordChar(this.#chars[i - 1])) i--;
    while (i > 0 && isWordChar(this.#chars[i - 1])) i--;
    return i;
  }

  /** End of the word after the cursor. */
  #wordEnd(): number {
    let i = this.#cursor;
    const n = this.#chars.length;
    while (i < n && !isWordChar(this.#chars[i])) i++;
    while (i < n && isWordChar(this.#chars[i])) i++;
    return i;
  }

  /** A complete escape sequence: true if the line changed. */
  #escape(seq: string): boolean {
    if (seq === "\x1b\x7f") {
      return this.#delete(this.#wordStart(), this.#cursor); // Alt-Backspace
    }
    // deno-lint-ignore no-control-regex
    const csi = /^\x1b[[O]([0-9;]*)([A-Za-z~])$/.exec(seq);
    if (!csi) return false; // Alt-key, mouse, bracketed paste marks…: ignored
    const [, params, final] = csi;
    const word = /;[3-8]$/.test(params); // Ctrl/Alt modifier
    switch (final) {
      case "D":
        return this.#move(word ? this.#wordStart() : this.#cursor - 1);
      case "C":
        return this.#move(word ? this.#wordEnd() : this.#cursor + 1);
      case "H":
        return this.#move(0);
      case "F":
        return this.#move(this.#chars.length);
      case "~": {
        const key = params.split(";")[0];
        if (key === "1" || key === "7") return this.#move(0);
        if (key === "4" || key === "8") return this.#move(this.#chars.length);
        if (key === "3") return this.#delete(this.#cursor, this.#cursor + 1);
        return false;
      }
      case "A":
        return this.#recall(-1);
      case "B":
        return this.#recall(1);
      default:
        return false; // the rest: ignored
    }
  }

  /**
   * ↑ (`step` -1) / ↓ (+1): the previous / next line entered; past the
   * newest, the line that was being typed when ↑ was first pressed.
   */
  #recall(step: number): boolean {
    const at = this.#recalled + step;
    if (at < 0 || at > this.#history.length) return false;
    if (this.#recalled === this.#history.length) this.#draft = this.#chars;
    this.#recalled = at;
    this.#chars = at === this.#history.length
      ? this.#draft
      : [...this.#history[at]];
    this.#cursor = this.#chars.length;
    return true;
  }

  /** Enter: the line is reported and a new empty line starts under it. */
  #enter(events: EditorEvent[]): string {
    const text = this.text;
    events.push({ type: "line", text });
    if (text.trim() !== "" && this.#history.at(-1) !== text) {
      this.#history.push(text);
      if (this.#history.length > HISTORY) this.#history.shift();
    }
    this.#recalled = this.#history.length;
    this.#draft = [];
    this.#chars = [];
    this.#cursor = 0;
    this.#scroll = 0;
    return "\r\n";
  }

  // ── drawing ──────────────────────────────────────────────────────────────

  /** The prompt and the part of the line around the cursor that fits, on the current row; cursor placed. */
  #redraw(): string {
    const chars = this.#chars;
    const room = Math.max(
      MIN_WINDOW,
      this.#columns - this.#prompt.length - 1,
    );
    // Scroll so the cursor is inside the window: back to it, or forward
    // until what lies between the first shown character and it fits.
    if (this.#cursor < this.#scroll) {
      this.#scroll = Math.max(0, this.#cursor - (room >> 2));
    }
    let before = 0;
    for (let i = this.#cursor - 1; i >= this.#scroll; i--) {
      const w = shown(chars[i])[1];
      if (before + w > room) {
        this.#scroll = i + 1;
        break;
      }
      before += w;
    }
    let text = "";
    let used = 0;
    for (let i = this.#scroll; i < chars.length; i++) {
      const [t, w] = shown(chars[i]);
      if (used + w > room) break;
      text += t;
      used += w;
    }
    const prompt = this.#scroll > 0
      ? "<" + this.#prompt.slice(1)
      : this.#prompt;
    return `\r\x1b[K${prompt}${text}\x1b[${prompt.length + before + 1}G`;
  }
}

/**
 * Length of the escape sequence at `s[i]` (an ESC), or 0 if it is not
 * complete yet. CSI (`ESC [` params final) and SS3 (`ESC O` x); ESC and a
 * printable character or DEL count as two (an Alt-key); ESC before another
 * control key counts alone (Esc then Enter is still an Enter).
 */
function escapeLength(s: string, i: number): number {
  if (i + 1 >= s.length) return 0;
  const kind = s[i + 1];
  if (kind < " ") return 1;
  if (kind === "O") return i + 2 < s.length ? 3 : 0;
  if (kind !== "[") {
    return 1 + String.fromCodePoint(s.codePointAt(i + 1)!).length;
  }
  for (let j = i + 2; j < s.length; j++) {
    if (j - i >= MAX_ESCAPE) return j - i; // garbage: dropped
    const b = s.charCodeAt(j);
    if (b >= 0x40 && b <= 0x7e) return j - i + 1;
    if (b < 0x20 || b > 0x3f) return j - i; // not a CSI byte: end it here
  }
  return 0;
}
