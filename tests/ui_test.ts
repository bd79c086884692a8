import assert from "node:assert/strict";
import { type ClientEvent, IncomingMessageEvent } from "../clients/engine.ts";
import { bufferedWriter, jsonRenderer } from "../clients/ui.ts";

/** Renders one event with the scriptable renderer. */
function render(ev: ClientEvent): string {
  let out = "";
  jsonRenderer((...s) => out += s.join(""))(ev);
  return out;
}

const at = "2026-12-02T03:04:05.678Z";
const texts = [
  "",
  "pay 125.00 EUR",
  'quote " backslash \\ slash /',
  "controls \u0000\u0001\n\r\t\u001f\u007f",
  "line separators \u2028\u2029, bidi \u202e, emoji 😀",
  "lone surrogates \ud800 \udc00",
  "x".repeat(61440),
];

Deno.test("jsonRenderer: message and delivered lines are byte-identical to JSON.stringify, one per line", () => {
  for (const text of texts) {
    const ev: ClientEvent = { type: "message", text, counter: 7, seq: 3, at };
    const line = render(ev);
    assert.equal(line, JSON.stringify(ev) + "\n");
    assert.deepEqual(JSON.parse(line), ev);
    assert.equal(line.indexOf("\n"), line.length - 1, "one line");
  }
  const peer = "3x4jlupouh6ix257anohc2bm2a", peerFingerprint = "ab".repeat(32);
  for (const text of texts.slice(0, 3)) {
    const ev: ClientEvent = {
      type: "message",
      text,
      id: 9,
      counter: 7,
      seq: 3,
      at,
      peer,
      peerFingerprint,
    };
    assert.equal(render(ev), JSON.stringify(ev) + "\n");
  }
  const dp: ClientEvent = {
    type: "delivered",
    id: 12,
    at,
    peer,
    peerFingerprint,
  };
  assert.equal(render(dp), JSON.stringify(dp) + "\n");
  const d: ClientEvent = { type: "delivered", id: 12, at };
  assert.equal(render(d), JSON.stringify(d) + "\n");
  const other: ClientEvent = { type: "notice", text: 'a "b"\n' };
  assert.equal(render(other), JSON.stringify(other) + "\n");
});

Deno.test("jsonRenderer: a sent line carries id and at, not the text", () => {
  const line = render({ type: "sent", id: 5, text: "secret-ish body", at });
  assert.deepEqual(JSON.parse(line), { type: "sent", id: 5, at });
  assert.ok(!line.includes("secret-ish"));
});

Deno.test("jsonRenderer over a bufferedWriter: sent and delivered lines as bytes, the same as the string path at every id, time and peer", () => {
  const got: string[] = [];
  const dec = new TextDecoder();
  const w = bufferedWriter((b) => got.push(dec.decode(b)));
  const fast = jsonRenderer(w);
  let want = "";
  const slow = jsonRenderer((...s) => want += s.join(""));
  const peer = "3x4jlupouh6ix257anohc2bm2a", peerFingerprint = "ab".repeat(32);
  // Past 2^53 − 1 the string path's exponent notation is kept (as a template writes it).
  const ids = [0, 1, 9, 10, 99, 100, 12345, 2 ** 31, 2 ** 53 - 1, 2 ** 70];
  const times = [at, at, "2026-12-02T03:04:05.679Z"];
  for (const id of ids) {
    for (const t of times) {
      for (
        const p of [
          {},
          { peer },
          { peer, peerFingerprint },
          { peer: "other", peerFingerprint },
        ]
      ) {
        for (const type of ["sent", "delivered"] as const) {
          const ev: ClientEvent = type === "sent"
            ? { type, id, text: "body", at: t, ...p }
            : { type, id, at: t, ...p };
          fast(ev);
          slow(ev);
          if (type === "delivered") {
            // Interleaved with a string-path line (the writer keeps the order).
            const n: ClientEvent = { type: "notice", text: `n${id}`, ...p };
            fast(n);
            slow(n);
          }
        }
      }
    }
  }
  w.flush();
  assert.equal(got.join(""), want);
  const first = JSON.parse(want.split("\n")[0]);
  assert.deepEqual(first, { type: "sent", id: 0, at });
  assert.throws(() => w.commit(w.end - 1));
});

