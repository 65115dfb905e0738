"""PSI and the daily monitoring report."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml import drift
from ml.layout import MlLayout
from ml.monitor import OK, RETRAIN, WATCH, MonitorConfig, judge, monitor, realized_performance
from ml.score import score_day
from ml.tests.conftest import FAST_TRAINING, TRAINED_AT
from ml.train import train


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    ref = drift.reference(rng.normal(0, 1, 20_000))
    assert len(ref.edges) == 9 and sum(ref.shares) == pytest.approx(1.0)
    assert drift.psi(ref, rng.normal(0, 1, 5_000)) < 0.01
    assert drift.psi(ref, rng.normal(1, 1, 5_000)) > 0.2
    assert drift.psi(ref, np.full(100, np.nan)) > 1  # everything moved to the null bin


def test_binary_and_constant_features_get_usable_bins() -> None:
    ref = drift.reference(np.array([0.0] * 90 + [1.0] * 10))
    assert ref.edges == (0.0,)  # bins: <= 0, > 0, null
    assert ref.shares == pytest.approx((0.9, 0.1, 0.0))
    assert drift.reference(np.array([0.0] * 50 + [1.0] * 50)).edges == (0.0, 1.0)
    constant = drift.reference(np.full(10, 3.0))
    assert drift.psi(constant, np.full(10, 3.0)) == pytest.approx(0.0)
    assert drift.psi(constant, np.full(10, 4.0)) > 1
    assert drift.psi(ref, np.array([0.0] * 90 + [1.0] * 10)) == pytest.approx(0.0)
    assert drift.psi(ref, np.array([0.0] * 50 + [1.0] * 50)) > 0.2
    assert drift.Reference.from_dict(ref.to_dict()) == ref


def test_realized_precision_and_recall_use_labels_known_now() -> None:
    scores = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c", "d", "e"],
            "decision": ["alert", "alert", "pass", "pass", "alert"],
            "score_date": pd.to_datetime(["2026-09-01"] * 4 + ["2026-09-20"]),
        }
    )
    labels = pd.DataFrame(
        {"transaction_id": ["a", "c", "e"], "label_is_fraud": [True, True, False]}
    )
    out = realized_performance(scores, labels, date(2026, 9, 21), maturity_days=14)
    assert out["all"] == {
        "days": 2,
        "alerts": 3,
        "frauds_known": 2,
        "alerts_confirmed": 1,
        "precision": 1 / 3,
        "recall": 0.5,
    }
    assert out["mature"]["days"] == 1 and out["mature"]["precision"] == 0.5  # 09-01 only
    assert [d["label_age_days"] for d in out["per_day"]] == [20, 1]


def test_monitoring_a_stable_day_then_a_drifted_one(trained_lake: MlLayout) -> None:
    ml_lake = trained_lake
    day = date(2026, 9, 20)
    score_day(ml_lake, day)
    loose = MonitorConfig(psi_drift=0.5, psi_warning=0.5)  # 300 rows a day: PSI is noisy
    report = monitor(ml_lake, day, loose)
    written = json.loads(ml_lake.monitoring_file(day).read_text())
    assert written["day"] == "2026-09-20" and written["verdict"] == report.verdict == OK
    assert set(written["feature_psi"]) == set(report.feature_psi) and len(report.feature_psi) == 38
    assert report.rows == 300 and report.alerts > 0

    with duckdb.connect(str(ml_lake.lake.database)) as con:  # the customers' habits change
        con.execute(
            "update curated.ml_features set cp_fraud_rate_30d = cp_fraud_rate_30d + 3, "
            "is_weekend = 1 where event_date = '2026-09-20'"
        )
    score_day(ml_lake, day)
    drifted = monitor(ml_lake, day, loose)
    assert drifted.verdict == RETRAIN
    assert drifted.findings[0].startswith("PSI of cp_fraud_rate_30d = ")
    assert "retrain recommended: PSI of cp_fraud_rate_30d" in drifted.text()
    # a day is all weekend or all weekday: reported, never a finding
    assert drifted.feature_psi["is_weekend"] > 0.5
    assert not any("is_weekend" in f for f in drifted.findings)


def test_monitoring_an_unscored_day_says_how_to_score_it(ml_lake: MlLayout) -> None:
    with pytest.raises(FileNotFoundError, match="banklake score"):
        monitor(ml_lake)
    train(ml_lake, config=FAST_TRAINING, now=TRAINED_AT)
    score_day(ml_lake, date(2026, 9, 20))
    with pytest.raises(FileNotFoundError, match="banklake score --date 2026-09-19"):
        monitor(ml_lake, date(2026, 9, 19))


def _realized(alerts: int, precision: float | None) -> dict:
    return {"mature": {"alerts": alerts, "precision": precision}}


def test_poor_realized_precision_on_mature_labels_recommends_retraining() -> None:
    config = MonitorConfig()
    findings, verdict = judge({"amount_log": 0.01}, 0.01, 0.003, 0.003, _realized(80, 0.1), config)
    assert verdict == RETRAIN
    assert findings == ["realized precision 10.0% < 30% on 80 alerts with mature labels"]
    # too few mature alerts to judge: not a finding
    assert judge({"amount_log": 0.01}, 0.01, 0.003, 0.003, _realized(10, 0.0), config) == ([], OK)


def test_an_alert_rate_far_from_validations_is_a_warning() -> None:
    findings, verdict = judge(
        {"amount_log": 0.01}, 0.01, 0.02, 0.003, _realized(0, None), MonitorConfig()
    )
    assert verdict == WATCH and "alert rate 2.000%" in findings[0]
    findings, verdict = judge(
        {"amount_log": 0.15}, 0.01, 0.003, 0.003, _realized(0, None), MonitorConfig()
    )
    assert verdict == WATCH and findings == ["PSI of amount_log = 0.15 > 0.1"]
