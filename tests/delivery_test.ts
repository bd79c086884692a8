/**
 * lib/delivery.ts and lib/lazy_map.ts: the outbox's tables are allocated on
 * first use and freed when they empty (an idle conversation holds none), and
 * everything still works after idle → active → idle → active.
 */

import assert from "node:assert/strict";
import { Outbox } from "../lib/delivery.ts";
import { emptyMap, shrink, writable } from "../lib/lazy_map.ts";

const enc = new TextEncoder();

Deno.test("lazy_map: the shared empty map refuses writes; writable() gives a map of its own; shrink() frees an empty one", () => {
  const a = emptyMap<number, string>();
  const b = emptyMap<string, number>();
  assert.equal(a.size, 0);
  assert.equal(a.get(1), undefined);
  assert.equal(a.delete(1), false);
  assert.throws(() => a.set(1, "x"), TypeError);
  assert.equal(b.size, 0, "nothing leaked into the shared map");
  const own = writable(a);
  assert.notEqual(own, a);
  own.set(1, "one");
  assert.equal(writable(own), own, "a map of its own stays");
  assert.equal(shrink(own), own, "not empty: kept");
  own.delete(1);
  assert.equal(shrink(own), emptyMap(), "empty: the shared one again");
});

Deno.test("outbox: idle → active → idle → active, ids stable, nothing lost or doubled", () => {
  const o = new Outbox(100);
  const session = "ab".repeat(32);
  let seq = 0n;
  for (let round = 0; round < 3; round++) {
    // Idle: nothing held.
    assert.equal(o.size, 0);
    assert.equal(o.inflight, 0);
    assert.equal(o.queued, 0);
    assert.deepEqual(o.undeliveredIds(), []);
    assert.equal(o.undeliveredDue(1000), undefined);
    const first = o.nextId;
    const ids = [0, 1, 2].map((i) => o.add(enc.encode(`r${round}m${i}`)));
    assert.deepEqual(ids, [first, first + 1, first + 2]);
    assert.equal(o.queued, 3);
    const seqs = [++seq, ++seq, ++seq];
    const sent = o.markSent(session, seqs, 10 * round);
    assert.deepEqual(sent.map((m) => m.id), ids);
    assert.equal(o.inflight, 3);
    assert.equal(o.queued, 0);
    assert.equal(o.undeliveredDue(1000), 10 * round + 1000);
    if (round === 1) {
      // The session is lost: the messages go back, held for the resume, then confirmed by it.
      assert.deepEqual(o.requeue(), ids);
      assert.equal(o.inflight, 0);
      assert.ok(o.hasResent());
      assert.deepEqual(o.confirmUpTo(ids[2]), ids);
    } else {
      assert.deepEqual(o.acked([seqs[1]]), [ids[1]]);
      assert.deepEqual(o.undeliveredIds(), [ids[0], ids[2]]);
      assert.deepEqual(o.takeUndelivered(10 * round + 1000, 1000), [
        ids[0],
        ids[2],
      ]);
      assert.deepEqual(o.acked([seqs[0], seqs[2], seqs[2]]), [ids[0], ids[2]]);
    }
  }
  // Refused ids are skipped, dropped ones reported once.
  o.skipId();
  const id = o.add(enc.encode("late"));
  assert.deepEqual(o.dropQueued(), [id]);
  assert.equal(o.size, 0);
});
