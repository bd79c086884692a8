/**
 * The terminal driver of the interactive clients (stdin is a terminal, no
 * `--json`): stdin in cbreak mode (keys arrive one by one, no echo; Ctrl-C,
 * Ctrl-\ and Ctrl-Z still raise their signals), keys through the
 * {@link LineEditor}, and every output line shown above the line being typed.
 * The terminal's mode is restored on every way out: the end of the run,
 * Ctrl-D, an uncaught error, `Deno.exit`, and Ctrl-\ (SIGQUIT: restored, then
 * exit 131 as the signal would). Scripted input (a pipe, `--json`) never
 * comes here.
 * @module
 */

import { LineEditor } from "./line_editor.ts";
import type { TerminalScreen } from "./ui.ts";

/** What the typed lines go to (a {@link ChatClient}). */
export interface LineSink {
  /** A line typed (Enter). */
  input(line: string): void;
  /** Ctrl-D on an empty line. */
  eof(): void;
}

/** Columns of the terminal on stdout (80 when it cannot be told). */
function columns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

/** Adds or removes the SIGWINCH and SIGQUIT listeners (where the platform has those signals). */
function signals(
  op: "add" | "remove",
  onResize: () => void,
  onQuit: () => void,
): void {
  for (
    const [sig, fn] of [["SIGWINCH", onResize], ["SIGQUIT", onQuit]] as const
  ) {
    try {
      if (op === "add") Deno.addSignalListener(sig, fn);
      else Deno.removeSignalListener(sig, fn);
    } catch {
      // not on this platform
    }
  }
}

/** The line editor on the process's terminal; see the module doc. */
export class TerminalInput {
  readonly #editor = new LineEditor({ columns: columns() });
  readonly #write: (text: string) => void;
  #raw = false;
  readonly #onExit = () => this.restore();
  readonly #onResize = () => this.#write(this.#editor.resize(columns()));
  readonly #onQuit = () => {
    this.restore();
    Deno.exit(128 + 3);
  };

  /** Output goes to `write` (stdout, synchronously). */
  constructor(write: (text: string) => void) {
    this.#write = write;
  }

  /** The renderer's screen: output above the typed line, which is redrawn after it. */
  readonly screen: TerminalScreen = {
    show: (text) => this.#write(this.#editor.print(text)),
    end: (text) => this.#write(this.#editor.printFinal(text)),
  };

  /**
   * Switches the terminal to cbreak mode and feeds keys to `sink` until
   * Ctrl-D or the end of stdin; `interrupt` is called for a Ctrl-C read as a
   * key. The mode stays set until {@link restore}.
   */
  async pump(sink: LineSink, interrupt: () => void): Promise<void> {
    Deno.stdin.setRaw(true, { cbreak: true });
    this.#raw = true;
    for (const type of ["unload", "error", "unhandledrejection"]) {
      globalThis.addEventListener(type, this.#onExit);
    }
    signals("add", this.#onResize, this.#onQuit);
    const decoder = new TextDecoder();
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await Deno.stdin.read(buf);
        if (n === null) break;
        const { screen, events } = this.#editor.feed(
          decoder.decode(buf.subarray(0, n), { stream: true }),
        );
        if (screen) this.#write(screen);
        for (const ev of events) {
          if (ev.type === "line") sink.input(ev.text);
          else if (ev.type === "interrupt") interrupt();
          else return sink.eof();
        }
      }
    } catch {
      // stdin closed under us: treat as end of input
    }
    sink.eof();
  }

  /** Puts the terminal back in the mode it had (idempotent). */
  restore(): void {
    if (!this.#raw) return;
    this.#raw = false;
    for (const type of ["unload", "error", "unhandledrejection"]) {
      globalThis.removeEventListener(type, this.#onExit);
    }
    signals("remove", this.#onResize, this.#onQuit);
    try {
      Deno.stdin.setRaw(false);
    } catch {
      // the terminal is gone (SIGHUP): nothing to restore
    }
  }
}
