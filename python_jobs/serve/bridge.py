"""The scoring process's end of the wire to the HTTP process (frames.py, docs/decisions/0027).

The scoring process owns the state, the log and the order of decisions; the HTTP process
(front.py) owns the connections. Each request frame is answered by the API itself: a hot one
(`POST /v1/transactions`, a JSON body, no query) by the hot path's function, any other by the
API's ASGI app, as uvicorn would call it. So every route, refusal, dead letter and metric has
one implementation, whichever process the client's connection reached.

`own` runs the scoring process: the API's lifespan (warm-up, the deciding threads), then the
HTTP process, each on its cores (placement.py), until a SIGTERM/SIGINT (the HTTP process
drains its requests first, then the lifespan lands what is pending) or until the HTTP
process is gone (an error: exit 1).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from starlette.types import Message

from python_jobs.serve import frames
from python_jobs.serve.app import ServingApi, count_request, decide_hot
from python_jobs.serve.asgi import TRANSACTIONS_PATH
from python_jobs.serve.metrics import Metrics
from python_jobs.serve.placement import Placement, place
from python_jobs.serve.service import ScoringService

log = logging.getLogger("banklake.serve")

INTERNAL_ERROR = b'{"detail":"internal error"}'
DRAIN_SECONDS = 60.0  # the HTTP process's in-flight requests, at a stop
# headers the HTTP process sets itself for the whole body it sends
FRAMING_HEADERS = {b"content-length", b"transfer-encoding"}


class Bridge(asyncio.Protocol):
    """Answers the request frames of one connection, replies written as they are ready
    (those ready in one turn of the loop in one write)."""

    def __init__(self, app: ServingApi, metrics: Metrics, closed: asyncio.Future[None]) -> None:
        self.app = app
        self.metrics = metrics
        self.closed = closed
        self.reader = frames.Reader(frames.REQUEST)
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for (id, kind, received), head, body in self.reader.feed(data):
            task = loop.create_task(self._answer(int(id), int(kind), received, head, body))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    async def _answer(self, id: int, kind: int, received: float, head: bytes, body: bytes) -> None:
        try:
            if kind == frames.HOT:
                deciding = self.app.deciding
                assert deciding is not None
                response = await decide_hot(body, deciding, received)
                if response is not None:
                    count_request(self.metrics, TRANSACTIONS_PATH, response.status_code)
                    json_body = response.media_type == "application/json"
                    headers = None if json_body else response.raw_headers
                    self._reply(id, response.status_code, bytes(response.body), headers)
                    return
                # a body that does not validate: the routes refuse it, as in one process
                request: dict[str, Any] = {
                    "method": "POST",
                    "path": TRANSACTIONS_PATH,
                    "raw_path": TRANSACTIONS_PATH,
                    "query": "",
                    "headers": [["content-type", "application/json"]],
                }
            else:
                request = frames.http_head(head)
            status, headers, content = await self._asgi(request, body)
            self._reply(id, status, content, headers)
        except Exception:  # the request's answer, not the connection's end
            log.exception("request %d failed", id)
            self._reply(id, 500, INTERNAL_ERROR, None)

    async def _asgi(
        self, request: dict[str, Any], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The API's answer to one HTTP request, as uvicorn would have it call the app."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request["method"],
            "scheme": "http",
            "path": request["path"],
            "raw_path": request["raw_path"].encode("latin-1"),
            "query_string": request["query"].encode("latin-1"),
            "root_path": "",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request["headers"]],
            "client": None,
            "server": None,
            "state": {},
        }
        answered = asyncio.Event()
        delivered = False
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await answered.wait()  # the client stays until the answer is sent
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (bytes(k).lower(), bytes(v))
                    for k, v in message.get("headers", [])
                    if bytes(k).lower() not in FRAMING_HEADERS
                ]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        try:
            await self.app(scope, receive, send)
        finally:
            answered.set()
        return status, headers, b"".join(chunks)

    def _reply(
        self, id: int, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None
    ) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._write)
        self._out.append(frames.reply(id, status, body, headers))

    def _write(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))


async def own(
    app: ServingApi,
    service: ScoringService,
    host: str,
    port: int,
    *,
    placement: Placement | None,
) -> int:
    """Runs the scoring process until stopped; starts the HTTP process once warm, and then
    places the processes on their cores (placement.py; the warm-up uses every core)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with app.router.lifespan_context(app):
        ours, theirs = socket.socketpair()
        closed: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.connect_accepted_socket(
            lambda: Bridge(app, service.metrics, closed), ours
        )
        command = [sys.executable, "-m", "python_jobs.serve.front", "--fd", str(theirs.fileno())]
        command += ["--host", host, "--port", str(port)]
        front = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
        theirs.close()
        if placement is not None:
            place(os.getpid(), placement.scoring)
            place(front.pid, placement.others)
            if service.wal.lander is not None:
                service.wal.lander.place(placement.others)
            log.info(
                "scoring on core(s) %s, HTTP and landing on %s",
                sorted(placement.scoring),
                sorted(placement.others),
            )
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, closed], return_when=asyncio.FIRST_COMPLETED)
        status = 0
        if stop.is_set():  # the HTTP process answers what it has, then ends the connection
            front.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(closed), DRAIN_SECONDS)
            except TimeoutError:
                front.kill()
        else:
            status = 1
            log.error("the HTTP process ended (exit %s): stopping", front.poll())
        stopping.cancel()
        transport.close()
        await asyncio.get_running_loop().run_in_executor(None, front.wait)
    return status
