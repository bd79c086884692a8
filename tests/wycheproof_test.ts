/**
 * Wycheproof conformance of the primitives exactly as `lib/suite.ts` wraps
 * them: ECDSA P-256/SHA-256 (P1363) verify, ECDH P-256 (uncompressed points
 * only, invalid points refused), AES-256-GCM (96-bit nonce, 128-bit tag) and
 * HKDF-SHA256; and the Deno drivers' handshake provider
 * (`nodeHandshakePrimitives`: P-256 signature checks and ECDH through
 * `sharedSecret`). Reads ../shared/vectors/wycheproof/ (or $WYCHEPROOF_DIR);
 * fails, never skips, when absent.
 */
import { requireWycheproof, WYCHEPROOF_DIR } from "./helpers/wycheproof_dir.ts";
import assert from "node:assert/strict";
import { type Bytes, bytesEqual } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import { sharedSecret } from "../lib/handshake_keys.ts";
import {
  importNodeEphemeral,
  nodeHandshakePrimitives,
} from "../lib/deno/node_primitives.ts";
import {
  ecdh,
  hkdf,
  importAeadKey,
  importEphemeralPublic,
  importIdentityPublic,
  importSecret,
  open,
  seal,
  SUITE_P256,
  verify,
} from "../lib/suite.ts";

const DIR = WYCHEPROOF_DIR;

interface TestCase {
  tcId: number;
  comment: string;
  flags: string[];
  result: "valid" | "invalid" | "acceptable";
  [field: string]: unknown;
}
interface Group {
  tests: TestCase[];
  [field: string]: unknown;
}

async function load(name: string): Promise<Group[]> {
  requireWycheproof();
  const data = JSON.parse(await Deno.readTextFile(new URL(name, DIR)));
  return data.testGroups;
}

function hex(s: unknown): Bytes {
  return Uint8Array.fromHex(s as string);
}

function label(t: TestCase): string {
  return `tcId ${t.tcId} (${t.result}; ${t.comment}; ${t.flags.join(",")})`;
}

function summary(primitive: string, counts: Record<string, number>): void {
  const parts = Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`wycheproof ${primitive}: ${parts}`);
}

Deno.test({
  name:
    "wycheproof: ECDSA P-256 SHA-256 P1363 through importIdentityPublic + verify",
  fn: async () => {
    const counts = {
      valid: 0,
      invalid: 0,
      acceptableAccepted: 0,
      acceptableRejected: 0,
    };
    for (const group of await load("ecdsa_secp256r1_sha256_p1363_test.json")) {
      const key = await importIdentityPublic(hex(group.publicKeyDer));
      for (const t of group.tests) {
        const ok = await verify(key, hex(t.sig), hex(t.msg));
        if (t.result === "acceptable") {
          counts[ok ? "acceptableAccepted" : "acceptableRejected"]++;
          continue;
        }
        assert.equal(ok, t.result === "valid", label(t));
        counts[t.result]++;
      }
    }
    summary("ECDSA-P256-SHA256-P1363", counts);
    assert.ok(counts.valid > 0 && counts.invalid > 0);
  },
});

Deno.test({
  name:
    "wycheproof: ECDSA P-256 SHA-256 P1363 through importIdentityPublic + the node provider's path (it leaves P-256 to WebCrypto: same verdicts)",
  fn: async () => {
    const counts = { valid: 0, invalid: 0, acceptable: 0 };
    for (const group of await load("ecdsa_secp256r1_sha256_p1363_test.json")) {
      const spki = hex(group.publicKeyDer);
      const key = await importIdentityPublic(spki);
      for (const t of group.tests) {
        // As lib/handshake_keys.ts checkProof: the provider, else WebCrypto.
        const ok =
          nodeHandshakePrimitives.verify(spki, hex(t.sig), hex(t.msg)) ??
            await verify(key, hex(t.sig), hex(t.msg));
        assert.equal(
          ok,
          await verify(key, hex(t.sig), hex(t.msg)),
          `${label(t)}: the provider's path and WebCrypto disagree`,
        );
        if (t.result !== "acceptable") {
          assert.equal(ok, t.result === "valid", label(t));
        }
        counts[t.result]++;
      }
    }
    summary("ECDSA-P256-SHA256-P1363 (node provider)", counts);
    assert.ok(counts.valid > 0 && counts.invalid > 0);
  },
});

/** PKCS#8 for a bare P-256 private scalar (ECPrivateKey without the optional public key). */
function pkcs8FromScalar(scalarHex: string): Bytes {
  const d = BigInt("0x" + (scalarHex || "0")).toString(16).padStart(64, "0");
  if (d.length !== 64) throw new RangeError("scalar longer than 32 bytes");
  return Uint8Array.fromHex(
    "3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420" +
      d,
  );
}

