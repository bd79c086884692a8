/**
 * `deno run --allow-read bench/summarize.ts run1.json run2.json run3.json`:
 * the README's Performance tables from several `deno task bench --json`
 * files. Every cell reads **min–max (median)** over the runs that measured
 * it; a target row says in how many runs it was MET. Nothing is measured
 * here: it only reads the files, so a table in README can be regenerated
 * from the files of the runs it names.
 * @module
 */

import type { Verdict } from "./main.ts";

type Json = Record<string, unknown>;

/** min–max (median) of the values, formatted with `fmt`; one value alone as itself. */
export function spread(values: number[], fmt: (n: number) => string): string {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return "—";
  if (v.length === 1) return fmt(v[0]);
  const mid = v.length % 2 === 1
    ? v[(v.length - 1) / 2]
    : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  const lo = fmt(v[0]);
  const hi = fmt(v[v.length - 1]);
  return lo === hi ? lo : `${lo}–${hi} (${fmt(mid)})`;
}

/** A number with `digits` decimals and thousands separators. */
export function num(digits: number): (n: number) => string {
  return (n) =>
    n.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
}

/** Three significant-ish digits: 0.123, 1.23, 12.3, 1,234. */
export function sig(n: number): string {
  const a = Math.abs(n);
  if (a >= 100) return num(0)(n);
  if (a >= 10) return num(1)(n);
  if (a >= 1) return num(2)(n);
  return num(3)(n);
}

/** A markdown table. */
export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(head),
    line(head.map(() => "---")),
    ...rows.map(line),
  ].join("\n");
}

function get(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Json)[k];
  }
  return cur;
}

function nums(runs: Json[], f: (r: Json) => unknown): number[] {
  return runs.map(f).filter((x): x is number => typeof x === "number");
}

function rowsOf(r: Json, path: string): Json[] {
  const v = get(r, path);
  return Array.isArray(v) ? v as Json[] : [];
}

/** The Targets table: each verdict key over the runs. */
export function targets(runs: Json[]): string {
  const keys: string[] = [];
  const byKey = new Map<string, Verdict[]>();
  for (const r of runs) {
    for (const v of (r.verdicts ?? []) as Verdict[]) {
      if (!byKey.has(v.key)) {
        keys.push(v.key);
        byKey.set(v.key, []);
      }
      byKey.get(v.key)!.push(v);
    }
  }
  const rows = keys.map((k) => {
    const vs = byKey.get(k)!;
    const first = vs[0];
    const unit = first.unit ? ` ${first.unit}` : "";
    const limit = `${first.kind === "min" ? "≥" : "≤"} ${
      sig(first.limit)
    }${unit}`;
    const met = vs.filter((v) => v.met).length;
    // The target text may name the run's own lowest cell: keep the part before it.
    const name = first.target.replace(
      / \((lowest|highest|largest)[^)]*\)/,
      "",
    );
    return [
      name,
      limit,
      spread(vs.map((v) => v.value), sig) + unit,
      `${met} of ${vs.length}`,
    ];
  });
  return table(["target", "limit", "measured: min–max (median)", "MET"], rows);
}

/** Relay matrix: ratio, msgs/s, CPU per frame per cell. */
export function relay(runs: Json[]): string {
  const cells = new Map<string, Json[]>();
  for (const r of runs) {
    for (const c of rowsOf(r, "relay")) {
      const key = `${c.pairs}|${c.size}`;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key)!.push(c);
    }
  }
  const rows = [...cells.entries()].map(([key, cs]) => {
    const [pairs, size] = key.split("|");
    return [
      pairs,
      size,
      spread(nums(cs, (c) => c.msgsPerSec), num(0)),
      spread(nums(cs, (c) => c.baselineMsgsPerSec), num(0)),
      spread(nums(cs, (c) => c.ratio), num(2)),
      spread(nums(cs, (c) => c.p99Ms), sig),
      spread(nums(cs, (c) => c.baselineP99Ms), sig),
      spread(nums(cs, (c) => c.cpuUsPerMsg), sig),
      spread(nums(cs, (c) => c.baselineCpuUsPerMsg), sig),
    ];
  });
  return table([
    "pairs",
    "size B",
    "relay msgs/s",
    "baseline msgs/s",
    "ratio",
    "relay p99 ms",
    "baseline p99 ms",
    "relay CPU µs/msg",
    "baseline CPU µs/msg",
  ], rows);
}

