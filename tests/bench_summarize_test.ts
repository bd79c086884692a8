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

Deno.test("summarize: the bank service table has one set-up row per step and suite, the address's customers first, with CPU per set-up", async () => {
  const { service } = await import("../bench/summarize.ts");
  const run = (x25519: number, p256: number) => ({
    service: {
      levels: [{
        target: 1000,
        conversations: 1000,
        kbPerConversation: 40,
        setupsPerSec: x25519,
        suite: "x25519",
      }],
      suites: [
        {
          suite: "x25519",
          before: 1,
          setups: 999,
          setupsPerSec: x25519,
          cpuUsPerSetup: { bank: 4000, relay: 300, customers: 3000 },
          complete: true,
        },
        {
          suite: "p256",
          before: 1000,
          setups: 1000,
          setupsPerSec: p256,
          cpuUsPerSetup: { bank: 7000, relay: 300, customers: 6000 },
          complete: true,
        },
      ],
      throughput: { senders: 10, msgsPerSec: 100, slowestShare: 1 },
      restart: { recovered: 1000, conversations: 1000, seconds: 5 },
    },
  });
  const rows = service([run(250, 120), run(270, 140), run(260, 130)]).split(
    "\n",
  );
  assert.ok(
    rows.includes(
      "| 1,000 conversations | 40 KB each; 250–270 (260) set-ups/s (suite x25519); reached 1,000 |",
    ),
    rows.join("\n"),
  );
  const first = rows.findIndex((r) =>
    r.startsWith(
      "| set-ups, customers following the address, suite x25519 (999 beside 1) |",
    )
  );
  assert.ok(first > 0, rows.join("\n"));
  assert.equal(
    rows[first],
    "| set-ups, customers following the address, suite x25519 (999 beside 1) | 250–270 (260) set-ups/s; CPU µs per set-up: bank 4,000, relay 300, customers 3,000 |",
  );
  assert.ok(
    rows[first + 1].startsWith(
      "| set-ups, customers offering only suite p256 (1,000 beside 1,000) | 120–140 (130) set-ups/s; CPU µs per set-up: bank 7,000,",
    ),
    rows.join("\n"),
  );
});

Deno.test("summarize: the set-up targets are judged per key: the address's customers (default path) and the other suite's own row", () => {
  const v = (key: string, target: string, value: number) => ({
    key,
    target,
    value,
    limit: 200,
    kind: "min",
    unit: "/s",
    met: value >= 200,
    margin: value - 200,
    marginFraction: (value - 200) / 200,
  });
  const run = (x25519: number, p256: number) => ({
    verdicts: [
      v(
        "service.setupsPerSec",
        "new sessions/s into one bank process, customers following its address, suite x25519 (step to 9986)",
        x25519,
      ),
      v(
        "service.setupsPerSec.p256",
        "new sessions/s into one bank process, customers offering only suite p256 (2000 beside 9986)",
        p256,
      ),
    ],
  });
  const rows = targets([run(250, 120), run(190, 140), run(230, 130)]).split(
    "\n",
  );
  assert.equal(
    rows[2],
    "| new sessions/s into one bank process, customers following its address, suite x25519 (step to 9986) | ≥ 200 /s | 190–250 (230) /s | 2 of 3 |",
  );
  assert.equal(
    rows[3],
    "| new sessions/s into one bank process, customers offering only suite p256 (2000 beside 9986) | ≥ 200 /s | 120–140 (130) /s | 0 of 3 |",
  );
});
