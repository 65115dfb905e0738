"""ml/ranking.py gives sklearn's numbers from one sort: compared on scores with many ties,
without ties, on float32 scores and at the edges (a single class, one row)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from ml.ranking import PLOT_POINTS, Ranking, plot_points


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    y = rng.random(20_000) < 0.03
    continuous = rng.random(20_000) + y * rng.random(20_000) * 0.5
    tied = np.round(continuous, 2)  # about a hundred distinct scores, positives in ties
    float32 = continuous.astype(np.float32)
    return [
        ("continuous", y, continuous),
        ("ties", y, tied),
        ("float32", y, float32),
        ("two rows", np.array([True, False]), np.array([0.2, 0.2])),
    ]


@pytest.mark.parametrize(("name", "y", "s"), _cases(), ids=[c[0] for c in _cases()])
def test_roc_auc_and_average_precision_are_sklearn_s(
    name: str, y: np.ndarray, s: np.ndarray
) -> None:
    ranking = Ranking.of(y, s)
    assert ranking.roc_auc() == pytest.approx(roc_auc_score(y, s), rel=1e-12, abs=1e-15)
    assert ranking.average_precision() == pytest.approx(
        average_precision_score(y, s), rel=1e-12, abs=1e-15
    )


def test_the_curves_are_sklearn_s_points() -> None:
    _, y, s = _cases()[1]
    ranking = Ranking.of(y, s)
    recall, precision = ranking.pr_curve()
    sk_precision, sk_recall, _ = precision_recall_curve(y, s)
    np.testing.assert_allclose(recall, sk_recall[::-1], rtol=1e-12)
    np.testing.assert_allclose(precision, sk_precision[::-1], rtol=1e-12)
    fpr, tpr = ranking.roc_curve()
    sk_fpr, sk_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, rtol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, rtol=1e-12)


def test_a_single_class_has_no_auc_or_average_precision() -> None:
    for y in (np.zeros(5, dtype=bool), np.ones(5, dtype=bool), np.zeros(0, dtype=bool)):
        ranking = Ranking.of(y, np.linspace(0, 1, y.size))
        assert ranking.roc_auc() is None and ranking.average_precision() is None


def test_bad_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        Ranking.of(np.array([True, False]), np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="scores for"):
        Ranking.of(np.array([True, False]), np.array([0.5]))


def test_plot_points_keep_the_top_of_the_ranking_and_both_ends() -> None:
    assert plot_points(10).tolist() == list(range(10))
    shown = plot_points(2_000_000)
    assert shown.size <= PLOT_POINTS
    assert shown[0] == 0 and shown[-1] == 1_999_999
    assert np.all(np.diff(shown) > 0)
    assert shown[:200].tolist() == list(range(200))  # every point at the top


@pytest.mark.parametrize("frauds", [1, 24, 28, 86])
def test_equal_rankings_give_equal_average_precision_to_the_last_bit(frauds: int) -> None:
    # the forest bar compares two models' AP with >=: a perfect ranking is exactly 1.0
    # whether its frauds share one score or each have their own (summing recall steps of
    # 1/24 gave 0.9999999999999999 for some of them)
    y = np.zeros(5_000, dtype=bool)
    y[:frauds] = True
    tied = np.where(y, 1.0, 0.0)
    spread = np.where(y, np.linspace(0.6, 1.0, y.size), np.linspace(0.0, 0.5, y.size))
    assert Ranking.of(y, tied).average_precision() == 1.0
    assert Ranking.of(y, spread).average_precision() == 1.0
