/**
 * CA pinning: a client given a pin (`--pin` or an address's `ca=`) trusts
 * only that CA. A relay whose certificate comes from another CA is refused
 * even when Deno would otherwise trust that CA (DENO_CERT); a --ca file that
 * does not match the pin is refused before connecting.
 */

import assert from "node:assert/strict";
import { ensureCerts } from "../tools/certs.ts";
import {
  certificateFingerprint,
  generateCertificateAuthority,
  issueServerCertificate,
} from "../lib/x509.ts";
import { PinnedRelayConnection } from "../lib/deno/pinned_relay.ts";
import { generateMailboxKey } from "../lib/registration.ts";
import { ClientProc } from "./helpers/client_proc.ts";
import { startQuietRelay } from "./helpers/relay_fixture.ts";

Deno.test("pinned client refuses a relay certified by another CA that DENO_CERT makes trusted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client-pin-" });
  try {
    const pinned = await ensureCerts({ dir: `${dir}/pinned` });
    const other = await ensureCerts({ dir: `${dir}/other` });
    const relay = await startQuietRelay(
      await Deno.readTextFile(other.certPath),
      await Deno.readTextFile(other.keyPath),
    );
    const url = `wss://localhost:${relay.port}/ws`;
    const pin = await certificateFingerprint(
      await Deno.readTextFile(pinned.caPath),
    );
    const otherPin = await certificateFingerprint(
      await Deno.readTextFile(other.caPath),
    );
    const env = { DENO_CERT: other.caPath };
    try {
      const base = (keys: string) => [
        "--json",
        "--relay",
        url,
        "--keys",
        `${dir}/${keys}`,
        "--wait",
        "1",
      ];
      const customer = (keys: string, ...args: string[]) =>
        new ClientProc("customer", [...base(keys), ...args], dir, env);
      // Five independent clients at once, each its own keys folder: their
      // start-ups and --wait run side by side, not one after another.
      // Control: without a pin, DENO_CERT makes Deno trust the other CA.
      const unpinned = customer("k1", "--ca", pinned.caPath);
      // Pinned via --pin: refused at TLS, exit 3.
      const viaPin = customer("k2", "--ca", pinned.caPath, "--pin", pin);
      // Pinned via the address's ca=… part (the bank given a customer's address).
      const address = `${url}#ca=${pin}&id=${"a".repeat(26)}`;
      const viaAddress = new ClientProc(
        "bank",
        [
          "--json",
          "--keys",
          `${dir}/kb`,
          "--ca",
          pinned.caPath,
          "--peer",
          address,
        ],
        dir,
        env,
      );
      // A --ca file that is not the pinned CA: refused before connecting.
      const mismatch = customer("k3", "--ca", other.caPath, "--pin", pin);
      // Pinned to the relay's real CA: works (the pinned transport itself is sound).
      const good = customer("k4", "--ca", other.caPath, "--pin", otherPin);
      const codes = Promise.all(
        [unpinned, viaPin, viaAddress, mismatch, good].map((c) => c.exit()),
      );

      const ready = await unpinned.waitFor(
        (e) => e.type === "ready",
        "unpinned connects",
      );
      assert.match(ready.address, new RegExp(`#ca=${pin}&id=`));
      await good.waitFor((e) => e.type === "ready", "pinned to the right CA");
      const [unpinnedCode, viaPinCode, viaAddressCode, mismatchCode, goodCode] =
        await codes;
      assert.equal(unpinnedCode, 6);

      assert.equal(viaPinCode, 3);
      const err = viaPin.events.find((e) => e.type === "error")!;
      assert.equal(err.code, "tls");
      assert.match(err.message, /does not chain to the pinned CA/);
      assert.ok(!viaPin.events.some((e) => e.type === "ready"));

      assert.equal(viaAddressCode, 3);

      assert.equal(mismatchCode, 3);
      assert.match(
        mismatch.events.find((e) => e.type === "error")!.message,
        /CA pin mismatch/,
      );

      assert.equal(goodCode, 6);
    } finally {
      await relay.shutdown();
      await relay.finished;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pinned transport verifies the host name against the certificate", async () => {
  const ca = await generateCertificateAuthority({});
  const leaf = await issueServerCertificate(ca, { hosts: ["example.test"] });
  const { key: mailbox } = await generateMailboxKey();
  const relay = await startQuietRelay(leaf.certPem, leaf.keyPem);
  try {
    await assert.rejects(
      () =>
        PinnedRelayConnection.connect({
          url: `wss://localhost:${relay.port}/ws`,
          mailbox,
          caPem: ca.certPem,
        }),
      /not valid for this host name/,
    );
  } finally {
    await relay.shutdown();
    await relay.finished;
  }
});

Deno.test("a pinned client trusts only the pinned CA of a --ca bundle, never its other CAs", async () => {
  // Regression: the pin was compared with the bundle's first certificate,
  // then every certificate of the file was trusted.
  const dir = await Deno.makeTempDir({ prefix: "client-pin-bundle-" });
  try {
    const pinned = await generateCertificateAuthority({});
    const other = await generateCertificateAuthority({});
    const leaf = await issueServerCertificate(other, { hosts: ["localhost"] });
    const relay = await startQuietRelay(leaf.certPem, leaf.keyPem);
    try {
      const url = `wss://localhost:${relay.port}/ws`;
      const pin = await certificateFingerprint(pinned.certPem);
      // Three independent clients at once (each its own bundle file and keys
      // folder): their start-ups run side by side, not one after another.
      const client = (keys: string, caFile: string, pin: string) =>
        new ClientProc(
          "customer",
          [
            "--json",
            ...["--relay", url, "--keys", `${dir}/${keys}`, "--wait", "1"],
            ...["--ca", caFile, "--pin", pin],
          ],
          dir,
        );
      const refused = await Promise.all(
        [
          ["pinned first", pinned.certPem + other.certPem],
          ["pinned second", other.certPem + pinned.certPem],
        ].map(async ([name, bundle], i) => {
          const caFile = `${dir}/bundle-${i}.pem`;
          await Deno.writeTextFile(caFile, bundle);
          return { name, client: client(`k${i}`, caFile, pin) };
        }),
      );
      // Control: the bundle with the relay's own CA pinned connects.
      const otherPin = await certificateFingerprint(other.certPem);
      const good = client("k-good", `${dir}/bundle-1.pem`, otherPin);
      for (const { name, client: c } of refused) {
        assert.equal(await c.exit(), 3, name);
        assert.ok(!c.events.some((e) => e.type === "ready"), name);
        const err = c.events.find((e) => e.type === "error")!;
        assert.equal(err.code, "tls", name);
        assert.match(err.message, /does not chain to the pinned CA/, name);
      }
      // The transport itself refuses a PEM of two certificates as "the" pin.
      const { key: mailbox } = await generateMailboxKey();
      await assert.rejects(
        () =>
          PinnedRelayConnection.connect({
            url,
            mailbox,
            caPem: pinned.certPem + other.certPem,
          }),
        /exactly one certificate, got 2/,
      );
      const ready = await good.waitFor((e) => e.type === "ready", "bundle ok");
      assert.match(ready.address, new RegExp(`#ca=${otherPin}&id=`));
      assert.equal(await good.exit(), 6);
    } finally {
      await relay.shutdown();
      await relay.finished;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
