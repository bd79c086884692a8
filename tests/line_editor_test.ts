import assert from "node:assert/strict";
import { type EditorEvent, LineEditor } from "../clients/line_editor.ts";

/**
 * A minimal terminal for the screen operations the editor may use (CR, LF,
 * BEL, `ESC [ K`, `ESC [ n G`, printable text, wrapping at the last column);
 * anything else fails the test.
 */
class Screen {
  rows: string[][] = [[]];
  row = 0;
  col = 0;
  constructor(readonly columns = 40) {}
  apply(ops: string): void {
    for (let i = 0; i < ops.length;) {
      // deno-lint-ignore no-control-regex
      const m = /^\x1b\[(\d*)([KG])/.exec(ops.slice(i));
      if (m) {
        if (m[2] === "K") this.rows[this.row].length = this.col;
        else this.col = Math.max(0, Number(m[1] || "1") - 1);
        i += m[0].length;
        continue;
      }
      const c = String.fromCodePoint(ops.codePointAt(i)!);
      i += c.length;
      if (c === "\r") this.col = 0;
      else if (c === "\n") {
        this.row++;
        this.rows[this.row] ??= [];
      } else if (c === "\x07") continue;
      else {
        assert.ok(c >= " ", `unexpected control ${JSON.stringify(c)}`);
        if (this.col >= this.columns) {
          this.row++;
          this.rows[this.row] ??= [];
          this.col = 0;
        }
        const r = this.rows[this.row];
        while (r.length < this.col) r.push(" ");
        r[this.col++] = c;
      }
    }
  }
  get lines(): string[] {
    return this.rows.map((r) => r.join(""));
  }
  /** The cursor's row as text, and the cursor column. */
  get current(): [string, number] {
    return [this.rows[this.row].join(""), this.col];
  }
}

function setup(columns = 40) {
  const ed = new LineEditor({ columns });
  const screen = new Screen(columns);
  const events: EditorEvent[] = [];
  const type = (s: string) => {
    const out = ed.feed(s);
    screen.apply(out.screen);
    events.push(...out.events);
  };
  const print = (s: string) => screen.apply(ed.print(s));
  return { ed, screen, events, type, print };
}

Deno.test("LineEditor: text typed survives output printed meanwhile, and Enter sends it whole, once", () => {
  const { ed, screen, events, type, print } = setup(80);
  print("banner");
  type("I am typing a long sen");
  print("[12:00:00] bank: hello");
  print("* a notice\non two lines");
  assert.deepEqual(screen.lines, [
    "banner",
    "[12:00:00] bank: hello",
    "* a notice",
    "on two lines",
    "> I am typing a long sen",
  ]);
  assert.deepEqual(screen.current, ["> I am typing a long sen", 24]);
  type("tence");
  assert.equal(ed.text, "I am typing a long sentence");
  type("\r");
  assert.deepEqual(events, [{
    type: "line",
    text: "I am typing a long sentence",
  }]);
  assert.equal(ed.text, "");
  print("[12:00:01] you: I am typing a long sentence   (#1 sent)");
  assert.deepEqual(screen.lines.slice(-3), [
    "> I am typing a long sentence",
    "[12:00:01] you: I am typing a long sentence   (#1 sent)",
    "> ",
  ]);
});

Deno.test("LineEditor: Backspace, ← →, Home/End, Delete, Ctrl-U/K/W edit at the cursor", () => {
  const { ed, screen, events, type } = setup();
  type("helo world");
  type("\x1b[D".repeat(7)); // after "hel"
  type("l");
  assert.equal(ed.text, "hello world");
  assert.equal(ed.cursor, 4);
  assert.deepEqual(screen.current, ["> hello world", 6]);
  type("\x1b[H");
  assert.equal(ed.cursor, 0);
  type("\x1b[3~"); // Delete
  assert.equal(ed.text, "ello world");
  type("\x1bOF"); // End (SS3)
  type("\x7f\x7f");
  assert.equal(ed.text, "ello wor");
  type("\x17"); // Ctrl-W
  assert.equal(ed.text, "ello ");
  type("\x01X\x05Y"); // Ctrl-A, Ctrl-E
  assert.equal(ed.text, "Xello Y");
  type("\x1b[1;5D"); // Ctrl-←: word start
  assert.equal(ed.cursor, 6);
  type("\x0b"); // Ctrl-K
  assert.equal(ed.text, "Xello ");
  type("\x15"); // Ctrl-U
  assert.equal(ed.text, "");
  type("\x1b[A\x1b[B"); // ↑ ↓ with nothing entered yet: nothing to recall
  assert.equal(ed.text, "");
  assert.deepEqual(events, []);
});

Deno.test("LineEditor: escape sequences and UTF-8 characters split across reads", () => {
  const { ed, type } = setup();
  type("ab\x1b");
  type("[");
  type("D€");
  assert.equal(ed.text, "a€b");
  type("\x1b[3");
  type("~");
  assert.equal(ed.text, "a€");
  type("\x1bx"); // Alt-x: ignored
  type("\x1b[200~"); // a bracketed-paste mark: ignored
  assert.equal(ed.text, "a€");
  type(" two words\x1b\x7f"); // Alt-Backspace: the word before
  assert.equal(ed.text, "a€ two ");
  type("\tx");
  assert.equal(ed.text, "a€ two  x", "Tab is a space");
});

Deno.test("LineEditor: Esc then Enter is still an Enter", () => {
  const { events, type } = setup();
  type("hi\x1b");
  type("\r");
  assert.deepEqual(events, [{ type: "line", text: "hi" }]);
});

Deno.test("LineEditor: CR, LF and CR LF are one Enter each; a pasted block gives its lines in order", () => {
  const { events, type } = setup();
  type("one\r\ntwo\nthree\rfour");
  type("\r");
  type("\n\n");
  assert.deepEqual(events.map((e) => e.type === "line" ? e.text : e.type), [
    "one",
    "two",
    "three",
    "four",
    "",
  ]);
});

Deno.test("LineEditor: Ctrl-D ends input only on an empty line; Ctrl-C read as a key is an interrupt", () => {
  const { ed, events, type } = setup();
  type("ab\x1b[D\x04");
  assert.equal(ed.text, "a", "Ctrl-D deletes under the cursor");
  assert.deepEqual(events, []);
  type("\x03");
  assert.deepEqual(events, [{ type: "interrupt" }]);
  assert.equal(ed.text, "a");
  type("\x15\x04");
  assert.deepEqual(events, [{ type: "interrupt" }, { type: "eof" }]);
});

Deno.test("LineEditor: a line wider than the terminal scrolls on one row, cursor kept in view; a long paste is kept whole", () => {
  const columns = 20;
  const { ed, screen, events, type, print } = setup(columns);
  const long = Array.from({ length: 500 }, (_, i) => String(i % 10)).join("");
  type(long);
  assert.equal(ed.text, long);
  const [row, col] = screen.current;
  assert.equal(screen.lines.length, 1, "one row, never wrapped");
  assert.ok(row.length < columns);
  assert.ok(row.startsWith("< "), "text hidden to the left is marked");
  assert.ok(long.endsWith(row.slice(2)), "the end of the line is shown");
  assert.equal(col, row.length);
  type("\x1b[H");
  assert.equal(screen.current[0], "> " + long.slice(0, columns - 3));
  assert.equal(screen.current[1], 2);
  print("incoming");
  assert.deepEqual(screen.lines, ["incoming", "> " + long.slice(0, 17)]);
  type("\x05\r");
  assert.deepEqual(events, [{ type: "line", text: long }]);
});

Deno.test("LineEditor: characters that hide or reorder text are kept but shown as U+FFFD; wide characters take two columns", () => {
  const { ed, screen, type } = setup();
  type("a\u202eb\u200bc");
  assert.equal(ed.text, "a\u202eb\u200bc");
  assert.equal(screen.current[0], "> a\ufffdb\ufffdc");
  type("\x07\x1f\x9b"); // other controls: ignored
  assert.equal(ed.text, "a\u202eb\u200bc");
  const w = setup(12);
  w.type("日本語日本語日本語");
  const [row, col] = w.screen.current;
  assert.ok(row.startsWith("< "));
  assert.equal(
    col,
    2 + 2 * (row.length - 2),
    "cursor after the wide characters",
  );
});

Deno.test("LineEditor: typing past maxChars rings the bell and keeps the line as long as allowed", () => {
  const ed = new LineEditor({ columns: 40, maxChars: 5 });
  assert.equal(ed.feed("abcd").screen.includes("\x07"), false);
  assert.ok(ed.feed("efg").screen.includes("\x07"));
  assert.equal(ed.text, "abcde");
});

Deno.test("LineEditor: resize redraws the line for the new width", () => {
  const { ed, screen, type } = setup(40);
  type("x".repeat(30));
  screen.apply(ed.resize(20));
  assert.ok(screen.current[0].startsWith("< "));
  assert.ok(screen.current[0].length < 20);
});

Deno.test("LineEditor: the program's last output shows a half-typed line once, marked not sent", () => {
  const { ed, screen, type } = setup(80);
  type("half a li\u202ene");
  screen.apply(ed.printFinal("! tls: failed"));
  screen.apply(ed.printFinal("* closed: failed"));
  assert.deepEqual(screen.lines, [
    "! tls: failed",
    "(not sent: the line you were typing: half a li\ufffdne)",
    "* closed: failed",
    "",
  ]);
  assert.equal(ed.text, "");
});

Deno.test("LineEditor: ↑ ↓ recall the lines entered, then the line being typed; a recalled line is sent as edited", () => {
  const { ed, events, type } = setup();
  type("first\rsecond\r\r");
  type("draft");
  type("\x1b[A");
  assert.equal(ed.text, "second");
  type("\x1b[A\x1b[A"); // past the oldest: stays
  assert.equal(ed.text, "first");
  type("\x1b[B");
  assert.equal(ed.text, "second");
  type("\x1b[B");
  assert.equal(ed.text, "draft", "back to what was being typed");
  type("\x1bOA!\r"); // SS3 ↑, edited, Enter
  assert.deepEqual(
    events.map((e) => e.type === "line" ? e.text : e.type),
    ["first", "second", "", "second!"],
  );
  type("\x1b[A");
  assert.equal(ed.text, "second!");
});
