import assert from "node:assert/strict";
import { parseProcStat, readCpuTicks, stealPct } from "../bench/host_steal.ts";
import { host, stall } from "../bench/summarize.ts";

Deno.test("host steal: /proc/stat's cpu line is parsed, guest time not counted twice", () => {
  const t = parseProcStat(
    "cpu  32987 0 17631 5231589 773 0 5920 8654 11 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
  );
  assert.deepEqual(t, {
    total: 32987 + 17631 + 5231589 + 773 + 5920 + 8654,
    steal: 8654,
  });
  assert.equal(parseProcStat("cpu0 1 2 3 4 5 6 7 8\n"), null);
  assert.equal(parseProcStat("cpu  1 2 3\n"), null);
  assert.equal(parseProcStat("cpu  1 2 3 4 5 6 7 x\n"), null);
  assert.equal(parseProcStat(""), null);
});

Deno.test("host steal: the share of stolen ticks between two readings", () => {
  const a = { total: 1000, steal: 100 };
  assert.equal(stealPct(a, { total: 1200, steal: 150 }), 25);
  assert.equal(stealPct(a, { total: 1200, steal: 100 }), 0);
  assert.equal(stealPct(a, a), null); // no tick passed
  assert.equal(stealPct(null, a), null);
  assert.equal(stealPct(a, null), null);
});

Deno.test("host steal: this machine's /proc/stat reads and only grows", async () => {
  const a = await readCpuTicks();
  // Burn a little CPU so at least one tick (10 ms) passes.
  const end = performance.now() + 60;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  const b = await readCpuTicks();
  assert.ok(a && b, "/proc/stat is readable on Linux");
  assert.ok(b.total > a.total, `ticks advanced: ${a.total} → ${b.total}`);
  assert.ok(b.steal >= a.steal);
  const p = stealPct(a, b);
  assert.ok(p !== null && p >= 0 && p <= 100, String(p));
});

Deno.test("host steal: summarize prints it per run and section, and in the stall table", () => {
  const run = (whole: number, stallPct: number) => ({
    host: { stealPct: whole, sections: { stall: stallPct, e2e: whole } },
    stall: {
      msgsPerSec: 1,
      p50Ms: 1,
      p99Ms: 1,
      maxMs: 1,
      cpuUsPerMsg: 1,
      stealPct: stallPct,
      webSocket: {},
    },
  });
  const runs = [run(1, 20), run(3, 0.5), run(2, 4)];
  const h = host(runs).split("\n");
  assert.equal(h[0], "| host steal % | whole run | stall | e2e |");
  assert.equal(
    h[2],
    "| min–max (median) | 1.00–3.00 (2.00) | 0.500–20.0 (4.00) | 1.00–3.00 (2.00) |",
  );
  const s = stall(runs).split("\n");
  assert.ok(s[0].includes("| host steal % |"), s[0]);
  assert.ok(s[2].includes("| 0.500–20.0 (4.00) |"), s[2]);
  // Runs from before host steal was measured show a dash, not a zero.
  assert.ok(
    stall([{ stall: { webSocket: {} } }]).split("\n")[2].endsWith("| — |"),
  );
});

Deno.test("loop gaps: late probe ticks are kept, and the one overlapping a frame's flight is found", async () => {
  const { LoopGaps, LOOP_GAP_MIN_MS } = await import("../bench/load.ts");
  const g = new LoopGaps(0);
  for (const t of [1, 2, 3, 12, 13, 14, 19, 20]) g.tick(t); // gaps 9 (3→12) and 5 (14→19)
  assert.equal(g.max, 9);
  assert.ok(LOOP_GAP_MIN_MS < 5);
  assert.equal(g.longestOverlapping(2.5, 4), 9); // a frame in flight 2.5–4 waited for 3–12
  assert.equal(g.longestOverlapping(15, 16), 5);
  assert.equal(g.longestOverlapping(10, 17), 9); // both overlap: the longer
  assert.equal(g.longestOverlapping(19.5, 30), 0); // after every gap
  assert.equal(g.longestOverlapping(0, 2), 0); // ticks on time: no gap
});
