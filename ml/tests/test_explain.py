"""The TreeSHAP tables against XGBoost's own pred_contribs: same numbers, every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from ml import explain
from ml.booster import BoosterParams, fit_booster
from ml.dataset import feature_matrix
from ml.explain import TreeShap, UnsupportedModel, xgboost_contributions


def _data(frame: pd.DataFrame, nan_share: float = 0.0, seed: int = 3) -> np.ndarray:
    x = feature_matrix(frame)
    if nan_share:
        rng = np.random.default_rng(seed)
        x = np.where(rng.random(x.shape) < nan_share, np.nan, x).astype(np.float32)
    return x


def _train(x: np.ndarray, y: np.ndarray, rounds: int, **params: object) -> xgb.Booster:
    matrix = xgb.DMatrix(x, label=y, missing=np.nan)
    base = {"objective": "binary:logistic", "tree_method": "hist", "seed": 1, "nthread": 1}
    return xgb.train({**base, **params}, matrix, num_boost_round=rounds)


@pytest.mark.parametrize(
    ("depth", "nan_share", "extra"),
    [
        (3, 0.0, {}),
        (6, 0.1, {}),  # missing values: each goes to its split's default side
        (8, 0.05, {"max_bin": 16}),  # few bins: a feature split on again and again per path
        (6, 0.0, {"subsample": 0.7, "colsample_bytree": 0.6, "min_child_weight": 5}),
    ],
)
def test_tables_equal_xgboost_treeshap(
    features_frame: pd.DataFrame, depth: int, nan_share: float, extra: dict
) -> None:
    x = _data(features_frame, nan_share)
    y = features_frame["label_is_fraud"].to_numpy()
    booster = _train(x, y, 40, max_depth=depth, **extra)
    tables = TreeShap.from_booster(booster)
    assert max(t.slots for t in tables.trees) <= depth
    ours = tables.contributions(x)
    theirs = xgboost_contributions(booster, x)
    assert ours.shape == theirs.shape == (len(x), x.shape[1])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=2e-5)
    # the contributions of a row do not depend on the rows scored with it
    assert np.array_equal(tables.contributions(x[::-1])[::-1], ours)


def test_rows_shared_among_processes_give_the_same_contributions_bit_for_bit(
    features_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _data(features_frame, 0.1)[:301]  # odd: the shares differ in size
    booster = _train(x, features_frame["label_is_fraud"].to_numpy()[:301], 20, max_depth=6)
    tables = TreeShap.from_booster(booster)
    alone = tables.contributions(x)
    monkeypatch.setattr(explain, "PARALLEL_MIN_VISITS", 0)
    shared = explain.shared_contributions(tables, booster, x, workers=3)
    assert np.array_equal(shared, alone)
    # below the threshold no process is started: same object path, same numbers
    monkeypatch.setattr(explain, "PARALLEL_MIN_VISITS", len(x) * len(tables.trees) + 1)
    assert np.array_equal(explain.shared_contributions(tables, booster, x, 3), alone)


def test_the_production_booster_and_infinite_values(features_frame: pd.DataFrame) -> None:
    """fit_booster's model (monotone constraints, early stopping); +-inf (which XGBoost
    refuses as input) is explained like the largest finite values."""
    x = feature_matrix(features_frame)
    y = features_frame["label_is_fraud"].to_numpy()
    half = len(x) // 2
    fitted = fit_booster(
        x[:half], y[:half], x[half:], y[half:], BoosterParams(num_boost_round=60)
    ).booster
    result = explain.explain(fitted, x)
    assert result.method == "treeshap-tables" and not result.note
    np.testing.assert_allclose(
        result.contributions, xgboost_contributions(fitted, x), rtol=1e-4, atol=2e-5
    )
    big = np.finfo(np.float32).max
    x_inf, x_big = x.copy(), x.copy()
    x_inf[::7, 0], x_big[::7, 0] = np.inf, big
    x_inf[3::11, 1], x_big[3::11, 1] = -np.inf, -big
    tables = TreeShap.from_booster(fitted)
    assert np.array_equal(tables.contributions(x_inf), tables.contributions(x_big))
    np.testing.assert_allclose(
        tables.contributions(x_big), xgboost_contributions(fitted, x_big), rtol=1e-4, atol=2e-5
    )


def test_trees_without_a_split_contribute_nothing(features_frame: pd.DataFrame) -> None:
    x = _data(features_frame)
    booster = _train(x, features_frame["label_is_fraud"].to_numpy(), 3, min_split_loss=1e12)
    assert np.array_equal(TreeShap.from_booster(booster).contributions(x), np.zeros(x.shape))


def test_unsupported_models_and_disagreement_fall_back_to_xgboost(
    features_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _data(features_frame)[:500]
    booster = _train(x, features_frame["label_is_fraud"].to_numpy()[:500], 10, max_depth=4)
    monkeypatch.setattr(explain, "MAX_PATH_FEATURES", 1)
    with pytest.raises(UnsupportedModel, match="features"):
        TreeShap.from_booster(booster)
    result = explain.explain(booster, x)
    assert result.method == "xgboost" and "do not model" in result.note
    assert np.array_equal(result.contributions, xgboost_contributions(booster, x))
    monkeypatch.undo()

    def skewed(self: TreeShap, rows: np.ndarray) -> np.ndarray:
        return np.full(rows.shape, 0.5)

    monkeypatch.setattr(TreeShap, "contributions", skewed)
    result = explain.explain(booster, x)
    assert result.method == "xgboost" and "differed from XGBoost" in result.note


def test_dart_is_not_modelled(features_frame: pd.DataFrame) -> None:
    x = _data(features_frame)[:300]
    booster = _train(x, features_frame["label_is_fraud"].to_numpy()[:300], 3, booster="dart")
    with pytest.raises(UnsupportedModel, match="dart"):
        TreeShap.from_booster(booster)


def test_check_rows_are_spread_and_stable() -> None:
    assert explain.check_rows(3).tolist() == [0, 1, 2]
    rows = explain.check_rows(28_574)
    assert rows[0] == 0 and rows[-1] == 28_573 and len(rows) == explain.CHECK_ROWS
    assert np.array_equal(rows, explain.check_rows(28_574))
