import assert from "node:assert/strict";
import { utf8 } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import { KnownPeers } from "../lib/known_peers.ts";
import { sign, verify } from "../lib/suite.ts";
import {
  loadKnownPeers,
  loadOrCreateIdentity,
  saveKnownPeers,
} from "../lib/deno/key_file.ts";

const POSIX = Deno.build.os !== "windows";
const FAST = { iterations: 1000, minIterations: 1000 };

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "key_file_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function isError(code: string, ...fragments: string[]) {
  return (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${e}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) {
      assert.ok(e.message.includes(f), `"${f}" in ${e.message}`);
    }
    return true;
  };
}

Deno.test("loadOrCreateIdentity: creates once with mode 0600, then loads the same key", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/alice_identity_keys.json`;
    const first = await loadOrCreateIdentity(path);
    assert.equal(first.created, true);
    if (POSIX) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal(JSON.parse(await Deno.readTextFile(path)).version, 1);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name),
      [
        "alice_identity_keys.json",
      ],
    );

    const second = await loadOrCreateIdentity(path);
    assert.equal(second.created, false);
    assert.deepEqual(second.identity.spki, first.identity.spki);
    const msg = utf8("m");
    assert.ok(
      await verify(
        first.identity.publicKey,
        await sign(second.identity.privateKey, msg),
        msg,
      ),
    );
  }));

Deno.test("loadOrCreateIdentity: create: false on a missing file names it", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/missing.json`;
    await assert.rejects(
      loadOrCreateIdentity(path, { create: false }),
      isError("bad-key-file", path),
    );
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  }));

Deno.test({
  name:
    "loadOrCreateIdentity: group- or world-accessible file refused with chmod advice",
  ignore: !POSIX,
  fn: () =>
    withTempDir(async (dir) => {
      const path = `${dir}/bob_identity_keys.json`;
      await loadOrCreateIdentity(path);
      for (const mode of [0o640, 0o604, 0o660, 0o700 | 0o010]) {
        await Deno.chmod(path, mode);
        await assert.rejects(
          loadOrCreateIdentity(path),
          isError(
            "bad-key-file",
            path,
            "too open",
            `chmod 600 ${path}`,
            mode.toString(8),
          ),
        );
      }
      await Deno.chmod(path, 0o400);
      assert.equal((await loadOrCreateIdentity(path)).created, false);
    }),
});

Deno.test("loadOrCreateIdentity: malformed file message names the file and is not overwritten", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/broken.json`;
    await Deno.writeTextFile(path, "{ not json", { mode: 0o600 });
    if (POSIX) await Deno.chmod(path, 0o600);
    await assert.rejects(
      loadOrCreateIdentity(path),
      isError("bad-key-file", path, "not valid JSON"),
    );
    assert.equal(await Deno.readTextFile(path), "{ not json");

    await Deno.writeFile(path, new Uint8Array([0xff, 0xfe, 0x00]));
    await assert.rejects(
      loadOrCreateIdentity(path),
      isError("bad-key-file", path, "UTF-8"),
    );

    await Deno.writeFile(path, new Uint8Array(70 * 1024));
    await assert.rejects(
      loadOrCreateIdentity(path),
      isError("bad-key-file", path, "larger"),
    );
  }));

Deno.test("loadOrCreateIdentity: a directory is not a key file", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/sub`;
    await Deno.mkdir(path, { mode: 0o700 });
    await assert.rejects(
      loadOrCreateIdentity(path),
      isError("bad-key-file", path, "regular file"),
    );
  }));

