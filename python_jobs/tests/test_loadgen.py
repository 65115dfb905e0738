"""The benchmark's load generator (python_jobs/serve/loadgen.py) against a small HTTP server
on 127.0.0.1 that behaves as uvicorn does with idle keep-alive connections."""

from __future__ import annotations

import asyncio
import json

from python_jobs.serve.loadgen import CONNECTION_ERROR, _Connections, _exchange, encode_post


class KeepAliveServer:
    """Answers every POST with 200 and a latency_ms, after `delay` seconds, and keeps the
    connection open until `close_idle` closes all of them (uvicorn's keep-alive timeout)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.writers: list[asyncio.StreamWriter] = []
        self.answered = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                await asyncio.sleep(self.delay)
                body = json.dumps({"latency_ms": 1.5}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def close_idle(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()


def test_a_request_on_stale_keep_alive_connections_is_resent_on_a_new_one() -> None:
    """Two connections kept alive, both closed by the server while idle: the next request
    fails on the first stale one and must be resent on a new connection, not on the second
    stale one (which recorded a status 0 the service never saw)."""

    async def scenario() -> list[tuple[int, float | None]]:
        server = KeepAliveServer(delay=0.05)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/v1/transactions"
        connections = _Connections("127.0.0.1", port)
        request = encode_post(url, {"transaction_id": "T1"})
        results = list(
            await asyncio.gather(_exchange(connections, request), _exchange(connections, request))
        )
        assert connections.opened == 2 and len(connections.idle) == 2
        server.close_idle()
        await asyncio.sleep(0.1)  # the FINs arrive; the client has not read them yet
        results.append(await _exchange(connections, request))
        assert server.answered == 3
        for _, writer in connections.idle:
            writer.close()
        listening.close()
        await listening.wait_closed()
        return results

    results = asyncio.run(scenario())
    assert results == [(200, 1.5)] * 3
    assert CONNECTION_ERROR not in [status for status, _ in results]
