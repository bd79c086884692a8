/**
 * Full handshakes per second (HS1 → HS2 → HS3, both sides, in one process):
 * 4 ECDSA operations, 2 ECDH, 2 ephemeral generations, a dozen HKDF/HMAC/GCM.
 *
 *   deno bench bench/handshake_bench.ts
 */

import { Initiator, Responder } from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import { generateIdentity } from "../lib/identity.ts";

const alice = await generateIdentity();
const bob = await generateIdentity();
const idA = new Uint8Array(16).fill(1);
const idB = new Uint8Array(16).fill(2);
const complete = (r: HandshakeResult) => r;
const trust = () => "ok" as const;

async function handshake(): Promise<void> {
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: alice,
    localId: idA,
    peerId: idB,
    now: 0,
    trust,
    complete,
  });
  const hr = Responder.create({ identity: bob, localId: idB, trust, complete });
  const { send: hs2 } = await hr.receive(hs1, { now: 0, from: idA });
  const { send: hs3 } = await hi.receive(hs2!, 0);
  const { session } = await hr.receive(hs3, { now: 0 });
  if (!session) throw new Error("no session");
}

Deno.bench("full handshake (both sides, sequential)", async () => {
  await handshake();
});

Deno.bench("16 full handshakes in parallel", async () => {
  await Promise.all(Array.from({ length: 16 }, handshake));
});
