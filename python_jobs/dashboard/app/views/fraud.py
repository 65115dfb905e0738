"""Fraud and alerts: the day's alert queue, the investigators' feedback, and the losses.

The day's alert figures are the report's (report_facts.alert_facts); the queue is the report's
alert query at full length (figures.alert_queue); a verdict goes to raw through
python_jobs/feedback.py, exactly once: at once when no build runs, else when the build ends
(recorded meanwhile in the lake's pending queue). The page lands what is pending whenever it
runs, without waiting for a build."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

from python_jobs.assistant.report_facts import FactsConfig, alert_facts
from python_jobs.dashboard import figures, text, ui
from python_jobs.feedback import (
    Alert,
    FeedbackError,
    VerdictOutcome,
    land_pending,
    pending_verdicts,
    record_verdict,
    recorded_verdicts,
)

LOSS_TITLES = {
    "fraud_scenario": "Scenario",
    "channel": "Channel",
    "transaction_type": "Type",
    "event_hour": "Hour",
    "customer_segment": "Segment",
}


def verdict_message(outcome: VerdictOutcome, transaction_id: str, verdict: str) -> tuple[str, str]:
    """What a click answers: recorded (in raw now, or landing when the running build ends),
    or already recorded (nothing written)."""
    if outcome.written and outcome.landed:
        return "success", (
            f"Recorded: {transaction_id} is {verdict} ({outcome.verdict_id}). "
            "In raw now; in the marts after the next build."
        )
    if outcome.written:
        return "success", (
            f"Recorded: {transaction_id} is {verdict} ({outcome.verdict_id}). A build is "
            "running: it lands in raw when the build ends; in the marts after the next build."
        )
    later = "" if outcome.landed else "; it lands in raw when the running build ends"
    return "info", (
        f"Already recorded: {transaction_id} was marked {verdict} before "
        f"({outcome.verdict_id}){later}; nothing written."
    )


cfg, warehouse = ui.start("Fraud and alerts")
land_pending(cfg.lake)  # verdicts recorded during a build that has ended since: no wait
history = figures.performance_history(warehouse)
if not history:
    st.info("No scores published yet: the champion model scores each new day (`banklake run`).")
    st.stop()
    raise SystemExit

scored = sorted({(h["score_date"], h["model_version"]) for h in history}, reverse=True)
picked: tuple[date, str] = st.selectbox(
    "Scoring day",
    scored,
    format_func=lambda item: f"{item[0]} (model {item[1]})",
    key="fraud_day",
)
day, version = picked
facts, _ = alert_facts(warehouse, day, FactsConfig())
reviewed = next(h for h in history if (h["score_date"], h["model_version"]) == (day, version))
columns = st.columns(5)
columns[0].metric("Alerts", text.count(facts.get("alerts")))
columns[1].metric("Alert rate", text.pct(facts.get("alert_rate_pct")))
columns[2].metric("Precision so far", text.pct(facts.get("precision_so_far_pct")))
columns[3].metric("Confirmed legitimate", text.count(reviewed["alerts_confirmed_legitimate"]))
columns[4].metric("Precision among reviewed", text.pct(reviewed["precision_reviewed_pct"]))
st.caption(
    "Precision so far counts an alert as a false alarm until a fraud report names it; among "
    "reviewed alerts, only those an investigator or a report has settled count."
)

st.subheader("Alert queue")
queue = figures.alert_queue(warehouse, day, version)
frame = pd.DataFrame(queue)
if frame.empty:
    st.info("No alerts that day.")
    st.stop()
    raise SystemExit
if (facts.get("alerts") or 0) > len(queue):
    st.caption(
        f"The first {text.count(len(queue))} of {text.count(facts['alerts'])} alerts by rank; "
        "the rest are in curated.fct_fraud_alerts (the Ask page queries it)."
    )
st.dataframe(
    frame,
    hide_index=True,
    key="fraud_queue",
    column_config={
        "amount_brl": st.column_config.NumberColumn("amount (R$)", format="%.2f"),
        "score": st.column_config.NumberColumn(format="%.4f"),
        "counterparty": st.column_config.TextColumn(
            help="a card's merchant or terminal; otherwise the start of its salted hash"
        ),
    },
)

st.subheader("Review an alert")
st.caption(
    "A confirmed fraud lands in the raw fraud reports (channel analyst) and a legitimate "
    "verdict in the raw alert verdicts, each exactly once: the next build's labels, monitoring "
    "and training use them. While a build runs a verdict is recorded at once and lands when "
    "the build ends."
)
left, right = st.columns([2, 1])
by_label = {f"#{row['rank']} {row['transaction_id']}": row for row in queue}
label = left.selectbox("Alert", list(by_label), key="review_alert")
investigator = right.text_input("Investigator", value=cfg.investigator, key="investigator")
alert = by_label[label]
left.markdown(
    f"Score **{alert['score']:.4f}** · {text.brl(alert['amount_brl'])} · "
    f"{alert['transaction_type']} / {alert['channel']} · {alert['reasons'] or 'no reasons'}"
)
fraud_clicked = right.button("Confirm fraud", key="verdict_fraud", type="primary")
legitimate_clicked = right.button("Mark legitimate", key="verdict_legitimate")
if fraud_clicked or legitimate_clicked:
    verdict = "fraud" if fraud_clicked else "legitimate"
    try:
        outcome = record_verdict(
            cfg.lake, Alert(alert["transaction_id"], day, version), verdict, investigator
        )
    except FeedbackError as error:
        st.session_state["verdict_message"] = ("error", str(error))
    else:
        st.session_state["verdict_message"] = verdict_message(
            outcome, alert["transaction_id"], verdict
        )
kind, message = st.session_state.get("verdict_message", (None, None))
if message:
    {"error": st.error, "success": st.success, "info": st.info}[kind](message)
given = recorded_verdicts(cfg.lake, alert["transaction_id"])
published = (
    f"published review: {alert['review']}" if alert["review"] else "not reviewed in the marts"
)
in_raw = ", ".join(sorted(given)) or "none"
waiting = pending_verdicts(cfg.lake, alert["transaction_id"])
later = f"; waiting for the running build: {', '.join(waiting)}" if waiting else ""
st.caption(f"{alert['transaction_id']}: {published}; verdicts in raw: {in_raw}{later}.")

st.subheader("Losses reported so far")
st.caption("All days (fct_risk_analysis): frauds reported so far and their approved amount.")
losses = figures.losses(warehouse)
for tab, dimension in zip(st.tabs(list(LOSS_TITLES.values())), LOSS_TITLES, strict=True):
    rows = pd.DataFrame(losses[dimension])
    with tab:
        if rows.empty:
            st.info("No fraud reported yet.")
            continue
        chart = (
            alt.Chart(rows)
            .mark_bar()
            .encode(
                x=alt.X("value:N", sort="-y" if dimension != "event_hour" else None, title=None),
                y=alt.Y("loss_brl:Q", title="loss (R$)"),
                tooltip=["value", "frauds", "loss_brl", "fraud_rate_pct"],
            )
        )
        st.altair_chart(chart, width="stretch")
        st.dataframe(rows, hide_index=True, key=f"losses_{dimension}")
