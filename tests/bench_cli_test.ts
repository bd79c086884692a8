import assert from "node:assert/strict";
import {
  parseFlags,
  positiveInt,
  positiveNumber,
  UsageError,
} from "../bench/cli.ts";
import { ROOT } from "./helpers/client_proc.ts";

Deno.test("bench cli: numbers are checked and name their flag", () => {
  assert.equal(positiveInt("12", "--n"), 12);
  assert.equal(positiveNumber("0.5", "--cap"), 0.5);
  for (const bad of ["0", "-1", "1.5", "x", "", "Infinity"]) {
    assert.throws(
      () => positiveInt(bad, "--n"),
      (e) => e instanceof UsageError && e.message.startsWith("--n: "),
      bad,
    );
  }
  for (const bad of ["0", "-2", "x", "Infinity", "NaN"]) {
    assert.throws(() => positiveNumber(bad, "--cap"), UsageError, bad);
  }
});

Deno.test("bench cli: an unknown flag or a missing value is a UsageError", () => {
  const config = { options: { ms: { type: "string" as const } } };
  assert.equal(parseFlags(["--ms", "5"], config).values.ms, "5");
  assert.throws(() => parseFlags(["--what"], config), UsageError);
  assert.throws(() => parseFlags(["--ms"], config), UsageError);
  assert.throws(() => parseFlags(["stray"], config), UsageError);
});

async function run(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("bench cli: bad flags of the bench scripts exit 2 with one line, no stack trace; --help exits 0", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["task", "-q", "bench", "--service-senders", "x"],
      /^bench: --service-senders: 'x' is not a positive integer \(--help: usage\)$/,
    ],
    [["task", "-q", "bench", "--bogus"], /^bench: Unknown option '--bogus'/],
    [
      ["run", "-A", "bench/e2e.ts", "--sizes", "70000"],
      /^bench\/e2e\.ts: --sizes: 70000 is above \d+/,
    ],
    [
      ["run", "bench/crypto_bench.ts", "--ms", "0"],
      /^bench\/crypto_bench\.ts: --ms: '0' is not a positive integer/,
    ],
    [["run", "-A", "bench/channel.ts", "x"], /^bench\/channel\.ts: MS: 'x'/],
    [
      ["run", "bench/setup_bench.ts", "1", "2"],
      /^bench\/setup_bench\.ts: unexpected '2'/,
    ],
    [
      ["run", "--allow-read", "bench/heap_snapshot.ts", "/nonexistent.heap"],
      /^bench\/heap_snapshot\.ts: \/nonexistent\.heap: /,
    ],
  ];
  for (const [args, want] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0], want);
    assert.equal(r.stdout, "");
  }
  for (
    const args of [
      ["task", "-q", "bench", "--help"],
      ["run", "-A", "bench/e2e.ts", "--help"],
      ["run", "bench/crypto_bench.ts", "--help"],
      ["run", "bench/setup_bench.ts", "--help"],
      ["run", "-A", "bench/channel.ts", "--help"],
      ["run", "--allow-read", "bench/heap_snapshot.ts", "--help"],
    ]
  ) {
    const r = await run(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /bench|deno run/, args.join(" "));
  }
});
