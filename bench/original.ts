/**
 * The original design as a baseline (issue 12): its scheme rebuilt from its
 * description (/work/shared/seeds: per-message ECDSA P-256 signatures,
 * AES-256-GCM, base64 JSON over `websockets`) in Python — a relay
 * (`bench/original/relay.py`) and two clients (`bench/original/client.py`),
 * run as `/usr/bin/python3` with Debian's python3-websockets and
 * python3-cryptography — through its own relay, in the same bench run as
 * ours; then ours ÷ it per body size and direction against the ≥ 2× target.
 *
 * Each row starts a fresh customer and bank (the bank sends, or both send),
 * `N` messages of `size` bytes; the receiving client timestamps each message
 * after verify + replay check + decrypt + print (as the original prints
 * every message), and reports counts and monotonic timestamps at the end.
 * msgs/s = messages after the first 5 % ÷ time from the 5 % mark to the last
 * one, both directions together for "both" (as bench/e2e.ts counts ours).
 * Every run is bounded in messages and wall-clock time.
 * @module
 */

import { cpuUsOf, statusWithin } from "./server_process.ts";

/** The Python interpreter with Debian's websockets and cryptography. */
export const PYTHON = "/usr/bin/python3";
/** Target: ours ÷ the original at every size, one direction and both. */
export const ORIGINAL_RATIO_TARGET = 2;
/** Body sizes of the comparison (issue 12): 256 B, 4 KiB, 60 KiB. */
export const ORIGINAL_SIZES = [256, 4096, 61440] as const;
/** Time allowed for a client to connect and finish the hello exchange. */
const READY_TIMEOUT_MS = 20_000;

/** One measured row of the original design. */
export interface OriginalRow {
  /** Application body bytes per message. */
  bodySize: number;
  /** "one": bank → customer; "both": both send at once. */
  direction: "one" | "both";
  /** Messages sent per direction. */
  messages: number;
  /** Messages received (all directions). */
  delivered: number;
  /** Messages/s after warm-up, all directions together. */
  msgsPerSec: number;
  /** Body MB/s (10^6 bytes). */
  mbPerSec: number;
  /** Send → receive latency (ms), the receivers' p50 / p99 / max (the worst of the two for "both"). */
  p50Ms: number;
  /** 99th percentile. */
  p99Ms: number;
  /** Maximum. */
  maxMs: number;
  /** False when the wall-clock cap ended a stream first. */
  complete: boolean;
  /** CPU µs per delivered message (bank, customer, relay; /proc, 10 ms resolution). */
  cpuUsPerMsg: { bank: number; customer: number; relay: number };
  /** Why the row has no figures (a client failed or timed out). */
  error?: string;
}

/** What the original-baseline section measured. */
export interface OriginalFigures {
  /** False when it could not run (no python3, no websockets, …). */
  available: boolean;
  /** Why not. */
  reason?: string;
  /** Every row. */
  rows?: OriginalRow[];
  /** How it was measured. */
  setup?: string;
}

/** Ours (a bench/e2e.ts row) against the original at one size and direction. */
export interface OriginalComparison {
  /** Body bytes. */
  bodySize: number;
  /** Direction. */
  direction: "one" | "both";
  /** Our end-to-end msgs/s (null when the e2e section did not measure this size). */
  oursMsgsPerSec: number | null;
  /** The original's msgs/s. */
  originalMsgsPerSec: number;
  /** ours ÷ original (null when ours is missing). */
  ratio: number | null;
  /** The target ratio. */
  target: number;
  /** ratio ≥ target; null when not judged. */
  met: boolean | null;
  /** ratio − target (positive = to spare). */
  margin: number | null;
}

