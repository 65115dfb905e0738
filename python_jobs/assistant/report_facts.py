"""The daily report's facts: SQL over the curated marts into one JSON-serializable dict.

Everything the report states comes from here; templates and the language model only put it
into words, and the grounding check (grounding.py) holds model prose to these numbers. So
the facts are computed once, rounded once (ROUNDING) and written next to the report.

- KPIs of day D (default: the last day in fct_daily_kpis) against the previous day and the
  same weekday a week earlier. A young lake may have neither: the comparison is then null
  and a note says so.
- Anomalies: per transaction type, channel, state and customer segment, each slice's share
  of D's transactions and of D's approved volume against its shares over the trailing
  `anomaly_window_days` days. Shares, not levels: the data has a strong weekly cycle and
  pay-day peaks that move every slice together (the level is what the KPI comparisons
  show); a slice whose share moves is news. Robust z-score 0.6745 * (share - median) / MAD;
  when MAD is 0 the mean absolute deviation stands in (x 1.2533); flagged at |z| >=
  `anomaly_threshold` for slices with at least `anomaly_min_count` transactions on D or
  typically. Fraud counts are left out: labels arrive days to weeks late, so every recent
  day would look like a drop.
- The top alerts of D with their reason codes (fct_fraud_alerts), the alert volume and the
  precision so far (fct_model_performance_daily).
- Model health from the monitoring report of D (<lake>/monitoring/D.json, ml/monitor.py),
  else the latest one before D, else "no monitoring yet".

Text values that come from the data (merchant and terminal ids) are cut to a short length
and stripped of control characters: they may end up in a prompt (report_narrative.py
delimits them).
Counterparties that identify a person (PIX keys, bank accounts) are left out altogether:
only a card payment's merchant or terminal is shown.

One SQL text per question for both engines (DuckDB locally, Athena/Trino in production), so
that the two cannot drift apart; what differs is isolated in FactsSQL, chosen by the
warehouse's dialect:

- relations are qualified with the warehouse's curated schema (`curated` on DuckDB,
  `<schema>_curated` on Athena);
- the median: DuckDB's exact `median()`; Trino has only `approx_percentile`, whose answer
  would move the robust z-scores (and flip slices across the 3.5 threshold), so Athena gets
  an exact median from the sorted array of the group's values;
- HH:MM of a timestamp: `strftime` / `date_format`.

Everything else is written in the common subset: dates are computed in Python and sent as
`date 'YYYY-MM-DD'` literals (no interval arithmetic), ratios divide doubles (on Trino
`100.0 * a / b` is DECIMAL arithmetic rounded to one decimal, and bigint / bigint truncates).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from ml.features import WINDOW_DAYS
from ml.layout import MlLayout
from python_jobs.assistant.warehouse import QueryResult, Warehouse
from python_jobs.lake.layout import Lake

FACTS_VERSION = 1
# decimals per kind of number: every number in the facts is rounded here, once
ROUNDING = {
    "brl": 2,
    "pct": 2,  # percentages and percentage-point changes
    "z": 2,
    "median": 2,
    "psi": 3,
    "contribution": 3,
    "score": 4,
    "threshold": 6,
}
# numbers the reason wording itself uses ("previous 7 days", "at night (00:00-05:59)"): facts
# too, so that prose repeating a reason's description stays grounded. The night window is
# macros/business/bands.sql's.
CONSTANTS = {
    "feature_window_days": list(WINDOW_DAYS),
    "night_start_time": "00:00",
    "night_end_time": "05:59",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
MAX_TEXT = 60
CARD_TYPES = ("DEBIT", "CREDIT")
# e-mail; phone, CPF, CNPJ or account (8+ digits with separators); PIX random key (UUID)
_PERSONAL_KEY = re.compile(
    r"@|^\+?\d[\d.\-/ ]{7,}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FactsConfig:
    trend_days: int = 28
    anomaly_window_days: int = 28  # the trailing window D's shares are compared with
    anomaly_min_history: int = 7  # fewer days with data in it: no anomaly detection
    anomaly_threshold: float = 3.5  # |robust z| (Iglewicz and Hoaglin's cut-off)
    anomaly_min_count: int = 20  # slices this small are noise, not anomalies
    anomaly_max_items: int = 10
    top_alerts: int = 5
    reason_counts: int = 8


# KPI name -> (unit, how its change is measured): percentages change in percentage points
KPIS: dict[str, tuple[str, str]] = {
    "transactions": ("count", "pct"),
    "approved_transactions": ("count", "pct"),
    "approval_rate_pct": ("pct", "pp"),
    "approved_volume_brl": ("brl", "pct"),
    "average_ticket_brl": ("brl", "pct"),
    "fraud_transactions_reported": ("count", "pct"),
    "fraud_loss_brl": ("brl", "pct"),
}
# the report's KPIs and, for a period, the fraud rate so far too (the dashboard's overview)
PERIOD_KPIS: dict[str, tuple[str, str]] = {**KPIS, "fraud_rate_pct": ("pct", "pp")}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ANOMALY_DIMENSIONS = ("transaction_type", "channel", "state", "segment")
ANOMALY_METRICS = ("transactions", "approved_volume_brl")


def rounded(value: Any, kind: str) -> Any:
    """The facts' one rounding rule: counts are ints, everything else ROUNDING[kind]."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if kind == "count":
        return int(value)
    return round(float(value), ROUNDING[kind])


