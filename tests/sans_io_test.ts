/**
 * The protocol core in lib/ (outside lib/deno/) must stay sans-I/O and
 * browser-safe: no Deno namespace, no node: modules, no timers, no sockets.
 */

import assert from "node:assert/strict";

const LIB = new URL("../lib/", import.meta.url);
const FORBIDDEN: [RegExp, string][] = [
  [/\bDeno\./, "the Deno namespace"],
  [/from\s+["']node:/, "a node: module"],
  [/\bset(Timeout|Interval)\s*\(/, "a timer"],
  [/\bnew\s+WebSocket\b/, "a socket"],
  [/\bfetch\s*\(/, "network I/O"],
  [/from\s+["'](npm|jsr|https?):/, "an external dependency"],
];

Deno.test("lib/ core is sans-I/O and dependency-free", async () => {
  let checked = 0;
  for await (const entry of Deno.readDir(LIB)) {
    if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, LIB));
    // Only code matters: drop comments so documentation may mention these words.
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(
      /^\s*\/\/.*$/gm,
      "",
    );
    for (const [re, what] of FORBIDDEN) {
      assert.ok(!re.test(code), `lib/${entry.name} uses ${what}`);
    }
    checked++;
  }
  assert.ok(checked >= 15, `only ${checked} modules found`);
});

Deno.test("no runtime dependency anywhere outside tests", async () => {
  const root = new URL("../", import.meta.url);
  const offenders: string[] = [];
  async function walk(dir: URL, rel: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      if (
        [".git", "tests", "node_modules", "dist", "cov", "certs"].includes(
          e.name,
        )
      ) continue;
      const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
      if (e.isDirectory) await walk(u, `${rel}${e.name}/`);
      else if (/\.(ts|json)$/.test(e.name)) {
        const t = await Deno.readTextFile(u);
        if (/["'](npm|jsr):|from\s+["']https?:/.test(t)) {
          offenders.push(rel + e.name);
        }
      }
    }
  }
  await walk(root, "");
  assert.deepEqual(offenders, []);
});
