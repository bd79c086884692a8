/**
 * X.509 v3 certificates (RFC 5280) for a local relay, built with WebCrypto
 * ECDSA P-256 / SHA-256 and the small DER encoder in `der.ts`:
 * a CA (`CA:TRUE`, pathlen 0) and server leaf certificates it signs
 * (`CA:FALSE`, serverAuth, SAN). A self-signed certificate that is its own
 * CA is refused by Deno's TLS client (`CaUsedAsEndEntity`), hence two.
 * Pure: time comes in as an option, no I/O; safe in a browser.
 * @module
 */

import { type Bytes, bytesEqual, concat, sha256, utf8 } from "./bytes.ts";
import * as der from "./der.ts";
import { decodePem, decodePemAll, encodePem } from "./pem.ts";

// ---------------------------------------------------------------- constants

/** Object identifiers used below. */
const OID = {
  EC_PUBLIC_KEY: "1.2.840.10045.2.1",
  ECDSA_WITH_SHA256: "1.2.840.10045.4.3.2",
  COMMON_NAME: "2.5.4.3",
  SUBJECT_KEY_IDENTIFIER: "2.5.29.14",
  KEY_USAGE: "2.5.29.15",
  SUBJECT_ALT_NAME: "2.5.29.17",
  BASIC_CONSTRAINTS: "2.5.29.19",
  AUTHORITY_KEY_IDENTIFIER: "2.5.29.35",
  EXT_KEY_USAGE: "2.5.29.37",
  SERVER_AUTH: "1.3.6.1.5.5.7.3.1",
} as const;

/** KeyUsage bit positions (RFC 5280 §4.2.1.3). */
const KeyUsageBit = {
  DIGITAL_SIGNATURE: 0,
  KEY_CERT_SIGN: 5,
  CRL_SIGN: 6,
} as const;
/** GeneralName context tags (RFC 5280 §4.2.1.6). */
const GeneralNameTag = { DNS_NAME: 2, IP_ADDRESS: 7 } as const;
/** X.509 version field value for v3. */
const VERSION_3 = 2;
/** Serial numbers are 16 random bytes, top bit clear (positive), second bit set (fixed length). */
const SERIAL_BYTES = 16;
/** Key identifiers: leftmost 160 bits of SHA-256 of the public key (RFC 7093 §2 method 1). */
const KEY_ID_BYTES = 20;
/** P-256 scalar size; WebCrypto signatures are r‖s of this many bytes each. */
const P256_SCALAR_BYTES = 32;
/** Certificates start this long before `now` to tolerate clock skew. */
const BACKDATE_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Default CA lifetime: ten years. */
export const CA_VALIDITY_DAYS = 3650;
/** Default leaf lifetime: 825 days, the most Apple platforms accept from a private CA. */
export const SERVER_VALIDITY_DAYS = 825;
/** Default CA subject common name. */
export const CA_COMMON_NAME = "Relay Local CA";
/** Upper bound of a commonName (RFC 5280 ub-common-name). */
const MAX_COMMON_NAME = 64;
/** DNS limits (RFC 1035 §2.3.4). */
const MAX_DNS_NAME = 253;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4_OCTETS = 4;
const IPV6_GROUPS = 8;
const ECDSA_P256: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const ECDSA_SHA256: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

// ---------------------------------------------------------------- API types

/** A PEM certificate and its PKCS#8 private key (`PRIVATE KEY` PEM). */
export interface CertificateAndKey {
  /** `-----BEGIN CERTIFICATE-----` PEM. */
  certPem: string;
  /** `-----BEGIN PRIVATE KEY-----` PEM (PKCS#8). Secret. */
  keyPem: string;
}

/** Options shared by both generators. */
export interface ValidityOptions {
  /** Issue time; the certificate starts one hour earlier. Default: now. */
  now?: Date;
  /** Lifetime in days from `now`. */
  validityDays?: number;
}

/** Options for {@link generateCertificateAuthority}. */
export interface CaOptions extends ValidityOptions {
  /** Subject common name. Default {@link CA_COMMON_NAME}. */
  commonName?: string;
}

