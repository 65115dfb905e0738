"""What the model has to beat: a random forest, a logistic regression and the rules a bank
starts with.

Each is scored on the same split, with the same alert-budget threshold rule, as the model.
The random forest is the textbook strong baseline for card fraud: no tuning, splits anywhere
between two observed values, an average over many decorrelated trees; a boosted model that
cannot beat it has learned the data it was built on rather than fraud.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml.dataset import row_blocks
from ml.sampling import sample_negatives, take_rows


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


# Rows the logistic regression is fitted on at most: every fraud, and a uniform sample of the
# rest weighted up to the whole. 47 coefficients need far fewer rows than that, and at 10M
# transactions the full fit took minutes and gigabytes (the scaler's and lbfgs' float64
# copies of the matrix). Below the cap every row is used.
LOGISTIC_MAX_ROWS = 1_000_000
# Rows scored at a time: the pipeline makes float64 copies of its input at each step, which
# for a whole test period of a large lake would be gigabytes.
PREDICT_ROWS = 262_144
# The random forest's fit rows at most (every fraud, a weighted sample of the rest): its
# trees grow until their leaves are pure, so their size, and the time to score with them,
# grow with the rows they are fitted on.
FOREST_MAX_ROWS = 250_000
FOREST_TREES = 100


def balanced_sample(fit_y: np.ndarray, max_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers, weights): all rows with sklearn's "balanced" class weights (n / (2 x
    class count)), or, above max_rows, every positive and a uniform sample of negatives whose
    weights add up to the same class total, so the fit estimates the same model."""
    n, positives = len(fit_y), int(np.sum(fit_y))
    sample = sample_negatives(fit_y, max_rows, seed)
    weights = sample.weights(fit_y, n / (2 * positives), n / (2 * (n - positives)))
    return sample.rows, weights


class MedianImputer(TransformerMixin, BaseEstimator):
    """Missing values (NaN) replaced by the column's median of the fit rows, 0 for a column
    with none: SimpleImputer(strategy="median", keep_empty_features=True)'s statistics and
    output, from np.nanmedian (a partition per column) rather than its masked-array sort of
    the whole matrix, several times slower."""

    def fit(self, x: np.ndarray, y: object = None) -> MedianImputer:
        x = np.asarray(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": set to 0 below
            medians = np.nanmedian(x, axis=0)
        self.statistics_ = np.where(np.isnan(medians), 0, medians).astype(x.dtype)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, copy=True)
        missing = np.isnan(x)
        x[missing] = np.broadcast_to(self.statistics_, x.shape)[missing]
        return x


