/**
 * A client pointed at a relay host it has no network permission for (the
 * tasks grant loopback only) says which flag to add, instead of the
 * runtime's raw `getaddrinfo EPERM`. No packet leaves the machine: the
 * permission is checked before connecting.
 * @module
 */

import assert from "node:assert/strict";
import { ROOT } from "./helpers/client_proc.ts";
import { testCerts } from "./helpers/relay_fixture.ts";
import { certificateFingerprint } from "../lib/x509.ts";

Deno.test("client: a relay host without net permission → exit 3 with the exact --allow-net flag", async () => {
  const certs = await testCerts();
  const dir = await Deno.makeTempDir({ prefix: "client-perm-" });
  try {
    await Deno.mkdir(`${dir}/certs`);
    await Deno.copyFile(`${certs.dir}/ca.pem`, `${dir}/certs/ca.pem`);
    const pin = await certificateFingerprint(certs.ca);
    for (
      const [url, grant] of [
        ["wss://relay.bank.example/ws", "relay.bank.example:443"],
        ["wss://relay.bank.example:8444/ws", "relay.bank.example:8444"],
      ]
    ) {
      const r = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          "--allow-net=localhost,127.0.0.1",
          "--allow-read=.",
          "--allow-write=.",
          `${ROOT}/clients/bank.ts`,
          "--json",
          "--peer",
          `${url}#ca=${pin}&id=3x4jlupouh6ix257anohc2bm2a`,
        ],
        cwd: dir,
        stdin: "null",
        env: { NO_COLOR: "1" },
      }).output();
      const out = new TextDecoder().decode(r.stdout) +
        new TextDecoder().decode(r.stderr);
      assert.equal(r.code, 3, out);
      assert.ok(out.includes(`--allow-net=${grant}`), out);
      assert.ok(out.includes(`RELAY_HOST=${grant} deno task bank:remote`), out);
      assert.doesNotMatch(out, /EPERM|Requires net access/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
