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
 * 256 bytes, then one row per size of {@link SIZE_ROWS} (1 KiB, 4 KiB,
 * 60 KiB: MB/s, and wire bytes per body byte from the relay's
 * `relay_bytes_forwarded_total` — every frame both ways, ACKs included —
 * over the row's body bytes) and a both-directions row per size of
 * {@link BOTH_SIZE_ROWS} (4 KiB, 60 KiB); chain signing every 64 (the default);
 * `--crypto keys` (the default); `--cover-rate 0` for the throughput rows and
 * the default cover rate for one row. The raw forwarder
 * (bench/baseline_forwarder.ts) is measured in the same run at 64 KiB
 * frames, one pair, 32 in flight, as the yardstick of the 60 KiB row, and
 * the floor (bench/floor_client.ts in place of the two clients: the same
 * processes, pipes, transport and relay with no protocol work) at 60 KiB as
 * the best that row could do on this machine. Every
 * run is bounded in messages, bytes and wall-clock time and ends with a clean
 * close (stdin EOF).
 * @module
 */

import {
  parseFlags,
  positiveInt,
  positiveNumber,
  runCli,
  UsageError,
} from "./cli.ts";
import { MAX_BODY } from "../lib/constants.ts";
import { concat, indexOfByte } from "../lib/bytes.ts";
import { DEFAULT_COVER_RATE, DEFAULT_OUTBOX } from "../clients/args.ts";
import { ensureCerts } from "../tools/certs.ts";
import { certificateFingerprint } from "../lib/x509.ts";
import { closeAll, connectMany, runPairs } from "./load.ts";
import {
  cpuUsOf,
  type ServerProcess,
  startServer,
  statusWithin,
} from "./server_process.ts";

/** Lines written but not yet delivered: the driver's default outbox bound, so it never refuses one. */
export const WINDOW = DEFAULT_OUTBOX;
/** Most lines per stdin write. */
const CHUNK = 256;
/** Most bytes per stdin write. */
const CHUNK_BYTES = 1 << 20;
/** Application body bytes per message of the 256-B rows. */
export const BODY_SIZE = 256;
/** Body sizes of the size rows (one direction, no cover traffic). */
export const SIZE_ROWS = [1024, 4096, 61440] as const;
/** Body sizes that also get a both-directions row (no cover traffic): the original design's sizes above 256 B, so ours ÷ it is judged both ways at every size. */
export const BOTH_SIZE_ROWS = [4096, 61440] as const;
/** The large-message body size (60 KiB). */
export const LARGE_BODY_SIZE = 61440;
/** Target throughput (messages/s one direction, 256 B, chain signing). */
export const TARGET_MSGS_PER_SEC = 40_000;
/** Target end-to-end throughput at 60 KiB bodies (MB/s = 10^6 body bytes/s). */
export const TARGET_LARGE_MB_PER_SEC = 150;
/** Target: the 60 KiB row reaches this fraction of the raw forwarder's MB/s (64 KiB frames) in the same run. */
export const TARGET_OF_FORWARDER = 0.4;
/** Target: relay bytes per body byte at every size ≥ 1 KiB. */
export const TARGET_WIRE_RATIO = 1.15;
/** Body bytes undelivered at most in the size rows (well below the relay's 4 MiB high-water mark). */
const WINDOW_BYTES = 2 * 1024 * 1024;
/** Body bytes per size row, per message of the plan's 256-B rows (at most {@link ROW_MESSAGES} counted): 20,000 messages → 80 MiB (1,333 of 60 KiB). */
const ROW_BYTES_PER_MESSAGE = 4 * 1024;
/** The plan's 256-B messages that size the size rows at most (longer 256-B rows do not lengthen them). */
const ROW_MESSAGES = 20_000;
/** The forwarder yardstick: frame size, frames in flight, warm-up and window (ms). */
const FORWARDER = { size: 65536, inFlight: 32, warmupMs: 300, measureMs: 1500 };
/** Fraction of each stream's first messages left out of the figures (JIT warm-up, handshake tail). */
const WARMUP_FRACTION = 0.05;
/** Time allowed for the clients to connect and finish the handshake. */
const SECURE_TIMEOUT_MS = 30_000;
/** Time allowed for the clean close after the last message. */
const CLOSE_TIMEOUT_S = 10;
/** Unmeasured messages each way on each new pair of clients before its first row. */
export const WARMUP_MESSAGES = 20_000;
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
  /**
   * Unmeasured messages each way on every new pair of clients before its
   * first row (JIT warm-up: the clients compile ~0.2 s of hot code; a cold
   * 20,000-message row measured start-up). Default {@link WARMUP_MESSAGES},
   * capped at `messages`.
   */
  warmupMessages?: number;
  /** Wall-clock cap of one stream (ms): the row is reported incomplete past it. */
  capMs: number;
  /** Write CPU profiles of the two clients into this folder (`--cpu-prof`). */
  profileDir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Experiments (`bench/e2e.ts --sizes 61440`): run only size rows of these body sizes, one pair. */
  only?: number[];
  /** Experiments (`bench/e2e.ts --relay-flag=--idle-timeout=0`): extra relay flags. */
  relayArgs?: string[];
  /** Experiments (`bench/e2e.ts --deno-flag=--v8-flags=--perf-basic-prof`): extra `deno run` flags of the two clients. */
  clientDenoArgs?: string[];
  /** Experiments (`bench/e2e.ts --baseline`): the clients talk through the raw forwarder instead of the relay (no wire figures). */
  baseline?: boolean;
  /**
   * The floor (`bench/e2e.ts --floor`): bench/floor_client.ts instead of the
   * two clients — the same processes, pipes, transport and relay, no
   * protocol work (size rows only).
   */
  floor?: boolean;
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
  /** Application body bytes per message. */
  bodySize: number;
  /** Lines written per direction. */
  messages: number;
  /** Lines delivered (all directions). */
  delivered: number;
  /** Lines written but not delivered at most. */
  window: number;
  /** Delivered messages per second, all directions together (after warm-up). */
  msgsPerSec: number;
  /** Delivered body megabytes (10^6 bytes) per second. */
  mbPerSec: number;
  /** Send → delivery latency (ms). */
  p50Ms: number;
  /** 99th percentile. */
  p99Ms: number;
  /** Maximum. */
  maxMs: number;
  /** False when the wall-clock cap ended the stream first. */
  complete: boolean;
  /** CPU time (µs, from /proc, 10 ms resolution) per delivered message over the whole stream, warm-up included. */
  cpuUsPerMsg?: {
    bank: number;
    customer: number;
    relay: number;
    /** The bench process itself (writes stdin, reads both stdouts). */
    bench?: number;
  };
  /** Bytes the relay forwarded (every frame, both ways) per delivered body byte, over the whole stream. */
  wireBytesPerBodyByte?: number;
  /** True for the floor row (bench/floor_client.ts instead of the clients: no protocol work). */
  floor?: boolean;
}