Deno.test("loadOrCreateIdentity: passphrase file round trip; wrong passphrase is bad-passphrase", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/p.json`;
    const made = await loadOrCreateIdentity(path, {
      passphrase: "s3cret",
      ...FAST,
    });
    assert.equal(made.created, true);
    const file = JSON.parse(await Deno.readTextFile(path));
    assert.equal(file.privateKey, undefined);
    assert.equal(file.encryptedPrivateKey.iterations, 1000);
    const again = await loadOrCreateIdentity(path, {
      passphrase: "s3cret",
      ...FAST,
    });
    assert.deepEqual(again.identity.spki, made.identity.spki);
    await assert.rejects(
      loadOrCreateIdentity(path, { passphrase: "nope", ...FAST }),
      isError("bad-passphrase", path),
    );
    await assert.rejects(
      loadOrCreateIdentity(path, FAST),
      isError("bad-passphrase", path, "required"),
    );
    // Default minimum refuses this cheap file.
    await assert.rejects(
      loadOrCreateIdentity(path, { passphrase: "s3cret" }),
      isError("bad-key-file", path, "below the minimum"),
    );
  }));

Deno.test("loadOrCreateIdentity: concurrent creation yields one key", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/race.json`;
    const results = await Promise.all(
      [1, 2, 3, 4].map(() => loadOrCreateIdentity(path)),
    );
    const created = results.filter((r) => r.created);
    assert.equal(created.length, 1);
    for (const r of results) {
      assert.deepEqual(r.identity.spki, created[0].identity.spki);
    }
  }));

Deno.test("known peers file: absent is empty; save is 0600 and round trips", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/known_peers.json`;
    const empty = await loadKnownPeers(path);
    assert.deepEqual(empty.fingerprints(), []);
    const peers = new KnownPeers();
    peers.record({ name: "bob" }, "ab".repeat(32), Date.UTC(2026, 0, 1));
    await saveKnownPeers(path, peers);
    if (POSIX) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const back = await loadKnownPeers(path);
    assert.deepEqual(back.check({ name: "bob" }, "ab".repeat(32)), {
      status: "known",
    });
    peers.markVerified("ab".repeat(32));
    await saveKnownPeers(path, peers);
    assert.deepEqual(
      (await loadKnownPeers(path)).check({}, "ab".repeat(32)),
      { status: "verified" },
    );

    await Deno.writeTextFile(path, "[]");
    await assert.rejects(
      loadKnownPeers(path),
      isError("bad-known-peers", path),
    );
  }));

Deno.test({
  name: "known peers file: group- or world-writable file refused",
  ignore: !POSIX,
  fn: () =>
    withTempDir(async (dir) => {
      const path = `${dir}/known_peers.json`;
      await saveKnownPeers(path, new KnownPeers());
      await Deno.chmod(path, 0o664);
      await assert.rejects(
        loadKnownPeers(path),
        isError("bad-known-peers", path, "chmod 600"),
      );
      await Deno.chmod(path, 0o644);
      assert.deepEqual((await loadKnownPeers(path)).fingerprints(), []);
    }),
});

Deno.test("loadOrCreateIdentity: a passphrase with an unencrypted file is refused unless encryptPlaintext rewrites it", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/alice_identity_keys.json`;
    const plain = await loadOrCreateIdentity(path);
    const before = await Deno.readTextFile(path);
    await assert.rejects(
      () => loadOrCreateIdentity(path, { passphrase: "pw", ...FAST }),
      isError("bad-key-file", path, "NOT encrypted", "--encrypt-key"),
    );
    assert.equal(await Deno.readTextFile(path), before, "untouched");

    const done = await loadOrCreateIdentity(path, {
      passphrase: "pw",
      encryptPlaintext: true,
      ...FAST,
    });
    assert.equal(done.encrypted, true);
    assert.deepEqual(done.identity.spki, plain.identity.spki);
    const file = JSON.parse(await Deno.readTextFile(path));
    assert.equal(file.privateKey, undefined);
    assert.equal(file.created, JSON.parse(before).created);
    if (POSIX) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    await assert.rejects(
      () => loadOrCreateIdentity(path, FAST),
      isError("bad-passphrase"),
    );
    const again = await loadOrCreateIdentity(path, {
      passphrase: "pw",
      encryptPlaintext: true,
      ...FAST,
    });
    assert.equal(
      again.encrypted,
      undefined,
      "already encrypted: nothing rewritten",
    );
    assert.deepEqual(again.identity.spki, plain.identity.spki);
  }));
