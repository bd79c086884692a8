/**
 * PROTOCOL.md and lib/constants.ts in one-to-one correspondence: the
 * "## Constants" table of PROTOCOL.md names every export of lib/constants.ts
 * exactly once with its value, and nothing else; every "`NAME` = value"
 * and "`NAME` (value)" written elsewhere in PROTOCOL.md agrees too, every
 * constant-like `NAME` it mentions is an export, and the label strings of the
 * protocol that live in other modules (registration and signature contexts,
 * the prologue, suite names, the safety-number salt label, file formats) are
 * the ones PROTOCOL.md writes. So neither can drift.
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

Deno.test("every `NAME` (value) in PROTOCOL.md's prose agrees with lib/constants.ts", () => {
  const values = new Map(Object.entries(constants));
  // `NAME` (1 234), `NAME` (0.5 s), `NAME` (500/s, …): a number, optionally
  // in seconds (then NAME ends in _MS and holds milliseconds).
  const re = /`([A-Z][A-Z0-9_]*)`\s*\(([0-9][0-9 .]*?)\s*(s\b|\/s)?[),]/g;
  let checked = 0;
  for (const m of spec.matchAll(re)) {
    if (!values.has(m[1])) continue;
    const value = values.get(m[1]);
    let n = Number(m[2].replace(/ /g, ""));
    if (m[3] === "s") {
      assert.ok(m[1].endsWith("_MS"), `${m[0]}: seconds given for ${m[1]}`);
      n *= 1000;
    }
    assert.equal(
      n,
      Number(value),
      `PROTOCOL.md prose: "${m[0]}" but lib/constants.ts has ${value}`,
    );
    checked++;
  }
  assert.ok(checked >= 10, `only ${checked} prose mentions found`);
});

Deno.test("every constant-like `NAME` PROTOCOL.md mentions is an export of lib/constants.ts", () => {
  // Names of other systems the text mentions (Redis commands, a socket option) and the placeholder.
  const external = new Set([
    "NAME",
    "TCP_NODELAY",
    "SSUBSCRIBE",
    "SPUBLISH",
    "MOVED",
    "MONITOR",
    "PUBSUB",
  ]);
  const named = new Set(
    [...spec.matchAll(/`([A-Z][A-Z0-9_]{2,})`/g)].map((m) => m[1]),
  );
  const unknown = [...named].filter((n) =>
    !(n in constants) && !external.has(n)
  );
  assert.deepEqual(
    unknown,
    [],
    "PROTOCOL.md names constants that lib/constants.ts does not export",
  );
});

Deno.test("the protocol's label strings defined outside lib/constants.ts are the ones PROTOCOL.md writes", async () => {
  const { REGISTER_CONTEXT } = await import("../lib/registration.ts");
  const hk = await import("../lib/handshake_keys.ts");
  const { SAFETY_NUMBER_LABEL, SAFETY_NUMBER_VERSION } = await import(
    "../lib/fingerprint.ts"
  );
  const suite = await import("../lib/suite.ts");
  const { CONVERSATION_FORMAT, CONVERSATION_VERSION, MAX_LABEL_LENGTH } =
    await import("../lib/conversation_transcript.ts");
  const { TRANSCRIPT_FORMAT } = await import("../lib/transcript.ts");
  const { CHANNEL_PREFIX } = await import("../lib/cluster_frame.ts");
  // A trailing NUL is written `\0` in PROTOCOL.md.
  const shown = (s: string) => s.replace(/\0/g, "\\0");
  for (
    const s of [
      REGISTER_CONTEXT,
      hk.PROLOGUE_LABEL,
      hk.RESPONDER_SIGNATURE_CONTEXT,
      hk.INITIATOR_SIGNATURE_CONTEXT,
      SAFETY_NUMBER_LABEL,
      `${suite.LABEL_PREFIX}hs r key`,
      suite.SUITE_P256_NAME,
      suite.SUITE_X25519_NAME,
      CONVERSATION_FORMAT,
      TRANSCRIPT_FORMAT,
      `${CHANNEL_PREFIX}{`,
    ]
  ) {
    assert.ok(
      spec.includes(`"${shown(s)}"`) || spec.includes(`\`${shown(s)}\``),
      `PROTOCOL.md does not write ${JSON.stringify(s)}`,
    );
  }
  assert.match(
    spec,
    new RegExp(
      `\\| \`0x000${suite.SUITE_P256}\` \\| \`${suite.SUITE_P256_NAME}\``,
    ),
  );
  assert.match(
    spec,
    new RegExp(
      `\\| \`0x000${suite.SUITE_X25519}\` \\| \`${suite.SUITE_X25519_NAME}\``,
    ),
  );
  assert.match(spec, new RegExp(`salt = u16\\(${SAFETY_NUMBER_VERSION}\\)`));
  assert.match(spec, new RegExp(`format version ${CONVERSATION_VERSION}\\b`));
  assert.match(spec, new RegExp(`≤ ${MAX_LABEL_LENGTH} characters each`));
});
