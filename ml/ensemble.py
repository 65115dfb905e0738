"""The fraud model: the mean of XGBoost's and the random forest's fraud probabilities.

Why two: on data the project was not designed for (ml/mechanisms.py) each one loses to the
other somewhere. The booster ranks rare, many-signal frauds better (a counterparty whose
labelled past turns bad); the forest's splits sit halfway between observed values, so a hard
boundary (every amount above a limit) falls between the last legitimate and the first
fraudulent value, where the booster splits at an observed value and ties the few rows on it.
Their mean was at least the forest on every lake of the benchmark while keeping most of the
booster's lead (docs/decisions/0018-xgboost-and-forest.md).

A version saved before the forest joined holds the booster alone: it scores and explains as
it always did (forest None).

Explanations are in score points: the contributions of a row add up to its score minus the
model's average score, so "amount: +0.31" reads as a third of the score. Each half is
decomposed exactly:
- the booster by TreeSHAP (ml/explain.py) in log-odds, scaled onto the probability by the
  row's ratio (p - p0) / (m - m0) of probability to log-odds gained over the base (p0, m0):
  the same order of reasons within the booster, and the sum is the booster's probability
  minus its base;
- the forest by its path attributions (each split's change of the node's fraud share,
  credited to the split's feature: XGBoost's approx_contribs): a fully grown tree's paths
  are too long for TreeSHAP at scoring speed.

A handful of rows at a time (real-time scoring, `score_few`) are scored and given path
attributions by the compiled trees of ml/compiled_trees.py: XGBoost's scores bit for bit and
its path attributions to float32 rounding, without XGBoost's per-call costs. Each booster's
compiled trees are built once, on first use (`warm_up` builds them ahead), and kept as long
as the booster lives. The rows explained exactly (real-time alerts) get the booster's TreeSHAP
from the batch job's own tables walked by a compiled loop (ml/compiled_shap.py), checked
against XGBoost's TreeSHAP when they are built; a model they do not cover, or one they
disagree with, is explained by XGBoost itself.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xgboost as xgb

from ml.booster import predict
from ml.dataset import row_blocks
from ml.explain import Explanation, explain, xgboost_contributions
from ml.features import FEATURES
from ml.sampling import take_rows

if TYPE_CHECKING:
    from ml.compiled_shap import CompiledShap
    from ml.compiled_trees import CompiledTrees

WEIGHTS = (0.5, 0.5)  # booster, forest
EXPLAIN_ROWS = 65_536  # rows explained at a time by XGBoost (its DMatrix is a float copy)


def combine(booster: np.ndarray, forest: np.ndarray) -> np.ndarray:
    """The model's score from its halves' probabilities."""
    return WEIGHTS[0] * booster + WEIGHTS[1] * forest


@dataclass(frozen=True)
class FraudModel:
    booster: xgb.Booster
    forest: xgb.Booster | None = None  # ml/forest.py's conversion; None: booster alone

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores in [0, 1]: the weighted mean of the two probabilities."""
        scores = predict(self.booster, x)
        if self.forest is None:
            return scores
        return combine(scores, predict(self.forest, x))

    def explain(self, x: np.ndarray, *, workers: int | None = None) -> Explanation:
        """(rows x features) contributions in score points (see the module docstring)."""
        booster = explain(self.booster, x, workers=workers)
        points = _log_odds_to_points(self.booster, x, booster.contributions)
        if self.forest is None:
            return Explanation(points, booster.method, booster.note)
        forest = forest_contributions(self.forest, x)
        combined = WEIGHTS[0] * points + WEIGHTS[1] * forest
        return Explanation(combined, f"{booster.method}+forest-paths", booster.note)

    def explain_few(self, x: np.ndarray, exact: np.ndarray | None = None) -> Explanation:
        """explain() for a handful of rows (real-time scoring): see score_few."""
        return self.score_few(x, exact=exact)[1]

    def score_paths(self, x: np.ndarray, *, threads: int = 1) -> tuple[np.ndarray, Explanation]:
        """predict()'s scores bit for bit and every row's path attributions in score points,
        from the compiled trees, `threads` sharing the rows: what score_few gives a row it
        does not explain exactly (a real-time approval), for a whole day of rows."""
        return self.score_few(x, exact=np.zeros(len(x), dtype=bool), threads=threads)

    def score_few(
        self,
        x: np.ndarray,
        *,
        exact: np.ndarray | None = None,
        threshold: float | None = None,
        threads: int = 1,
    ) -> tuple[np.ndarray, Explanation]:
        """predict() and explain() of a handful of rows (real-time scoring), from the compiled
        trees: predict()'s scores bit for bit, without XGBoost's per-call costs.

        The booster's part of a row's explanation is exact TreeSHAP (XGBoost's own: the batch
        job's values, from its tables: `exact_contributions`) where `exact` is true, or where
        the score reaches `threshold` when that is given instead (default: every row), and
        path attributions (approx_contribs, as the forest's part always is) for the others:
        exact TreeSHAP costs milliseconds a row on a large booster, path attributions tens of
        microseconds."""
        # the columns are FEATURES (the callers' contract): no names to check at every call
        rows = np.asarray(x, dtype=np.float32)
        trees = compiled(self.booster)
        booster = trees.evaluate(rows, threads=threads)
        scores = trees.transform(booster.margin).astype(np.float64)
        forest = None
        if self.forest is not None:
            forest_trees = compiled(self.forest)
            forest = forest_trees.evaluate(rows, threads=threads)
            scores = combine(scores, forest_trees.transform(forest.margin).astype(np.float64))
        if exact is None:
            exact = np.ones(len(rows), dtype=bool) if threshold is None else scores >= threshold
        exact = np.asarray(exact, dtype=bool)
        contributions = booster.contributions  # the path attributions, replaced where exact
        if exact.any():
            tables = shap_tables(self.booster)
            contributions[exact] = (
                xgboost_contributions(self.booster, rows[exact])
                if tables is None
                else tables.contributions(rows[exact])
            )
            method = "xgboost" if tables is None else "treeshap-tables"
            method = method if exact.all() else f"{method}+paths"
        else:
            method = "paths"
        points = _points(contributions, booster.margin.astype(np.float64))
        if forest is None:
            return scores, Explanation(points, method)
        combined = WEIGHTS[0] * points + WEIGHTS[1] * forest.contributions
        return scores, Explanation(combined, f"{method}+forest-paths")

    def warm_up(self) -> None:
        """Builds what score_few uses, the compiled trees of both halves, the booster's
        TreeSHAP tables and numba's kernels, so that the first call does not wait for them.
        Raises UnsupportedModel (ml/compiled_trees.py) for a model the trees do not model."""
        for model in (self.booster, self.forest):
            if model is not None:
                trees = compiled(model)
                trees.transform(trees.evaluate(np.zeros((1, trees.n_features))).margin)
        shap_tables(self.booster)


