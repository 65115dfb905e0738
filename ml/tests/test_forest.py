"""The forest converted to XGBoost's format scores exactly as scikit-learn does, and the
model (XGBoost + forest) explains its own score."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier

from ml.booster import BoosterParams, fit_booster, predict
from ml.ensemble import (
    WEIGHTS,
    FraudModel,
    _points,
    compiled,
    forest_contributions,
    path_contributions,
)
from ml.features import FEATURES
from ml.forest import _xgboost_condition, to_booster

NAMES = [f"f{i}" for i in range(6)]


def _data(rows: int, seed: int, missing: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    x[:, 3] = np.round(x[:, 3], 1)  # many rows on the same values: thresholds between them
    x[rng.random(x.shape) < missing] = np.nan
    y = (np.nan_to_num(x[:, 0]) > 1.2) | (rng.random(rows) < 0.02)
    return x, y


@pytest.mark.parametrize("missing", [0.0, 0.1])
def test_the_converted_forest_scores_what_sklearn_scores(missing: float) -> None:
    x, y = _data(8000, 1, missing)
    forest = RandomForestClassifier(n_estimators=15, random_state=0).fit(x, y)
    booster = to_booster(forest, NAMES)
    test, _ = _data(4000, 2, missing)
    # rows exactly on split thresholds (as float32) and at the float32 just above them
    thresholds = forest.estimators_[0].tree_.threshold
    feature = forest.estimators_[0].tree_.feature
    # (an infinite threshold is scikit-learn's split of the missing values from the rest)
    finite = np.flatnonzero((feature >= 0) & np.isfinite(thresholds))
    for row, node in enumerate(finite[:50]):
        on = np.float32(thresholds[node])
        test[row, feature[node]] = on
        test[row + 50, feature[node]] = np.nextafter(on, np.float32(np.inf))
    expected = forest.predict_proba(test)[:, 1]
    actual = booster.inplace_predict(test, missing=np.nan)
    assert np.max(np.abs(actual - expected)) < 1e-6  # float32 sums of the leaves
    assert booster.num_boosted_rounds() == 15
    # saved and loaded as JSON (no pickle anywhere): the same scores
    again = xgb.Booster()
    again.load_model(bytearray(booster.save_raw("json")))
    assert np.array_equal(again.inplace_predict(test, missing=np.nan), actual)


def test_conditions_keep_sklearns_less_or_equal() -> None:
    t = np.array([0.1, -2.5, 1e-8, 3.0, np.float64(np.float32(0.7))])
    c = _xgboost_condition(t)
    for value, cond in zip(t, c, strict=True):
        below = np.float32(value)
        below = below if float(below) <= value else np.nextafter(below, np.float32(-np.inf))
        assert below < cond  # the largest float32 <= t goes left, as in sklearn
        assert not np.nextafter(below, np.float32(np.inf)) < cond  # the next one goes right
        assert float(np.nextafter(below, np.float32(np.inf))) > value


def test_a_forest_of_other_labels_is_refused() -> None:
    x, y = _data(500, 3, 0.0)
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y.astype(int) * 2)
    with pytest.raises(ValueError, match="labels"):
        to_booster(forest, NAMES)


def _model(seed: int = 5) -> tuple[FraudModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = 6000
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 2.0) | (rng.random(rows) < 0.01)
    fitted = fit_booster(x[:4000], y[:4000], x[4000:], y[4000:], BoosterParams(num_boost_round=60))
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x[:4000], y[:4000])
    return FraudModel(fitted.booster, to_booster(forest, list(FEATURES))), x[4000:]


def test_the_model_is_the_mean_of_its_halves_and_its_reasons_add_up_to_its_score() -> None:
    model, x = _model()
    assert model.forest is not None
    booster, forest = predict(model.booster, x), predict(model.forest, x)
    scores = model.predict(x)
    assert np.allclose(scores, (booster + forest) / 2)
    explanation = model.explain(x, workers=1)
    assert explanation.method == "treeshap-tables+forest-paths"
    # contributions in score points: each row's add up to its score minus the same base
    base = scores - explanation.contributions.sum(axis=1)
    assert np.max(np.abs(base - base[0])) < 1e-5
    # the forest's half alone: its path attributions add up to its own score minus its mean
    paths = forest_contributions(model.forest, x)
    forest_base = forest - paths.sum(axis=1)
    assert np.max(np.abs(forest_base - forest_base[0])) < 1e-5
    # the signal's features carry the fraud scores
    top = np.argmax(explanation.contributions, axis=1)
    assert set(top[scores > 0.5]) <= {0, 1}


def test_a_booster_alone_explains_in_score_points_too() -> None:
    model, x = _model()
    alone = FraudModel(model.booster)
    scores = alone.predict(x)
    assert np.array_equal(scores, predict(model.booster, x))
    contributions = alone.explain(x, workers=1).contributions
    base = scores - contributions.sum(axis=1)
    assert np.max(np.abs(base - base[0])) < 1e-5


def test_a_few_rows_score_as_predict_bit_for_bit_and_explain_as_xgboost() -> None:
    model, x = _model()
    assert model.forest is not None
    x = x[:64].copy()
    x[::5, 0] = np.nan  # missing values on the signal's feature
    paths = np.zeros(len(x), dtype=bool)
    scores, explanation = model.score_few(x, exact=paths)
    assert np.array_equal(scores, model.predict(x))  # the batch job's scores, bit for bit
    assert explanation.method == "paths+forest-paths"
    # the path attributions are XGBoost's approx_contribs, in score points
    margin = model.booster.inplace_predict(x, missing=np.nan, predict_type="margin")
    booster = _points(path_contributions(model.booster, x), margin.astype(np.float64))
    expected = WEIGHTS[0] * booster + WEIGHTS[1] * forest_contributions(model.forest, x)
    np.testing.assert_allclose(explanation.contributions, expected, rtol=0, atol=1e-6)
    # where exact, the booster's half is XGBoost's TreeSHAP, the batch job's
    threshold = float(np.quantile(scores, 0.75))
    again, mixed = model.score_few(x, threshold=threshold)
    assert np.array_equal(again, scores)
    exact = scores >= threshold
    every = model.score_few(x)[1]
    assert every.method == "treeshap-tables+forest-paths"
    assert mixed.method == "treeshap-tables+paths+forest-paths"
    # the batch job's explanation of the same rows (its numpy tables, XGBoost's margins)
    batch = model.explain(x, workers=1).contributions
    np.testing.assert_allclose(every.contributions, batch, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(mixed.contributions[exact], every.contributions[exact])
    np.testing.assert_array_equal(mixed.contributions[~exact], explanation.contributions[~exact])


def test_the_compiled_trees_are_built_once_per_booster() -> None:
    model, x = _model()
    assert model.forest is not None
    model.warm_up()
    booster, forest = compiled(model.booster), compiled(model.forest)
    again = FraudModel(model.booster, model.forest)  # as ml/artifacts.py makes one per use
    again.score_few(x[:3])
    assert compiled(model.booster) is booster and compiled(model.forest) is forest
