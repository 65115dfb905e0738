"""The dashboard's own figures: SQL over the curated marts that the daily report does not state.

What the report states (KPIs, anomalies, the day's alerts and their precision) is computed by
python_jobs/assistant/report_facts.py and called from the pages, never rewritten here. Each
query is written once for both engines, qualified and dated through report_facts' FactsSQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from python_jobs.assistant.report_facts import (
    FactsSQL,
    data_range,
    public_counterparty,
    records,
    rounded,
    sql_date,
    sql_text,
    top_alerts_sql,
)
from python_jobs.assistant.warehouse import Warehouse

DISPOSITIONS = ("accepted", "duplicate", "rejected")
# fct_risk_analysis's slices, in the order the fraud page shows them
LOSS_DIMENSIONS = (
    "fraud_scenario",
    "channel",
    "transaction_type",
    "event_hour",
    "customer_segment",
)


# --- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterOptions:
    first_day: date
    last_day: date
    transaction_types: list[str]
    channels: list[str]
    states: list[str]
    regions: list[str]
    segments: list[str]


def filter_options_sql(sql: FactsSQL) -> str:
    """Every value the overview's filters offer, one query: (dimension, value)."""
    kpis = sql.table("fct_daily_kpis")
    parts = [
        f"select '{column}' as dimension, {column} as value from {kpis} group by {column}"
        for column in ("transaction_type", "channel", "state")
    ]
    segmented = sql.table("fct_daily_kpis_by_segment")
    parts += [
        f"select 'region' as dimension, region as value from {segmented} group by region",
        "select 'segment' as dimension, customer_segment as value "
        f"from {segmented} group by customer_segment",
    ]
    return "\nunion all\n".join(parts)


def filter_options(warehouse: Warehouse) -> FilterOptions | None:
    """None when nothing is published yet (an empty fct_daily_kpis)."""
    span = data_range(warehouse)
    if span is None:
        return None
    values: dict[str, list[str]] = defaultdict(list)
    for row in records(warehouse.query(filter_options_sql(FactsSQL.for_warehouse(warehouse)))):
        if row["value"] is not None:
            values[row["dimension"]].append(str(row["value"]))
    return FilterOptions(
        first_day=span[0],
        last_day=span[1],
        **{
            name: sorted(values[dimension])
            for name, dimension in (
                ("transaction_types", "transaction_type"),
                ("channels", "channel"),
                ("states", "state"),
                ("regions", "region"),
                ("segments", "segment"),
            )
        },
    )


# --- the model's days and their performance ---------------------------------------------------


def performance_history_sql(sql: FactsSQL) -> str:
    return f"""
        select
            score_date,
            model_version,
            transactions_scored,
            alerts,
            alerts_confirmed_fraud,
            alerts_confirmed_legitimate,
            frauds_known,
            100 * precision_so_far as precision_so_far_pct,
            100 * recall_so_far as recall_so_far_pct,
            100 * precision_reviewed as precision_reviewed_pct
        from {sql.table("fct_model_performance_daily")}
        order by score_date, model_version
        """


def performance_history(warehouse: Warehouse) -> list[dict[str, Any]]:
    """Every scoring day and model version with precision and recall as labels arrive."""
    result = warehouse.query(performance_history_sql(FactsSQL.for_warehouse(warehouse)))
    return [
        {
            **{k: row[k] for k in ("score_date", "model_version")},
            **{
                k: rounded(row[k], "count")
                for k in (
                    "transactions_scored",
                    "alerts",
                    "alerts_confirmed_fraud",
                    "alerts_confirmed_legitimate",
                    "frauds_known",
                )
            },
            **{
                k: rounded(row[k], "pct")
                for k in ("precision_so_far_pct", "recall_so_far_pct", "precision_reviewed_pct")
            },
        }
        for row in records(result)
    ]


# --- the alert queue --------------------------------------------------------------------------


def short_key(value: Any, length: int = 12) -> str | None:
    """A hashed key shown short: enough to tell two apart, not a value to copy around."""
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= length else text[:length] + "…"


QUEUE_LENGTH = 200  # alerts the fraud page lists; the rest stay a query away


def alert_queue(
    warehouse: Warehouse, day: date, version: str, limit: int = QUEUE_LENGTH
) -> list[dict[str, Any]]:
    """The day's alerts by rank, as investigators read them: the same query as the report's
    top alerts (report_facts.top_alerts_sql). No PII: customers by their bank key, the
    counterparty a card's merchant or terminal, else only the start of its salted hash."""
    sql = FactsSQL.for_warehouse(warehouse)
    rows = records(warehouse.query(top_alerts_sql(sql, day, version, limit)))
    queue = []
    for row in rows:
        public = public_counterparty(row["counterparty_key"], row["transaction_type"])
        queue.append(
            {
                "rank": int(row["alert_rank"]),
                "transaction_id": row["transaction_id"],
                "score": rounded(row["score"], "score"),
                "decision": "alert",
                "reasons": " · ".join(
                    str(row[f"reason_{i}_description"])
                    for i in (1, 2, 3)
                    if row[f"reason_{i}_description"] is not None
                ),
                "amount_brl": rounded(row["amount_brl"], "brl"),
                "transaction_type": row["transaction_type"],
                "channel": row["channel"],
                "state": row["state"],
                "time": row["event_time"],
                "customer_id": row["customer_id"],
                "counterparty": public or short_key(row["counterparty_key"]),
                "fraud_reported": bool(row["is_fraud_reported"]),
                "review": row["review_verdict"],
            }
        )
    return queue


