import assert from "node:assert/strict";
import { type Bytes, utf8 } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  createIdentity,
  generateIdentity,
  importIdentity,
  isEncryptedIdentityFile,
  parseIdentityFile,
  serializeIdentity,
} from "../lib/identity.ts";
import {
  importIdentityPublic,
  p256Pkcs8Parts,
  sign,
  verify,
} from "../lib/suite.ts";

/** Cheap KDF settings so passphrase tests stay fast (production minimum is enforced separately). */
const FAST = { iterations: 1000 };
const FAST_PARSE = { minIterations: 1000 };

function rejectsWith(code: string, fragment?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (fragment) assert.ok(e.message.includes(fragment), e.message);
    return true;
  };
}

async function exportable() {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  return {
    pkcs8: new Uint8Array(
      await crypto.subtle.exportKey("pkcs8", pair.privateKey),
    ),
    spki: new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey)),
  };
}

Deno.test("generateIdentity: non-extractable private key that signs for its public key", async () => {
  const id = await generateIdentity();
  assert.equal(id.privateKey.extractable, false);
  assert.equal(id.spki.length, 91);
  const msg = utf8("hello");
  assert.ok(await verify(id.publicKey, await sign(id.privateKey, msg), msg));
});

Deno.test("createIdentity: file has the documented shape and parses back to the same key", async () => {
  const created = new Date("2026-01-02T03:04:05.000Z");
  const { identity, json } = await createIdentity({ created });
  assert.equal(identity.privateKey.extractable, false);
  const file = JSON.parse(json);
  assert.deepEqual(Object.keys(file).sort(), [
    "algorithm",
    "created",
    "privateKey",
    "publicKey",
    "version",
  ]);
  assert.equal(file.version, 1);
  assert.equal(file.algorithm, "ECDSA-P256-SHA256");
  assert.equal(file.created, "2026-01-02T03:04:05.000Z");
  assert.match(
    file.publicKey,
    /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/,
  );
  assert.match(
    file.privateKey,
    /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/,
  );
  assert.equal(isEncryptedIdentityFile(json), false);

  const loaded = await parseIdentityFile(json, "alice_identity_keys.json");
  assert.deepEqual(loaded.spki, identity.spki);
  assert.equal(loaded.privateKey.extractable, false);
  // The loaded private key signs for the original public key.
  const msg = utf8("probe");
  assert.ok(
    await verify(identity.publicKey, await sign(loaded.privateKey, msg), msg),
  );
});

Deno.test("parseIdentityFile: PEM compatible with standard tools (SPKI matches WebCrypto export)", async () => {
  const { pkcs8, spki } = await exportable();
  const json = await serializeIdentity(pkcs8, spki);
  const pem: string = JSON.parse(json).publicKey;
  const body = pem.split("\n").filter((l) => l && !l.startsWith("-----")).join(
    "",
  );
  assert.ok(pem.split("\n").every((l) => l.length <= 64));
  assert.deepEqual(Uint8Array.fromBase64(body), spki);
});

