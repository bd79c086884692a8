"""The original design's client (bank or customer), rebuilt as a benchmark baseline.

After the original system's client_bank.py / client_customer.py (bench/original/README.md):
a long-term ECDSA P-256 identity, an ephemeral ECDH P-256 exchange with HKDF-SHA256 to one
AES-256-GCM key, then per message: a random 12-byte nonce, AES-256-GCM, an ECDSA P-256
signature over nonce ‖ ciphertext, all base64 in a JSON text message; the receiver verifies
the signature, refuses a nonce it has seen, decrypts and prints the message. As in the
original, the handshake messages are not signed (its TODO list says so).

Benchmark mode, driven by bench/original.ts:

    /usr/bin/python3 bench/original/client.py --role bank|customer --url wss://localhost:PORT
        --ca CA.pem [--peer ID] --send N --receive N --size BYTES [--cap SECONDS] [--hold]

stdout, one JSON object per line: {"type":"ready","id":ID}, {"type":"secure"}, one
{"type":"message","text":...} per message received (as the original prints each message),
and last {"type":"done", ...} with the receiver's counts and monotonic timestamps.
"""
import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import time

import websockets
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

WARMUP_FRACTION = 0.05


def b64(b):
    return base64.b64encode(b).decode("ascii")


def unb64(s):
    return base64.b64decode(s)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")


def pem_public(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


class Peer:
    def __init__(self, args):
        self.a = args
        self.identity = ec.generate_private_key(ec.SECP256R1())
        self.ephemeral = ec.generate_private_key(ec.SECP256R1())
        self.peer_id = args.peer
        self.peer_identity = None
        self.aes = None
        self.seen = set()
        self.secure = asyncio.Event()
        self.hello_sent = False
        self.received = 0
        self.warm_at = None
        self.first_at = None
        self.last_at = None
        self.latencies = []
        self.all_received = asyncio.Event()
        if args.receive == 0:
            self.all_received.set()

    def hello(self):
        return {"type": "hello", "identity": pem_public(self.identity),
                "ephemeral": pem_public(self.ephemeral)}

    async def send(self, ws, data):
        await ws.send(json.dumps({"to": self.peer_id, "data": data}))

    def on_hello(self, data):
        self.peer_identity = serialization.load_pem_public_key(
            data["identity"].encode("ascii"))
        peer_eph = serialization.load_pem_public_key(
            data["ephemeral"].encode("ascii"))
        shared = self.ephemeral.exchange(ec.ECDH(), peer_eph)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"session key").derive(shared)
        self.aes = AESGCM(key)

    def seal(self, text):
        nonce = os.urandom(12)
        ct = self.aes.encrypt(nonce, text.encode("utf-8"), None)
        sig = self.identity.sign(nonce + ct, ec.ECDSA(hashes.SHA256()))
        return {"type": "message", "nonce": b64(nonce), "ciphertext": b64(ct),
                "signature": b64(sig)}

    def on_message(self, data):
        nonce = unb64(data["nonce"])
        ct = unb64(data["ciphertext"])
        try:
            self.peer_identity.verify(unb64(data["signature"]), nonce + ct,
                                      ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            emit({"type": "error", "code": "bad-signature"})
            return
        if nonce in self.seen:
            emit({"type": "error", "code": "replay"})
            return
        self.seen.add(nonce)
        text = self.aes.decrypt(nonce, ct, None).decode("utf-8")
        emit({"type": "message", "text": text})
        now = time.monotonic()
        head = text.split(" ", 2)
        self.latencies.append(now - float(head[1]))
        self.received += 1
        if self.first_at is None:
            self.first_at = now
        if self.received == max(1, int(self.a.receive * WARMUP_FRACTION)):
            self.warm_at = now
        self.last_at = now
        if self.received >= self.a.receive:
            self.all_received.set()

    async def read(self, ws):
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "session":
                emit({"type": "ready", "id": msg["id"]})
                sys.stdout.flush()
                if self.peer_id is not None:
                    await self.send(ws, self.hello())
                    self.hello_sent = True
                continue
            data = msg["data"]
            if data["type"] == "hello":
                self.peer_id = msg["from"]
                self.on_hello(data)
                if not self.hello_sent:
                    await self.send(ws, self.hello())
                    self.hello_sent = True
                emit({"type": "secure"})
                sys.stdout.flush()
                self.secure.set()
            elif data["type"] == "message" and self.aes is not None:
                self.on_message(data)

    async def stream(self, ws):
        await self.secure.wait()
        size = self.a.size
        for i in range(self.a.send):
            head = "%d %.6f " % (i, time.monotonic())
            await self.send(ws, self.seal(head + "x" * (size - len(head))))


async def run(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    peer = Peer(a)
    try:
        async with websockets.connect(a.url, ssl=ctx, max_size=2 ** 20,
                                      close_timeout=2) as ws:
            reader = asyncio.ensure_future(peer.read(ws))
            try:
                await asyncio.wait_for(peer.stream(ws), a.cap)
                await asyncio.wait_for(peer.all_received.wait(), a.cap)
            except asyncio.TimeoutError:
                pass
            reader.cancel()
    except websockets.ConnectionClosed:
        pass  # the counts so far still stand; reported as incomplete
    lat = sorted(peer.latencies[int(len(peer.latencies) * WARMUP_FRACTION):])

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0

    warm = max(1, int(a.receive * WARMUP_FRACTION)) if a.receive else 0
    emit({"type": "done", "received": peer.received, "warm": warm,
          "warmAt": peer.warm_at, "lastAt": peer.last_at,
          "p50Ms": pct(0.5), "p99Ms": pct(0.99), "maxMs": pct(1)})
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--role", choices=["bank", "customer"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--peer")
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--receive", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--cap", type=float, default=30)
    p.add_argument("--hold", action="store_true",
                   help="after the done line, wait for stdin EOF (so the caller can read our CPU time)")
    a = p.parse_args()
    asyncio.run(run(a))
    if a.hold:
        sys.stdin.read()


if __name__ == "__main__":
    main()