/** Options for {@link issueServerCertificate}. */
export interface ServerCertificateOptions extends ValidityOptions {
  /** DNS names and IP addresses for the SAN; at least one. */
  hosts: string[];
  /** Subject common name. Default: the first host. */
  commonName?: string;
}

/** A parsed subjectAltName entry: a DNS name or an IP address (4 or 16 bytes). */
export type SanEntry =
  | { type: "dns"; name: string }
  | { type: "ip"; address: Bytes };

// ---------------------------------------------------------------- API

/** Generates a CA: P-256 key, self-signed, `CA:TRUE` pathlen 0, keyCertSign + cRLSign. */
export async function generateCertificateAuthority(
  opts: CaOptions = {},
): Promise<CertificateAndKey> {
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, [
    "sign",
    "verify",
  ]);
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", keys.publicKey),
  );
  const keyId = await keyIdentifier(spki);
  const name = distinguishedName(opts.commonName ?? CA_COMMON_NAME);
  const { notBefore, notAfter } = validity(opts, CA_VALIDITY_DAYS);
  const extensions = [
    extension(
      OID.BASIC_CONSTRAINTS,
      true,
      der.sequence(der.boolean(true), der.integer(0)),
    ),
    extension(
      OID.KEY_USAGE,
      true,
      der.namedBits([KeyUsageBit.KEY_CERT_SIGN, KeyUsageBit.CRL_SIGN]),
    ),
    extension(OID.SUBJECT_KEY_IDENTIFIER, false, der.octetString(keyId)),
  ];
  const tbs = tbsCertificate({
    issuer: name,
    subject: name,
    notBefore,
    notAfter,
    spki,
    extensions,
  });
  return {
    certPem: encodePem(
      "CERTIFICATE",
      await signCertificate(tbs, keys.privateKey),
    ),
    keyPem: await privateKeyPem(keys.privateKey),
  };
}

/**
 * Issues a server certificate signed by `ca`: fresh P-256 key, `CA:FALSE`,
 * digitalSignature, serverAuth, SAN from `opts.hosts`. Its lifetime is cut to
 * end no later than the CA's. Throws if the CA key does not match its certificate.
 */
export async function issueServerCertificate(
  ca: CertificateAndKey,
  opts: ServerCertificateOptions,
): Promise<CertificateAndKey> {
  if (opts.hosts.length === 0) {
    throw new RangeError(
      "a server certificate needs at least one host name or IP",
    );
  }
  const sans = opts.hosts.map(parseHost);
  const issuer = await loadIssuer(ca);
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, [
    "sign",
    "verify",
  ]);
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", keys.publicKey),
  );
  const range = validity(opts, SERVER_VALIDITY_DAYS);
  const notAfter = range.notAfter > issuer.notAfter
    ? issuer.notAfter
    : range.notAfter;
  const extensions = [
    extension(OID.BASIC_CONSTRAINTS, true, der.sequence()),
    extension(
      OID.KEY_USAGE,
      true,
      der.namedBits([KeyUsageBit.DIGITAL_SIGNATURE]),
    ),
    extension(OID.EXT_KEY_USAGE, false, der.sequence(der.oid(OID.SERVER_AUTH))),
    extension(
      OID.SUBJECT_ALT_NAME,
      false,
      der.sequence(...sans.map(generalName)),
    ),
    extension(
      OID.SUBJECT_KEY_IDENTIFIER,
      false,
      der.octetString(await keyIdentifier(spki)),
    ),
    extension(
      OID.AUTHORITY_KEY_IDENTIFIER,
      false,
      der.sequence(der.implicit(0, issuer.keyId)),
    ),
  ];
  const subject = distinguishedName(opts.commonName ?? opts.hosts[0]);
  const tbs = tbsCertificate({
    issuer: issuer.subject,
    subject,
    notBefore: range.notBefore,
    notAfter,
    spki,
    extensions,
  });
  return {
    certPem: encodePem("CERTIFICATE", await signCertificate(tbs, issuer.key)),
    keyPem: await privateKeyPem(keys.privateKey),
  };
}

/** DER bytes of the first `CERTIFICATE` block in `pem`; throws `SyntaxError` if there is none. */
export function certificateDer(pem: string): Bytes {
  return decodePem(pem, "CERTIFICATE");
}