Deno.test("parseIdentityFile: malformed files fail with bad-key-file naming the source", async () => {
  const { pkcs8, spki } = await exportable();
  const good = JSON.parse(await serializeIdentity(pkcs8, spki));
  const other = await exportable();
  const src = "bob_identity_keys.json";
  const cases: [string, string, string][] = [
    ["not json", "{", "not valid JSON"],
    ["array", "[]", "not a JSON object"],
    [
      "version",
      JSON.stringify({ ...good, version: 2 }),
      "unsupported version 2",
    ],
    [
      "algorithm",
      JSON.stringify({ ...good, algorithm: "RSA" }),
      "unsupported algorithm",
    ],
    ["created", JSON.stringify({ ...good, created: "yesterday" }), "created"],
    [
      "no public",
      JSON.stringify({ ...good, publicKey: undefined }),
      "publicKey",
    ],
    ["bad pem", JSON.stringify({ ...good, publicKey: "hello" }), "publicKey"],
    [
      "wrong label",
      JSON.stringify({ ...good, publicKey: good.privateKey }),
      "publicKey",
    ],
    [
      "bad base64",
      JSON.stringify({
        ...good,
        privateKey:
          "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
      }),
      "privateKey",
    ],
    [
      "no private",
      JSON.stringify({ ...good, privateKey: undefined }),
      "exactly one",
    ],
    [
      "both",
      JSON.stringify({ ...good, encryptedPrivateKey: {} }),
      "exactly one",
    ],
    [
      "public not a key",
      JSON.stringify({
        ...good,
        publicKey:
          "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
      }),
      "not a P-256 public key",
    ],
    [
      "mismatched pair",
      await serializeIdentity(pkcs8, other.spki),
      "does not match",
    ],
  ];
  for (const [name, json, fragment] of cases) {
    await assert.rejects(
      parseIdentityFile(json, src),
      (e: unknown) => {
        assert.ok(e instanceof ProtocolError, name);
        assert.equal(e.code, "bad-key-file", `${name}: ${e.message}`);
        assert.ok(e.message.includes(src), `${name}: ${e.message}`);
        assert.ok(e.message.includes(fragment), `${name}: ${e.message}`);
        return true;
      },
    );
  }
});

Deno.test("passphrase: round trip, wrong or missing passphrase is bad-passphrase", async () => {
  const { identity, json } = await createIdentity({
    passphrase: "correct horse",
    ...FAST,
  });
  const file = JSON.parse(json);
  assert.equal(file.privateKey, undefined);
  assert.equal(isEncryptedIdentityFile(json), true);
  const enc = file.encryptedPrivateKey;
  assert.equal(enc.kdf, "PBKDF2-SHA256");
  assert.equal(enc.cipher, "AES-256-GCM");
  assert.equal(enc.iterations, 1000);
  assert.equal(Uint8Array.fromBase64(enc.salt).length, 16);
  assert.equal(Uint8Array.fromBase64(enc.nonce).length, 12);

  const loaded = await parseIdentityFile(
    json,
    "k.json",
    "correct horse",
    FAST_PARSE,
  );
  assert.deepEqual(loaded.spki, identity.spki);
  const msg = utf8("m");
  assert.ok(
    await verify(identity.publicKey, await sign(loaded.privateKey, msg), msg),
  );

  await assert.rejects(
    parseIdentityFile(json, "k.json", "wrong", FAST_PARSE),
    rejectsWith("bad-passphrase", "k.json"),
  );
  await assert.rejects(
    parseIdentityFile(json, "k.json", undefined, FAST_PARSE),
    rejectsWith("bad-passphrase", "passphrase is required"),
  );
});

Deno.test("passphrase: NFC normalisation makes composed and decomposed input equal", async () => {
  const { json } = await createIdentity({ passphrase: "caf\u00e9", ...FAST });
  await parseIdentityFile(json, "k.json", "cafe\u0301", FAST_PARSE);
});

Deno.test("passphrase: swapped public key or edited parameters are detected", async () => {
  const { json } = await createIdentity({ passphrase: "pw", ...FAST });
  const other = await createIdentity();
  const file = JSON.parse(json);
  const swapped = JSON.stringify({
    ...file,
    publicKey: JSON.parse(other.json).publicKey,
  });
  await assert.rejects(
    parseIdentityFile(swapped, "k.json", "pw", FAST_PARSE),
    rejectsWith("bad-passphrase", "modified"),
  );

  const ct = Uint8Array.fromBase64(file.encryptedPrivateKey.ciphertext);
  ct[5] ^= 1;
  const flipped = JSON.stringify({
    ...file,
    encryptedPrivateKey: {
      ...file.encryptedPrivateKey,
      ciphertext: ct.toBase64(),
    },
  });
  await assert.rejects(
    parseIdentityFile(flipped, "k.json", "pw", FAST_PARSE),
    rejectsWith("bad-passphrase"),
  );

  const bumped = JSON.stringify({
    ...file,
    encryptedPrivateKey: { ...file.encryptedPrivateKey, iterations: 1001 },
  });
  await assert.rejects(
    parseIdentityFile(bumped, "k.json", "pw", FAST_PARSE),
    rejectsWith("bad-passphrase"),
  );
});

