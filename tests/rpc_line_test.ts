import assert from "node:assert/strict";
import {
  type ClientEvent,
  type Engine,
  IncomingMessageEvent,
  SentEvent,
} from "../clients/engine.ts";
import { RpcDispatcher } from "../clients/rpc.ts";

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