Deno.test("jsonRenderer over a bufferedWriter: the engine's message events (body bytes copied when they need no escaping) give the same lines as the text through JSON.stringify", () => {
  const enc = new TextEncoder();
  const bodies = [
    ...texts.map((t) => enc.encode(t)),
    Uint8Array.of(0xef, 0xbb, 0xbf, 0x7b, 0x7d), // a leading BOM: the decoder drops it
    Uint8Array.of(0x61, 0xff, 0x62), // not UTF-8: U+FFFD
    Uint8Array.of(0xed, 0xa0, 0x80), // an encoded surrogate: not UTF-8
    Uint8Array.of(0x7f, 0x20, 0x7e, 0xc2, 0xa0), // DEL and NBSP need no escaping
  ];
  const got: string[] = [];
  const w = bufferedWriter((b) => got.push(new TextDecoder().decode(b)));
  const fast = jsonRenderer(w);
  const lines: string[] = [];
  const peer = "3x4jlupouh6ix257anohc2bm2a", peerFingerprint = "ab".repeat(32);
  const numbers = [[7, 3], [0, 0], [2 ** 53 - 1, 123456789], [2 ** 64, 1]];
  for (const body of bodies) {
    for (
      const [id, [counter, seq]] of [undefined, 9, 2 ** 60].flatMap((id) =>
        numbers.map((n) => [id, n] as const)
      )
    ) {
      const ev = new IncomingMessageEvent(
        body,
        id,
        counter,
        seq,
        at,
        peer,
        peerFingerprint,
      );
      const plain: ClientEvent = {
        type: "message",
        text: new TextDecoder().decode(body),
        ...(id === undefined ? {} : { id }),
        counter,
        seq,
        at,
        peer,
        peerFingerprint,
      };
      fast(ev);
      lines.push(JSON.stringify(plain) + "\n");
      assert.equal(ev.text, plain.text);
    }
  }
  w.flush();
  assert.equal(got.join(""), lines.join(""));
});

Deno.test("jsonRenderer over a bufferedWriter: a byte that needs escaping is found at every position and alignment of a body (the check reads four bytes at a time)", () => {
  const at2 = "2026-12-02T03:04:05.678Z";
  // Bytes that need escaping, and their neighbours that do not.
  const probes = [0x00, 0x01, 0x1f, 0x22, 0x5c, 0x20, 0x21, 0x23, 0x5b, 0x5d];
  for (let offset = 0; offset < 4; offset++) {
    for (let pos = 0; pos < 23; pos++) {
      for (const probe of probes) {
        const buf = new Uint8Array(offset + 23).fill(0x61);
        const body = buf.subarray(offset);
        body[pos] = probe;
        let got = "";
        const w = bufferedWriter((b) => got += new TextDecoder().decode(b));
        jsonRenderer(w)(new IncomingMessageEvent(body, 1, 2, 3, at2));
        w.flush();
        const text = new TextDecoder().decode(body);
        const want = { type: "message", text, id: 1, counter: 2, seq: 3 };
        assert.equal(got, JSON.stringify({ ...want, at: at2 }) + "\n");
      }
    }
  }
});

Deno.test("bufferedWriter: events of one task in one write, in order, UTF-8; at once past 64 KiB; flush empties it", async () => {
  const writes: string[] = [];
  const dec = new TextDecoder();
  // The sink gets a view of a reused buffer: decode it before returning.
  const w = bufferedWriter((b) => writes.push(dec.decode(b)));
  w.write("a ");
  w.write("é😀\n");
  assert.deepEqual(writes, []);
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(writes, ["a é😀\n"]);
  const big = "x".repeat(70 * 1024);
  w.write("b");
  w.write(big);
  assert.deepEqual(writes, ["a é😀\n", "b" + big], "written at once");
  w.write("c");
  w.write("€".repeat(100_000)); // grows the buffer (3 bytes each)
  assert.equal(writes.length, 3);
  assert.equal(writes[2], "c" + "€".repeat(100_000));
  w.write("d", big, "e"); // several texts: one write, never split at 64 KiB
  assert.equal(writes.length, 4);
  assert.equal(writes[3], "d" + big + "e");
  w.write("tail");
  w.flush();
  w.flush();
  assert.deepEqual(writes.slice(4), ["tail"]);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(writes.length, 5, "nothing left for the timer");
});
