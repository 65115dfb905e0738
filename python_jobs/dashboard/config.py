"""What the dashboard was started with. `banklake dashboard` passes it to the Streamlit process
in the environment (python_jobs/dashboard/server.py); tests set the same variables."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from python_jobs.environment import environment
from python_jobs.lake.layout import LAKE_DIR_ENV, Lake

TARGET_ENV = "BANKLAKE_DASHBOARD_TARGET"
INVESTIGATOR_ENV = "BANKLAKE_INVESTIGATOR"
SERVING_URL_ENV = "BANKLAKE_SERVING_URL"
DEFAULT_SERVING_URL = "http://127.0.0.1:8000"  # banklake serve's default
TARGETS = ("duckdb", "athena")


@dataclass(frozen=True)
class DashboardConfig:
    lake: Lake
    target: str  # duckdb or athena
    investigator: str  # the default name on verdicts (the page lets it be changed)
    serving_url: str  # where the real-time scoring service would answer

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardConfig:
        env = environment(env)
        target = env.get(TARGET_ENV, "duckdb")
        if target not in TARGETS:
            raise ValueError(f"{TARGET_ENV}={target!r}: one of {', '.join(TARGETS)}")
        return cls(
            lake=Lake(Path(env.get(LAKE_DIR_ENV) or "lake")),
            target=target,
            investigator=env.get(INVESTIGATOR_ENV) or _login(),
            serving_url=(env.get(SERVING_URL_ENV) or DEFAULT_SERVING_URL).rstrip("/"),
        )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a container
        return os.environ.get("USER", "")
