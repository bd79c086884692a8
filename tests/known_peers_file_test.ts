/**
 * known_peers.json updates under a lock (lib/deno/known_peers_file.ts): the
 * lost-update repro of issue 9 with two real processes sharing one file.
 */
import assert from "node:assert/strict";
import { updateKnownPeers } from "../lib/deno/known_peers_file.ts";
import { loadKnownPeers } from "../lib/deno/key_file.ts";
import { ROOT } from "./helpers/client_proc.ts";

const N = 40;

Deno.test("two real processes interleaving read-modify-write updates of one known_peers.json lose nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "known_peers_file_" });
  const path = `${dir}/known_peers.json`;
  try {
    const run = (tag: string) =>
      new Deno.Command("deno", {
        args: [
          "run",
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          "tests/helpers/known_peers_driver.ts",
          path,
          tag,
          String(N),
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const outs = await Promise.all([run("bank"), run("customer")]);
    for (const o of outs) {
      assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
      assert.equal(new TextDecoder().decode(o.stdout).trim(), "done");
    }
    const peers = await loadKnownPeers(path);
    assert.equal(peers.fingerprints().length, 2 * N, "every record kept");
    for (const fp of peers.fingerprints()) {
      assert.equal(peers.get(fp)!.verified, true, "every decision kept");
    }
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("updateKnownPeers: concurrent updates in one process are queued; a held lock times out with a clear error and changes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "known_peers_file_" });
  const path = `${dir}/known_peers.json`;
  try {
    const fps = Array.from({ length: 10 }, (_, i) => String(i).repeat(64));
    await Promise.all(
      fps.map((fp) => updateKnownPeers(path, (p) => p.record({}, fp, 0))),
    );
    assert.equal((await loadKnownPeers(path)).fingerprints().length, 10);

    // Another holder of the lock (flock is per open file, so this conflicts in-process too).
    const holder = await Deno.open(`${path}.lock`, { read: true, write: true });
    await holder.lock(true);
    await assert.rejects(
      updateKnownPeers(path, (p) => p.markVerified(fps[0]), {
        lockTimeoutMs: 200,
      }),
      /locked by another process after 200 ms .*; known peers not updated/,
    );
    await holder.unlock();
    holder.close();
    assert.equal((await loadKnownPeers(path)).get(fps[0])!.verified, false);
    // A change that throws saves nothing and releases the lock.
    await assert.rejects(
      updateKnownPeers(path, (p) => p.markVerified("f".repeat(64))),
      RangeError,
    );
    const { result } = await updateKnownPeers(
      path,
      (p) => p.check({}, fps[1]).status,
    );
    assert.equal(result, "known");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
