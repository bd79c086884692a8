/**
 * The registration origin (PROTOCOL.md §1.3) over real TLS: `"wss://" ‖ Host`
 * byte for byte. An IPv6 relay URL registers with its bracketed, RFC 5952
 * host from both client transports; a signature over another spelling of the
 * same address (not what the Host header said) is refused.
 */

import assert from "node:assert/strict";
import { PinnedRelayConnection } from "../lib/deno/pinned_relay.ts";
import { RelayConnection } from "../lib/deno/relay_client.ts";
import { encodeRegister, type Frame } from "../lib/relay_frame.ts";
import { generateMailboxKey, signRegistration } from "../lib/registration.ts";
import { RawClient, startTestRelay } from "./helpers/relay_fixture.ts";

Deno.test("origin: an IPv6 relay registers as wss://[::1]:PORT; another spelling of the address is refused", async () => {
  const t = await startTestRelay({ hostname: "::1" });
  const url = `wss://[::1]:${t.relay.port}/ws`;
  try {
    const { key } = await generateMailboxKey();
    const viaWebSocket = await RelayConnection.connect({
      url,
      mailbox: key,
      caCerts: [t.caPem],
    });
    assert.equal(viaWebSocket.id.toHex(), key.id.toHex());
    await viaWebSocket.close();
    const viaPinned = await PinnedRelayConnection.connect({
      url,
      mailbox: key,
      caPem: t.caPem,
    });
    assert.equal(viaPinned.id.toHex(), key.id.toHex());
    await viaPinned.close();

    const challenge = async (raw: RawClient) =>
      ((await raw.next((f) => f.type === "challenge")) as Extract<
        Frame,
        { type: "challenge" }
      >).challenge;
    // The same address written out in full: not the bytes of the Host header.
    const long = new RawClient(url, t.caPem);
    const sig = await signRegistration(
      key,
      `wss://[0:0:0:0:0:0:0:1]:${t.relay.port}`,
      await challenge(long),
    );
    long.ws.send(encodeRegister(key.publicRaw, sig));
    await long.next((f) => f.type === "error" && f.name === "bad-registration");
    await long.closed;
    // The canonical form registers.
    const canonical = new RawClient(url, t.caPem);
    const ok = await signRegistration(
      key,
      `wss://[::1]:${t.relay.port}`,
      await challenge(canonical),
    );
    canonical.ws.send(encodeRegister(key.publicRaw, ok));
    await canonical.next((f) => f.type === "registered");
    await canonical.close();
  } finally {
    await t.close();
  }
});
