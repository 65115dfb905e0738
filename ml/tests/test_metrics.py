"""The alert-budget threshold and the test metrics, checked on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.metrics import evaluate, evaluate_many, precision_at_k_by_day, threshold_for_budget


def test_threshold_fills_exactly_the_budget_with_distinct_scores() -> None:
    scores = np.arange(100, dtype=float) / 100  # 0.00 .. 0.99
    threshold = threshold_for_budget(scores, n_days=2, alerts_per_day=5)
    assert np.sum(scores >= threshold) == 10
    assert threshold == pytest.approx(0.90)


def test_ties_at_the_boundary_never_overrun_the_budget() -> None:
    scores = np.array([0.9, 0.8, 0.5, 0.5, 0.5, 0.1])
    threshold = threshold_for_budget(scores, n_days=1, alerts_per_day=3)
    assert np.sum(scores >= threshold) == 2  # the three 0.5s would make 5
    assert threshold == 0.8


def test_budget_larger_than_the_rows_alerts_on_everything_and_zero_on_nothing() -> None:
    scores = np.array([0.3, 0.2])
    assert np.sum(scores >= threshold_for_budget(scores, 1, 10)) == 2
    assert np.sum(scores >= threshold_for_budget(scores, 1, 0.4)) == 0
    with pytest.raises(ValueError):
        threshold_for_budget(scores, 0, 10)


def test_customer_precision_at_k_takes_each_customers_max_per_day() -> None:
    days = np.array(["2026-09-01"] * 5 + ["2026-09-02"] * 2, dtype="datetime64[D]")
    customers = np.array(["a", "a", "b", "c", "d", "a", "b"])
    scores = np.array([0.1, 0.95, 0.9, 0.8, 0.2, 0.3, 0.6])
    labels = np.array([True, False, False, True, False, False, True])
    # day 1: a=0.95 (has a fraud that day, on another transaction), b=0.9, c=0.8 -> top 2: a, b
    # day 2: b=0.6 fraud, a=0.3 -> top 2: b, a
    by_day = precision_at_k_by_day(days, customers, scores, labels, k=2)
    assert by_day == {"2026-09-01": 0.5, "2026-09-02": 0.5}
    assert precision_at_k_by_day(days, customers, scores, labels, k=1) == {
        "2026-09-01": 1.0,
        "2026-09-02": 1.0,
    }


def test_evaluate_counts_alerts_and_per_scenario_recall() -> None:
    frame = pd.DataFrame(
        {
            "label": [True, True, True, False, False, False],
            "label_scenario": ["pix_scam", "pix_scam", "card_testing", None, None, None],
            "event_date": pd.to_datetime(["2026-09-01"] * 3 + ["2026-09-02"] * 3),
            "customer_id": ["a", "b", "c", "a", "b", "c"],
        }
    )
    scores = np.array([0.9, 0.2, 0.8, 0.85, 0.1, 0.3])
    m = evaluate(frame, scores, threshold=0.5, k=1)
    assert (m.alerts, m.rows, m.frauds, m.days) == (3, 6, 3, 2)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.alerts_per_day == 1.5
    assert m.recall_by_scenario["pix_scam"] == {"frauds": 2, "caught": 1, "recall": 0.5}
    assert m.recall_by_scenario["card_testing"]["recall"] == 1.0
    assert m.precision_at_k_by_day == {"2026-09-01": 1.0, "2026-09-02": 0.0}
    assert m.precision_at_k_ceiling == 0.5  # day 2 has no fraud: no ranking could do better
    assert m.roc_auc == pytest.approx(6 / 9)  # 6 of the 9 fraud/legit pairs ranked right


def test_evaluate_many_gives_each_model_what_evaluate_gives_it_alone() -> None:
    rng = np.random.default_rng(11)
    n = 3_000
    label = rng.random(n) < 0.05
    frame = pd.DataFrame(
        {
            "label": label,
            "label_scenario": pd.Series(rng.choice(["a", "b", "c"], n)).where(label),
            "event_date": pd.to_datetime("2026-09-01")
            + pd.to_timedelta(rng.integers(0, 4, n), unit="D"),
            "customer_id": rng.choice([f"c{i}" for i in range(400)], n),
        }
    )
    scores = {
        "signal": np.where(label, 0.5, 0.0) + rng.random(n),
        "noise": np.round(rng.random(n), 2),  # ties
    }
    thresholds = {"signal": 1.2, "noise": 0.95}
    together = evaluate_many(frame, scores, thresholds, k=20)
    for name in scores:
        assert together[name] == evaluate(frame, scores[name], thresholds[name], k=20)
    assert together["signal"] != together["noise"]
    signal, noise = together["signal"].average_precision, together["noise"].average_precision
    assert signal is not None and noise is not None and signal > noise
    assert set(together["signal"].average_precision_by_scenario) == {"a", "b", "c"}


def test_metrics_without_a_fraud_are_undefined_not_wrong() -> None:
    frame = pd.DataFrame(
        {
            "label": [False, False],
            "label_scenario": [None, None],
            "event_date": pd.to_datetime(["2026-09-01"] * 2),
            "customer_id": ["a", "b"],
        }
    )
    m = evaluate(frame, np.array([0.1, 0.9]), threshold=0.5)
    assert m.roc_auc is None and m.average_precision is None and m.recall is None
    assert m.precision == 0.0
