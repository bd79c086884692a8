/**
 * Test driver run as a real `deno run` process by tests/known_peers_file_test.ts:
 * `known_peers_driver.ts FILE TAG N` records N peers (fingerprints derived
 * from TAG and i) in FILE and marks each verified — 2N read-modify-write
 * updates, each under the file's lock, yielding between them so that two
 * processes interleave. Prints "done" at the end.
 * @module
 */
import { updateKnownPeers } from "../../lib/deno/known_peers_file.ts";
import { sha256, utf8 } from "../../lib/bytes.ts";
import { encodeBase32 } from "../../lib/base32.ts";

const [path, tag, count] = Deno.args;
for (let i = 0; i < Number(count); i++) {
  const digest = await sha256(utf8(`${tag}/${i}`));
  const fp = digest.toHex();
  const relayId = encodeBase32(digest.subarray(0, 16));
  await updateKnownPeers(path, (p) => p.record({ relayId }, fp, Date.now()));
  await new Promise((r) => setTimeout(r, 0));
  await updateKnownPeers(path, (p) => p.markVerified(fp));
}
console.log("done");
