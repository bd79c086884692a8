"""The original design's relay, rebuilt as a benchmark baseline (bench/original/README.md).

A stateless TLS WebSocket relay after the original system's `stateless_server.py`: each
connection gets a random session ID (sent as {"type": "session", "id": ...}); a text message
{"to": ID, "data": ...} is forwarded to that session as {"from": ID, "data": ...}. Nothing is
stored. Run with Debian's python3-websockets:

    /usr/bin/python3 bench/original/relay.py --cert CERT --key KEY [--host 127.0.0.1] [--port 0]

Prints {"type": "listening", "port": N} on stdout once it accepts connections.
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

import websockets

clients = {}


async def handler(ws, path=None):
    sid = os.urandom(16).hex()
    clients[sid] = ws
    try:
        await ws.send(json.dumps({"type": "session", "id": sid}))
        async for raw in ws:
            try:
                msg = json.loads(raw)
                target = clients.get(msg["to"])
                data = msg["data"]
            except (ValueError, KeyError, TypeError):
                continue
            if target is not None:
                try:
                    await target.send(json.dumps({"from": sid, "data": data}))
                except websockets.ConnectionClosed:
                    pass
    except websockets.ConnectionClosed:
        pass
    finally:
        clients.pop(sid, None)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    stop = asyncio.get_running_loop().create_future()
    for s in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(s, stop.set_result, None)
    async with websockets.serve(handler, a.host, a.port, ssl=ctx,
                                max_size=2 ** 20) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(json.dumps({"type": "listening", "port": port}) + "\n")
        sys.stdout.flush()
        await stop


if __name__ == "__main__":
    asyncio.run(main())
