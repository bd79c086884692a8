/**
 * PROTOCOL.md and lib/constants.ts in one-to-one correspondence: the
 * "## Constants" table of PROTOCOL.md names every export of lib/constants.ts
 * exactly once with its value, and nothing else; every "`NAME` = value"
 * written elsewhere in PROTOCOL.md agrees too. So neither can drift.
 */

import assert from "node:assert/strict";
import * as constants from "../lib/constants.ts";

const spec = await Deno.readTextFile(
  new URL("../PROTOCOL.md", import.meta.url),
);

/** The rows of the table under "## Constants": name → value text. */
function constantsTable(md: string): Map<string, string> {
  const start = md.indexOf("\n## Constants\n");
  assert.ok(start >= 0, 'PROTOCOL.md has no "## Constants" section');
  const end = md.indexOf("\n## ", start + 1);
  const section = md.slice(start, end < 0 ? undefined : end);
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const m = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*([^|]*?)\s*\|/.exec(line);
    if (!m) continue;
    assert.ok(!rows.has(m[1]), `${m[1]} is listed twice in PROTOCOL.md`);
    rows.set(m[1], m[2]);
  }
  return rows;
}

/** A table value as the export it must equal: "quoted" → string, digits → number or bigint. */
function parseValue(text: string, like: unknown): unknown {
  if (/^"[^"]*"$/.test(text)) return text.slice(1, -1);
  const digits = text.replace(/[ _\u202f]/g, "");
  assert.match(
    digits,
    /^[0-9]+$/,
    `value "${text}" is neither "string" nor an integer`,
  );
  return typeof like === "bigint" ? BigInt(digits) : Number(digits);
}

Deno.test("PROTOCOL.md's Constants table lists every lib/constants.ts export exactly, with its value", () => {
  const table = constantsTable(spec);
  const exported = Object.entries(constants);
  const missing = exported.filter(([k]) => !table.has(k)).map(([k, v]) =>
    `| \`${k}\` | ${typeof v === "string" ? `"${v}"` : v} | … | … |`
  );
  assert.deepEqual(
    missing,
    [],
    `add these rows to PROTOCOL.md "## Constants":\n${missing.join("\n")}`,
  );
  const extra = [...table.keys()].filter((k) => !(k in constants));
  assert.deepEqual(extra, [], "rows naming no export of lib/constants.ts");
  for (const [name, value] of exported) {
    assert.equal(
      parseValue(table.get(name)!, value),
      value,
      `PROTOCOL.md says ${name} = ${
        table.get(name)
      }, lib/constants.ts ${value}`,
    );
  }
});

Deno.test("every `NAME` = integer in PROTOCOL.md's prose agrees with lib/constants.ts", () => {
  const values = new Map(Object.entries(constants));
  // `NAME` = 1 234 (a plain integer, not the start of an expression like 65536 − 52).
  const re =
    /`([A-Z][A-Z0-9_]*)`\s*=\s*([0-9][0-9 \u202f_]*[0-9]|[0-9])(?![0-9]|\s*[−\-+×*/^]|\.\d)/g;
  let checked = 0;
  for (const m of spec.matchAll(re)) {
    if (!values.has(m[1])) continue;
    const value = values.get(m[1]);
    assert.equal(
      parseValue(m[2], value),
      value,
      `PROTOCOL.md prose: "${m[0]}" but lib/constants.ts has ${value}`,
    );
    checked++;
  }
  assert.ok(checked >= 5, `only ${checked} prose mentions found`);
});

Deno.test("PROTOCOL.md carries a version and a changelog", () => {
  assert.match(
    spec,
    /^\*\*Version:\*\* document revision \d+ \(\d{4}-\d\d-\d\d\)/m,
  );
  const log = spec.slice(spec.indexOf("\n## Changelog\n"));
  assert.ok(log.length > 20, "no ## Changelog section");
  assert.match(log, /^- \*\*\d{4}-\d\d-\d\d — /m);
});
