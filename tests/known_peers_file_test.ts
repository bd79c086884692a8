/**
 * known_peers.json updates under a lock (lib/deno/known_peers_file.ts): the
 * lost-update repro of issue 9 with two real processes sharing one file.
 */
import assert from "node:assert/strict";
import { updateKnownPeers } from "../lib/deno/known_peers_file.ts";
import { loadKnownPeers, saveKnownPeers } from "../lib/deno/key_file.ts";
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

Deno.test("updateKnownPeers group commit: updates made together share one read-modify-write; a throwing change fails alone and leaves no trace; another writer's change is read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "known_peers_file_" });
  const path = `${dir}/known_peers.json`;
  const fp = (i: number) => i.toString(16).padStart(64, "0");
  const id = (i: number) =>
    "a".repeat(24) + "abcdefgh"[i >> 3] + "abcdefgh"[i & 7];
  try {
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        updateKnownPeers(path, (p) => {
          p.record({ relayId: id(i) }, fp(i), 0);
          if (i === 7) throw new Error("no"); // after changing the set
          return i;
        })),
    );
    assert.equal(results[7].status, "rejected");
    const ok = results.filter((r) => r.status === "fulfilled");
    assert.deepEqual(ok.map((r) => r.value.result), [
      ...Array.from({ length: 7 }, (_, i) => i),
      ...Array.from({ length: 42 }, (_, i) => i + 8),
    ]);
    assert.equal(
      new Set(ok.map((r) => r.value.peers)).size,
      1,
      "one read-modify-write for the 50 updates",
    );
    const saved = await loadKnownPeers(path);
    assert.equal(saved.size, 49);
    assert.equal(saved.get(fp(7)), undefined, "the failed change left nothing");
    assert.equal(saved.serialize(), ok[0].value.peers.serialize());

    // Another process's write between two of ours is not lost.
    const other = await loadKnownPeers(path);
    other.record({ relayId: id(60) }, fp(60), 0);
    other.markVerified(fp(3));
    await saveKnownPeers(path, other);
    const { peers } = await updateKnownPeers(
      path,
      (p) => p.markVerified(fp(4)),
    );
    assert.equal(peers.get(fp(60))?.relayId, id(60));
    assert.equal(peers.get(fp(3))?.verified, true);
    const back = await loadKnownPeers(path);
    assert.equal(back.size, 50);
    assert.equal(back.get(fp(4))?.verified, true);
    assert.equal(back.get(fp(3))?.verified, true);
    // A file made group-writable meanwhile is refused, not trusted from memory.
    await Deno.chmod(path, 0o620);
    await assert.rejects(
      updateKnownPeers(path, (p) => p.markVerified(fp(5))),
      /too open/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
