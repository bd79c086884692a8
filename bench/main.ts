/**
 * `deno task bench [--quick] [--full] [--json FILE] [--only SECTIONS]`:
 * the relay's performance in one run, loopback only, every loop bounded in
 * count and time.
 *
 * 1. relay: forwarding over TLS, P sender/receiver pairs × frame sizes, 32
 *    frames in flight per pair, against the relay and against a minimal
 *    forwarder (bench/baseline_forwarder.ts) started in the same run; both
 *    are `deno run` subprocesses whose CPU comes from /proc/<pid>/stat.
 *    Clients: Deno's built-in WebSocket.
 * 2. stall: the latency-stall target cell — P=1, 256 B, 32 frames in
 *    flight, p99 ≤ 5 ms and max ≤ 10 ms through the relay with our own
 *    client transport (`PinnedRelayConnection`, lib/deno/pinned_relay.ts:
 *    `TCP_NODELAY`, one write per task, ack pongs) — against the relay and
 *    the baseline started in the same run, and the same cell with Deno's
 *    built-in WebSocket client (no `TCP_NODELAY`: 40 ms Nagle/delayed-ACK
 *    stalls) for comparison; a MET / MISSED verdict line. Beside each
 *    cell: the host's steal over its window (bench/host_steal.ts) and the
 *    load generator's own event-loop gaps (bench/load.ts `LoopGaps`), the
 *    longest overall and the longest during the slowest frame's flight.
 * 3. unloaded: one frame in flight, one pair: latency.
 * 4. memory: relay RSS with 1,000 and 5,000 idle registered connections
 *    (10,000 with --full), counted after a warm-up of 10 % of the first
 *    level that stays open (baseline alike; see memoryOf).
 * 5. channel: handshakes/s and sealed+opened messages/s per primitive
 *    provider (bench/channel.ts).
 * 6. e2e: the real bank and customer clients through a relay, as
 *    subprocesses fed on stdin (bench/e2e.ts): messages/s one way and both
 *    ways, send → delivery latency, against the 40,000 msgs/s target; MB/s
 *    and wire bytes per body byte at 1 KiB, 4 KiB and 60 KiB, against the
 *    raw forwarder at 64 KiB frames measured in the same run, and the floor
 *    at 60 KiB (bench/floor_client.ts: the same processes and I/O with no
 *    protocol work).
 * 6b. setup: handshakes/s per suite (P-256, X25519 + Ed25519) per core
 *    and the safety number per new peer, against their targets
 *    (bench/setup_bench.ts).
 * 7. original: the original design rebuilt in Python through its own relay
 *    (bench/original.ts, bench/original/*.py) at 256 B, 4 KiB and 60 KiB,
 *    one way and both; ours ÷ it against the ≥ 2× target.
 * 8. service: one `bank --serve --json` process with customers simulated by
 *    lib/ (bench/service.ts): memory per idle conversation, set-ups/s,
 *    1,000 customers sending at once, recovery after a relay restart.
 *
 * Every target gets a verdict (MET / MISSED with its margin) in the text's
 * "Targets" table and in `--json` under `verdicts` (see {@link verdicts}).
 *
 * The load generator and the servers share the machine's cores: compare the
 * ratio of relay to baseline within one run, not absolute figures across runs.
 * @module
 */

import { parseFlags, positiveInt, runCli } from "./cli.ts";
import { ensureCerts } from "../tools/certs.ts";
import {
  type BenchClient,
  type BenchTransport,
  closeAll,
  connectMany,
  type LoadResult,
  runPairs,
} from "./load.ts";
import {
  readProc,
  type ServerProcess,
  startServer,
  type StartServerOptions,
} from "./server_process.ts";
import type { ChannelFigures } from "./channel.ts";
import {
  type ClusterFigures,
  clusterSection,
  renderCluster,
} from "./cluster.ts";
import type { E2eFigures } from "./e2e.ts";
import {
  measureServiceSubprocess,
  SERVICE_MEMORY_TARGET_KB,
  SERVICE_MSGS_TARGET,
  SERVICE_RESTART_TARGET_S,
  SERVICE_SETUP_TARGET,
  SERVICE_SHARE_TARGET,
  type ServiceFigures,
  type ServicePlan,
} from "./service.ts";
import { renderSetup, type SetupFigures } from "./setup_bench.ts";
import { STALL_COLUMNS } from "./summarize.ts";
import {
  type CpuTicks,
  readCpuTicks,
  stealPct,
  withSteal,
} from "./host_steal.ts";
import {
  compareWithOriginal,
  measureOriginal,
  type OriginalComparison,
  type OriginalFigures,
  renderOriginal,
} from "./original.ts";

/** Relay flags for benchmarking: limits high enough never to trigger, so the data path is measured. */
const RELAY_BENCH_FLAGS = [
  "--quiet",
  "--rate",
  "100000000",
  "--burst",
  "100000000",
  "--max-connections",
  "30000",
  // The bench opens every connection from one address at once.
  "--max-unauth-per-ip",
  "100000",
];
/** Frames in flight per pair in the loaded cells. */
const IN_FLIGHT = 32;
/** The stall cell's frame size (whole frame). */
const STALL_SIZE = 256;
/** Target of the stall cell: p99 at most this (ms), through the relay with our own client. */
const STALL_TARGET_P99_MS = 5;
/** Target of the stall cell: max at most this (ms). */
const STALL_TARGET_MAX_MS = 10;
/** Target: the relay forwards at least this fraction of the baseline's messages/s in every cell. */
const RATIO_TARGET = 0.9;
/** Target: relay RSS per idle registered TLS connection (KB). */
const MEMORY_TARGET_KB = 40;
/** The memory target is judged from this many idle connections up (the issue's 1,000 and 5,000). */
const MEMORY_TARGET_MIN_CONNECTIONS = 1000;

interface Plan {
  pairs: number[];
  sizes: number[];
  warmupMs: number;
  measureMs: number;
  unloadedMs: number;
  memoryLevels: number[];
  channelMs: number;
  /** Relay matrix: alternating relay/baseline rounds per cell (best run of each kept; three in the default plan: with two, a 4 KiB cell read 0.89–1.02 across runs on the quiet machine). */
  rounds: number;
  /** e2e: messages per direction per row. */
  e2eMessages: number;
  /** e2e: unmeasured messages each way on each new pair of clients before its rows (JIT warm-up). */
  e2eWarmup: number;
  /** e2e: wall-clock cap of one row (ms). */
  e2eCapMs: number;
  /** original: body sizes. */
  originalSizes: number[];
  /** original: messages per direction per row up to 4 KiB bodies (a tenth above). */
  originalMessages: number;
  /** service: the bank service's levels, senders and bounds (bench/service.ts). */
  service: ServicePlan;
}

const FULL_PLAN: Plan = {
  pairs: [1, 10, 50],
  sizes: [256, 4096],
  warmupMs: 500,
  measureMs: 2500,
  rounds: 3,
  unloadedMs: 2000,
  memoryLevels: [1000, 5000],
  channelMs: 1500,
  e2eMessages: 50_000,
  e2eWarmup: 20_000,
  e2eCapMs: 30_000,
  originalSizes: [256, 4096, 61440],
  originalMessages: 5_000,
  service: {
    levels: [100, 1000, 10_000],
    senders: 1000,
    perSender: 20,
    window: 200,
    phaseMs: 120_000,
    otherSetups: 2000,
  },
};