Deno.test({
  name: "wycheproof: ECDH P-256 (ecpoint) through importEphemeralPublic + ecdh",
  fn: async () => {
    const counts = { valid: 0, invalidRefused: 0, compressedRefused: 0 };
    for (const group of await load("ecdh_secp256r1_ecpoint_test.json")) {
      for (const t of group.tests) {
        const raw = hex(t.public);
        const compressed = raw.length === 33 && (raw[0] === 2 || raw[0] === 3);
        const mustRefuse = t.result === "invalid" || compressed;
        let peer: CryptoKey;
        try {
          peer = await importEphemeralPublic(raw);
        } catch (e) {
          assert.ok(mustRefuse, `${label(t)}: refused a valid point: ${e}`);
          assert.ok(e instanceof ProtocolError, label(t));
          assert.equal(e.code, "invalid-public-key", label(t));
          counts[
            t.result === "invalid" ? "invalidRefused" : "compressedRefused"
          ]++;
          continue;
        }
        assert.ok(
          !mustRefuse,
          `${label(t)}: accepted a point that must be refused`,
        );
        const priv = await crypto.subtle.importKey(
          "pkcs8",
          pkcs8FromScalar(t.private as string),
          { name: "ECDH", namedCurve: "P-256" },
          false,
          ["deriveBits"],
        );
        const shared = await ecdh(priv, peer);
        assert.ok(
          bytesEqual(shared, hex(t.shared)),
          `${label(t)}: shared secret differs`,
        );
        counts.valid++;
      }
    }
    summary("ECDH-P256", counts);
    assert.ok(counts.valid > 0 && counts.invalidRefused > 0);
  },
});

Deno.test({
  name:
    "wycheproof: ECDH P-256 (ecpoint) through a node provider ephemeral + sharedSecret",
  fn: async () => {
    const counts = { valid: 0, invalidRefused: 0, compressedRefused: 0 };
    for (const group of await load("ecdh_secp256r1_ecpoint_test.json")) {
      for (const t of group.tests) {
        const raw = hex(t.public);
        const compressed = raw.length === 33 && (raw[0] === 2 || raw[0] === 3);
        const mustRefuse = t.result === "invalid" || compressed;
        const own = await importNodeEphemeral(
          pkcs8FromScalar(t.private as string),
          SUITE_P256,
        );
        let shared: Bytes;
        try {
          shared = await sharedSecret(own, SUITE_P256, raw);
        } catch (e) {
          assert.ok(mustRefuse, `${label(t)}: refused a valid point: ${e}`);
          assert.ok(e instanceof ProtocolError, label(t));
          assert.equal(e.code, "invalid-public-key", label(t));
          counts[
            t.result === "invalid" ? "invalidRefused" : "compressedRefused"
          ]++;
          continue;
        }
        assert.ok(
          !mustRefuse,
          `${label(t)}: accepted a point that must be refused`,
        );
        assert.ok(
          bytesEqual(shared, hex(t.shared)),
          `${label(t)}: shared secret differs`,
        );
        counts.valid++;
      }
    }
    summary("ECDH-P256 (node provider)", counts);
    assert.ok(counts.valid > 0 && counts.invalidRefused > 0);
  },
});

Deno.test({
  name: "wycheproof: AES-256-GCM (96-bit nonce, 128-bit tag) through seal/open",
  fn: async () => {
    const counts = { valid: 0, invalid: 0, skippedOtherSizes: 0 };
    for (const group of await load("aes_gcm_test.json")) {
      if (
        group.keySize !== 256 || group.ivSize !== 96 || group.tagSize !== 128
      ) {
        counts.skippedOtherSizes += group.tests.length;
        continue;
      }
      for (const t of group.tests) {
        const key = await importAeadKey(hex(t.key));
        const [iv, aad, msg] = [hex(t.iv), hex(t.aad), hex(t.msg)];
        const sealed = new Uint8Array([...hex(t.ct), ...hex(t.tag)]);
        if (t.result === "invalid") {
          await assert.rejects(open(key, iv, sealed, aad), (e: unknown) => {
            assert.ok(e instanceof ProtocolError, label(t));
            assert.equal(e.code, "decrypt-failed", label(t));
            return true;
          });
          counts.invalid++;
          continue;
        }
        assert.ok(
          bytesEqual(await seal(key, iv, msg, aad), sealed),
          `${label(t)}: seal`,
        );
        assert.ok(
          bytesEqual(await open(key, iv, sealed, aad), msg),
          `${label(t)}: open`,
        );
        counts.valid++;
      }
    }
    summary("AES-256-GCM", counts);
    assert.ok(counts.valid > 0 && counts.invalid > 0);
  },
});

Deno.test({
  name: "wycheproof: HKDF-SHA256 through importSecret + hkdf",
  fn: async () => {
    const counts = { valid: 0, invalidRefused: 0 };
    for (const group of await load("hkdf_sha256_test.json")) {
      for (const t of group.tests) {
        const secret = await importSecret(hex(t.ikm));
        const size = t.size as number;
        if (t.result === "invalid") {
          await assert.rejects(
            hkdf(secret, hex(t.salt), hex(t.info), size),
            label(t),
          );
          counts.invalidRefused++;
          continue;
        }
        const okm = await hkdf(secret, hex(t.salt), hex(t.info), size);
        assert.ok(bytesEqual(okm, hex(t.okm)), `${label(t)}: okm differs`);
        counts.valid++;
      }
    }
    summary("HKDF-SHA256", counts);
    assert.ok(counts.valid > 0 && counts.invalidRefused > 0);
  },
});