/** The ours-side figures the comparison needs (a subset of bench/e2e.ts's E2eRow). */
export interface OursRow {
  /** "one" or "both". */
  direction: "one" | "both";
  /** Body bytes (rows without it are bench/e2e.ts's 256-byte rows). */
  bodySize?: number;
  /** Cover traffic rate of the clients. */
  coverRate: number;
  /** `--crypto` mode. */
  crypto: string;
  /** True for bench/e2e.ts's floor row (no protocol work: never compared). */
  floor?: boolean;
  /** Lines in flight at most (1 = the low-load latency row). */
  window: number;
  /** Messages/s. */
  msgsPerSec: number;
  /** False when capped. */
  complete: boolean;
}

/** Options of {@link measureOriginal}. */
export interface OriginalOptions {
  /** Relay certificate and key, CA for the clients. */
  certPath: string;
  /** Relay key. */
  keyPath: string;
  /** CA certificate. */
  caPath: string;
  /** Body sizes to measure. */
  sizes: readonly number[];
  /** Messages per direction for a body size. */
  messages: (size: number) => number;
  /** Wall-clock cap of one row (ms). */
  capMs: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** A Python subprocess whose stdout lines are JSON objects. */
class PyProcess {
  readonly child: Deno.ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  readonly #waiters: {
    type: string;
    resolve: (v: Record<string, unknown>) => void;
  }[] = [];
  readonly #reading: Promise<void>;
  readonly stderr: Promise<string>;

  constructor(script: string, args: string[], stdin: "null" | "piped") {
    this.child = new Deno.Command(PYTHON, {
      args: [
        new URL(`./original/${script}`, import.meta.url).pathname,
        ...args,
      ],
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reading = this.#read();
    this.stderr = new Response(this.child.stderr).text().catch(() => "");
  }

  async #read(): Promise<void> {
    let rest = "";
    try {
      for await (
        const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        rest += chunk;
        let start = 0;
        let i;
        while ((i = rest.indexOf("\n", start)) >= 0) {
          const line = rest.slice(start, i);
          start = i + 1;
          // Message lines are the received bodies: not parsed (the client times them).
          if (line.startsWith('{"type": "message"')) continue;
          try {
            this.#take(JSON.parse(line));
          } catch { /* not JSON */ }
        }
        rest = rest.slice(start);
      }
    } catch { /* closed */ }
  }

  #take(ev: Record<string, unknown>): void {
    this.lines.push(ev);
    for (const w of this.#waiters.splice(0)) {
      if (w.type === ev.type) w.resolve(ev);
      else this.#waiters.push(w);
    }
  }

  /** Resolves with the first line of `type` (already seen or still to come), or rejects after `ms`. */
  wait(type: string, ms: number): Promise<Record<string, unknown>> {
    const seen = this.lines.find((l) => l.type === type);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(async () => {
        reject(
          new Error(
            `${type}: timed out; stderr: ${(await this.stop()).slice(-300)}`,
          ),
        );
      }, ms);
      this.#waiters.push({
        type,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
      });
    });
  }

  /** Closes stdin (a `--hold` client exits then). */
  async release(): Promise<void> {
    try {
      await this.child.stdin.close();
    } catch { /* closed */ }
  }

  /** SIGTERM (then SIGKILL after 3 s) unless it exited; resolves with stderr. */
  async stop(): Promise<string> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* exited */ }
    await statusWithin(this.child, 3000);
    await this.#reading;
    return await this.stderr;
  }

  /** Waits for the exit (SIGKILL after `ms`). */
  async exit(ms: number): Promise<number> {
    const s = await statusWithin(this.child, ms);
    await this.#reading;
    await this.stderr;
    return s.code;
  }
}

