"""Starts the dashboard: `streamlit run` on the app, bound to 127.0.0.1 by default, with the
lake and target in the environment (config.py) and no call to Streamlit's usage-stats host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
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