def clean_text(value: Any) -> str | None:
    """Data text as it may enter a prompt: no control characters or line breaks, spaces
    collapsed, at most MAX_TEXT characters."""
    if value is None:
        return None
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def public_counterparty(key: Any, transaction_type: str | None) -> str | None:
    """The merchant, terminal or ATM of a card payment may be shown (and may carry injected
    text: it is data). The counterparty of a PIX, TED or boleto is a person's key or account
    (e-mail, phone, CPF/CNPJ, account number, random key) and stays out of reports and
    prompts, as does any card counterparty that looks like one."""
    text = clean_text(key)
    if transaction_type not in CARD_TYPES or text is None or _PERSONAL_KEY.search(text):
        return None
    return text


def sql_date(day: date) -> str:
    """A date literal, valid on DuckDB and Athena. Only ever built from a `date` object,
    never from user text."""
    return f"date '{day.isoformat()}'"


def sql_text(value: str) -> str:
    """A string literal (a model version read back from the marts)."""
    return "'" + value.replace("'", "''") + "'"


def records(result: QueryResult) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


# --- the engine-specific pieces ------------------------------------------------------------------

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]*")
DIALECTS = ("duckdb", "athena")


@dataclass(frozen=True)
class FactsSQL:
    """What the facts SQL needs to know about its engine: where the marts are and the three
    constructs that differ (module docstring). Every query below is written once, with
    these calls where DuckDB and Athena disagree."""

    dialect: str = "duckdb"
    schema: str = "curated"

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"no facts SQL for dialect {self.dialect!r}; one of {DIALECTS}")
        # the schema is pasted into SQL: a Glue/DuckDB name, never anything else
        if not _SCHEMA_NAME.fullmatch(self.schema):
            raise ValueError(f"not a curated schema name: {self.schema!r}")

    @classmethod
    def for_warehouse(cls, warehouse: Warehouse) -> FactsSQL:
        return cls(warehouse.dialect, getattr(warehouse, "curated_schema", "curated"))

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"

    def median(self, expression: str) -> str:
        """The exact median of the group's non-null values (the average of the middle two
        for an even count, as DuckDB's median). Trino has no exact median: the sorted array
        of the values and its middle element(s); indexes are cast from a double division,
        explicit rather than relying on Trino's integer division."""
        if self.dialect == "duckdb":
            return f"median({expression})"
        values = f"array_sort(array_agg({expression}) filter (where {expression} is not null))"
        count = f"count({expression})"
        lower = f"element_at({values}, cast(floor(({count} + 1) / 2e0) as bigint))"
        upper = f"element_at({values}, cast(floor({count} / 2e0) as bigint) + 1)"
        return f"case when {count} > 0 then ({lower} + {upper}) / 2e0 end"

    def hour_minute(self, expression: str) -> str:
        """HH:MM of a timestamp, as text."""
        if self.dialect == "duckdb":
            return f"strftime({expression}, '%H:%M')"
        return f"date_format({expression}, '%H:%i')"


# --- the queries: built here, run by the functions below, listed for the tests --------------------


def data_range_sql(sql: FactsSQL) -> str:
    return f"select min(event_date), max(event_date) from {sql.table('fct_daily_kpis')}"


def day_exists_sql(sql: FactsSQL, day: date) -> str:
    return f"select count(*) from {sql.table('fct_daily_kpis')} where event_date = {sql_date(day)}"


@dataclass(frozen=True)
class KpiSlice:
    """Which transactions the KPIs count: every value listed per dimension, all when empty.
    The report counts every transaction (the empty slice); the dashboard's filters fill it.
    Values are sent as quoted literals (sql_text), never pasted."""

    transaction_types: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()  # dim_customers.segment, as fct_risk_analysis slices it

    @property
    def by_segment(self) -> bool:
        """Region and segment are not columns of fct_daily_kpis: such a slice is summed from
        fct_daily_kpis_by_segment, the same figures one level finer (a dbt test holds them
        equal)."""
        return bool(self.regions or self.segments)


def _in_list(column: str, values: Sequence[str]) -> str:
    return f"{column} in ({', '.join(sql_text(v) for v in values)})"