Deno.test("passphrase: downgraded iteration count and bad parameters are refused before decrypting", async () => {
  const { json } = await createIdentity({ passphrase: "pw", ...FAST });
  // Default minimum (100 000) refuses the cheap test file.
  await assert.rejects(
    parseIdentityFile(json, "k.json", "pw"),
    rejectsWith("bad-key-file", "below the minimum 100000"),
  );
  const file = JSON.parse(json);
  const enc = file.encryptedPrivateKey;
  const variants: [Record<string, unknown>, string][] = [
    [{ ...enc, iterations: 2e7 }, "above the maximum"],
    [{ ...enc, iterations: "1000" }, "iterations"],
    [{ ...enc, kdf: "scrypt" }, "unsupported kdf"],
    [{ ...enc, cipher: "AES-128-GCM" }, "unsupported cipher"],
    [{ ...enc, salt: "AAAA" }, "salt"],
    [{ ...enc, nonce: "AAAA" }, "nonce"],
    [{ ...enc, ciphertext: "@" }, "ciphertext"],
  ];
  for (const [v, fragment] of variants) {
    const bad = JSON.stringify({ ...file, encryptedPrivateKey: v });
    await assert.rejects(
      parseIdentityFile(bad, "k.json", "pw", FAST_PARSE),
      rejectsWith("bad-key-file", fragment),
    );
  }
});

Deno.test("passphrase: default iteration count is 600000 and loads with the default minimum", async () => {
  const { pkcs8, spki } = await exportable();
  const json = await serializeIdentity(pkcs8, spki, { passphrase: "pw" });
  assert.equal(JSON.parse(json).encryptedPrivateKey.iterations, 600000);
  const id = await parseIdentityFile(json, "k.json", "pw");
  assert.deepEqual(id.spki, spki);
});

Deno.test("serializeIdentity: empty passphrase refused", async () => {
  const { pkcs8, spki } = await exportable();
  await assert.rejects(
    serializeIdentity(pkcs8, spki, { passphrase: "" }),
    RangeError,
  );
});

Deno.test("importIdentity: mismatched keys refused", async () => {
  const a = await exportable();
  const b = await exportable();
  await assert.rejects(
    importIdentity(a.pkcs8, b.spki, "src"),
    rejectsWith("bad-key-file", "does not match"),
  );
  const ok = await importIdentity(a.pkcs8, a.spki, "src");
  assert.equal(ok.privateKey.extractable, false);
});

Deno.test("identity public keys off the curve are refused (SPKI import and key files)", async () => {
  const prefix = Uint8Array.fromHex(
    "3059301306072a8648ce3d020106082a8648ce3d030107034200",
  );
  const good = await generateIdentity();
  const offCurve = good.spki.slice();
  offCurve[offCurve.length - 1] ^= 1; // y changed: no longer on P-256
  assert.deepEqual(offCurve.subarray(0, prefix.length), prefix);
  await assert.rejects(
    importIdentityPublic(offCurve),
    rejectsWith("invalid-public-key"),
  );
  const pair = await exportable();
  const json = JSON.parse(await serializeIdentity(pair.pkcs8, pair.spki));
  const bad = pair.spki.slice();
  bad[bad.length - 1] ^= 1;
  json.publicKey =
    `-----BEGIN PUBLIC KEY-----\n${bad.toBase64()}\n-----END PUBLIC KEY-----\n`;
  await assert.rejects(
    parseIdentityFile(JSON.stringify(json), "x.json"),
    rejectsWith("bad-key-file", "x.json"),
  );
});

