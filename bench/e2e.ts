/**
 * End-to-end benchmark: a bank and a customer client — the real driver,
 * `clients/bank.ts` and `clients/customer.ts` in `--json` mode, each its own
 * `deno run` subprocess with the permissions of `deno task bank|customer` —
 * talking through a relay subprocess started with its default limits.
 *
 * The bench writes message lines on a client's stdin as fast as the driver
 * accepts them: at most {@link WINDOW} lines written but not yet delivered
 * (the default `--outbox`, so no `outbox-full` ever), in chunks. It reads
 * both clients' stdout and timestamps, with its one clock, the write of each
 * line and the `message` event of the same line on the other side (the line
 * carries its index): latency = send → delivery, and messages/s. Bodies are
 * 256 bytes; chain signing every 64 (the default); `--crypto keys` (the
 * default); `--cover-rate 0` for the throughput rows and the default cover
 * rate for one row. Every run is bounded in messages and wall-clock time and
 * ends with a clean close (stdin EOF).
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_COVER_RATE, DEFAULT_OUTBOX } from "../clients/args.ts";
import { ensureCerts } from "../tools/certs.ts";
import { certificateFingerprint } from "../lib/x509.ts";
import { cpuUsOf, type ServerProcess, startServer } from "./server_process.ts";

/** Lines written but not yet delivered: the driver's default outbox bound, so it never refuses one. */
export const WINDOW = DEFAULT_OUTBOX;
/** Most lines per stdin write. */
const CHUNK = 256;
/** Application body bytes per message. */
export const BODY_SIZE = 256;
/** Target throughput (messages/s, 256 B, chain signing). */
export const TARGET_MSGS_PER_SEC = 25_000;
/** Fraction of each stream's first messages left out of the figures (JIT warm-up, handshake tail). */
const WARMUP_FRACTION = 0.05;
/** Time allowed for the clients to connect and finish the handshake. */
const SECURE_TIMEOUT_MS = 30_000;
/** Time allowed for the clean close after the last message. */
const CLOSE_TIMEOUT_S = 10;
/** Messages of the low-load latency row (one line in flight). */
const LOW_LOAD_MESSAGES = 300;

/** Certificates of the run (the CA goes to the clients' `--ca`). */
export interface E2eCerts {
  /** Folder of the files. */
  certDir: string;
  /** Relay certificate. */
  certPath: string;
  /** Relay key. */
  keyPath: string;
  /** CA certificate. */
  caPath: string;
}

/** Options of {@link measureE2e}. */
export interface E2eOptions {
  /** Certificates. */
  certs: E2eCerts;
  /** Messages per direction in the throughput rows. */
  messages: number;
  /** Wall-clock cap of one stream (ms): the row is reported incomplete past it. */
  capMs: number;
  /** Write CPU profiles of the two clients into this folder (`--cpu-prof`). */
  profileDir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** One measured stream (or pair of streams). */
export interface E2eRow {
  /** What was measured. */
  name: string;
  /** "bank→customer" or "both". */
  direction: "one" | "both";
  /** Client `--cover-rate`. */
  coverRate: number;
  /** Client `--crypto` mode. */
  crypto: "keys" | "fast";
  /** Lines written per direction. */
  messages: number;
  /** Lines delivered (all directions). */
  delivered: number;
  /** Lines written but not delivered at most. */
  window: number;
  /** Delivered messages per second, all directions together (after warm-up). */
  msgsPerSec: number;
  /** Send → delivery latency (ms). */
  p50Ms: number;
  /** 99th percentile. */
  p99Ms: number;
  /** Maximum. */
  maxMs: number;
  /** False when the wall-clock cap ended the stream first. */
  complete: boolean;
  /** CPU time (µs, from /proc, 10 ms resolution) per delivered message over the whole stream, warm-up included. */
  cpuUsPerMsg?: { bank: number; customer: number; relay: number };
}

/** Everything the e2e section measured. */
export interface E2eFigures {
  /** False when it could not run. */
  available: boolean;
  /** Why not. */
  reason?: string;
  /** One direction, cover rate 0: messages/s. */
  msgsPerSec?: number;
  /** Both directions at once, cover rate 0: messages/s of both together. */
  bothMsgsPerSec?: number;
  /** One direction: latency p50 (ms). */
  p50Ms?: number;
  /** One direction: latency p99 (ms). */
  p99Ms?: number;
  /** The target (messages/s). */
  targetMsgsPerSec?: number;
  /** msgsPerSec / target. */
  ofTarget?: number;
  /** Every row. */
  rows?: E2eRow[];
  /** Exit codes of the clients (0 = clean close). */
  exitCodes?: number[];
  /** Errors the clients reported (code → count). */
  clientErrors?: Record<string, number>;
  /** How it was measured. */
  setup?: string;
}

/** A running client subprocess whose JSON events the bench reads. */
class Peer {
  readonly role: "bank" | "customer";
  readonly child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #encoder = new TextEncoder();
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;
  readonly ready = Promise.withResolvers<string>();
  readonly secure = Promise.withResolvers<void>();
  readonly errors: Record<string, number> = {};
  /** Called with the index carried by each delivered message line, and the time read. */
  onMessage: (index: number, at: number) => void = () => {};

