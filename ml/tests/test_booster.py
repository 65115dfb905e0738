"""The booster: it learns, it is deterministic, and its reasons are the right features."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import average_precision_score

from ml.booster import (
    BoosterParams,
    FittedBooster,
    contributions,
    fit_booster,
    predict,
    top_reasons,
)
from ml.dataset import feature_matrix
from ml.features import FEATURES
from ml.protocol import Split, resolve_windows, split
from ml.sampling import sample_negatives

FAST = BoosterParams(num_boost_round=200, early_stopping_rounds=20, max_depth=4)


def test_top_reasons_are_the_largest_positive_contributions_in_order() -> None:
    contribs = np.array(
        [
            [0.1, 2.0, -1.0, 0.5, 0.0],
            [-0.1, -2.0, 0.3, -0.5, -0.2],  # one positive contribution only
            [1.0, 1.0, 1.0, 1.0, 0.0],  # ties: lower feature index first
        ]
    )
    index, value = top_reasons(contribs, 3)
    assert index.tolist() == [[1, 3, 0], [2, -1, -1], [0, 1, 2]]
    assert value[0].tolist() == [2.0, 0.5, 0.1]
    assert value[1, 0] == 0.3 and np.isnan(value[1, 1:]).all()


@pytest.mark.parametrize("width", [1, 3, 54])
def test_top_reasons_are_a_stable_sort_by_value_descending_cut_to_the_positives(
    width: int,
) -> None:
    rng = np.random.default_rng(width)
    contribs = rng.integers(-3, 4, size=(5_000, width)) * 0.5  # many ties and zeros
    contribs[rng.random(contribs.shape) < 0.05] = np.nan
    contribs[::10] = 0.0  # rows with no positive contribution
    order = np.argsort(-contribs, axis=1, kind="stable")[:, :3]
    expected = np.take_along_axis(contribs, order, axis=1)
    positive = expected > 0
    index, value = top_reasons(contribs, 3)
    assert index.shape == value.shape == (5_000, 3)
    k = min(3, width)
    assert np.array_equal(index[:, :k], np.where(positive, order, -1))
    assert np.array_equal(value[:, :k], np.where(positive, expected, np.nan), equal_nan=True)
    assert (index[:, k:] == -1).all() and np.isnan(value[:, k:]).all()
    assert (index >= 0).any() and (index == -1).any()


def test_booster_learns_the_signal_deterministically(
    features_and_truth: tuple[pd.DataFrame, set[str]],
) -> None:
    features_frame, truth = features_and_truth
    s = default_split(features_frame)
    args = (*fit_arguments(s), FAST)
    first, second = fit_booster(*args), fit_booster(*args)
    test_x = feature_matrix(s.test)
    scores = predict(first.booster, test_x)
    is_fraud = s.test["transaction_id"].isin(truth)  # reported or not
    assert average_precision_score(is_fraud, scores) > 0.8  # chance level is ~0.04
    assert np.array_equal(scores, predict(second.booster, test_x))
    assert first.booster.num_boosted_rounds() == first.best_iteration + 1  # trimmed
    contribs = contributions(first.booster, test_x)
    assert contribs.shape == (len(s.test), len(FEATURES))
    # contributions add up (with the bias) to the log-odds of the score
    bias = first.booster.predict(
        xgb.DMatrix(test_x[:5], feature_names=first.booster.feature_names),
        pred_contribs=True,
    )[:, -1]
    logit = np.log(scores[:5] / (1 - scores[:5]))
    assert contribs[:5].sum(axis=1) + bias == pytest.approx(logit, abs=1e-3)


def test_no_known_fraud_is_refused_with_a_reason() -> None:
    x = np.zeros((10, len(FEATURES)), dtype=np.float32)
    with pytest.raises(ValueError, match="no fraud label is known"):
        fit_booster(x, np.zeros(10, bool), x, np.ones(10, bool), FAST)
    # a validation slice without a known fraud: fine for log loss, not for average precision
    y = np.arange(10) < 3
    assert fit_booster(x, y, x, np.zeros(10, bool), FAST).best_iteration >= 0
    with pytest.raises(ValueError, match="early stopping on aucpr"):
        fit_booster(x, y, x, np.zeros(10, bool), replace(FAST, stopping_metric="aucpr"))


def default_split(frame: pd.DataFrame) -> Split:
    """The default windows over the frame's whole date range."""
    first, last = frame["event_date"].min().date(), frame["event_date"].max().date()
    return split(frame, resolve_windows(first, last))


