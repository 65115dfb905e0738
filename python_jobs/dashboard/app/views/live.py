"""Live scoring: the real-time scoring service's decisions and latency when it runs (its own
issue); until then, how to start it. The page only reads what the service answers on
127.0.0.1 (or $BANKLAKE_SERVING_URL): `/health`, and `/decisions/recent` when it has one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pandas as pd
import streamlit as st

from python_jobs.dashboard.config import SERVING_URL_ENV, DashboardConfig

TIMEOUT_SECONDS = 0.5


def fetch(url: str) -> Any | None:
    """The service's JSON at `url`, or None when nothing answers there (or not JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


st.title("Live scoring")
cfg = DashboardConfig.from_env()
health = fetch(f"{cfg.serving_url}/health")
if health is None:
    st.info(
        f"The real-time scoring service is not running at {cfg.serving_url}. It scores "
        "transactions as they happen with the champion model; once it is installed (its own "
        "issue), start it on this machine and point the dashboard at it with "
        f"`{SERVING_URL_ENV}=http://127.0.0.1:PORT banklake dashboard`. Until then the fraud "
        "page shows the daily batch scores."
    )
    st.stop()
st.success(f"The scoring service answers at {cfg.serving_url}.")
st.json(health)
recent = fetch(f"{cfg.serving_url}/decisions/recent")
if isinstance(recent, list) and recent:
    decisions = pd.DataFrame(recent)
    st.dataframe(decisions, hide_index=True, key="live_decisions")
    if "latency_ms" in decisions:
        st.metric("p99 latency (ms)", f"{decisions['latency_ms'].quantile(0.99):.1f}")
else:
    st.caption("The service publishes no list of recent decisions (`/decisions/recent`).")
