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

Deno.test("summarize: the bank service table has one set-up row per suite, with CPU per set-up", async () => {
  const { service } = await import("../bench/summarize.ts");
  const run = (p256: number, x25519: number) => ({
    service: {
      levels: [{
        target: 1000,
        conversations: 1000,
        kbPerConversation: 40,
        setupsPerSec: p256,
      }],
      suites: [
        {
          suite: "p256",
          before: 1,
          setups: 999,
          setupsPerSec: p256,
          cpuUsPerSetup: { bank: 4000, relay: 300, customers: 3000 },
          complete: true,
        },
        {
          suite: "x25519",
          before: 1000,
          setups: 1000,
          setupsPerSec: x25519,
          cpuUsPerSetup: { bank: 1500, relay: 300, customers: 1000 },
          complete: true,
        },
      ],
      throughput: { senders: 10, msgsPerSec: 100, slowestShare: 1 },
      restart: { recovered: 1000, conversations: 1000, seconds: 5 },
    },
  });
  const rows = service([run(150, 400), run(170, 500), run(160, 450)]).split(
    "\n",
  );
  assert.ok(
    rows.includes(
      "| set-ups, suite p256 (999 beside 1) | 150–170 (160) set-ups/s; CPU µs per set-up: bank 4,000, relay 300, customers 3,000 |",
    ),
    rows.join("\n"),
  );
  assert.ok(
    rows.some((r) =>
      r.startsWith(
        "| set-ups, suite x25519 (1,000 beside 1,000) | 400–500 (450) set-ups/s;",
      )
    ),
    rows.join("\n"),
  );
});
