/**
 * The benchmark's baseline: the smallest forwarder that speaks the relay's
 * frame format, on the same Deno, TLS and WebSocket stack as the relay but
 * with no validation and no limits. It sends a CHALLENGE on open (random
 * bytes, nothing checked later), takes the session ID from the first message
 * (SHA-256 of the REGISTER public key, signature ignored), answers
 * REGISTERED, then forwards every message by the ID at bytes 2..18 after
 * stamping the sender's ID there — exactly the relay's data path minus its
 * checks, so the same load generator drives both.
 *
 *   deno run --allow-net=127.0.0.1 --allow-read=DIR bench/baseline_forwarder.ts --cert F --key F [--port N]
 *
 * Prints `baseline: listening on wss://127.0.0.1:PORT/ws` on stderr.
 * @module
 */

import { parseArgs } from "node:util";

/** Frame offsets shared with lib/relay_frame.ts (kept literal: this file must stay minimal). */
const ID_START = 2;
/** End of the peer/sender ID in a DATA frame. */
const ID_END = 18;
/** CHALLENGE: version, type 0x01, 32 random bytes, u32 max frame. */
const CHALLENGE_FRAME_LENGTH = 38;
/** Byte offset of the public key in a REGISTER frame, and its length. */
const REGISTER_KEY_START = 2;
/** Ed25519 public key length. */
const REGISTER_KEY_LENGTH = 32;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string", default: "0" },
    cert: { type: "string" },
    key: { type: "string" },
  },
});
if (!values.cert || !values.key) {
  console.error("baseline: --cert and --key are required");
  Deno.exit(2);
}
const cert = await Deno.readTextFile(values.cert);
const key = await Deno.readTextFile(values.key);

const byId = new Map<string, WebSocket>();

function accept(req: Request): Response {
  const { socket, response } = Deno.upgradeWebSocket(req, {
    protocol: "relay.v1",
    idleTimeout: 0,
  });
  socket.binaryType = "arraybuffer";
  let id: Uint8Array | undefined;
  let idKey: string | undefined;
  socket.onopen = () => {
    const challenge = new Uint8Array(CHALLENGE_FRAME_LENGTH);
    crypto.getRandomValues(challenge.subarray(2, 34));
    challenge[0] = 1;
    challenge[1] = 0x01;
    new DataView(challenge.buffer).setUint32(34, 65536);
    socket.send(challenge);
  };
  socket.onmessage = async (ev) => {
    const bytes = new Uint8Array(ev.data as ArrayBuffer);
    if (id !== undefined) {
      const target = byId.get(bytes.subarray(ID_START, ID_END).toHex());
      if (target === undefined) return;
      bytes.set(id, ID_START);
      target.send(bytes);
      return;
    }
    const publicKey = bytes.slice(
      REGISTER_KEY_START,
      REGISTER_KEY_START + REGISTER_KEY_LENGTH,
    );
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", publicKey),
    );
    id = digest.slice(0, ID_END - ID_START);
    idKey = id.toHex();
    byId.set(idKey, socket);
    const registered = new Uint8Array(ID_END);
    registered[0] = 1;
    registered[1] = 0x03;
    registered.set(id, ID_START);
    socket.send(registered);
  };
  socket.onerror = () => {};
  socket.onclose = () => {
    if (idKey !== undefined && byId.get(idKey) === socket) byId.delete(idKey);
  };
  return response;
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(values.port),
  cert,
  key,
  onListen: (addr) =>
    console.error(`baseline: listening on wss://127.0.0.1:${addr.port}/ws`),
}, accept);
Deno.addSignalListener("SIGTERM", () => {
  server.shutdown().finally(() => Deno.exit(0));
});
await server.finished;
