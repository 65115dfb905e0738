"""The rules baseline fires on the cases it is written for and stays quiet otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.baselines import RULE_TIEBREAK, RULES, fit_logistic, predict_logistic, rules_score
from ml.features import FEATURES

BENIGN = dict.fromkeys(FEATURES, 0.0) | {
    "amount_brl": 150.0,
    "amount_log": 5.0,
    "is_outbound": 1.0,
    "is_pix": 1.0,
    "amount_ratio_to_avg_30d": 1.0,
    "cust_tx_count_1d": 2.0,
    "cust_seconds_since_prev_tx": 7200.0,
    "cust_inbound_new_sender_count_7d": 3.0,
}
CASES = {
    "new_beneficiary_high_amount": {
        "is_first_time_counterparty": 1.0,
        "amount_ratio_to_avg_30d": 8.0,
        "amount_brl": 2500.0,
        "amount_log": 7.8,
    },
    "night_new_device": {"is_night": 1.0, "is_new_device": 1.0, "is_pix": 0.0},
    "night_large_pix": {"is_night": 1.0, "amount_brl": 900.0, "amount_log": 6.8},
    "card_not_present_burst": {
        "is_pix": 0.0,
        "is_credit": 1.0,
        "is_internet_banking": 1.0,
        "cust_tx_count_1d": 12.0,
        "cust_seconds_since_prev_tx": 30.0,
        "amount_brl": 4.0,
        "amount_log": 1.6,
    },
    "known_fraud_counterparty": {"cp_fraud_reported_30d": 2.0},
    "many_new_senders": {"cust_inbound_new_sender_count_7d": 60.0, "is_outbound": 0.0},
}


@pytest.mark.parametrize("rule_name", sorted(CASES))
def test_each_rule_fires_on_its_case_and_not_on_a_benign_payment(rule_name: str) -> None:
    rule = next(r for r in RULES if r.name == rule_name)
    frame = pd.DataFrame([BENIGN, BENIGN | CASES[rule_name]])
    assert rule.fires(frame).tolist() == [False, True]
    # only this rule fires on its case (the cases isolate the rules)
    assert [r.name for r in RULES if r.fires(frame).iloc[1]] == [rule_name]
    scores = rules_score(frame)
    assert scores[1] - scores[0] == pytest.approx(
        rule.points + RULE_TIEBREAK * (frame["amount_log"][1] - frame["amount_log"][0])
    )


def test_every_rule_has_a_case() -> None:
    assert {r.name for r in RULES} == set(CASES)


def test_benign_scores_only_the_tiebreak_and_missing_values_never_fire() -> None:
    benign = pd.DataFrame([BENIGN])
    assert rules_score(benign)[0] == pytest.approx(RULE_TIEBREAK * 5.0)
    unknown = pd.DataFrame([dict.fromkeys(FEATURES, np.nan) | {"amount_brl": np.nan}])
    assert rules_score(unknown)[0] == 0.0


def test_logistic_baseline_ranks_a_linear_signal() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # imputed
    y = (np.nan_to_num(x[:, 0]) + 0.3 * rng.normal(size=2000)) > 1.8
    model = fit_logistic(x, y)
    scores = predict_logistic(model, x)
    assert scores[y].mean() > scores[~y].mean() + 0.5


def test_scoring_in_blocks_gives_the_scores_of_one_whole_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Equal up to float32 rounding, not bit for bit: numpy's vectorized log and BLAS round
    a row's last bits differently depending on where it falls in the array (about 1e-6 here;
    the 1M-transaction run gave the same average precision to every digit)."""
    import ml.baselines

    x, y = _linear_rows(3_000)
    x[::11, 2] = np.nan
    model = fit_logistic(x, y)
    whole = model.decision_function(x)
    monkeypatch.setattr(ml.baselines, "PREDICT_ROWS", 257)
    np.testing.assert_allclose(predict_logistic(model, x), whole, rtol=1e-5, atol=1e-5)
    frame = pd.DataFrame(x, columns=list(FEATURES))
    np.testing.assert_allclose(predict_logistic(model, frame), whole, rtol=1e-5, atol=1e-5)
    assert not np.allclose(predict_logistic(model, x[::-1]), whole, rtol=1e-5, atol=1e-5)


def _linear_rows(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    y = x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 2.2
    return x, y


def test_below_the_cap_the_logistic_is_sklearns_balanced_fit_on_every_row() -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from ml.baselines import signed_log1p

    x, y = _linear_rows(3_000)
    reference = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        FunctionTransformer(signed_log1p),
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=42),
    ).fit(x, y)
    ours = fit_logistic(x, y)
    np.testing.assert_allclose(ours[-1].coef_, reference[-1].coef_, rtol=1e-6, atol=1e-8)


def test_the_median_imputer_is_sklearns_median_imputer() -> None:
    from sklearn.impute import SimpleImputer

    from ml.baselines import MedianImputer

    rng = np.random.default_rng(5)
    for rows in (2_000, 2_001):  # an even count's median is the mean of the middle two
        x = rng.lognormal(size=(rows, 6)).astype(np.float32)
        x[:, 1] = np.round(x[:, 1])  # ties
        x[rng.random(x.shape) < 0.3] = np.nan
        x[:, 2] = np.nan  # no value at all: 0, as keep_empty_features does
        reference = SimpleImputer(strategy="median", keep_empty_features=True).fit(x)
        ours = MedianImputer().fit(x)
        assert ours.statistics_.dtype == reference.statistics_.dtype
        assert np.array_equal(ours.statistics_, reference.statistics_)
        later = rng.lognormal(size=(50, 6)).astype(np.float32)
        later[rng.random(later.shape) < 0.5] = np.nan
        assert np.array_equal(ours.transform(later), reference.transform(later))
        assert not np.isnan(ours.transform(later)).any()
        assert np.isnan(later).any()  # transform copies: its input is left as it was


def test_above_the_cap_every_fraud_stays_and_sampled_negatives_carry_their_class_weight() -> None:
    from ml.baselines import balanced_sample

    x, y = _linear_rows(20_000)
    positives, negatives = int(y.sum()), int((~y).sum())
    rows, weights = balanced_sample(y, max_rows=5_000, seed=42)
    assert rows.size == 5_000 and np.all(np.diff(rows) > 0)
    assert set(np.flatnonzero(y)) <= set(rows)
    # each class carries half of the full data's weight, as "balanced" on every row would
    assert weights[y[rows]].sum() == pytest.approx(len(y) / 2)
    assert weights[~y[rows]].sum() == pytest.approx(len(y) / 2)
    assert np.array_equal(rows, balanced_sample(y, max_rows=5_000, seed=42)[0])  # seeded
    assert positives < 5_000 < negatives
    # the sampled fit still ranks the signal like the full one
    sampled = predict_logistic(fit_logistic(x, y, max_rows=5_000), x)
    full = predict_logistic(fit_logistic(x, y), x)
    assert np.corrcoef(sampled, full)[0, 1] > 0.99
