"""The online state and the features computed from it: `ml_features`, one transaction at a time.

Every feature of ml/features.py is computed here from rows that had arrived before the request,
with the definitions of models/curated/ml_features.sql (the windows of macros/cross_db/
rolling_window.sql: (t - N, t], rows at the same instant in, the transaction itself out):

- per customer: its rows of the last 30 days (amounts in integer cents, so sums are exact like
  dbt's decimals), with the flags the windows count (inbound, new sender, declined), the
  type/direction (earlier maximum of the same kind) and the state (same-state share);
- per counterparty (the curated key: hashed when personal): its rows of the last 30 + label
  delay days with the first-time and unusual-state flags and when each was reported as fraud;
- per device: when each customer first used it;
- over the whole history: each customer's first transaction with each counterparty and with
  each device (int_customer_*_first_seen), and each customer's latest transaction.

The arithmetic is written once: `compute_features(tx, history)` reads a `History`, the rows of
the transaction's customer, counterparty and device as numpy columns sorted by event time plus
the first-seen pairs, whichever store they came from. A backend (`StateBackend`) only stores
rows and hands them over: `OnlineState` here (numpy tracks in the process, the embedded
default), `RedisState` (python_jobs/serve/redis_state.py, a Redis server shared by processes).
Two backends holding the same rows therefore give the very same features, bit for bit.

The arithmetic depends on no order among rows of the same instant (counts, exact integer sums,
maxima, and the previous row's time), so a store may keep them in any order; and it ignores
rows outside the windows, so a store may hand over more rows than the windows need.

A transaction is featured by `featurize` (read only) and then added by `apply`; a fraud report
by `apply_report`; a published export by `load` (the warm-up). Nothing else changes the state,
so a state rebuilt from the same rows in the same order is the same state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ml.features import FEATURES, LABEL_DELAY_DAYS, WINDOW_DAYS
from python_jobs.serve.contract import Transaction
from python_jobs.serve.sharded import SHARDS, PairMap, ShardedDict, pair_key
from python_jobs.serve.tracks import Track

DAY = 86_400
HOUR = 3_600
CUSTOMER_DAYS = max(WINDOW_DAYS)
COUNTERPARTY_DAYS = LABEL_DELAY_DAYS + max(WINDOW_DAYS)
DEVICE_DAYS = 30  # device_other_customers_30d
# Rows delivered up to this many days after the newest event (late deliveries) still find
# their whole window history in the state; a later one is featured from what it holds.
LATE_DAYS = 7
# rows older than this (behind the newest event) can no longer enter any window
RETENTION_DAYS = COUNTERPARTY_DAYS + LATE_DAYS + 1
NEVER = np.iinfo(np.int64).max  # "not reported"
NO_STATE = -1  # the state code of a row without a state
UNKNOWN_STATE = -2  # the code of a state no stored row has
NOTHING_PUBLISHED = ""  # `loaded()` of a state warmed from a lake without an export

TYPES = ("PIX", "TED", "BOLETO", "DEBIT", "CREDIT")
CHANNELS = ("mobile", "internet_banking", "atm", "pos", "branch")

CUSTOMER_COLUMNS = {
    "ts": np.int64,
    "cents": np.int64,
    "inbound": np.bool_,
    "new_sender": np.bool_,  # inbound from a counterparty for the first time
    "declined": np.bool_,
    "kind": np.int16,  # transaction type and direction (the earlier maximum's partition)
    "state": np.int16,  # code of the UF, NO_STATE without one
    "tid": object,
}
COUNTERPARTY_COLUMNS = {
    "ts": np.int64,
    "first_time": np.bool_,  # the customer's first transaction with this counterparty
    "unusual": np.bool_,  # made in a state unusual for its customer
    "reported": np.int64,  # when first reported as fraud, NEVER until then
    "tid": object,  # (where a report finds its row: the features never read it)
}
DEVICE_COLUMNS = {"ts": np.int64, "customer": object}  # each customer's first use

# What a published export gives the warm-up for its recent rows (`Snapshot.recent`), in time
# order: the transaction's keys and values, and the flags dbt computed for it.
SNAPSHOT_COLUMNS = {
    "tid": object,
    "customer": object,
    "counterparty": object,  # None without one
    "ts": np.int64,
    "cents": np.int64,
    "inbound": np.bool_,
    "declined": np.bool_,
    "kind": np.int16,
    "state": object,  # the UF as text, None without one
    "first_time": np.bool_,
    "unusual": np.bool_,
    "reported": np.int64,  # NEVER when not reported
}


@dataclass(frozen=True)
class Featurized:
    """A transaction's features, and what `apply` stores of it."""

    features: dict[str, Any]  # FEATURES by name: int, float, bool or None (ml_features' types)
    epoch: int
    first_time_counterparty: bool
    new_device: bool
    unusual_state: bool

    def vector(self) -> np.ndarray:
        """The model input (ml/dataset.py feature_matrix): float32, null -> NaN."""
        return np.array(
            [[np.nan if (v := self.features[name]) is None else float(v) for name in FEATURES]],
            dtype=np.float32,
        )