def kpi_source_sql(
    sql: FactsSQL,
    first: date,
    last: date,
    where: KpiSlice = KpiSlice(),
    days: Sequence[date] = (),
) -> str:
    """The rows every KPI is summed from, between `first` and `last` (only `days` of them
    when given), within the slice: the additive columns of fct_daily_kpis (event_date,
    transactions, approved_transactions, approved_volume_brl, fraud_transactions,
    fraud_loss_brl)."""
    period = f"event_date between {sql_date(first)} and {sql_date(last)}"
    if days:
        period += f" and event_date in ({', '.join(sql_date(d) for d in days)})"
    filters = [period]
    for column, values in (
        ("transaction_type", where.transaction_types),
        ("channel", where.channels),
        ("state", where.states),
        ("region", where.regions),
        ("customer_segment", where.segments),
    ):
        if values:
            filters.append(_in_list(column, values))
    relation = "fct_daily_kpis_by_segment" if where.by_segment else "fct_daily_kpis"
    return f"""
            select
                event_date,
                transactions,
                approved_transactions,
                approved_volume_brl,
                fraud_transactions,
                fraud_loss_brl
            from {sql.table(relation)}
            where {" and ".join(filters)}"""


def _kpi_sql(grouping: str, name: str, source: str) -> str:
    """The KPIs per `grouping` (an expression over the source's event_date, named `name`):
    sums, then the ratios from the sums (ticket and rates are never averaged)."""
    return f"""
        with kpi_rows as ({source}
        ),
        summed as (
            select
                {grouping} as {name},
                sum(transactions) as transactions,
                sum(approved_transactions) as approved_transactions,
                sum(approved_volume_brl) as approved_volume_brl,
                sum(fraud_transactions) as fraud_transactions_reported,
                sum(fraud_loss_brl) as fraud_loss_brl
            from kpi_rows
            group by {grouping}
        )
        select
            {name},
            transactions,
            approved_transactions,
            100 * cast(approved_transactions as double)
                / nullif(transactions, 0) as approval_rate_pct,
            approved_volume_brl,
            cast(approved_volume_brl as double)
                / nullif(approved_transactions, 0) as average_ticket_brl,
            fraud_transactions_reported,
            fraud_loss_brl,
            100 * cast(fraud_transactions_reported as double)
                / nullif(transactions, 0) as fraud_rate_pct
        from summed
        order by {name}
        """


def daily_kpis_sql(sql: FactsSQL, days: Sequence[date], where: KpiSlice = KpiSlice()) -> str:
    """The KPIs of each of `days` (one row per day that has transactions, by event_date)."""
    return _kpi_sql(
        "event_date", "event_date", kpi_source_sql(sql, min(days), max(days), where, days)
    )


def kpi_series_sql(sql: FactsSQL, first: date, last: date, where: KpiSlice = KpiSlice()) -> str:
    """The KPIs of every day from `first` to `last` that has transactions in the slice."""
    return _kpi_sql("event_date", "event_date", kpi_source_sql(sql, first, last, where))


def period_kpis_sql(
    sql: FactsSQL, periods: Sequence[tuple[date, date]], where: KpiSlice = KpiSlice()
) -> str:
    """The KPIs of each period (first, last), one row per period with transactions, by its
    index in `periods` (column `period`).
    Periods must not overlap (a day counts in the first period that holds it)."""
    cases = " ".join(
        f"when event_date between {sql_date(a)} and {sql_date(b)} then {i}"
        for i, (a, b) in enumerate(periods)
    )
    first = min(a for a, _ in periods)
    last = max(b for _, b in periods)
    return _kpi_sql(f"case {cases} end", "period", kpi_source_sql(sql, first, last, where))


def trend_sql(sql: FactsSQL, day: date, days: int) -> str:
    first = day - timedelta(days=days - 1)
    return f"""
        select
            event_date,
            sum(transactions) as transactions,
            sum(approved_volume_brl) as approved_volume_brl
        from {sql.table("fct_daily_kpis")}
        where event_date between {sql_date(first)} and {sql_date(day)}
        group by event_date
        order by event_date
        """


def history_days_sql(sql: FactsSQL, day: date, config: FactsConfig) -> str:
    first = day - timedelta(days=config.anomaly_window_days)
    return (
        f"select count(distinct event_date) from {sql.table('fct_daily_kpis')} "
        f"where event_date >= {sql_date(first)} and event_date < {sql_date(day)}"
    )


