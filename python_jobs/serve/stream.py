"""`banklake stream`: replays a lake's raw day against the scoring API, in arrival order.

The local stand-in for a stream producer. It reads SRC's raw `transactions` and
`fraud_reports` files of one ingestion day and sends every row, as delivered (duplicates and
damaged rows included), in the order the bank would have received them:

- transactions in delivery order (files by name, rows by position); a row's arrival time is
  the latest event time delivered so far, so a late row (an earlier day's transaction
  delivered today) arrives where the file has it;
- fraud reports at their reported_at, before a transaction of the same instant (a report made
  by a transaction's time counts for it, as in ml_features).

Every answer goes to a JSON-lines file (one line per request: kind, status, body, seconds).
A connection failure (the service went away) stops the replay with an error; what was
answered until then is in the file.
Only loopback URLs are accepted: this is a replay and a load generator, not a client for
somebody else's service. Bounded: --limit requests, --max-seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pyarrow.parquet as pq

from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import FRAUD_REPORTS, TRANSACTIONS
from python_jobs.lake.writer import read_json_lines
from python_jobs.serve.contract import parse_timestamp

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
TIMEOUT_SECONDS = 30.0


class ServiceGone(RuntimeError):
    """The service stopped answering in the middle of a replay."""


@dataclass(frozen=True)
class Event:
    kind: str  # "transaction" | "report"
    arrival: datetime
    order: int  # position in its feed's delivery
    payload: dict[str, Any]


@dataclass
class StreamResult:
    sent: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    out: Path | None = None

    def percentiles(self, values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        array = np.asarray(values)
        return {f"p{q}": float(np.percentile(array, q)) for q in (50, 90, 99)} | {
            "max": float(array.max())
        }

    def summary(self) -> str:
        rate = self.sent / self.seconds if self.seconds else 0.0
        statuses = ", ".join(f"{status}: {n:,}" for status, n in sorted(self.by_status.items()))
        client = self.percentiles(self.client_ms)
        server = self.percentiles(self.server_ms)

        def show(p: dict[str, float]) -> str:
            return " ".join(f"{k} {v:.2f} ms" for k, v in p.items()) or "-"

        return (
            f"sent {self.sent:,} requests in {self.seconds:.1f} s ({rate:,.0f}/s); {statuses}\n"
            f"  latency at the client: {show(client)}\n"
            f"  latency in the server: {show(server)}\n"
            f"  answers -> {self.out}"
        )


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"{url}: banklake stream only sends to this machine (127.0.0.1)")


def day_events(source: Lake, day: date) -> list[Event]:
    """The raw day's rows in arrival order (module docstring)."""
    transactions: list[Event] = []
    latest = datetime.combine(day, datetime.min.time())
    files = sorted(source.partition_dir(TRANSACTIONS, day).glob(f"*{TRANSACTIONS.file_suffix}"))
    for path in files:
        for payload in pq.read_table(path).select(TRANSACTIONS.payload_columns).to_pylist():
            raw = payload.get("event_ts")
            ts = None if raw is None else parse_timestamp(raw.strip(" "))
            if ts is not None and ts > latest:
                latest = ts
            transactions.append(Event("transaction", latest, len(transactions), payload))
    reports: list[Event] = []
    files = sorted(source.partition_dir(FRAUD_REPORTS, day).glob(f"*{FRAUD_REPORTS.file_suffix}"))
    previous = datetime.combine(day, datetime.min.time())
    for path in files:
        for row in read_json_lines(path):
            payload = {c: row.get(c) for c in FRAUD_REPORTS.payload_columns}
            raw = payload.get("reported_at")
            ts = None if raw is None else parse_timestamp(raw)
            arrival = ts if ts is not None else previous
            previous = arrival
            reports.append(Event("report", arrival, len(reports), payload))
    # reports first at the same instant; each feed keeps its own order
    rank = {"report": 0, "transaction": 1}
    return sorted(transactions + reports, key=lambda e: (e.arrival, rank[e.kind], e.order))


def stream_day(
    source: Lake,
    day: date,
    url: str,
    out: Path,
    *,
    rate: float | None = None,
    limit: int | None = None,
    max_seconds: float | None = None,
    include_features: bool = True,
) -> StreamResult:
    """Sends the day's events one request at a time; writes every answer to `out`."""
    check_loopback(url)
    events = day_events(source, day)
    if limit is not None:
        events = events[:limit]
    out.parent.mkdir(parents=True, exist_ok=True)
    result = StreamResult(out=out)
    base = url.rstrip("/")
    params = {"include": "features"} if include_features else {}
    started = time.perf_counter()
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client, out.open("w", encoding="utf-8") as sink:
        for i, event in enumerate(events):
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                break
            if rate:
                wait = started + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            path = "/v1/transactions" if event.kind == "transaction" else "/v1/fraud-reports"
            sent = time.perf_counter()
            try:
                response = client.post(
                    base + path,
                    json=event.payload,
                    params=params if event.kind == "transaction" else {},
                )
            except httpx.TransportError as error:
                raise ServiceGone(
                    f"{base} stopped answering after {result.sent:,} requests: {error}"
                ) from error
            elapsed = time.perf_counter() - sent
            body = response.json()
            result.sent += 1
            result.by_status[response.status_code] = (
                result.by_status.get(response.status_code, 0) + 1
            )
            result.client_ms.append(elapsed * 1000)
            if response.status_code == 200 and "latency_ms" in body:
                result.server_ms.append(float(body["latency_ms"]))
            sink.write(
                json.dumps(
                    {
                        "kind": event.kind,
                        "order": event.order,
                        "status": response.status_code,
                        "seconds": elapsed,
                        "body": body,
                    },
                    default=str,
                )
                + "\n"
            )
    result.seconds = time.perf_counter() - started
    return result