/** Runs the original design through its own relay at each size, one direction and both. */
export async function measureOriginal(
  opts: OriginalOptions,
): Promise<OriginalFigures> {
  const log = opts.log ?? (() => {});
  const check = await new Deno.Command(PYTHON, {
    args: ["-c", "import websockets, cryptography"],
    stdout: "null",
    stderr: "piped",
  }).output().catch((e) => ({ code: -1, stderr: String(e) }));
  if (check.code !== 0) {
    return {
      available: false,
      reason: `${PYTHON} with websockets and cryptography is needed (Debian: ` +
        `apt-get install python3-websockets python3-cryptography)`,
    };
  }
  const relay = new PyProcess("relay.py", [
    "--cert",
    opts.certPath,
    "--key",
    opts.keyPath,
  ], "null");
  const rows: OriginalRow[] = [];
  try {
    const port = Number(
      (await relay.wait("listening", READY_TIMEOUT_MS)).port,
    );
    const url = `wss://localhost:${port}`;
    for (const size of opts.sizes) {
      for (const direction of ["one", "both"] as const) {
        const r = await runRow(url, relay, opts, size, direction).catch((
          e,
        ): OriginalRow => ({
          bodySize: size,
          direction,
          messages: opts.messages(size),
          delivered: 0,
          msgsPerSec: 0,
          mbPerSec: 0,
          p50Ms: 0,
          p99Ms: 0,
          maxMs: 0,
          complete: false,
          cpuUsPerMsg: { bank: 0, customer: 0, relay: 0 },
          error: String((e as Error).message).slice(0, 200),
        }));
        rows.push(r);
        log(
          `original ${size} B ${direction}: ${Math.round(r.msgsPerSec)} msgs/s`,
        );
      }
    }
  } finally {
    await relay.stop();
  }
  return {
    available: true,
    rows,
    setup:
      `bench/original/{relay,client}.py (${PYTHON}, Debian python3-websockets + python3-cryptography): ` +
      `per message a random nonce, AES-256-GCM, ECDSA P-256 over nonce‖ciphertext, base64 JSON text ` +
      `frames through its own TLS relay; receiver verifies, checks the nonce, decrypts, prints`,
  };
}

async function runRow(
  url: string,
  relay: PyProcess,
  opts: OriginalOptions,
  size: number,
  direction: "one" | "both",
): Promise<OriginalRow> {
  const n = opts.messages(size);
  const cap = String(opts.capMs / 1000);
  const common = [
    "--url",
    url,
    "--ca",
    opts.caPath,
    "--size",
    String(size),
    "--hold",
  ];
  const customer = new PyProcess("client.py", [
    ...common,
    "--role",
    "customer",
    "--receive",
    String(n),
    "--send",
    direction === "both" ? String(n) : "0",
    "--cap",
    cap,
  ], "piped");
  let bank: PyProcess | undefined;
  const relayCpu0 = await cpuUsOf(relay.child.pid);
  try {
    const id = String((await customer.wait("ready", READY_TIMEOUT_MS)).id);
    bank = new PyProcess("client.py", [
      ...common,
      "--role",
      "bank",
      "--peer",
      id,
      "--send",
      String(n),
      "--receive",
      direction === "both" ? String(n) : "0",
      "--cap",
      cap,
    ], "piped");
    const wall = opts.capMs * 2 + READY_TIMEOUT_MS;
    const done = await Promise.all([
      customer.wait("done", wall),
      bank.wait("done", wall),
    ]);
    const cpu = await Promise.all([
      cpuUsOf(bank.child.pid),
      cpuUsOf(customer.child.pid),
      cpuUsOf(relay.child.pid),
    ]);
    await Promise.all([customer.release(), bank.release()]);
    await Promise.all([customer.exit(5000), bank.exit(5000)]);
    const receivers = direction === "both" ? done : [done[0]];
    const num = (v: unknown) => typeof v === "number" ? v : NaN;
    const delivered = receivers.reduce((s, d) => s + num(d.received), 0);
    const counted = receivers.reduce(
      (s, d) => s + num(d.received) - num(d.warm),
      0,
    );
    const start = Math.min(...receivers.map((d) => num(d.warmAt)));
    const end = Math.max(...receivers.map((d) => num(d.lastAt)));
    const msgsPerSec = end > start ? counted / (end - start) : 0;
    const worst = (k: string) => Math.max(...receivers.map((d) => num(d[k])));
    const per = (us: number) => delivered > 0 ? us / delivered : 0;
    return {
      bodySize: size,
      direction,
      messages: n,
      delivered,
      msgsPerSec,
      mbPerSec: msgsPerSec * size / 1e6,
      p50Ms: worst("p50Ms"),
      p99Ms: worst("p99Ms"),
      maxMs: worst("maxMs"),
      complete: delivered === n * receivers.length,
      cpuUsPerMsg: {
        bank: per(cpu[0]),
        customer: per(cpu[1]),
        relay: per(cpu[2] - relayCpu0),
      },
    };
  } finally {
    await Promise.all([customer.stop(), bank?.stop()]);
  }
}

