"""Negative down-sampling: every positive stays, and the weights restore the negatives' mass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.sampling import sample_negatives, take_rows


def _labels(n: int, positives: int) -> np.ndarray:
    y = np.zeros(n, dtype=bool)
    y[np.random.default_rng(7).choice(n, positives, replace=False)] = True
    return y


def test_above_the_cap_every_positive_stays_and_negatives_weigh_as_all_of_them() -> None:
    y = _labels(10_000, 120)
    sample = sample_negatives(y, max_rows=2_000, seed=42)
    assert sample.rows.size == 2_000 and np.all(np.diff(sample.rows) > 0)
    assert set(np.flatnonzero(y)) <= set(sample.rows)
    assert sample.is_sampled
    weights = sample.weights(y)
    kept = y[sample.rows]
    assert np.all(weights[kept] == 1.0)
    assert weights[~kept].sum() == pytest.approx(int((~y).sum()))  # 9,880 negatives' mass
    assert np.array_equal(sample.rows, sample_negatives(y, 2_000, seed=42).rows)  # seeded
    assert not np.array_equal(sample.rows, sample_negatives(y, 2_000, seed=43).rows)


def test_at_or_below_the_cap_every_row_is_kept_with_weight_one() -> None:
    y = _labels(2_000, 30)
    sample = sample_negatives(y, max_rows=2_000, seed=42)
    assert np.array_equal(sample.rows, np.arange(2_000))
    assert not sample.is_sampled and np.all(sample.weights(y) == 1.0)


def test_a_cap_without_room_for_negatives_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="120 positives do not leave room"):
        sample_negatives(_labels(10_000, 120), max_rows=100, seed=42)


def test_take_rows_takes_the_same_rows_of_a_frame_and_of_an_array() -> None:
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    rows = np.array([1, 4, 9])
    frame = take_rows(pd.DataFrame(x), rows)
    assert isinstance(frame, pd.DataFrame)
    assert np.array_equal(frame.to_numpy(), take_rows(x, rows))