_COMPILED: weakref.WeakKeyDictionary[xgb.Booster, CompiledTrees] = weakref.WeakKeyDictionary()
_SHAP: weakref.WeakKeyDictionary[xgb.Booster, CompiledShap | None] = weakref.WeakKeyDictionary()
_COMPILED_LOCK = threading.Lock()


def compiled(model: xgb.Booster) -> CompiledTrees:
    """The booster's compiled trees, built on first use and kept while the booster lives (a
    loaded model is not changed). Keyed by the booster itself: a FraudModel is made afresh
    for every use (ml/artifacts.py LoadedModel.model). Two threads asking at once may both
    build them, and get the same trees; the lock only guards the dictionary, so a model
    being built never holds up scoring with another."""
    # numba only where a few rows are scored: the SageMaker container imports this module
    # without it (ml/sagemaker.py CONTAINER_REQUIREMENTS), and it takes 0.3 s to import
    from ml.compiled_trees import CompiledTrees

    with _COMPILED_LOCK:
        trees = _COMPILED.get(model)
    if trees is None:
        trees = CompiledTrees.from_booster(model)
        with _COMPILED_LOCK:
            _COMPILED[model] = trees
    return trees


def shap_tables(booster: xgb.Booster) -> CompiledShap | None:
    """The booster's TreeSHAP tables compiled for a few rows (ml/compiled_shap.py), built on
    first use and kept like `compiled`'s trees; None, and XGBoost's own TreeSHAP instead,
    for a booster the tables do not model or whose tables disagree with XGBoost on probe
    rows (the batch job's check, ml/explain.py)."""
    from ml.compiled_shap import CompiledShap, probe_rows
    from ml.tree_model import UnsupportedModel

    with _COMPILED_LOCK:
        if booster in _SHAP:
            return _SHAP[booster]
    tables: CompiledShap | None
    try:
        tables = CompiledShap.from_booster(booster)
    except UnsupportedModel:
        tables = None
    if tables is not None and not tables.agrees_with(booster, probe_rows(tables)):
        tables = None
    with _COMPILED_LOCK:
        _SHAP[booster] = tables
    return tables


def _log_odds_to_points(
    booster: xgb.Booster, x: np.ndarray, contributions: np.ndarray
) -> np.ndarray:
    """Each row's log-odds contributions times (p - p0) / (m - m0): m the row's margin, m0
    = m minus the contributions (the base, the same on every row), p and p0 their
    probabilities; at m = m0 the slope of the sigmoid there."""
    if len(x) == 0:
        return contributions
    margin = np.empty(len(x), dtype=np.float64)
    for rows in row_blocks(len(x), EXPLAIN_ROWS):
        margin[rows] = booster.inplace_predict(
            take_rows(x, rows), missing=np.nan, predict_type="margin"
        )
    return _points(contributions, margin)


def _points(contributions: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """_log_odds_to_points with each row's margin known."""
    gained = contributions.sum(axis=1)
    base = margin - gained
    p, p0 = _sigmoid(margin), _sigmoid(base)
    flat = np.abs(gained) < 1e-12
    ratio = np.where(flat, p * (1 - p), (p - p0) / np.where(flat, 1.0, gained))
    return contributions * ratio[:, None]


def _sigmoid(m: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-m))


def forest_contributions(forest: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """The forest's path attributions (rows x features, the bias dropped): each row's add
    up to its forest score minus the forest's mean score."""
    return path_contributions(forest, x)


def path_contributions(model: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """XGBoost's path attributions (approx_contribs: each split's change of the expected
    output credited to its feature), rows x features, the bias dropped."""
    out = np.empty((len(x), len(FEATURES)), dtype=np.float64)
    for rows in row_blocks(len(x), EXPLAIN_ROWS):
        matrix = xgb.DMatrix(
            np.asarray(take_rows(x, rows), dtype=np.float32),
            missing=np.nan,
            feature_names=list(FEATURES),
        )
        out[rows] = model.predict(matrix, pred_contribs=True, approx_contribs=True)[:, :-1]
    return out