const QUICK_PLAN: Plan = {
  pairs: [1, 10],
  sizes: [256, 4096],
  warmupMs: 150,
  measureMs: 500,
  rounds: 1,
  unloadedMs: 500,
  memoryLevels: [200],
  channelMs: 300,
  e2eMessages: 2_000,
  e2eWarmup: 200,
  e2eCapMs: 15_000,
  originalSizes: [256],
  originalMessages: 300,
  service: {
    levels: [20],
    senders: 20,
    perSender: 20,
    window: 20,
    phaseMs: 15_000,
    otherSetups: 20,
  },
};

/** One relay cell of the JSON output. */
interface RelayCell {
  pairs: number;
  size: number;
  msgsPerSec: number;
  mbPerSec: number;
  baselineMsgsPerSec: number;
  ratio: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cpuUsPerMsg: number;
  baselineP50Ms: number;
  baselineP99Ms: number;
  baselineMaxMs: number;
  baselineCpuUsPerMsg: number;
  errors: number;
}

interface MemoryLevel {
  connections: number;
  rssKb: number;
  kbPerConnection: number;
  /** Counted from the RSS with one connection, before the warm-up (the figure without one). */
  kbPerConnectionCold: number;
  baselineRssKb?: number;
  baselineKbPerConnection?: number;
  baselineKbPerConnectionCold?: number;
}

/** Figures of one server in the stall cell (the relay's; baseline… for the baseline). */
interface StallFigures {
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cpuUsPerMsg: number;
  baselineMsgsPerSec: number;
  baselineP50Ms: number;
  baselineP99Ms: number;
  baselineMaxMs: number;
  baselineCpuUsPerMsg: number;
  /** Host steal during the relay's measured window, % of all CPU time (bench/host_steal.ts). */
  stealPct: number | null;
  /** The same during the baseline's window. */
  baselineStealPct: number | null;
  /** The load generator's longest event-loop gap in the relay's window (ms; bench/load.ts LoopGaps). */
  loopGapMaxMs: number;
  /** Its longest gap that overlapped the relay's slowest frame (ms; 0: none). */
  maxFrameLoopGapMs: number;
  baselineLoopGapMaxMs: number;
  baselineMaxFrameLoopGapMs: number;
  errors: number;
}

/** The stall section's JSON: own-client figures at the top, the built-in WebSocket's under `webSocket`. */
interface StallResult extends StallFigures {
  pairs: number;
  size: number;
  inFlight: number;
  client: string;
  targetP99Ms: number;
  targetMaxMs: number;
  /** p99 ≤ targetP99Ms and max ≤ targetMaxMs, through the relay with our own client. */
  met: boolean;
  webSocket: StallFigures;
}

const SECTIONS = [
  "relay",
  "stall",
  "unloaded",
  "memory",
  "channel",
  "e2e",
  "setup",
  "original",
  "service",
  "cluster",
] as const;
type Section = typeof SECTIONS[number];

const started = performance.now();

function log(line: string): void {
  const t = ((performance.now() - started) / 1000).toFixed(1);
  console.error(`bench: [${t} s] ${line}`);
}

async function machine(): Promise<Record<string, unknown>> {
  let cpuModel = "unknown";
  try {
    const info = await readProc("cpuinfo");
    cpuModel = info.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpuModel;
  } catch { /* not Linux */ }
  let memTotalMb: number | undefined;
  try {
    memTotalMb = Math.round(Deno.systemMemoryInfo().total / 2 ** 20);
  } catch { /* no --allow-sys */ }
  return {
    cores: navigator.hardwareConcurrency,
    cpuModel,
    memTotalMb,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    concurrency:
      "load generator, relay and baseline run on this machine at once over loopback and share its cores",
  };
}

/** One measured run of a server. */
type Measured = LoadResult & {
  cpuUsPerMsg: number;
  /** With `probe`: host steal over the measured window, % of all CPU time (else null). */
  stealPct: number | null;
};

/** The run with more messages per second (the other is kept out of the figures). */
function best(a: Measured | undefined, b: Measured): Measured {
  return a === undefined || b.msgsPerSec > a.msgsPerSec ? b : a;
}

/**
 * Runs one closed-loop measurement against `server`, with its CPU per message;
 * with `probe`, also the host's steal and this process's event-loop gaps over
 * the window (the stall cell).
 */
async function measure(
  server: ServerProcess,
  clients: BenchClient[],
  size: number,
  inFlight: number,
  warmupMs: number,
  measureMs: number,
  probe = false,
): Promise<Measured> {
  let cpu0 = 0;
  let cpu1 = 0;
  let ticks0: CpuTicks | null = null;
  let ticks1: CpuTicks | null = null;
  const r = await runPairs({
    clients,
    size,
    inFlight,
    warmupMs,
    measureMs,
    probeLoop: probe,
    onWindow: async (edge) => {
      const ticks = probe ? readCpuTicks() : null;
      const [cpu, t] = await Promise.all([server.cpuUs(), ticks]);
      if (edge === "start") [cpu0, ticks0] = [cpu, t];
      else [cpu1, ticks1] = [cpu, t];
    },
  });
  return {
    ...r,
    cpuUsPerMsg: r.delivered > 0 ? (cpu1 - cpu0) / r.delivered : 0,
    stealPct: stealPct(ticks0, ticks1),
  };
}

type Certs = {
  certDir: string;
  certPath: string;
  keyPath: string;
  caPath: string;
};

/** Starts the relay and the baseline (fresh processes, so earlier runs leave nothing behind). */
async function startBoth(
  certs: Certs,
): Promise<[ServerProcess, ServerProcess]> {
  const opts = (kind: StartServerOptions["kind"]): StartServerOptions => ({
    kind,
    ...certs,
    args: kind === "relay" ? RELAY_BENCH_FLAGS : [],
  });
  const relay = await startServer(opts("relay"));
  try {
    return [relay, await startServer(opts("baseline"))];
  } catch (e) {
    await relay.stop();
    throw e;
  }
}

/**
 * Ends clients and servers together: Deno's WebSocket close handshake takes
 * ~50 ms per connection and stalls past ~128 concurrent client-initiated
 * closes, while a server stop ends every connection at once.
 */
async function teardown(
  clients: BenchClient[],
  servers: ServerProcess[],
): Promise<void> {
  await Promise.all([
    closeAll(clients),
    ...servers.map((s) => s.stop()),
  ]);
}

async function relaySection(plan: Plan, certs: Certs, http: Deno.HttpClient) {
  const cells: RelayCell[] = [];
  for (const pairs of plan.pairs) {
    const [relay, baseline] = await startBoth(certs);
    const rc: BenchClient[] = [];
    const bc: BenchClient[] = [];
    try {
      rc.push(...await connectMany(relay.url, http, 2 * pairs));
      bc.push(...await connectMany(baseline.url, http, 2 * pairs));
      for (const size of plan.sizes) {
        // Relay and baseline alternate for `rounds` rounds; each keeps its
        // best run, so a burst of noise on the shared cores does not decide
        // the ratio.
        let r: Measured | undefined;
        let b: Measured | undefined;
        for (let round = 0; round < plan.rounds; round++) {
          r = best(
            r,
            await measure(
              relay,
              rc,
              size,
              IN_FLIGHT,
              plan.warmupMs,
              plan.measureMs,
            ),
          );
          b = best(
            b,
            await measure(
              baseline,
              bc,
              size,
              IN_FLIGHT,
              plan.warmupMs,
              plan.measureMs,
            ),
          );
        }
        if (!r || !b) throw new Error("no relay round ran");
        const cell: RelayCell = {
          pairs,
          size,
          msgsPerSec: r.msgsPerSec,
          mbPerSec: r.mbPerSec,
          baselineMsgsPerSec: b.msgsPerSec,
          ratio: b.msgsPerSec > 0 ? r.msgsPerSec / b.msgsPerSec : 0,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          maxMs: r.maxMs,
          cpuUsPerMsg: r.cpuUsPerMsg,
          baselineP50Ms: b.p50Ms,
          baselineP99Ms: b.p99Ms,
          baselineMaxMs: b.maxMs,
          baselineCpuUsPerMsg: b.cpuUsPerMsg,
          errors: r.errors + b.errors,
        };
        cells.push(cell);
        log(
          `relay P=${pairs} ${size} B: ${fmt(cell.msgsPerSec)} msgs/s ` +
            `(baseline ${fmt(cell.baselineMsgsPerSec)}, ratio ${
              cell.ratio.toFixed(2)
            })`,
        );
      }
    } finally {
      await teardown([...rc, ...bc], [relay, baseline]);
    }
  }
  return cells;
}

