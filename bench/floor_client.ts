/**
 * The e2e bench's floor (`bench/e2e.ts --floor`): a client that does the
 * real clients' I/O and nothing else. It takes the flags of
 * `clients/bank.ts` / `clients/customer.ts` that the bench passes (the rest
 * is ignored), connects over the clients' own transport
 * (`lib/deno/pinned_relay.ts`, pinned to `--ca`), registers a fresh mailbox
 * key and prints the JSON lines the bench reads: `ready` (the address is the
 * hex session ID), `secure` once the peer answered, `sent` and `delivered`
 * on the sending side, `message` with the body bytes copied between quotes
 * on the receiving side, in one write per task as the real clients'
 * renderer. The sender (`--peer`) reads stdin as the real clients do
 * (`Deno.stdin.read` into one 256 KiB buffer, lines by
 * `clients/stdin_lines.ts`) and sends each line as one DATA frame, as is:
 * no padding, no encryption, no hash chain, no signature; the receiver
 * answers each task's frames with one 5-byte ACK frame. So a run with it
 * measures what the processes, pipes, TLS, WebSocket framing and the relay
 * cost per message with no protocol work: the ceiling of the real clients
 * on the same machine. Benchmarks only.
 * @module
 */

import { parseArgs } from "node:util";
import { PinnedRelayConnection } from "../lib/deno/pinned_relay.ts";
import { generateMailboxKey } from "../lib/registration.ts";
import { StdinLines } from "../clients/stdin_lines.ts";
import { bufferedWriter, writeStdoutBytes } from "../clients/ui.ts";

const { values } = parseArgs({
  args: Deno.args,
  strict: false,
  options: {
    relay: { type: "string" },
    ca: { type: "string" },
    peer: { type: "string" },
  },
});
const enc = new TextEncoder();
const out = bufferedWriter(writeStdoutBytes);
const { key } = await generateMailboxKey();
const conn = await PinnedRelayConnection.connect({
  url: String(values.relay),
  mailbox: key,
  caPem: await Deno.readTextFile(String(values.ca)),
});
out.write(
  JSON.stringify({ type: "ready", address: conn.id.toHex() }) + "\n",
);
out.flush();

/** Frame payload kinds (the first byte). */
const HELLO = 1, HELLO_ACK = 2, BODY = 3, ACK = 4;
const MESSAGE_HEAD = enc.encode(`{"type":"message","text":"`);
const SENT_HEAD = enc.encode(`{"type":"sent","id":`);
const DELIVERED_HEAD = enc.encode(`{"type":"delivered","id":`);
let peer = values.peer ? Uint8Array.fromHex(String(values.peer)) : undefined;
let sent = 0;
let delivered = 0;
let received = 0;
const done = Promise.withResolvers<void>();
let tail = new Uint8Array(0);
let tailMs = 0;
/** `,"at":"…"}\n` for this millisecond (the real renderer's tail, encoded once per ms). */
const tailNow = () => {
  const ms = Date.now();
  if (ms !== tailMs) {
    tailMs = ms;
    tail = enc.encode(`,"at":"${new Date(ms).toISOString()}"}\n`);
  }
  return tail;
};
const idLine = (head: Uint8Array, id: number) => {
  const t = tailNow();
  const digits = String(id);
  const b = out.reserve(head.length + digits.length + t.length);
  let at = out.end;
  b.set(head, at);
  at += head.length;
  at += enc.encodeInto(digits, b.subarray(at)).written;
  b.set(t, at);
  out.commit(at + t.length);
};
let ackDue = false;
conn.onFrame = (frame) => {
  if (frame.type !== "data" || frame.payload.length === 0) return;
  const p = frame.payload;
  switch (p[0]) {
    case HELLO:
      peer = frame.peer.slice();
      conn.send(peer, Uint8Array.of(HELLO_ACK));
      out.write(`{"type":"secure"}\n`);
      return;
    case HELLO_ACK:
      out.write(`{"type":"secure"}\n`);
      return;
    case BODY: {
      // The message line: the body copied between quotes (the bench's
      // bodies need no escaping).
      const body = p.subarray(1);
      const t = tailNow();
      const b = out.reserve(MESSAGE_HEAD.length + body.length + 1 + t.length);
      let at = out.end;
      b.set(MESSAGE_HEAD, at);
      at += MESSAGE_HEAD.length;
      b.set(body, at);
      at += body.length;
      b[at++] = 0x22;
      b.set(t, at);
      out.commit(at + t.length);
      received++;
      if (!ackDue) {
        ackDue = true;
        queueMicrotask(() => {
          ackDue = false;
          conn.send(frame.peer, ackOf(received));
        });
      }
      return;
    }
    case ACK: {
      const upTo = new DataView(p.buffer, p.byteOffset + 1, 4).getUint32(0);
      while (delivered < upTo) idLine(DELIVERED_HEAD, ++delivered);
      if (stdinDone && delivered >= sent) done.resolve();
      return;
    }
  }
};
/** An ACK frame payload: `n` messages arrived. */
function ackOf(n: number): Uint8Array {
  const a = new Uint8Array(5);
  a[0] = ACK;
  new DataView(a.buffer).setUint32(1, n);
  return a;
}
if (peer) conn.send(peer, Uint8Array.of(HELLO));

let stdinDone = false;
const buf = new Uint8Array(256 * 1024);
const lines = new StdinLines();
for (;;) {
  const n = await Deno.stdin.read(buf);
  if (n === null) break;
  for (const line of lines.push(buf.subarray(0, n))) {
    if (!peer || typeof line === "string") continue;
    // One DATA payload per line: a kind byte and the line (one copy, as the
    // real sender's record is one new buffer).
    const payload = new Uint8Array(1 + line.length);
    payload[0] = BODY;
    payload.set(line, 1);
    conn.send(peer, payload);
    idLine(SENT_HEAD, ++sent);
  }
}
stdinDone = true;
if (delivered < sent) {
  await Promise.race([done.promise, new Promise((r) => setTimeout(r, 5000))]);
}
out.flush();
await conn.close();
Deno.exit(0);
