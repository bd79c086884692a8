import assert from "node:assert/strict";
import { shareOf } from "../bench/service.ts";

// t0 = 1,000 ms; each sender's last message at lastAt (ms).
const at = (...secs: number[]) =>
  secs.map((s) => ({ count: 20, lastAt: 1000 + s * 1000 }));

Deno.test("fairness: everyone done together is 1; a uniform order is about 0.5", () => {
  assert.equal(shareOf(at(2, 2, 2, 2), 1000, 5000).share, 1);
  // Served one after the other, 0.1 s apart: the slowest's rate 20 / 1 s,
  // the median's the mean of 20 / 0.5 s and 20 / 0.6 s.
  const uniform = at(...Array.from({ length: 10 }, (_, i) => (i + 1) / 10));
  const u = shareOf(uniform, 1000, 5000);
  assert.ok(Math.abs(u.share - 20 / ((20 / 0.5 + 20 / 0.6) / 2)) < 1e-9);
  assert.deepEqual(u.seconds, { median: 0.55, slowest: 1 });
});

Deno.test("fairness: a tail shows as a small share, a sender with nothing as 0", () => {
  // 99 senders done after 2 s, one after 31 s (retransmitted records).
  const tail = shareOf([...at(...Array(99).fill(2)), ...at(31)], 1000, 40_000);
  assert.ok(Math.abs(tail.share - 2 / 31) < 1e-9);
  assert.deepEqual(tail.seconds, { median: 2, slowest: 31 });
  // One sender never got a message through: starved, and done at the phase's end.
  const starved = shareOf(
    [...at(1, 1, 1), { count: 0, lastAt: 0 }],
    1000,
    11_000,
  );
  assert.equal(starved.share, 0);
  assert.deepEqual(starved.seconds, { median: 1, slowest: 10 });
  // Unequal counts: a sender with half the messages in the same time has half the rate.
  const half = shareOf(
    [{ count: 10, lastAt: 3000 }, { count: 20, lastAt: 3000 }, {
      count: 20,
      lastAt: 3000,
    }],
    1000,
    5000,
  );
  assert.equal(half.share, 0.5);
  assert.deepEqual(shareOf([], 0, 0), {
    share: 0,
    seconds: { median: 0, slowest: 0 },
  });
});
