import assert from "node:assert/strict";
import { Backoff } from "../lib/backoff.ts";

Deno.test("backoff: doubles with jitter in [ceiling/2, ceiling], capped, reset", () => {
  const lo = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
  const hi = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999999 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => lo.next()), [
    50,
    100,
    200,
    400,
    500,
    500,
  ]);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => hi.next()), [
    100,
    200,
    400,
    800,
    1000,
  ]);
  assert.equal(hi.attempt, 5);
  hi.reset();
  assert.equal(hi.next(), 100);
  assert.throws(() => new Backoff({ baseMs: 0, maxMs: 1 }), RangeError);
});