Deno.test("key file: a compressed-point SPKI (same key, other encoding) is refused", async () => {
  const pair = await exportable();
  const key = await crypto.subtle.importKey(
    "spki",
    pair.spki,
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["verify"],
  );
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", key));
  const compressed = new Uint8Array([
    ...Uint8Array.fromHex(
      "3039301306072a8648ce3d020106082a8648ce3d030107032200",
    ),
    2 | (raw[64] & 1),
    ...raw.subarray(1, 33),
  ]);
  await assert.rejects(
    importIdentity(pair.pkcs8, compressed, "c.json"),
    rejectsWith("bad-key-file", "c.json"),
  );
});

Deno.test("importIdentityPublic (P-256): only the canonical uncompressed SPKI of a point on the curve", async () => {
  const { spki } = await generateIdentity();
  const key = await importIdentityPublic(spki);
  assert.equal(key.algorithm.name, "ECDSA");
  const refused = async (bad: Bytes, what: string) =>
    await assert.rejects(
      importIdentityPublic(bad, "ECDSA-P256-SHA256"),
      (e: unknown) =>
        e instanceof ProtocolError && e.code === "invalid-public-key",
      what,
    );
  // The same point compressed (another DER encoding of the same key).
  const compressed = new Uint8Array([
    ...Uint8Array.fromHex(
      "3039301306072a8648ce3d020106082a8648ce3d030107032200",
    ),
    2 | (spki[90] & 1),
    ...spki.subarray(27, 59),
  ]);
  await refused(compressed, "compressed point");
  // Off the curve: y + 1.
  const off = spki.slice();
  off[90] ^= 1;
  await refused(off, "point off the curve");
  // A trailing byte after the SPKI.
  await refused(new Uint8Array([...spki, 0]), "trailing byte");
  // An x coordinate ≥ p (all ones) with the rest unchanged.
  const big = spki.slice();
  big.fill(0xff, 27, 59);
  await refused(big, "coordinate out of range");
});

Deno.test("P-256 PKCS#8 split (p256Pkcs8Parts): the scalar-only form is the same key, its public point is the SPKI's; an imported identity signs verifiably; other keys and malformed DER → null", async () => {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", pair.privateKey),
  );
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", pair.publicKey),
  );
  const parts = p256Pkcs8Parts(pkcs8)!;
  assert.ok(parts, "a WebCrypto P-256 PKCS#8 splits");
  assert.deepEqual(parts.publicRaw, spki.subarray(26));
  assert.equal(parts.scalarOnly.length, 67);
  const scalarKey = await crypto.subtle.importKey(
    "pkcs8",
    parts.scalarOnly,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const data = utf8("scalar-only key");
  assert.ok(await verify(pair.publicKey, await sign(scalarKey, data), data));
  // The scalar alone splits again (no public point to report).
  const again = p256Pkcs8Parts(parts.scalarOnly)!;
  assert.deepEqual(again.scalarOnly, parts.scalarOnly);
  assert.equal(again.publicRaw, undefined);
  const id = await importIdentity(pkcs8, spki, "test");
  assert.ok(await verify(id.publicKey, await sign(id.privateKey, data), data));
  const ed = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const edPkcs8 = new Uint8Array(
    await crypto.subtle.exportKey("pkcs8", ed.privateKey),
  );
  assert.equal(p256Pkcs8Parts(edPkcs8), null);
  assert.equal(p256Pkcs8Parts(pkcs8.subarray(0, 40)), null);
  assert.equal(p256Pkcs8Parts(new Uint8Array(0)), null);
  const tampered = pkcs8.slice();
  tampered[pkcs8.indexOf(0x20, 30) - 1] = 0x03; // d's OCTET STRING tag → BIT STRING
  assert.equal(p256Pkcs8Parts(tampered), null);
});
