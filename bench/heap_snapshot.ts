/**
 * Heap snapshots of another Deno process over the V8 inspector
 * (`HeapProfiler.takeHeapSnapshot` on the WebSocket that
 * `deno run --inspect=HOST:PORT` serves), and a summary of what a set of
 * objects retains: self size per object class, and retained size (dominator
 * tree) per owner class with its breakdown by field. `deno run
 * --allow-read bench/heap_snapshot.ts A.heapsnapshot B.heapsnapshot --per N`
 * prints (B − A) / N: what each of N more objects (idle conversations) costs.
 * Benchmarks only.
 * @module
 */

import { connectInspector } from "./cpu_profile.ts";

/** Runs a full garbage collection in the process whose inspector listens on `port` (`HeapProfiler.collectGarbage`). */
export async function collectGarbage(port: number): Promise<void> {
  const { call, ws } = await connectInspector(port);
  await call("HeapProfiler.enable");
  await call("HeapProfiler.collectGarbage");
  await call("HeapProfiler.disable");
  ws.close();
}

/** Writes a heap snapshot of the process whose inspector listens on `port` to `path` (a full GC runs first). */
export async function takeHeapSnapshot(
  port: number,
  path: string,
): Promise<void> {
  const { call, ws, onEvent } = await connectInspector(port);
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const enc = new TextEncoder();
  let writing = Promise.resolve();
  onEvent((method, params) => {
    if (method !== "HeapProfiler.addHeapSnapshotChunk") return;
    const bytes = enc.encode(params.chunk as string);
    writing = writing.then(async () => {
      for (let o = 0; o < bytes.length;) {
        o += await file.write(bytes.subarray(o));
      }
    });
  });
  await call("HeapProfiler.enable");
  await call("HeapProfiler.collectGarbage");
  await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  await writing;
  file.close();
  await call("HeapProfiler.disable");
  ws.close();
}

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
    node_count: number;
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Per class: count and bytes. */
export type Tally = Map<string, { count: number; bytes: number }>;

/** What {@link analyze} finds in one snapshot. */
export interface HeapSummary {
  /** Total self size of every reachable node. */
  total: number;
  /** Self size per class (reachable nodes). */
  self: Tally;
  /** Retained size per class, counting only instances not dominated by another of the same class. */
  retained: Tally;
  /** Per owner class in `owners`: its retained bytes by "field → class" of the dominated children. */
  breakdown: Map<string, Tally>;
  /** Per class in `who`: its outermost instances' retained bytes by "dominator class . field" (who holds them). */
  holders: Map<string, Tally>;
}

