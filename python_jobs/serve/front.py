"""`banklake serve`'s HTTP process: uvicorn on the public port, every request relayed to the
scoring process over the socket it inherited (frames.py, docs/decisions/0027).

Why a process of its own: the scoring process's Python runs under one interpreter lock, and
the HTTP protocol's work per request (parsing, connections, timers, writes) cost it about a
third of that lock. Here it runs on the machine's other core. This process holds no state:
it never answers a request itself, so it can never answer differently from the scoring
process. When the scoring process is gone (its end of the socket closes: a crash, a kill -9)
this process exits at once, and its clients see the connection fail, as they would see the
one process of before fail: nothing is acknowledged that was not durable.

    python -m python_jobs.serve.front --fd N --host HOST --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import time

import uvicorn
from starlette.types import Receive, Scope, Send

from python_jobs.serve import frames
from python_jobs.serve.asgi import MAX_BODY_BYTES, declared_length, is_hot, read_body

OWNER_GONE_EXIT = 70  # EX_SOFTWARE: the scoring process ended first


class Link(asyncio.Protocol):
    """The connection to the scoring process: replies resolve the waiting requests."""

    def __init__(self, pending: dict[int, asyncio.Future[tuple[int, bytes, bytes]]]) -> None:
        self.pending = pending
        self.reader = frames.Reader(frames.REPLY)
        self.stopping = False  # this process is ending: the connection's end is its own

    def data_received(self, data: bytes) -> None:
        for (id, status), head, body in self.reader.feed(data):
            future = self.pending.pop(int(id), None)
            if future is not None and not future.done():
                future.set_result((int(status), head, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stopping:  # the scoring process ended: nothing more can be answered
            os._exit(OWNER_GONE_EXIT)


class Front:
    """The ASGI app of the HTTP process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[tuple[int, bytes, bytes]]] = {}
        self.transport: asyncio.Transport | None = None
        self.link: Link | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets
        received = time.monotonic()
        length = declared_length(scope)
        oversized = length is not None and length > MAX_BODY_BYTES
        if oversized:
            body = b""  # not read: the API refuses it (413) from the declared length
        else:
            body_or_none = await read_body(receive)
            if body_or_none is None:  # the client went away: nothing to relay
                return
            body = body_or_none
        id = next(self.ids) & frames.ID_MASK
        if is_hot(scope) and not oversized and len(body) <= MAX_BODY_BYTES:
            frame = frames.request(id, frames.HOT, received, body)
        else:
            head = {
                "method": scope["method"],
                "path": scope["path"],
                "raw_path": (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
                "query": scope["query_string"].decode("latin-1"),
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
                ],
            }
            frame = frames.request(id, frames.HTTP, received, body, head)
        future: asyncio.Future[tuple[int, bytes, bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending[id] = future
        assert self.transport is not None
        self.transport.write(frame)
        status, head_bytes, content = await future
        framing = (b"content-length", str(len(content)).encode())
        headers = [*frames.reply_headers(head_bytes), framing]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._connect()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":  # after the requests in flight
                if self.link is not None:
                    self.link.stopping = True
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _connect(self) -> None:
        link = self.link = Link(self.pending)
        self.transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
            lambda: link, socket.socket(fileno=self.fd)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        Front(args.fd),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