/** The stall cell with one transport: one pair on the relay, one on the baseline. */
async function stallCell(
  plan: Plan,
  relay: ServerProcess,
  baseline: ServerProcess,
  via: BenchTransport,
  all: BenchClient[],
): Promise<StallFigures> {
  const rc = await connectMany(relay.url, via, 2);
  all.push(...rc);
  const bc = await connectMany(baseline.url, via, 2);
  all.push(...bc);
  const run = (server: ServerProcess, clients: BenchClient[]) =>
    measure(
      server,
      clients,
      STALL_SIZE,
      IN_FLIGHT,
      plan.warmupMs,
      plan.measureMs,
      true,
    );
  const r = await run(relay, rc);
  const b = await run(baseline, bc);
  return {
    msgsPerSec: r.msgsPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    maxMs: r.maxMs,
    cpuUsPerMsg: r.cpuUsPerMsg,
    baselineMsgsPerSec: b.msgsPerSec,
    baselineP50Ms: b.p50Ms,
    baselineP99Ms: b.p99Ms,
    baselineMaxMs: b.maxMs,
    baselineCpuUsPerMsg: b.cpuUsPerMsg,
    stealPct: r.stealPct,
    baselineStealPct: b.stealPct,
    loopGapMaxMs: r.loopGapMaxMs ?? 0,
    maxFrameLoopGapMs: r.maxFrameLoopGapMs ?? 0,
    baselineLoopGapMaxMs: b.loopGapMaxMs ?? 0,
    baselineMaxFrameLoopGapMs: b.maxFrameLoopGapMs ?? 0,
    errors: r.errors + b.errors,
  };
}

/** The latency-stall target cell, own client and built-in WebSocket, relay and baseline. */
async function stallSection(
  plan: Plan,
  certs: Certs,
  http: Deno.HttpClient,
): Promise<StallResult> {
  const caPem = await Deno.readTextFile(certs.caPath);
  const [relay, baseline] = await startBoth(certs);
  const all: BenchClient[] = [];
  try {
    const own = await stallCell(plan, relay, baseline, { caPem }, all);
    const line = (what: string, f: StallFigures) =>
      `stall ${what}: relay ${fmt(f.msgsPerSec)} msgs/s p99 ${
        fmt(f.p99Ms)
      } ms max ${fmt(f.maxMs)} ms; baseline ${
        fmt(f.baselineMsgsPerSec)
      } msgs/s p99 ${fmt(f.baselineP99Ms)} ms max ${
        fmt(f.baselineMaxMs)
      } ms; host steal ${pct(f.stealPct)} / ${pct(f.baselineStealPct)}`;
    log(line("own client", own));
    const webSocket = await stallCell(plan, relay, baseline, http, all);
    log(line("WebSocket client", webSocket));
    return {
      pairs: 1,
      size: STALL_SIZE,
      inFlight: IN_FLIGHT,
      client: "own (PinnedRelayConnection, lib/deno/pinned_relay.ts)",
      targetP99Ms: STALL_TARGET_P99_MS,
      targetMaxMs: STALL_TARGET_MAX_MS,
      ...own,
      met: own.p99Ms <= STALL_TARGET_P99_MS && own.maxMs <= STALL_TARGET_MAX_MS,
      webSocket,
    };
  } finally {
    await teardown(all, [relay, baseline]);
  }
}

async function unloadedSection(
  plan: Plan,
  certs: Certs,
  http: Deno.HttpClient,
) {
  const out: Record<string, number> = {};
  const [relay, baseline] = await startBoth(certs);
  const all: BenchClient[] = [];
  try {
    for (const server of [relay, baseline]) {
      const clients = await connectMany(server.url, http, 2);
      all.push(...clients);
      const r = await measure(server, clients, 256, 1, 100, plan.unloadedMs);
      const prefix = server === relay ? "" : "baseline";
      const key = (k: string) =>
        prefix ? `${prefix}${k[0].toUpperCase()}${k.slice(1)}` : k;
      out[key("p50Ms")] = r.p50Ms;
      out[key("p99Ms")] = r.p99Ms;
      out[key("maxMs")] = r.maxMs;
      out[key("msgsPerSec")] = r.msgsPerSec;
      out[key("cpuUsPerMsg")] = r.cpuUsPerMsg;
    }
  } finally {
    await teardown(all, [relay, baseline]);
  }
  return out;
}

/**
 * Warm-up of the memory section, as a fraction of the first level: that many
 * idle connections are opened before the RSS every level is counted from.
 */
const MEMORY_WARMUP_SHARE = 0.1;

/**
 * RSS of a fresh server process as idle registered connections are added.
 *
 * The RSS each level is counted from (`rss0`) is read after a warm-up: one
 * connection (lazily initialised TLS/WebSocket state), then a burst of
 * {@link MEMORY_WARMUP_SHARE} × the first level more, which stay open. A
 * process that has served one handshake has not yet paged in the code of the
 * rest of the path (the binary's text, the optimising compiler, the major
 * GC), compiled it, or grown its threads' allocator arenas: measured at
 * 1,000 connections, that one-time growth was ~5–8 MB (4.4 KB per connection
 * of the binary's file-backed pages alone), counted against the connections
 * before. The warm-up connections are kept, not closed: closed, their freed
 * allocator memory would be reused by the next level's connections and hide
 * what they cost (measured: 7 KB per connection after 1,000 opened and
 * closed). `rss1` is the RSS after the single first connection (the figure
 * without a warm-up, kept in the JSON).
 */
async function memoryOf(
  kind: "relay" | "baseline",
  levels: number[],
  certs: Certs,
  http: Deno.HttpClient,
): Promise<
  { rss1: number; rss0: number; warmup: number; levels: [number, number][] }
> {
  const server = await startServer({
    kind,
    ...certs,
    args: kind === "relay" ? RELAY_BENCH_FLAGS : [],
  });
  const clients: BenchClient[] = [];
  try {
    // One connection first so lazily initialised TLS/WebSocket state is not
    // counted against the idle connections.
    clients.push(...await connectMany(server.url, http, 1));
    await new Promise((r) => setTimeout(r, 500));
    const rss1 = await server.rssKb();
    const warmup = Math.ceil(levels[0] * MEMORY_WARMUP_SHARE);
    clients.push(...await connectMany(server.url, http, warmup));
    await new Promise((r) => setTimeout(r, 1000));
    const rss0 = await server.rssKb();
    const out: [number, number][] = [];
    for (const n of levels) {
      const t0 = performance.now();
      clients.push(
        ...await connectMany(server.url, http, n + 1 + warmup - clients.length),
      );
      log(
        `memory ${kind}: ${n} connections (+ ${
          1 + warmup
        } of the warm-up) open in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s`,
      );
      await new Promise((r) => setTimeout(r, 1000));
      out.push([n, await server.rssKb()]);
    }
    return { rss1, rss0, warmup, levels: out };
  } finally {
    await teardown(clients, [server]);
  }
}

