/**
 * Test helper: a real `redis-server` (Debian's, /usr/bin/redis-server) on a
 * free loopback port, no persistence, started and stopped by PID.
 * @module
 */

import { freePort } from "./client_proc.ts";

/** redis-server flags for a test: loopback `port`, no persistence, quiet; `extra` appended. */
export function redisServerArgs(port: number, extra: string[] = []): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--protected-mode",
    "no",
    "--loglevel",
    "warning",
    ...extra,
  ];
}

/** A redis-server child process; {@link stop} and {@link restart} keep the port. */
export class RedisProc {
  readonly port: number;
  #child: Deno.ChildProcess | undefined;
  #stderr = "";
  #reading: Promise<void> = Promise.resolve();

  private constructor(port: number) {
    this.port = port;
  }

  /** Starts a server on a free port (or `port`) and waits until it answers. */
  static async start(port = freePort()): Promise<RedisProc> {
    const r = new RedisProc(port);
    await r.#spawn();
    return r;
  }

  /** `redis://127.0.0.1:PORT`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The child's PID while running. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async #spawn(): Promise<void> {
    this.#child = new Deno.Command("redis-server", {
      args: redisServerArgs(this.port),
      stdout: "null",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    const child = this.#child;
    this.#reading = (async () => {
      for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += c;
      }
    })();
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      try {
        const c = await Deno.connect({
          hostname: "127.0.0.1",
          port: this.port,
        });
        await c.write(new TextEncoder().encode("PING\r\n"));
        const buf = new Uint8Array(16);
        const n = await c.read(buf);
        c.close();
        if (
          n && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG")
        ) {
          return;
        }
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 30));
    }
    throw new Error(`redis-server did not start: ${this.#stderr.slice(-500)}`);
  }

  /** Kills the server (SIGKILL by PID) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await this.#reading;
  }

  /** Starts the server again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }
}
