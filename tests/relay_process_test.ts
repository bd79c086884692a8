/**
 * `deno task relay` as a real process with the task's own permission flags:
 * it generates certificates when missing, serves clients, and exits 0 on
 * SIGTERM. A missing permission in deno.json fails this test.
 */

import assert from "node:assert/strict";
import { RelayConnection } from "../lib/deno/relay_client.ts";
import { generateMailboxKey } from "../lib/registration.ts";
import type { Frame } from "../lib/relay_frame.ts";
import { waitFor } from "./helpers/relay_fixture.ts";
import { taskFlags } from "../tools/compile.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Reads lines from a stream into `lines`, forever. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  lines: string[],
): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
  }
  if (buf) lines.push(buf);
}

Deno.test("deno task relay: real permissions, serves clients, exits 0 on SIGTERM", async () => {
  const child = new Deno.Command("deno", {
    args: ["task", "-q", "relay", "--port", "0", "--quiet"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const err: string[] = [];
  const out: string[] = [];
  const readers = Promise.all([
    collect(child.stderr, err),
    collect(child.stdout, out),
  ]);
  try {
    await waitFor(
      () => err.some((l) => l.includes("listening on")),
      "relay start",
      30000,
    );
    const port = Number(
      err.find((l) => l.includes("listening on"))!.match(/:(\d+)\/ws/)![1],
    );
    const ca = await Deno.readTextFile(`${ROOT}/certs/ca.pem`);
    const url = `wss://localhost:${port}/ws`;
    const a = await RelayConnection.connect({
      url,
      mailbox: (await generateMailboxKey()).key,
      caCerts: [ca],
    });
    const b = await RelayConnection.connect({
      url,
      mailbox: (await generateMailboxKey()).key,
      caCerts: [ca],
    });
    const got: Frame[] = [];
    b.onFrame = (f) => got.push(f);
    a.send(b.id, new Uint8Array([1, 2, 3]));
    await waitFor(() => got.length === 1, "forwarded frame");
    assert.equal(got[0].type, "data");
    const health = await fetch(`https://localhost:${port}/healthz`, {
      client: Deno.createHttpClient({ caCerts: [ca] }),
    });
    assert.equal((await health.json()).status, "ok");
    const started = performance.now();
    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0, err.join("\n"));
    assert.ok(performance.now() - started < 3000, "exits within a few seconds");
    assert.equal((await a.closed).code, 1001);
    await b.closed;
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await readers;
  }
});

Deno.test("deno task relay: bad flags exit 2 with a message", async () => {
  const r = await new Deno.Command("deno", {
    args: ["task", "-q", "relay", "--port", "nope"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 2);
  assert.match(new TextDecoder().decode(r.stderr), /--port must be an integer/);
  const r2 = await new Deno.Command("deno", {
    args: ["task", "-q", "relay", "--bogus"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r2.code, 2);
  assert.match(new TextDecoder().decode(r2.stderr), /bogus/);
});

Deno.test("deno task relay: another --host → exit 1 with a deno run line that keeps the task's flags (--v8-flags included) and adds only that address", async () => {
  const r = await new Deno.Command("deno", {
    // 192.0.2.1 (TEST-NET-1): refused by the permission check, nothing is bound.
    args: ["task", "-q", "relay", "--host", "192.0.2.1", "--port", "8443"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 1, err);
  assert.match(err, /not permitted to listen on 192\.0\.2\.1:8443/);
  const line = err.split("\n").find((l) => /^\s+deno run /.test(l));
  assert.ok(line, err);
  const words = line.trim().split(/\s+/);
  const flags = words.slice(2, words.indexOf("server.ts"));
  const task = taskFlags(
    await Deno.readTextFile(`${ROOT}/deno.json`),
    "relay",
    "server.ts",
  );
  assert.ok(flags.includes("--v8-flags=--max-semi-space-size=1"), line);
  // Every flag of the task but --allow-net, unchanged…
  assert.deepEqual(
    flags.filter((f) => !f.startsWith("--allow-net=")),
    task.filter((f) => !f.startsWith("--allow-net=")),
  );
  // …and --allow-net with exactly the bind address plus loopback (--metrics-port).
  assert.deepEqual(
    flags.filter((f) => f.startsWith("--allow-net=")),
    ["--allow-net=192.0.2.1:8443,127.0.0.1"],
  );
});