async function memorySection(
  plan: Plan,
  certs: Certs,
  http: Deno.HttpClient,
  withBaseline: boolean,
) {
  const relay = await memoryOf("relay", plan.memoryLevels, certs, http);
  const base = withBaseline
    ? await memoryOf("baseline", plan.memoryLevels, certs, http)
    : undefined;
  const levels: MemoryLevel[] = relay.levels.map(([n, rss], i) => {
    const level: MemoryLevel = {
      connections: n,
      rssKb: rss,
      kbPerConnection: (rss - relay.rss0) / n,
      kbPerConnectionCold: (rss - relay.rss1) / (n + relay.warmup),
    };
    if (base) {
      level.baselineRssKb = base.levels[i][1];
      level.baselineKbPerConnection = (base.levels[i][1] - base.rss0) / n;
      level.baselineKbPerConnectionCold = (base.levels[i][1] - base.rss1) /
        (n + base.warmup);
    }
    return level;
  });
  const top = levels[levels.length - 1];
  return {
    kbPerConnection: top.kbPerConnection,
    connections: top.connections,
    idleRssKb: relay.rss0,
    oneConnectionRssKb: relay.rss1,
    warmupConnections: relay.warmup,
    baselineKbPerConnection: top.baselineKbPerConnection,
    levels,
  };
}

async function channelSection(plan: Plan): Promise<ChannelFigures> {
  try {
    const { measureChannel } = await import("./channel.ts");
    return await measureChannel(plan.channelMs);
  } catch (e) {
    return {
      available: false,
      reason: `session/handshake not usable: ${(e as Error).message}`,
    };
  }
}

async function e2eSection(plan: Plan, certs: Certs): Promise<E2eFigures> {
  try {
    const { measureE2e } = await import("./e2e.ts");
    return await measureE2e({
      certs,
      messages: plan.e2eMessages,
      warmupMessages: plan.e2eWarmup,
      capMs: plan.e2eCapMs,
      log,
    });
  } catch (e) {
    return {
      available: false,
      reason: `end-to-end run not available: ${(e as Error).message}`,
    };
  }
}

/** One target's verdict, as the text table and `--json` carry it. */
export interface Verdict {
  /** Stable key for scripts (e.g. "e2e.large.mbPerSec"). */
  key: string;
  /** What is required, in words. */
  target: string;
  /** The measured figure. */
  value: number;
  /** The limit it is judged against. */
  limit: number;
  /** "min": value ≥ limit is MET; "max": value ≤ limit is MET. */
  kind: "min" | "max";
  /** Unit of value and limit. */
  unit: string;
  /** value meets limit. */
  met: boolean;
  /** How far inside (positive) or outside (negative) the limit, in `unit`. */
  margin: number;
  /** margin as a fraction of the limit. */
  marginFraction: number;
}

function verdict(
  key: string,
  target: string,
  value: number,
  limit: number,
  kind: "min" | "max",
  unit: string,
): Verdict {
  const margin = kind === "min" ? value - limit : limit - value;
  return {
    key,
    target,
    value,
    limit,
    kind,
    unit,
    met: margin >= 0,
    margin,
    marginFraction: limit !== 0 ? margin / limit : 0,
  };
}

/** Every target the sections of this run can judge, each MET or MISSED with its margin. */
export function verdicts(out: Record<string, unknown>): Verdict[] {
  const v: Verdict[] = [];
  const relay = out.relay as RelayCell[] | undefined;
  if (relay?.length) {
    const low = relay.reduce((a, c) => c.ratio < a.ratio ? c : a);
    v.push(verdict(
      "relay.ratio",
      `relay ≥ ${RATIO_TARGET}× baseline msgs/s in every cell (lowest: P=${low.pairs}, ${low.size} B)`,
      low.ratio,
      RATIO_TARGET,
      "min",
      "×",
    ));
  }
  const st = out.stall as StallResult | undefined;
  if (st) {
    v.push(verdict(
      "stall.p99Ms",
      `stall cell p99 (P=1, ${st.size} B, ${st.inFlight} in flight, own client, relay)`,
      st.p99Ms,
      st.targetP99Ms,
      "max",
      "ms",
    ));
    v.push(verdict(
      "stall.maxMs",
      `stall cell max (P=1, ${st.size} B, ${st.inFlight} in flight, own client, relay)`,
      st.maxMs,
      st.targetMaxMs,
      "max",
      "ms",
    ));
  }
  const mem = out.memory as { levels: MemoryLevel[] } | undefined;
  const judged =
    mem?.levels.filter((l) => l.connections >= MEMORY_TARGET_MIN_CONNECTIONS) ??
      [];
  if (judged.length) {
    const worst = judged.reduce((a, l) =>
      l.kbPerConnection > a.kbPerConnection ? l : a
    );
    v.push(verdict(
      "memory.kbPerConnection",
      `relay RSS per idle connection (highest, at ${worst.connections})`,
      worst.kbPerConnection,
      MEMORY_TARGET_KB,
      "max",
      "KB",
    ));
  }
  const e2e = out.e2e as E2eFigures | undefined;
  if (e2e?.available) {
    v.push(verdict(
      "e2e.msgsPerSec",
      "e2e one direction, 256 B, chain signing, --crypto keys",
      e2e.msgsPerSec!,
      e2e.targetMsgsPerSec!,
      "min",
      "msgs/s",
    ));
    if (e2e.largeMbPerSec !== undefined) {
      v.push(verdict(
        "e2e.large.mbPerSec",
        "e2e one direction, 60 KiB bodies",
        e2e.largeMbPerSec,
        e2e.targetLargeMbPerSec!,
        "min",
        "MB/s",
      ));
      v.push(verdict(
        "e2e.large.ofForwarder",
        `e2e 60 KiB MB/s ÷ raw forwarder MB/s (${
          fmt(e2e.forwarderMbPerSec!)
        } MB/s at 64 KiB frames, this run)`,
        e2e.ofForwarder!,
        e2e.targetOfForwarder!,
        "min",
        "×",
      ));
    }
    for (const w of e2e.wire ?? []) {
      v.push(verdict(
        `e2e.wire.${w.bodySize}`,
        `relay bytes per body byte at ${w.bodySize} B bodies`,
        w.wireBytesPerBodyByte,
        e2e.targetWireRatio!,
        "max",
        "B/B",
      ));
    }
  }
  const setup = out.setup as SetupFigures | undefined;
  // Judged on the clients' provider; the WebCrypto baseline rows are in the set-up table.
  for (const x of setup?.suites.filter((x) => x.provider === "node") ?? []) {
    v.push(verdict(
      `setup.${x.name}.perCoreSec`,
      `handshakes/s per core, suite ${x.name}`,
      x.perCoreSec,
      x.target,
      "min",
      "/s",
    ));
  }
  if (setup) {
    v.push(verdict(
      "setup.safetyNumber.cpuMsPerPeer",
      "safety number per new peer (process CPU ms; wall clock in the set-up table)",
      setup.safetyNumber.cpuMsPerPeer,
      setup.safetyNumber.targetMs,
      "max",
      "ms",
    ));
  }
  const cmp = out.originalComparison as OriginalComparison[] | undefined;
  for (const c of cmp ?? []) {
    if (c.ratio === null) continue;
    v.push(verdict(
      `original.${c.bodySize}.${c.direction}`,
      `ours ÷ the original design, ${c.bodySize} B, ${
        c.direction === "one" ? "one direction" : "both directions"
      }`,
      c.ratio,
      c.target,
      "min",
      "×",
    ));
  }
  const svc = out.service as ServiceFigures | undefined;
  if (svc) v.push(...serviceVerdicts(svc));
  return v;
}