  constructor(
    role: "bank" | "customer",
    args: string[],
    dirs: string[],
    denoArgs: string[],
  ) {
    this.role = role;
    const script = new URL(`../clients/${role}.ts`, import.meta.url);
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--allow-net=localhost,127.0.0.1",
        `--allow-read=${dirs.join(",")}`,
        `--allow-write=${dirs[0]}`,
        ...denoArgs,
        script.pathname,
        "--json",
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.#reading = this.#read();
    this.#stderr = new Response(this.child.stderr).text().catch(() => "");
  }

  async #read(): Promise<void> {
    let rest = "";
    try {
      for await (
        const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        const at = performance.now();
        rest += chunk;
        let start = 0;
        let i;
        while ((i = rest.indexOf("\n", start)) >= 0) {
          this.#line(rest.slice(start, i), at);
          start = i + 1;
        }
        rest = rest.slice(start);
      }
    } catch { /* closed */ }
    const gone = new Error(`${this.role} exited before the session was up`);
    this.ready.reject(gone);
    this.secure.reject(gone);
  }

  #line(line: string, at: number): void {
    // The hot path: message and sent/delivered lines, without JSON.parse.
    if (line.startsWith('{"type":"message","text":"')) {
      this.onMessage(parseInt(line.slice(26, 40), 10), at);
      return;
    }
    if (
      line.startsWith('{"type":"sent"') ||
      line.startsWith('{"type":"delivered"')
    ) return;
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(line);
    } catch {
      return;
    }
    if (ev.type === "ready") this.ready.resolve(String(ev.address));
    else if (ev.type === "secure") this.secure.resolve();
    else if (ev.type === "error") {
      const code = String(ev.code);
      this.errors[code] = (this.errors[code] ?? 0) + 1;
    }
  }

  /** Writes text on the client's stdin (resolves when the pipe took it). */
  async write(text: string): Promise<void> {
    await this.#writer.write(this.#encoder.encode(text));
  }

  /** Closes stdin (EOF: the client closes the conversation once all is acknowledged). */
  async eof(): Promise<void> {
    try {
      await this.#writer.close();
    } catch { /* already gone */ }
  }

  /** Waits for the exit (SIGKILL after `ms`); resolves to the exit code. */
  async exit(ms: number): Promise<number> {
    const killer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* exited */ }
    }, ms);
    const status = await this.child.status;
    clearTimeout(killer);
    await this.#reading;
    await this.#stderr;
    return status.code;
  }

  /** The client's stderr (after exit). */
  stderr(): Promise<string> {
    return this.#stderr;
  }
}

/** Runs `make` and adds the CPU the two clients and the relay used, per delivered message. */
async function metered(
  pair: [Peer, Peer],
  relay: ServerProcess,
  make: () => Promise<E2eRow>,
): Promise<E2eRow> {
  const pids = [pair[0].child.pid, pair[1].child.pid, relay.pid];
  const before = await Promise.all(pids.map(cpuUsOf));
  const r = await make();
  const after = await Promise.all(pids.map(cpuUsOf));
  const per = (i: number) =>
    r.delivered > 0 ? (after[i] - before[i]) / r.delivered : 0;
  r.cpuUsPerMsg = { bank: per(0), customer: per(1), relay: per(2) };
  return r;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** The line of message `i`: its index, padded to {@link BODY_SIZE} bytes. */
function line(i: number): string {
  const head = `${i} `;
  return head + "x".repeat(BODY_SIZE - head.length) + "\n";
}

interface StreamResult {
  delivered: number;
  firstAt: number;
  warmAt: number;
  lastAt: number;
  warm: number;
  latencies: Float64Array;
  complete: boolean;
}

/**
 * Writes `n` lines on `from`'s stdin, at most `window` undelivered at once,
 * and waits until `to` delivered them all or `deadline` passed.
 */
async function stream(
  from: Peer,
  to: Peer,
  n: number,
  window: number,
  deadline: number,
): Promise<StreamResult> {
  const sentAt = new Float64Array(n);
  const got = new Uint8Array(n);
  const latencies = new Float64Array(n);
  const warm = Math.floor(n * WARMUP_FRACTION);
  let next = 0;
  let delivered = 0;
  let firstAt = 0;
  let warmAt = 0;
  let lastAt = 0;
  let wake: (() => void) | undefined;
  to.onMessage = (i, at) => {
    if (!(i >= 0 && i < n) || got[i]) return; // not ours, or a duplicate
    got[i] = 1;
    latencies[delivered++] = at - sentAt[i];
    if (delivered === warm) warmAt = at;
    lastAt = at;
    wake?.();
  };
  const lines = Array.from({ length: n }, (_, i) => line(i));
  firstAt = performance.now();
  while (delivered < n && performance.now() < deadline) {
    const room = Math.min(window - (next - delivered), n - next, CHUNK);
    if (room > 0) {
      const text = lines.slice(next, next + room).join("");
      const t = performance.now();
      sentAt.fill(t, next, next + room);
      next += room;
      await from.write(text);
      continue;
    }
    await new Promise<void>((r) => {
      const timer = setTimeout(r, 200);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        r();
      };
    });
  }
  to.onMessage = () => {};
  return {
    delivered,
    firstAt,
    warmAt: warm > 0 ? warmAt : firstAt,
    lastAt,
    warm,
    latencies: latencies.subarray(0, delivered),
    complete: delivered === n,
  };
}

