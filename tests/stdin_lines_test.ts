import assert from "node:assert/strict";
import { type InputLine, StdinLines } from "../clients/stdin_lines.ts";

const dec = new TextDecoder("utf-8", { ignoreBOM: true });

/** What the clients did before: a streaming decoder over the whole input, split on "\n" (the last piece only if not empty). */
function reference(input: Uint8Array): string[] {
  const text = new TextDecoder().decode(input);
  const lines = text.split("\n");
  const last = lines.pop()!;
  return last.length > 0 ? [...lines, last] : lines;
}

/** Feeds `input` in pieces of the given sizes (cycled); returns the lines as text, and whether each complete line came as bytes. */
function run(
  input: Uint8Array,
  sizes: number[],
): { texts: string[]; kinds: InputLine[] } {
  const s = new StdinLines();
  const kinds: InputLine[] = [];
  for (let at = 0, i = 0; at < input.length; i++) {
    const n = sizes[i % sizes.length];
    const chunk = input.slice(at, at + n);
    kinds.push(...s.push(chunk));
    chunk.fill(0x0a); // the caller reuses its buffer
    at += n;
  }
  const tail = s.end();
  const texts = kinds.map((l) => typeof l === "string" ? l : dec.decode(l));
  if (tail !== undefined) texts.push(tail);
  return { texts, kinds };
}

const enc = (s: string) => new TextEncoder().encode(s);
const bytes = (...parts: (string | number[])[]) =>
  Uint8Array.from(
    parts.flatMap((p) => typeof p === "string" ? [...enc(p)] : p),
  );

Deno.test("StdinLines: the same lines as a streaming decoder split on newlines, at any chunking; valid lines as bytes", () => {
  const cases = [
    bytes(""),
    bytes("a\n"),
    bytes("one\ntwo\r\nthree"),
    bytes("\n\n\n"),
    bytes([0xef, 0xbb, 0xbf], "bom first\nsecond\n"),
    bytes("no bom here ", [0xef, 0xbb, 0xbf], "\n"),
    bytes("x\n", [0xef, 0xbb, 0xbf], "mid-stream bom\n", [0xef, 0xbb, 0xbf]),
    bytes("x\n", [0xef, 0xbb, 0xbf], [0xff], "invalid after a bom\n"),
    bytes([0xef, 0xbb, 0xbf]),
    bytes([0xef, 0xbb]),
    bytes([0xef, 0xbb, 0x0a], "x\n"),
    bytes("é😀€\nbad ", [0xff], " byte\ncut ", [0xe2, 0x82], "\nend ", [
      0xf0,
      0x9f,
    ]),
    bytes("x".repeat(70000), "\n", "y".repeat(3), [0xc3, 0xa9]),
    bytes("a\n", [0xed, 0xa0, 0x80], "surrogate\nok\n"),
  ];
  let seed = 1;
  const rand = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
  for (const input of cases) {
    const want = reference(input);
    for (const sizes of [[1], [2], [3], [7, 1], [65536], [input.length || 1]]) {
      assert.deepEqual(
        run(input, sizes).texts,
        want,
        `${input.length} ${sizes}`,
      );
    }
    for (let r = 0; r < 20; r++) {
      const sizes = Array.from({ length: 5 }, () => 1 + rand(40));
      assert.deepEqual(run(input, sizes).texts, want, `random ${sizes}`);
    }
  }
  const { kinds } = run(bytes("ok\nbad ", [0xff], "\n€\n"), [100]);
  assert.deepEqual(kinds.map((k) => typeof k), ["object", "string", "object"]);
  assert.equal(kinds[1], "bad \ufffd");
});