# --- losses -----------------------------------------------------------------------------------


def losses_sql(sql: FactsSQL) -> str:
    listed = ", ".join(sql_text(d) for d in LOSS_DIMENSIONS)
    return f"""
        select
            dimension,
            dimension_value,
            fraud_transactions,
            fraud_loss_brl,
            100 * fraud_rate as fraud_rate_pct
        from {sql.table("fct_risk_analysis")}
        where dimension in ({listed})
        order by dimension, fraud_loss_brl desc, dimension_value
        """


def losses(warehouse: Warehouse) -> dict[str, list[dict[str, Any]]]:
    """Fraud losses reported so far (fct_risk_analysis), per dimension: value, frauds, loss,
    rate."""
    result = warehouse.query(losses_sql(FactsSQL.for_warehouse(warehouse)))
    by_dimension: dict[str, list[dict[str, Any]]] = {d: [] for d in LOSS_DIMENSIONS}
    for row in records(result):
        by_dimension[row["dimension"]].append(
            {
                "value": str(row["dimension_value"]),
                "frauds": rounded(row["fraud_transactions"], "count"),
                "loss_brl": rounded(row["fraud_loss_brl"], "brl"),
                "fraud_rate_pct": rounded(row["fraud_rate_pct"], "pct"),
            }
        )
    return by_dimension


# --- score distribution -----------------------------------------------------------------------


def score_distribution_sql(sql: FactsSQL, day: date, version: str) -> str:
    return f"""
        select band_lower, band_upper, transactions, alerts, frauds_known
        from {sql.table("fct_score_distribution_daily")}
        where score_date = {sql_date(day)} and model_version = {sql_text(version)}
        order by band_lower
        """


def score_distribution(warehouse: Warehouse, day: date, version: str) -> list[dict[str, Any]]:
    sql = FactsSQL.for_warehouse(warehouse)
    return [
        {
            "band": f"{row['band_lower']:g}–{min(row['band_upper'], 1.0):g}",
            "band_lower": float(row["band_lower"]),
            "transactions": rounded(row["transactions"], "count"),
            "alerts": rounded(row["alerts"], "count"),
            "frauds_known": rounded(row["frauds_known"], "count"),
        }
        for row in records(warehouse.query(score_distribution_sql(sql, day, version)))
    ]


# --- data quality -----------------------------------------------------------------------------


def data_quality_sql(sql: FactsSQL) -> str:
    return f"""
        select
            feed,
            ingestion_date,
            disposition,
            rejection_reason,
            raw_rows,
            last_ingested_at
        from {sql.table("fct_data_quality_daily")}
        order by feed, ingestion_date, disposition, rejection_reason
        """


@dataclass(frozen=True)
class DataQuality:
    feeds: dict[str, dict[str, int]]  # feed -> raw_rows, accepted, duplicate, rejected
    last_ingested: dict[str, datetime | None]  # feed -> its newest row's landing time
    rejected_by_day: list[dict[str, Any]]  # ingestion_date, feed, reason, rows


def data_quality(warehouse: Warehouse, feeds: tuple[str, ...]) -> DataQuality:
    """Rows per feed and disposition, freshness and rejections per day (fct_data_quality_daily)."""
    rows = records(warehouse.query(data_quality_sql(FactsSQL.for_warehouse(warehouse))))
    counts: dict[str, dict[str, int]] = {
        feed: {"raw_rows": 0, **dict.fromkeys(DISPOSITIONS, 0)} for feed in feeds
    }
    last: dict[str, datetime | None] = dict.fromkeys(feeds)
    rejected = []
    for row in rows:
        feed = str(row["feed"])
        n = int(row["raw_rows"])
        tally = counts.setdefault(feed, {"raw_rows": 0, **dict.fromkeys(DISPOSITIONS, 0)})
        tally["raw_rows"] += n
        tally[str(row["disposition"])] += n
        landed = row["last_ingested_at"]
        if landed is not None and (last.get(feed) is None or landed > last[feed]):
            last[feed] = landed
        if row["disposition"] == "rejected":
            rejected.append(
                {
                    "ingestion_date": row["ingestion_date"],
                    "feed": feed,
                    "reason": row["rejection_reason"],
                    "rows": n,
                }
            )
    return DataQuality(counts, last, rejected)
