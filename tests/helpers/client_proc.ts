/**
 * Test helper: bank/customer clients as real subprocesses, started with the
 * SAME permission flags as their deno.json tasks plus read/write grants for
 * the test's temporary folder, talking JSON lines over stdin/stdout.
 * @module
 */

export const ROOT = new URL("../../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

/** The `deno run` flags of a deno.json task (between `deno run` and the entry file). */
export function taskFlags(task: string): { flags: string[]; entry: string } {
  const json = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  const t = json.tasks[task];
  const words = (typeof t === "string" ? t : t.command).trim().split(/\s+/);
  const entryIndex = words.findIndex((w: string) => w.endsWith(".ts"));
  return { flags: words.slice(2, entryIndex), entry: words[entryIndex] };
}

/** The task's flags with `dir` added to its --allow-read/--allow-write lists. */
export function flagsWithDir(
  task: string,
  dir: string,
): { flags: string[]; entry: string } {
  const { flags, entry } = taskFlags(task);
  return {
    entry,
    flags: flags.map((f) =>
      /^--allow-(read|write)=/.test(f) ? `${f},${dir}` : f
    ),
  };
}

/** A JSON event line from a client. */
// deno-lint-ignore no-explicit-any
export type Ev = Record<string, any>;

/** A running client subprocess. */
export class ClientProc {
  readonly events: Ev[] = [];
  readonly stderr: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;
  #waiters: (() => void)[] = [];
  #stdinClosed = false;
  rawStdout = "";

  constructor(
    role: "bank" | "customer",
    args: string[],
    dir: string,
    env: Record<string, string> = {},
  ) {
    const { flags, entry } = flagsWithDir(role, dir);
    this.#child = new Deno.Command("deno", {
      args: ["run", ...flags, entry, ...args],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.status = this.#child.status;
    this.#reading = Promise.all([this.#readStdout(), this.#readStderr()]).then(
      () => {},
    );
  }

  async #readStdout(): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of this.#child.stdout) {
      const text = decoder.decode(chunk, { stream: true });
      this.rawStdout += text;
      rest += text;
      let i;
      while ((i = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, i);
        rest = rest.slice(i + 1);
        try {
          this.events.push(JSON.parse(line));
        } catch {
          this.events.push({ type: "unparsed", line });
        }
      }
      this.#wake();
    }
    this.#wake();
  }

  async #readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.#child.stderr) {
      this.stderr.push(decoder.decode(chunk));
    }
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits until `pred` holds for some event; returns it. */
  async waitFor(
    pred: (e: Ev) => boolean,
    what: string,
    ms = 15000,
  ): Promise<Ev> {
    const deadline = Date.now() + ms;
    for (;;) {
      const e = this.events.find(pred);
      if (e) return e;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}; events: ${
            JSON.stringify(this.events).slice(-1500)
          } stderr: ${this.stderr.join("").slice(-800)}`,
        );
      }
      let t: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        t = setTimeout(r, Math.min(left, 200));
      });
      clearTimeout(t);
    }
  }

  /** Waits until `n` events match `pred`. */
  async waitCount(
    pred: (e: Ev) => boolean,
    n: number,
    what: string,
    ms = 15000,
  ): Promise<Ev[]> {
    await this.waitFor(
      () => this.events.filter(pred).length >= n,
      `${n}× ${what}`,
      ms,
    );
    return this.events.filter(pred);
  }

  /** Sends one line on stdin. */
  async line(text: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(text + "\n"));
  }

  /** Closes stdin (EOF). */
  async end(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#writer.close().catch(() => {});
  }

  /** Waits for exit (killing after `ms`); returns the exit code. */
  async exit(ms = 20000): Promise<number> {
    const t = setTimeout(() => this.kill(), ms);
    const s = await this.status;
    clearTimeout(t);
    await this.end();
    await this.#reading;
    return s.code;
  }

  /** Sends a signal (e.g. SIGTERM). */
  signal(sig: Deno.Signal): void {
    try {
      this.#child.kill(sig);
    } catch { /* already gone */ }
  }

  /** Kills the process (SIGKILL). */
  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  /** Kills if needed and releases every stream. */
  async dispose(): Promise<void> {
    this.kill();
    await this.status;
    await this.end();
    await this.#reading;
  }
}

/** A waiting customer: the `common` flags (relay, CA, …), its keys in `dir`/c, then `extra`. */
export function customerIn(
  dir: string,
  common: string[],
  grants: string,
  extra: string[] = [],
): ClientProc {
  return new ClientProc("customer", [
    ...common,
    "--keys",
    `${dir}/c`,
    ...extra,
  ], grants);
}

/** The bank contacting `address`: the `common` flags, its keys in `dir`/b, then `extra`. */
export function bankTo(
  address: string,
  dir: string,
  common: string[],
  grants: string,
  extra: string[] = [],
): ClientProc {
  return new ClientProc("bank", [
    ...common,
    "--keys",
    `${dir}/b`,
    "--peer",
    address,
    ...extra,
  ], grants);
}

/** A free TCP port on 127.0.0.1 (closed again at once). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The relay as a subprocess (`server.ts`) on `port` with the given certificate files. */
export class RelayProc {
  readonly #child: Deno.ChildProcess;
  readonly ready: Promise<void>;
  constructor(
    port: number,
    certFile: string,
    keyFile: string,
    certDir: string,
  ) {
    this.#child = new Deno.Command("deno", {
      args: [
        "run",
        "--allow-net=127.0.0.1,localhost",
        `--allow-read=${certDir}`,
        "server.ts",
        "--port",
        String(port),
        "--cert",
        certFile,
        "--key",
        keyFile,
        "--quiet",
      ],
      cwd: ROOT,
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.ready = (async () => {
      const deadline = Date.now() + 10000;
      while (Date.now() < deadline) {
        try {
          const c = await Deno.connect({ hostname: "127.0.0.1", port });
          c.close();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      throw new Error("relay subprocess did not start");
    })();
  }
  /** Kills the relay (SIGKILL: no goodbye to clients) and waits for it. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#child.status;
  }
}
