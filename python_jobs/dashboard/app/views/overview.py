"""Overview: the daily KPIs for the chosen days and slice against the period before, the trend,
and the day's anomalies. Every number comes from the report's facts (report_facts)."""

from __future__ import annotations

from datetime import date, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from python_jobs.assistant.report_facts import (
    PERIOD_KPIS,
    FactsConfig,
    KpiSlice,
    anomaly_facts,
    compare_kpis,
    kpi_series,
    period_kpis,
)
from python_jobs.dashboard import figures, text, ui

# a rise of these is bad news: shown red
WORSE_WHEN_UP = {"fraud_transactions_reported", "fraud_loss_brl", "fraud_rate_pct"}
TREND_DAYS = 28

cfg, warehouse = ui.start("Overview")
options = figures.filter_options(warehouse)
if options is None:
    st.info("No transactions in the published marts yet: run `banklake build` or `make demo`.")
    st.stop()
    raise SystemExit  # for the type checker: st.stop() ends the run

with st.sidebar:
    st.subheader("Filters")
    picked = st.date_input(
        "Days",
        value=(options.last_day, options.last_day),
        min_value=options.first_day,
        max_value=options.last_day,
        key="overview_days",
    )
    chosen = [d for d in (picked if isinstance(picked, tuple | list) else [picked]) if d]
    first: date = chosen[0] if chosen else options.last_day
    last: date = chosen[-1] if chosen else options.last_day
    where = KpiSlice(
        transaction_types=tuple(
            st.multiselect("Type", key="overview_types", options=options.transaction_types)
        ),
        channels=tuple(
            st.multiselect("Channel", key="overview_channels", options=options.channels)
        ),
        states=tuple(st.multiselect("State", key="overview_states", options=options.states)),
        regions=tuple(st.multiselect("Region", key="overview_regions", options=options.regions)),
        segments=tuple(
            st.multiselect("Customer segment", key="overview_segments", options=options.segments)
        ),
    )

length = (last - first).days + 1
previous = (first - timedelta(days=length), first - timedelta(days=1))
current_kpis, previous_kpis = period_kpis(warehouse, [(first, last), previous], where)
span = f"{first}" if length == 1 else f"{first} to {last}"
st.caption(
    f"{span}, against the {length} day(s) before ({previous[0]} to {previous[1]}). Frauds count "
    "the reports received so far: recent days rise as reports arrive."
)
if current_kpis is None:
    st.info("No transactions in this selection.")
else:
    metrics = compare_kpis(current_kpis, previous_kpis)
    for row_start in range(0, len(metrics), 4):
        for column, metric in zip(st.columns(4), metrics[row_start : row_start + 4], strict=False):
            column.metric(
                text.KPI_LABELS[metric["metric"]],
                text.show(metric["value"], metric["unit"]),
                delta=text.change(metric["change"], metric["change_unit"]),
                delta_color="inverse" if metric["metric"] in WORSE_WHEN_UP else "normal",
            )

st.subheader("Trend")
trend_first = min(previous[0], last - timedelta(days=TREND_DAYS - 1))
series = pd.DataFrame(kpi_series(warehouse, trend_first, last, where))
if series.empty:
    st.info("No transactions in this selection.")
else:
    series["period"] = series["date"].map(
        lambda d: (
            "selected"
            if first <= d <= last
            else ("period before" if previous[0] <= d <= previous[1] else "earlier")
        )
    )
    series["date"] = pd.to_datetime(series["date"])
    measure = st.radio(
        "Measure",
        ["transactions", "approved_volume_brl", "average_ticket_brl", "fraud_rate_pct"],
        format_func=lambda name: text.KPI_LABELS[name],
        horizontal=True,
        key="overview_measure",
    )
    unit = PERIOD_KPIS[measure][0]
    base = alt.Chart(series).encode(
        x=alt.X("date:T", title=None),
        y=alt.Y(
            f"{measure}:Q", title=text.KPI_LABELS[measure] + (" (R$)" if unit == "brl" else "")
        ),
    )
    points = base.mark_circle(size=60).encode(
        color=alt.Color(
            "period:N",
            scale=alt.Scale(
                domain=["selected", "period before", "earlier"],
                range=["#d62728", "#1f77b4", "#c7c7c7"],
            ),
        ),
        tooltip=["date:T", f"{measure}:Q", "period:N"],
    )
    st.altair_chart(base.mark_line(color="#7f7f7f") + points, width="stretch")

st.subheader(f"Anomalies of {last}")
anomalies, _ = anomaly_facts(warehouse, last, FactsConfig())
st.caption(
    "The daily report's anomalies: each slice's share of the day's transactions and approved "
    f"volume against its shares over the previous {anomalies['method']['window_days']} days, "
    f"flagged at |robust z| >= {anomalies['method']['threshold_z']}. Computed on all "
    "transactions of the day, not the filters."
)
if not anomalies["available"]:
    st.info(
        f"Not enough history for anomalies: {anomalies['history_days']} day(s) before {last}, "
        f"{anomalies['method']['min_history_days']} needed."
    )
elif not anomalies["items"]:
    st.success(f"No anomaly among {anomalies['slices_checked']} slices checked.")
else:
    st.dataframe(
        pd.DataFrame(anomalies["items"])[
            [
                "dimension",
                "value",
                "metric",
                "share_pct",
                "usual_share_pct",
                "robust_z",
                "direction",
            ]
        ],
        hide_index=True,
        key="overview_anomalies",
    )
