/**
 * Attacks on the real relay process over real TLS: file-descriptor
 * exhaustion under a low `ulimit -n`, connections that stop before or
 * inside the TLS handshake (closed at the deadline, descriptors freed:
 * /proc/PID/fd), slowloris at the later stages (no request, a trickled
 * head, no registration: each closed at its deadline), and six concurrent 63 MiB WebSocket messages (relay RSS
 * bound from /proc, close within 1 s of the header).
 * @module
 */

import assert from "node:assert/strict";
import { RelayConnection } from "../lib/deno/relay_client.ts";
import { generateMailboxKey } from "../lib/registration.ts";
import { testCerts } from "./helpers/relay_fixture.ts";
import { RawWs } from "./helpers/raw_ws.ts";
import { utf8 } from "../lib/bytes.ts";
import { CloseCode } from "../lib/relay_frame.ts";
import {
  GIANT_FRAME_CLOSE,
  giantFrames,
  memoryOf,
  spawnRelay,
} from "./helpers/relay_process.ts";

Deno.test("relay attack: out of file descriptors (ulimit -n 256) the relay logs, sheds, keeps serving", async () => {
  const certs = await testCerts();
  const relay = await spawnRelay({
    certsDir: certs.dir,
    ulimitN: 256,
    args: [
      "--tls-timeout",
      "20000",
      "--max-unauth-per-ip",
      "100000",
      "--quiet",
    ],
  });
  const held: Deno.Conn[] = [];
  try {
    const { key } = await generateMailboxKey();
    const early = await RelayConnection.connect({
      url: `wss://localhost:${relay.port}/ws`,
      mailbox: key,
      caCerts: [certs.ca],
    });
    // Each client costs the relay two descriptors (lib/deno/tls_front.ts): 300 exhaust 256.
    for (let i = 0; i < 300; i++) {
      held.push(
        await Deno.connect({ hostname: "127.0.0.1", port: relay.port }),
      );
    }
    const deadline = performance.now() + 5000;
    while (!relay.lines.some((l) => l.includes("out of file descriptors"))) {
      assert.ok(
        performance.now() < deadline,
        `no EMFILE log line:\n${relay.lines.join("\n")}`,
      );
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(relay.alive(), "the relay is still running");
    assert.ok(early.open, "a registered client stays connected");
    for (const c of held) c.close();
    held.length = 0;
    // Serving again once the connections go.
    const { key: k2 } = await generateMailboxKey();
    let again: RelayConnection | undefined;
    for (let i = 0; i < 20 && again === undefined; i++) {
      again = await RelayConnection.connect({
        url: `wss://localhost:${relay.port}/ws`,
        mailbox: k2,
        caCerts: [certs.ca],
      }).catch(() => undefined);
      if (!again) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(again, "a new client registers after the flood");
    const got = Promise.withResolvers<void>();
    early.onFrame = (f) => f.type === "data" && got.resolve();
    again.send(early.id, new Uint8Array([1, 2, 3]));
    await got.promise;
    await again.close();
    await early.close();
    assert.ok(relay.alive());
  } finally {
    for (const c of held) c.close();
    assert.equal(await relay.stop(), 0, "exits 0 on SIGTERM");
  }
});

/** Descriptors the process `pid` holds (through `ls`: Deno reads another process's /proc only with --allow-all). */
async function fdCount(pid: number): Promise<number> {
  const out = await new Deno.Command("ls", {
    args: [`/proc/${pid}/fd`],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(out.success, `cannot list /proc/${pid}/fd`);
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l)
    .length;
}

/** Resolves when the relay ends `conn` (EOF or reset); rejects after `ms`. */
async function closedBy(conn: Deno.Conn, ms: number): Promise<void> {
  const buf = new Uint8Array(1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) =>
    timer = setTimeout(() => rej(new Error(`still open after ${ms} ms`)), ms)
  );
  try {
    for (;;) {
      const n = await Promise.race([conn.read(buf).catch(() => null), timeout]);
      if (n === null) return;
    }
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("relay attack: no ClientHello, or one cut short inside the handshake: closed at --tls-timeout and every descriptor freed", async () => {
  const certs = await testCerts();
  const relay = await spawnRelay({
    certsDir: certs.dir,
    args: ["--tls-timeout", "2000", "--max-unauth-per-ip", "1000", "--quiet"],
  });
  const held: Deno.Conn[] = [];
  try {
    const before = await fdCount(relay.pid);
    // 20 that send nothing, 20 that send the first bytes of a ClientHello
    // (a handshake record header announcing 256 bytes, then 6 of them).
    const partialHello = new Uint8Array([
      0x16,
      3,
      1,
      1,
      0,
      1,
      0,
      0,
      0xfc,
      3,
      3,
    ]);
    for (let i = 0; i < 40; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
      if (i % 2) await c.write(partialHello);
      held.push(c);
    }
    // The relay holds them (each costs it descriptors) until the deadline…
    let during = await fdCount(relay.pid);
    const seen = performance.now() + 1500;
    while (during < before + 40 && performance.now() < seen) {
      await new Promise((r) => setTimeout(r, 50));
      during = await fdCount(relay.pid);
    }
    assert.ok(
      during >= before + 40,
      `40 connections held: ${before} → ${during} descriptors`,
    );
    // …then closes every one of them (the client reads EOF)…
    await Promise.all(held.map((c) => closedBy(c, 10_000)));
    // …and gives back the descriptors, while the clients still hold their ends.
    let after = await fdCount(relay.pid);
    const freed = performance.now() + 5000;
    while (after > before && performance.now() < freed) {
      await new Promise((r) => setTimeout(r, 50));
      after = await fdCount(relay.pid);
    }
    assert.ok(after <= before, `descriptors ${before} → ${during} → ${after}`);
    assert.ok(relay.alive());
  } finally {
    for (const c of held) c.close();
    assert.equal(await relay.stop(), 0);
  }
});

Deno.test("relay attack: slowloris after the handshake (no request, a trickled head, no registration): each closed at its deadline, descriptors freed", async () => {
  const certs = await testCerts();
  const relay = await spawnRelay({
    certsDir: certs.dir,
    args: [
      "--header-timeout",
      "1000",
      "--register-timeout",
      "1000",
      "--max-unauth-per-ip",
      "1000",
      "--quiet",
    ],
  });
  const idle: Deno.TlsConn[] = [];
  const trickled: Deno.TlsConn[] = [];
  const silent: RawWs[] = [];
  let stop = false;
  try {
    const before = await fdCount(relay.pid);
    const tls = async () => {
      const c = await Deno.connectTls({
        hostname: "localhost",
        port: relay.port,
        caCerts: [certs.ca],
      });
      await c.handshake();
      return c;
    };
    for (let i = 0; i < 10; i++) {
      idle.push(await tls()); // handshake done, never a request
      trickled.push(await tls()); // a request head, one byte every 100 ms
      silent.push(await RawWs.open({ port: relay.port, caPem: certs.ca })); // upgraded, never registers
    }
    const started = performance.now();
    const head = utf8(
      `GET /ws HTTP/1.1\r\nHost: localhost:${relay.port}\r\nX-Slow: ${
        "a".repeat(100)
      }`,
    );
    const trickling = trickled.map(async (c) => {
      for (let i = 0; i < head.length && !stop; i++) {
        if (
          !(await c.write(head.subarray(i, i + 1)).then(
            () => true,
            () => false,
          ))
        ) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    assert.deepEqual(silent.map((s) => s.status), Array(10).fill(101));
    const ms = await Promise.all([
      ...idle.map((c) =>
        closedBy(c, 5000).then(() => performance.now() - started)
      ),
      ...trickled.map((c) =>
        closedBy(c, 5000).then(() => performance.now() - started)
      ),
    ]);
    // Deadline 1 s from each one's handshake (all made before `started`), plus scheduling slack.
    for (const t of ms) assert.ok(t < 3000, `closed after ${t.toFixed(0)} ms`);
    for (const s of silent) {
      assert.equal(
        (await s.closeFrame(5000))?.code,
        CloseCode.REGISTER_TIMEOUT,
      );
      await s.ended(3000);
    }
    stop = true;
    await Promise.all(trickling);
    let after = await fdCount(relay.pid);
    const freed = performance.now() + 5000;
    while (after > before && performance.now() < freed) {
      await new Promise((r) => setTimeout(r, 50));
      after = await fdCount(relay.pid);
    }
    assert.ok(after <= before, `descriptors ${before} → ${after}`);
    assert.ok(relay.alive());
  } finally {
    stop = true;
    for (const c of [...idle, ...trickled]) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    for (const s of silent) s.close();
    assert.equal(await relay.stop(), 0);
  }
});

Deno.test("relay attack: six concurrent 63 MiB messages are refused at the header (RSS ≤ 150 MB, closed ≤ 1 s)", async () => {
  const certs = await testCerts();
  const relay = await spawnRelay({ certsDir: certs.dir, args: ["--quiet"] });
  try {
    const r = await giantFrames(relay, certs.ca, 6, 63, 3000);
    assert.deepEqual(
      r.codes,
      Array(6).fill(GIANT_FRAME_CLOSE),
      "each got the 1009 close frame",
    );
    for (const ms of r.closeMs) {
      assert.ok(ms < 1000, `closed after ${ms.toFixed(0)} ms`);
    }
    assert.ok(r.peakKb <= 150 * 1024, `relay peak RSS ${r.peakKb} KB`);
    const { rssKb } = await memoryOf(relay.pid);
    assert.ok(rssKb <= 150 * 1024, `relay RSS after ${rssKb} KB`);
  } finally {
    assert.equal(await relay.stop(), 0);
  }
});
