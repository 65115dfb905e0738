"""`banklake serve`: the scoring service, and its HTTP on uvicorn (uvloop and httptools) in a
process of its own (bridge.py, front.py), or in the same one (--single-process)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import uvicorn
import uvloop

from python_jobs.dashboard.server import check_port, free_port
from python_jobs.lake.layout import Lake
from python_jobs.serve.alerts import build_sinks
from python_jobs.serve.app import create_app
from python_jobs.serve.bridge import own
from python_jobs.serve.placement import plan
from python_jobs.serve.service import ScoringService, ServeConfig
from python_jobs.serve.wal import StreamPaths

# How long a thread may keep the interpreter lock while another waits for it (CPython's default
# is 5 ms). The service's threads hand requests to each other (event loop -> deciding thread ->
# fsync thread -> event loop) and each hand-off may wait that long behind a thread with work
# of its own (a landing, the flusher): with 5 ms, the landing of a micro-batch stretched the
# decisions made meanwhile tenfold (the convoy effect). Shorter slices cost a little throughput
# in switches and bound each wait (docs/decisions/0020).
SWITCH_INTERVAL_SECONDS = 0.0005


def serve(
    lake: Lake,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    batch_rows: int = 1_000,
    batch_seconds: float = 5.0,
    ingestion_day: date | None = None,
    alert_webhook: str | None = None,
    alert_sns_topic: str | None = None,
    state_url: str | None = None,
    metrics_seconds: float = 60.0,
    single_process: bool = False,
    pin: bool = True,
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = ServeConfig(
        lake=lake.root,
        batch_rows=batch_rows,
        batch_seconds=batch_seconds,
        ingestion_day=ingestion_day,
        state_url=state_url,
        metrics_seconds=metrics_seconds,
        landing_process=True,
        sinks=build_sinks(
            StreamPaths(lake).root / "alerts.jsonl",
            alert_webhook,
            alert_sns_topic,
            StreamPaths(lake).root,
        ),
    )
    check_port(host, port)
    service = ScoringService(config)
    print(
        f"banklake serve: warming up from {lake.root}, then http://{host}:{port}/docs", flush=True
    )
    # one scoring process (decisions are ordered by one lock; the state is in it or on
    # Redis); the API's lifespan starts and stops the service (SIGTERM lands what is pending)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    app = create_app(service)
    if not single_process:  # HTTP in a process of its own (front.py)
        placement = plan() if pin else None
        return uvloop.run(own(app, service, host, port, placement=placement))
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the client's address is never used: no X-Forwarded-* parsing
    )
    return 0


class ServiceDidNotStart(RuntimeError):
    """The service process exited, or was not ready in time."""


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """kill -9: the crash the write-ahead log is for."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM: uvicorn shuts down, the service lands what is pending."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_service(
    lake: Lake,
    *,
    log: Path,
    port: int | None = None,
    extra_args: list[str] | None = None,
    start_seconds: float = 120.0,
) -> Iterator[RunningService]:
    """`banklake serve` in a process of its own (the CLI, as an operator starts it) until the
    block ends; yields once /v1/ready answers 200. For tests, the replay and the benchmark."""
    port = port or free_port()
    command = [sys.executable, "-m", "python_jobs.cli", "serve", "--lake", str(lake.root)]
    command += ["--port", str(port), *(extra_args or [])]
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output)
        service = RunningService(url, process)
        try:
            _wait_until_ready(service, log, start_seconds)
            yield service
        finally:
            service.stop()


def _wait_until_ready(service: RunningService, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceDidNotStart(f"banklake serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(service.url + "/v1/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise ServiceDidNotStart(f"not ready after {seconds:.0f} s: {log.read_text()[-2000:]}")
