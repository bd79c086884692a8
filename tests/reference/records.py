"""Independent check of the record-layer vectors from PROTOCOL.md §2.2.1-2.2.4 alone.

Usage: /usr/bin/python3 tests/reference/records.py VECTOR_DIR

Derives the epoch-0 traffic keys of good_record_keys.json from its master and
sessionHash (HKDF-SHA256 with the e2e.v1 label layout), then opens every
record of good_record_{data,ack,data_coalesced,data_large,body_lengths}.json and every
fail_record_*.json with Python `cryptography` and decodes it by the rules of
§2.2.3 (the 99 buckets, padding, types, flags, seqs, body length per type,
coalescing). Prints one JSON object: the derived keys, the messages of each
good record, and the record-level verdict of each fail vector ("ok",
"malformed", "unsupported-version", "decrypt-failed"). Exits 1 when a good
record does not decode.
"""
import json
import os
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

OVERHEAD = 22 + 14 + 16  # relay DATA header + RECORD header + tag (§2.2.3)
MAX_BODY = 65536 - OVERHEAD - 14 - 64
RELIABLE = {1, 4, 5, 6, 7}
# §2.2.3 table: required body length per inner type (DATA: 0..MAX_BODY).
BODY_LENGTH = {2: 0, 3: 8 + 128 + 8, 4: 65 + 64, 5: 65 + 64, 6: 0, 7: 0}


class Bad(Exception):
    def __init__(self, code, why):
        super().__init__(f"{code}: {why}")
        self.code = code


def derive_label(secret, salt, label, context, length):
    full = b"e2e.v1 " + label.encode()
    info = struct.pack(">HB", length, len(full)) + full + bytes([len(context)]) + context
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def traffic_keys(master, session_hash, direction, epoch):
    ctx = struct.pack(">I", epoch)
    return (
        derive_label(master, session_hash, f"{direction} key", ctx, 32),
        derive_label(master, session_hash, f"{direction} iv", ctx, 12),
    )


# §2.2.3: 256, 512, 1024, then 16 equal steps in each octave (2^(k-1), 2^k] up to 65536.
BUCKETS = [256, 512, 1024] + [2 ** k + (j + 1) * 2 ** (k - 4) for k in range(10, 16) for j in range(16)]


def smallest_bucket(n):
    return next(b for b in BUCKETS if b >= n + OVERHEAD)


def decode_inner(pt):
    bucket = len(pt) + OVERHEAD
    if bucket not in BUCKETS:
        raise Bad("malformed", "length is not bucket - 52")
    msgs, at = [], 0
    while at < len(pt) and pt[at] != 0:
        if len(msgs) == 64:
            raise Bad("malformed", "more than 64 messages")
        if at + 14 > len(pt):
            raise Bad("malformed", "header past the end")
        typ, flags = pt[at], pt[at + 1]
        seq, body_len = struct.unpack(">QI", pt[at + 2:at + 14])
        if not 1 <= typ <= 7:
            raise Bad("malformed", f"type {typ}")
        if flags & ~1:
            raise Bad("malformed", f"flags {flags}")
        if (typ in RELIABLE) != (seq != 0):
            raise Bad("malformed", "seq rule")
        if typ not in RELIABLE and flags:
            raise Bad("malformed", "signature on DUMMY/ACK")
        if body_len > MAX_BODY:
            raise Bad("malformed", "body above MAX_BODY")
        if typ in BODY_LENGTH and body_len != BODY_LENGTH[typ]:
            raise Bad("malformed", f"type {typ} with a {body_len}-byte body")
        end = at + 14 + body_len + 64 * flags
        if end > len(pt):
            raise Bad("malformed", "body past the end")
        if msgs:
            prev = msgs[-1]
            if prev["type"] != 1 or typ != 1:
                raise Bad("malformed", "only DATA shares a record")
            if seq != int(prev["seq"]) + 1:
                raise Bad("malformed", "seqs not consecutive")
        msgs.append({"type": typ, "seq": str(seq), "bodyLength": body_len, "signed": flags == 1})
        at = end
    if not msgs:
        raise Bad("malformed", "no message")
    if any(pt[at:]):
        raise Bad("malformed", "non-zero padding")
    if smallest_bucket(at) != bucket:
        raise Bad("malformed", "not the smallest bucket")
    return msgs


def open_record(packet, key, iv, sender, recipient):
    if len(packet) < 14 + 16 or len(packet) > 65536 - 22:
        raise Bad("malformed", "record length")
    if packet[0] != 1:
        raise Bad("unsupported-version", f"version {packet[0]}")
    if packet[1] != 4:
        raise Bad("malformed", "not a RECORD")
    (counter,) = struct.unpack(">Q", packet[6:14])
    nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + struct.pack(">Q", counter)))
    aad = packet[:14] + sender + recipient
    try:
        pt = AESGCM(key).decrypt(nonce, packet[14:], aad)
    except InvalidTag:
        raise Bad("decrypt-failed", "tag")
    return decode_inner(pt)


def main(vdir):
    load = lambda n: json.load(open(os.path.join(vdir, n)))
    K, D = load("good_record_keys.json"), load("good_record_data.json")
    master, sh = bytes.fromhex(K["master"]), bytes.fromhex(K["sessionHash"])
    ids = {"i2r": (bytes.fromhex(D["initiatorId"]), bytes.fromhex(D["responderId"]))}
    ids["r2i"] = ids["i2r"][::-1]
    keys = {d: traffic_keys(master, sh, d, 0) for d in ("i2r", "r2i")}
    out = {"keys": {d: {"key": k.hex(), "iv": v.hex()} for d, (k, v) in keys.items()},
           "good": {}, "fail": {}}
    good = [(f"good_record_data.json#{r['name']}", r) for r in D["records"]]
    good.append(("good_record_ack.json#ack", load("good_record_ack.json")["record"]))
    good.append(("good_record_data_coalesced.json", load("good_record_data_coalesced.json")["record"]))
    good += [(f"good_record_data_large.json#{r['name']}", r) for r in load("good_record_data_large.json")["records"]]
    for r in load("good_record_body_lengths.json")["records"]:
        good.append((f"good_record_body_lengths.json#{r['name']}", dict(r, direction="i2r")))
    for name, r in good:
        d = r["direction"]
        out["good"][name] = open_record(bytes.fromhex(r["packet"]), *keys[d], *ids[d])
    for n in sorted(os.listdir(vdir)):
        if not (n.startswith("fail_record_") and n.endswith(".json")):
            continue
        v = load(n)
        try:
            open_record(bytes.fromhex(v["packet"]), *keys["i2r"], *ids["i2r"])
            out["fail"][n] = "ok"
        except Bad as e:
            out["fail"][n] = e.code
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
