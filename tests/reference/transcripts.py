"""Independent check of the conversation-transcript vectors from PROTOCOL.md §2.2.10 alone.

Usage: /usr/bin/python3 tests/reference/transcripts.py VECTOR_DIR

Reads every good_transcript_*.json / fail_transcript_*.json, parses its `file`
(JSON Lines), recomputes each session's two hash chains (§2.2.6), verifies
every chain signature with Python `cryptography`, applies the protocol rules
(seqs without gaps, nothing after a CLOSE, a CLOSE is signed, labels bound to
the signed resume role) and grades the file (COMPLETE / INCOMPLETE with the
missing items / INVALID with an error code). Prints one JSON object:
{vector name: {"verdict", "error"?, "missing"}}.
"""
import base64
import hashlib
import json
import os
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

TYPES = {"data": 1, "rekey-init": 4, "rekey-resp": 5, "close": 6, "checkpoint": 7}
ROLES = (("initiator", "i2r"), ("responder", "r2i"))


class Invalid(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sha(b):
    return hashlib.sha256(b).digest()


def resume_of(body):
    if len(body) < 2 or body[0] != 0:
        return None
    try:
        o = json.loads(body[1:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return o if isinstance(o, dict) and o.get("kind") == "resume" else None


def payment_of(body):
    try:
        o = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(o, dict) or o.get("kind") not in ("payment-request", "payment-response"):
        return None
    # §2.4: only the exact canonical encoding (that key order, no whitespace,
    # no escapes but \" and \\) is a payment message.
    keys = (["kind", "amount", "currency", "payee", "reference"] if o["kind"] == "payment-request"
            else ["kind", "decision", "reference", "request"])
    if list(o.keys()) != keys:
        return None
    canonical = json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return o if canonical == body else None


def verify_session(s, msgs):
    """Returns per role: list of (seq, type, body, covered)."""
    h = b64(s["sessionHash"])
    spki = {"initiator": b64(s["initiatorSpki"]), "responder": b64(s["responderSpki"])}
    fp = {r: sha(spki[r]) for r in spki}
    out = {}
    for role, d in ROLES:
        peer = "responder" if role == "initiator" else "initiator"
        key = load_der_public_key(spki[role])
        head = sha(b"e2e.v1 chain\0" + h + role.encode())
        rows, last_sig = [], 0
        for i, m in enumerate([m for m in msgs if m["dir"] == d]):
            seq = int(m["seq"])
            if seq != i + 1 or m["type"] not in TYPES:
                raise Invalid("malformed")
            if rows and rows[-1][1] == "close":
                raise Invalid("malformed")  # nothing after a CLOSE
            if m["type"] == "close" and "sig" not in m:
                raise Invalid("malformed")  # a CLOSE is always signed
            body = b64(m["body"])
            head = sha(head + struct.pack(">QBI", seq, TYPES[m["type"]], len(body)) + body)
            rows.append([seq, m["type"], body, False])
            if "sig" not in m:
                continue
            if "head" in m and b64(m["head"]) != head:
                raise Invalid("chain-mismatch")
            sig = b64(m["sig"])
            inp = (b"e2e.v1 chain signature\0" + role.encode() + fp[role] + fp[peer] + h
                   + struct.pack(">Q", seq) + head)
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            try:
                key.verify(der, inp, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                raise Invalid("bad-signature")
            last_sig = seq
        for r in rows:
            r[3] = r[0] <= last_sig
        out[role] = rows
    return out, fp


def grade(text):
    lines = text.split("\n")
    torn = lines[-1] != ""
    lines = lines[:-1]
    recs = [json.loads(l) for l in lines]
    if recs[0].get("format") != "e2e.v1 conversation transcript":
        raise Invalid("malformed")
    sessions = [r for r in recs if r["record"] == "session"]
    missing = ["torn"] if torn else []
    done = []
    for s in sessions:
        msgs = [r for r in recs if r["record"] == "message" and r["session"] == s["session"]]
        rows, fp = verify_session(s, msgs)
        labels = {}
        for role, _ in ROLES:
            first = rows[role][0] if rows[role] else None
            if first and first[1] == "data" and first[3]:
                res = resume_of(first[2])
                if res and isinstance(res.get("role"), str):
                    labels[role] = res["role"]
            claimed = (s.get("labels") or {}).get(role)
            if claimed is not None and role in labels and labels[role] != claimed:
                raise Invalid("relabelled")
            if not rows[role] or rows[role][-1][1] != "close":
                missing.append(f"{s['session']} {role} not closed")
            n = sum(1 for r in rows[role] if not r[3])
            if n:
                missing.append(f"{s['session']} {role} {n} uncovered")
        done.append((s, rows, fp))
    by_hash = {b64(s["sessionHash"]).hex(): (s, rows, fp) for s, rows, fp in done}
    requests, responses = set(), []
    for s, rows, fp in done:
        for role, _ in ROLES:
            peer = "responder" if role == "initiator" else "initiator"
            for seq, typ, body, covered in rows[role]:
                if typ != "data" or not covered:
                    continue
                res = resume_of(body) if seq == 1 else None
                if res and isinstance(res.get("prev"), str):
                    if res["prev"] not in by_hash:
                        missing.append(f"{s['session']} prev not in file")
                    else:
                        _, prows, pfp = by_hash[res["prev"]]
                        prole = [r for r in pfp if pfp[r] == fp[peer]]
                        if prole and len(prows[prole[0]]) < res.get("delivered", 0):
                            missing.append(f"{s['session']} resume names more than the file holds")
                p = payment_of(body)
                # A request is answered only by the identity it was sent to.
                if p and p["kind"] == "payment-request":
                    requests.add((sha(body).hex(), fp[role], fp[peer]))
                elif p and p["kind"] == "payment-response":
                    responses.append((p.get("request"), fp[peer], fp[role]))
    missing += ["dangling payment" for r in responses if r not in requests]
    return {"verdict": "INCOMPLETE" if missing else "COMPLETE", "missing": missing}


def main():
    d = sys.argv[1]
    out = {}
    for name in sorted(os.listdir(d)):
        if not (name.startswith("good_transcript_") or name.startswith("fail_transcript_")):
            continue
        with open(os.path.join(d, name)) as f:
            v = json.load(f)
        try:
            out[name] = grade(v["file"])
        except Invalid as e:
            out[name] = {"verdict": "INVALID", "error": e.code, "missing": []}
    print(json.dumps(out))


main()
