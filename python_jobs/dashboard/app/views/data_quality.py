"""Data quality: rows per layer, rejected rows by reason over time, quarantined files, the last
dbt runs' tests, the raw sources' freshness, and the jobs' own figures (lake/metrics/)."""

from __future__ import annotations

from datetime import UTC, datetime

import altair as alt
import pandas as pd
import streamlit as st

from python_jobs.dashboard import figures, lake_files, text, ui
from python_jobs.dbt_runs import recent_runs
from python_jobs.lake.schemas import FEEDS
from python_jobs.observability.reading import latest_per_job, read_points

cfg, warehouse = ui.start("Data quality")
quality = figures.data_quality(warehouse, tuple(FEEDS))
quarantined = lake_files.quarantined_files(cfg.lake)
published = warehouse.published
totals = {
    key: sum(feed[key] for feed in quality.feeds.values())
    for key in ("raw_rows", "accepted", "duplicate", "rejected")
}

st.subheader("Rows per layer")
columns = st.columns(6)
columns[0].metric("Raw rows", text.count(totals["raw_rows"]))
columns[1].metric("Processed (accepted)", text.count(totals["accepted"]))
columns[2].metric("Duplicates", text.count(totals["duplicate"]))
columns[3].metric("Rejected", text.count(totals["rejected"]))
columns[4].metric(
    "Curated rows",
    text.count(sum(m.rows for m in published.marts.values())) if published else "–",
    help="every published mart's rows" if published else "counted on DuckDB only",
)
columns[5].metric("Quarantined files", text.count(len(quarantined)))
st.caption(
    "Every raw row is triaged once: raw = accepted + duplicates + rejected, per feed "
    "(the build's reconciliation test). Quarantined files never reach the raw count."
)

now = datetime.now(UTC).replace(tzinfo=None)
freshness = lake_files.source_freshness(tuple(FEEDS))
per_feed = []
for feed, counts in quality.feeds.items():
    landed = quality.last_ingested.get(feed)
    age = None if landed is None else (now - landed).total_seconds() / 3600
    rule = freshness.get(feed, lake_files.Freshness(None, None))
    if age is None or rule.warn_hours is None:
        status = "no rule" if rule.warn_hours is None else "no data"
    elif rule.error_hours is not None and age > rule.error_hours:
        status = "error"
    elif age > rule.warn_hours:
        status = "warn"
    else:
        status = "pass"
    per_feed.append(
        {
            "feed": feed,
            **counts,
            "last landed (UTC)": landed,
            "hours ago": None if age is None else round(age, 1),
            "freshness": status,
        }
    )
st.dataframe(pd.DataFrame(per_feed), hide_index=True, key="quality_feeds")
st.caption(
    "Freshness: hours since the feed's newest row landed, against the warn/error thresholds "
    "dbt declares for the raw sources (models/processed/_sources.yml)."
)

st.subheader("Rejected rows by reason")
rejected = pd.DataFrame(quality.rejected_by_day)
if rejected.empty:
    st.success("No row rejected.")
else:
    rejected["reason"] = rejected["feed"] + ": " + rejected["reason"].astype(str)
    rejected["ingestion_date"] = pd.to_datetime(rejected["ingestion_date"])
    chart = (
        alt.Chart(rejected)
        .mark_bar()
        .encode(
            x=alt.X("ingestion_date:T", title="ingestion day"),
            y=alt.Y("sum(rows):Q", title="rejected rows"),
            color=alt.Color("reason:N", legend=alt.Legend(orient="bottom", columns=3)),
            tooltip=["ingestion_date:T", "reason", "rows"],
        )
    )
    st.altair_chart(chart, width="stretch")

st.subheader("Quarantined files")
if not quarantined:
    st.success("No file quarantined.")
else:
    st.dataframe(pd.DataFrame(quarantined), hide_index=True, key="quality_quarantine")

st.subheader("Last dbt runs")
runs = recent_runs(cfg.lake, 10)
if not runs:
    st.info("No dbt run recorded in this lake yet (`banklake build` records each one).")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "finished (UTC)": run.generated_at[:19].replace("T", " "),
                    "command": run.command,
                    "tests": len(run.tests),
                    "passed": sum(t["status"] == "pass" for t in run.tests),
                    "warned": run.tests_warned,
                    "failed": run.tests_failed,
                    "seconds": round(run.elapsed_seconds, 1),
                }
                for run in runs
            ]
        ),
        hide_index=True,
        key="quality_runs",
    )
    latest = runs[0]
    not_passed = [t for t in latest.tests if t["status"] != "pass"]
    if not_passed:
        st.caption(f"Tests of the last run that did not pass ({latest.generated_at[:19]}):")
        st.dataframe(pd.DataFrame(not_passed), hide_index=True, key="quality_failed_tests")

st.subheader("Job metrics")
emitted = read_points(cfg.lake.root, days=7)
if not emitted.points:
    st.info(
        "No job has emitted metrics in this lake yet: every job appends its figures to "
        "lake/metrics/<job>/ (docs/operations.md, Job metrics)."
    )
else:
    latest = pd.DataFrame(
        [
            {
                "job": p.job,
                "emitted (UTC)": p.emitted_at.replace(microsecond=0),
                "metric": p.metric,
                "dimensions": ", ".join(f"{k}={v}" for k, v in sorted(p.dimensions.items())),
                "value": p.value,
                "unit": p.unit,
            }
            for p in latest_per_job(emitted.points)
        ]
    )
    st.caption("Each job's latest figures, as sent to CloudWatch on AWS (namespace banklake).")
    st.dataframe(latest, hide_index=True, key="quality_job_metrics")
    labels = sorted({f"{p.job}: {p.label()}" for p in emitted.points})
    default = "summary: NewestDayRejectionRate"  # what the operator alarm watches
    chosen = st.selectbox(
        "History of",
        labels,
        index=labels.index(default) if default in labels else 0,
        key="quality_metric_history",
    )
    history = pd.DataFrame(
        [
            {"emitted": p.emitted_at, "value": p.value}
            for p in emitted.points
            if f"{p.job}: {p.label()}" == chosen
        ]
    )
    st.altair_chart(
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X("emitted:T", title="emitted (UTC)"),
            y=alt.Y("value:Q", title=chosen),
            tooltip=["emitted:T", "value"],
        ),
        width="stretch",
    )
    if emitted.skipped_lines:
        st.caption(f"{emitted.skipped_lines} line(s) not read (being written, or not EMF).")

if published is not None:
    with st.expander("Published marts"):
        st.dataframe(
            pd.DataFrame([{"mart": m.name, "rows": m.rows} for m in published.marts.values()]),
            hide_index=True,
            key="quality_marts",
        )
