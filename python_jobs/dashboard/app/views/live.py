"""Live scoring: the real-time scoring service's (`banklake serve`) state, decisions and latency
when it runs; otherwise how to start it. The page only reads what the service answers at
$BANKLAKE_SERVING_URL (default http://127.0.0.1:8000): `/v1/ready` and `/v1/decisions/recent`."""

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
ready = fetch(f"{cfg.serving_url}/v1/ready")
if ready is None:
    st.info(
        f"The real-time scoring service is not running at {cfg.serving_url}. It decides on "
        "transactions while they are in flight, with the champion model: start it with "
        "`banklake serve --lake lake` (docs/serving.md); on another address, point the "
        f"dashboard at it with `{SERVING_URL_ENV}=http://127.0.0.1:PORT banklake dashboard`. "
        "Until then the fraud page shows the daily batch scores."
    )
    st.stop()
if ready.get("ready"):
    st.success(
        f"The scoring service answers at {cfg.serving_url} with model "
        f"{ready.get('model_version')}; its state holds the lake up to "
        f"{ready.get('newest_event')}."
    )
else:
    st.warning(f"The scoring service at {cfg.serving_url} is not ready: {ready.get('failed')}")
recent = fetch(f"{cfg.serving_url}/v1/decisions/recent")
if isinstance(recent, list) and recent:
    decisions = pd.DataFrame(recent)
    columns = st.columns(4)
    columns[0].metric("decisions shown", f"{len(decisions):,}")
    columns[1].metric("review or block", f"{int((decisions['decision'] != 'approve').sum()):,}")
    columns[2].metric("p50 latency (ms)", f"{decisions['latency_ms'].quantile(0.5):.1f}")
    columns[3].metric("p99 latency (ms)", f"{decisions['latency_ms'].quantile(0.99):.1f}")
    st.dataframe(decisions, hide_index=True, key="live_decisions")
else:
    st.caption("No decision since the service started.")
with st.expander("The service's state"):
    st.json(ready)
