"""Warming the online state from what the build has published (never from banklake.duckdb).

The service starts while a build may hold the database for writing, so it reads the last
export (docs/decisions/0013-readers-read-the-published-export.md): `fct_transactions` for the
rows the windows can still reach and the whole history's first-seen pairs, `ml_features` for
each row's first-time and unusual-state flags as dbt computed them. The result is the state
the service would hold had it seen every published row arrive.

The export is read into a backend-neutral `Snapshot` (plain columns and lists) that the state
loads itself (`StateBackend.load`): the in-process OnlineState builds its tracks, RedisState
writes its keys. Either way the same rows give the same features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from python_jobs.assistant.warehouse import view_sql
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import NothingPublished, PublishedVersion, current
from python_jobs.serve.contract import epoch
from python_jobs.serve.state import (
    DAY,
    NEVER,
    NOTHING_PUBLISHED,
    RETENTION_DAYS,
    TYPES,
    FirstSeen,
    Snapshot,
    StateBackend,
)

NEEDED_MARTS = ("fct_transactions", "ml_features")
# Every column the queries below read, with its type in the marts (DuckDB's names): an export
# that holds only these warms the same state. `banklake export --target athena` unloads exactly
# these from Athena (python_jobs/aws/athena_export.py); the warm-up tests check it against the
# marts dbt builds.
WARMUP_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "fct_transactions": (
        ("transaction_id", "VARCHAR"),
        ("event_ts", "TIMESTAMP"),
        ("customer_id", "VARCHAR"),
        ("counterparty_key", "VARCHAR"),
        ("device_id", "VARCHAR"),
        ("state", "VARCHAR"),
        ("transaction_type", "VARCHAR"),
        ("direction", "VARCHAR"),
        ("amount_brl", "DECIMAL(18,2)"),
        ("status", "VARCHAR"),
        ("is_fraud_reported", "BOOLEAN"),
        ("fraud_reported_at", "TIMESTAMP"),
        ("event_date", "DATE"),
    ),
    "ml_features": (
        ("transaction_id", "VARCHAR"),
        ("is_first_time_counterparty", "BOOLEAN"),
        ("cust_same_state_share_30d", "DOUBLE"),
        ("event_date", "DATE"),
    ),
}


@dataclass(frozen=True)
class Warmup:
    version: str | None  # the export read, None for an empty lake
    published_at: datetime | None
    rows: int
    newest_event: datetime | None
    seconds: float
    # the state already held this export (a persistent store, `warm(reuse=True)`): kept as is
    reused: bool = False


def _connect(version: PublishedVersion) -> duckdb.DuckDBPyConnection:
    missing = [name for name in NEEDED_MARTS if name not in version.marts]
    if missing:
        raise NothingPublished(
            f"the export {version.version} has no {', '.join(missing)}: run `banklake build`"
        )
    con = duckdb.connect(":memory:")
    con.execute("create schema curated")
    for name in NEEDED_MARTS:
        con.execute(view_sql(version, version.marts[name]))
    return con


RECENT_SQL = """
select
    t.transaction_id,
    t.event_ts,
    t.customer_id,
    t.counterparty_key,
    t.device_id,
    t.state,
    t.transaction_type,
    t.direction = 'inbound' as inbound,
    cast(round(t.amount_brl * 100) as bigint) as cents,
    t.status = 'declined' as declined,
    case when t.is_fraud_reported then t.fraud_reported_at end as fraud_reported_at,
    coalesce(f.is_first_time_counterparty, false) as first_time,
    coalesce(f.cust_same_state_share_30d = 0, false) as unusual
from curated.fct_transactions as t
left join curated.ml_features as f on t.transaction_id = f.transaction_id
where t.event_ts >= ?
order by t.event_ts, t.transaction_id
"""

FIRST_SEEN_SQL = """
select customer_id, {key} as key, earliest.ts as first_ts, earliest.id as first_id
from (
    select customer_id, {key}, min({{'ts': event_ts, 'id': transaction_id}}) as earliest
    from curated.fct_transactions
    where {key} is not null
    group by customer_id, {key}
)
"""

DROPPED_LAST_SQL = """
select customer_id, max(event_ts) as last_ts
from curated.fct_transactions
where event_ts < ?
group by customer_id
"""


def _epochs(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as epoch seconds (int64); nulls become NEVER."""
    seconds = values.cast(pa.timestamp("s")).cast(pa.int64())
    return np.asarray(seconds.fill_null(NEVER).to_numpy(zero_copy_only=False), dtype=np.int64)