/**
 * Ours ÷ the original per size and direction. Ours is the first e2e row of
 * that body size and direction with cover rate 0, `--crypto keys` and more
 * than one message in flight (rows without `bodySize` are
 * `defaultBodySize`; a capped row's rate counts: it is measured over what
 * was delivered).
 */
export function compareWithOriginal(
  ours: readonly OursRow[],
  original: readonly OriginalRow[],
  defaultBodySize: number,
): OriginalComparison[] {
  return original.map((o) => {
    const mine = ours.find((r) =>
      (r.bodySize ?? defaultBodySize) === o.bodySize &&
      r.direction === o.direction && r.coverRate === 0 &&
      r.crypto === "keys" && r.window > 1 && !r.floor
    );
    const ratio = mine && o.msgsPerSec > 0 && !o.error
      ? mine.msgsPerSec / o.msgsPerSec
      : null;
    return {
      bodySize: o.bodySize,
      direction: o.direction,
      oursMsgsPerSec: mine?.msgsPerSec ?? null,
      originalMsgsPerSec: o.msgsPerSec,
      ratio,
      target: ORIGINAL_RATIO_TARGET,
      met: ratio === null ? null : ratio >= ORIGINAL_RATIO_TARGET,
      margin: ratio === null ? null : ratio - ORIGINAL_RATIO_TARGET,
    };
  });
}

/** Text lines for the bench's stdout: the original's rows, then ours ÷ it with verdicts. */
export function renderOriginal(
  f: OriginalFigures,
  cmp: readonly OriginalComparison[],
  table: (rows: (string | number)[][]) => string,
): string[] {
  if (!f.available) return [`Original design baseline: ${f.reason}`, ""];
  const lines = [
    `Original design baseline (${f.setup}):`,
    table([
      [
        "body B",
        "direction",
        "delivered",
        "msgs/s",
        "MB/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU µs/msg bank",
        "customer",
        "relay",
      ],
      ...f.rows!.map((r) => [
        String(r.bodySize),
        r.direction + (r.error ? " (failed)" : r.complete ? "" : " (capped)"),
        String(r.delivered),
        r.msgsPerSec,
        r.mbPerSec,
        r.p50Ms,
        r.p99Ms,
        r.maxMs,
        r.cpuUsPerMsg.bank,
        r.cpuUsPerMsg.customer,
        r.cpuUsPerMsg.relay,
      ]),
    ]),
    `Target ours ≥ ${ORIGINAL_RATIO_TARGET}× the original at every size, one direction and both:`,
    table([
      ["body B", "direction", "ours msgs/s", "original", "ratio", "verdict"],
      ...cmp.map((c) => [
        String(c.bodySize),
        c.direction,
        c.oursMsgsPerSec ?? "-",
        c.originalMsgsPerSec,
        c.ratio === null ? "-" : c.ratio.toFixed(2),
        c.met === null
          ? c.oursMsgsPerSec === null
            ? "not judged (e2e did not measure this size and direction)"
            : "not judged (the original's row did not finish)"
          : `${c.met ? "MET" : "MISSED"} (${c.margin! >= 0 ? "+" : ""}${
            c.margin!.toFixed(2)
          } vs ${c.target}×)`,
      ]),
    ]),
    "",
  ];
  return lines;
}