/** Idle-connection memory per level. */
export function memory(runs: Json[]): string {
  const levels = new Map<number, Json[]>();
  for (const r of runs) {
    for (const l of rowsOf(r, "memory.levels")) {
      const n = l.connections as number;
      if (!levels.has(n)) levels.set(n, []);
      levels.get(n)!.push(l);
    }
  }
  const rows = [...levels.entries()].sort((a, b) => a[0] - b[0]).map((
    [n, ls],
  ) => [
    num(0)(n),
    spread(nums(ls, (l) => l.kbPerConnection), num(1)),
    spread(nums(ls, (l) => l.baselineKbPerConnection), num(1)),
  ]);
  return table(["idle connections", "relay KB/conn", "baseline KB/conn"], rows);
}

/** Columns of the stall table, here and in the bench's own text output. */
export const STALL_COLUMNS = [
  "client",
  "server",
  "msgs/s",
  "p50 ms",
  "p99 ms",
  "max ms",
  "CPU µs/msg",
  "host steal %",
  "bench gap ms",
  "gap in max ms",
] as const;

/** The stall cell and its WebSocket-client comparison. */
export function stall(runs: Json[]): string {
  const row = (name: string, server: string, pre: string, base: boolean) => {
    const f = (k: string) => {
      const key = base ? `baseline${k[0].toUpperCase()}${k.slice(1)}` : k;
      return nums(
        runs,
        (r) => get(r, pre ? `stall.${pre}.${key}` : `stall.${key}`),
      );
    };
    return [
      name,
      server,
      spread(f("msgsPerSec"), num(0)),
      spread(f("p50Ms"), sig),
      spread(f("p99Ms"), sig),
      spread(f("maxMs"), sig),
      spread(f("cpuUsPerMsg"), sig),
      spread(f("stealPct"), sig),
      spread(f("loopGapMaxMs"), sig),
      spread(f("maxFrameLoopGapMs"), sig),
    ];
  };
  return table(
    [...STALL_COLUMNS],
    [
      row("own", "relay", "", false),
      row("own", "baseline", "", true),
      row("WebSocket", "relay", "webSocket", false),
      row("WebSocket", "baseline", "webSocket", true),
    ],
  );
}

/** Host steal (bench/host_steal.ts): the whole run and each section, % of all CPU time. */
export function host(runs: Json[]): string {
  const names: string[] = [];
  for (const r of runs) {
    const s = get(r, "host.sections");
    if (s && typeof s === "object") {
      for (const k of Object.keys(s)) if (!names.includes(k)) names.push(k);
    }
  }
  return table(
    ["host steal %", "whole run", ...names],
    [[
      "min–max (median)",
      spread(nums(runs, (r) => get(r, "host.stealPct")), sig),
      ...names.map((k) =>
        spread(nums(runs, (r) => get(r, `host.sections.${k}`)), sig)
      ),
    ]],
  );
}

/** End-to-end rows. */
export function e2e(runs: Json[]): string {
  const byName = new Map<string, Json[]>();
  for (const r of runs) {
    for (const row of rowsOf(r, "e2e.rows")) {
      const n = row.name as string;
      if (!byName.has(n)) byName.set(n, []);
      byName.get(n)!.push(row);
    }
  }
  const cpu = (rs: Json[], who: string) =>
    spread(nums(rs, (x) => get(x, `cpuUsPerMsg.${who}`)), sig);
  const rows = [...byName.entries()].map(([name, rs]) => [
    name,
    String(rs[0].bodySize),
    spread(nums(rs, (x) => x.msgsPerSec), num(0)),
    spread(nums(rs, (x) => x.mbPerSec), sig),
    spread(nums(rs, (x) => x.wireBytesPerBodyByte), num(3)),
    spread(nums(rs, (x) => x.p50Ms), sig),
    spread(nums(rs, (x) => x.p99Ms), sig),
    cpu(rs, "bank"),
    cpu(rs, "customer"),
    cpu(rs, "relay"),
  ]);
  return table([
    "run",
    "body B",
    "msgs/s",
    "MB/s",
    "wire B/B",
    "p50 ms",
    "p99 ms",
    "CPU µs/msg: bank",
    "customer",
    "relay",
  ], rows) + coldLine(runs);
}

/** The e2e warm-up's first stream (fresh clients, JIT cold), when the runs carry it. */
function coldLine(runs: Json[]): string {
  const cold = nums(runs, (r) => get(r, "e2e.coldMsgsPerSec"));
  if (!cold.length) return "";
  const warm = nums(runs, (r) => get(r, "e2e.warmupMessages"));
  return `\n\nEach pair of clients first streams ${
    spread(warm, num(0))
  } unmeasured messages each way (JIT warm-up); that warm-up's first stream, from a cold start: ${
    spread(cold, num(0))
  } msgs/s.`;
}

