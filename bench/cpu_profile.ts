/**
 * A CPU profile of another Deno process over the V8 inspector (Chrome
 * DevTools protocol: `Profiler.start` / `Profiler.stop` over the WebSocket
 * that `deno run --inspect=HOST:PORT` serves). The result is a
 * `.cpuprofile` (open it in Chrome DevTools, or sum it with
 * {@link summarizeProfile}). Benchmarks only.
 * @module
 */

/** A free loopback TCP port (bound, read, released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running profile; {@link stop} ends it and returns the profile object. */
export interface Profiling {
  stop(): Promise<CpuProfile>;
}

/** The part of a V8 CPU profile that {@link summarizeProfile} reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
}

/** A DevTools-protocol connection to the inspector on `port` (retried for `waitMs` while the process starts). */
export async function connectInspector(port: number, waitMs = 30_000): Promise<{
  ws: WebSocket;
  call: (method: string, params?: object) => Promise<unknown>;
  onEvent: (
    f: (method: string, params: Record<string, unknown>) => void,
  ) => void;
}> {
  const until = performance.now() + waitMs;
  let url: string | undefined;
  while (url === undefined) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/list`);
      const list = await res.json() as { webSocketDebuggerUrl: string }[];
      url = list[0]?.webSocketDebuggerUrl;
    } catch (e) {
      if (performance.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const ws = new WebSocket(url);
  await new Promise((ok, fail) => {
    ws.onopen = ok;
    ws.onerror = fail;
  });
  let next = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  let events = (_m: string, _p: Record<string, unknown>) => {};
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data as string);
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
    else if (msg.method) events(msg.method, msg.params);
  };
  const call = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      const id = ++next;
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { ws, call, onEvent: (f) => void (events = f) };
}

/** Starts sampling the process whose inspector listens on `port` (retries for up to `waitMs` while it starts). */
export async function startProfile(
  port: number,
  waitMs = 30_000,
  intervalUs = 250,
): Promise<Profiling> {
  const { ws, call } = await connectInspector(port, waitMs);
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: intervalUs });
  await call("Profiler.start");
  return {
    async stop() {
      const r = await call("Profiler.stop") as { profile: CpuProfile };
      ws.close();
      return r.profile;
    },
  };
}

/** Starts sampling this process (node:inspector's in-process session). */
export async function startSelfProfile(intervalUs = 250): Promise<Profiling> {
  const { Session } = await import("node:inspector");
  const session = new Session();
  session.connect();
  const post = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(
        method,
        params,
        (e: unknown, r: unknown) => e ? reject(e) : resolve(r),
      )
    );
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: intervalUs });
  await post("Profiler.start");
  return {
    async stop() {
      const r = await post("Profiler.stop") as { profile: CpuProfile };
      session.disconnect();
      return r.profile;
    },
  };
}

/** Self time per function (top `n`) and total sampled time, for a log line per function. */
export function summarizeProfile(p: CpuProfile, n = 25): string[] {
  const hits = new Map<string, number>();
  let total = 0;
  for (const node of p.nodes) {
    const h = node.hitCount ?? 0;
    if (h === 0) continue;
    total += h;
    const f = node.callFrame;
    const file = f.url.replace(/^.*\/(?=[^/]+\/[^/]+$)/, "");
    const k = `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
    hits.set(k, (hits.get(k) ?? 0) + h);
  }
  return [...hits].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, h]) =>
    `${(100 * h / total).toFixed(1).padStart(5)} %  ${k}`
  );
}
