/**
 * Benchmark servers as subprocesses (`deno run`, so the process measured is
 * the server alone): start the relay (`server.ts`) or the baseline forwarder,
 * learn the port from its "listening on" line, and read its CPU time and
 * resident memory from /proc (Linux only).
 * @module
 */

import { taskFlags } from "../tools/compile.ts";

/** Clock ticks per second of /proc/<pid>/stat utime/stime (Linux USER_HZ, 100 on every common build). */
const USER_HZ = 100;
/** How long a server may take to print its listening line. */
const START_TIMEOUT_MS = 20000;

/** A running server subprocess. */
export interface ServerProcess {
  /** What it is ("relay" or "baseline"). */
  name: string;
  /** Its process ID (the one /proc figures come from). */
  pid: number;
  /** Bound loopback port. */
  port: number;
  /** `wss://localhost:PORT/ws`. */
  url: string;
  /** The relay's loopback `/metrics` URL when it runs with `--metrics-port`. */
  metricsUrl?: string;
  /** User + system CPU time consumed so far, in µs (10 ms resolution). */
  cpuUs(): Promise<number>;
  /** Resident set size now, in KiB (VmRSS). */
  rssKb(): Promise<number>;
  /** Sends SIGTERM and waits for the exit (SIGKILL after 3 s). */
  stop(): Promise<void>;
}

/** Options for {@link startServer}. */
export interface StartServerOptions {
  /** "relay" runs server.ts, "baseline" bench/baseline_forwarder.ts. */
  kind: "relay" | "baseline";
  /** Certificate and key files, and the folder holding them. */
  certDir: string;
  /** Certificate file. */
  certPath: string;
  /** Key file. */
  keyPath: string;
  /** Extra flags for the server. */
  args?: string[];
  /** Extra flags for `deno run` (e.g. `--cpu-prof`). */
  denoArgs?: string[];
  /** Another script with the same flags and "listening on" line (experiments). */
  script?: URL;
  /** Extra environment variables for the server (e.g. diagnostics). */
  env?: Record<string, string>;
}

/** `--v8-flags=…` of `deno task relay`, so the bench runs the relay as the task does. */
const RELAY_V8_FLAGS: string[] = taskFlags(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  "relay",
  "server.ts",
).filter((f) => f.startsWith("--v8-flags"));

/** Starts a server subprocess and resolves once it listens. */
export async function startServer(
  opts: StartServerOptions,
): Promise<ServerProcess> {
  const script = opts.script ??
    (opts.kind === "relay"
      ? new URL("../server.ts", import.meta.url)
      : new URL("./baseline_forwarder.ts", import.meta.url));
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net=127.0.0.1",
      `--allow-read=${opts.certDir}`,
      // The relay's V8 flags from its task in deno.json (young generation cap).
      ...(opts.kind === "relay" && opts.script === undefined
        ? RELAY_V8_FLAGS
        : []),
      ...(opts.denoArgs ?? []),
      script.pathname,
      "--port",
      "0",
      "--cert",
      opts.certPath,
      "--key",
      opts.keyPath,
      ...(opts.args ?? []),
    ],
    env: opts.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  });
  const child = cmd.spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream())
    .getReader();
  let seen = "";
  let port = 0;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (port === 0) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<{ done: true; value: undefined }>((r) =>
      timer = setTimeout(
        () => r({ done: true, value: undefined }),
        Math.max(0, deadline - Date.now()),
      )
    );
    const { done, value } = await Promise.race([reader.read(), timeout]);
    clearTimeout(timer);
    if (done) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      throw new Error(
        `${opts.kind} did not start: ${seen.trim().slice(-500) || "no output"}`,
      );
    }
    seen += value;
    const m = seen.match(/listening on wss:\/\/[^:]+:(\d+)\//);
    if (m) port = Number(m[1]);
  }
  const metricsUrl = /metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(seen)
    ?.[1];
  // Keep draining stderr so the server never blocks on a full pipe.
  const drained = (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* closed */ }
  })();
  const pid = child.pid;
  return {
    name: opts.kind,
    pid,
    port,
    url: `wss://localhost:${port}/ws`,
    metricsUrl,
    cpuUs: () => cpuUsOf(pid),
    rssKb: () => rssKbOf(pid),
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      await statusWithin(child, 3000);
      await drained;
    },
  };
}

/** Waits for `child` to exit, with SIGKILL if it still runs after `ms`. */
export async function statusWithin(
  child: Deno.ChildProcess,
  ms: number,
): Promise<Deno.CommandStatus> {
  const killer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, ms);
  try {
    return await child.status;
  } finally {
    clearTimeout(killer);
  }
}

/**
 * Reads /proc/<path> through `cat`: Deno 2 grants another process's
 * /proc entries only with --allow-all, and the bench keeps explicit flags.
 */
export async function readProc(path: string): Promise<string> {
  const out = await new Deno.Command("cat", {
    args: [`/proc/${path}`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `cannot read /proc/${path}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** utime + stime of a process in µs, from /proc/<pid>/stat. */
export async function cpuUsOf(pid: number): Promise<number> {
  const stat = await readProc(`${pid}/stat`);
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(rest[11]) + Number(rest[12]);
  return ticks * (1e6 / USER_HZ);
}

/** VmRSS of a process in KiB, from /proc/<pid>/status. */
export async function rssKbOf(pid: number): Promise<number> {
  const status = await readProc(`${pid}/status`);
  const m = status.match(/^VmRSS:\s+(\d+) kB/m);
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]);
}