/** Session set-up per suite and provider, and the safety number. */
export function setup(runs: Json[]): string {
  const byKey = new Map<string, Json[]>();
  for (const r of runs) {
    for (const s of rowsOf(r, "setup.suites")) {
      const k = `${s.name}|${s.provider}`;
      if (!byKey.has(k)) byKey.set(k, []);
      byKey.get(k)!.push(s);
    }
  }
  const rows = [...byKey.entries()].map(([k, ss]) => {
    const [suite, provider] = k.split("|");
    const target = ss[0].target as number | undefined;
    const met = ss.filter((s) => s.met === true).length;
    return [
      suite,
      provider,
      spread(nums(ss, (s) => s.sequentialPerSec), num(0)),
      spread(nums(ss, (s) => s.pipelinedPerSec), num(0)),
      spread(nums(ss, (s) => s.perCoreSec), num(0)),
      target ? `≥ ${num(0)(target)}` : "—",
      target ? `${met} of ${ss.length}` : "—",
    ];
  });
  rows.push([
    "safety number",
    "CPU ms per new peer",
    "—",
    "—",
    spread(nums(runs, (r) => get(r, "setup.safetyNumber.cpuMsPerPeer")), sig),
    "≤ 5",
    `${
      runs.filter((r) => get(r, "setup.safetyNumber.met") === true).length
    } of ${
      nums(runs, (r) => get(r, "setup.safetyNumber.cpuMsPerPeer")).length
    }`,
  ]);
  return table([
    "suite",
    "provider",
    "1 at a time/s",
    "16 in flight/s",
    "per core/s",
    "target",
    "MET",
  ], rows);
}

/** Ours ÷ the original design. */
export function original(runs: Json[]): string {
  const byKey = new Map<string, Json[]>();
  for (const r of runs) {
    for (const c of rowsOf(r, "originalComparison")) {
      const k = `${c.bodySize}|${c.direction}`;
      if (!byKey.has(k)) byKey.set(k, []);
      byKey.get(k)!.push(c);
    }
  }
  const rows = [...byKey.entries()].map(([k, cs]) => {
    const [size, dir] = k.split("|");
    const judged = cs.filter((c) => typeof c.ratio === "number");
    return [
      size,
      dir,
      spread(nums(cs, (c) => c.oursMsgsPerSec), num(0)),
      spread(nums(cs, (c) => c.originalMsgsPerSec), num(0)),
      spread(nums(cs, (c) => c.ratio), num(2)),
      judged.length
        ? `${judged.filter((c) => c.met === true).length} of ${judged.length}`
        : "not judged",
    ];
  });
  return table([
    "body B",
    "direction",
    "ours msgs/s",
    "original msgs/s",
    "ours ÷ original",
    "≥ 2× MET",
  ], rows);
}