/** SHA-256 of the first certificate's DER, lower-case hex (64 chars): used to pin a CA. */
export async function certificateFingerprint(pem: string): Promise<string> {
  return (await sha256(certificateDer(pem))).toHex();
}

/**
 * The one certificate of a PEM bundle whose SHA-256 fingerprint is `pin`
 * (lower-case hex), re-encoded alone as PEM, or `undefined` when none is.
 * Pinning must trust exactly this certificate, never the rest of the bundle.
 * `fingerprints` lists every certificate of the bundle, in order (for messages).
 */
export async function selectPinnedCertificate(
  pem: string,
  pin: string,
): Promise<{ pem: string | undefined; fingerprints: string[] }> {
  const certs = decodePemAll(pem).filter((b) => b.label === "CERTIFICATE");
  const fingerprints: string[] = [];
  let found: string | undefined;
  for (const cert of certs) {
    const fp = (await sha256(cert.der)).toHex();
    fingerprints.push(fp);
    if (fp === pin && found === undefined) {
      found = encodePem("CERTIFICATE", cert.der);
    }
  }
  return { pem: found, fingerprints };
}

/**
 * Classifies a SAN host: an IPv4/IPv6 literal (brackets allowed, e.g. `[::1]`)
 * or a DNS name (lower-cased, optional leading `*.` wildcard). Throws a
 * `RangeError` saying why a host is invalid.
 */
export function parseHost(host: string): SanEntry {
  const bare = host.startsWith("[") && host.endsWith("]")
    ? host.slice(1, -1)
    : host;
  const v4 = parseIpv4(bare);
  if (v4) return { type: "ip", address: v4 };
  if (bare.includes(":")) {
    const v6 = parseIpv6(bare);
    if (!v6) throw new RangeError(`"${host}" is not a valid IPv6 address`);
    return { type: "ip", address: v6 };
  }
  return { type: "dns", name: checkDnsName(host) };
}

// ---------------------------------------------------------------- structure

interface TbsFields {
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  extensions: Uint8Array[];
}

function tbsCertificate(f: TbsFields): Bytes {
  return der.sequence(
    der.explicit(0, der.integer(VERSION_3)),
    der.integer(randomSerial()),
    signatureAlgorithm(),
    f.issuer,
    der.sequence(der.x509Time(f.notBefore), der.x509Time(f.notAfter)),
    f.subject,
    f.spki,
    der.explicit(3, der.sequence(...f.extensions)),
  );
}

async function signCertificate(
  tbs: Uint8Array<ArrayBuffer>,
  key: CryptoKey,
): Promise<Bytes> {
  const p1363 = new Uint8Array(
    await crypto.subtle.sign(ECDSA_SHA256, key, tbs),
  );
  return der.sequence(
    tbs,
    signatureAlgorithm(),
    der.bitString(ecdsaSigValue(p1363)),
  );
}

/** Converts a WebCrypto r‖s signature to DER `ECDSA-Sig-Value` (RFC 3279 §2.2.3). */
function ecdsaSigValue(p1363: Uint8Array): Bytes {
  if (p1363.length !== 2 * P256_SCALAR_BYTES) {
    throw new RangeError(
      `expected a ${
        2 * P256_SCALAR_BYTES
      }-byte P-256 signature, got ${p1363.length}`,
    );
  }
  return der.sequence(
    der.integer(p1363.subarray(0, P256_SCALAR_BYTES)),
    der.integer(p1363.subarray(P256_SCALAR_BYTES)),
  );
}

/** `AlgorithmIdentifier` for ecdsa-with-SHA256: parameters absent (RFC 5758 §3.2). */
function signatureAlgorithm(): Bytes {
  return der.sequence(der.oid(OID.ECDSA_WITH_SHA256));
}

function extension(id: string, critical: boolean, value: Uint8Array): Bytes {
  // DER omits DEFAULT values, so `critical` appears only when TRUE.
  const flag = critical ? [der.boolean(true)] : [];
  return der.sequence(der.oid(id), ...flag, der.octetString(value));
}