def anomaly_sql(day: date, config: FactsConfig, sql: FactsSQL | None = None) -> str:
    """Robust z-scores of each slice's share of D against its shares over the trailing
    window. Slices missing on a day count as zero (a channel with no transactions is the
    anomaly itself). One row per slice and metric with enough volume, flagged or not."""
    sql = sql or FactsSQL()
    first = day - timedelta(days=config.anomaly_window_days)
    window = f"between {sql_date(first)} and {sql_date(day)}"
    kpi_slices = "\n            union all\n".join(
        f"""            select
                event_date,
                '{dimension}' as dimension,
                coalesce({dimension}, 'unknown') as dimension_value,
                transactions,
                approved_volume_brl
            from {sql.table("fct_daily_kpis")}
            where event_date {window}"""
        for dimension in ("transaction_type", "channel", "state")
    )
    return f"""
        with
        kpi_slices as (
{kpi_slices}
        ),
        sliced as (
            select
                event_date,
                dimension,
                dimension_value,
                sum(transactions) as transactions,
                cast(sum(approved_volume_brl) as double) as approved_volume_brl
            from kpi_slices
            group by event_date, dimension, dimension_value
            union all
            select
                event_date,
                'segment' as dimension,
                business_segment as dimension_value,
                sum(transactions) as transactions,
                cast(sum(approved_volume_brl) as double) as approved_volume_brl
            from {sql.table("fct_daily_kpis_by_segment")}
            where event_date {window}
            group by event_date, business_segment
        ),
        days as (
            select distinct event_date from sliced
        ),
        slices as (
            select distinct dimension, dimension_value from sliced
        ),
        filled as (
            select
                days.event_date,
                slices.dimension,
                slices.dimension_value,
                cast(coalesce(sliced.transactions, 0) as double) as transactions,
                coalesce(sliced.approved_volume_brl, 0) as approved_volume_brl
            from days
            cross join slices
            left join sliced
                on days.event_date = sliced.event_date
                and slices.dimension = sliced.dimension
                and slices.dimension_value = sliced.dimension_value
        ),
        totals as (
            select
                event_date,
                dimension,
                sum(transactions) as transactions,
                sum(approved_volume_brl) as approved_volume_brl
            from filled
            group by event_date, dimension
        ),
        observations as (
            select
                filled.event_date, filled.dimension, filled.dimension_value,
                'transactions' as metric,
                filled.transactions as observed,
                totals.transactions as day_total,
                filled.transactions / nullif(totals.transactions, 0) as share,
                filled.transactions as slice_transactions
            from filled
            inner join totals
                on filled.event_date = totals.event_date and filled.dimension = totals.dimension
            union all
            select
                filled.event_date, filled.dimension, filled.dimension_value,
                'approved_volume_brl' as metric,
                filled.approved_volume_brl as observed,
                totals.approved_volume_brl as day_total,
                filled.approved_volume_brl / nullif(totals.approved_volume_brl, 0) as share,
                filled.transactions as slice_transactions
            from filled
            inner join totals
                on filled.event_date = totals.event_date and filled.dimension = totals.dimension
        ),
        history as (
            select * from observations where event_date < {sql_date(day)}
        ),
        centre as (
            select
                dimension, dimension_value, metric,
                {sql.median("share")} as usual_share,
                {sql.median("slice_transactions")} as usual_transactions
            from history
            group by dimension, dimension_value, metric
        ),
        deviations as (
            select
                history.dimension, history.dimension_value, history.metric,
                abs(history.share - centre.usual_share) as deviation
            from history
            inner join centre
                on history.dimension = centre.dimension
                and history.dimension_value = centre.dimension_value
                and history.metric = centre.metric
        ),
        spread as (
            select
                dimension, dimension_value, metric,
                {sql.median("deviation")} as mad,
                avg(deviation) as mean_abs_deviation
            from deviations
            group by dimension, dimension_value, metric
        ),
        scored as (
            select
                today.dimension,
                today.dimension_value,
                today.metric,
                today.observed,
                centre.usual_share * today.day_total as expected,
                today.share,
                centre.usual_share,
                greatest(today.slice_transactions, centre.usual_transactions) as volume,
                case
                    when spread.mad > 0
                        then 0.6745 * (today.share - centre.usual_share) / spread.mad
                    when spread.mean_abs_deviation > 0
                        then (today.share - centre.usual_share)
                            / (1.2533 * spread.mean_abs_deviation)
                end as robust_z
            from observations as today
            inner join centre
                on today.dimension = centre.dimension
                and today.dimension_value = centre.dimension_value
                and today.metric = centre.metric
            inner join spread
                on today.dimension = spread.dimension
                and today.dimension_value = spread.dimension_value
                and today.metric = spread.metric
            where today.event_date = {sql_date(day)}
        )
        select
            dimension,
            dimension_value,
            metric,
            observed,
            expected,
            100 * share as share_pct,
            100 * usual_share as usual_share_pct,
            robust_z,
            coalesce(abs(robust_z) >= {float(config.anomaly_threshold)}, false) as is_anomaly
        from scored
        where volume >= {int(config.anomaly_min_count)}
        order by abs(robust_z) desc nulls last, dimension, dimension_value, metric
    """


