import assert from "node:assert/strict";
import { safetyNumber, safetyNumberHalf } from "../lib/fingerprint.ts";

interface SafetyVector {
  spkiA: string;
  spkiB: string;
  pbkdf2A: string;
  pbkdf2B: string;
  digitsA: string;
  digitsB: string;
  safetyNumber: string;
}

const dir = new URL("./vectors/", import.meta.url);
const names: string[] = [];
for await (const e of Deno.readDir(dir)) {
  if (/^good_safety_number_.*\.json$/.test(e.name)) names.push(e.name);
}
names.sort();

async function load(name: string): Promise<SafetyVector> {
  return JSON.parse(await Deno.readTextFile(new URL(name, dir)));
}

Deno.test("safety-number vectors: there are four, and lib/fingerprint.ts reproduces each", async () => {
  assert.equal(names.length, 4);
  for (const name of names) {
    const v = await load(name);
    const a = Uint8Array.fromHex(v.spkiA), b = Uint8Array.fromHex(v.spkiB);
    assert.equal(await safetyNumberHalf(a), v.digitsA, name);
    assert.equal(await safetyNumberHalf(b), v.digitsB, name);
    assert.equal(await safetyNumber(a, b), v.safetyNumber, name);
    assert.equal(await safetyNumber(b, a), v.safetyNumber, name);
  }
});

Deno.test("safety-number vectors: an independent Python (hashlib) computation from PROTOCOL.md §2.3 agrees", async () => {
  const vectors = await Promise.all(names.map(load));
  const input =
    vectors.map((v) => JSON.stringify({ spkiA: v.spkiA, spkiB: v.spkiB })).join(
      "\n",
    ) + "\n";
  const child = new Deno.Command("/usr/bin/python3", {
    args: [new URL("./reference/safety_number.py", import.meta.url).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  assert.equal(lines.length, vectors.length);
  lines.forEach((line, i) => {
    const ref = JSON.parse(line);
    assert.equal(ref.pbkdf2A, vectors[i].pbkdf2A, names[i]);
    assert.equal(ref.pbkdf2B, vectors[i].pbkdf2B, names[i]);
    assert.equal(ref.safetyNumber, vectors[i].safetyNumber, names[i]);
  });
});

Deno.test("safetyNumberHalf: cached per key (the same promise for the same SPKI bytes)", () => {
  const spki = crypto.getRandomValues(new Uint8Array(91));
  const first = safetyNumberHalf(spki);
  assert.equal(safetyNumberHalf(spki.slice()), first);
  assert.notEqual(safetyNumberHalf(spki.slice(1)), first);
  return first.then(() => {});
});