function distinguishedName(commonName: string): Bytes {
  if (commonName.length === 0 || commonName.length > MAX_COMMON_NAME) {
    throw new RangeError(
      `common name must be 1..${MAX_COMMON_NAME} characters, got ${commonName.length}`,
    );
  }
  const cn = der.sequence(der.oid(OID.COMMON_NAME), der.utf8String(commonName));
  return der.sequence(der.set(cn));
}

function generalName(san: SanEntry): Bytes {
  return san.type === "dns"
    ? der.implicit(GeneralNameTag.DNS_NAME, utf8(san.name)) // IA5String; checkDnsName allows ASCII only
    : der.implicit(GeneralNameTag.IP_ADDRESS, san.address);
}

function validity(
  opts: ValidityOptions,
  defaultDays: number,
): { notBefore: Date; notAfter: Date } {
  const now = (opts.now ?? new Date()).getTime();
  const days = opts.validityDays ?? defaultDays;
  if (!Number.isFinite(now)) throw new RangeError("`now` is not a valid Date");
  if (!(days > 0)) {
    throw new RangeError(`validityDays must be positive, got ${days}`);
  }
  const second = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
  return {
    notBefore: second(now - BACKDATE_MS),
    notAfter: second(now + days * DAY_MS),
  };
}

function randomSerial(): Bytes {
  const serial = crypto.getRandomValues(new Uint8Array(SERIAL_BYTES));
  serial[0] = (serial[0] & 0x7f) | 0x40;
  return serial;
}

async function keyIdentifier(spki: Uint8Array): Promise<Bytes> {
  return (await sha256(subjectPublicKeyBits(spki))).slice(0, KEY_ID_BYTES);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return encodePem(
    "PRIVATE KEY",
    new Uint8Array(await crypto.subtle.exportKey("pkcs8", key)),
  );
}

// ---------------------------------------------------------------- reading the CA

interface Issuer {
  subject: Uint8Array;
  keyId: Uint8Array;
  notAfter: Date;
  key: CryptoKey;
}

/** Extracts what issuing needs from a CA certificate and checks that the key belongs to it. */
async function loadIssuer(ca: CertificateAndKey): Promise<Issuer> {
  const tbs = tbsFields(certificateDer(ca.certPem));
  const key = await importCaKey(ca.keyPem);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const point = concat(
    new Uint8Array([4]),
    Uint8Array.fromBase64(jwk.x ?? "", { alphabet: "base64url" }),
    Uint8Array.fromBase64(jwk.y ?? "", { alphabet: "base64url" }),
  );
  if (!bytesEqual(point, subjectPublicKeyBits(tbs.spki))) {
    throw new Error(
      "CA private key does not match the CA certificate's public key",
    );
  }
  const keyId = findSubjectKeyId(tbs.extensions) ??
    await keyIdentifier(tbs.spki);
  return { subject: tbs.subject, keyId, notAfter: tbs.notAfter, key };
}

async function importCaKey(keyPem: string): Promise<CryptoKey> {
  const pkcs8 = decodePem(keyPem, "PRIVATE KEY");
  try {
    return await crypto.subtle.importKey("pkcs8", pkcs8, ECDSA_P256, true, [
      "sign",
    ]);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new Error(
      `CA private key is not a PKCS#8 ECDSA P-256 key (${reason})`,
    );
  }
}

interface ParsedTbs {
  subject: Uint8Array;
  notAfter: Date;
  spki: Uint8Array;
  extensions: der.DerElement[];
}

function tbsFields(certDer: Uint8Array): ParsedTbs {
  const [tbs] = der.readChildren(
    der.readOnly(certDer, der.Tag.SEQUENCE).content,
  );
  der.expectTag(tbs, der.Tag.SEQUENCE);
  const fields = der.readChildren(tbs.content);
  const hasVersion = fields[0]?.tag === der.contextTag(0, true);
  const [, , , , validityEl, subject, spki, ...rest] = hasVersion
    ? fields
    : [undefined, ...fields];
  if (!validityEl || !subject || !spki) {
    throw new SyntaxError("certificate: TBSCertificate is too short");
  }
  der.expectTag(validityEl, der.Tag.SEQUENCE);
  der.expectTag(subject, der.Tag.SEQUENCE);
  der.expectTag(spki, der.Tag.SEQUENCE);
  const notAfterEl = der.readChildren(validityEl.content)[1];
  if (!notAfterEl) {
    throw new SyntaxError("certificate: validity has no notAfter");
  }
  const extWrapper = rest.find((el) => el?.tag === der.contextTag(3, true));
  const extensions = extWrapper
    ? der.readChildren(
      der.readOnly(extWrapper.content, der.Tag.SEQUENCE).content,
    )
    : [];
  return {
    subject: subject.encoded,
    notAfter: decodeTime(notAfterEl),
    spki: spki.encoded,
    extensions,
  };
}

