"""Offered load against `banklake serve`: a fixed rate, open loop, from processes of its own.

Each worker process sends its share of the requests at their scheduled times over one
keep-alive connection, whether or not earlier answers have come back late (open loop: a slow
service cannot slow the offered rate down). A request's latency counts from its scheduled
time, so waiting behind a late one is counted too (no coordinated omission). Loopback only,
bounded by the payloads given (rate x seconds).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from python_jobs.serve.stream import check_loopback

TIMEOUT_SECONDS = 10.0
CONNECTIONS = 16  # per worker process


@dataclass
class LoadResult:
    rate: float  # offered, requests a second
    sent: int
    seconds: float  # from the first scheduled send to the last answer
    latencies_ms: np.ndarray  # from each request's scheduled time to its answer
    server_ms: np.ndarray  # the service's own latency_ms of the 200s
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def achieved(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, q: float, server: bool = False) -> float:
        values = self.server_ms if server else self.latencies_ms
        return float(np.percentile(values, q)) if values.size else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "offered_per_second": self.rate,
            "achieved_per_second": round(self.achieved, 1),
            "sent": self.sent,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "latency_ms": {f"p{q}": round(self.percentile(q), 2) for q in (50, 90, 99, 99.9)},
            "server_latency_ms": {
                f"p{q}": round(self.percentile(q, server=True), 2) for q in (50, 90, 99)
            },
        }


def _connection(
    url: str, payloads: list[dict[str, Any]], start: float, interval: float, out: list[Any]
) -> None:
    """One connection: payloads[i] at start + i * interval (perf_counter clock)."""
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        for i, payload in enumerate(payloads):
            due = start + i * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            server = None
            try:
                response = client.post(url, json=payload)
                status = response.status_code
                if status == 200:
                    server = float(response.json()["latency_ms"])
            except httpx.HTTPError:
                status = 0
            out.append(((time.perf_counter() - due) * 1000, server, status))


def _worker(
    url: str, payloads: list[dict[str, Any]], start: float, interval: float, queue: Any
) -> None:
    """Its share of the requests over CONNECTIONS connections (threads), each sending every
    CONNECTIONS-th request: up to that many in flight, so a slow answer delays no other."""
    outs: list[list[Any]] = [[] for _ in range(CONNECTIONS)]
    threads = [
        threading.Thread(
            target=_connection,
            args=(url, payloads[c::CONNECTIONS], start + c * interval, interval * CONNECTIONS, out),
        )
        for c, out in enumerate(outs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = [row for out in outs for row in out]
    statuses: dict[int, int] = {}
    for _, _, status in rows:
        statuses[status] = statuses.get(status, 0) + 1
    queue.put(
        (
            [latency for latency, _, _ in rows],
            [server for _, server, _ in rows if server is not None],
            statuses,
            time.perf_counter(),
        )
    )


def offered_load(
    base_url: str, payloads: list[dict[str, Any]], rate: float, *, workers: int = 2
) -> LoadResult:
    """Sends every payload once at `rate` a second in total, spread over `workers`."""
    check_loopback(base_url)
    url = base_url.rstrip("/") + "/v1/transactions"
    context = multiprocessing.get_context("fork")  # perf_counter shared with the workers
    queue = context.Queue()
    start = time.perf_counter() + 0.5
    interval = workers / rate
    processes = [
        context.Process(
            target=_worker,
            args=(url, payloads[k::workers], start + k / rate, interval, queue),
        )
        for k in range(workers)
    ]
    for process in processes:
        process.start()
    parts = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    statuses: dict[int, int] = {}
    for _, _, counted, _ in parts:
        for status, n in counted.items():
            statuses[status] = statuses.get(status, 0) + n
    return LoadResult(
        rate=rate,
        sent=len(payloads),
        seconds=max(end for *_, end in parts) - start,
        latencies_ms=np.array([v for part in parts for v in part[0]]),
        server_ms=np.array([v for part in parts for v in part[1]]),
        statuses=statuses,
    )
