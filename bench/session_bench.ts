/**
 * Session micro-benchmarks: messages sealed by one session and opened by the
 * other (ACKs flowing back), in batches of 64 with `sendMany`/`receiveMany`,
 * both sides in this one process, lock-step (each step awaits the previous).
 * Divide the time per iteration by 64 for the time per message.
 * Two primitive providers: the WebCrypto default (browser-safe) and the
 * synchronous `node:crypto` one of lib/deno/node_primitives.ts.
 *   deno bench bench/session_bench.ts
 */

import { nodePrimitives } from "../lib/deno/node_primitives.ts";
import type { SessionPrimitives } from "../lib/primitives.ts";
import { Session, type SessionOptions } from "../lib/session.ts";
import { fixture } from "../tests/session_helpers.ts";

const BATCH = 64;

async function setup(bodySize: number, options: SessionOptions) {
  const fx = await fixture();
  const o = { keepTranscript: false, ...options };
  const a = await Session.fromHandshake(fx.resultI, o);
  const b = await Session.fromHandshake(fx.resultR, o);
  const bodies = Array.from(
    { length: BATCH },
    () => new Uint8Array(bodySize).fill(0x61),
  );
  let now = 0;
  return async () => {
    now += 1;
    const packets = await a.sendMany(bodies, now);
    packets.push(...await a.poll(now));
    const r = await b.receiveMany(packets, now);
    let delivered = 0;
    for (const e of r.events) if (e.type === "message") delivered++;
    if (delivered !== BATCH) throw new Error(`delivered ${delivered}`);
    const back = [...r.packets, ...await b.poll(now)];
    if (back.length) await a.receiveMany(back, now);
  };
}

const providers: [string, SessionPrimitives | undefined][] = [
  ["webcrypto", undefined],
  ["node", nodePrimitives],
];

for (const size of [256, 4096]) {
  for (
    const [mode, signEvery] of [
      ["chain signing (every 64)", 64],
      ["per-message signing", 1],
    ] as const
  ) {
    for (const [name, primitives] of providers) {
      const step = await setup(size, { signEvery, primitives });
      Deno.bench({
        name: `${size} B, ${mode}, ${name}: ${BATCH} messages sealed+opened`,
        group: `${size} B`,
        baseline: signEvery === 64 && primitives === undefined,
        n: signEvery === 1 ? 20 : 300,
        fn: step,
      });
    }
  }
}
