"""Offered load against `banklake serve`: a fixed rate, open loop, from processes of its own.

Each worker process sends its share of the requests at their scheduled times, whether or not
earlier answers have come back (open loop: a slow service cannot slow the offered rate
down). A request due while every open connection waits for an answer opens another
connection (up to MAX_CONNECTIONS a worker), so a late answer delays only itself. Latency
counts from the scheduled time, so waiting for a connection or behind a late answer is
counted too (no coordinated omission). Loopback only, bounded by the payloads given
(rate x seconds).

The client is plain HTTP/1.1 over asyncio streams on uvloop (uvicorn's own loop), each
request's bytes encoded before the clock starts: a general client costs the machine more
per request than the service does (a thread pool of httpx clients saturated this 2-core
machine below 1,000 requests a second against an endpoint that does nothing), and the
load generator shares the cores with the service it measures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
import uvloop

from python_jobs.serve.stream import check_loopback

TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 256  # per worker process
CONNECTION_ERROR = 0  # the status recorded when no answer came


@dataclass
class LoadResult:
    rate: float  # offered, requests a second
    sent: int
    seconds: float  # from the first scheduled send to the last answer
    latencies_ms: np.ndarray  # from each request's scheduled time to its answer
    server_ms: np.ndarray  # the service's own latency_ms of the 200s
    statuses: dict[int, int] = field(default_factory=dict)
    # the service's CPU time over the load per request sent (every process of it: scoring,
    # HTTP, landing), when the caller knew them (banklake bench serve): what a decision costs
    # the machine, queueing aside
    server_cpu_ms: float | None = None
    # the scoring process's alone: its Python runs under one interpreter lock, on at most
    # one core at a time, which bounds the service's rate
    scoring_cpu_ms: float | None = None
    # the load generator's own CPU time (every worker process): how much of the shared cores
    # the measuring took, beside what the service used
    client_cpu_seconds: float = 0.0

    @property
    def client_cores(self) -> float:
        """The load generator's average use of the cores over the load."""
        return self.client_cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def server_cores(self) -> float | None:
        """The service's average use of the cores over the load (all its processes)."""
        return self._cores(self.server_cpu_ms)

    @property
    def scoring_cores(self) -> float | None:
        """The scoring process's average use of the cores over the load."""
        return self._cores(self.scoring_cpu_ms)

    def _cores(self, cpu_ms: float | None) -> float | None:
        if cpu_ms is None or not self.seconds:
            return None
        return cpu_ms * self.sent / 1000 / self.seconds

    @property
    def achieved(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, q: float, server: bool = False) -> float:
        values = self.server_ms if server else self.latencies_ms
        return float(np.percentile(values, q)) if values.size else float("nan")

    def to_dict(self) -> dict[str, Any]:
        server_cores, scoring_cores = self.server_cores, self.scoring_cores
        return {
            "offered_per_second": self.rate,
            "achieved_per_second": round(self.achieved, 1),
            "sent": self.sent,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "latency_ms": {f"p{q}": round(self.percentile(q), 2) for q in (50, 90, 99, 99.9)},
            "server_latency_ms": {
                f"p{q}": round(self.percentile(q, server=True), 2) for q in (50, 90, 99)
            },
            "server_cpu_ms_per_request": None
            if self.server_cpu_ms is None
            else round(self.server_cpu_ms, 3),
            "server_cores": None if server_cores is None else round(server_cores, 2),
            "scoring_cores": None if scoring_cores is None else round(scoring_cores, 2),
            "client_cores": round(self.client_cores, 2),
        }