def performance_sql(sql: FactsSQL, day: date) -> str:
    return f"""
        select
            model_version,
            transactions_scored,
            alerts,
            alerts_confirmed_fraud,
            100 * cast(alerts as double) / nullif(transactions_scored, 0) as alert_rate_pct,
            100 * precision_so_far as precision_so_far_pct
        from {sql.table("fct_model_performance_daily")}
        where score_date = {sql_date(day)}
        order by model_version desc
        """


def top_alerts_sql(sql: FactsSQL, day: date, version: str, limit: int) -> str:
    """The day's alerts by rank: the report's top ones, the dashboard's queue."""
    return f"""
        select
            alert_rank,
            transaction_id,
            score,
            threshold,
            {sql.hour_minute("event_ts")} as event_time,
            amount_brl,
            transaction_type,
            channel,
            direction,
            state,
            mcc_group,
            counterparty_key,
            reason_1_feature, reason_1_code, reason_1_description, reason_1_contribution,
            reason_2_feature, reason_2_code, reason_2_description, reason_2_contribution,
            reason_3_feature, reason_3_code, reason_3_description, reason_3_contribution,
            is_fraud_reported,
            customer_id,
            review_verdict
        from {sql.table("fct_fraud_alerts")}
        where score_date = {sql_date(day)} and model_version = {sql_text(version)}
        order by alert_rank
        limit {int(limit)}
        """


def reason_counts_sql(sql: FactsSQL, day: date, version: str, limit: int) -> str:
    return f"""
        select
            coalesce(reason_1_code, 'NONE') as code,
            count(*) as alerts
        from {sql.table("fct_fraud_alerts")}
        where score_date = {sql_date(day)} and model_version = {sql_text(version)}
        group by coalesce(reason_1_code, 'NONE')
        order by alerts desc, code
        limit {int(limit)}
        """


def facts_queries(
    sql: FactsSQL, day: date, config: FactsConfig = FactsConfig(), version: str = "v1"
) -> dict[str, str]:
    """Every query compute_facts can send for day `day`, by name: what the tests parse in
    each dialect (the run itself sends a subset, in this order)."""
    previous, last_week = day - timedelta(days=1), day - timedelta(days=7)
    return {
        "data_range": data_range_sql(sql),
        "day_exists": day_exists_sql(sql, day),
        "daily_kpis": daily_kpis_sql(sql, [day, previous, last_week]),
        "history_days": history_days_sql(sql, day, config),
        "anomalies": anomaly_sql(day, config, sql),
        "performance": performance_sql(sql, day),
        "top_alerts": top_alerts_sql(sql, day, version, config.top_alerts),
        "reason_counts": reason_counts_sql(sql, day, version, config.reason_counts),
        "trend": trend_sql(sql, day, config.trend_days),
    }


# --- day -----------------------------------------------------------------------------------------


def data_range(warehouse: Warehouse) -> tuple[date, date] | None:
    (row,) = warehouse.query(data_range_sql(FactsSQL.for_warehouse(warehouse))).rows
    return None if row[0] is None else (row[0], row[1])


def resolve_day(warehouse: Warehouse, day: date | None) -> tuple[date, tuple[date, date]]:
    """D itself (default: the last day with data) and the lake's first and last day."""
    sql = FactsSQL.for_warehouse(warehouse)
    span = data_range(warehouse)
    if span is None:
        raise ValueError(f"{sql.table('fct_daily_kpis')} is empty: build the lake first")
    if day is None:
        return span[1], span
    found = warehouse.query(day_exists_sql(sql, day)).rows[0][0]
    if not found:
        raise ValueError(f"no data for {day}: the lake covers {span[0]}..{span[1]}")
    return day, span


# --- KPIs --------------------------------------------------------------------------------------