def fit_logistic(
    fit_x: np.ndarray | pd.DataFrame,
    fit_y: np.ndarray,
    *,
    seed: int = 42,
    max_rows: int = LOGISTIC_MAX_ROWS,
) -> Pipeline:
    """Median-imputed, sign(x)*log(1+|x|)-compressed, standardized features; classes balanced
    by weight (balanced_sample). The log makes it a fair linear baseline: counts and amounts
    are heavy-tailed, and on raw values the fit follows a few outliers (its test AP halves on
    the demo data)."""
    fit_y = np.asarray(fit_y, dtype=bool)
    rows, weights = balanced_sample(fit_y, max_rows, seed)
    x = _matrix(fit_x if rows.size == len(fit_y) else take_rows(fit_x, rows))
    model = make_pipeline(
        MedianImputer(),
        FunctionTransformer(signed_log1p),
        StandardScaler(),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    return model.fit(x, fit_y[rows], logisticregression__sample_weight=weights)


def fit_random_forest(
    fit_x: np.ndarray | pd.DataFrame,
    fit_y: np.ndarray,
    *,
    seed: int = 42,
    max_rows: int = FOREST_MAX_ROWS,
    trees: int = FOREST_TREES,
) -> RandomForestClassifier:
    """scikit-learn's random forest as it comes: FOREST_TREES fully grown trees, sqrt of the
    features tried at each split, missing values handled by the trees themselves, seeded.
    Above max_rows it fits on every fraud and a uniform sample of the rest, each sampled
    negative weighted up to the whole (ml/sampling.py), as the booster does."""
    fit_y = np.asarray(fit_y, dtype=bool)
    sample = sample_negatives(fit_y, max_rows, seed)
    x = _matrix(fit_x if not sample.is_sampled else take_rows(fit_x, sample.rows))
    forest = RandomForestClassifier(
        n_estimators=trees, max_features="sqrt", n_jobs=-1, random_state=seed
    )
    weights = sample.weights(fit_y) if sample.is_sampled else None
    return forest.fit(x, fit_y[sample.rows], sample_weight=weights)


def predict_logistic(model: Pipeline, x: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Log-odds rather than probabilities: with unbounded inputs predict_proba rounds the
    most extreme rows to exactly 1.0, and those ties would blur the baseline's ranking."""
    scores = np.empty(len(x), dtype=np.float64)
    for rows in row_blocks(len(x), PREDICT_ROWS):
        scores[rows] = model.decision_function(_matrix(take_rows(x, rows)))
    return scores


def _matrix(x: np.ndarray | pd.DataFrame) -> np.ndarray:
    """A float32 matrix (fit_fold passes feature columns; sklearn wants one array)."""
    if isinstance(x, pd.DataFrame):
        return x.to_numpy(dtype=np.float32, na_value=np.nan)
    return np.asarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Rule:
    name: str
    points: float
    fires: Callable[[pd.DataFrame], pd.Series]
    why: str


def _f(frame: pd.DataFrame, column: str) -> pd.Series:
    """A feature with missing values as 0 (a rule never fires on an unknown value)."""
    return frame[column].fillna(0.0)


_LOG_500, _LOG_1000 = float(np.log1p(500)), float(np.log1p(1000))

# Round-number thresholds of the kind a fraud team writes first. They were checked once
# against the demo data's scenarios so the baseline is a fair one, not a straw man.
RULES: tuple[Rule, ...] = (
    Rule(
        "new_beneficiary_high_amount",
        3.0,
        lambda f: (
            (_f(f, "is_pix") == 1)
            & (_f(f, "is_outbound") == 1)
            & (_f(f, "is_first_time_counterparty") == 1)
            & (_f(f, "amount_ratio_to_avg_30d") >= 5)
            & (_f(f, "amount_log") >= _LOG_1000)
        ),
        "PIX out of R$1,000+ to a never-seen beneficiary, 5x the customer's 30-day average",
    ),
    Rule(
        "night_new_device",
        3.0,
        lambda f: (_f(f, "is_night") == 1) & (_f(f, "is_new_device") == 1),
        "a device never seen for the customer, between 00:00 and 05:59",
    ),
    Rule(
        "night_large_pix",
        2.0,
        lambda f: (
            (_f(f, "is_night") == 1)
            & (_f(f, "is_pix") == 1)
            & (_f(f, "is_outbound") == 1)
            & (_f(f, "amount_log") >= _LOG_500)
        ),
        "PIX out of R$500+ between 00:00 and 05:59",
    ),
    Rule(
        "card_not_present_burst",
        3.0,
        lambda f: (
            ((_f(f, "is_credit") == 1) | (_f(f, "is_debit") == 1))
            & (_f(f, "is_internet_banking") == 1)
            & (f["cust_seconds_since_prev_tx"].fillna(np.inf) <= 120)
            & (_f(f, "cust_tx_count_1d") >= 5)
            & (f["amount_brl"].fillna(np.inf) <= 20)
        ),
        "online card payment of R$20 or less, 2 minutes after the previous one, 5+ in 24 h",
    ),
    Rule(
        "known_fraud_counterparty",
        3.0,
        lambda f: _f(f, "cp_fraud_reported_30d") >= 1,
        "the counterparty had a fraud reported in the previous 30 days",
    ),
    Rule(
        "many_new_senders",
        2.0,
        lambda f: _f(f, "cust_inbound_new_sender_count_7d") >= 50,
        "50+ inbound transfers from new senders in 7 days (mule account)",
    ),
)
RULE_TIEBREAK = 0.01  # x amount_log: within the same points, larger amounts first


def rules_score(frame: pd.DataFrame, rules: tuple[Rule, ...] = RULES) -> np.ndarray:
    """Points of the rules that fire, plus 0.01 x ln(1 + amount) to order equal points by
    amount (what an analyst's queue does); the tie-break never outweighs a rule."""
    points = np.zeros(len(frame))
    for rule in rules:
        points += rule.points * rule.fires(frame).to_numpy(dtype=bool)
    return points + RULE_TIEBREAK * _f(frame, "amount_log").clip(0, 50).to_numpy()


def describe_rules(rules: tuple[Rule, ...] = RULES) -> list[dict[str, object]]:
    return [{"name": r.name, "points": r.points, "condition": r.why} for r in rules]