/** The bank service: memory and set-ups per level, throughput, restart. */
export function service(runs: Json[]): string {
  const levels = new Map<number, Json[]>();
  for (const r of runs) {
    for (const l of rowsOf(r, "service.levels")) {
      const n = l.target as number;
      if (!levels.has(n)) levels.set(n, []);
      levels.get(n)!.push(l);
    }
  }
  const rows = [...levels.entries()].sort((a, b) => a[0] - b[0]).map((
    [n, ls],
  ) => [
    `${num(0)(n)} conversations`,
    `${spread(nums(ls, (l) => l.kbPerConversation), num(0))} KB each${
      ls.some((l) => l.kbPerConversationAfterGc !== undefined)
        ? ` (${
          spread(nums(ls, (l) => l.kbPerConversationAfterGc), num(0))
        } after a full GC)`
        : ""
    }; ${spread(nums(ls, (l) => l.setupsPerSec), num(0))} set-ups/s${
      suitesOf(ls)
    }; reached ${spread(nums(ls, (l) => l.conversations), num(0))}`,
  ]);
  // A run's first set-up step is its largest level's: customers following
  // the bank's address (the default path); the later ones offer one suite.
  const bySuite = new Map<string, Json[]>();
  for (const r of runs) {
    for (const [i, x] of rowsOf(r, "service.suites").entries()) {
      const k = `${x.suite as string}|${i === 0 ? "link" : "only"}`;
      if (!bySuite.has(k)) bySuite.set(k, []);
      bySuite.get(k)!.push(x);
    }
  }
  for (const [k, xs] of bySuite) {
    const [suite, how] = k.split("|");
    const cpu = (k: string) =>
      spread(nums(xs, (x) => get(x, `cpuUsPerSetup.${k}`)), num(0));
    rows.push([
      `set-ups, ${
        how === "link"
          ? `customers following the address, suite ${suite}`
          : `customers offering only suite ${suite}`
      } (${spread(nums(xs, (x) => x.setups), num(0))} beside ${
        spread(nums(xs, (x) => x.before), num(0))
      })`,
      `${
        spread(nums(xs, (x) => x.setupsPerSec), num(0))
      } set-ups/s; CPU µs per set-up: bank ${cpu("bank")}, relay ${
        cpu("relay")
      }, customers ${cpu("customers")}`,
    ]);
  }
  for (const phase of ["throughputAtSenders", "throughput"]) {
    const t = (k: string) => nums(runs, (r) => get(r, `service.${phase}.${k}`));
    if (t("msgsPerSec").length === 0) continue;
    const among = t("conversations");
    rows.push([
      `${spread(t("senders"), num(0))} customers sending at once${
        among.length ? ` (of ${spread(among, num(0))} conversations)` : ""
      }`,
      `${spread(t("msgsPerSec"), num(0))} msgs/s; slowest share ${
        spread(t("slowestShare"), num(2))
      } of the median's rate; 90 % after ${
        spread(t("secondsTo90"), sig)
      } s, the slowest customer done after ${
        spread(t("customerSeconds.slowest"), sig)
      } s`,
    ]);
  }
  const s = (k: string) => nums(runs, (r) => get(r, `service.restart.${k}`));
  rows.push([
    "relay restart",
    `${spread(s("recovered"), num(0))} of ${
      spread(s("conversations"), num(0))
    } back in ${spread(s("seconds"), sig)} s`,
  ]);
  return table(["bank service", "measured: min–max (median)"], rows);
}

/** ` (suite x25519)` when the rows name their suites (older files do not). */
function suitesOf(rows: Json[]): string {
  const names = [...new Set(rows.map((r) => r.suite).filter((x) => x))];
  return names.length ? ` (suite ${names.join(", ")})` : "";
}

/** The cluster rows. */
export function cluster(runs: Json[]): string {
  const byMode = new Map<string, Json[]>();
  for (const r of runs) {
    for (const c of rowsOf(r, "cluster.rows")) {
      const m = c.mode as string;
      if (!byMode.has(m)) byMode.set(m, []);
      byMode.get(m)!.push(c);
    }
  }
  const rows = [...byMode.entries()].map(([m, cs]) => [
    m,
    spread(nums(cs, (c) => c.msgsPerSec), num(0)),
    spread(nums(cs, (c) => c.p99Ms), sig),
    spread(nums(cs, (c) => c.relayCpuUsPerMsg), sig),
    spread(nums(cs, (c) => c.redisCpuUsPerMsg), sig),
  ]);
  return table([
    "mode",
    "msgs/s",
    "p99 ms",
    "relay CPU µs/frame",
    "redis CPU µs/frame",
  ], rows);
}

if (import.meta.main) {
  const files = Deno.args.filter((a) => !a.startsWith("-"));
  if (files.length === 0 || Deno.args.includes("--help")) {
    console.log(
      "usage: deno run --allow-read bench/summarize.ts RUN.json... \n" +
        "  prints markdown tables (min–max (median) over the runs) of the sections the files hold",
    );
    Deno.exit(files.length === 0 && !Deno.args.includes("--help") ? 2 : 0);
  }
  const runs: Json[] = [];
  for (const f of files) {
    try {
      runs.push(JSON.parse(await Deno.readTextFile(f)));
    } catch (e) {
      console.error(`summarize: ${f}: ${(e as Error).message}`);
      Deno.exit(1);
    }
  }
  const out: string[] = [];
  const section = (title: string, has: boolean, body: () => string) => {
    if (has) out.push(`#### ${title}\n\n${body()}\n`);
  };
  const any = (p: string) => runs.some((r) => get(r, p) !== undefined);
  section("Targets", any("verdicts"), () => targets(runs));
  section("Relay", any("relay"), () => relay(runs));
  section("Memory", any("memory.levels"), () => memory(runs));
  section("Stall cell", any("stall"), () => stall(runs));
  section("End to end", any("e2e.rows"), () => e2e(runs));
  section("Session set-up", any("setup.suites"), () => setup(runs));
  section("Original design", any("originalComparison"), () => original(runs));
  section("Bank service", any("service"), () => service(runs));
  section("Cluster", any("cluster.rows"), () => cluster(runs));
  section("Host steal", any("host.stealPct"), () => host(runs));
  console.log(out.join("\n"));
}