def _kpi_values(row: Mapping[str, Any], kpis: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    return {name: rounded(row[name], unit) for name, (unit, _) in kpis.items()}


def daily_kpis(
    warehouse: Warehouse, days: Sequence[date], where: KpiSlice = KpiSlice()
) -> dict[date, dict[str, Any]]:
    """The report's KPIs (KPIS) of each day that has transactions in the slice."""
    result = warehouse.query(daily_kpis_sql(FactsSQL.for_warehouse(warehouse), days, where))
    return {_as_date(row["event_date"]): _kpi_values(row, KPIS) for row in records(result)}


def kpi_series(
    warehouse: Warehouse, first: date, last: date, where: KpiSlice = KpiSlice()
) -> list[dict[str, Any]]:
    """Every KPI (PERIOD_KPIS) per day from `first` to `last`, days without transactions in
    the slice left out: {"date": ..., kpi: value, ...}."""
    result = warehouse.query(kpi_series_sql(FactsSQL.for_warehouse(warehouse), first, last, where))
    return [
        {"date": _as_date(row["event_date"]), **_kpi_values(row, PERIOD_KPIS)}
        for row in records(result)
    ]


def period_kpis(
    warehouse: Warehouse, periods: Sequence[tuple[date, date]], where: KpiSlice = KpiSlice()
) -> list[dict[str, Any] | None]:
    """Every KPI (PERIOD_KPIS) of each period, None for a period without transactions in
    the slice."""
    result = warehouse.query(period_kpis_sql(FactsSQL.for_warehouse(warehouse), periods, where))
    found = {int(row["period"]): _kpi_values(row, PERIOD_KPIS) for row in records(result)}
    return [found.get(i) for i in range(len(periods))]


def compare_kpis(
    current: Mapping[str, Any], before: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Each KPI of PERIOD_KPIS with its change against `before` (None: not available), the
    way the report measures a change: percentage points for percentages, else percent."""
    return [
        {
            "metric": name,
            "unit": unit,
            "value": current[name],
            "before": None if before is None else before[name],
            "change": None if before is None else _change(current[name], before[name], measure),
            "change_unit": measure,
        }
        for name, (unit, measure) in PERIOD_KPIS.items()
    ]


def _as_date(value: Any) -> date:
    """A date from the engine (DuckDB gives dates, Athena's rows are typed by the warehouse;
    text when an engine did not type it)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _change(value: Any, before: Any, measure: str) -> float | None:
    if value is None or before is None:
        return None
    if measure == "pp":
        return rounded(value - before, "pct")
    return None if before == 0 else rounded(100.0 * (value - before) / before, "pct")


def kpi_facts(warehouse: Warehouse, day: date) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    previous, last_week = day - timedelta(days=1), day - timedelta(days=7)
    values = daily_kpis(warehouse, [day, previous, last_week])
    notes = []
    comparisons = {}
    for key, other in (("previous_day", previous), ("same_weekday_last_week", last_week)):
        comparisons[key] = {"date": other.isoformat(), "available": other in values}
        if other not in values:
            notes.append({"code": f"no_{key}", "date": other.isoformat()})
    metrics = []
    for name, (unit, measure) in KPIS.items():
        value = values[day][name]
        before, week = (values.get(d, {}).get(name) for d in (previous, last_week))
        metrics.append(
            {
                "metric": name,
                "unit": unit,
                "value": value,
                "previous_day": before,
                "previous_day_change": _change(value, before, measure),
                "same_weekday_last_week": week,
                "same_weekday_last_week_change": _change(value, week, measure),
                "change_unit": measure,
            }
        )
    notes.append({"code": "fraud_labels_late"})
    return {"comparisons": comparisons, "metrics": metrics}, notes


def trend(warehouse: Warehouse, day: date, days: int) -> list[dict[str, Any]]:
    result = warehouse.query(trend_sql(FactsSQL.for_warehouse(warehouse), day, days))
    return [
        {
            "date": row["event_date"].isoformat(),
            "transactions": rounded(row["transactions"], "count"),
            "approved_volume_brl": rounded(row["approved_volume_brl"], "brl"),
        }
        for row in records(result)
    ]


# --- anomalies ---------------------------------------------------------------------------------


def anomaly_facts(
    warehouse: Warehouse, day: date, config: FactsConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sql = FactsSQL.for_warehouse(warehouse)
    (history_days,) = warehouse.query(history_days_sql(sql, day, config)).rows[0]
    method = {
        "measure": "share_of_day",
        "window_days": config.anomaly_window_days,
        "min_history_days": config.anomaly_min_history,
        "threshold_z": config.anomaly_threshold,
        "min_transactions": config.anomaly_min_count,
        "dimensions": list(ANOMALY_DIMENSIONS),
        "metrics": list(ANOMALY_METRICS),
    }
    facts: dict[str, Any] = {
        "method": method,
        "history_days": int(history_days),
        "available": history_days >= config.anomaly_min_history,
        "slices_checked": 0,
        "count": 0,
        "shown": 0,
        "items": [],
    }
    if not facts["available"]:
        note = {"code": "anomalies_not_enough_history", "days": int(history_days)}
        return facts, [note | {"needed": config.anomaly_min_history}]
    rows = records(warehouse.query(anomaly_sql(day, config, sql)))
    flagged = [row for row in rows if row["is_anomaly"]]
    unit = {"transactions": "count", "approved_volume_brl": "brl"}
    facts["slices_checked"] = len(rows)
    facts["count"] = len(flagged)
    facts["items"] = [
        {
            "dimension": row["dimension"],
            "value": clean_text(row["dimension_value"]),
            "metric": row["metric"],
            "observed": rounded(row["observed"], unit[row["metric"]]),
            "expected": rounded(row["expected"], "brl"),
            "share_pct": rounded(row["share_pct"], "pct"),
            "usual_share_pct": rounded(row["usual_share_pct"], "pct"),
            "robust_z": rounded(row["robust_z"], "z"),
            "direction": "up" if row["robust_z"] > 0 else "down",
        }
        for row in flagged[: config.anomaly_max_items]
    ]
    facts["shown"] = len(facts["items"])
    return facts, []


# --- alerts ------------------------------------------------------------------------------------


def alert_facts(
    warehouse: Warehouse, day: date, config: FactsConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """From the marts on both engines (fct_model_performance_daily, fct_fraud_alerts), never
    from the scoring job's files: on AWS those are read through the same marts."""
    sql = FactsSQL.for_warehouse(warehouse)
    performance = records(warehouse.query(performance_sql(sql, day)))
    if not performance:
        return {"available": False}, [{"code": "no_scores", "date": day.isoformat()}]
    # a re-scored day has one version: the scoring job replaces the day's file
    latest = performance[0]
    version = str(latest["model_version"])
    top = records(warehouse.query(top_alerts_sql(sql, day, version, config.top_alerts)))
    reason_counts = records(
        warehouse.query(reason_counts_sql(sql, day, version, config.reason_counts))
    )
    items = [
        {
            "rank": int(row["alert_rank"]),
            "transaction_id": row["transaction_id"],
            "score": rounded(row["score"], "score"),
            "event_time": row["event_time"],
            "amount_brl": rounded(row["amount_brl"], "brl"),
            "transaction_type": row["transaction_type"],
            "channel": row["channel"],
            "direction": row["direction"],
            "state": row["state"],
            "mcc_group": row["mcc_group"],
            "counterparty": public_counterparty(row["counterparty_key"], row["transaction_type"]),
            "reasons": [
                {
                    "feature": row[f"reason_{i}_feature"],
                    "code": row[f"reason_{i}_code"],
                    "description": row[f"reason_{i}_description"],
                    "contribution": rounded(row[f"reason_{i}_contribution"], "contribution"),
                }
                for i in (1, 2, 3)
                if row[f"reason_{i}_feature"] is not None
            ],
            "fraud_reported_so_far": bool(row["is_fraud_reported"]),
        }
        for row in top
    ]
    facts = {
        "available": True,
        "model_version": latest["model_version"],
        "threshold": rounded(top[0]["threshold"], "threshold") if top else None,
        "transactions_scored": rounded(latest["transactions_scored"], "count"),
        "alerts": rounded(latest["alerts"], "count"),
        "alert_rate_pct": rounded(latest["alert_rate_pct"], "pct"),
        "alerts_confirmed_fraud_so_far": rounded(latest["alerts_confirmed_fraud"], "count"),
        "precision_so_far_pct": rounded(latest["precision_so_far_pct"], "pct"),
        "shown": len(items),
        "top": items,
        "top_reason_counts": [
            {"code": row["code"], "alerts": rounded(row["alerts"], "count")}
            for row in reason_counts
        ],
    }
    return facts, []


# --- model health: monitoring reports, local or on S3 ------------------------------------------

_REPORT_NAME = re.compile(r"\d{4}-\d{2}-\d{2}\.json")


class MonitoringReports(Protocol):
    """Where `banklake monitor`'s reports (<day>.json, ml/monitor.py) are read from."""

    @property
    def location(self) -> str: ...

    def days(self) -> list[str]:
        """ISO days that have a report, in any order."""
        ...

    def read(self, day: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LocalMonitoring:
    """<lake>/monitoring/ (MlLayout.monitoring): the DuckDB target's reports."""

    folder: Path

    @property
    def location(self) -> str:
        return str(self.folder)

    def days(self) -> list[str]:
        return [p.stem for p in self.folder.glob("*.json") if _REPORT_NAME.fullmatch(p.name)]

    def read(self, day: str) -> dict[str, Any]:
        return json.loads((self.folder / f"{day}.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class S3Monitoring:
    """s3://<bucket>/<lake root>/monitoring/, beside raw/ (the lake's keys on S3, as
    ml/layout.py lays them out): where the Athena target looks. Monitoring runs where the
    lake is, so its reports are there only once uploaded (docs/assistant.md, Daily report); an empty
    prefix is "no monitoring", any other S3 error is raised (a permission problem must
    show, not read as a quiet model)."""

    bucket: str
    prefix: str  # ends with "monitoring/"
    client: Any

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def days(self) -> list[str]:
        from python_jobs.aws.s3 import list_objects

        listed = list_objects(self.client, self.bucket, self.prefix)
        names = (obj["Key"][len(self.prefix) :] for obj in listed)
        return [name.removesuffix(".json") for name in names if _REPORT_NAME.fullmatch(name)]

    def read(self, day: str) -> dict[str, Any]:
        answer = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}{day}.json")
        return json.loads(answer["Body"].read().decode("utf-8"))


@dataclass(frozen=True)
class NoMonitoring:
    """Nowhere to look (Athena without $BANKLAKE_S3_RAW_DIR): the report says so."""

    @property
    def location(self) -> str:
        return "none"

    def days(self) -> list[str]:
        return []

    def read(self, day: str) -> dict[str, Any]:  # pragma: no cover - days() is empty
        raise FileNotFoundError(day)


def monitoring_for(
    target: str, lake: Lake, env: Mapping[str, str] | None = None, *, s3: Any = None
) -> MonitoringReports:
    """DuckDB: the lake's monitoring folder. Athena: monitoring/ beside $BANKLAKE_S3_RAW_DIR
    (the same lake root the quarantine count and the scores table use), else none."""
    if target == "duckdb":
        return LocalMonitoring(MlLayout(lake).monitoring)
    env = os.environ if env is None else env
    raw_dir = env.get("BANKLAKE_S3_RAW_DIR")
    if not raw_dir:
        return NoMonitoring()
    from python_jobs.aws.s3 import make_s3_client
    from python_jobs.aws.s3_location import S3Location

    try:
        home = S3Location.parse(raw_dir)
    except ValueError as error:
        raise ValueError(f"BANKLAKE_S3_RAW_DIR={raw_dir!r}: {error}") from None
    client = make_s3_client(env) if s3 is None else s3
    return S3Monitoring(home.bucket, home.monitoring_prefix, client)


def model_health_facts(
    reports: MonitoringReports | MlLayout, day: date, *, drifted: int = 5
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The monitoring report of D, else the latest one before D, else none."""
    if isinstance(reports, MlLayout):
        reports = LocalMonitoring(reports.monitoring)
    days = sorted(d for d in reports.days() if d <= day.isoformat())
    if not days:
        return {"available": False}, [{"code": "no_monitoring"}]
    report = reports.read(days[-1])
    config = report.get("config", {})
    # warming up: windows still filling on a young lake; monitoring does not judge them yet
    warming_up = set(report.get("warming_up", {}))
    not_judged = set(config.get("psi_not_judged", [])) | warming_up
    warning = float(config.get("psi_warning", 0.1))
    psi = sorted(
        ((name, value) for name, value in report["feature_psi"].items() if name not in not_judged),
        key=lambda item: -item[1],
    )
    mature = report["realized"]["mature"]
    facts = {
        "available": True,
        "monitoring_date": report["day"],
        "model_version": report["model_version"],
        "verdict": report["verdict"],
        "findings": len(report.get("findings", [])),
        "alert_rate_pct": rounded(100.0 * report["alert_rate"], "pct"),
        "expected_alert_rate_pct": rounded(100.0 * report["expected_alert_rate"], "pct"),
        "score_psi": rounded(report["score_psi"], "psi"),
        "psi_warning": warning,
        "psi_drift": float(config.get("psi_drift", 0.2)),
        "features_above_warning": sum(value > warning for _, value in psi),
        "features_warming_up": len(warming_up),
        "top_drifted_features": [
            {"feature": name, "psi": rounded(value, "psi")}
            for name, value in psi[:drifted]
            if value > warning
        ],
        "mature_label_days": int(mature["days"]),
        "mature_alerts": int(mature["alerts"]),
        "mature_precision_pct": rounded(
            None if mature["precision"] is None else 100.0 * mature["precision"], "pct"
        ),
    }
    notes = []
    if report["day"] != day.isoformat():
        notes.append({"code": "monitoring_older", "date": report["day"]})
    return facts, notes


# --- all of it ---------------------------------------------------------------------------------


def compute_facts(
    warehouse: Warehouse,
    lake: Lake,
    day: date | None = None,
    config: FactsConfig = FactsConfig(),
    monitoring: MonitoringReports | None = None,
) -> dict[str, Any]:
    """The facts of day `day` (default: the last day with data), JSON-serializable. The
    same queries on either engine (FactsSQL); model health from `monitoring` (default: the
    lake's own folder)."""
    day, (first, last) = resolve_day(warehouse, day)
    kpis, kpi_notes = kpi_facts(warehouse, day)
    anomalies, anomaly_notes = anomaly_facts(warehouse, day, config)
    alerts, alert_notes = alert_facts(warehouse, day, config)
    reports = monitoring if monitoring is not None else LocalMonitoring(MlLayout(lake).monitoring)
    health, health_notes = model_health_facts(reports, day)
    return {
        "facts_version": FACTS_VERSION,
        "report_date": day.isoformat(),
        "weekday": WEEKDAYS[day.weekday()],
        "lake_first_date": first.isoformat(),
        "lake_last_date": last.isoformat(),
        "kpis": kpis,
        "anomalies": anomalies,
        "alerts": alerts,
        "model_health": health,
        "trend": trend(warehouse, day, config.trend_days),
        "constants": CONSTANTS,
        "notes": [*kpi_notes, *anomaly_notes, *alert_notes, *health_notes],
    }
