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

A transaction is featured by `featurize` (read only) and then added by `apply`; a fraud report
by `apply_report`. Nothing else changes the state, so a state rebuilt from the same rows in the
same order is the same state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.features import FEATURES, LABEL_DELAY_DAYS, WINDOW_DAYS
from python_jobs.serve.contract import Transaction
from python_jobs.serve.tracks import Track

DAY = 86_400
HOUR = 3_600
CUSTOMER_DAYS = max(WINDOW_DAYS)
COUNTERPARTY_DAYS = LABEL_DELAY_DAYS + max(WINDOW_DAYS)
# Rows delivered up to this many days after the newest event (late deliveries) still find
# their whole window history in the state; a later one is featured from what it holds.
LATE_DAYS = 7
# rows older than this (behind the newest event) can no longer enter any window
RETENTION_DAYS = COUNTERPARTY_DAYS + LATE_DAYS + 1
NEVER = np.iinfo(np.int64).max  # "not reported"

TYPES = ("PIX", "TED", "BOLETO", "DEBIT", "CREDIT")
CHANNELS = ("mobile", "internet_banking", "atm", "pos", "branch")

CUSTOMER_COLUMNS = {
    "ts": np.int64,
    "cents": np.int64,
    "inbound": np.bool_,
    "new_sender": np.bool_,  # inbound from a counterparty for the first time
    "declined": np.bool_,
    "kind": np.int16,  # transaction type and direction (the earlier maximum's partition)
    "state": np.int16,  # code of the UF, -1 without one
    "tid": object,
}
COUNTERPARTY_COLUMNS = {
    "ts": np.int64,
    "first_time": np.bool_,  # the customer's first transaction with this counterparty
    "unusual": np.bool_,  # made in a state unusual for its customer
    "reported": np.int64,  # when first reported as fraud, NEVER until then
    "tid": object,
}
DEVICE_COLUMNS = {"ts": np.int64, "customer": object}  # each customer's first use


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


def _kind(tx: Transaction) -> int:
    return TYPES.index(tx.transaction_type) * 2 + (tx.direction == "inbound")


