import assert from "node:assert/strict";
import { TranscriptFile } from "../lib/deno/transcript_file.ts";
import {
  parseConversation,
  verifyConversation,
} from "../lib/conversation_transcript.ts";
import { Transcript } from "../lib/transcript.ts";
import { InnerType } from "../lib/record.ts";
import {
  paymentBodies,
  recordConversation,
} from "./helpers/conversation_fixture.ts";
import { pair } from "./session_helpers.ts";

const tempDir = () => Deno.makeTempDir({ prefix: "transcript_file_test_" });

Deno.test("TranscriptFile: every session of a conversation in one file, in order, with boundaries", async () => {
  const dir = await tempDir();
  try {
    const { request, approval } = await paymentBodies();
    const paths = await recordConversation(dir, [
      { bank: [request], customer: [approval], close: false },
      { bank: ["thanks"], customer: [], close: true },
    ]);
    for (const path of [paths.bank, paths.customer]) {
      const text = await Deno.readTextFile(path);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      const records = text.trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(
        records.filter((r) => r.record !== "message").map((r) =>
          `${r.record}${r.session ?? ""}${r.reason ? ":" + r.reason : ""}`
        ),
        [
          "conversation",
          "session1",
          "end1:replaced",
          "session2",
          "end2:closed",
        ],
      );
      const r = await verifyConversation(text);
      assert.equal(r.sessions.length, 2);
      // Session 1 was replaced: its end is not proven, so the file is INCOMPLETE, and says why.
      assert.equal(r.verdict, "INCOMPLETE");
      assert.equal(r.missing.length, 2, r.missing.join("\n"));
      assert.ok(
        r.missing.every((m) => /^session 1: .* without a signed CLOSE/.test(m)),
      );
      // The signed request and approval of session 1 are there and linked.
      assert.equal(r.payments.length, 1);
      assert.deepEqual(r.payments[0].matched, {
        session: 1,
        role: "initiator",
        seq: 2n,
      });
      assert.deepEqual(r.sessions[1].labels, {
        initiator: "bank",
        responder: "customer",
      });
      assert.equal(r.uncovered.length, 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TranscriptFile: reopening appends the next session; nothing earlier is rewritten", async () => {
  const dir = await tempDir();
  try {
    const { bank } = await recordConversation(dir, [
      { bank: ["one"], customer: ["two"], close: true },
    ]);
    const before = await Deno.readTextFile(bank);
    const { a } = await pair({ signEvery: 1 });
    const f = await TranscriptFile.open(bank, 5000);
    assert.equal(f.sessions, 1);
    f.beginSession(a.transcript!, { initiator: "bank" }, 5000);
    await a.send(new TextEncoder().encode("after restart"), 5000);
    f.sync();
    await f.close();
    const after = await Deno.readTextFile(bank);
    assert.ok(after.startsWith(before), "append-only");
    const p = parseConversation(after);
    assert.equal(p.sessions.length, 2);
    assert.equal(p.sessions[1].json.messages.length, 1);
    assert.equal(p.sessions[1].end, undefined, "no end record: still open");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TranscriptFile: a pending signature is never written early; endSession writes the rest unsigned", async () => {
  const dir = await tempDir();
  try {
    const t = new Transcript({
      suite: 1,
      localRole: "initiator",
      sessionHash: new Uint8Array(32),
      initiatorSpki: new Uint8Array(91),
      responderSpki: new Uint8Array(91),
    });
    const f = await TranscriptFile.open(`${dir}/t.jsonl`, 0);
    f.beginSession(t, {}, 0);
    const body = new Uint8Array([1]);
    t.add({ direction: "i2r", seq: 1n, type: InnerType.DATA, body });
    const m2 = t.add({
      direction: "i2r",
      seq: 2n,
      type: InnerType.DATA,
      body,
      pending: true,
    });
    t.add({ direction: "i2r", seq: 3n, type: InnerType.DATA, body });
    f.sync();
    await f.flush();
    const lines = async () =>
      (await Deno.readTextFile(`${dir}/t.jsonl`)).trimEnd().split("\n").map(
        (l) => JSON.parse(l),
      );
    assert.deepEqual((await lines()).map((r) => r.seq ?? r.record), [
      "conversation",
      "session",
      "1",
    ]);
    m2.signature = new Uint8Array(64).fill(7);
    m2.head = new Uint8Array(32).fill(8);
    m2.pending = false;
    f.sync();
    await f.flush();
    const now = await lines();
    assert.deepEqual(now.map((r) => r.seq ?? r.record), [
      "conversation",
      "session",
      "1",
      "2",
      "3",
    ]);
    assert.equal(now[3].sig.length, 86, "written with its signature");
    t.add({
      direction: "i2r",
      seq: 4n,
      type: InnerType.DATA,
      body,
      pending: true,
      signature: new Uint8Array(64),
    });
    f.endSession("stopped", 1);
    await f.close();
    const end = await lines();
    assert.equal(end[5].seq, "4");
    assert.equal(end[5].sig, undefined, "an unfinished signature is left out");
    assert.equal(end[6].record, "end");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TranscriptFile: a torn last line is cut on open; an older single-session file becomes session 1", async () => {
  const dir = await tempDir();
  try {
    const { bank } = await recordConversation(dir, [
      { bank: ["one"], customer: [], close: true },
    ]);
    const good = await Deno.readTextFile(bank);
    await Deno.writeTextFile(bank, good + '{"record":"mess');
    const torn = await verifyConversation(await Deno.readTextFile(bank));
    assert.equal(torn.verdict, "INCOMPLETE");
    assert.match(torn.missing.join(), /cut short/);
    await (await TranscriptFile.open(bank, 0)).close();
    assert.equal(await Deno.readTextFile(bank), good);

    // The older format: one JSON document written by Session.transcript.toJSON().
    const { a, b } = await pair({ signEvery: 1 });
    const { exchange } = await import("./session_helpers.ts");
    await exchange(a, b, await a.send(new TextEncoder().encode("hi"), 0), 0);
    const legacy = `${dir}/old.json`;
    await Deno.writeTextFile(
      legacy,
      JSON.stringify({
        ...a.transcript!.toJSON(),
        labels: { initiator: "bank" },
      }),
    );
    const old = await verifyConversation(await Deno.readTextFile(legacy));
    assert.ok(old.legacy);
    const f = await TranscriptFile.open(legacy, 0);
    assert.equal(f.sessions, 1);
    await f.close();
    const migrated = await verifyConversation(await Deno.readTextFile(legacy));
    assert.equal(migrated.legacy, false);
    assert.equal(migrated.sessions.length, 1);
    assert.deepEqual(
      migrated.sessions[0].verified.messages.map((m) => m.text),
      old.sessions[0].verified.messages.map((m) => m.text),
    );

    await Deno.writeTextFile(`${dir}/notes.txt`, "my notes\n");
    await assert.rejects(
      TranscriptFile.open(`${dir}/notes.txt`, 0),
      /not a transcript file/,
    );
    assert.equal(await Deno.readTextFile(`${dir}/notes.txt`), "my notes\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TranscriptFile: a file open in one client is locked; a second open waits, then fails clearly", async () => {
  const dir = await tempDir();
  try {
    const path = `${dir}/t.jsonl`;
    const first = await TranscriptFile.open(path, 0);
    await assert.rejects(
      TranscriptFile.open(path, 0, { lockTimeoutMs: 200 }),
      /transcript file .* is locked by another process after 200 ms/,
    );
    await first.close();
    const again = await TranscriptFile.open(path, 0, { lockTimeoutMs: 200 });
    assert.equal(again.sessions, 0);
    await again.close();
    assert.equal(
      (await Deno.readTextFile(path)).split("\n").length,
      2,
      "one header line, written once",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
