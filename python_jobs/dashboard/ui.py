"""What every page starts with: the configuration, the session's warehouse, and a clear
message (then a stop) when there is nothing to show yet."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from python_jobs.dashboard.config import DashboardConfig
from python_jobs.dashboard.session import SessionWarehouse, session_warehouse
from python_jobs.lake.published import NothingPublished


def start(title: str) -> tuple[DashboardConfig, SessionWarehouse]:
    """A page's title, the configuration and the session's warehouse (or a stop, with what
    to run, when nothing is published), and the sidebar's status."""
    st.title(title)
    cfg = DashboardConfig.from_env()
    current = warehouse(cfg)
    sidebar_status(cfg, current)
    return cfg, current


def warehouse(cfg: DashboardConfig) -> SessionWarehouse:
    """The session's warehouse; on a lake that has published nothing yet, says what to run
    and stops the page."""
    try:
        return session_warehouse(cfg, st.session_state)
    except NothingPublished as error:
        st.warning(str(error))
        st.stop()
        raise  # st.stop() ends the script run; this line is for the type checker


def sidebar_status(cfg: DashboardConfig, current: SessionWarehouse) -> None:
    """Which export the pages show, and on Athena what this session's queries cost: drawn
    now, and drawn again as each of the page's queries ends (SessionWarehouse.on_query), so
    the totals include the queries of the run that shows them."""
    with st.sidebar:
        published = current.published
        if published is not None:
            st.caption(
                f"Lake `{cfg.lake.root.name}` · export {published.version[:15]} published "
                f"{published.published_at:%Y-%m-%d %H:%M} UTC"
            )
        else:
            st.caption(f"Athena · work group of the assistant · `{current.curated_schema}`")
        if current.dialect == "athena":
            slot = st.empty()
            query_costs(slot, current)
            current.on_query = lambda query: query_costs(slot, current)


def query_costs(slot: DeltaGenerator, current: SessionWarehouse) -> None:
    """The session's Athena totals and each query's bytes, cost and time, in `slot` (what
    was there before is replaced)."""
    with slot.container():
        count = len(current.log)
        st.caption(
            f"{count} {'query' if count == 1 else 'queries'} this session, "
            f"{current.bytes_scanned / 1e6:,.1f} MB scanned, ${current.cost_usd:.4f}"
        )
        with st.expander("Each query's bytes and cost"):
            for item in current.log[-50:]:
                first = " ".join(item.sql.split())[:80]
                st.caption(
                    f"{(item.bytes_scanned or 0) / 1e6:,.1f} MB · ${item.cost_usd or 0:.4f}"
                    f" · {item.seconds:.1f} s · {first}"
                )
