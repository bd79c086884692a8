"""Independent check of the handshake vectors from PROTOCOL.md §2.1 alone.

Usage: /usr/bin/python3 tests/reference/handshake.py VECTOR_DIR

For good_handshake.json and good_handshake_x25519.json: rebuilds HS1 and the
HS2 prefix, computes the shared secret, transcript hashes and every key with
Python `cryptography` (Debian python3-cryptography), opens the recorded HS2 and
HS3, checks their padding, verifies both signatures and MACs, and derives the
session hash and master. Ed25519 being deterministic, it re-signs and re-seals
the X25519 run and compares bytes. For each fail_handshake_*.json whose first
step is an HS1 to a responder, it runs the HS1 checks of §2.1 Processing and
reports the error code. Prints one JSON object; exits 1 on any mismatch.
"""
import hashlib
import hmac
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SUITES = {1: ("P256-ECDSA-AES256GCM-SHA256", 65), 2: ("X25519-Ed25519-AES256GCM-SHA256", 32)}
ZERO_NONCE = bytes(12)
MAX_OFFERS = 4


def padded(n):
    bucket = 256
    while bucket < n + 22:
        bucket *= 2
    return bucket - 22


def derive_label(secret, salt, label, length=32):
    full = b"e2e.v1 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([0])
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def hs1_of(random, offers):
    content = b"\x01\x01" + random + bytes([len(offers)])
    for suite, key in offers:
        content += suite.to_bytes(2, "big") + bytes([len(key)]) + key
    return content + bytes(padded(len(content)) - len(content))


def dh(suite, own_pkcs8, peer_public):
    own = serialization.load_der_private_key(own_pkcs8, None)
    if suite == 2:
        return own.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
    return own.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public))


def open_proof(key, sealed, aad):
    plain = AESGCM(key).decrypt(ZERO_NONCE, sealed, aad)
    n = int.from_bytes(plain[:2], "big")
    end = 2 + n + 64 + 32
    assert end <= len(plain) and not any(plain[end:]), "proof padding"
    assert len(aad) + len(sealed) == padded(len(aad) + end + 16), "minimal bucket"
    return plain[2:2 + n], plain[2 + n:2 + n + 64], plain[2 + n + 64:end], plain


def verify_sig(spki, sig, data):
    pub = serialization.load_der_public_key(spki)
    if isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, data)
    else:
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        pub.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))


def check_good(v):
    hx = bytes.fromhex
    suite = v["suite"]
    name, plen = SUITES[suite]
    I, R, O = v["initiator"], v["responder"], v.get("initiatorOther")
    iid, rid = hx(v["initiatorId"]), hx(v["responderId"])
    offers = [(suite, hx(I["ephemeralPublic"]))]
    if O:
        offers.append((1, hx(O["ephemeralPublic"])))
    hs1 = hs1_of(hx(I["random"]), offers)
    prefix = b"\x01\x02" + suite.to_bytes(2, "big") + hx(R["ephemeralPublic"]) + hx(R["random"])
    prologue = b"e2e.v1 handshake\x00" + name.encode() + b"\x00" + iid + rid
    T = lambda *parts: hashlib.sha256(prologue + b"".join(parts)).digest()
    ss = dh(suite, hx(I["ephemeralPkcs8"]), hx(R["ephemeralPublic"]))
    assert ss == dh(suite, hx(R["ephemeralPkcs8"]), hx(I["ephemeralPublic"]))
    th_hello = T(hs1, prefix)
    k_r, k_i = derive_label(ss, th_hello, "hs r key"), derive_label(ss, th_hello, "hs i key")
    f_r, f_i = derive_label(ss, th_hello, "hs r finished"), derive_label(ss, th_hello, "hs i finished")
    hs2, hs3 = hx(v["recorded"]["hs2"]), hx(v["recorded"]["hs3"])
    assert hs2[:len(prefix)] == prefix
    spki_r, sig_r, mac_r, plain_r = open_proof(k_r, hs2[len(prefix):], prefix)
    assert spki_r == hx(R["identitySpki"])
    th_r = T(hs1, prefix, spki_r)
    verify_sig(spki_r, sig_r, b"e2e.v1 responder signature\x00" + th_r)
    assert hmac.compare_digest(mac_r, hmac.new(f_r, T(hs1, prefix, spki_r, sig_r), "sha256").digest())
    spki_i, sig_i, mac_i, plain_i = open_proof(k_i, hs3[2:], hs3[:2])
    assert hs3[:2] == b"\x01\x03" and spki_i == hx(I["identitySpki"])
    th_i = T(hs1, hs2, spki_i)
    verify_sig(spki_i, sig_i, b"e2e.v1 initiator signature\x00" + th_i)
    assert hmac.compare_digest(mac_i, hmac.new(f_i, T(hs1, hs2, spki_i, sig_i), "sha256").digest())
    session_hash = T(hs1, hs2, hs3)
    master = derive_label(ss, session_hash, "master")
    out = {
        "hs1": hs1.hex(), "hs2Prefix": prefix.hex(), "prologue": prologue.hex(),
        "sharedSecret": ss.hex(), "thHello": th_hello.hex(), "kHsR": k_r.hex(),
        "kHsI": k_i.hex(), "finR": f_r.hex(), "finI": f_i.hex(), "thR": th_r.hex(),
        "thI": th_i.hex(), "sessionHash": session_hash.hex(), "master": master.hex(),
        "signaturesVerified": True,
    }
    if suite == 2:
        # Ed25519 (RFC 8032) is deterministic: re-sign and re-seal.
        sk_r = serialization.load_der_private_key(hx(R["identityPkcs8"]), None)
        assert sk_r.sign(b"e2e.v1 responder signature\x00" + th_r) == sig_r
        assert prefix + AESGCM(k_r).encrypt(ZERO_NONCE, plain_r, prefix) == hs2
        sk_i = serialization.load_der_private_key(hx(I["identityPkcs8"]), None)
        assert sk_i.sign(b"e2e.v1 initiator signature\x00" + th_i) == sig_i
        assert hs3[:2] + AESGCM(k_i).encrypt(ZERO_NONCE, plain_i, hs3[:2]) == hs3
        out["reproduced"] = True
    return out