/** Everything the e2e section measured. */
export interface E2eFigures {
  /** False when it could not run. */
  available: boolean;
  /** Why not. */
  reason?: string;
  /** One direction, cover rate 0: messages/s. */
  msgsPerSec?: number;
  /** Unmeasured messages each way on each new pair before its first row. */
  warmupMessages?: number;
  /** The first pair's first warm-up stream (one direction, from the clients' start: JIT cold), messages/s. */
  coldMsgsPerSec?: number;
  /** Both directions at once, cover rate 0: messages/s of both together. */
  bothMsgsPerSec?: number;
  /** One direction: latency p50 (ms). */
  p50Ms?: number;
  /** One direction: latency p99 (ms). */
  p99Ms?: number;
  /** The target (messages/s). */
  targetMsgsPerSec?: number;
  /** The 60 KiB row: body MB/s. */
  largeMbPerSec?: number;
  /** Target of the 60 KiB row (MB/s). */
  targetLargeMbPerSec?: number;
  /** The floor row (bench/floor_client.ts, 60 KiB, no protocol work): body MB/s. */
  floorMbPerSec?: number;
  /** The raw forwarder in the same run: MB/s of 64 KiB frames, one pair, 32 in flight. */
  forwarderMbPerSec?: number;
  /** largeMbPerSec / forwarderMbPerSec. */
  ofForwarder?: number;
  /** Target of ofForwarder. */
  targetOfForwarder?: number;
  /** Wire bytes per body byte of each size row ≥ 1 KiB. */
  wire?: { bodySize: number; wireBytesPerBodyByte: number }[];
  /** Target of every wire figure (at most). */
  targetWireRatio?: number;
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

const NEWLINE = 0x0a;
const ASCII = new TextEncoder();
const DECODER = new TextDecoder();
const MESSAGE_PREFIX = ASCII.encode('{"type":"message","text":"');
const SENT_PREFIX = ASCII.encode('{"type":"sent"');
const DELIVERED_PREFIX = ASCII.encode('{"type":"delivered"');

/** Bytes of an event line enough to tell its type and a message's index. */
const LINE_HEAD = 64;
/** Bytes read from a client's stdout at once (a pipe hands over ≤ 64 KiB per read). */
const STDOUT_CHUNK = 256 * 1024;

/** Whether a line starting with `head` is a message, sent or delivered event (never parsed whole). */
function isHot(head: Uint8Array): boolean {
  return startsWith(head, 0, MESSAGE_PREFIX) ||
    startsWith(head, 0, SENT_PREFIX) || startsWith(head, 0, DELIVERED_PREFIX);
}

function startsWith(buf: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (buf.length - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (buf[at + i] !== prefix[i]) return false;
  }
  return true;
}

/** A running client subprocess whose JSON events the bench reads. */
class Peer {
  readonly role: "bank" | "customer";
  readonly child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
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
    floor = false,
  ) {
    this.role = role;
    const script = floor
      ? new URL("./floor_client.ts", import.meta.url)
      : new URL(`../clients/${role}.ts`, import.meta.url);
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
    // Bytes, not text, and no line kept whole unless it must be parsed: a
    // line's first LINE_HEAD bytes tell a message/sent/delivered line (and
    // its index), the rest of such a line is only scanned for its end (a
    // 60 KiB line is never copied or decoded: the bench must not be the
    // bottleneck). Other lines (ready, secure, error: short) are kept and
    // parsed.
    const head = new Uint8Array(LINE_HEAD);
    let headLen = 0;
    let hot: boolean | undefined;
    let parts: Uint8Array[] = [];
    const add = (seg: Uint8Array) => {
      let off = 0;
      if (headLen < LINE_HEAD) {
        off = Math.min(LINE_HEAD - headLen, seg.length);
        head.set(seg.subarray(0, off), headLen);
        headLen += off;
      }
      if (hot === undefined && headLen === LINE_HEAD) hot = isHot(head);
      if (off < seg.length && !hot) parts.push(seg.slice(off));
    };
    // BYOB reads into one buffer handed back each time (no 64 KiB chunk
    // allocated per read: ~25 % less of the bench's CPU per byte read).
    const reader = this.child.stdout.getReader({ mode: "byob" });
    let buf = new Uint8Array(STDOUT_CHUNK);
    try {
      for (;;) {
        const { value: chunk, done } = await reader.read(buf);
        if (done || chunk === undefined) break;
        buf = new Uint8Array(chunk.buffer);
        const at = performance.now();
        let start = 0;
        for (;;) {
          const nl = indexOfByte(chunk, NEWLINE, start);
          add(chunk.subarray(start, nl < 0 ? chunk.length : nl));
          if (nl < 0) break;
          const line = head.subarray(0, headLen);
          if (hot ?? isHot(line)) this.#line(line, at);
          else this.#line(concat(line, ...parts), at);
          headLen = 0;
          hot = undefined;
          parts = [];
          start = nl + 1;
        }
      }
    } catch { /* closed */ }
    const gone = new Error(`${this.role} exited before the session was up`);
    this.ready.reject(gone);
    this.secure.reject(gone);
  }