function findSubjectKeyId(
  extensions: der.DerElement[],
): Uint8Array | undefined {
  for (const ext of extensions) {
    const [id, ...rest] = der.readChildren(ext.content);
    if (der.decodeOid(id.content) !== OID.SUBJECT_KEY_IDENTIFIER) continue;
    const value = rest[rest.length - 1];
    return der.readOnly(value.content, der.Tag.OCTET_STRING).content;
  }
  return undefined;
}

/** The `subjectPublicKey` BIT STRING contents (for EC: the 65-byte uncompressed point). */
function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const [alg, bits] = der.readChildren(
    der.readOnly(spki, der.Tag.SEQUENCE).content,
  );
  der.expectTag(alg, der.Tag.SEQUENCE);
  if (
    der.decodeOid(der.readChildren(alg.content)[0].content) !==
      OID.EC_PUBLIC_KEY
  ) {
    throw new Error("certificate key is not an EC public key");
  }
  der.expectTag(bits, der.Tag.BIT_STRING);
  if (bits.content[0] !== 0) {
    throw new SyntaxError("subjectPublicKey has unused bits");
  }
  return bits.content.subarray(1);
}

function decodeTime(el: der.DerElement): Date {
  const text = new TextDecoder().decode(el.content);
  const m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  const utc = el.tag === der.Tag.UTC_TIME && m?.[1].length === 2;
  if (
    !m || !(utc || (el.tag === der.Tag.GENERALIZED_TIME && m[1].length === 4))
  ) {
    throw new SyntaxError(`certificate: bad time "${text}"`);
  }
  const yy = Number(m[1]);
  const year = utc ? (yy < 50 ? 2000 + yy : 1900 + yy) : yy;
  const [mo, d, h, mi, s] = m.slice(2).map(Number);
  return new Date(Date.UTC(year, mo - 1, d, h, mi, s));
}

// ---------------------------------------------------------------- hosts

function parseIpv4(s: string): Bytes | undefined {
  const parts = s.split(".");
  if (
    parts.length !== IPV4_OCTETS ||
    !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)
  ) {
    return undefined;
  }
  return new Uint8Array(parts.map(Number));
}

function parseIpv6(s: string): Bytes | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let head = s;
  let v4Groups: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    v4Groups = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    head = s.slice(0, lastColon + 1);
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const groups = halves.map((h) => (h === "" ? [] : h.split(":")));
  if (!groups.flat().every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) {
    return undefined;
  }
  const [left, right = []] = groups.map((g) => g.map((x) => parseInt(x, 16)));
  const tail = [...right, ...v4Groups];
  const missing = IPV6_GROUPS - left.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...left, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(2 * IPV6_GROUPS);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

function checkDnsName(host: string): string {
  const name = host.toLowerCase().replace(/\.$/, "");
  if (name.length === 0 || name.length > MAX_DNS_NAME) {
    throw new RangeError(
      `"${host}" is not a valid DNS name (length must be 1..${MAX_DNS_NAME})`,
    );
  }
  const labels = name.split(".");
  const checked = labels[0] === "*" && labels.length > 2
    ? labels.slice(1)
    : labels;
  const bad = checked.find((l) => !DNS_LABEL_RE.test(l));
  if (bad !== undefined) {
    throw new RangeError(
      `"${host}" is not a valid DNS name or IP address (label "${bad}": letters, digits, inner hyphens, 1..63 chars)`,
    );
  }
  if (/^\d+$/.test(labels[labels.length - 1])) {
    throw new RangeError(
      `"${host}" looks like an IP address but is not a valid one`,
    );
  }
  return name;
}
