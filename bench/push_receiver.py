"""The tenant's webhook receiver for the push-latency benchmark, in its own process.

``python -m bench.push_receiver --handshake FILE [--max-seconds S]``

A bare ASGI app under uvicorn on 127.0.0.1 (a free port, written with the pid to the
handshake FILE atomically before serving). For every ``POST /hook`` it takes the receive
time (``time.time()``) first, then reads the body, checks the Standard Webhooks signature
(``showup.webhooks.signing.verify``) and records ``[type, key, webhook-id, received at,
signature ok, join_at]``: ``key`` is the bot id for ``bot.*`` and the calendar id for
``calendar.*`` types; ``join_at`` only for ``bot.*``. It answers 204, or 401 on a bad
signature, as a real receiver would.

Control, also on loopback: ``POST /control/secret`` (the endpoint's secret, known only
once the endpoint exists), ``GET /control/results?since=N`` (hits from the N-th on, and
the total). It stops on SIGTERM/SIGINT, when its parent dies, or after ``--max-seconds``.
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
from urllib.parse import parse_qs

import uvicorn

from showup.webhooks.signing import SignatureError, verify

Scope = dict[str, Any]


class Recorder:
    def __init__(self) -> None:
        self.secret: str | None = None
        self.hits: list[list[Any]] = []
        self.bad_requests = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        at = time.time()
        body = await _body(receive)
        path, method = scope["path"], scope["method"]
        if path == "/hook" and method == "POST":
            status, reply = self.hook(scope, body, at), b""
        elif path == "/control/secret" and method == "POST":
            self.secret = body.decode()
            status, reply = 204, b""
        elif path == "/control/results" and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode())
            since = int(query.get("since", ["0"])[0])
            status = 200
            reply = json.dumps(
                {
                    "hits": self.hits[since:],
                    "total": len(self.hits),
                    "bad_requests": self.bad_requests,
                }
            ).encode()
        else:
            status, reply = 404, b""
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    def hook(self, scope: Scope, body: bytes, at: float) -> int:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            message = json.loads(body)
            kind, data = str(message["type"]), message["data"]
            if kind.startswith("bot."):
                key, join_at = str(data["id"]), data.get("join_at")
            else:
                key, join_at = str(data.get("calendar_id")), None
        except (ValueError, KeyError, TypeError):
            self.bad_requests += 1
            return 400
        ok = False
        if self.secret is not None:
            try:
                verify(self.secret, headers, body, now=int(at))
                ok = True
            except SignatureError:
                ok = False
        self.hits.append([kind, key, headers.get("webhook-id", ""), at, ok, join_at])
        return 204 if ok else 401


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
            print("[push-receiver] parent gone or time limit reached; stopping", file=sys.stderr)
            server.should_exit = True
            return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.push_receiver")
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
    config = uvicorn.Config(
        Recorder(), log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=120
    )
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
