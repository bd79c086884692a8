import assert from "node:assert/strict";
import {
  type ClientEvent,
  type Engine,
  IncomingMessageEvent,
  SentEvent,
} from "../clients/engine.ts";
import { RpcDispatcher } from "../clients/rpc.ts";
import { bufferedWriter } from "../clients/ui.ts";

const PEER = "7msxtywdr2yol7yql7wj42borm";
const FP = "ab".repeat(32);

Deno.test("notificationLine(): the same bytes as JSON.stringify(notification()) for the spelled-out message and delivered events, and every other event", () => {
  // The engine is asked for a peer's fingerprint only when the event has none.
  const known = new RpcDispatcher(
    { peer: () => ({ fingerprint: FP }) } as unknown as Engine,
  );
  const unknown = new RpcDispatcher(
    { peer: () => undefined } as unknown as Engine,
  );
  const at = "2026-12-02T06:00:00.123Z";
  const texts = [
    "hello",
    'quote " backslash \\ newline \n tab \t nul \u0000 é 😀 \u2028',
    "",
    "x".repeat(300),
  ];
  const events: ClientEvent[] = [];
  for (const text of texts) {
    for (const peerFingerprint of [FP, undefined]) {
      const base = { peer: PEER, peerFingerprint };
      events.push(
        { type: "message", text, id: 7, counter: 12, seq: 3, at, ...base },
        { type: "message", text, counter: 0, seq: 1, at, ...base },
        { type: "delivered", id: 42, at, ...base },
        { type: "sent", id: 1, text, at, ...base },
        { type: "notice", text, ...base },
      );
    }
  }
  events.push({ type: "notice", text: "no peer" });
  for (const rpc of [known, unknown]) {
    for (const ev of events) {
      const line = rpc.notificationLine(ev);
      assert.equal(line, JSON.stringify(rpc.notification(ev)));
      JSON.parse(line);
    }
  }
  const m = JSON.parse(unknown.notificationLine(events[6])); // "hello", no fingerprint
  assert.equal(m.params.fingerprint, null, "no fingerprint known: null");
});

Deno.test("notification(): the engine's sent and message events (text decoded on demand, clients/engine.ts SentEvent, IncomingMessageEvent) give the same lines as plain ones, text in its place", () => {
  const rpc = new RpcDispatcher(
    { peer: () => ({ fingerprint: FP }) } as unknown as Engine,
  );
  const at = "2026-12-02T06:00:00.123Z";
  for (const text of ["hello", 'é 😀 "q"\n', ""]) {
    for (const peerFingerprint of [FP, undefined]) {
      const lazy = new SentEvent(
        9,
        new TextEncoder().encode(text),
        at,
        PEER,
        peerFingerprint,
      );
      const plain: ClientEvent = {
        type: "sent",
        id: 9,
        text,
        at,
        peer: PEER,
        peerFingerprint,
      };
      assert.equal(rpc.notificationLine(lazy), rpc.notificationLine(plain));
      assert.equal(JSON.parse(rpc.notificationLine(lazy)).params.text, text);
      assert.equal(lazy.text, text);
      for (const id of [undefined, 4]) {
        const m = new IncomingMessageEvent(
          new TextEncoder().encode(text),
          id,
          2,
          1,
          at,
          PEER,
          peerFingerprint,
        );
        const p: ClientEvent = {
          type: "message",
          text,
          ...(id === undefined ? {} : { id }),
          counter: 2,
          seq: 1,
          at,
          peer: PEER,
          peerFingerprint,
        };
        assert.equal(rpc.notificationLine(m), rpc.notificationLine(p));
        assert.equal(
          JSON.stringify(rpc.notification(m)),
          JSON.stringify(rpc.notification(p)),
        );
      }
    }
  }
});

Deno.test("writeNotification(): the per-message notifications as bytes are notificationLine() + newline, byte for byte; any other event is left to notificationLine()", () => {
  const rpc = new RpcDispatcher(
    { peer: () => ({ fingerprint: FP }) } as unknown as Engine,
  );
  const chunks: Uint8Array[] = [];
  const w = bufferedWriter((b) => chunks.push(b.slice()));
  const expected: string[] = [];
  const ats = ["2026-12-02T06:00:00.123Z", "2026-12-02T06:00:00.124Z"];
  const fast = [
    "hello",
    "é 😀 \u2028 \u007f ✓",
    "",
    "x".repeat(300),
  ];
  const slow = ['quote "', "backslash \\", "newline \n", "nul \u0000"];
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x61]);
  const invalid = new Uint8Array([0x61, 0xff, 0x62]);
  let written = 0, declined = 0;
  const emit = (ev: ClientEvent, bytesPath: boolean) => {
    const line = rpc.notificationLine(ev) + "\n";
    expected.push(line);
    if (rpc.writeNotification(ev, w)) {
      written++;
      assert.ok(bytesPath, `${ev.type} written as bytes`);
    } else {
      declined++;
      assert.ok(!bytesPath, `${ev.type} declined`);
      w.write(line);
    }
  };
  for (const at of ats) {
    for (const peer of [PEER, "aaaaaaaaaaaaaaaaaaaaaaaaaa"]) {
      for (const peerFingerprint of [FP, "cd".repeat(32), undefined]) {
        const known = peerFingerprint !== undefined;
        const bodies: [Uint8Array, boolean][] = [
          ...fast.map((t) => [new TextEncoder().encode(t), known] as const),
          ...slow.map((t) => [new TextEncoder().encode(t), false] as const),
          [bom, false],
          [invalid, false],
        ] as [Uint8Array, boolean][];
        for (const [body, bytesPath] of bodies) {
          for (const id of [undefined, 0, 7, 123456789]) {
            emit(
              new IncomingMessageEvent(
                body,
                id,
                12,
                2 ** 40,
                at,
                peer,
                peerFingerprint,
              ),
              bytesPath,
            );
          }
        }
        for (const id of [0, 42, 2 ** 52]) {
          emit({ type: "delivered", id, at, peer, peerFingerprint }, known);
        }
        // A plain message object (not the engine's: no body bytes), a sent and a notice event.
        emit({
          type: "message",
          text: "hi",
          counter: 1,
          seq: 1,
          at,
          peer,
          peerFingerprint,
        }, false);
        emit(new SentEvent(3, new TextEncoder().encode("x"), at, peer), false);
        emit({ type: "notice", text: "n", peer, peerFingerprint }, false);
      }
    }
  }
  w.flush();
  let n = 0;
  for (const c of chunks) n += c.length;
  const all = new Uint8Array(n);
  n = 0;
  for (const c of chunks) {
    all.set(c, n);
    n += c.length;
  }
  assert.equal(new TextDecoder().decode(all), expected.join(""));
  assert.ok(written > 100 && declined > 100, `${written} / ${declined}`);
});