def hs1_error(hs1, accepted):
    """The responder's HS1 checks (PROTOCOL.md §2.1 Processing), in order."""
    if len(hs1) < 2:
        return "malformed"
    if hs1[0] != 1:
        return "unsupported-version"
    if hs1[1] not in (1, 2, 3, 4):
        return "malformed"
    if hs1[1] != 1:
        return "unexpected-message"
    if len(hs1) < 35:
        return "malformed"
    n = hs1[34]
    if not 1 <= n <= MAX_OFFERS:
        return "malformed"
    at, offers = 35, []
    for _ in range(n):
        if at + 3 > len(hs1):
            return "malformed"
        suite, ln = int.from_bytes(hs1[at:at + 2], "big"), hs1[at + 2]
        at += 3
        if at + ln > len(hs1) or any(s == suite for s, _ in offers):
            return "malformed"
        if suite in SUITES and ln != SUITES[suite][1]:
            return "malformed"
        offers.append((suite, hs1[at:at + ln]))
        at += ln
    if len(hs1) != padded(at) or any(hs1[at:]):
        return "malformed"
    chosen = next(((s, k) for s, k in offers if s in accepted), None)
    if chosen is None:
        return "unsupported-suite"
    suite, key = chosen
    try:
        if suite == 2:
            x25519.X25519PrivateKey.generate().exchange(x25519.X25519PublicKey.from_public_bytes(key))
        else:
            if key[0] != 4:
                return "invalid-public-key"
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except ValueError:
        return "invalid-public-key"
    return "ok"


def main():
    d = sys.argv[1]
    result = {"good": {}, "fail": {}}
    goods = {}
    for name in ("good_handshake.json", "good_handshake_x25519.json"):
        goods[name] = json.load(open(os.path.join(d, name)))
        result["good"][name] = check_good(goods[name])
    for name in sorted(os.listdir(d)):
        if not (name.startswith("fail_handshake_") and name.endswith(".json")):
            continue
        v = json.load(open(os.path.join(d, name)))
        first = v["steps"][0]
        if v["role"] != "responder" or (first.get("from") or goods[v["base"]]["initiatorId"]) != goods[v["base"]]["initiatorId"]:
            continue
        g = goods[v["base"]]
        accepted = g.get("responderSuites", [g["suite"]])
        result["fail"][name] = hs1_error(bytes.fromhex(first["message"]), accepted)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
