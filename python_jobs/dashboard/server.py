"""Starts the dashboard: `streamlit run` on the app, bound to 127.0.0.1 by default, with the
lake and target in the environment (config.py) and no call to Streamlit's usage-stats host."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from python_jobs.dashboard.config import INVESTIGATOR_ENV, TARGET_ENV, TARGETS
from python_jobs.lake.layout import LAKE_DIR_ENV, Lake
from python_jobs.lake.published import current

APP = Path(__file__).parent / "app" / "main.py"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def dashboard_environment(
    lake: Lake,
    target: str,
    investigator: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose {' or '.join(TARGETS)}")
    env = dict(os.environ if base is None else base)
    env[LAKE_DIR_ENV] = str(lake.root.resolve())
    env[TARGET_ENV] = target
    if investigator:
        env[INVESTIGATOR_ENV] = investigator
    return env


def check_port(host: str, port: int) -> None:
    """A clear error, before Streamlit starts, when the port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise RuntimeError(
                f"cannot listen on {host}:{port} ({error.strerror}): choose another --port"
            ) from None


def serve(
    lake: Lake,
    *,
    target: str = "duckdb",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    investigator: str | None = None,
) -> int:
    """Runs the dashboard until interrupted; returns Streamlit's exit code."""
    env = dashboard_environment(lake, target, investigator)
    if target == "duckdb":
        current(lake)  # nothing published: say what to run now, not in the browser
    check_port(host, port)
    print(f"banklake dashboard: http://{host}:{port}  (lake {lake.root}, {target}; Ctrl-C stops)")
    return subprocess.call(streamlit_command(host, port), env=env)


class DashboardDidNotStart(RuntimeError):
    """The dashboard process exited, or did not answer its health check in time."""


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_dashboard(
    lake: Lake,
    *,
    log: Path,
    port: int | None = None,
    investigator: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    start_seconds: float = 90.0,
) -> Iterator[str]:
    """`banklake dashboard` in a process of its own (the CLI, as a user starts it) until the
    block ends; yields its URL once Streamlit's health check answers. Its output goes to
    `log`. For the browser test and the page benchmark."""
    port = port or free_port()
    command = [sys.executable, "-m", "python_jobs.cli", "dashboard", "--lake", str(lake.root)]
    command += ["--port", str(port)]
    if investigator:
        command += ["--investigator", investigator]
    env = {**os.environ, **(extra_env or {})}
    url = f"http://{DEFAULT_HOST}:{port}"
    with log.open("wb") as output:
        # its own process group: stopping it stops the Streamlit process it starts too
        server = subprocess.Popen(
            command, env=env, stdout=output, stderr=output, start_new_session=True
        )
        try:
            _wait_until_healthy(url, server, log, start_seconds)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _wait_until_healthy(
    url: str, server: subprocess.Popen[bytes], log: Path, start_seconds: float
) -> None:
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DashboardDidNotStart(
                f"banklake dashboard exited with {server.returncode}:\n{log.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise DashboardDidNotStart(f"no answer from {url} in {start_seconds:g} s:\n{log.read_text()}")
