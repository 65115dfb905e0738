"""The compiled TreeSHAP tables (ml/compiled_shap.py): the batch job's numbers for a few rows."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from ml.booster import BoosterParams, fit_booster
from ml.compiled_shap import CompiledShap, probe_rows
from ml.ensemble import FraudModel, shap_tables
from ml.explain import CHECK_TOLERANCE, TreeShap, xgboost_contributions
from ml.features import FEATURES


def _booster(seed: int = 3, depth: int = 4) -> tuple[xgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5000, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values: the default sides
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) > 1.8) | (rng.random(5000) < 0.02)
    params = BoosterParams(num_boost_round=40, max_depth=depth)
    fitted = fit_booster(x[:3500], y[:3500], x[3500:], y[3500:], params)
    return fitted.booster, x[3500:]


def test_a_few_rows_get_the_tables_numbers_bit_for_bit_and_xgboost_s_within_tolerance() -> None:
    booster, x = _booster()
    tables = TreeShap.from_booster(booster)
    compiled = CompiledShap.from_tables(tables)
    rows = x[:300].copy()
    rows[:10, 0] = np.inf  # clipped to the largest float32, as the tables clip
    rows[10:20, 1] = -np.inf
    # the batch job's blocks and single rows alike: one row at a time equals the block
    block = compiled.contributions(rows)
    assert np.array_equal(block, tables.contributions(rows))
    singles = np.vstack([compiled.contributions(rows[i : i + 1]) for i in range(0, 300, 37)])
    assert np.array_equal(singles, block[::37])
    finite = rows[20:]  # XGBoost refuses infinite values
    expected = xgboost_contributions(booster, finite)
    assert np.max(np.abs(block[20:] - expected)) < CHECK_TOLERANCE
    assert compiled.agrees_with(booster, finite[:64])
    # the probe rows reach both sides of the splits and the missing values' sides
    probes = probe_rows(compiled)
    assert np.isnan(probes).any() and np.array_equal(probes, probe_rows(compiled), equal_nan=True)
    assert np.array_equal(compiled.contributions(probes), tables.contributions(probes))


def test_rows_of_the_wrong_width_are_refused() -> None:
    booster, x = _booster()
    with pytest.raises(ValueError, match=rf"rows x {len(FEATURES)} features"):
        CompiledShap.from_booster(booster).contributions(x[:2, :3])


def test_tables_that_disagree_with_xgboost_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    booster, x = _booster(seed=4)
    monkeypatch.setattr(CompiledShap, "agrees_with", lambda self, b, rows: False)
    assert shap_tables(booster) is None  # and it stays decided for this booster
    scores, explanation = FraudModel(booster).score_few(x[:5])
    assert explanation.method == "xgboost"
    model = FraudModel(booster)
    margin = booster.inplace_predict(x[:5], missing=np.nan, predict_type="margin")
    from ml.ensemble import _points

    expected = _points(xgboost_contributions(booster, x[:5]), margin.astype(np.float64))
    np.testing.assert_allclose(explanation.contributions, expected, rtol=0, atol=1e-6)
    assert np.array_equal(scores, model.predict(x[:5]))


def test_a_booster_the_tables_do_not_model_is_explained_by_xgboost() -> None:
    # paths splitting on more distinct features than a leaf's mask holds (ml/explain.py)
    booster, x = _booster(seed=5, depth=12)
    with pytest.raises(Exception, match="features"):
        TreeShap.from_booster(booster)
    assert shap_tables(booster) is None
    assert FraudModel(booster).score_few(x[:3])[1].method == "xgboost"


def test_the_tables_are_built_once_per_booster() -> None:
    booster, x = _booster(seed=6)
    model = FraudModel(booster)
    model.warm_up()
    built = shap_tables(booster)
    assert built is not None
    FraudModel(booster).score_few(x[:2])
    assert shap_tables(booster) is built
