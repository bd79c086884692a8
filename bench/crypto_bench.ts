/**
 * Crypto primitive micro-benchmark: MB/s and CPU per call of the session's
 * symmetric primitives in this runtime, per call size, so a provider can pick
 * the fastest one for each record size (lib/primitives.ts,
 * lib/deno/node_primitives.ts).
 *
 *   deno run bench/crypto_bench.ts [--sizes 256,4096,61440] [--ms 600] [--json]
 *
 * Each row runs a primitive for about `--ms` milliseconds of wall time and
 * reports bytes ÷ wall time (MB/s), the process CPU per call (every thread:
 * `process.cpuUsage()`, i.e. getrusage) and bytes per CPU-second.
 * WebCrypto runs on a thread pool: "in flight" = that many calls started
 * before the first is awaited (a window kept full). The machine may be shared:
 * read the CPU per call, and repeat.
 *
 * Rows: WebCrypto AES-256-GCM encrypt / decrypt (1, 8, 64 in flight),
 * node:crypto createCipheriv / createDecipheriv aes-256-gcm, node:crypto
 * `hash()` and `createHash()` SHA-256, WebCrypto `digest` SHA-256 (1, 8, 64
 * in flight), lib/sha256.ts (plain JS, short inputs only).
 * @module
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  hash,
} from "node:crypto";
import process from "node:process";
import { flagsOrExit, parseFlags, positiveInt } from "./cli.ts";
import { sha256Js } from "../lib/sha256.ts";

const { args, SIZES, MS } = flagsOrExit("bench/crypto_bench.ts", () => {
  const args = parseFlags(Deno.args, {
    options: {
      sizes: { type: "string", default: "256,1024,4096,16384,61440" },
      ms: { type: "string", default: "600" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (args.values.help) {
    console.log(
      "deno run bench/crypto_bench.ts [--sizes 256,4096,61440] [--ms 600] [--json]\n" +
        "  MB/s and CPU per call of AES-256-GCM and SHA-256 (WebCrypto, node:crypto, lib/sha256.ts) per call size",
    );
    Deno.exit(0);
  }
  return {
    args,
    SIZES: args.values.sizes.split(",").map((t) => positiveInt(t, "--sizes")),
    MS: positiveInt(args.values.ms, "--ms"),
  };
});

/** Process CPU (user + system, every thread: getrusage) in µs. */
function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

interface Row {
  primitive: string;
  size: number;
  inFlight: number;
  calls: number;
  mbps: number;
  cpuUsPerCall: number;
  cpuMbps: number;
}

const rows: Row[] = [];

async function run(
  primitive: string,
  size: number,
  inFlight: number,
  op: () => unknown,
): Promise<void> {
  // Warm-up.
  for (let i = 0; i < 50; i++) await op();
  const t0 = performance.now(), c0 = cpuMicros();
  let calls = 0;
  if (inFlight <= 1) {
    while (performance.now() - t0 < MS) {
      for (let i = 0; i < 16; i++) {
        const r = op();
        if (r instanceof Promise) await r;
      }
      calls += 16;
    }
  } else {
    const window: Promise<unknown>[] = [];
    for (let i = 0; i < inFlight; i++) window.push(op() as Promise<unknown>);
    let head = 0;
    while (performance.now() - t0 < MS) {
      await window[head];
      window[head] = op() as Promise<unknown>;
      head = (head + 1) % inFlight;
      calls++;
    }
    await Promise.all(window);
    calls += inFlight;
  }
  const wallMs = performance.now() - t0, cpu = cpuMicros() - c0;
  const row: Row = {
    primitive,
    size,
    inFlight,
    calls,
    mbps: calls * size / wallMs / 1000,
    cpuUsPerCall: cpu / calls,
    cpuMbps: calls * size / cpu,
  };
  rows.push(row);
  if (!args.values.json) {
    console.log(
      `${primitive.padEnd(34)} ${String(size).padStart(6)} B  ${
        String(inFlight).padStart(2)
      } in flight  ${row.mbps.toFixed(0).padStart(5)} MB/s wall  ${
        row.cpuUsPerCall.toFixed(1).padStart(7)
      } µs CPU/call  ${row.cpuMbps.toFixed(0).padStart(5)} MB/s per CPU-s`,
    );
  }
}

const raw = crypto.getRandomValues(new Uint8Array(32));
const webKey = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, [
  "encrypt",
  "decrypt",
]);
const nodeKey = createSecretKey(raw);
const nonce = crypto.getRandomValues(new Uint8Array(12));
const aad = crypto.getRandomValues(new Uint8Array(24));
const gcm = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };

for (const size of SIZES) {
  const pt = crypto.getRandomValues(new Uint8Array(size));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(gcm, webKey, pt),
  );
  for (const n of [1, 8, 64]) {
    await run(
      "webcrypto AES-GCM encrypt",
      size,
      n,
      () => crypto.subtle.encrypt(gcm, webKey, pt),
    );
  }
  for (const n of [1, 8, 64]) {
    await run(
      "webcrypto AES-GCM decrypt",
      size,
      n,
      () => crypto.subtle.decrypt(gcm, webKey, sealed),
    );
  }
  await run("node createCipheriv aes-256-gcm", size, 1, () => {
    const c = createCipheriv("aes-256-gcm", nodeKey, nonce);
    c.setAAD(aad);
    const ct = c.update(pt);
    c.final();
    return [ct, c.getAuthTag()];
  });
  const ctLen = sealed.length - 16;
  await run("node createDecipheriv aes-256-gcm", size, 1, () => {
    const d = createDecipheriv("aes-256-gcm", nodeKey, nonce);
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(ctLen));
    const out = d.update(sealed.subarray(0, ctLen));
    d.final();
    return out;
  });
  await run("node hash('sha256')", size, 1, () => hash("sha256", pt, "buffer"));
  await run(
    "node createHash('sha256')",
    size,
    1,
    () => createHash("sha256").update(pt).digest(),
  );
  for (const n of [1, 8, 64]) {
    await run(
      "webcrypto digest SHA-256",
      size,
      n,
      () => crypto.subtle.digest("SHA-256", pt),
    );
  }
  if (size <= 4096) {
    await run("lib/sha256.ts (JS)", size, 1, () => sha256Js(pt));
  }
}

if (args.values.json) console.log(JSON.stringify(rows, null, 1));
