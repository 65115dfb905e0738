"""Model health: precision and recall as labels arrive, drift per feature (warming-up features
marked), the score distribution, and the champion's history and card."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from python_jobs.assistant.report_facts import monitoring_for
from python_jobs.dashboard import figures, lake_files, text, ui

STATUS_COLOURS = {
    "judged": "#1f77b4",
    "warming up": "#ff7f0e",
    "not judged": "#c7c7c7",
    "not monitored": "#e377c2",
}

cfg, warehouse = ui.start("Model health")

st.subheader("Precision and recall as labels arrive")
history = pd.DataFrame(figures.performance_history(warehouse))
if history.empty:
    st.info("No scores published yet: the champion model scores each new day (`banklake run`).")
else:
    latest = history.iloc[-1]
    columns = st.columns(4)
    columns[0].metric("Last scored day", str(latest["score_date"]))
    columns[1].metric("Precision so far", text.pct(latest["precision_so_far_pct"]))
    columns[2].metric("Recall so far", text.pct(latest["recall_so_far_pct"]))
    columns[3].metric("Precision among reviewed", text.pct(latest["precision_reviewed_pct"]))
    long = history.melt(
        id_vars=["score_date", "model_version"],
        value_vars=["precision_so_far_pct", "recall_so_far_pct", "precision_reviewed_pct"],
        var_name="measure",
        value_name="percent",
    ).dropna(subset=["percent"])
    long["score_date"] = pd.to_datetime(long["score_date"])
    if not long.empty:
        chart = (
            alt.Chart(long)
            .mark_line(point=True)
            .encode(
                x=alt.X("score_date:T", title=None),
                y=alt.Y("percent:Q", title="%"),
                color="measure:N",
                tooltip=["score_date:T", "model_version", "measure", "percent"],
            )
        )
        st.altair_chart(chart, width="stretch")
    st.caption(
        "Fraud reports arrive days to weeks after a transaction: a recent day's precision and "
        "recall rise as they land (fct_model_performance_daily)."
    )

st.subheader("Drift")
monitoring = lake_files.latest_monitoring(monitoring_for(cfg.target, cfg.lake))
if monitoring is None:
    st.info("No monitoring report yet: `banklake monitor` writes one for a scored day.")
else:
    columns = st.columns(4)
    columns[0].metric("Monitored day", monitoring.day)
    columns[1].metric("Verdict", monitoring.verdict)
    columns[2].metric(
        "Score PSI", "–" if monitoring.score_psi is None else f"{monitoring.score_psi:.3f}"
    )
    columns[3].metric(
        "Alert rate",
        text.pct(None if monitoring.alert_rate is None else 100 * monitoring.alert_rate),
        help="validation: "
        + text.pct(
            None if monitoring.expected_alert_rate is None else 100 * monitoring.expected_alert_rate
        ),
    )
    drift = pd.DataFrame([vars(f) for f in monitoring.features])
    shown = drift.dropna(subset=["psi"])
    bars = (
        alt.Chart(shown)
        .mark_bar()
        .encode(
            x=alt.X("feature:N", sort=list(shown["feature"]), title=None),
            y=alt.Y("psi:Q", title="PSI"),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())),
            ),
            tooltip=["feature", "psi", "status", "note"],
        )
    )
    rules = (
        alt.Chart(pd.DataFrame({"psi": [monitoring.psi_warning, monitoring.psi_drift]}))
        .mark_rule(strokeDash=[4, 4], color="#d62728")
        .encode(y="psi:Q")
    )
    st.altair_chart(bars + rules, width="stretch")
    st.caption(
        f"PSI per feature against training (model {monitoring.model_version}); dashed lines at "
        f"{monitoring.psi_warning} (moving) and {monitoring.psi_drift} (drifted). Features whose "
        "windows were not full yet are warming up: reported, not judged."
    )
    if monitoring.findings:
        st.warning("Findings: " + "; ".join(monitoring.findings))
    warming = drift[drift["status"] != "judged"][["feature", "status", "psi", "note"]]
    if not warming.empty:
        st.dataframe(warming, hide_index=True, key="drift_not_judged")

st.subheader("Score distribution")
if not history.empty:
    scored = sorted(
        {(row.score_date, row.model_version) for row in history.itertuples()}, reverse=True
    )
    day, version = st.selectbox(
        "Scoring day",
        scored,
        format_func=lambda item: f"{item[0]} (model {item[1]})",
        key="distribution_day",
    )
    bands = pd.DataFrame(figures.score_distribution(warehouse, day, version))
    if not bands.empty:
        long_bands = bands.melt(
            id_vars=["band", "band_lower"],
            value_vars=["transactions", "alerts", "frauds_known"],
            var_name="count of",
            value_name="n",
        )
        long_bands = long_bands[long_bands["n"] > 0]
        chart = (
            alt.Chart(long_bands)
            .mark_bar()
            .encode(
                x=alt.X("band:N", sort=list(bands["band"]), title="score band"),
                xOffset="count of:N",
                y=alt.Y("n:Q", scale=alt.Scale(type="log"), title="transactions (log)"),
                color="count of:N",
                tooltip=["band", "count of", "n"],
            )
        )
        st.altair_chart(chart, width="stretch")

st.subheader("Champion")
registry = lake_files.model_registry(cfg.lake)
if registry.champion is None:
    st.info("No champion model yet: `banklake train` trains one.")
else:
    st.markdown(f"Champion **{registry.champion}** since {registry.since}")
    st.dataframe(pd.DataFrame(registry.history), hide_index=True, key="champion_history")
    champion = next((v for v in registry.versions if v.version == registry.champion), None)
    if champion is not None:
        metrics = pd.DataFrame(champion.metrics).T
        st.dataframe(metrics, key="champion_metrics")
        if champion.card:
            with st.expander("Model card"):
                st.markdown(champion.card)
