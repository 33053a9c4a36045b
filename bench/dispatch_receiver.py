"""The tenant's ``bot.dispatch`` receiver for the dispatch benchmark, in its own process.

``python -m bench.dispatch_receiver --handshake FILE [--max-seconds S]``

A bare ASGI app under uvicorn on 127.0.0.1 (a free port, written with the pid to the
handshake FILE atomically before serving). For every ``POST /hook`` it takes the receive
time (``time.time()``) first, then reads the body, checks the Standard Webhooks signature
with ``showup.webhooks.signing.verify`` (one HMAC-SHA256: cheap enough to do for all), and
records ``(bot_id, idempotency_key, webhook-id, receive time, signature ok)``. It answers
200 with ``{"vendor_bot_id": …}`` like a tenant that took the job, or 401 on a bad
signature, as a real receiver would.

Control, also on loopback: ``POST /control/secret`` (the endpoint's secret, known only
once the endpoint exists), ``GET /control/results`` (everything recorded, as JSON).
It stops on SIGTERM/SIGINT, when its parent dies, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from showup.webhooks.signing import SignatureError, verify

Scope = dict[str, Any]


class Recorder:
    def __init__(self) -> None:
        self.secret: str | None = None
        # (bot_id, idempotency_key, webhook-id, received at, signature ok)
        self.hits: list[tuple[str, str, str, float, bool]] = []
        self.bad_requests = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        at = time.time()
        body = await _body(receive)
        path = scope["path"]
        if path == "/hook" and scope["method"] == "POST":
            status, reply = self.hook(scope, body, at)
        elif path == "/control/secret" and scope["method"] == "POST":
            self.secret = body.decode()
            status, reply = 204, b""
        elif path == "/control/results" and scope["method"] == "GET":
            status = 200
            reply = json.dumps(
                {"hits": self.hits, "bad_requests": self.bad_requests, "cpu_s": time.process_time()}
            ).encode()
        else:
            status, reply = 404, b""
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    def hook(self, scope: Scope, body: bytes, at: float) -> tuple[int, bytes]:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            data = json.loads(body)["data"]
            bot_id, key = str(data["bot_id"]), str(data["idempotency_key"])
        except (ValueError, KeyError, TypeError):
            self.bad_requests += 1
            return 400, b""
        ok = False
        if self.secret is not None:
            try:
                verify(self.secret, headers, body, now=int(at))
                ok = True
            except SignatureError:
                ok = False
        self.hits.append((bot_id, key, headers.get("webhook-id", ""), at, ok))
        if not ok:
            return 401, b""
        return 200, json.dumps({"vendor_bot_id": f"vb_{bot_id}"}).encode()


async def _body(receive: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _watch(server: uvicorn.Server, parent: int, deadline: float) -> None:
    while not server.should_exit:
        if (parent and os.getppid() != parent) or time.monotonic() > deadline:
            print("[receiver] parent gone or time limit reached; stopping", file=sys.stderr)
            server.should_exit = True
            return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dispatch_receiver")
    p.add_argument("--handshake", type=Path, required=True)
    p.add_argument("--max-seconds", type=float, default=3600)
    p.add_argument("--parent-pid", type=int, default=None, help="stop when it is gone (0: never)")
    args = p.parse_args(argv)
    parent = os.getppid() if args.parent_pid is None else args.parent_pid
    deadline = time.monotonic() + args.max_seconds

    # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the listener says
    # it is TCP; without it a keep-alive answer can wait ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    config = uvicorn.Config(Recorder(), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=_watch, args=(server, parent, deadline), daemon=True).start()

    tmp = args.handshake.with_suffix(".tmp")
    tmp.write_text(json.dumps({"base_url": f"http://127.0.0.1:{port}", "pid": os.getpid()}))
    tmp.replace(args.handshake)
    server.run(sockets=[sock])
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
