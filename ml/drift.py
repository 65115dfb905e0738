"""Population stability (PSI): has a feature's distribution moved since training?

At training time each feature (and the score) is summarised by decile cut points and the
share of the training rows in each bin, plus the share of nulls; that summary is stored in
the model's metadata.json, so monitoring never needs the training data again. A day's
values are binned with the same cut points and compared:

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with shares floored at 1e-4 so an empty bin does not make it infinite. Rule of thumb:
< 0.1 stable, 0.1-0.2 moving, > 0.2 drifted.

Young lakes: a "previous 30 days" feature of a transaction on the lake's 10th day sees 10
days of history, so early training rows have smaller counts and sums than any day a month
later, and their PSI is large by construction, not because customers changed. Each such
feature therefore gets a second reference, over only the training rows whose history was
at least as long as its window (`history_reference`); monitoring compares like with like,
and calls a feature "warming up" (reported, not judged) while that is not possible.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml import features as contract
from ml.features import FEATURES, WINDOW_DAYS

QUANTILES = np.linspace(0.1, 0.9, 9)
FLOOR = 1e-4
_WINDOW_SUFFIX = re.compile(r"_(\d+)([dh])$")  # "previous N days / hours"
# Name words of features that look at the whole history, not a window: first time with a
# counterparty, a new device or sender, seconds since the previous transaction. Early in a
# lake almost everything is "new", so they need the longest window's days as well.
HISTORY_WORDS: frozenset[str] = frozenset({"first", "new", "since"})


@dataclass(frozen=True)
class Reference:
    edges: tuple[float, ...]  # ascending interior cut points; bins are right-closed
    shares: tuple[float, ...]  # len(edges) + 1 bins of the non-null values, then the null bin

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Reference:
        return cls(tuple(float(x) for x in data["edges"]), tuple(float(x) for x in data["shares"]))


def _shares(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    null = np.isnan(values)
    counts = np.bincount(
        np.searchsorted(edges, values[~null], side="left"), minlength=edges.size + 1
    ).astype(np.float64)
    counts = np.append(counts, null.sum())
    return counts / max(values.size, 1)


def reference(values: np.ndarray) -> Reference:
    """Decile cut points of the non-null values (observed values, duplicates merged, so a
    0/1 feature gets one or two bins), and the shares of `values` in each bin."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    edges = (
        np.unique(np.quantile(present, QUANTILES, method="inverted_cdf"))
        if present.size
        else np.zeros(0)
    )
    return Reference(
        tuple(float(e) for e in edges), tuple(float(s) for s in _shares(edges, values))
    )


def psi(ref: Reference, values: np.ndarray) -> float:
    expected = np.maximum(np.asarray(ref.shares), FLOOR)
    actual = np.maximum(_shares(np.asarray(ref.edges), values), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def history_days(feature: str) -> int:
    """Days of lake history a feature needs before its values are what they will be in a
    mature lake. The contract's own declaration when ml/features.py has one (a
    HISTORY_DAYS mapping); else from the name, by the conventions of ml/features.py: N for
    a "previous N days" window (*_<N>d; *_<N>h needs N/24 days, rounded up), at least the
    longest window for a feature over the whole history (HISTORY_WORDS in its name), and 0
    for a property of the transaction itself."""
    declared = getattr(contract, "HISTORY_DAYS", None)
    if isinstance(declared, dict) and feature in declared:
        return int(declared[feature])
    days = 0
    match = _WINDOW_SUFFIX.search(feature)
    if match:
        count, unit = int(match.group(1)), match.group(2)
        days = count if unit == "d" else math.ceil(count / 24)
    if HISTORY_WORDS & set(feature.split("_")):
        days = max(days, max(WINDOW_DAYS))
    return days


def history_age_days(event_date: pd.Series | np.ndarray, history_start: date) -> np.ndarray:
    """Whole days of lake history before each row's day (0 on the lake's first day)."""
    days = np.asarray(event_date, dtype="datetime64[D]")
    return (days - np.datetime64(history_start, "D")).astype(np.int64)


def history_reference(training: pd.DataFrame, history_start: date) -> dict[str, Any]:
    """Like-for-like references: for every feature that needs history, its reference over
    the training rows that had all of it (history age >= history_days), and how many rows
    that was (0: none had, the reference is empty). Stored in the model's metadata next to
    the plain references, with the lake's first day."""
    age = history_age_days(training["event_date"], history_start)
    features: dict[str, Any] = {}
    for feature in FEATURES:
        days = history_days(feature)
        if days == 0:
            continue
        full = age >= days
        values = training.loc[full, feature].to_numpy(dtype=np.float64)
        ref = reference(values).to_dict() if values.size else {"edges": [], "shares": []}
        features[feature] = {"days": days, "rows": int(values.size), **ref}
    return {"start": history_start.isoformat(), "features": features}