function row(
  name: string,
  direction: "one" | "both",
  coverRate: number,
  crypto: "keys" | "fast",
  messages: number,
  window: number,
  results: StreamResult[],
): E2eRow {
  const delivered = results.reduce((s, r) => s + r.delivered, 0);
  const counted = results.reduce((s, r) => s + r.delivered - r.warm, 0);
  const start = Math.min(...results.map((r) => r.warmAt));
  const end = Math.max(...results.map((r) => r.lastAt));
  const lat = new Float64Array(
    results.flatMap((r) => [...r.latencies.subarray(r.warm)]),
  ).sort();
  return {
    name,
    direction,
    coverRate,
    crypto,
    messages,
    delivered,
    window,
    msgsPerSec: end > start ? counted / ((end - start) / 1000) : 0,
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
    maxMs: lat.length ? lat[lat.length - 1] : 0,
    complete: results.every((r) => r.complete),
  };
}

/** Starts a customer and a bank that contacts it; resolves once both are secure. */
async function startPair(
  relayUrl: string,
  certs: E2eCerts,
  dir: string,
  coverRate: number,
  opts: E2eOptions,
  extra: string[] = [],
): Promise<[Peer, Peer]> {
  const common = (role: string) => [
    ...extra,
    "--keys",
    `${dir}/${role}`,
    "--relay",
    relayUrl,
    "--ca",
    certs.caPath,
    "--cover-rate",
    String(coverRate),
    "--wait",
    String(SECURE_TIMEOUT_MS / 1000),
    "--close-timeout",
    String(CLOSE_TIMEOUT_S),
  ];
  const prof = (role: string) =>
    opts.profileDir
      ? ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}/${role}`]
      : [];
  const dirs = [dir, certs.certDir];
  const pin = await certificateFingerprint(
    await Deno.readTextFile(certs.caPath),
  );
  const customer = new Peer(
    "customer",
    [...common("customer"), "--pin", pin],
    dirs,
    prof("customer"),
  );
  let bank: Peer | undefined;
  try {
    const address = await withTimeout(customer.ready.promise, "customer ready");
    bank = new Peer(
      "bank",
      [...common("bank"), "--peer", address],
      dirs,
      prof("bank"),
    );
    await withTimeout(
      Promise.all([bank.secure.promise, customer.secure.promise]),
      "secure session",
    );
    return [bank, customer];
  } catch (e) {
    for (const p of [customer, bank]) {
      if (!p) continue;
      try {
        p.child.kill("SIGKILL");
      } catch { /* gone */ }
      await p.exit(1000);
    }
    throw new Error(
      `${(e as Error).message}; customer stderr: ${
        (await customer.stderr()).slice(-300)
      }`,
    );
  }
}

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) =>
    timer = setTimeout(
      () => reject(new Error(`${what}: timed out`)),
      SECURE_TIMEOUT_MS,
    )
  );
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Clean close of both (stdin EOF); exit codes. */
async function closePair(pair: [Peer, Peer]): Promise<number[]> {
  await Promise.all(pair.map((p) => p.eof()));
  return await Promise.all(
    pair.map((p) => p.exit((CLOSE_TIMEOUT_S + 5) * 1000)),
  );
}

/** Runs the e2e section: starts a relay, two client pairs, measures, closes. */
export async function measureE2e(opts: E2eOptions): Promise<E2eFigures> {
  const log = opts.log ?? (() => {});
  const relay = await startServer({
    kind: "relay",
    ...opts.certs,
    args: ["--quiet"],
  });
  const dir = await Deno.makeTempDir({ prefix: "e2e-bench-" });
  const rows: E2eRow[] = [];
  const exitCodes: number[] = [];
  const clientErrors: Record<string, number> = {};
  const n = opts.messages;
  try {
    // Pair 1: no cover traffic — throughput one way, both ways, low load.
    let pair = await startPair(relay.url, opts.certs, `${dir}/a`, 0, opts);
    let [bank, customer] = pair;
    try {
      let cap = performance.now() + opts.capMs;
      rows.push(
        await metered(
          pair,
          relay,
          async () =>
            row("bank→customer", "one", 0, "keys", n, WINDOW, [
              await stream(bank, customer, n, WINDOW, cap),
            ]),
        ),
      );
      log(`e2e one direction: ${Math.round(rows.at(-1)!.msgsPerSec)} msgs/s`);
      cap = performance.now() + opts.capMs;
      rows.push(
        await metered(pair, relay, async () =>
          row(
            "both directions",
            "both",
            0,
            "keys",
            n,
            WINDOW,
            await Promise.all([
              stream(bank, customer, n, WINDOW, cap),
              stream(customer, bank, n, WINDOW, cap),
            ]),
          )),
      );
      log(`e2e both directions: ${Math.round(rows.at(-1)!.msgsPerSec)} msgs/s`);
      cap = performance.now() + opts.capMs;
      const low = Math.min(LOW_LOAD_MESSAGES, n);
      rows.push(
        await metered(
          pair,
          relay,
          async () =>
            row("low load (1 in flight)", "one", 0, "keys", low, 1, [
              await stream(bank, customer, low, 1, cap),
            ]),
        ),
      );
    } finally {
      exitCodes.push(...await closePair(pair));
      for (const p of pair) mergeErrors(clientErrors, p.errors);
    }
    // Pair 2: the default cover rate.
    pair = await startPair(
      relay.url,
      opts.certs,
      `${dir}/b`,
      DEFAULT_COVER_RATE,
      opts,
    );
    [bank, customer] = pair;
    try {
      const cap = performance.now() + opts.capMs;
      rows.push(
        await metered(pair, relay, async () =>
          row(
            `bank→customer, --cover-rate ${DEFAULT_COVER_RATE}`,
            "one",
            DEFAULT_COVER_RATE,
            "keys",
            n,
            WINDOW,
            [await stream(bank, customer, n, WINDOW, cap)],
          )),
      );
    } finally {
      exitCodes.push(...await closePair(pair));
      for (const p of pair) mergeErrors(clientErrors, p.errors);
    }
    // Pair 3: --crypto fast (AES-GCM in node:crypto too), no cover traffic.
    pair = await startPair(relay.url, opts.certs, `${dir}/c`, 0, opts, [
      "--crypto",
      "fast",
    ]);
    [bank, customer] = pair;
    try {
      const cap = performance.now() + opts.capMs;
      rows.push(
        await metered(
          pair,
          relay,
          async () =>
            row("bank→customer, --crypto fast", "one", 0, "fast", n, WINDOW, [
              await stream(bank, customer, n, WINDOW, cap),
            ]),
        ),
      );
    } finally {
      exitCodes.push(...await closePair(pair));
      for (const p of pair) mergeErrors(clientErrors, p.errors);
    }
  } finally {
    await relay.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const one = rows[0];
  return {
    available: true,
    msgsPerSec: one.msgsPerSec,
    bothMsgsPerSec: rows[1].msgsPerSec,
    p50Ms: one.p50Ms,
    p99Ms: one.p99Ms,
    targetMsgsPerSec: TARGET_MSGS_PER_SEC,
    ofTarget: one.msgsPerSec / TARGET_MSGS_PER_SEC,
    rows,
    exitCodes,
    clientErrors,
    setup:
      `clients/bank.ts and clients/customer.ts --json as subprocesses (--crypto keys, --sign-every 64), ` +
      `relay subprocess with default limits, ${BODY_SIZE}-byte bodies, at most ${WINDOW} lines ` +
      `undelivered, latency = stdin write → message event read (one clock)`,
  };
}

function mergeErrors(
  into: Record<string, number>,
  from: Record<string, number>,
): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      messages: { type: "string", default: "20000" },
      cap: { type: "string", default: "60" },
      prof: { type: "string" },
    },
  });
  const certDir = await Deno.makeTempDir({ prefix: "e2e-bench-certs-" });
  try {
    const c = await ensureCerts({ dir: certDir });
    const r = await measureE2e({
      certs: {
        certDir,
        certPath: c.certPath,
        keyPath: c.keyPath,
        caPath: c.caPath,
      },
      messages: Number(values.messages),
      capMs: Number(values.cap) * 1000,
      profileDir: values.prof,
      log: (l) => console.error(l),
    });
    console.log(JSON.stringify(r, null, 1));
  } finally {
    await Deno.remove(certDir, { recursive: true });
  }
}