def encode_post(url: str, payload: dict[str, Any]) -> bytes:
    """One keep-alive HTTP/1.1 POST of `payload` as JSON to `url`, as bytes on the wire."""
    parts = urlparse(url)
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Connections:
    """Idle keep-alive connections to one host, opened on demand up to a bound."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.freed = asyncio.Condition()

    async def take(
        self, *, fresh: bool = False
    ) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """A connection, and whether it was used before (kept alive). The most recently used
        idle one first (the least likely to have been closed by the server meanwhile);
        `fresh`: a new one, closing the longest idle to make room at the bound."""
        async with self.freed:
            while not self.idle and self.opened >= MAX_CONNECTIONS:
                await self.freed.wait()
            if self.idle and not fresh:
                return self.idle.pop(), True
            if self.idle and self.opened >= MAX_CONNECTIONS:
                _, stale = self.idle.pop(0)
                stale.close()
                self.opened -= 1
            self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port), False
        except OSError:
            await self.give_back(None)
            raise

    async def give_back(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
    ) -> None:
        async with self.freed:
            if connection is None:  # broken: closed, a new one may open
                self.opened -= 1
            else:
                self.idle.append(connection)
            self.freed.notify()


async def _exchange(connections: _Connections, request: bytes) -> tuple[int, float | None]:
    """Sends one request, reads its answer: (status, the service's latency_ms of a 200).

    A kept-alive connection the server closed while it was idle (uvicorn's keep-alive
    timeout) ends before any byte of the answer: the request is sent again, once, on a new
    connection, as HTTP clients do (the service answers a repeated transaction id with its
    first answer, so a resend never decides twice). Never on another idle one: after a burst
    the server closes the idle connections together, and a second stale one would fail the
    request without the service ever seeing it."""
    for attempt in range(2):
        try:
            connection, reused = await connections.take(fresh=attempt > 0)
        except OSError:  # refused: nothing was sent
            return CONNECTION_ERROR, None
        reader, writer = connection
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError) as error:
            writer.close()
            await connections.give_back(None)
            nothing = not isinstance(error, asyncio.IncompleteReadError) or not error.partial
            if reused and nothing and attempt == 0:
                continue
            return CONNECTION_ERROR, None
        try:
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = next(
                int(line.split(":", 1)[1])
                for line in lines[1:]
                if line.lower().startswith("content-length:")
            )
            body = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
            writer.close()
            await connections.give_back(None)
            return CONNECTION_ERROR, None
        await connections.give_back(connection)
        server = float(json.loads(body)["latency_ms"]) if status == 200 else None
        return status, server
    return CONNECTION_ERROR, None


async def _send_all(
    url: str, requests: list[bytes], start: float, interval: float
) -> list[tuple[float, float | None, int]]:
    """requests[i] at start + i * interval (perf_counter clock); one row per request."""
    parts = urlparse(url)
    connections = _Connections(parts.hostname or "127.0.0.1", parts.port or 80)
    out: list[tuple[float, float | None, int]] = []

    async def one(due: float, request: bytes) -> None:
        try:
            status, server = await asyncio.wait_for(
                _exchange(connections, request), TIMEOUT_SECONDS
            )
        except TimeoutError:
            status, server = CONNECTION_ERROR, None
        out.append(((time.perf_counter() - due) * 1000, server, status))

    tasks = []
    for i, request in enumerate(requests):
        due = start + i * interval
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(due, request)))
    await asyncio.gather(*tasks)
    for _, writer in connections.idle:
        writer.close()
    return out


def _worker(url: str, requests: list[bytes], start: float, interval: float, queue: Any) -> None:
    # The forked worker holds every object of the process that started it (the benchmark's
    # payloads: hundreds of thousands of dicts). Frozen, the cyclic collector never walks them
    # again: each full collection over them paused this client's event loop for tens of ms,
    # measured as the service's latency.
    gc.freeze()
    cpu = time.process_time()
    rows = uvloop.run(_send_all(url, requests, start, interval))
    cpu = time.process_time() - cpu
    statuses: dict[int, int] = {}
    for _, _, status in rows:
        statuses[status] = statuses.get(status, 0) + 1
    queue.put(
        (
            [latency for latency, _, _ in rows],
            [server for _, server, _ in rows if server is not None],
            statuses,
            time.perf_counter(),
            cpu,
        )
    )


def offered_load(
    base_url: str, payloads: list[dict[str, Any]], rate: float, *, workers: int = 1
) -> LoadResult:
    """Sends every payload once at `rate` a second in total, spread over `workers`."""
    check_loopback(base_url)
    url = base_url.rstrip("/") + "/v1/transactions"
    requests = [encode_post(url, payload) for payload in payloads]
    context = multiprocessing.get_context("fork")  # perf_counter shared with the workers
    queue = context.Queue()
    start = time.perf_counter() + 0.5
    interval = workers / rate
    processes = [
        context.Process(
            target=_worker,
            args=(url, requests[k::workers], start + k / rate, interval, queue),
        )
        for k in range(workers)
    ]
    for process in processes:
        process.start()
    parts = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    statuses: dict[int, int] = {}
    for _, _, counted, _, _ in parts:
        for status, n in counted.items():
            statuses[status] = statuses.get(status, 0) + n
    return LoadResult(
        rate=rate,
        sent=len(payloads),
        seconds=max(part[3] for part in parts) - start,
        latencies_ms=np.array([v for part in parts for v in part[0]]),
        server_ms=np.array([v for part in parts for v in part[1]]),
        statuses=statuses,
        client_cpu_seconds=sum(part[4] for part in parts),
    )