/** Reads a .heapsnapshot and computes {@link HeapSummary}; `owners` get a breakdown. */
export function analyze(
  text: string,
  owners: string[],
  who: string[] = [],
): HeapSummary {
  const s = JSON.parse(text) as Snapshot;
  const m = s.snapshot.meta;
  const NF = m.node_fields.length;
  const EF = m.edge_fields.length;
  const nType = m.node_fields.indexOf("type");
  const nName = m.node_fields.indexOf("name");
  const nSize = m.node_fields.indexOf("self_size");
  const nEdges = m.node_fields.indexOf("edge_count");
  const eType = m.edge_fields.indexOf("type");
  const eName = m.edge_fields.indexOf("name_or_index");
  const eTo = m.edge_fields.indexOf("to_node");
  const nodeTypes = m.node_types[0];
  const edgeTypes = m.edge_types[0];
  const weak = edgeTypes.indexOf("weak");
  const shortcut = edgeTypes.indexOf("shortcut");
  const elementT = edgeTypes.indexOf("element");
  const hiddenT = edgeTypes.indexOf("hidden");
  const n = s.nodes.length / NF;
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) {
    firstEdge[i] = e;
    e += s.nodes[i * NF + nEdges] * EF;
    firstEdge[i + 1] = e;
  }
  const cls = (i: number): string => {
    const t = nodeTypes[s.nodes[i * NF + nType]];
    const name = s.strings[s.nodes[i * NF + nName]];
    if (t === "object" || t === "native") return name;
    if (t === "closure") return `(closure ${name || "anonymous"})`;
    if (
      t === "string" || t === "concatenated string" || t === "sliced string"
    ) {
      return "(string)";
    }
    if (t === "hidden" || t === "array" || t === "code") {
      return `(${t} ${name.slice(0, 40)})`;
    }
    return `(${t})`;
  };
  const edgeLabel = (e: number): string => {
    const t = s.edges[e + eType];
    const v = s.edges[e + eName];
    if (t === elementT || t === hiddenT) return `[${t === hiddenT ? "h" : ""}]`;
    return s.strings[v] ?? String(v);
  };
  // Reachability and postorder from the root (node 0), strong edges only.
  const order = new Int32Array(n).fill(-1);
  const post: number[] = [];
  const stack: number[] = [0];
  const iter = new Uint32Array(n);
  order[0] = -2;
  for (let i = 0; i < n; i++) iter[i] = firstEdge[i];
  while (stack.length > 0) {
    const v = stack[stack.length - 1];
    let pushed = false;
    while (iter[v] < firstEdge[v + 1]) {
      const e = iter[v];
      iter[v] += EF;
      const t = s.edges[e + eType];
      if (t === weak || t === shortcut) continue;
      const w = s.edges[e + eTo] / NF;
      if (order[w] !== -1) continue;
      order[w] = -2;
      stack.push(w);
      pushed = true;
      break;
    }
    if (!pushed) {
      stack.pop();
      order[v] = post.length;
      post.push(v);
    }
  }
  // Predecessors (strong edges between reachable nodes).
  const predCount = new Uint32Array(n + 1);
  for (let v = 0; v < n; v++) {
    if (order[v] < 0) continue;
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += EF) {
      const t = s.edges[e + eType];
      if (t === weak || t === shortcut) continue;
      predCount[s.edges[e + eTo] / NF + 1]++;
    }
  }
  for (let i = 0; i < n; i++) predCount[i + 1] += predCount[i];
  const preds = new Uint32Array(predCount[n]);
  const fill = predCount.slice();
  for (let v = 0; v < n; v++) {
    if (order[v] < 0) continue;
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += EF) {
      const t = s.edges[e + eType];
      if (t === weak || t === shortcut) continue;
      const w = s.edges[e + eTo] / NF;
      preds[fill[w]++] = v;
    }
  }
  // Dominators: Cooper, Harvey, Kennedy (iterative, reverse postorder).
  const idom = new Int32Array(n).fill(-1);
  idom[0] = 0;
  const intersect = (a: number, b: number) => {
    while (a !== b) {
      while (order[a] < order[b]) a = idom[a];
      while (order[b] < order[a]) b = idom[b];
    }
    return a;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let k = post.length - 2; k >= 0; k--) {
      const v = post[k];
      let d = -1;
      for (let j = predCount[v]; j < predCount[v + 1]; j++) {
        const p = preds[j];
        if (idom[p] === -1) continue;
        d = d === -1 ? p : intersect(p, d);
      }
      if (d !== -1 && idom[v] !== d) {
        idom[v] = d;
        changed = true;
      }
    }
  }
  const retainedSize = new Float64Array(n);
  let total = 0;
  const self: Tally = new Map();
  const add = (t: Tally, k: string, bytes: number, count = 1) => {
    const x = t.get(k);
    if (x) {
      x.count += count;
      x.bytes += bytes;
    } else t.set(k, { count, bytes });
  };
  for (const v of post) {
    const size = s.nodes[v * NF + nSize];
    total += size;
    add(self, cls(v), size);
    retainedSize[v] += size;
    if (v !== 0) retainedSize[idom[v]] += retainedSize[v];
  }
  // Retained per class: instances with no same-class dominator above them.
  const retained: Tally = new Map();
  const classOf: string[] = new Array(n);
  for (let k = post.length - 1; k >= 0; k--) classOf[post[k]] = cls(post[k]);
  for (const v of post) {
    if (v === 0) continue;
    const c = classOf[v];
    let d = idom[v], nested = false;
    while (d !== 0) {
      if (classOf[d] === c) {
        nested = true;
        break;
      }
      d = idom[d];
    }
    if (!nested) add(retained, c, retainedSize[v]);
  }
  // Breakdown of each owner class's instances by their dominated children.
  const breakdown = new Map<string, Tally>();
  const want = new Set(owners);
  for (const v of post) {
    if (!want.has(classOf[v])) continue;
    const t = breakdown.get(classOf[v]) ?? new Map();
    breakdown.set(classOf[v], t);
    add(t, "(self)", s.nodes[v * NF + nSize]);
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += EF) {
      const w = s.edges[e + eTo] / NF;
      if (idom[w] !== v) continue;
      add(t, `${edgeLabel(e)} → ${classOf[w]}`, retainedSize[w]);
    }
  }
  const holders = new Map<string, Tally>();
  const whoSet = new Set(who);
  for (const v of post) {
    if (v === 0 || !whoSet.has(classOf[v])) continue;
    let d = idom[v], nested = false;
    while (d !== 0) {
      if (classOf[d] === classOf[v]) nested = true;
      d = idom[d];
    }
    if (nested) continue;
    const t = holders.get(classOf[v]) ?? new Map();
    holders.set(classOf[v], t);
    const dom = idom[v];
    let field = "…";
    for (let e = firstEdge[dom]; e < firstEdge[dom + 1]; e += EF) {
      if (s.edges[e + eTo] / NF === v) field = edgeLabel(e);
    }
    // Up to two owners up, for context.
    const up = idom[dom] !== 0 ? `${classOf[idom[dom]]} > ` : "";
    add(t, `${up}${classOf[dom]} . ${field}`, retainedSize[v]);
  }
  return { total, self, retained, breakdown, holders };
}

