/**
 * Test helper: the relay as a real process (`deno run … server.ts`, the
 * task's V8 flags, loopback permissions), optionally under a low
 * `ulimit -n`, with its log lines collected and its memory read from
 * /proc/PID/status. Also the giant-frame attack shared by the attack test
 * and `bench/attack.ts`.
 * @module
 */

import { concat } from "../../lib/bytes.ts";
import { CloseCode } from "../../lib/relay_frame.ts";
import { RawWs } from "./raw_ws.ts";
import { readProc } from "../../bench/server_process.ts";

/** A running relay process. */
export interface RelayProcess {
  pid: number;
  port: number;
  /** Every stderr line so far. */
  lines: string[];
  /** True while the process runs. */
  alive(): boolean;
  /** Resolves with the process's exit code. */
  exited: Promise<number>;
  /** SIGTERM, then SIGKILL after 3 s; resolves with the exit code. */
  stop(): Promise<number>;
}

/** Options of {@link spawnRelay}. */
export interface SpawnRelayOptions {
  /** Certificate folder (relay.pem, relay-key.pem). */
  certsDir: string;
  /** Extra relay flags. */
  args?: string[];
  /** Run under `ulimit -n` this low. */
  ulimitN?: number;
  /** Another entry file (e.g. an older relay, for comparisons). */
  script?: string;
}

/** Starts the relay on a free loopback port and waits for its "listening" line. */
export async function spawnRelay(o: SpawnRelayOptions): Promise<RelayProcess> {
  const script = o.script ??
    new URL("../../server.ts", import.meta.url).pathname;
  const denoArgs = [
    "run",
    "--v8-flags=--max-semi-space-size=1",
    "--allow-net=127.0.0.1,localhost",
    `--allow-read=${o.certsDir}`,
    script,
    "--port",
    "0",
    "--cert",
    `${o.certsDir}/relay.pem`,
    "--key",
    `${o.certsDir}/relay-key.pem`,
    ...(o.args ?? []),
  ];
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const cmd = o.ulimitN === undefined
    ? new Deno.Command(Deno.execPath(), {
      args: denoArgs,
      stderr: "piped",
      stdout: "null",
    })
    : new Deno.Command("bash", {
      args: [
        "-c",
        `ulimit -n ${o.ulimitN} && exec ${quote(Deno.execPath())} ${
          denoArgs.map(quote).join(" ")
        }`,
      ],
      stderr: "piped",
      stdout: "null",
    });
  const child = cmd.spawn();
  const lines: string[] = [];
  let running = true;
  const exited = child.status.then((s) => {
    running = false;
    return s.code;
  });
  const { promise: listening, resolve, reject } = Promise.withResolvers<
    number
  >();
  (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stderr) {
      buf += dec.decode(chunk, { stream: true });
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const l of parts) {
        lines.push(l);
        const m = /listening on wss:\/\/[^:]+:(\d+)\/ws/.exec(l);
        if (m) resolve(Number(m[1]));
      }
    }
    reject(new Error(`relay exited before listening:\n${lines.join("\n")}`));
  })();
  const timer = setTimeout(
    () => reject(new Error("relay did not start in 20 s")),
    20000,
  );
  const port = await listening.finally(() => clearTimeout(timer));
  return {
    pid: child.pid,
    port,
    lines,
    alive: () => running,
    exited,
    async stop() {
      if (running) {
        try {
          child.kill("SIGTERM");
        } catch { /* exited */ }
        const t = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* exited */ }
        }, 3000);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return await exited;
    },
  };
}

/** VmRSS and VmHWM (peak) of `pid`, in KiB. */
export async function memoryOf(
  pid: number,
): Promise<{ rssKb: number; peakKb: number }> {
  // Through `cat`: Deno grants another process's /proc entries only with --allow-all.
  const s = await readProc(`${pid}/status`);
  const kb = (k: string) =>
    Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
  return { rssKb: kb("VmRSS"), peakKb: kb("VmHWM") };
}

/** What {@link giantFrames} measured. */
export interface GiantFrameResult {
  /** Per connection: ms from writing the frame header to the relay's close (frame or end of stream). */
  closeMs: number[];
  /** Close codes received (undefined: the stream ended without a close frame). */
  codes: (number | undefined)[];
  /** Relay RSS before the attack and its peak (VmHWM) and RSS after, KiB. */
  rssBeforeKb: number;
  peakKb: number;
  rssAfterKb: number;
  /** Payload bytes the attackers managed to write before the relay closed. */
  bytesSent: number;
}

/**
 * `count` concurrent WebSocket messages of `sizeMiB` MiB each, written as
 * fast as the relay takes them for at most `budgetMs`: how long until the
 * relay closes each connection, and what its memory does.
 */
export async function giantFrames(
  relay: { pid: number; port: number },
  caPem: string,
  count = 6,
  sizeMiB = 63,
  budgetMs = 3000,
): Promise<GiantFrameResult> {
  const before = await memoryOf(relay.pid);
  const socks = await Promise.all(
    Array.from(
      { length: count },
      () => RawWs.open({ port: relay.port, caPem }),
    ),
  );
  let bytesSent = 0;
  const len = sizeMiB * 1024 * 1024;
  const head = new Uint8Array(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  new DataView(head.buffer).setUint32(6, len);
  const chunk = new Uint8Array(1 << 20);
  const results = await Promise.all(socks.map(async (ws) => {
    const started = performance.now();
    let closed = false;
    const writing = (async () => {
      try {
        await ws.write(concat(head, chunk.subarray(0, 65536)));
        bytesSent += 65536;
        for (
          let sent = 65536;
          sent < len && !closed && performance.now() - started < budgetMs;
        ) {
          await ws.write(chunk);
          sent += chunk.length;
          bytesSent += chunk.length;
        }
      } catch {
        // the relay closed the connection
      }
    })();
    let code: number | undefined;
    try {
      code = (await ws.closeFrame(budgetMs + 2000))?.code;
    } catch {
      code = undefined;
    }
    const ms = performance.now() - started;
    closed = true;
    ws.close();
    await writing;
    return { ms, code };
  }));
  const after = await memoryOf(relay.pid);
  return {
    closeMs: results.map((r) => r.ms),
    codes: results.map((r) => r.code),
    rssBeforeKb: before.rssKb,
    peakKb: after.peakKb,
    rssAfterKb: after.rssKb,
    bytesSent,
  };
}

/** Close code the relay uses for giant frames. */
export const GIANT_FRAME_CLOSE = CloseCode.TOO_BIG;