  /** One line (a hot line: its first LINE_HEAD bytes at most). */
  #line(buf: Uint8Array, at: number): void {
    // The hot path: message and sent/delivered lines, without JSON.parse.
    if (startsWith(buf, 0, MESSAGE_PREFIX)) {
      let i = MESSAGE_PREFIX.length;
      let index = 0;
      while (i < buf.length && buf[i] >= 0x30 && buf[i] <= 0x39) {
        index = index * 10 + buf[i++] - 0x30;
      }
      this.onMessage(i > MESSAGE_PREFIX.length ? index : -1, at);
      return;
    }
    if (startsWith(buf, 0, SENT_PREFIX)) return;
    if (startsWith(buf, 0, DELIVERED_PREFIX)) return;
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(DECODER.decode(buf));
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

  /** Writes bytes on the client's stdin (resolves when the pipe took them). */
  async write(bytes: Uint8Array): Promise<void> {
    await this.#writer.write(bytes);
  }

  /** Closes stdin (EOF: the client closes the conversation once all is acknowledged). */
  async eof(): Promise<void> {
    try {
      await this.#writer.close();
    } catch { /* already gone */ }
  }

  /** Waits for the exit (SIGKILL after `ms`); resolves to the exit code. */
  async exit(ms: number): Promise<number> {
    const status = await statusWithin(this.child, ms);
    await this.#reading;
    await this.#stderr;
    return status.code;
  }