function diff(a: Tally, b: Tally): Tally {
  const out: Tally = new Map();
  for (const [k, v] of b) {
    const x = a.get(k) ?? { count: 0, bytes: 0 };
    out.set(k, { count: v.count - x.count, bytes: v.bytes - x.bytes });
  }
  for (const [k, x] of a) {
    if (!b.has(k)) out.set(k, { count: -x.count, bytes: -x.bytes });
  }
  return out;
}

function print(title: string, t: Tally, per: number, top: number): void {
  console.log(`\n${title} (per ${per}):`);
  const rows = [...t].sort((x, y) =>
    Math.abs(y[1].bytes) - Math.abs(x[1].bytes)
  )
    .slice(0, top);
  for (const [k, v] of rows) {
    console.log(
      `${(v.bytes / per).toFixed(0).padStart(8)} B  ${
        (v.count / per).toFixed(2).padStart(7)
      } ×  ${k}`,
    );
  }
}

if (import.meta.main) {
  const { parseFlags, positiveInt, runCli, UsageError } = await import(
    "./cli.ts"
  );
  await runCli("bench/heap_snapshot.ts", async () => {
    const { values, positionals } = parseFlags(Deno.args, {
      allowPositionals: true,
      options: {
        per: { type: "string", default: "1" },
        top: { type: "string", default: "40" },
        owner: { type: "string", multiple: true, default: [] },
        who: { type: "string", multiple: true, default: [] },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      console.log(
        "deno run --allow-read bench/heap_snapshot.ts [A.heapsnapshot] B.heapsnapshot [--per N] [--top K] [--owner CLASS]... [--who CLASS]...\n" +
          "  (B − A) / N: self size by class, retained size by outermost class, --owner's retained size by field, --who's holders",
      );
      return 0;
    }
    if (positionals.length < 1 || positionals.length > 2) {
      throw new UsageError("one or two .heapsnapshot files");
    }
    const per = positiveInt(values.per, "--per");
    const top = positiveInt(values.top, "--top");
    const owners = values.owner as string[];
    const who = values.who as string[];
    const sums = await Promise.all(positionals.map(async (p) => {
      let text: string;
      try {
        text = await Deno.readTextFile(p);
      } catch (e) {
        throw new UsageError(`${p}: ${(e as Error).message}`);
      }
      return analyze(text, owners, who);
    }));
    const [a, b] = sums.length === 2 ? sums : [undefined, sums[0]];
    const empty: HeapSummary = {
      total: 0,
      self: new Map(),
      retained: new Map(),
      breakdown: new Map(),
      holders: new Map(),
    };
    const base = a ?? empty;
    console.log(
      `total self size: ${
        ((b.total - base.total) / per).toFixed(0)
      } B per ${per}`,
    );
    print("self size by class", diff(base.self, b.self), per, top);
    print(
      "retained by class (outermost instances)",
      diff(base.retained, b.retained),
      per,
      top,
    );
    for (const o of owners) {
      print(
        `${o}: retained by field`,
        diff(
          base.breakdown.get(o) ?? new Map(),
          b.breakdown.get(o) ?? new Map(),
        ),
        per,
        top,
      );
    }
    for (const w of who) {
      print(
        `${w}: held by`,
        diff(base.holders.get(w) ?? new Map(), b.holders.get(w) ?? new Map()),
        per,
        top,
      );
    }
    return 0;
  });
}
