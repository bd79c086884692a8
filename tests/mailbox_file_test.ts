import assert from "node:assert/strict";
import { loadOrCreateMailboxKey } from "../lib/deno/mailbox_file.ts";

Deno.test("mailbox key file: created 0600, same ID when loaded again, refused when too open or corrupt", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/bank_mailbox_key.json`;
    const a = await loadOrCreateMailboxKey(path);
    assert.equal(a.created, true);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const b = await loadOrCreateMailboxKey(path);
    assert.equal(b.created, false);
    assert.deepEqual(b.key.id, a.key.id);
    await Deno.chmod(path, 0o644);
    await assert.rejects(
      () => loadOrCreateMailboxKey(path),
      /too open.*chmod 600/,
    );
    await Deno.writeTextFile(`${dir}/bad.json`, "{}", { mode: 0o600 });
    await assert.rejects(
      () => loadOrCreateMailboxKey(`${dir}/bad.json`),
      /not a version 1 mailbox key file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