# -- what the features read ----------------------------------------------------------------


class Rows(Protocol):
    """One key's rows as columns sorted by `ts` (a Track, or Columns read from a store)."""

    def column(self, name: str) -> np.ndarray: ...


class Columns:
    """Rows as plain arrays of equal length, sorted by `ts`."""

    __slots__ = ("_columns",)

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self._columns = columns

    @classmethod
    def empty(cls, dtypes: Mapping[str, Any]) -> Columns:
        return cls({name: np.empty(0, dtype=dtype) for name, dtype in dtypes.items()})

    def column(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __len__(self) -> int:
        return len(self._columns["ts"])


NO_CUSTOMER_ROWS = Columns.empty(CUSTOMER_COLUMNS)
NO_COUNTERPARTY_ROWS = Columns.empty(COUNTERPARTY_COLUMNS)
NO_DEVICE_ROWS = Columns.empty(DEVICE_COLUMNS)


@dataclass(frozen=True)
class History:
    """What one transaction's features read (at its time t), from whichever store.

    Each Rows holds at least the rows the windows reach (more are ignored): the customer's
    rows in (t - 30 days, t] and its latest row strictly before t; the counterparty's rows in
    (t - COUNTERPARTY_DAYS, t] (none without a counterparty); the device's first uses in
    (t - 30 days, t] (none without a device). Rows after t are ignored.
    """

    customer: Rows  # CUSTOMER_COLUMNS
    counterparty: Rows  # COUNTERPARTY_COLUMNS (tid not read)
    device: Rows  # the `ts` of DEVICE_COLUMNS
    # the customer's first (epoch, transaction id) with the counterparty / the device
    first_counterparty: tuple[int, str] | None
    first_device: tuple[int, str] | None
    dropped_last: int | None  # the customer's latest row no longer among its rows
    state_code: int  # the code of tx.state in the customer's `state` column, or UNKNOWN_STATE


def kind_of(tx: Transaction) -> int:
    """The type and direction: the partition of amount_ratio_to_max_30d's earlier maximum."""
    return TYPES.index(tx.transaction_type) * 2 + (tx.direction == "inbound")


def _share(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


def _bounds(ts: np.ndarray, t: int, seconds: int) -> tuple[int, int]:
    """Index range of the rows in (t - seconds, t]."""
    return (
        int(ts.searchsorted(t - seconds, side="right")),
        int(ts.searchsorted(t, side="right")),
    )


def compute_features(tx: Transaction, history: History) -> Featurized:
    """The features of `tx` from the rows that arrived before it: the one implementation."""
    t = tx.epoch
    amount = tx.amount
    f: dict[str, Any] = {}
    ts = tx.event_ts
    f["amount_log"] = math.log(1 + amount)
    f["event_hour"] = ts.hour
    f["is_night"] = ts.hour < 6
    f["is_weekend"] = ts.isoweekday() in (6, 7)
    f["is_outbound"] = tx.direction == "outbound"
    for kind in TYPES:
        f[f"is_{kind.lower()}"] = tx.transaction_type == kind
    for channel in CHANNELS:
        f[f"is_{channel}"] = tx.channel == channel

    first_cp = None if tx.counterparty_key is None else history.first_counterparty
    first_time_cp = tx.counterparty_key is not None and (
        first_cp is None or first_cp > (t, tx.transaction_id)
    )
    first_dev = None if tx.device_id is None else history.first_device
    new_device = tx.device_id is not None and (
        first_dev is None or first_dev > (t, tx.transaction_id)
    )

    same_state = _customer_features(tx, t, f, history)
    count_30d = f["cust_tx_count_30d"]
    unusual = tx.state is not None and count_30d > 0 and same_state == 0
    f["is_first_time_counterparty"] = first_time_cp
    f["is_new_device"] = new_device
    _counterparty_features(
        t, f, history.counterparty if tx.counterparty_key is not None else NO_COUNTERPARTY_ROWS
    )
    _device_features(tx, t, f, history.device, first_dev, new_device)
    f["cust_same_state_share_30d"] = (
        None if tx.state is None else _share(float(same_state), count_30d)
    )
    features = {name: f[name] for name in FEATURES}
    return Featurized(features, t, first_time_cp, new_device, unusual)


def _customer_features(tx: Transaction, t: int, f: dict[str, Any], history: History) -> int:
    """The customer's windows into `f`; returns its same-state count over 30 days."""
    amount = tx.amount
    rows = history.customer
    times = rows.column("ts")
    b = {days: _bounds(times, t, days * DAY) for days in (1, 7, 30)}
    hour = _bounds(times, t, HOUR)
    cents = rows.column("cents")
    for days in WINDOW_DAYS:
        lo, hi = b[days]
        n = hi - lo
        total = int(cents[lo:hi].sum()) / 100 if n else 0.0
        average = None if n == 0 else total / n
        f[f"cust_tx_count_{days}d"] = n
        f[f"cust_amount_sum_{days}d"] = total
        f[f"cust_amount_avg_{days}d"] = average
        f[f"amount_ratio_to_avg_{days}d"] = None if average is None else amount / average
    lo30, hi = b[30]
    n30 = hi - lo30
    f["amount_zscore_30d"] = None
    if n30 > 1:
        values = cents[lo30:hi]
        s = int(values.sum())
        # exact, as dbt's decimals: n * sum(x^2) - sum(x)^2 in cents^2 (int64 while the sum
        # of squares cannot overflow it, Python's integers beyond)
        peak = int(np.abs(values).max())
        squares = (
            int(values @ values)
            if n30 * peak * peak < 2**63
            else sum(v * v for v in values.tolist())
        )
        spread = n30 * squares - s * s
        deviation = math.sqrt((spread / 10_000) / (n30 * (n30 - 1)))
        if deviation != 0:
            f["amount_zscore_30d"] = (amount - (s / 100) / n30) / deviation
    strictly_before = int(times.searchsorted(t, side="left"))
    f["cust_seconds_since_prev_tx"] = _seconds_since_previous(
        tx, t, rows, strictly_before, hi, history.dropped_last
    )
    lo1, hi1 = b[1]
    lo7, _ = b[7]
    inbound = rows.column("inbound")
    new_sender = rows.column("new_sender")
    f["cust_inbound_count_1d"] = int(np.count_nonzero(inbound[lo1:hi1]))
    inbound_cents = int(cents[lo1:hi1][inbound[lo1:hi1]].sum())
    f["cust_inbound_new_sender_count_7d"] = int(np.count_nonzero(new_sender[lo7:hi]))
    f["cust_inbound_new_sender_count_1d"] = int(np.count_nonzero(new_sender[lo1:hi1]))
    f["cust_tx_count_1h"] = hour[1] - hour[0]
    f["cust_declined_count_1h"] = int(np.count_nonzero(rows.column("declined")[hour[0] : hour[1]]))
    kinds = rows.column("kind")[lo30:strictly_before]
    same_kind = cents[lo30:strictly_before][kinds == kind_of(tx)]
    earlier_max = int(same_kind.max()) / 100 if same_kind.size else None
    same_state = (
        0
        if tx.state is None
        else int(np.count_nonzero(rows.column("state")[lo30:hi] == history.state_code))
    )
    inbound_amount = inbound_cents / 100
    f["cust_inbound_amount_1d"] = inbound_amount
    f["outbound_to_inbound_ratio_1d"] = (
        (None if inbound_cents == 0 else amount / inbound_amount)
        if tx.direction == "outbound"
        else 0.0
    )
    f["amount_ratio_to_max_30d"] = (
        None if earlier_max is None or earlier_max == 0 else amount / earlier_max
    )
    return same_state


def _seconds_since_previous(
    tx: Transaction, t: int, rows: Rows, earlier: int, through: int, dropped_last: int | None
) -> int | None:
    """lag(event_ts) over the customer's rows ordered by (event_ts, transaction_id): rows
    [earlier, through) are the ones at t."""
    peers = rows.column("tid")[earlier:through]
    if any(peer < tx.transaction_id for peer in peers):
        return 0
    if earlier:
        return t - int(rows.column("ts")[earlier - 1])
    return None if dropped_last is None else t - dropped_last


def _counterparty_features(t: int, f: dict[str, Any], rows: Rows) -> None:
    delay = LABEL_DELAY_DAYS
    lo_all, hi = _bounds(rows.column("ts"), t, COUNTERPARTY_DAYS * DAY)
    reported = rows.column("reported")[lo_all:hi] <= t
    times = rows.column("ts")[lo_all:hi]

    def since(days: int) -> int:
        return int(times.searchsorted(t - days * DAY, side="right"))

    def frauds(start: int, end: int) -> int:
        return int(np.count_nonzero(reported[start:end]))

    n = len(times)
    delay_start = since(delay)
    for days in WINDOW_DAYS:
        start = since(days)
        f[f"cp_tx_count_{days}d"] = n - start
        labelled_start = since(delay + days)
        labelled = delay_start - labelled_start
        f[f"cp_labelled_tx_count_{days}d"] = labelled
        f[f"cp_labelled_fraud_rate_{days}d"] = (
            None if labelled == 0 else frauds(labelled_start, delay_start) / labelled
        )
    f["cp_fraud_reported_30d"] = frauds(since(30), n)
    day_start = lo_all + since(1)
    day_rows = hi - day_start
    f["cp_new_customer_count_1d"] = int(np.count_nonzero(rows.column("first_time")[day_start:hi]))
    unusual = int(np.count_nonzero(rows.column("unusual")[day_start:hi]))
    f["cp_unusual_state_share_1d"] = None if day_rows == 0 else unusual / day_rows


def _device_features(
    tx: Transaction,
    t: int,
    f: dict[str, Any],
    rows: Rows,
    first_dev: tuple[int, str] | None,
    new_device: bool,
) -> None:
    if tx.device_id is None:
        f["cust_device_seconds_since_first_use"] = None
        f["device_other_customers_30d"] = 0
        return
    first_ts = t if new_device or first_dev is None else first_dev[0]
    f["cust_device_seconds_since_first_use"] = t - first_ts
    lo, hi = _bounds(rows.column("ts"), t, DEVICE_DAYS * DAY)
    first_uses = hi - lo
    own = not new_device and t - DEVICE_DAYS * DAY < first_ts <= t
    f["device_other_customers_30d"] = first_uses - int(own)


# -- what the warm-up loads ----------------------------------------------------------------


@dataclass(frozen=True)
class FirstSeen:
    """Each customer's first transaction with each key (counterparty or device), as lists."""

    customers: list[str]
    keys: list[str]
    ts: list[int]
    tids: list[str]

    def pairs(self) -> Iterator[tuple[str, tuple[int, str]]]:
        """(pair_key(customer, key), (epoch, transaction id)) of every first transaction."""
        for customer, key, t, tid in zip(
            self.customers, self.keys, self.ts, self.tids, strict=True
        ):
            yield pair_key(customer, key), (t, tid)

    def __len__(self) -> int:
        return len(self.customers)


@dataclass(frozen=True)
class Snapshot:
    """A published export as the state needs it (python_jobs/serve/warmup.py reads it)."""

    version: str  # the export's, or NOTHING_PUBLISHED
    newest: int  # the latest event epoch of the export, 0 for none
    recent: Mapping[str, np.ndarray]  # SNAPSHOT_COLUMNS: rows within RETENTION_DAYS of newest
    first_counterparty: FirstSeen  # over the whole history
    first_device: FirstSeen
    dropped_last: Mapping[str, int]  # each customer's latest row before the recent ones

    @classmethod
    def empty(cls, version: str) -> Snapshot:
        nothing = FirstSeen([], [], [], [])
        recent: dict[str, np.ndarray] = {
            name: np.empty(0, dtype=dtype) for name, dtype in SNAPSHOT_COLUMNS.items()
        }
        return cls(version, 0, recent, nothing, nothing, {})

    @property
    def rows(self) -> int:
        return len(self.recent["ts"])

    @property
    def horizon(self) -> int:
        """The earliest event epoch the state keeps rows of."""
        return self.newest - RETENTION_DAYS * DAY

    def device_first_uses(self) -> dict[str, list[tuple[int, str]]]:
        """Each device's first uses (epoch, customer) within the retention, in time order."""
        by_device: dict[str, list[tuple[int, str]]] = {}
        seen = self.first_device
        for customer, device, first in zip(seen.customers, seen.keys, seen.ts, strict=True):
            if first >= self.horizon:
                by_device.setdefault(device, []).append((first, customer))
        for uses in by_device.values():
            uses.sort()
        return by_device


def by_key(key: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each non-null value of `key` and the positions of its rows, in their order."""
    present = np.array([k is not None for k in key], dtype=bool)
    index = np.flatnonzero(present)
    order = index[np.argsort(key[index].astype(str), kind="stable")]
    sorted_key = key[order]
    if sorted_key.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    ends = np.r_[starts[1:], sorted_key.size]
    return [
        (str(sorted_key[s]), order[s:e])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


# -- the backends --------------------------------------------------------------------------


class StateBackend(Protocol):
    """What the service and the warm-up use of a state (OnlineState, RedisState)."""

    @property
    def newest(self) -> int:
        """The latest event epoch seen (0 for none)."""
        ...

    @property
    def applied(self) -> int:
        """Transactions applied or loaded."""
        ...

    @property
    def customers(self) -> Sized: ...

    @property
    def transactions(self) -> Sized: ...

    def knows(self, transaction_id: str) -> bool: ...

    def featurize(self, tx: Transaction) -> Featurized: ...

    def apply(self, tx: Transaction, featurized: Featurized) -> None: ...

    def apply_report(self, transaction_id: str, reported_epoch: int) -> None: ...

    def prune(self) -> int: ...

    def size(self) -> dict[str, int]: ...

    def loaded(self) -> str | None:
        """The export version the state was warmed from (NOTHING_PUBLISHED for a lake without
        one), None when it never was."""
        ...

    def load(self, snapshot: Snapshot) -> None:
        """Fills the state with an export (the warm-up): what it held before is dropped."""
        ...


class OnlineState:
    """The in-process state (the embedded default): one Track per key, dicts for the rest."""

    def __init__(self) -> None:
        # the maps that reach millions of entries are sharded: growing one rebuilds a shard,
        # not a table of millions in one call holding the interpreter lock
        self.customers: ShardedDict[str, Track] = ShardedDict()
        self.counterparties: ShardedDict[str, Track] = ShardedDict()
        self.devices: ShardedDict[str, Track] = ShardedDict()
        # pair_key(customer, key) -> (event epoch, transaction id) of the first transaction
        self.first_counterparty: PairMap[int, str] = PairMap()
        self.first_device: PairMap[int, str] = PairMap()
        # a customer's latest transaction among the rows already dropped from its track
        self.dropped_last: dict[str, int] = {}
        # transaction id -> (counterparty, epoch): where a fraud report updates its row
        self.transactions: PairMap[str | None, int] = PairMap()
        # reports whose transaction has not arrived: transaction id -> first reported epoch
        self.pending_reports: dict[str, int] = {}
        self.states: dict[str, int] = {}
        self.newest = 0  # the latest event epoch seen
        self.applied = 0
        # rows in the customers' and the counterparties' tracks, kept as they change: the
        # readiness page asks for them, and summing a bank's tracks took most of a second
        self.customer_rows = 0
        self.counterparty_rows = 0
        self._loaded: str | None = None

    # -- reading ---------------------------------------------------------------------------

    def knows(self, transaction_id: str) -> bool:
        return transaction_id in self.transactions

    def loaded(self) -> str | None:
        return self._loaded

    def _state_code(self, state: str | None) -> int:
        if state is None:
            return NO_STATE
        code = self.states.get(state)
        if code is None:
            code = self.states[state] = len(self.states)
        return code

    def history(self, tx: Transaction) -> History:
        customer = self.customers.get(tx.customer_id)
        key, device = tx.counterparty_key, tx.device_id
        counterparty = None if key is None else self.counterparties.get(key)
        first_uses = None if device is None else self.devices.get(device)
        return History(
            customer=NO_CUSTOMER_ROWS if customer is None else customer,
            counterparty=NO_COUNTERPARTY_ROWS if counterparty is None else counterparty,
            device=NO_DEVICE_ROWS if first_uses is None else first_uses,
            first_counterparty=(
                None if key is None else self.first_counterparty.get(pair_key(tx.customer_id, key))
            ),
            first_device=(
                None if device is None else self.first_device.get(pair_key(tx.customer_id, device))
            ),
            dropped_last=self.dropped_last.get(tx.customer_id),
            state_code=(
                UNKNOWN_STATE if tx.state is None else self.states.get(tx.state, UNKNOWN_STATE)
            ),
        )

    def featurize(self, tx: Transaction) -> Featurized:
        return compute_features(tx, self.history(tx))

    # -- writing ---------------------------------------------------------------------------

    def apply(self, tx: Transaction, featurized: Featurized) -> None:
        """Adds a featured transaction (featurize must have seen the same state)."""
        t = featurized.epoch
        tid = tx.transaction_id
        if featurized.first_time_counterparty:
            assert tx.counterparty_key is not None
            pair = pair_key(tx.customer_id, tx.counterparty_key)
            previous = self.first_counterparty.get(pair)
            if previous is not None:  # a late, earlier row takes over as the first
                self._unmark_first_counterparty(tx, previous)
            self.first_counterparty[pair] = (t, tid)
        if featurized.new_device:
            assert tx.device_id is not None
            pair = pair_key(tx.customer_id, tx.device_id)
            previous = self.first_device.get(pair)
            device = self.devices.get(tx.device_id)
            if device is None:
                device = self.devices[tx.device_id] = Track(DEVICE_COLUMNS)
            if previous is not None:
                position = device.find(previous[0], "customer", tx.customer_id)
                if position is not None:
                    device.remove(position)
            device.insert({"ts": t, "customer": tx.customer_id})
            self.first_device[pair] = (t, tid)
        customer = self.customers.get(tx.customer_id)
        if customer is None:
            customer = self.customers[tx.customer_id] = Track(CUSTOMER_COLUMNS)
        inbound = tx.direction == "inbound"
        customer.insert(
            {
                "ts": t,
                "cents": tx.amount_cents,
                "inbound": inbound,
                "new_sender": inbound and featurized.first_time_counterparty,
                "declined": tx.status == "declined",
                "kind": kind_of(tx),
                "state": self._state_code(tx.state),
                "tid": tid,
            }
        )
        self.customer_rows += 1
        if tx.counterparty_key is not None:
            counterparty = self.counterparties.get(tx.counterparty_key)
            if counterparty is None:
                counterparty = self.counterparties[tx.counterparty_key] = Track(
                    COUNTERPARTY_COLUMNS
                )
            counterparty.insert(
                {
                    "ts": t,
                    "first_time": featurized.first_time_counterparty,
                    "unusual": featurized.unusual_state,
                    "reported": self.pending_reports.pop(tid, NEVER),
                    "tid": tid,
                }
            )
            self.counterparty_rows += 1
        else:
            self.pending_reports.pop(tid, None)
        self.transactions[tid] = (tx.counterparty_key, t)
        self.newest = max(self.newest, t)
        self.applied += 1

    def _unmark_first_counterparty(self, tx: Transaction, previous: tuple[int, str]) -> None:
        assert tx.counterparty_key is not None
        customer = self.customers.get(tx.customer_id)
        if customer is not None:
            position = customer.find(previous[0], "tid", previous[1])
            if position is not None:
                customer.set(position, "new_sender", False)
        counterparty = self.counterparties.get(tx.counterparty_key)
        if counterparty is not None:
            position = counterparty.find(previous[0], "tid", previous[1])
            if position is not None:
                counterparty.set(position, "first_time", False)

    def apply_report(self, transaction_id: str, reported_epoch: int) -> None:
        """A fraud report: the first report's time is the label's (int_fraud_labels)."""
        known = self.transactions.get(transaction_id)
        if known is None:
            earlier = self.pending_reports.get(transaction_id, NEVER)
            self.pending_reports[transaction_id] = min(earlier, reported_epoch)
            return
        counterparty_key, t = known
        if counterparty_key is None:
            return
        track = self.counterparties.get(counterparty_key)
        position = None if track is None else track.find(t, "tid", transaction_id)
        if track is not None and position is not None:
            current = int(track.column("reported")[position])
            track.set(position, "reported", min(current, reported_epoch))

    def prune(self) -> int:
        """Forgets rows no window can reach any more (RETENTION_DAYS behind the newest)."""
        return sum(self.prune_part(part) for part in range(self.prune_parts))

    # a prune in parts, the service's lock released between them: one pass over a 10M
    # state's maps takes seconds, which every decision would wait for
    prune_parts = SHARDS

    def prune_part(self, part: int) -> int:
        """prune() of one shard of every map (part < prune_parts): the rows dropped."""
        horizon = self.newest - RETENTION_DAYS * DAY
        dropped = 0
        dropped_last = self.dropped_last
        for customer_id, track in self.customers.shards()[part].items():
            k = track.before(horizon)
            if k:
                # the latest dropped row: a late row dropped now may be earlier than one
                # dropped before
                last = int(track.column("ts")[k - 1])
                dropped_last[customer_id] = max(last, dropped_last.get(customer_id, last))
                dropped += track.drop_before(horizon)
        self.customer_rows -= dropped
        for track in self.counterparties.shards()[part].values():
            self.counterparty_rows -= track.drop_before(horizon)
        for track in self.devices.shards()[part].values():
            track.drop_before(horizon)
        self.transactions.drop(part, lambda _, t: t >= horizon)
        return dropped

    def size(self) -> dict[str, int]:
        return {
            "customers": len(self.customers),
            "counterparties": len(self.counterparties),
            "devices": len(self.devices),
            "customer_rows": self.customer_rows,
            "counterparty_rows": self.counterparty_rows,
            "first_seen_pairs": len(self.first_counterparty) + len(self.first_device),
            "transactions": len(self.transactions),
        }

    # -- warm-up ---------------------------------------------------------------------------

    def load(self, snapshot: Snapshot) -> None:
        """The export's rows as tracks (a new OnlineState is empty: nothing to drop)."""
        self.newest = max(self.newest, snapshot.newest)
        recent = snapshot.recent
        rows = dict(recent)
        rows["new_sender"] = recent["inbound"] & recent["first_time"]
        rows["state"] = np.array(
            [self._state_code(s) for s in recent["state"].tolist()], dtype=np.int16
        )
        for target, key, columns in (
            (self.customers, recent["customer"], CUSTOMER_COLUMNS),
            (self.counterparties, recent["counterparty"], COUNTERPARTY_COLUMNS),
        ):
            for value, take in by_key(key):
                target[value] = Track.from_arrays({name: rows[name][take] for name in columns})
        self.customer_rows = sum(len(t) for t in self.customers.values())
        self.counterparty_rows = sum(len(t) for t in self.counterparties.values())
        self.transactions.update(
            zip(
                recent["tid"].tolist(),
                zip(recent["counterparty"].tolist(), recent["ts"].tolist(), strict=True),
                strict=True,
            )
        )
        self.applied += snapshot.rows
        self.first_counterparty.update(snapshot.first_counterparty.pairs())
        self.first_device.update(snapshot.first_device.pairs())
        for device, uses in snapshot.device_first_uses().items():
            self.devices[device] = Track.from_arrays(
                {
                    "ts": np.array([u[0] for u in uses], dtype=np.int64),
                    "customer": np.array([u[1] for u in uses], dtype=object),
                }
            )
        self.dropped_last.update(snapshot.dropped_last)
        self._loaded = snapshot.version
