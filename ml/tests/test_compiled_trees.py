"""The compiled trees score exactly as XGBoost predicts, bit for bit, and give its path
attributions (approx_contribs) to float32 rounding: boosters, regressions, the converted
forest, missing values either way, rows on the split thresholds, single-leaf trees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier

from ml.compiled_trees import CompiledTrees, UnsupportedModel
from ml.forest import to_booster

FEATURES = 6
NAMES = [f"f{i}" for i in range(FEATURES)]


def _data(rows: int, seed: int, missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    x[:, 3] = np.round(x[:, 3], 1)  # many rows on the same values, some on the thresholds
    x[rng.random(x.shape) < missing] = np.nan
    y = (np.nan_to_num(x[:, 0], nan=2.0) + 0.5 * np.nan_to_num(x[:, 1]) > 1.0) | (
        rng.random(rows) < 0.05
    )
    return x, y


def _train(params: dict, x: np.ndarray, y: np.ndarray, rounds: int) -> xgb.Booster:
    matrix = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=NAMES)
    return xgb.train({"nthread": 1, "seed": 0, **params}, matrix, num_boost_round=rounds)


def _rows_on_thresholds(model: CompiledTrees, x: np.ndarray) -> np.ndarray:
    """Rows of x with a value exactly on a split condition, or one float32 step either side
    (finite ones: XGBoost refuses infinite values)."""
    split = model.nodes["child"] >= 0
    feature, condition = model.nodes["feature"][split], model.nodes["condition"][split]
    out = np.repeat(x[: min(len(x), 100)], 3, axis=0)
    if not split.any():
        return out
    for i in range(len(out)):
        j = i % len(feature)
        value = condition[j]
        if i % 3 == 1:
            value = np.nextafter(value, np.float32(-np.inf))
        elif i % 3 == 2:
            value = np.nextafter(value, np.float32(np.inf))
        if np.isfinite(value):
            out[i, feature[j]] = value
    return out


def _xgboost(model: xgb.Booster, x: np.ndarray, **options: bool) -> np.ndarray:
    return model.predict(xgb.DMatrix(x, missing=np.nan, feature_names=NAMES), **options)


def assert_same_as_xgboost(booster: xgb.Booster, x: np.ndarray) -> CompiledTrees:
    model = CompiledTrees.from_booster(booster)
    x = np.concatenate([x, _rows_on_thresholds(model, x)])
    evaluation = model.evaluate(x)
    # scores and margins: bit for bit
    assert np.array_equal(evaluation.margin, _xgboost(booster, x, output_margin=True))
    assert np.array_equal(model.predict(x), _xgboost(booster, x))
    # path attributions: XGBoost's, to float32 rounding; they add up to margin - bias
    expected = _xgboost(booster, x, pred_contribs=True, approx_contribs=True)
    np.testing.assert_allclose(evaluation.contributions, expected[:, :-1], rtol=0, atol=1e-5)
    assert evaluation.bias == pytest.approx(float(expected[0, -1]), abs=1e-5)
    total = evaluation.contributions.sum(axis=1) + evaluation.bias
    np.testing.assert_allclose(total, evaluation.margin, rtol=0, atol=1e-4)
    return model


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_a_booster_scores_and_attributes_as_xgboost(missing: float) -> None:
    x, y = _data(3000, 1, missing)
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.3}
    booster = _train(params, x, y, rounds=40)
    test, _ = _data(3000, 2, missing)
    assert_same_as_xgboost(booster, test)


def test_a_regression_scores_as_xgboost() -> None:
    x, y = _data(2000, 3, 0.1)
    target = np.nan_to_num(x[:, 2]) * 3 + y
    booster = _train({"objective": "reg:squarederror", "max_depth": 4}, x, target, rounds=30)
    model = assert_same_as_xgboost(booster, _data(2000, 4, 0.1)[0])
    assert model.objective == "reg:squarederror"


def test_missing_values_go_to_each_node_s_default_side() -> None:
    x, y = _data(4000, 5, 0.3)
    booster = _train({"objective": "binary:logistic", "max_depth": 6}, x, y, rounds=30)
    model = CompiledTrees.from_booster(booster)
    split = model.nodes["child"] >= 0
    assert set(model.default_right[split]) == {0, 1}  # both directions are exercised
    rows = np.full((FEATURES + 1, FEATURES), np.nan, dtype=np.float32)  # all missing...
    for j in range(FEATURES):
        rows[j + 1] = np.float32(0.5)
        rows[j + 1, j] = np.nan  # ...or one feature missing
    assert_same_as_xgboost(booster, np.concatenate([rows, _data(500, 6, 0.3)[0]]))


def test_single_leaf_trees_add_their_value_and_attribute_nothing() -> None:
    x, y = _data(500, 7)
    # a split never pays for gamma = 1e9: every tree is one leaf
    booster = _train({"objective": "binary:logistic", "gamma": 1e9}, x, y, rounds=5)
    model = assert_same_as_xgboost(booster, x)
    assert (model.nodes["child"] == -1).all() and len(model.roots) == 5
    evaluation = model.evaluate(x)
    assert not evaluation.contributions.any()
    assert np.allclose(evaluation.margin, evaluation.bias)


def test_the_converted_forest_scores_as_xgboost_and_as_sklearn() -> None:
    x, y = _data(5000, 8, 0.1)
    forest = RandomForestClassifier(n_estimators=12, random_state=0).fit(x, y)
    booster = to_booster(forest, NAMES)
    test, _ = _data(2000, 9, 0.1)
    model = assert_same_as_xgboost(booster, test)
    assert np.abs(model.predict(test) - forest.predict_proba(test)[:, 1]).max() < 1e-6


def test_the_base_margin_and_the_sigmoid_are_xgboost_s_float32_arithmetic() -> None:
    rng = np.random.default_rng(10)
    x, y = _data(50, 11)
    zero = xgb.DMatrix(np.zeros((1, FEATURES), dtype=np.float32), feature_names=NAMES)
    for base_score in rng.uniform(1e-4, 1 - 1e-4, 40):
        # a learning rate of 0: every leaf is 0, the margin is the base margin alone
        params = {"objective": "binary:logistic", "base_score": base_score, "eta": 0.0}
        booster = _train(params, x, y, rounds=1)
        expected = booster.predict(zero, output_margin=True)
        assert CompiledTrees.from_booster(booster).base_margin == expected[0], base_score
    # the sigmoid over margins far apart, clamped ones included: XGBoost's through base_margin
    margin = np.concatenate(
        [rng.normal(0, 8, 20_000), rng.uniform(-100, 100, 2_000), [-88.7, -89, 88.7, 0]]
    ).astype(np.float32)
    rows = xgb.DMatrix(np.zeros((len(margin), FEATURES), dtype=np.float32), feature_names=NAMES)
    rows.set_base_margin(margin)
    model = CompiledTrees.from_booster(booster)
    assert np.array_equal(model.transform(margin), booster.predict(rows))


def test_input_of_the_wrong_shape_is_refused() -> None:
    x, y = _data(200, 12)
    model = CompiledTrees.from_booster(_train({"objective": "binary:logistic"}, x, y, rounds=2))
    with pytest.raises(ValueError, match="6 features"):
        model.evaluate(x[:, :5])
    assert model.evaluate(x[:0]).margin.shape == (0,)


def test_what_it_does_not_model_is_refused_by_name() -> None:
    x, y = _data(300, 13)
    frame = pd.DataFrame(x, columns=NAMES)
    kind = np.where(x[:, 5] > 0, "a", np.where(x[:, 4] > 0, "b", "c"))
    frame["f5"] = pd.Categorical(kind)
    categorical = xgb.train(
        {"objective": "binary:logistic", "max_cat_to_onehot": 1, "nthread": 1},
        xgb.DMatrix(frame, label=kind == "a", enable_categorical=True),
        num_boost_round=3,
    )
    with pytest.raises(UnsupportedModel, match="categorical"):
        CompiledTrees.from_booster(categorical)
    classes = _train({"objective": "multi:softprob", "num_class": 3}, x, y.astype(int), rounds=2)
    with pytest.raises(UnsupportedModel, match="objective multi:softprob"):
        CompiledTrees.from_booster(classes)
    dart = _train({"objective": "binary:logistic", "booster": "dart"}, x, y, rounds=2)
    with pytest.raises(UnsupportedModel, match="booster dart"):
        CompiledTrees.from_booster(dart)
    poisson = _train({"objective": "count:poisson"}, x, y, rounds=2)
    with pytest.raises(UnsupportedModel, match="objective count:poisson"):
        CompiledTrees.from_booster(poisson)


def test_rows_shared_among_threads_and_tiles_score_as_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ml.compiled_trees as compiled_trees

    x, y = _data(3_000, seed=11, missing=0.1)  # several kernel tiles (TILE_ROWS) of rows
    booster = _train({"objective": "binary:logistic", "max_depth": 4}, x, y, rounds=30)
    model = assert_same_as_xgboost(booster, x)
    alone = model.evaluate(x)
    monkeypatch.setattr(compiled_trees, "BLOCK_ROWS", 333)  # blocks that end mid-tile
    shared = model.evaluate(x, threads=3)
    assert np.array_equal(shared.margin, alone.margin)
    assert np.array_equal(shared.contributions, alone.contributions)
    assert np.array_equal(shared.margin, _xgboost(booster, x, output_margin=True))