function serviceVerdicts(s: ServiceFigures): Verdict[] {
  const v: Verdict[] = [];
  // The issue's target is for one bank holding 10,000 idle conversations:
  // judged at the largest level; the smaller ones are the reported curve.
  const largest = s.levels[s.levels.length - 1];
  if (largest) {
    v.push(verdict(
      "service.kbPerConversation",
      `bank service RSS per idle conversation (largest level, at ${largest.conversations})`,
      largest.kbPerConversation,
      SERVICE_MEMORY_TARGET_KB,
      "max",
      "KB",
    ));
  }
  // The default path: customers following the bank's address (the largest
  // level's step); the other suite's step is its own row, keyed by suite.
  const top = s.levels[s.levels.length - 1];
  v.push(verdict(
    "service.setupsPerSec",
    `new sessions/s into one bank process, customers following its address, suite ${
      top?.suite ?? "?"
    } (step to ${top?.conversations ?? 0})`,
    s.setupsPerSec,
    SERVICE_SETUP_TARGET,
    "min",
    "/s",
  ));
  for (const x of s.suites?.slice(1) ?? []) {
    v.push(verdict(
      `service.setupsPerSec.${x.suite}`,
      `new sessions/s into one bank process, customers offering only suite ${x.suite} (${x.setups} beside ${x.before}${
        x.complete ? "" : ", not all in time"
      })`,
      x.setupsPerSec,
      SERVICE_SETUP_TARGET,
      "min",
      "/s",
    ));
  }
  const phases: [string, ServiceFigures["throughput"] | undefined][] = [
    ["service.msgsPerSec.atSenders", s.throughputAtSenders],
    ["service.msgsPerSec", s.throughput],
  ];
  for (const [key, t] of phases) {
    if (!t) continue;
    const among = t.conversations ? ` of ${t.conversations} conversations` : "";
    v.push(verdict(
      key,
      `${t.senders} customers${among} sending at once, ${256} B, msgs/s received by the bank${
        t.complete
          ? ""
          : ` (${t.received} of ${t.senders * t.perSender} in time)`
      }`,
      t.msgsPerSec,
      SERVICE_MSGS_TARGET,
      "min",
      "msgs/s",
    ));
    v.push(verdict(
      key.replace("msgsPerSec", "slowestShare"),
      `no customer starved: the slowest of ${t.senders} senders${among}: its rate ÷ the median sender's (a uniform one-after-the-other order gives 0.5)`,
      t.complete ? t.slowestShare : 0,
      SERVICE_SHARE_TARGET,
      "min",
      "×",
    ));
  }
  const r = s.restart;
  v.push(verdict(
    "service.restartSeconds",
    `relay restart → ${r.recovered} of ${r.conversations} conversations working again`,
    r.complete ? r.seconds : Math.max(r.seconds, SERVICE_RESTART_TARGET_S * 2),
    SERVICE_RESTART_TARGET_S,
    "max",
    "s",
  ));
  return v;
}

function renderService(s: ServiceFigures): string[] {
  return [
    `Bank service (one clients/bank.ts --serve --json process, customers simulated with lib/, one relay connection each, in ${
      s.workers ? `${s.workers} worker threads` : "the main thread"
    }; baseline RSS ${s.rss0Kb} KiB with 1 conversation after a warm-up of ${s.warmup.closed} of ${s.warmup.customers} customers that set up, sent and closed; ${s.rss0ColdKb} KiB before it; ${s.rss0AfterGcKb} KiB after a full GC):`,
    table([
      [
        "conversations",
        "RSS KiB (settled)",
        "RSS KiB 1 s after the step",
        "KB/conversation",
        "RSS KiB after a full GC",
        "KB/conversation after GC",
        "set-ups/s (step)",
        "complete",
      ],
      ...s.levels.map((l) => [
        String(l.conversations),
        l.rssKb,
        l.rssAfterStepKb,
        fmt(l.kbPerConversation),
        l.rssAfterGcKb,
        fmt(l.kbPerConversationAfterGc),
        fmt(l.setupsPerSec),
        l.complete ? "yes" : `no (target ${l.target})`,
      ]),
    ]),
    ...(s.suites?.length
      ? [
        `  Set-ups per suite (the bank accepts p256 and x25519, its default --suites; first the largest level's customers, who follow the bank's address: they offer ${
          s.link.offered.join(",")
        } and accept only the identities its ${
          s.link.pins.map((p) => `${p}=`).join(" and ")
        } pin; then customers offering only the other suite; CPU per set-up from /proc over the step; bank-only ceiling = 1 s ÷ the bank's CPU per set-up, what one core of the bank alone could do):`,
        table([
          [
            "suite",
            "set-ups",
            "beside",
            `set-ups/s (target ≥ ${SERVICE_SETUP_TARGET})`,
            "bank CPU µs/set-up",
            "relay CPU µs/set-up",
            "customers CPU µs/set-up",
            "bank-only ceiling/s per core",
          ],
          ...s.suites.map((x) => [
            x.suite,
            String(x.setups),
            String(x.before),
            `${fmt(x.setupsPerSec)} ${
              x.setupsPerSec >= SERVICE_SETUP_TARGET ? "MET" : "MISSED"
            }${x.complete ? "" : " (not all in time)"}`,
            fmt(x.cpuUsPerSetup.bank),
            fmt(x.cpuUsPerSetup.relay),
            fmt(x.cpuUsPerSetup.customers),
            fmt(1e6 / Math.max(1, x.cpuUsPerSetup.bank)),
          ]),
        ]),
      ]
      : []),
    ...[s.throughputAtSenders, s.throughput].filter((t) => t !== undefined)
      .map(throughputLine),
    `  relay restart: ${s.restart.recovered} of ${s.restart.conversations} conversations delivered a new message in ${
      s.restart.seconds.toFixed(1)
    } s${s.restart.complete ? "" : " (cut at the time bound)"}`,
    "",
  ];
}

/** One line of the service's throughput phase. */
function throughputLine(t: ServiceFigures["throughput"]): string {
  return `  ${t.senders} senders${
    t.conversations ? ` of ${t.conversations} conversations` : ""
  } × ${t.perSender} × 256 B${
    t.batch < t.perSender ? ` (rounds of ${t.batch} per send)` : ""
  }: ${t.received} received, ${
    fmt(t.msgsPerSec)
  } msgs/s, slowest customer's rate ${
    t.slowestShare.toFixed(2)
  } of the median's (done after ${
    t.customerSeconds?.slowest.toFixed(2) ?? "?"
  } s vs ${t.customerSeconds?.median.toFixed(2) ?? "?"} s; share at half-time ${
    t.shareAtHalf?.toFixed(2) ?? "?"
  })${t.complete ? "" : " (cut at the time bound)"}; 90 % arrived after ${
    t.secondsTo90 === undefined
      ? "(not reached)"
      : `${t.secondsTo90.toFixed(1)} s`
  }; CPU µs per message: bank ${fmt(t.cpuUsPerMsg.bank)}, relay ${
    fmt(t.cpuUsPerMsg.relay)
  }, customers (this process) ${fmt(t.cpuUsPerMsg.customers)}`;
}

function fmt(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString("en-US");
  return n.toFixed(n >= 10 ? 1 : 2);
}

/** A host steal percentage (bench/host_steal.ts); "n/a" where /proc/stat was not readable. */
function pct(n: number | null | undefined): string {
  return n === null || n === undefined ? "n/a" : `${n.toFixed(1)} %`;
}

/** Like fmt, with three decimals below 10 (ratios such as 1.047 or 0.93). */
function fmtV(n: number): string {
  return Math.abs(n) < 10 ? n.toFixed(3).replace(/\.?0+$/, "") : fmt(n);
}

