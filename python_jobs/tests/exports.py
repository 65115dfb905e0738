"""A published export made by hand, for tests that warm a state without a dbt build."""

from __future__ import annotations

import duckdb

from python_jobs.export import export_curated
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import current
from python_jobs.serve.contract import Transaction


def publish(lake: Lake, rows: list[Transaction]) -> str:
    """A published export of `rows` (fct_transactions and the ml_features flags the warm-up
    reads), as `banklake build` + export leave it; returns its version."""
    lake.root.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(lake.database)) as con:
        con.execute("create schema if not exists curated")
        con.execute(
            "create or replace table curated.fct_transactions ("
            "transaction_id varchar, event_ts timestamp, customer_id varchar, "
            "counterparty_key varchar, device_id varchar, state varchar, "
            "transaction_type varchar, direction varchar, amount_brl decimal(18, 2), "
            "status varchar, is_fraud_reported boolean, fraud_reported_at timestamp, "
            "event_date date)"
        )
        con.executemany(
            "insert into curated.fct_transactions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.transaction_id,
                    r.event_ts,
                    r.customer_id,
                    r.counterparty_key,
                    r.device_id,
                    r.state,
                    r.transaction_type,
                    r.direction,
                    r.amount_cents / 100,
                    r.status,
                    False,
                    None,
                    r.event_ts.date(),
                )
                for r in rows
            ],
        )
        # dbt's flags, near enough: the first row of a pair is first-time; no unusual state
        con.execute(
            "create or replace table curated.ml_features as "
            "select transaction_id, event_date, "
            "counterparty_key is not null and row_number() over ("
            "  partition by customer_id, counterparty_key order by event_ts, transaction_id"
            ") = 1 as is_first_time_counterparty, "
            "cast(null as double) as cust_same_state_share_30d "
            "from curated.fct_transactions"
        )
    export_curated(lake)
    return current(lake).version