def fit_arguments(s: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """fit_booster's data arguments for a split: fit rows and labels, validation likewise."""
    return (
        feature_matrix(s.fit),
        s.fit["label"].to_numpy(dtype=bool),
        feature_matrix(s.validation),
        s.validation["label"].to_numpy(dtype=bool),
    )


def test_reported_frauds_at_the_counterparty_never_lower_the_score() -> None:
    # fraud concentrated at middling values: an unconstrained model learns a bump
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, len(FEATURES))).astype(np.float32)
    column = list(FEATURES).index("cp_labelled_fraud_rate_30d")
    y = (np.abs(x[:, column]) < 0.5) & (rng.random(4000) < 0.5)
    grid = np.repeat(x[:50], 13, axis=0)
    grid[:, column] = np.tile(np.linspace(-3, 3, 13), 50)

    def steps(params: BoosterParams) -> np.ndarray:
        fitted = fit_booster(x[:3000], y[:3000], x[3000:], y[3000:], params)
        return np.diff(predict(fitted.booster, grid).reshape(50, 13), axis=1)

    assert (steps(FAST) >= -1e-12).all()  # default: monotone in the counterparty's frauds
    assert (steps(replace(FAST, monotone_increasing=())) < -0.01).any()  # the test can fail
    with pytest.raises(ValueError, match="unknown features"):
        fit_booster(x, y, x, y, replace(FAST, monotone_increasing=("cp_fraud_rate_90d",)))


def test_scoring_in_blocks_gives_every_row_the_score_of_one_whole_dmatrix(
    features_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ml.booster

    s = default_split(features_frame)
    fitted = fit_booster(*fit_arguments(s), FAST)
    whole = fitted.booster.predict(
        xgb.DMatrix(feature_matrix(s.test), feature_names=list(FEATURES))
    ).astype(np.float64)
    monkeypatch.setattr(ml.booster, "PREDICT_ROWS", 97)  # blocks that end anywhere
    assert len(s.test) > 3 * 97
    assert np.array_equal(predict(fitted.booster, feature_matrix(s.test)), whole)
    frame_columns = s.test.loc[:, list(FEATURES)]
    assert np.array_equal(predict(fitted.booster, frame_columns), whole)


def test_above_max_fit_rows_the_trees_fit_every_fraud_and_weighted_negatives(
    features_and_truth: tuple[pd.DataFrame, set[str]],
) -> None:
    features_frame, truth = features_and_truth
    s = default_split(features_frame)
    args = fit_arguments(s)
    fit_y = args[1]
    cap = len(fit_y) // 4
    assert int(fit_y.sum()) < cap
    full = fit_booster(*args, FAST)
    sampled = fit_booster(*args, replace(FAST, max_fit_rows=cap))
    assert (full.fit_rows, full.negative_weight) == (len(fit_y), 1.0)
    negatives = int((~fit_y).sum())
    assert sampled.fit_rows == cap
    assert sampled.negative_weight == pytest.approx(negatives / (cap - int(fit_y.sum())))
    is_fraud = s.test["transaction_id"].isin(truth)
    assert average_precision_score(is_fraud, predict(sampled.booster, feature_matrix(s.test))) > 0.8
    # XGBoost starts from the (weighted) share of frauds in the fit rows: the weights make it
    # the whole period's, where an unweighted quarter of the negatives would raise it
    assert _base_score(sampled.booster) == pytest.approx(_base_score(full.booster), rel=1e-4)


def _base_score(booster: xgb.Booster) -> float:
    learner = json.loads(booster.save_config())["learner"]["learner_model_param"]
    return float(learner["base_score"].strip("[]"))


def test_above_max_stopping_rows_early_stopping_weighs_a_sample_of_the_validation_rows(
    features_and_truth: tuple[pd.DataFrame, set[str]],
) -> None:
    features_frame, _ = features_and_truth
    s = default_split(features_frame)
    fit_x, fit_y, val_x, val_y = fit_arguments(s)
    cap = len(val_y) // 3
    assert 0 < int(val_y.sum()) < cap
    full = fit_booster(fit_x, fit_y, val_x, val_y, FAST)
    sampled = fit_booster(fit_x, fit_y, val_x, val_y, replace(FAST, max_stopping_rows=cap))
    assert full.stopping_rows == len(val_y) and sampled.stopping_rows == cap

    def log_loss(fitted: FittedBooster, rows: np.ndarray, weight: np.ndarray) -> float:
        p = np.clip(predict(fitted.booster, val_x[rows]), 1e-15, 1 - 1e-15)
        y = val_y[rows]
        return float(np.sum(-weight * (y * np.log(p) + (~y) * np.log(1 - p))) / np.sum(weight))

    everything = np.arange(len(val_y))
    assert full.validation_score == pytest.approx(
        log_loss(full, everything, np.ones(len(val_y))), rel=1e-4
    )
    # the score early stopping watched is the weighted log loss of every fraud and the
    # sampled negatives (each weighted negatives / sampled), not the unweighted sample's
    stopping = sample_negatives(val_y, cap, FAST.seed)
    weight = stopping.weights(val_y)
    assert sampled.validation_score == pytest.approx(
        log_loss(sampled, stopping.rows, weight), rel=1e-4
    )
    assert sampled.validation_score != pytest.approx(
        log_loss(sampled, stopping.rows, np.ones(cap)), rel=1e-2
    )
