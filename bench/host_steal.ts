/**
 * Host steal: the CPU time the hypervisor gave to other guests while this
 * virtual machine's vCPUs had work (`steal` in /proc/stat, Linux ≥ 2.6.11).
 *
 * On a shared VM a vCPU that is descheduled by the host for 10 ms stops every
 * process on it for 10 ms, whatever they do; the stall cell's maximum and every
 * throughput figure read lower then. The bench reports the share of stolen
 * time per section and per stall window so a reader can tell a slow host from
 * slow code (2026-12-04, 2-core AMD EPYC VM: 21 % of all CPU time stolen over
 * five stall-only runs, up to 60 % in a 100 ms interval).
 */

import { readProc } from "./server_process.ts";

/** Cumulative CPU ticks of the whole machine, all CPUs together. */
export interface CpuTicks {
  /** Every tick counted (user … steal; guest time is already inside user). */
  total: number;
  /** Ticks the hypervisor ran something else while a vCPU was runnable. */
  steal: number;
}

/** Parses the aggregate `cpu` line of /proc/stat; null if absent or malformed. */
export function parseProcStat(text: string): CpuTicks | null {
  const line = text.split("\n", 1)[0];
  const m = /^cpu\s+(.+)$/.exec(line);
  if (!m) return null;
  const f = m[1].trim().split(/\s+/).map(Number);
  if (f.length < 8 || f.some((n) => !Number.isFinite(n) || n < 0)) return null;
  // user nice system idle iowait irq softirq steal [guest guest_nice]
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, steal: f[7] };
}

/** The machine's CPU ticks now, or null where /proc/stat cannot be read. */
export async function readCpuTicks(): Promise<CpuTicks | null> {
  try {
    return parseProcStat(await readProc("stat"));
  } catch {
    return null;
  }
}

/**
 * Percentage of all CPU time between `a` and `b` that was stolen; null when
 * either reading is missing or no tick passed.
 */
export function stealPct(
  a: CpuTicks | null,
  b: CpuTicks | null,
): number | null {
  if (!a || !b) return null;
  const total = b.total - a.total;
  if (total <= 0) return null;
  return 100 * Math.max(0, b.steal - a.steal) / total;
}

/** Runs `f` and returns its result with the steal percentage over it. */
export async function withSteal<T>(
  f: () => Promise<T>,
): Promise<{ value: T; stealPct: number | null }> {
  const a = await readCpuTicks();
  const value = await f();
  return { value, stealPct: stealPct(a, await readCpuTicks()) };
}
