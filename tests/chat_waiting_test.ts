/**
 * clients/chat.ts, a waiting customer (no --peer): the first conversation
 * that becomes secure is the run's peer. The engine reports `secure` after
 * its file work (known_peers.json, under the file's lock), so by then the
 * conversation may have ended already: the peer sent, closed and left. The
 * customer used to look its peer up among the engine's live conversations,
 * found none, and recursed until the stack overflowed: an `internal` error
 * ("Maximum call stack size exceeded") instead of the session, its messages
 * and `closed` — seen under load in tests/client_exit_test.ts, where the
 * write of known_peers.json was slow. Here the test holds the file's lock,
 * so the interleaving is exact; the bank is a lib/ conversation over a fake
 * relay link.
 */

import assert from "node:assert/strict";
import { parseClientArgs } from "../clients/args.ts";
import { ChatClient } from "../clients/chat.ts";
import {
  type ClientEvent,
  internalErrorText,
  type RelayLink,
} from "../clients/events.ts";
import type { Bytes } from "../lib/bytes.ts";
import { Conversation, type ConversationOutput } from "../lib/conversation.ts";
import { generateIdentity } from "../lib/identity.ts";
import { KnownPeers } from "../lib/known_peers.ts";
import { formatSessionId } from "../lib/registration.ts";

/** Lets pending promise work (crypto, file I/O) run. */
const settle = async (turns = 20) => {
  for (let i = 0; i < turns; i++) await new Promise((r) => setTimeout(r, 1));
};

Deno.test("waiting customer: a peer that sent, closed and left before our secure event was out (known_peers.json locked) is still the run's peer — secure, its messages, closed, exit 0, no internal error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-waiting-" });
  const knownPeersPath = `${dir}/known_peers.json`;
  // Held by the test: the customer's `secure` report waits for it.
  const lock = await Deno.open(`${knownPeersPath}.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  await lock.lock(true);
  let locked = true;

  const customerId = new Uint8Array(16).fill(0xc0);
  const bankId = new Uint8Array(16).fill(0xb0);
  /** Packets the customer sent to the bank, not yet delivered. */
  const toBank: Bytes[] = [];
  const link: RelayLink = {
    id: customerId,
    onFrame: () => {},
    closed: new Promise(() => {}),
    send(peer, payload) {
      assert.equal(peer.toHex(), bankId.toHex());
      toBank.push(payload.slice());
      return payload.length;
    },
    close: () => Promise.resolve({ code: 1000, reason: "" }),
    open: true,
  };
  const events: ClientEvent[] = [];
  const options = parseClientArgs("customer", [
    "--json",
    "--relay",
    "wss://127.0.0.1:9/ws",
    "--keys",
    dir,
    "--cover-rate",
    "0",
    "--wait",
    "0",
    "--suites",
    "p256",
  ])!;
  const customer = new ChatClient(options, {
    identity: await generateIdentity(),
    knownPeers: new KnownPeers(),
    knownPeersPath,
    connect: () => Promise.resolve(link),
    emit: (e) => events.push(e),
    address: formatSessionId,
  });
  try {
    const running = customer.run();
    await settle();
    assert.equal(events[0]?.type, "ready");

    const { conversation: bank, output } = await Conversation.dial({
      identity: await generateIdentity(),
      localId: bankId,
      peerId: customerId,
      trust: () => ({ status: "new" }),
      sessionOptions: { coverRate: 0 },
      random: () => 0.5,
    }, Date.now());
    const toCustomer = (out: ConversationOutput) => {
      for (const payload of out.packets) {
        link.onFrame({ type: "data", peer: bankId, frameNo: 0, payload });
      }
    };
    /** Delivers both ways until `done` holds (a bounded number of turns). */
    const exchange = async (done: () => boolean, what: string) => {
      for (let round = 0; round < 1000 && !done(); round++) {
        await settle(5);
        for (const p of toBank.splice(0)) {
          toCustomer(await bank.receive(p, Date.now()));
        }
      }
      assert.ok(done(), `${what}; events: ${JSON.stringify(events)}`);
    };
    toCustomer(output);
    await exchange(() => bank.secure, "the bank's session is up");
    const enc = new TextEncoder();
    toCustomer(
      await bank.send([enc.encode("m0"), enc.encode("m1")], Date.now()),
    );
    toCustomer(await bank.close(Date.now()));
    await exchange(
      () => bank.ended,
      "the bank closed cleanly: the customer acknowledged every message and the close",
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ["ready"],
      "nothing reported yet: the customer's secure event waits for the lock",
    );

    await lock.unlock();
    locked = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `the customer did not finish: ${JSON.stringify(events)}`,
              ),
            ),
          10_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal(code, 0, JSON.stringify(events));
    const shown = events.filter((e) => e.type !== "notice");
    assert.deepEqual(
      shown.map((e) => e.type === "message" ? `message ${e.text}` : e.type),
      ["ready", "secure", "message m0", "message m1", "closed"],
      JSON.stringify(events),
    );
    const secure = events.find((e) => e.type === "secure")!;
    assert.equal(secure.peer, formatSessionId(bankId));
    // The bank's key was recorded once the lock was free.
    assert.ok(
      (await Deno.readTextFile(knownPeersPath)).includes(
        (secure as { peerFingerprint: string }).peerFingerprint,
      ),
    );
  } finally {
    if (locked) await lock.unlock();
    lock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** What `fn` throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
}

Deno.test("internalErrorText: an internal error names the exception's class, message and where it was thrown (function, file:line)", () => {
  class Probe {
    deep(n: number): number {
      return this.deep(n + 1) + 1;
    }
  }
  assert.match(
    internalErrorText(thrown(() => new Probe().deep(0))),
    /^RangeError: Maximum call stack size exceeded \(at Probe\.deep, chat_waiting_test\.ts:\d+\)$/,
  );
  assert.match(
    internalErrorText(thrown(() => {
      throw new TypeError("boom");
    })),
    /^TypeError: boom \(at (\S+, )?chat_waiting_test\.ts:\d+\)$/,
  );
  const bare = new Error("no stack");
  bare.stack = undefined;
  assert.equal(internalErrorText(bare), "Error: no stack");
  assert.equal(internalErrorText("thrown text"), "thrown text");
});
