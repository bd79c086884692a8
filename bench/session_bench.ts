/**
 * Session micro-benchmarks: messages sealed by one session and opened by the
 * other (ACKs flowing back), in batches of 64 with `sendMany`/`receiveMany`.
 * Divide the time per iteration by 64 for the time per message.
 *   deno bench bench/session_bench.ts
 */

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

for (const size of [256, 4096]) {
  for (
    const [mode, options] of [
      ["chain signing (every 64)", { signEvery: 64 }],
      ["per-message signing", { signEvery: 1 }],
    ] as const
  ) {
    const step = await setup(size, options);
    Deno.bench({
      name: `${size} B, ${mode}: ${BATCH} messages sealed+opened`,
      group: `${size} B`,
      baseline: options.signEvery === 64,
      n: options.signEvery === 1 ? 20 : 300,
      fn: step,
    });
  }
}
