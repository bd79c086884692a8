"""Independent safety-number computation from PROTOCOL.md §2.3 (version 1).

Reads JSON objects with hex "spkiA" and "spkiB" (one per line) on stdin and
prints, per line, a JSON object with the 60-digit safety number in 12 groups
of 5 and each key's PBKDF2 output. Standard library only (hashlib), so it
shares no code with the Deno implementation.
"""
import hashlib
import json
import sys

VERSION = 1
LABEL = b"e2e.v1 safety number\x00"
ITERATIONS = 1024
OUTPUT_BYTES = 30


def half(spki: bytes) -> tuple[bytes, str]:
    salt = VERSION.to_bytes(2, "big") + LABEL
    h = hashlib.pbkdf2_hmac("sha512", spki, salt, ITERATIONS, OUTPUT_BYTES)
    digits = "".join(
        "%05d" % (int.from_bytes(h[i:i + 5], "big") % 100000)
        for i in range(0, 30, 5))
    return h, digits


for line in sys.stdin:
    if not line.strip():
        continue
    v = json.loads(line)
    ha, da = half(bytes.fromhex(v["spkiA"]))
    hb, db = half(bytes.fromhex(v["spkiB"]))
    digits = "".join(sorted([da, db]))
    print(json.dumps({
        "pbkdf2A": ha.hex(), "pbkdf2B": hb.hex(),
        "safetyNumber": " ".join(digits[i:i + 5] for i in range(0, 60, 5)),
    }))
