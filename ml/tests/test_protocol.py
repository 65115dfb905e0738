"""The time protocol at its boundaries: which rows train, validate and test, and which labels
each of them may see."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml.protocol import (
    ProtocolError,
    Windows,
    labels_known_at,
    resolve_windows,
    rolling_folds,
    split,
)

W = Windows(
    train_start=date(2026, 9, 1),
    train_end=date(2026, 9, 10),
    gap_days=7,
    test_start=date(2026, 9, 18),
    test_end=date(2026, 9, 24),
    validation_days=3,
)


def rows(*specs: tuple[str, str, bool, str | None]) -> pd.DataFrame:
    """(transaction_id, event_ts, is fraud now, reported_at) -> contract-like rows."""
    frame = pd.DataFrame(specs, columns=["transaction_id", "event_ts", "label_is_fraud", "rep"])
    frame["event_ts"] = pd.to_datetime(frame["event_ts"]).astype("datetime64[us]")
    frame["event_date"] = frame["event_ts"].dt.normalize()
    frame["label_reported_at"] = pd.to_datetime(frame["rep"]).astype("datetime64[us]")
    return frame.drop(columns="rep")


def test_cutoff_is_midnight_after_train_end_plus_gap() -> None:
    assert W.cutoff == datetime(2026, 9, 18, 0, 0, 0)
    assert W.validation_start == date(2026, 9, 8)


def test_rows_land_in_their_period_and_the_gap_is_unused() -> None:
    frame = rows(
        ("first_train_day", "2026-09-01 00:00:00", False, None),
        ("last_second_of_train_end", "2026-09-10 23:59:59", False, None),
        ("before_validation", "2026-09-07 23:59:59", False, None),
        ("first_in_gap", "2026-09-11 00:00:00", False, None),
        ("last_in_gap", "2026-09-17 23:59:59", False, None),
        ("first_test", "2026-09-18 00:00:00", False, None),
        ("last_test", "2026-09-24 23:59:59", False, None),
        ("after_test", "2026-09-25 00:00:00", False, None),
        ("before_train", "2026-08-31 23:59:59", False, None),
    )
    s = split(frame, W)
    assert set(s.fit.transaction_id) == {"first_train_day", "before_validation"}
    assert set(s.validation.transaction_id) == {"last_second_of_train_end"}
    assert set(s.test.transaction_id) == {"first_test", "last_test"}
    used = set(s.fit.transaction_id) | set(s.validation.transaction_id) | set(s.test.transaction_id)
    assert not used & {"first_in_gap", "last_in_gap", "after_test", "before_train"}


def test_a_time_ordered_frame_splits_into_slices_that_share_its_rows() -> None:
    frame = rows(
        ("before_train", "2026-08-31 23:59:59", False, None),
        ("fit_1", "2026-09-01 00:00:00", True, "2026-09-02 10:00:00"),
        ("fit_2", "2026-09-07 23:59:59", True, "2026-09-20 00:00:00"),
        ("validation_1", "2026-09-08 00:00:00", True, "2026-09-09 00:00:00"),
        ("validation_2", "2026-09-10 23:59:59", False, None),
        ("in_gap", "2026-09-12 00:00:00", True, "2026-09-13 00:00:00"),
        ("test_1", "2026-09-18 00:00:00", True, "2026-10-30 00:00:00"),
    )
    frame["amount_log"] = pd.Series(range(len(frame)), dtype="float32")
    ordered = split(frame, W)
    shuffled = split(frame.iloc[[6, 3, 0, 5, 1, 4, 2]].reset_index(drop=True), W)
    assert ordered.whole_training is not None and shuffled.whole_training is None
    for part in ("fit", "validation", "test", "training"):
        a, b = getattr(ordered, part), getattr(shuffled, part)
        assert list(a.transaction_id) == sorted(b.transaction_id), part
        assert a.set_index("transaction_id").label.equals(
            b.set_index("transaction_id").label.loc[list(a.transaction_id)]
        ), part
    assert list(ordered.fit.label) == [True, False]  # fit_2 reported after the cut-off
    assert list(ordered.validation.transaction_id) == ["validation_1", "validation_2"]
    # no copy of the rows: the parts read the frame's own feature buffer
    column = frame["amount_log"].to_numpy()
    for part in (ordered.fit, ordered.validation, ordered.test, ordered.training):
        assert np.shares_memory(part["amount_log"].to_numpy(), column)
    assert not np.shares_memory(shuffled.fit["amount_log"].to_numpy(), column)


def test_training_sees_only_labels_reported_by_the_cutoff_and_test_sees_all() -> None:
    frame = rows(
        ("reported_at_cutoff", "2026-09-02 10:00:00", True, "2026-09-18 00:00:00"),
        ("reported_one_second_late", "2026-09-02 11:00:00", True, "2026-09-18 00:00:01"),
        ("reported_early", "2026-09-09 12:00:00", True, "2026-09-10 08:00:00"),
        ("legit", "2026-09-03 12:00:00", False, None),
        ("test_fraud_reported_late", "2026-09-20 12:00:00", True, "2026-10-20 08:00:00"),
    )
    s = split(frame, W)
    train = dict(zip(s.training.transaction_id, s.training.label, strict=True))
    assert train == {
        "reported_at_cutoff": True,
        "reported_one_second_late": False,  # a fraud reported later is a non-fraud in training
        "reported_early": True,
        "legit": False,
    }
    assert s.test.label.tolist() == [True]


def test_labels_known_at_ignores_rows_that_were_never_fraud() -> None:
    # a label_reported_at without label_is_fraud (should not happen) never makes a fraud
    frame = rows(("x", "2026-09-02 10:00:00", False, "2026-09-03 00:00:00"))
    assert labels_known_at(frame, datetime(2026, 9, 5)).tolist() == [False]


def test_default_windows_leave_the_newest_week_to_its_labels() -> None:
    w = resolve_windows(date(2026, 9, 1), date(2026, 9, 30))
    # Sep 24-30: the label horizon; test the week before it, train before the gap
    assert (w.test_start, w.test_end) == (date(2026, 9, 17), date(2026, 9, 23))
    assert w.gap_days == 7 and w.train_end == date(2026, 9, 9)
    assert w.train_start == date(2026, 9, 1)
    assert w.cutoff == datetime(2026, 9, 17)


def test_without_a_label_horizon_the_test_is_the_newest_week() -> None:
    w = resolve_windows(date(2026, 9, 1), date(2026, 9, 30), label_horizon_days=0)
    assert (w.test_start, w.test_end) == (date(2026, 9, 24), date(2026, 9, 30))
    assert w.train_end == date(2026, 9, 16) and w.cutoff == datetime(2026, 9, 24)
    with pytest.raises(ProtocolError, match="label_horizon_days must be >= 0"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 30), label_horizon_days=-1)


def test_a_pinned_horizon_is_kept_whole_on_a_short_lake() -> None:
    w = resolve_windows(date(2026, 9, 1), date(2026, 9, 20), label_horizon_days=7)
    assert w.test_end == date(2026, 9, 13)  # the horizon is not shrunk; the rest is
    assert w.train_days >= w.validation_days + 2
    with pytest.raises(ProtocolError, match="leave 3 before the 7-day label horizon"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 10), label_horizon_days=7)


def test_pinned_train_end_moves_the_test_after_the_gap() -> None:
    w = resolve_windows(
        date(2026, 9, 1), date(2026, 9, 30), train_end=date(2026, 9, 12), gap_days=2
    )
    assert w.test_start == date(2026, 9, 15) and w.test_end == date(2026, 9, 23)
    w = resolve_windows(
        date(2026, 9, 1), date(2026, 9, 30), test_start=date(2026, 9, 26), label_horizon_days=0
    )
    assert w.test_end == date(2026, 9, 30)


def test_a_pinned_test_start_inside_the_horizon_says_how_to_test_there() -> None:
    with pytest.raises(ProtocolError, match=r"inside the 7-day label horizon.*--test-end"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 30), test_start=date(2026, 9, 26))
    w = resolve_windows(
        date(2026, 9, 1),
        date(2026, 9, 30),
        test_start=date(2026, 9, 26),
        test_end=date(2026, 9, 30),
    )
    assert (w.test_start, w.test_end) == (date(2026, 9, 26), date(2026, 9, 30))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"test_start": date(2026, 9, 17)}, "overlaps training or the 7-day gap"),
        ({"train_start": date(2026, 9, 9)}, "needs at least 5"),
        ({"gap_days": -1}, "gap_days"),
        ({"test_end": date(2026, 9, 17)}, "after test_end"),
    ],
)
def test_inconsistent_windows_are_refused(changes: dict, message: str) -> None:
    values = {**W.__dict__, **changes}
    with pytest.raises(ProtocolError, match=message):
        Windows(**values)


def test_windows_outside_the_data_are_refused() -> None:
    with pytest.raises(ProtocolError, match="outside the data"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 30), train_start=date(2026, 8, 1))


def test_windows_round_trip_through_json_form() -> None:
    assert Windows.from_dict(W.to_dict()) == W


def test_rolling_folds_move_back_by_the_test_length_oldest_first() -> None:
    wide = replace(W, train_start=date(2026, 8, 25))
    folds = rolling_folds(wide, 2)
    assert folds[-1] == wide
    assert folds[0].test_start == date(2026, 9, 11) and folds[0].test_end == date(2026, 9, 17)
    assert folds[0].train_end == date(2026, 9, 3) and folds[0].train_start == wide.train_start
    assert [f.test_start for f in rolling_folds(wide, 2, step_days=2)] == [
        date(2026, 9, 16),
        date(2026, 9, 18),
    ]
    with pytest.raises(ProtocolError, match="3 folds 7 days apart do not fit"):
        rolling_folds(wide, 3)


@pytest.mark.parametrize(
    ("days", "expected"),
    [  # (test, gap, validation, horizon) days
        (30, (7, 7, 3, 7)),
        (26, (7, 7, 3, 7)),
        (25, (6, 6, 2, 6)),
        (13, (3, 3, 1, 3)),
        (10, (2, 2, 1, 2)),
        (5, (1, 1, 1, 0)),
        (4, (1, 0, 1, 0)),
    ],
)
def test_short_lakes_shrink_every_period_in_proportion(days: int, expected: tuple) -> None:
    first = date(2026, 9, 1)
    last = first + timedelta(days=days - 1)
    w = resolve_windows(first, last)
    horizon = (last - w.test_end).days
    assert (w.test_days, w.gap_days, w.validation_days, horizon) == expected
    assert w.train_start == first
    assert w.train_days >= w.validation_days + 2


def test_a_pinned_window_is_never_shrunk_and_too_short_data_is_refused() -> None:
    with pytest.raises(ProtocolError, match="no training days are left"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 10), gap_days=7)
    with pytest.raises(ProtocolError, match="before a 7-day label horizon"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 12), gap_days=1)
    with pytest.raises(ProtocolError, match="needs at least 5"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 12), gap_days=1, label_horizon_days=0)
    with pytest.raises(ProtocolError, match="needs at least 4"):
        resolve_windows(date(2026, 9, 1), date(2026, 9, 3))
