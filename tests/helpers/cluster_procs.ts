/**
 * Test helper for cluster tests: relay nodes as real `server.ts` processes
 * (the `relay` task's own flags, with the test's certificate folder and extra
 * loopback addresses granted) and a real HAProxy (Debian's /usr/sbin/haproxy)
 * running deploy/haproxy.cfg with its bind and server lines pointed at the
 * test's ports. Both stopped by PID.
 * @module
 */

import { ROOT, taskFlags } from "./client_proc.ts";

/** Collects a stream's text into `sink.text` until it ends. */
async function drain(
  stream: ReadableStream<Uint8Array>,
  sink: { text: string },
): Promise<void> {
  for await (const c of stream.pipeThrough(new TextDecoderStream())) {
    sink.text += c;
  }
}

/** A relay node: `server.ts --cluster URL --node NAME` on `host:port`. */
export class NodeProc {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly #child: Deno.ChildProcess;
  readonly #log = { text: "" };
  readonly #draining: Promise<void>;
  readonly ready: Promise<void>;

  constructor(opts: {
    name: string;
    host: string;
    port: number;
    redisUrl: string;
    certDir: string;
    extraHosts?: string[];
    /** More relay flags (e.g. `--public-origin URL`). */
    extraArgs?: string[];
  }) {
    this.name = opts.name;
    this.host = opts.host;
    this.port = opts.port;
    const { flags, entry } = taskFlags("relay");
    const args = flags.map((f) =>
      f.startsWith("--allow-net=")
        ? [f, ...(opts.extraHosts ?? [])].join(",")
        : /^--allow-(read|write)=/.test(f)
        ? `${f.split("=")[0]}=${opts.certDir}`
        : f
    );
    this.#child = new Deno.Command("deno", {
      args: [
        "run",
        ...args,
        entry,
        "--host",
        opts.host,
        "--port",
        String(opts.port),
        "--cert",
        `${opts.certDir}/relay.pem`,
        "--key",
        `${opts.certDir}/relay-key.pem`,
        "--cluster",
        opts.redisUrl,
        "--node",
        opts.name,
        ...(opts.extraArgs ?? []),
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#draining = drain(this.#child.stderr, this.#log);
    this.ready = this.waitLog(/listening on/, 20000);
  }

  /** Everything the node wrote to stderr so far. */
  get log(): string {
    return this.#log.text;
  }

  /** `https://HOST:PORT` of this node. */
  get origin(): string {
    return `https://${this.host}:${this.port}`;
  }

  /** Waits until the node's log matches `re`. */
  async waitLog(re: RegExp, ms = 10000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!re.test(this.#log.text)) {
      if (Date.now() > deadline) {
        throw new Error(
          `node ${this.name}: no ${re} in log: ${this.#log.text.slice(-800)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGKILL by PID (a crashed node: no close frames). */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#child.status;
    await this.#draining;
  }

  /** SIGTERM by PID, SIGKILL after 3 s. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* gone */ }
    const t = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 3000);
    await this.#child.status;
    clearTimeout(t);
    await this.#draining;
  }
}

/** HAProxy running the shipped deploy/haproxy.cfg, rewritten to test addresses. */
export class HaproxyProc {
  readonly port: number;
  readonly config: string;
  readonly #child: Deno.ChildProcess;
  readonly #log = { text: "" };
  readonly #draining: Promise<void>[];

  private constructor(port: number, config: string, child: Deno.ChildProcess) {
    this.port = port;
    this.config = config;
    this.#child = child;
    this.#draining = [
      drain(child.stdout, this.#log),
      drain(child.stderr, this.#log),
    ];
  }

  /** The shipped config with `bind` on 127.0.0.1:`port`, one `server` line per backend, the health check's Host for the test, and a small global maxconn. */
  static configFor(
    port: number,
    servers: { name: string; address: string }[],
  ): string {
    const shipped = Deno.readTextFileSync(`${ROOT}/deploy/haproxy.cfg`);
    const lines: string[] = [];
    let replaced = false;
    for (const line of shipped.split("\n")) {
      if (/^\s*maxconn\s/.test(line)) {
        lines.push("    maxconn 2000"); // the shipped 200000 needs a raised fd limit
      } else if (/^\s*bind\s/.test(line)) {
        lines.push(`    bind 127.0.0.1:${port}`);
      } else if (/^\s*http-check send .* hdr Host /.test(line)) {
        lines.push(line.replace(/hdr Host \S+/, `hdr Host localhost:${port}`));
      } else if (/^\s*server\s/.test(line)) {
        if (!replaced) {
          for (const s of servers) {
            lines.push(`    server ${s.name} ${s.address}`);
          }
          replaced = true;
        }
      } else {
        lines.push(line);
      }
    }
    if (!replaced) throw new Error("deploy/haproxy.cfg has no server lines");
    return lines.join("\n");
  }

  /** Writes the config into `dir`, checks it with `haproxy -c`, starts it and waits for the port. */
  static async start(
    dir: string,
    port: number,
    servers: { name: string; address: string }[],
  ): Promise<HaproxyProc> {
    const config = HaproxyProc.configFor(port, servers);
    const file = `${dir}/haproxy.cfg`;
    await Deno.writeTextFile(file, config);
    const check = await new Deno.Command("haproxy", {
      args: ["-c", "-q", "-f", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!check.success) {
      throw new Error(
        `haproxy -c failed: ${new TextDecoder().decode(check.stderr)}`,
      );
    }
    const child = new Deno.Command("haproxy", {
      args: ["-db", "-f", file],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const h = new HaproxyProc(port, config, child);
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        c.close();
        return h;
      } catch {
        if (Date.now() > deadline) {
          await h.stop();
          throw new Error(`haproxy did not listen: ${h.log.slice(-500)}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** HAProxy's log (tcplog lines, server state changes). */
  get log(): string {
    return this.#log.text;
  }

  /** Stops HAProxy by PID. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#child.status;
    await Promise.all(this.#draining);
  }
}
