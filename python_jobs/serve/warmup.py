"""Warming the online state from what the build has published (never from banklake.duckdb).

The service starts while a build may hold the database for writing, so it reads the last
export (docs/decisions/0013-readers-read-the-published-export.md): `fct_transactions` for the
rows the windows can still reach and the whole history's first-seen pairs, `ml_features` for
each row's first-time and unusual-state flags as dbt computed them. The result is the state
the service would hold had it seen every published row arrive.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from python_jobs.assistant.warehouse import view_sql
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import NothingPublished, PublishedVersion, current
from python_jobs.serve.contract import epoch
from python_jobs.serve.state import (
    COUNTERPARTY_COLUMNS,
    CUSTOMER_COLUMNS,
    DAY,
    DEVICE_COLUMNS,
    NEVER,
    RETENTION_DAYS,
    TYPES,
    OnlineState,
)
from python_jobs.serve.tracks import Track

NEEDED_MARTS = ("fct_transactions", "ml_features")


@dataclass(frozen=True)
class Warmup:
    version: str | None  # the export read, None for an empty lake
    published_at: datetime | None
    rows: int
    newest_event: datetime | None
    seconds: float


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


def _groups(keys: np.ndarray) -> list[tuple[object, slice]]:
    """Runs of equal keys in an array sorted by key."""
    if keys.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], keys.size]
    return [(keys[s], slice(s, e)) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def _tracks(
    rows: dict[str, np.ndarray], key: np.ndarray, columns: Mapping[str, Any]
) -> dict[str, Track]:
    """One Track per key value, rows in time order (a stable sort by key keeps it)."""
    present = np.array([k is not None for k in key], dtype=bool)
    index = np.flatnonzero(present)
    order = index[np.argsort(key[index].astype(str), kind="stable")]
    sorted_key = key[order]
    tracks = {}
    for value, part in _groups(sorted_key):
        take = order[part]
        tracks[str(value)] = Track.from_arrays({name: rows[name][take] for name in columns})
    return tracks


def warm(state: OnlineState, lake: Lake) -> Warmup:
    """Loads the published lake into an empty `state`."""
    started = time.perf_counter()
    try:
        version = current(lake)
    except NothingPublished:
        return Warmup(None, None, 0, None, time.perf_counter() - started)
    con = _connect(version)
    try:
        newest = con.execute("select max(event_ts) from curated.fct_transactions").fetchone()
        newest_ts = None if newest is None else newest[0]
        if newest_ts is None:
            return Warmup(
                version.version, version.published_at, 0, None, time.perf_counter() - started
            )
        state.newest = max(state.newest, epoch(newest_ts))
        horizon = datetime(1970, 1, 1) + timedelta(seconds=state.newest - RETENTION_DAYS * DAY)
        recent = con.execute(RECENT_SQL, [horizon]).fetch_arrow_table()
        _load_recent(state, recent)
        for key, target in (
            ("counterparty_key", state.first_counterparty),
            ("device_id", state.first_device),
        ):
            seen = con.execute(FIRST_SEEN_SQL.format(key=key)).fetch_arrow_table()
            customers = seen["customer_id"].to_pylist()
            keys = seen["key"].to_pylist()
            firsts = _epochs(seen["first_ts"]).tolist()
            ids = seen["first_id"].to_pylist()
            target.update(
                zip(zip(customers, keys, strict=True), zip(firsts, ids, strict=True), strict=True)
            )
        _load_devices(state)
        dropped = con.execute(DROPPED_LAST_SQL, [horizon]).fetch_arrow_table()
        state.dropped_last.update(
            zip(
                dropped["customer_id"].to_pylist(),
                _epochs(dropped["last_ts"]).tolist(),
                strict=True,
            )
        )
        return Warmup(
            version.version,
            version.published_at,
            recent.num_rows,
            newest_ts,
            time.perf_counter() - started,
        )
    finally:
        con.close()


def _load_recent(state: OnlineState, recent: pa.Table) -> None:
    n = recent.num_rows
    ts = _epochs(recent["event_ts"])
    tid = np.array(recent["transaction_id"].to_pylist(), dtype=object)
    customer = np.array(recent["customer_id"].to_pylist(), dtype=object)
    counterparty = np.array(recent["counterparty_key"].to_pylist(), dtype=object)
    states = recent["state"].to_pylist()
    inbound = recent["inbound"].to_numpy(zero_copy_only=False).astype(bool)
    types = recent["transaction_type"].to_pylist()
    rows = {
        "ts": ts,
        "tid": tid,
        "cents": recent["cents"].to_numpy(zero_copy_only=False).astype(np.int64),
        "inbound": inbound,
        "new_sender": inbound & recent["first_time"].to_numpy(zero_copy_only=False).astype(bool),
        "declined": recent["declined"].to_numpy(zero_copy_only=False).astype(bool),
        "kind": np.array([TYPES.index(k) * 2 for k in types], dtype=np.int16)
        + inbound.astype(np.int16),
        "state": np.array([state._state_code(s) for s in states], dtype=np.int16),
        "first_time": recent["first_time"].to_numpy(zero_copy_only=False).astype(bool),
        "unusual": recent["unusual"].to_numpy(zero_copy_only=False).astype(bool),
        "reported": _epochs(recent["fraud_reported_at"]),
    }
    state.customers.update(_tracks(rows, customer, CUSTOMER_COLUMNS))
    state.counterparties.update(_tracks(rows, counterparty, COUNTERPARTY_COLUMNS))
    state.transactions.update(
        zip(tid.tolist(), zip(counterparty.tolist(), ts.tolist(), strict=True), strict=True)
    )
    state.applied += n


def _load_devices(state: OnlineState) -> None:
    """Each device's first uses in the retention window, from the first-seen pairs."""
    horizon = state.newest - RETENTION_DAYS * DAY
    by_device: dict[str, list[tuple[int, str]]] = {}
    for (customer, device), (first, _) in state.first_device.items():
        if first >= horizon:
            by_device.setdefault(device, []).append((first, customer))
    for device, uses in by_device.items():
        uses.sort()
        state.devices[device] = Track.from_arrays(
            {
                "ts": np.array([u[0] for u in uses], dtype=np.int64),
                "customer": np.array([u[1] for u in uses], dtype=object),
            }
        )
    assert set(DEVICE_COLUMNS) == {"ts", "customer"}
