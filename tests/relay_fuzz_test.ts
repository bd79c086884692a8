/**
 * Fuzzes the real relay: several raw connections (some registered, some
 * not) send random frames — random lengths 0..300, random versions and
 * types, truncated and corrupted REGISTERs, random DATA to random and real
 * IDs, text frames — for a bounded time and count. Afterwards the relay
 * must still be up (/healthz 200), still forward between two honest
 * clients, and its metrics must have counted the errors.
 * Reproduce a failure with FUZZ_SEED=<printed seed>.
 */

import assert from "node:assert/strict";
import { RawClient, startTestRelay, waitFor } from "./helpers/relay_fixture.ts";
import { prng } from "./session_helpers.ts";
import { encodeData, encodeRegister, FrameType } from "../lib/relay_frame.ts";
import { generateMailboxKey, signRegistration } from "../lib/registration.ts";

/** Frames sent per fuzzing connection (bounded). */
const FRAMES_PER_CONNECTION = 400;
/** Wall-clock bound of the fuzzing phase (ms). */
const FUZZ_MS = 4000;
/** Fuzzing connections at a time. */
const CONNECTIONS = 6;
/** Fuzzing connections in all (closed ones are replaced up to this). */
const MAX_CONNECTIONS = 60;

Deno.test("relay fuzz: random frames from several connections; relay stays up, forwards, counts errors", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? (Date.now() >>> 0));
  console.log(`relay fuzz seed: ${seed} (rerun with FUZZ_SEED=${seed})`);
  const bytes = prng(seed);
  const rnd = (n: number) => {
    const b = bytes(4);
    return (((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0) % n;
  };
  const t = await startTestRelay({ rate: 100000, burst: 100000 });
  const client = Deno.createHttpClient({ caCerts: [t.caPem] });
  const raws: RawClient[] = [];
  const closedRaws: RawClient[] = [];
  try {
    const honestA = await t.connect();
    const honestB = await t.connect();
    const realIds = [honestA.id, honestB.id];
    // Half the fuzzers register properly first, so DATA reaches the forwarding path.
    let opened = 0;
    const open = async (i: number) => {
      opened++;
      const raw = new RawClient(t.url, t.caPem);
      raws[i] = raw;
      closedRaws.push(raw);
      await raw.opened;
      const ch = await raw.next((f) => f.type === "challenge");
      if (i % 2 === 0 && ch.type === "challenge") {
        const { key } = await generateMailboxKey();
        raw.ws.send(
          encodeRegister(
            key.publicRaw,
            await signRegistration(
              key,
              `wss://${new URL(t.url).host}`,
              ch.challenge,
            ),
          ),
        );
        await raw.next((f) => f.type === "registered");
      }
    };
    for (let i = 0; i < CONNECTIONS; i++) await open(i);
    const deadline = Date.now() + FUZZ_MS;
    let sent = 0;
    const kinds = new Map<string, number>();
    for (let n = 0; n < FRAMES_PER_CONNECTION && Date.now() < deadline; n++) {
      for (const [i, raw] of raws.entries()) {
        if (raw.ws.readyState !== WebSocket.OPEN) {
          // Closed for abuse (1008) or a bad registration (4003): replace it, within a bound.
          if (
            raw.ws.readyState === WebSocket.CLOSED && opened < MAX_CONNECTIONS
          ) {
            await open(i);
          }
          continue;
        }
        const kind = rnd(7);
        let frame: Uint8Array | string;
        switch (kind) {
          case 0: // random bytes, random length
            frame = bytes(rnd(301));
            break;
          case 1: { // valid header, random type and length
            frame = bytes(rnd(301) + 2);
            frame[0] = 1;
            frame[1] = rnd(256);
            break;
          }
          case 2: { // truncated or corrupted REGISTER
            const r = bytes(98);
            r[0] = 1;
            r[1] = FrameType.REGISTER;
            frame = r.slice(0, rnd(99));
            break;
          }
          case 3: { // DATA to a random ID
            frame = encodeData(bytes(16), rnd(2 ** 32), bytes(rnd(279)));
            break;
          }
          case 4: { // DATA to an honest client (must arrive or be refused, never crash)
            frame = encodeData(realIds[rnd(2)], n, bytes(rnd(279)));
            break;
          }
          case 5: { // wrong version
            frame = bytes(rnd(300) + 1);
            frame[0] = rnd(255) + 2;
            break;
          }
          default: // a text frame
            frame = "fuzz " + n;
        }
        kinds.set(String(kind), (kinds.get(String(kind)) ?? 0) + 1);
        raw.ws.send(frame as Uint8Array<ArrayBuffer>);
        sent++;
      }
      if (n % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
    console.log(
      `relay fuzz: ${sent} frames over ${opened} connections`,
      Object.fromEntries(kinds),
    );
    await new Promise((r) => setTimeout(r, 300));

    // Still up.
    const base = `https://localhost:${t.relay.port}`;
    const h = await fetch(`${base}/healthz`, { client });
    assert.equal(h.status, 200);
    assert.equal((await h.json()).status, "ok");

    // Still forwards between two honest clients.
    const got = Promise.withResolvers<Uint8Array>();
    honestB.onFrame = (f) => {
      if (f.type === "data" && f.peer.toHex() === honestA.id.toHex()) {
        got.resolve(f.payload.slice());
      }
    };
    const payload = new TextEncoder().encode("after the fuzz");
    honestA.send(honestB.id, payload);
    const timer = setTimeout(
      () => got.reject(new Error("not forwarded")),
      5000,
    );
    assert.deepEqual(await got.promise, payload);
    clearTimeout(timer);
    assert.ok(honestA.open && honestB.open, "honest clients still connected");

    // Errors were counted (/metrics text and the in-process counters agree).
    const m = t.relay.metrics;
    await waitFor(() => m.droppedCount("malformed") > 0, "malformed counted");
    const metricsText = await (await fetch(t.metricsUrl))
      .text();
    for (const code of ["malformed", "unsupported-version"]) {
      assert.ok(m.droppedCount(code) > 0, `${code} counted`);
      assert.match(
        metricsText,
        new RegExp(
          `^relay_frames_dropped_total\\{reason="${code}"\\} [1-9]`,
          "m",
        ),
      );
    }
    const abuse = [
      "unknown-type",
      "not-registered",
      "text-frame",
      "peer-offline",
      "bad-registration",
    ]
      .reduce((s, c) => s + m.droppedCount(c), 0);
    assert.ok(abuse > 0, "other errors counted");
    assert.ok(
      m.closeCount(1008) + m.closeCount(4003) > 0,
      "abusive connections closed and counted",
    );
  } finally {
    for (const r of closedRaws) await r.close();
    client.close();
    await t.close();
  }
});