def warm(state: StateBackend, lake: Lake, *, reuse: bool = False) -> Warmup:
    """Loads the published lake into `state`, replacing what it held (a DynamoDB state in
    generations loads it beside what it serves and keeps what was applied since the export:
    dynamodb_generations.py).

    With `reuse`, a state that already holds the current export (a persistent store such as
    RedisState, after a restart) is kept as it is, with what was applied since: only safe when
    everything applied to it was acknowledged (python_jobs/serve/redis_state.py says why)."""
    started = time.perf_counter()
    try:
        version = current(lake)
    except NothingPublished:
        reused = reuse and state.loaded() == NOTHING_PUBLISHED
        if not reused:
            state.load(Snapshot.empty(NOTHING_PUBLISHED))
        return Warmup(None, None, 0, None, time.perf_counter() - started, reused)
    con = _connect(version)
    try:
        newest = con.execute("select max(event_ts) from curated.fct_transactions").fetchone()
        newest_ts = None if newest is None else newest[0]
        if reuse and state.loaded() == version.version:
            return Warmup(
                version.version,
                version.published_at,
                0,
                newest_ts,
                time.perf_counter() - started,
                reused=True,
            )
        if newest_ts is None:
            state.load(Snapshot.empty(version.version))
            return Warmup(
                version.version, version.published_at, 0, None, time.perf_counter() - started
            )
        snapshot = _snapshot(con, version.version, epoch(newest_ts))
        state.load(snapshot)
        return Warmup(
            version.version,
            version.published_at,
            snapshot.rows,
            newest_ts,
            time.perf_counter() - started,
        )
    finally:
        con.close()


def _snapshot(con: duckdb.DuckDBPyConnection, version: str, newest: int) -> Snapshot:
    """What the state needs of the export whose latest event is at `newest`."""
    horizon = datetime(1970, 1, 1) + timedelta(seconds=newest - RETENTION_DAYS * DAY)
    recent = con.execute(RECENT_SQL, [horizon]).fetch_arrow_table()
    first_seen = []
    for key in ("counterparty_key", "device_id"):
        seen = con.execute(FIRST_SEEN_SQL.format(key=key)).fetch_arrow_table()
        first_seen.append(
            FirstSeen(
                seen["customer_id"].to_pylist(),
                seen["key"].to_pylist(),
                _epochs(seen["first_ts"]).tolist(),
                seen["first_id"].to_pylist(),
            )
        )
    dropped = con.execute(DROPPED_LAST_SQL, [horizon]).fetch_arrow_table()
    return Snapshot(
        version=version,
        newest=newest,
        recent=_recent_columns(recent),
        first_counterparty=first_seen[0],
        first_device=first_seen[1],
        dropped_last=dict(
            zip(
                dropped["customer_id"].to_pylist(),
                _epochs(dropped["last_ts"]).tolist(),
                strict=True,
            )
        ),
    )


def _recent_columns(recent: pa.Table) -> dict[str, np.ndarray]:
    """RECENT_SQL's rows as SNAPSHOT_COLUMNS."""

    def flags(name: str) -> np.ndarray:
        return recent[name].to_numpy(zero_copy_only=False).astype(bool)

    def objects(name: str) -> np.ndarray:
        return np.array(recent[name].to_pylist(), dtype=object)

    inbound = flags("inbound")
    return {
        "tid": objects("transaction_id"),
        "customer": objects("customer_id"),
        "counterparty": objects("counterparty_key"),
        "ts": _epochs(recent["event_ts"]),
        "cents": recent["cents"].to_numpy(zero_copy_only=False).astype(np.int64),
        "inbound": inbound,
        "declined": flags("declined"),
        "kind": np.array(
            [TYPES.index(k) * 2 for k in recent["transaction_type"].to_pylist()], dtype=np.int16
        )
        + inbound.astype(np.int16),
        "state": objects("state"),
        "first_time": flags("first_time"),
        "unusual": flags("unusual"),
        "reported": _epochs(recent["fraud_reported_at"]),
    }