def _share(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


class OnlineState:
    """The in-process state (the embedded default)."""

    def __init__(self) -> None:
        self.customers: dict[str, Track] = {}
        self.counterparties: dict[str, Track] = {}
        self.devices: dict[str, Track] = {}
        # (customer, key) -> (event epoch, transaction id) of the first transaction
        self.first_counterparty: dict[tuple[str, str], tuple[int, str]] = {}
        self.first_device: dict[tuple[str, str], tuple[int, str]] = {}
        # a customer's latest transaction among the rows already dropped from its track
        self.dropped_last: dict[str, int] = {}
        # transaction id -> (counterparty, epoch): where a fraud report updates its row
        self.transactions: dict[str, tuple[str | None, int]] = {}
        # reports whose transaction has not arrived: transaction id -> first reported epoch
        self.pending_reports: dict[str, int] = {}
        self.states: dict[str, int] = {}
        self.newest = 0  # the latest event epoch seen
        self.applied = 0

    # -- reading ---------------------------------------------------------------------------

    def knows(self, transaction_id: str) -> bool:
        return transaction_id in self.transactions

    def _state_code(self, state: str | None) -> int:
        if state is None:
            return -1
        code = self.states.get(state)
        if code is None:
            code = self.states[state] = len(self.states)
        return code

    def featurize(self, tx: Transaction) -> Featurized:
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

        first_cp = (
            None
            if tx.counterparty_key is None
            else self.first_counterparty.get((tx.customer_id, tx.counterparty_key))
        )
        first_time_cp = tx.counterparty_key is not None and (
            first_cp is None or first_cp > (t, tx.transaction_id)
        )
        first_dev = (
            None if tx.device_id is None else self.first_device.get((tx.customer_id, tx.device_id))
        )
        new_device = tx.device_id is not None and (
            first_dev is None or first_dev > (t, tx.transaction_id)
        )

        same_state = self._customer_features(tx, t, f)
        count_30d = f["cust_tx_count_30d"]
        unusual = tx.state is not None and count_30d > 0 and same_state == 0
        f["is_first_time_counterparty"] = first_time_cp
        f["is_new_device"] = new_device
        self._counterparty_features(tx, t, f)
        self._device_features(tx, t, f, first_dev, new_device)
        f["cust_same_state_share_30d"] = (
            None if tx.state is None else _share(float(same_state), count_30d)
        )
        features = {name: f[name] for name in FEATURES}
        return Featurized(features, t, first_time_cp, new_device, unusual)

    def _customer_features(self, tx: Transaction, t: int, f: dict[str, Any]) -> int:
        """The customer's windows into `f`; returns its same-state count over 30 days."""
        amount = tx.amount
        track = self.customers.get(tx.customer_id)
        zero = (0, 0)
        b = {
            days: (track.bounds(t, days * DAY) if track is not None else zero)
            for days in (1, 7, 30)
        }
        hour = track.bounds(t, HOUR) if track is not None else zero
        cents = track.column("cents") if track is not None else np.empty(0, np.int64)
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
            values = cents[lo30:hi].tolist()
            s = sum(values)
            # exact, as dbt's decimals: n * sum(x^2) - sum(x)^2 in cents^2
            spread = n30 * sum(v * v for v in values) - s * s
            deviation = math.sqrt((spread / 10_000) / (n30 * (n30 - 1)))
            if deviation != 0:
                f["amount_zscore_30d"] = (amount - (s / 100) / n30) / deviation
        f["cust_seconds_since_prev_tx"] = self._seconds_since_previous(tx, t, track)
        lo1, hi1 = b[1]
        lo7, _ = b[7]
        if track is not None:
            inbound = track.column("inbound")
            new_sender = track.column("new_sender")
            f["cust_inbound_count_1d"] = int(inbound[lo1:hi1].sum())
            inbound_cents = int(cents[lo1:hi1][inbound[lo1:hi1]].sum())
            f["cust_inbound_new_sender_count_7d"] = int(new_sender[lo7:hi].sum())
            f["cust_inbound_new_sender_count_1d"] = int(new_sender[lo1:hi1].sum())
            f["cust_tx_count_1h"] = hour[1] - hour[0]
            f["cust_declined_count_1h"] = int(track.column("declined")[hour[0] : hour[1]].sum())
            strictly_before = track.before(t)
            kinds = track.column("kind")[lo30:strictly_before]
            same_kind = cents[lo30:strictly_before][kinds == _kind(tx)]
            earlier_max = int(same_kind.max()) / 100 if same_kind.size else None
            same_state = (
                0
                if tx.state is None
                else int((track.column("state")[lo30:hi] == self.states.get(tx.state, -2)).sum())
            )
        else:
            f["cust_inbound_count_1d"] = 0
            inbound_cents = 0
            f["cust_inbound_new_sender_count_7d"] = 0
            f["cust_inbound_new_sender_count_1d"] = 0
            f["cust_tx_count_1h"] = 0
            f["cust_declined_count_1h"] = 0
            earlier_max = None
            same_state = 0
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

    def _seconds_since_previous(self, tx: Transaction, t: int, track: Track | None) -> int | None:
        """lag(event_ts) over the customer's rows ordered by (event_ts, transaction_id)."""
        if track is not None:
            earlier = track.before(t)
            _, through = track.bounds(t, 0)
            peers = track.column("tid")[earlier:through]
            if any(peer < tx.transaction_id for peer in peers):
                return 0
            if earlier:
                return t - int(track.column("ts")[earlier - 1])
        last = self.dropped_last.get(tx.customer_id)
        return None if last is None else t - last

    def _counterparty_features(self, tx: Transaction, t: int, f: dict[str, Any]) -> None:
        track = (
            None if tx.counterparty_key is None else self.counterparties.get(tx.counterparty_key)
        )
        delay = LABEL_DELAY_DAYS
        if track is None:
            for days in WINDOW_DAYS:
                f[f"cp_tx_count_{days}d"] = 0
                f[f"cp_labelled_tx_count_{days}d"] = 0
                f[f"cp_labelled_fraud_rate_{days}d"] = None
            f["cp_fraud_reported_30d"] = 0
            f["cp_new_customer_count_1d"] = 0
            f["cp_unusual_state_share_1d"] = None
            return
        ts = track.column("ts")
        lo_all, hi = track.bounds(t, COUNTERPARTY_DAYS * DAY)
        reported = track.column("reported")[lo_all:hi] <= t
        times = ts[lo_all:hi]

        def since(days: int) -> int:
            return int(np.searchsorted(times, t - days * DAY, side="right"))

        def frauds(start: int, end: int) -> int:
            return int(reported[start:end].sum())

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
        f["cp_new_customer_count_1d"] = int(track.column("first_time")[day_start:hi].sum())
        unusual = int(track.column("unusual")[day_start:hi].sum())
        f["cp_unusual_state_share_1d"] = None if day_rows == 0 else unusual / day_rows

    def _device_features(
        self,
        tx: Transaction,
        t: int,
        f: dict[str, Any],
        first_dev: tuple[int, str] | None,
        new_device: bool,
    ) -> None:
        if tx.device_id is None:
            f["cust_device_seconds_since_first_use"] = None
            f["device_other_customers_30d"] = 0
            return
        first_ts = t if new_device or first_dev is None else first_dev[0]
        f["cust_device_seconds_since_first_use"] = t - first_ts
        track = self.devices.get(tx.device_id)
        first_uses = 0
        if track is not None:
            lo, hi = track.bounds(t, 30 * DAY)
            first_uses = hi - lo
        own = not new_device and t - 30 * DAY < first_ts <= t
        f["device_other_customers_30d"] = first_uses - int(own)

    # -- writing ---------------------------------------------------------------------------

    def apply(self, tx: Transaction, featurized: Featurized) -> None:
        """Adds a featured transaction (featurize must have seen the same state)."""
        t = featurized.epoch
        tid = tx.transaction_id
        if featurized.first_time_counterparty:
            assert tx.counterparty_key is not None
            pair = (tx.customer_id, tx.counterparty_key)
            previous = self.first_counterparty.get(pair)
            if previous is not None:  # a late, earlier row takes over as the first
                self._unmark_first_counterparty(tx, previous)
            self.first_counterparty[pair] = (t, tid)
        if featurized.new_device:
            assert tx.device_id is not None
            pair = (tx.customer_id, tx.device_id)
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
                "kind": _kind(tx),
                "state": self._state_code(tx.state),
                "tid": tid,
            }
        )
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
        horizon = self.newest - RETENTION_DAYS * DAY
        dropped = 0
        for customer_id, track in self.customers.items():
            k = track.before(horizon)
            if k:
                self.dropped_last[customer_id] = int(track.column("ts")[k - 1])
                dropped += track.drop_before(horizon)
        for tracks in (self.counterparties, self.devices):
            for track in tracks.values():
                track.drop_before(horizon)
        stale = [tid for tid, (_, t) in self.transactions.items() if t < horizon]
        for tid in stale:
            del self.transactions[tid]
        return dropped

    def size(self) -> dict[str, int]:
        return {
            "customers": len(self.customers),
            "counterparties": len(self.counterparties),
            "devices": len(self.devices),
            "customer_rows": sum(len(t) for t in self.customers.values()),
            "counterparty_rows": sum(len(t) for t in self.counterparties.values()),
            "first_seen_pairs": len(self.first_counterparty) + len(self.first_device),
            "transactions": len(self.transactions),
        }
