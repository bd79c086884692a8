/**
 * Client side of registration (lib/registration.ts), sans-I/O: the step
 * every relay driver runs on frames before it is registered.
 */

import assert from "node:assert/strict";
import {
  decodeFrame,
  encodeChallenge,
  encodeData,
  encodeError,
  encodeRegistered,
} from "../lib/relay_frame.ts";
import {
  generateMailboxKey,
  registrationStep,
  verifyRegistration,
} from "../lib/registration.ts";

Deno.test("registrationStep: CHALLENGE → a REGISTER the relay's check accepts for that origin only", async () => {
  const { key } = await generateMailboxKey();
  const challenge = crypto.getRandomValues(new Uint8Array(32));
  const step = await registrationStep(
    decodeFrame(encodeChallenge(challenge, 4096)),
    key,
    "wss://localhost:8765",
  );
  assert.equal(step.kind, "send");
  if (step.kind !== "send") return;
  assert.equal(step.maxFrame, 4096);
  const reg = decodeFrame(step.frame);
  assert.equal(reg.type, "register");
  if (reg.type !== "register") return;
  const id = await verifyRegistration(
    reg.publicKey,
    reg.signature,
    "wss://localhost:8765",
    challenge,
  );
  assert.deepEqual(id, key.id);
  assert.equal(
    await verifyRegistration(
      reg.publicKey,
      reg.signature,
      "wss://evil:8765",
      challenge,
    ),
    null,
  );
});

Deno.test("registrationStep: REGISTERED for our ID, for another ID, ERROR, and frames to ignore", async () => {
  const { key } = await generateMailboxKey();
  const ok = await registrationStep(
    decodeFrame(encodeRegistered(key.id)),
    key,
    "o",
  );
  assert.deepEqual(ok, { kind: "registered", id: key.id });
  const other = await registrationStep(
    decodeFrame(encodeRegistered(new Uint8Array(16))),
    key,
    "o",
  );
  assert.equal(other.kind, "refused");
  const refused = await registrationStep(
    decodeFrame(encodeError("bad-registration", undefined, 0, "nope")),
    key,
    "o",
  );
  assert.deepEqual(refused, {
    kind: "refused",
    reason: "relay refused registration: bad-registration (nope)",
  });
  const data = await registrationStep(
    decodeFrame(encodeData(key.id, 1, new Uint8Array([1]))),
    key,
    "o",
  );
  assert.deepEqual(data, { kind: "ignore" });
});