  /** The client's stderr (after exit). */
  stderr(): Promise<string> {
    return this.#stderr;
  }
}

/** The relay's `relay_bytes_forwarded_total` (every DATA frame it forwarded, both ways). */
async function relayBytes(relay: Relay): Promise<number> {
  if (!relay.server.metricsUrl) {
    throw new Error("the relay runs no --metrics-port listener");
  }
  const res = await fetch(relay.server.metricsUrl);
  const text = await res.text();
  const m = text.match(/^relay_bytes_forwarded_total (\d+)/m);
  if (!m) throw new Error("relay /metrics has no relay_bytes_forwarded_total");
  return Number(m[1]);
}

/** The e2e relay and an HTTPS client that trusts its CA (for /metrics). */
interface Relay {
  server: ServerProcess;
  http: Deno.HttpClient;
}

/** Runs `make` and adds the CPU the two clients and the relay used, per delivered message, and the relay's bytes per body byte. */
async function metered(
  pair: [Peer, Peer],
  relay: Relay,
  make: () => Promise<E2eRow>,
): Promise<E2eRow> {
  const pids = [
    pair[0].child.pid,
    pair[1].child.pid,
    relay.server.pid,
    Deno.pid,
  ];
  const metrics = relay.server.metricsUrl !== undefined;
  const bytes0 = metrics ? await relayBytes(relay) : 0;
  const before = await Promise.all(pids.map(cpuUsOf));
  const r = await make();
  const after = await Promise.all(pids.map(cpuUsOf));
  const bytes1 = metrics ? await relayBytes(relay) : NaN;
  const per = (i: number) =>
    r.delivered > 0 ? (after[i] - before[i]) / r.delivered : 0;
  r.cpuUsPerMsg = {
    bank: per(0),
    customer: per(1),
    relay: per(2),
    bench: per(3),
  };
  const body = r.delivered * r.bodySize;
  if (body > 0 && metrics) r.wireBytesPerBodyByte = (bytes1 - bytes0) / body;
  return r;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * Lines `from` … `from + count − 1` as bytes: each its index, a space, `x`
 * up to `size` bytes, a newline — written over `out` (lines of this size
 * with smaller indices, or zeros) and returned as a view of it: one buffer
 * per stream, not one allocated and filled per write (1 MiB per write of
 * 60 KiB lines).
 */
function lines(
  out: Uint8Array,
  from: number,
  count: number,
  size: number,
): Uint8Array {
  const view = out.subarray(0, count * (size + 1));
  for (let k = 0; k < count; k++) {
    const at = k * (size + 1);
    if (view[at + size] !== NEWLINE) {
      view.fill(0x78, at, at + size); // "x"
      view[at + size] = NEWLINE;
    }
    const { written } = ASCII.encodeInto(`${from + k} `, view.subarray(at));
    if (written! > size) throw new RangeError(`body ${size} B: index too long`);
  }
  return view;
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
  size = BODY_SIZE,
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
  const chunk = Math.max(1, Math.min(CHUNK, Math.floor(CHUNK_BYTES / size)));
  // Reused after each write resolves (the pipe took the bytes); indices only
  // grow, so each line's digits overwrite the previous ones.
  const out = new Uint8Array(chunk * (size + 1));
  firstAt = performance.now();
  while (delivered < n && performance.now() < deadline) {
    const room = Math.min(window - (next - delivered), n - next, chunk);
    if (room > 0) {
      const bytes = lines(out, next, room, size);
      const t = performance.now();
      sentAt.fill(t, next, next + room);
      next += room;
      await from.write(bytes);
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
  bodySize = BODY_SIZE,
): E2eRow {
  const delivered = results.reduce((s, r) => s + r.delivered, 0);
  const counted = results.reduce((s, r) => s + r.delivered - r.warm, 0);
  const start = Math.min(...results.map((r) => r.warmAt));
  const end = Math.max(...results.map((r) => r.lastAt));
  const lat = new Float64Array(
    results.flatMap((r) => [...r.latencies.subarray(r.warm)]),
  ).sort();
  const msgsPerSec = end > start ? counted / ((end - start) / 1000) : 0;
  return {
    name,
    direction,
    coverRate,
    crypto,
    bodySize,
    messages,
    delivered,
    window,
    msgsPerSec,
    mbPerSec: msgsPerSec * bodySize / 1e6,
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
  const prof = (role: string) => [
    ...opts.clientDenoArgs ?? [],
    ...(opts.profileDir
      ? ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}/${role}`]
      : []),
  ];
  const dirs = [dir, certs.certDir];
  const pin = await certificateFingerprint(
    await Deno.readTextFile(certs.caPath),
  );
  const customer = new Peer(
    "customer",
    [...common("customer"), "--pin", pin],
    dirs,
    prof("customer"),
    opts.floor,
  );
  let bank: Peer | undefined;
  try {
    const address = await withTimeout(customer.ready.promise, "customer ready");
    bank = new Peer(
      "bank",
      [...common("bank"), "--peer", address],
      dirs,
      prof("bank"),
      opts.floor,
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
  const caPem = await Deno.readTextFile(opts.certs.caPath);
  const forwarderMbPerSec = await measureForwarder(opts.certs, caPem);
  log(`e2e yardstick: raw forwarder ${forwarderMbPerSec.toFixed(0)} MB/s`);
  const relay: Relay = {
    server: await startServer(
      opts.baseline ? { kind: "baseline", ...opts.certs } : {
        kind: "relay",
        ...opts.certs,
        args: ["--quiet", "--metrics-port", "0", ...opts.relayArgs ?? []],
      },
    ),
    http: Deno.createHttpClient({ caCerts: [caPem] }),
  };
  const dir = await Deno.makeTempDir({ prefix: "e2e-bench-" });
  const rows: E2eRow[] = [];
  const exitCodes: number[] = [];
  const clientErrors: Record<string, number> = {};
  const n = opts.messages;
  const warmN = Math.min(opts.warmupMessages ?? WARMUP_MESSAGES, n);
  const say = opts.log ?? (() => {});
  let cold = 0;
  try {
    // Pair 1: no cover traffic — throughput one way, both ways, low load.
    let pair = await startPair(
      relay.server.url,
      opts.certs,
      `${dir}/a`,
      0,
      opts,
    );
    let [bank, customer] = pair;
    try {
      cold = await warmUp(pair, warmN, opts.capMs, say);
      let cap = performance.now() + opts.capMs;
      if (opts.only) {
        for (const size of opts.only) {
          rows.push(await sizeRow(pair, relay, size, n, opts.capMs, log));
        }
        return {
          available: true,
          rows,
          warmupMessages: warmN,
          coldMsgsPerSec: cold,
        };
      }
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
      // One row per body size: MB/s and wire bytes per body byte.
      for (const size of SIZE_ROWS) {
        rows.push(await sizeRow(pair, relay, size, n, opts.capMs, log));
      }
      for (const size of BOTH_SIZE_ROWS) {
        rows.push(
          await sizeRow(pair, relay, size, n, opts.capMs, log, "both"),
        );
      }
    } finally {
      exitCodes.push(...await closePair(pair));
      for (const p of pair) mergeErrors(clientErrors, p.errors);
    }
    // Pair 2: the default cover rate.
    pair = await startPair(
      relay.server.url,
      opts.certs,
      `${dir}/b`,
      DEFAULT_COVER_RATE,
      opts,
    );
    [bank, customer] = pair;
    try {
      await warmUp(pair, warmN, opts.capMs, say);
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
    pair = await startPair(relay.server.url, opts.certs, `${dir}/c`, 0, opts, [
      "--crypto",
      "fast",
    ]);
    [bank, customer] = pair;
    try {
      await warmUp(pair, warmN, opts.capMs, say);
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
    // Pair 4: the floor at 60 KiB — the same processes, pipes, transport and
    // relay with no protocol work (bench/floor_client.ts): what the real
    // clients' 60 KiB row could reach at best on this machine.
    pair = await startPair(relay.server.url, opts.certs, `${dir}/d`, 0, {
      ...opts,
      floor: true,
    });
    try {
      const r = await sizeRow(
        pair,
        relay,
        LARGE_BODY_SIZE,
        n,
        opts.capMs,
        (l) => log(`floor: ${l}`),
      );
      r.name =
        `floor (bench/floor_client.ts: no protocol), ${LARGE_BODY_SIZE} B`;
      r.floor = true;
      rows.push(r);
    } finally {
      exitCodes.push(...await closePair(pair));
      for (const p of pair) mergeErrors(clientErrors, p.errors);
    }
  } finally {
    await relay.server.stop();
    relay.http.close();
    await Deno.remove(dir, { recursive: true });
  }
  const one = rows[0];
  const large = rows.find((r) =>
    r.bodySize === LARGE_BODY_SIZE && !r.floor && r.direction === "one"
  )!;
  const floor = rows.find((r) => r.floor);
  const wire = rows
    .filter((r) =>
      r.bodySize >= 1024 && r.wireBytesPerBodyByte !== undefined &&
      !r.floor && r.direction === "one"
    )
    .map((r) => ({
      bodySize: r.bodySize,
      wireBytesPerBodyByte: r.wireBytesPerBodyByte!,
    }));
  return {
    available: true,
    msgsPerSec: one.msgsPerSec,
    warmupMessages: warmN,
    coldMsgsPerSec: cold,
    bothMsgsPerSec: rows[1].msgsPerSec,
    p50Ms: one.p50Ms,
    p99Ms: one.p99Ms,
    targetMsgsPerSec: TARGET_MSGS_PER_SEC,
    ofTarget: one.msgsPerSec / TARGET_MSGS_PER_SEC,
    largeMbPerSec: large.mbPerSec,
    floorMbPerSec: floor?.mbPerSec,
    targetLargeMbPerSec: TARGET_LARGE_MB_PER_SEC,
    forwarderMbPerSec,
    ofForwarder: forwarderMbPerSec > 0 ? large.mbPerSec / forwarderMbPerSec : 0,
    targetOfForwarder: TARGET_OF_FORWARDER,
    wire,
    targetWireRatio: TARGET_WIRE_RATIO,
    rows,
    exitCodes,
    clientErrors,
    setup:
      `clients/bank.ts and clients/customer.ts --json as subprocesses (--crypto keys, --sign-every 64), ` +
      `relay subprocess with default limits, ${BODY_SIZE}-byte bodies unless the row names a size, at most ${WINDOW} lines ` +
      `(size rows: ${
        WINDOW_BYTES / 2 ** 20
      } MiB) undelivered, latency = stdin write → message event read (one clock); ` +
      `wire = relay bytes forwarded (both ways, ACKs included) per body byte; ` +
      `forwarder = bench/baseline_forwarder.ts, ${FORWARDER.size}-byte frames, 1 pair, ${FORWARDER.inFlight} in flight`,
  };
}

/** One direction at `size`-byte bodies: at most 2 MiB undelivered, ~4 KiB × `n` body bytes. */
async function sizeRow(
  pair: [Peer, Peer],
  relay: Relay,
  size: number,
  n: number,
  capMs: number,
  log: (line: string) => void,
  direction: "one" | "both" = "one",
): Promise<E2eRow> {
  const count = Math.max(
    100,
    Math.min(
      n,
      Math.floor(Math.min(n, ROW_MESSAGES) * ROW_BYTES_PER_MESSAGE / size),
    ),
  );
  const window = Math.min(WINDOW, Math.max(8, Math.floor(WINDOW_BYTES / size)));
  const cap = performance.now() + capMs;
  const [bank, customer] = pair;
  const r = await metered(pair, relay, async () =>
    row(
      direction === "one"
        ? `bank→customer, ${size} B`
        : `both directions, ${size} B`,
      direction,
      0,
      "keys",
      count,
      window,
      direction === "one"
        ? [await stream(bank, customer, count, window, cap, size)]
        : await Promise.all([
          stream(bank, customer, count, window, cap, size),
          stream(customer, bank, count, window, cap, size),
        ]),
      size,
    ));
  log(
    `e2e ${size} B${direction === "both" ? " both directions" : ""}: ${
      Math.round(r.msgsPerSec)
    } msgs/s, ${r.mbPerSec.toFixed(1)} MB/s, ${
      r.wireBytesPerBodyByte?.toFixed(3) ?? "?"
    } wire B per body B, CPU µs/msg bank ${
      r.cpuUsPerMsg?.bank.toFixed(0)
    } customer ${r.cpuUsPerMsg?.customer.toFixed(0)} relay ${
      r.cpuUsPerMsg?.relay.toFixed(0)
    } bench ${r.cpuUsPerMsg?.bench?.toFixed(0)}`,
  );
  return r;
}

/**
 * Streams `n` unmeasured messages each way (one direction after the other)
 * on a new pair, so its rows measure the clients' steady state rather than
 * their start-up (JIT compilation). Returns the first stream's messages/s:
 * the cold start, kept in the JSON.
 */
async function warmUp(
  pair: [Peer, Peer],
  n: number,
  capMs: number,
  log: (line: string) => void,
): Promise<number> {
  if (n <= 0) return 0;
  const [bank, customer] = pair;
  const cold = row("warm-up", "one", 0, "keys", n, WINDOW, [
    await stream(bank, customer, n, WINDOW, performance.now() + capMs),
  ]);
  await stream(customer, bank, n, WINDOW, performance.now() + capMs);
  log(
    `e2e warm-up: ${n} messages each way, cold ${
      Math.round(cold.msgsPerSec)
    } msgs/s`,
  );
  return cold.msgsPerSec;
}

/** MB/s (10^6 bytes of whole frames) of the raw forwarder at 64 KiB frames: the yardstick of the 60 KiB row. */
async function measureForwarder(
  certs: E2eCerts,
  caPem: string,
): Promise<number> {
  const server = await startServer({ kind: "baseline", ...certs });
  const http = Deno.createHttpClient({ caCerts: [caPem] });
  const clients = await connectMany(server.url, http, 2).catch(async (e) => {
    await server.stop();
    http.close();
    throw e;
  });
  try {
    const r = await runPairs({
      clients,
      size: FORWARDER.size,
      inFlight: FORWARDER.inFlight,
      warmupMs: FORWARDER.warmupMs,
      measureMs: FORWARDER.measureMs,
    });
    return r.mbPerSec;
  } finally {
    await Promise.all([closeAll(clients), server.stop()]);
    http.close();
  }
}

function mergeErrors(
  into: Record<string, number>,
  from: Record<string, number>,
): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** `deno run -A bench/e2e.ts --help`. */
const E2E_USAGE =
  `deno run -A bench/e2e.ts [flags]   the end-to-end section alone (JSON on stdout, progress on stderr)
  --messages N      messages per 256-B row (default 50000)
  --warmup N        unmeasured messages each way on each new pair of clients (default ${WARMUP_MESSAGES})
  --cap S           bound of each row in seconds (default 60)
  --sizes B,B       only the size rows of these body sizes (bytes, ≤ ${MAX_BODY})
  --floor           the floor rows (bench/floor_client.ts in place of the clients: the same
                    processes, pipes, transport and relay, no protocol work); alone: every size
  --baseline        the clients talk through the raw forwarder instead of the relay
  --prof DIR        write CPU profiles of the two clients to DIR (.cpuprofile)
  --relay-flag F    extra relay flag (repeatable), e.g. --relay-flag=--idle-timeout=0
  --deno-flag F     extra \`deno run\` flag of the two clients (repeatable)`;

async function e2eMain(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    options: {
      messages: { type: "string", default: "50000" },
      warmup: { type: "string", default: String(WARMUP_MESSAGES) },
      cap: { type: "string", default: "60" },
      prof: { type: "string" },
      sizes: { type: "string" },
      "relay-flag": { type: "string", multiple: true },
      baseline: { type: "boolean", default: false },
      floor: { type: "boolean", default: false },
      "deno-flag": { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(E2E_USAGE);
    return 0;
  }
  const messages = positiveInt(values.messages, "--messages");
  const warmup = values.warmup === "0"
    ? 0
    : positiveInt(values.warmup, "--warmup");
  const capMs = positiveNumber(values.cap, "--cap") * 1000;
  const sizes = values.sizes?.split(",").map((t) => {
    const n = positiveInt(t, "--sizes");
    if (n > MAX_BODY) {
      throw new UsageError(`--sizes: ${n} is above ${MAX_BODY}`);
    }
    return n;
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
      messages,
      warmupMessages: warmup,
      capMs,
      profileDir: values.prof,
      only: sizes ?? (values.floor ? [...SIZE_ROWS] : undefined),
      relayArgs: values["relay-flag"],
      baseline: values.baseline,
      floor: values.floor,
      clientDenoArgs: values["deno-flag"],
      log: (l) => console.error(l),
    });
    console.log(JSON.stringify(r, null, 1));
  } finally {
    await Deno.remove(certDir, { recursive: true });
  }
  return 0;
}

if (import.meta.main) await runCli("bench/e2e.ts", e2eMain);
