"""The time protocol: which rows train, which validate, which test, and which labels each sees.

Fraud labels arrive days to weeks after the transaction, so a random split (or even a plain
time split with today's labels) would let the model learn from labels it could never have
had in production. The protocol therefore replays production:

    [train_start ........ train_end] [gap: gap_days, unused] [test_start ... test_end]
                     [validation]   ^                       ^
                                    train_end + 1           cutoff = train_end + gap_days + 1

- The model is trained at the *cut-off* (00:00 of the day after the gap). Training (and
  validation) rows carry only the labels known then: label_reported_at <= cutoff. A fraud
  reported later is a non-fraud in training, exactly as it would have been in production.
- Transactions in the gap are used for nothing: their labels are the least mature, and
  skipping them keeps the test period out of reach of any feature window of the training
  rows' labels.
- Test rows carry the labels known now (the mart's), the best truth available. By default
  the test period ends `label_horizon_days` before the data's last day: the newest days'
  frauds are mostly not reported yet (reports take days to weeks), and a metric on those
  labels ranks the quickly reported kinds of fraud first instead of fraud (docs/fraud-model.md
  has the numbers). The gap makes the same judgement for training.
- The validation slice (early stopping and the alert threshold) is the last
  `validation_days` of the training period: the model is always checked on days after the
  ones it was fitted on.

Dates are inclusive calendar days on event_date. Everything here is a pure function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_TEST_DAYS = 7
DEFAULT_GAP_DAYS = 7
DEFAULT_LABEL_HORIZON_DAYS = 7  # newest days left out of the default test period
DEFAULT_VALIDATION_DAYS = 3
MIN_FIT_DAYS = 2  # training days left before the validation slice


class ProtocolError(ValueError):
    """The windows are inconsistent or do not fit in the data."""


@dataclass(frozen=True)
class Windows:
    train_start: date
    train_end: date
    gap_days: int
    test_start: date
    test_end: date
    validation_days: int = DEFAULT_VALIDATION_DAYS

    def __post_init__(self) -> None:
        if self.train_start > self.train_end:
            raise ProtocolError(
                f"train_start {self.train_start} is after train_end {self.train_end}"
            )
        if self.gap_days < 0:
            raise ProtocolError(f"gap_days must be >= 0, got {self.gap_days}")
        if self.test_start > self.test_end:
            raise ProtocolError(f"test_start {self.test_start} is after test_end {self.test_end}")
        first_test_day = self.train_end + timedelta(days=self.gap_days + 1)
        if self.test_start < first_test_day:
            raise ProtocolError(
                f"test_start {self.test_start} overlaps training or the {self.gap_days}-day gap: "
                f"with train_end {self.train_end} it must be on or after {first_test_day}"
            )
        if self.validation_days < 1:
            raise ProtocolError(f"validation_days must be >= 1, got {self.validation_days}")
        if self.train_days < self.validation_days + MIN_FIT_DAYS:
            raise ProtocolError(
                f"the training period {self.train_start}..{self.train_end} has {self.train_days} "
                f"days; it needs at least {self.validation_days + MIN_FIT_DAYS} "
                f"({self.validation_days} for validation, {MIN_FIT_DAYS} to fit on)"
            )

    @property
    def train_days(self) -> int:
        return (self.train_end - self.train_start).days + 1

    @property
    def test_days(self) -> int:
        return (self.test_end - self.test_start).days + 1

    @property
    def validation_start(self) -> date:
        return self.train_end - timedelta(days=self.validation_days - 1)

    @property
    def cutoff(self) -> datetime:
        """When the model is trained: 00:00 of the day after train_end + gap_days."""
        return datetime.combine(self.train_end + timedelta(days=self.gap_days + 1), time())

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()
        }
        data["cutoff"] = self.cutoff.isoformat()
        data["validation_start"] = self.validation_start.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Windows:
        return cls(
            train_start=date.fromisoformat(str(data["train_start"])),
            train_end=date.fromisoformat(str(data["train_end"])),
            gap_days=int(data["gap_days"]),
            test_start=date.fromisoformat(str(data["test_start"])),
            test_end=date.fromisoformat(str(data["test_end"])),
            validation_days=int(data["validation_days"]),
        )

    def describe(self) -> str:
        return (
            f"train {self.train_start}..{self.train_end} (validation from "
            f"{self.validation_start}), gap {self.gap_days} d, labels known at "
            f"{self.cutoff:%Y-%m-%d %H:%M}, test {self.test_start}..{self.test_end}"
        )


def resolve_windows(
    first: date,
    last: date,
    *,
    train_start: date | None = None,
    train_end: date | None = None,
    gap_days: int | None = None,
    test_start: date | None = None,
    test_end: date | None = None,
    test_days: int = DEFAULT_TEST_DAYS,
    validation_days: int = DEFAULT_VALIDATION_DAYS,
    label_horizon_days: int | None = None,
) -> Windows:
    """Windows from the data's date range [first, last] and whatever the user pinned.

    Defaults: the newest `label_horizon_days` days are left for their labels to arrive,
    the test period is the `test_days` days before them, then a `gap_days` gap before it,
    and everything earlier trains. A pinned bound moves the others consistently (e.g.
    --train-end alone: the test starts after the gap and runs to the horizon). When nothing
    is pinned and the data is too short for the defaults (a small demo lake), every period
    shrinks in proportion (see compact_periods).
    """
    if label_horizon_days is not None and label_horizon_days < 0:
        raise ProtocolError(f"label_horizon_days must be >= 0, got {label_horizon_days}")
    pinned = (train_start, train_end, gap_days, test_start, test_end)
    horizon = DEFAULT_LABEL_HORIZON_DAYS if label_horizon_days is None else label_horizon_days
    if all(value is None for value in pinned):
        days = (last - first).days + 1
        if label_horizon_days is None:  # the horizon shrinks with the rest
            test_days, gap_days, validation_days, horizon = compact_periods(
                days, test_days, DEFAULT_GAP_DAYS, validation_days, horizon
            )
        else:  # a pinned horizon is kept whole
            if days - horizon < MIN_FIT_DAYS + 2:
                raise ProtocolError(
                    f"{days} days of features leave {days - horizon} before the {horizon}-day "
                    f"label horizon; the protocol needs at least {MIN_FIT_DAYS + 2}"
                )
            test_days, gap_days, validation_days, _ = compact_periods(
                days - horizon, test_days, DEFAULT_GAP_DAYS, validation_days
            )
    gap_days = DEFAULT_GAP_DAYS if gap_days is None else gap_days
    horizon_bound = test_end is None
    test_end = test_end or last - timedelta(days=horizon)
    if test_start is None:
        if train_end is not None:
            test_start = train_end + timedelta(days=gap_days + 1)
        else:
            test_start = test_end - timedelta(days=test_days - 1)
    if horizon_bound and test_start > test_end:
        raise ProtocolError(
            f"the test would start on {test_start}, inside the {horizon}-day label horizon "
            f"(the data ends on {last}, so the test ends on {test_end} unless pinned): pin "
            "--test-end, or --label-horizon-days 0 to test on the newest days' labels"
        )
    if train_end is None:
        train_end = test_start - timedelta(days=gap_days + 1)
    if train_end < (train_start or first):
        horizon_note = f" before a {horizon}-day label horizon" if horizon_bound else ""
        raise ProtocolError(
            f"no training days are left: the data covers {first}..{last}, and testing "
            f"{test_start}..{test_end}{horizon_note} after a {gap_days}-day gap leaves training "
            f"to end on {train_end}; pin shorter periods (--gap-days, --test-start, "
            "--label-horizon-days) or use a longer lake"
        )
    windows = Windows(
        train_start=train_start or first,
        train_end=train_end,
        gap_days=gap_days,
        test_start=test_start,
        test_end=test_end,
        validation_days=validation_days,
    )
    if windows.train_start < first or windows.test_end > last:
        raise ProtocolError(f"{windows.describe()} reaches outside the data ({first}..{last})")
    return windows


def compact_periods(
    days: int, test_days: int, gap_days: int, validation_days: int, horizon_days: int = 0
) -> tuple[int, int, int, int]:
    """(test, gap, validation, horizon) days for `days` days of data: the requested ones when
    they fit, else scaled down in proportion (at least one test and one validation day),
    giving back horizon, gap, test, then validation days until MIN_FIT_DAYS remain to fit
    on."""
    needed = test_days + gap_days + validation_days + horizon_days + MIN_FIT_DAYS
    if days >= needed:
        return test_days, gap_days, validation_days, horizon_days
    if days < MIN_FIT_DAYS + 2:
        raise ProtocolError(
            f"{days} days of features: the protocol needs at least {MIN_FIT_DAYS + 2} "
            f"({MIN_FIT_DAYS} to fit on, 1 to validate, 1 to test)"
        )
    scale = days / needed
    test = max(1, int(test_days * scale))
    gap = int(gap_days * scale)
    validation = max(1, int(validation_days * scale))
    horizon = int(horizon_days * scale)
    while days - test - gap - horizon < validation + MIN_FIT_DAYS:
        if horizon > 0:
            horizon -= 1
        elif gap > 0:
            gap -= 1
        elif test > 1:
            test -= 1
        else:
            validation -= 1
    return test, gap, validation, horizon


def rolling_folds(windows: Windows, folds: int, step_days: int | None = None) -> list[Windows]:
    """Prequential evaluation: `folds` copies of `windows`, the last one being `windows`
    itself and each earlier one moved back by `step_days` (default: the test length), with
    the same train_start (an expanding window). Oldest first."""
    if folds < 1:
        raise ProtocolError(f"folds must be >= 1, got {folds}")
    step = timedelta(days=step_days if step_days is not None else windows.test_days)
    if step <= timedelta(0):
        raise ProtocolError("step_days must be >= 1")
    out = []
    for k in range(folds - 1, -1, -1):
        shift = step * k
        try:
            out.append(
                replace(
                    windows,
                    train_end=windows.train_end - shift,
                    test_start=windows.test_start - shift,
                    test_end=windows.test_end - shift,
                )
            )
        except ProtocolError as error:
            raise ProtocolError(
                f"{folds} folds {step.days} days apart do not fit: fold {folds - k} of "
                f"{folds}: {error}"
            ) from error
    return out


def _days(frame: pd.DataFrame, start: date, end: date) -> np.ndarray:
    day = frame["event_date"].to_numpy(dtype="datetime64[D]")
    return (day >= np.datetime64(start, "D")) & (day <= np.datetime64(end, "D"))


def labels_known_at(frame: pd.DataFrame, cutoff: datetime) -> np.ndarray:
    """The fraud label as it was known at `cutoff` (a report after it is not yet known)."""
    reported = frame["label_reported_at"].to_numpy(dtype="datetime64[us]")
    known = ~np.isnat(reported) & (reported <= np.datetime64(cutoff, "us"))
    return frame["label_is_fraud"].to_numpy(dtype=bool) & known


@dataclass(frozen=True)
class Split:
    """Row subsets of one frame, each with a boolean `label` column for its own purpose."""

    windows: Windows
    fit: pd.DataFrame  # training days before the validation slice, labels at cutoff
    validation: pd.DataFrame  # last validation_days of training, labels at cutoff
    test: pd.DataFrame  # test days, labels known now
    # fit + validation as one frame when split() could take it without copying rows
    whole_training: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def training(self) -> pd.DataFrame:
        """fit + validation: the whole training period."""
        if self.whole_training is not None:
            return self.whole_training
        return pd.concat([self.fit, self.validation], ignore_index=True)


def _rows(mask: np.ndarray) -> slice | np.ndarray:
    """The rows of `mask` as a slice when they are one run (the usual case: the frame is in
    time order and the windows are date ranges), else the mask itself."""
    index = np.flatnonzero(mask)
    if index.size == 0 or index[-1] - index[0] + 1 == index.size:
        start = int(index[0]) if index.size else 0
        return slice(start, start + index.size)
    return mask


def split(frame: pd.DataFrame, windows: Windows) -> Split:
    """Applies the protocol to a frame of contract columns (any date range). On a frame in
    time order (load_features') every part is a slice of it: pandas' copy-on-write shares
    the rows instead of copying them, which at 10M transactions is gigabytes."""
    training = _days(frame, windows.train_start, windows.train_end)
    validation = _days(frame, windows.validation_start, windows.train_end)
    test = _days(frame, windows.test_start, windows.test_end)
    at_cutoff = labels_known_at(frame, windows.cutoff)
    now = frame["label_is_fraud"].to_numpy(dtype=bool)

    def take(mask: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
        rows = _rows(mask)
        part = frame.iloc[rows] if isinstance(rows, slice) else frame.loc[rows]
        part = part.reset_index(drop=True)
        part["label"] = labels[rows]
        return part

    whole_rows, validation_rows = _rows(training), _rows(validation)
    if (
        isinstance(whole_rows, slice)
        and isinstance(validation_rows, slice)
        and (validation_rows.stop == whole_rows.stop or validation_rows.start == whole_rows.stop)
    ):  # the validation days are the training period's last rows
        whole = take(training, at_cutoff)
        fit_rows = int(np.sum(training & ~validation))
        return Split(
            windows=windows,
            fit=whole.iloc[:fit_rows].reset_index(drop=True),
            validation=whole.iloc[fit_rows:].reset_index(drop=True),
            test=take(test, now),
            whole_training=whole,
        )
    return Split(
        windows=windows,
        fit=take(training & ~validation, at_cutoff),
        validation=take(validation, at_cutoff),
        test=take(test, now),
    )
