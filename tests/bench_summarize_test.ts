import assert from "node:assert/strict";
import { num, sig, spread, targets } from "../bench/summarize.ts";

Deno.test("summarize: spread is min–max (median), one value alone, none as a dash", () => {
  assert.equal(spread([3, 1, 2], num(0)), "1–3 (2)");
  assert.equal(spread([4, 1, 2, 3], num(1)), "1.0–4.0 (2.5)");
  assert.equal(spread([7], num(0)), "7");
  assert.equal(spread([1.0001, 1.0002], num(2)), "1.00");
  assert.equal(spread([], num(0)), "—");
  assert.equal(spread([NaN, 5], num(0)), "5");
  assert.equal(sig(12345), "12,345");
  assert.equal(sig(0.12345), "0.123");
});

Deno.test("summarize: a target counts the runs that met it, over every run that judged it", () => {
  const v = (value: number, met: boolean) => ({
    key: "e2e.small",
    target: "e2e one direction (lowest: P=1)",
    value,
    limit: 40000,
    kind: "min",
    unit: "msgs/s",
    met,
    margin: value - 40000,
    marginFraction: (value - 40000) / 40000,
  });
  const out = targets([
    { verdicts: [v(10000, false)] },
    { verdicts: [v(50000, true)] },
    { verdicts: [v(20000, false)] },
  ]);
  const row = out.split("\n")[2];
  assert.equal(
    row,
    "| e2e one direction | ≥ 40,000 msgs/s | 10,000–50,000 (20,000) msgs/s | 1 of 3 |",
  );
});