function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) =>
    r.map((c) => typeof c === "number" ? fmt(c) : c)
  );
  const widths = cells[0].map((_, i) =>
    Math.max(...cells.map((r) => r[i].length))
  );
  return cells.map((r) =>
    r.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(
      "  ",
    )
  ).join("\n");
}

/** Renders the figures as text tables for stdout. */
function render(out: Record<string, unknown>): string {
  const lines: string[] = [];
  const m = out.machine as Record<string, unknown>;
  lines.push(
    `Machine: ${m.cores} cores, ${m.cpuModel}, ${m.memTotalMb} MB, ${m.os}; Deno ${m.deno} (V8 ${m.v8})`,
    `Concurrently: ${m.concurrency}.`,
    "",
  );
  const relay = out.relay as RelayCell[] | undefined;
  if (relay) {
    lines.push(
      `Relay forwarding over TLS (${IN_FLIGHT} frames in flight per pair; size = whole frame; best of ${
        (out.relayRounds as number | undefined) ?? 1
      } alternating relay/baseline runs each):`,
      table([
        [
          "pairs",
          "size B",
          "msgs/s",
          "MB/s",
          "baseline",
          "ratio",
          "p50 ms",
          "p99 ms",
          "max ms",
          "CPU µs/msg",
          "base p99",
          "base µs/msg",
        ],
        ...relay.map((c) => [
          String(c.pairs),
          String(c.size),
          c.msgsPerSec,
          c.mbPerSec,
          c.baselineMsgsPerSec,
          c.ratio.toFixed(2),
          c.p50Ms,
          c.p99Ms,
          c.maxMs,
          c.cpuUsPerMsg,
          c.baselineP99Ms,
          c.baselineCpuUsPerMsg,
        ]),
      ]),
    );
    const low = relay.reduce((a, c) => c.ratio < a.ratio ? c : a);
    lines.push(
      `Target relay ≥ ${RATIO_TARGET}× baseline in every cell: ${
        low.ratio >= RATIO_TARGET ? "MET" : "MISSED"
      } — lowest ratio ${low.ratio.toFixed(2)} (P=${low.pairs}, ${low.size} B)${
        low.ratio >= RATIO_TARGET
          ? ""
          : `, ${
            (RATIO_TARGET - low.ratio).toFixed(2)
          } short; run to run the ratios move by about ±0.15`
      }`,
      "",
    );
  }
  const st = out.stall as StallResult | undefined;
  if (st) {
    const row = (client: string, f: StallFigures) => [
      [
        client,
        "relay",
        f.msgsPerSec,
        f.p50Ms,
        f.p99Ms,
        f.maxMs,
        f.cpuUsPerMsg,
        f.stealPct ?? "n/a",
        f.loopGapMaxMs,
        f.maxFrameLoopGapMs,
      ],
      [
        client,
        "baseline",
        f.baselineMsgsPerSec,
        f.baselineP50Ms,
        f.baselineP99Ms,
        f.baselineMaxMs,
        f.baselineCpuUsPerMsg,
        f.baselineStealPct ?? "n/a",
        f.baselineLoopGapMaxMs,
        f.baselineMaxFrameLoopGapMs,
      ],
    ];
    const against = (value: number, limit: number) =>
      `${fmt(value)} ms (${
        value <= limit
          ? `${fmt(limit - value)} ms to spare`
          : `${fmt(value - limit)} ms over`
      })`;
    lines.push(
      `Latency stalls (P=${st.pairs}, ${st.size} B, ${st.inFlight} frames in flight; own = lib/deno/pinned_relay.ts with TCP_NODELAY and ack pongs, WebSocket = Deno's built-in client):`,
      table([
        [...STALL_COLUMNS],
        ...row("own", st),
        ...row("WebSocket", st.webSocket),
      ]),
      `Target p99 ≤ ${st.targetP99Ms} ms and max ≤ ${st.targetMaxMs} ms (P=${st.pairs}, ${st.size} B, ${st.inFlight} in flight, own client through the relay): ${
        st.met ? "MET" : "MISSED"
      } — p99 ${against(st.p99Ms, st.targetP99Ms)}, max ${
        against(st.maxMs, st.targetMaxMs)
      }; baseline p99 ${fmt(st.baselineP99Ms)} ms, max ${
        fmt(st.baselineMaxMs)
      } ms; WebSocket client through the relay p99 ${
        fmt(st.webSocket.p99Ms)
      } ms, max ${fmt(st.webSocket.maxMs)} ms${
        st.errors + st.webSocket.errors
          ? `; ${st.errors + st.webSocket.errors} ERROR frames`
          : ""
      }`,
      `  bench gap = the load generator's (this process's) longest event-loop gap in the window, a 1 ms timer running late; gap in max = its longest gap during the slowest frame's flight (0: none): that long, the bench itself was not running to read the reply. Host steal = CPU time the hypervisor took (/proc/stat).`,
      "",
    );
  }
  const u = out.unloaded as Record<string, number> | undefined;
  if (u) {
    lines.push(
      `Unloaded latency (1 pair, 1 frame in flight, 256 B): p50 ${
        fmt(u.p50Ms)
      } ms, p99 ${fmt(u.p99Ms)} ms, max ${fmt(u.maxMs)} ms (baseline p50 ${
        fmt(u.baselineP50Ms)
      }, p99 ${fmt(u.baselineP99Ms)}, max ${fmt(u.baselineMaxMs)})`,
      "",
    );
  }
  const mem = out.memory as
    | {
      levels: MemoryLevel[];
      idleRssKb: number;
      oneConnectionRssKb: number;
      warmupConnections: number;
    }
    | undefined;
  if (mem) {
    lines.push(
      `Memory (idle registered TLS connections added after a warm-up of 1 + ${mem.warmupConnections} that stay open; relay RSS ${mem.oneConnectionRssKb} KB with one connection, ${mem.idleRssKb} KB after the warm-up; "cold" = counted from one connection, warm-up included):`,
      table([
        [
          "connections",
          "relay RSS KB",
          "KB/conn",
          "cold",
          "baseline KB/conn",
          "cold",
        ],
        ...mem.levels.map((l) => [
          String(l.connections),
          String(l.rssKb),
          l.kbPerConnection,
          l.kbPerConnectionCold,
          l.baselineKbPerConnection === undefined
            ? "-"
            : l.baselineKbPerConnection,
          l.baselineKbPerConnectionCold === undefined
            ? "-"
            : l.baselineKbPerConnectionCold,
        ]),
      ]),
    );
    // The target is stated at 1,000 connections and more: below that the
    // relay's fixed RSS is not spread out (--quick measures 200).
    const judged = mem.levels.filter((l) =>
      l.connections >= MEMORY_TARGET_MIN_CONNECTIONS
    );
    const worst = judged.length === 0
      ? undefined
      : judged.reduce((a, l) => l.kbPerConnection > a.kbPerConnection ? l : a);
    lines.push(
      worst === undefined
        ? `Target ≤ ${MEMORY_TARGET_KB} KB per idle connection: not judged (no level of ${MEMORY_TARGET_MIN_CONNECTIONS}+ connections in this run)`
        : `Target ≤ ${MEMORY_TARGET_KB} KB per idle connection (${MEMORY_TARGET_MIN_CONNECTIONS}+ connections): ${
          worst.kbPerConnection <= MEMORY_TARGET_KB ? "MET" : "MISSED"
        } — highest ${fmt(worst.kbPerConnection)} KB at ${worst.connections}${
          worst.kbPerConnection <= MEMORY_TARGET_KB
            ? ""
            : ` (${fmt(worst.kbPerConnection - MEMORY_TARGET_KB)} KB over)`
        }`,
      "",
    );
  }
  const ch = out.channel as ChannelFigures | undefined;
  if (ch) {
    if (!ch.available) lines.push(`Channel: not available (${ch.reason})`, "");
    else {
      lines.push(
        `Channel (one process, no network): ${
          fmt(ch.handshakesPerSec!)
        } handshakes/s`,
        `Sealed by one Session, opened by the other (ACKs back), ${
          ch.pipeline?.depth ?? 1
        } sendMany batches of ${
          ch.pipeline?.batch ?? 64
        } in flight; node-hash = the clients' default (--crypto keys), node = --crypto fast, webcrypto = browser path:`,
        table([
          ["body B", "signing", "primitives", "msgs/s", "MB/s"],
          ...(ch.rows ?? []).map((r) => [
            String(r.size),
            r.signEvery === 1 ? "every message" : `chain, every ${r.signEvery}`,
            r.primitives,
            r.msgsPerSec,
            r.mbPerSec,
          ]),
        ]),
        "",
      );
    }
  }
  const e2e = out.e2e as E2eFigures | undefined;
  if (e2e) {
    if (!e2e.available) lines.push(`End to end: ${e2e.reason}`);
    else {
      const gap = e2e.msgsPerSec! / e2e.targetMsgsPerSec!;
      lines.push(
        `End to end (${e2e.setup}):`,
        table([
          [
            "run",
            "body B",
            "cover/s",
            "crypto",
            "in flight",
            "delivered",
            "msgs/s",
            "MB/s",
            "wire B/B",
            "p50 ms",
            "p99 ms",
            "max ms",
            "CPU µs/msg bank",
            "customer",
            "relay",
          ],
          ...e2e.rows!.map((r) => [
            r.name + (r.complete ? "" : " (capped)"),
            String(r.bodySize),
            String(r.coverRate),
            r.crypto,
            String(r.window),
            String(r.delivered),
            r.msgsPerSec,
            r.mbPerSec,
            r.wireBytesPerBodyByte?.toFixed(3) ?? "-",
            r.p50Ms,
            r.p99Ms,
            r.maxMs,
            r.cpuUsPerMsg?.bank ?? "-",
            r.cpuUsPerMsg?.customer ?? "-",
            r.cpuUsPerMsg?.relay ?? "-",
          ]),
        ]),
        `Target ${fmt(e2e.targetMsgsPerSec!)} msgs/s (256 B, chain signing): ${
          gap >= 1 ? "MET" : "MISSED"
        } — one direction ${fmt(e2e.msgsPerSec!)} msgs/s = ${
          (gap * 100).toFixed(0)
        } % of it${
          gap >= 1
            ? ""
            : ` (${fmt(e2e.targetMsgsPerSec! - e2e.msgsPerSec!)} short)`
        }; each pair of clients first streamed ${
          fmt(e2e.warmupMessages ?? 0)
        } unmeasured messages each way (JIT warm-up; from a cold start ${
          fmt(e2e.coldMsgsPerSec ?? 0)
        } msgs/s); client exits ${e2e.exitCodes!.join(",")}${
          Object.keys(e2e.clientErrors ?? {}).length
            ? `; client errors ${JSON.stringify(e2e.clientErrors)}`
            : ""
        }`,
        "",
      );
    }
  }
  const setup = out.setup as SetupFigures | undefined;
  if (setup) lines.push("", ...renderSetup(setup, table, fmt));
  const orig = out.original as OriginalFigures | undefined;
  if (orig) {
    lines.push(
      "",
      ...renderOriginal(
        orig,
        (out.originalComparison as OriginalComparison[] | undefined) ?? [],
        table,
      ),
    );
  }
  const svc = out.service as ServiceFigures | undefined;
  if (svc) lines.push("", ...renderService(svc));
  if (out.cluster) {
    lines.push("", ...renderCluster(out.cluster as ClusterFigures));
  }
  const host = out.host as HostSteal | undefined;
  if (host) lines.push(...renderHost(host), "");
  const vs = out.verdicts as Verdict[] | undefined;
  if (vs?.length) {
    const met = vs.filter((x) => x.met).length;
    lines.push(
      `Targets (${met} of ${vs.length} MET in this run; margin = distance inside (+) or outside (−) the limit):`,
      table([
        ["target", "verdict", "measured", "limit", "margin", "margin %"],
        ...vs.map((x) => [
          x.target,
          x.met ? "MET" : "MISSED",
          `${fmtV(x.value)} ${x.unit}`,
          `${x.kind === "min" ? "≥" : "≤"} ${fmtV(x.limit)} ${x.unit}`,
          `${x.margin >= 0 ? "+" : "−"}${fmtV(Math.abs(x.margin))} ${x.unit}`,
          `${x.margin >= 0 ? "+" : "−"}${
            Math.abs(x.marginFraction * 100).toFixed(1)
          } %`,
        ]),
      ]),
    );
  }
  return lines.join("\n");
}

/** The host's steal over the run and per section (`host` in the JSON). */
interface HostSteal {
  stealPct: number | null;
  sections: Record<string, number | null>;
}

/** Above this share of stolen CPU time the run's figures are the host's, not the code's. */
const STEAL_WARN_PCT = 2;

function renderHost(h: HostSteal): string[] {
  if (h.stealPct === null) {
    return ["Host steal: n/a (/proc/stat not readable on this system)"];
  }
  const per = Object.entries(h.sections).map(([k, v]) => `${k} ${pct(v)}`);
  return [
    `Host steal (CPU time the hypervisor gave to other guests while this VM had work, /proc/stat): ${
      pct(h.stealPct)
    } of all CPU time over the run${per.length ? ` (${per.join(", ")})` : ""}`,
    ...(h.stealPct > STEAL_WARN_PCT
      ? [
        `  WARNING: above ${STEAL_WARN_PCT} %: a descheduled vCPU stops every process on it, so maxima and absolute rates here are the host's; compare ratios measured in this run, or rerun on a quiet host.`,
      ]
      : []),
  ];
}

async function main(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    options: {
      quick: { type: "boolean", default: false },
      full: { type: "boolean", default: false },
      json: { type: "string" },
      only: { type: "string" },
      "relay-flag": { type: "string", multiple: true },
      "service-levels": { type: "string" },
      "service-senders": { type: "string" },
      "service-per-sender": { type: "string" },
      "service-batch": { type: "string" },
      "service-profile": { type: "string" },
      "service-heap": { type: "string" },
      "service-setup-profile": { type: "string" },
      "service-other-setups": { type: "string" },
      "service-workers": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  // Extra relay flags for experiments (e.g. --relay-flag=--idle-timeout=0).
  RELAY_BENCH_FLAGS.push(...(values["relay-flag"] ?? []));
  if (values.help) {
    console.log(
      `deno task bench [--quick] [--full] [--json FILE] [--only ${
        SECTIONS.join(",")
      }]\n` +
        "  --relay-flag=FLAG  extra relay flag (repeatable), e.g. --relay-flag=--idle-timeout=0\n" +
        "  --only   sections to run, comma-separated (default: all): relay = forwarding matrix,\n" +
        "           stall = P=1/256 B/32 in flight target (p99 ≤ 5 ms, max ≤ 10 ms) with our own client,\n" +
        "           unloaded = 1 frame in flight, memory = idle connections, channel = crypto, e2e = real clients\n" +
        "           (and their floor at 60 KiB: bench/floor_client.ts, the same processes and I/O, no protocol work),\n" +
        "           setup = handshakes/s per suite and safety number per new peer (targets),\n" +
        "           original = the original design (Python, bench/original/) at 256 B / 4 KiB / 60 KiB vs ours (≥ 2×),\n" +
        "           service = one bank --serve process: memory per idle conversation (100/1,000/10,000), set-ups/s,\n" +
        "           1,000 customers sending at once, relay restart (--quick: 20 customers)\n" +
        "           cluster = 2 relay nodes on redis-server: same-node vs cross-node, SPUBLISH/s of one Redis\n" +
        "  --service-levels=N,N…  --service-senders=N  --service-per-sender=N  override the service plan;\n" +
        "  --service-batch=N  senders send N messages per call, in rounds (default: all at once)\n" +
        "  --service-profile=FILE  CPU profile of the bank process during the throughput phase (.cpuprofile, DevTools)\n" +
        "  --service-heap=DIR  heap snapshots of the bank at 1 conversation and at each level (bench/heap_snapshot.ts sums them)\n" +
        "  --service-setup-profile=FILE  CPU profiles of the bank during the largest level's set-ups in FILE\n" +
        "           and during the other suite's step in FILE with .p256 (or .x25519) before .cpuprofile\n" +
        "  --service-other-setups=N  customers in the other suite's set-up step after the relay restart: the level\n" +
        "           customers follow the bank's address (x25519,p256 with its ed=), these offer only p256\n" +
        "           (only x25519 when the address has no ed=); default 2000, --quick 20; 0 = none\n" +
        "  --service-workers=N  Worker threads the simulated customers run in (default 0: the bench's own\n" +
        "           thread, where --service-profile's customers profile sees them)\n" +
        "  --quick  smoke run (< 30 s, fewer cells, 200 idle connections)\n" +
        "  --full   also 10,000 idle connections (the default run measures 1,000 and 5,000)\n" +
        "  --json   also write every figure, and verdicts[] (each target MET/MISSED with its margin), to FILE\n" +
        "The run ends with a Targets table: every target of the sections run, MET or MISSED, with its margin.",
    );
    return 0;
  }
  const only = new Set(
    (values.only ?? SECTIONS.join(",")).split(",").map((s) => s.trim()),
  );
  for (const s of only) {
    if (!SECTIONS.includes(s as Section)) {
      console.error(`bench: unknown section '${s}' (${SECTIONS.join(", ")})`);
      return 2;
    }
  }
  const plan = { ...(values.quick ? QUICK_PLAN : FULL_PLAN) };
  plan.service = {
    ...plan.service,
    ...(values["service-levels"] === undefined ? {} : {
      levels: values["service-levels"].split(",").map((n) =>
        positiveInt(n, "--service-levels")
      ),
    }),
    ...(values["service-senders"] === undefined ? {} : {
      senders: positiveInt(values["service-senders"], "--service-senders"),
    }),
    ...(values["service-per-sender"] === undefined ? {} : {
      perSender: positiveInt(
        values["service-per-sender"],
        "--service-per-sender",
      ),
    }),
    ...(values["service-batch"] === undefined
      ? {}
      : { batch: positiveInt(values["service-batch"], "--service-batch") }),
    ...(values["service-profile"] === undefined
      ? {}
      : { profile: values["service-profile"] }),
    ...(values["service-heap"] === undefined
      ? {}
      : { heapDir: values["service-heap"] }),
    ...(values["service-setup-profile"] === undefined
      ? {}
      : { setupProfile: values["service-setup-profile"] }),
    ...(values["service-other-setups"] === undefined ? {} : {
      otherSetups: values["service-other-setups"] === "0"
        ? 0
        : positiveInt(values["service-other-setups"], "--service-other-setups"),
    }),
    ...(values["service-workers"] === undefined ? {} : {
      workers: values["service-workers"] === "0"
        ? 0
        : positiveInt(values["service-workers"], "--service-workers"),
    }),
  };
  if (values.full && !values.quick) {
    plan.memoryLevels = [...plan.memoryLevels, 10000];
  }

  const t0 = performance.now();
  const ticks0 = await readCpuTicks();
  const steal: Record<string, number | null> = {};
  /** Runs one section and keeps the host's steal over it. */
  const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const r = await withSteal(f);
    steal[name] = r.stealPct;
    return r.value;
  };
  const certDir = await Deno.makeTempDir({ prefix: "relay-bench-certs-" });
  const out: Record<string, unknown> = { machine: await machine() };
  let http: Deno.HttpClient | undefined;
  try {
    const c = await ensureCerts({ dir: certDir });
    log("certificates ready");
    const certs: Certs = {
      certDir,
      certPath: c.certPath,
      keyPath: c.keyPath,
      caPath: c.caPath,
    };
    const httpClient = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(c.caPath)],
    });
    http = httpClient;
    // The stall cell first: after the 50-pair relay runs this process's V8
    // heap runs old-space mark-compacts every 30-70 ms and its event loop
    // lags 15-25 ms (measured with --trace-gc and a 1 ms interval timer),
    // which shows up as 25-38 ms maxima for relay and baseline alike.
    if (only.has("stall")) {
      log("latency stalls (own client transport)");
      out.stall = await timed(
        "stall",
        () => stallSection(plan, certs, httpClient),
      );
    }
    if (only.has("relay")) {
      out.relayRounds = plan.rounds;
      out.relay = await timed(
        "relay",
        () => relaySection(plan, certs, httpClient),
      );
    }
    if (only.has("unloaded")) {
      log("unloaded latency");
      out.unloaded = await timed(
        "unloaded",
        () => unloadedSection(plan, certs, httpClient),
      );
    }
    if (only.has("memory")) {
      log("memory");
      out.memory = await timed(
        "memory",
        () => memorySection(plan, certs, httpClient, !values.quick),
      );
    }
    if (only.has("channel")) {
      log("channel");
      const ch = await timed("channel", () => channelSection(plan));
      out.channel = ch;
      out.handshakesPerSec = ch.handshakesPerSec ?? null;
    }
    if (only.has("e2e")) {
      log("e2e");
      out.e2e = await timed("e2e", () => e2eSection(plan, certs));
    }
    if (only.has("setup")) {
      log("session set-up");
      const { measureSetupSubprocess } = await import("./setup_bench.ts");
      out.setup = await timed(
        "setup",
        () => measureSetupSubprocess(plan.channelMs * 2),
      );
    }
    if (only.has("original")) {
      log("original design baseline");
      const o = await timed("original", () =>
        measureOriginal({
          ...certs,
          sizes: plan.originalSizes,
          messages: (size) =>
            size <= 4096
              ? plan.originalMessages
              : Math.ceil(plan.originalMessages / 10),
          capMs: plan.e2eCapMs,
          log,
        }));
      out.original = o;
      const e2e = out.e2e as E2eFigures | undefined;
      const { BODY_SIZE } = await import("./e2e.ts");
      out.originalComparison = compareWithOriginal(
        e2e?.rows ?? [],
        o.rows ?? [],
        BODY_SIZE,
      );
    }
    if (only.has("service")) {
      log("bank service");
      out.service = await timed(
        "service",
        () => measureServiceSubprocess(plan.service, certs, log),
      );
    }
    if (only.has("cluster")) {
      log("cluster (2 relay nodes + redis-server)");
      out.cluster = await timed("cluster", () =>
        clusterSection(
          {
            warmupMs: plan.warmupMs,
            measureMs: plan.measureMs,
            rounds: plan.rounds,
            pairs: 10,
            size: 256,
            inFlight: 32,
          },
          certs,
          log,
        ));
    }
  } finally {
    http?.close();
    await Deno.remove(certDir, { recursive: true });
  }
  out.host = {
    stealPct: stealPct(ticks0, await readCpuTicks()),
    sections: steal,
  };
  out.verdicts = verdicts(out);
  out.elapsedSeconds = (performance.now() - t0) / 1000;
  console.log(render(out));
  if (values.json) {
    await Deno.writeTextFile(values.json, JSON.stringify(out, null, 2) + "\n");
  }
  return 0;
}

if (import.meta.main) await runCli("bench", () => main(Deno.args));
