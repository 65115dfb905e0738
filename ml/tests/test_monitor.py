"""PSI and the daily monitoring report."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml import drift
from ml.features import FEATURES, WINDOW_DAYS
from ml.layout import MlLayout
from ml.monitor import OK, RETRAIN, WATCH, MonitorConfig, judge, monitor, realized_performance
from ml.score import score_day
from ml.tests.conftest import FAST_TRAINING, START, TRAINED_AT, synthetic_features, write_features
from ml.train import WindowRequest, train
from python_jobs.lake.layout import Lake

# a feature of the transaction alone (no history), judged on any day
POINT_IN_TIME = next(
    f for f in FEATURES if drift.history_days(f) == 0 and f not in MonitorConfig().psi_not_judged
)


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
    assert set(written["feature_psi"]) == set(report.feature_psi) == set(FEATURES)
    assert report.rows == 300 and report.alerts > 0

    with duckdb.connect(str(ml_lake.lake.database)) as con:  # the customers' habits change
        con.execute(
            f"update curated.ml_features set {POINT_IN_TIME} = {POINT_IN_TIME} + 3, "
            "cp_labelled_fraud_rate_30d = cp_labelled_fraud_rate_30d + 3, is_weekend = 1 "
            "where event_date = '2026-09-20'"
        )
    score_day(ml_lake, day)
    drifted = monitor(ml_lake, day, loose)
    assert drifted.verdict == RETRAIN
    assert drifted.findings[0].startswith(f"PSI of {POINT_IN_TIME} = ")
    assert f"retrain recommended: PSI of {POINT_IN_TIME}" in drifted.text()
    # a day is all weekend or all weekday: reported, never a finding
    assert drifted.feature_psi["is_weekend"] > 0.5
    assert not any("is_weekend" in f for f in drifted.findings)
    # a 30-day window on a 20-day lake is warming up: its shift is reported, not judged
    assert drifted.feature_psi["cp_labelled_fraud_rate_30d"] > 0.5
    assert "cp_labelled_fraud_rate_30d" in drifted.warming_up
    assert not any("cp_labelled_fraud_rate_30d" in f for f in drifted.findings)


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


# --- young lakes: windows that are still filling ------------------------------------------


def test_history_days_come_from_the_window_in_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert drift.history_days("cust_tx_count_7d") == 7
    assert drift.history_days("x_30d") == 30 and drift.history_days("y_1d") == 1
    assert drift.history_days("cust_tx_count_1h") == 1 and drift.history_days("z_36h") == 2
    assert drift.history_days("amount_log") == 0 and drift.history_days("is_30days") == 0
    longest = max(WINDOW_DAYS)
    # the whole history, not a window: "new", "first time", "since the previous"
    assert drift.history_days("is_new_device") == longest
    assert drift.history_days("is_first_time_counterparty") == longest
    assert drift.history_days("cust_seconds_since_prev_tx") == longest
    assert drift.history_days("cust_inbound_new_sender_count_7d") == longest
    assert drift.history_days("renewal_amount") == 0  # whole words only
    assert any(drift.history_days(f) for f in FEATURES)
    # a contract that declares its features' history wins over the names
    monkeypatch.setattr("ml.features.HISTORY_DAYS", {"amount_log": 3}, raising=False)
    assert drift.history_days("amount_log") == 3 and drift.history_days("x_30d") == 30


def test_history_reference_keeps_the_rows_that_had_the_whole_window() -> None:
    days = pd.to_datetime(["2026-09-01", "2026-09-02", "2026-09-08", "2026-09-09"]).repeat(50)
    frame = pd.DataFrame({"event_date": days.astype("datetime64[us]")})
    for f in FEATURES:
        frame[f] = np.arange(len(frame), dtype=float)
    ref = drift.history_reference(frame, date(2026, 9, 1))
    assert ref["start"] == "2026-09-01"
    rows = {f: entry["rows"] for f, entry in ref["features"].items()}
    assert set(rows) == {f for f in FEATURES if drift.history_days(f)}
    for f, count in rows.items():
        # ages 0, 1, 7 and 8 days: a 1-day window is full from age 1, 7 days from 7, ...
        assert count == 50 * sum(age >= drift.history_days(f) for age in (0, 1, 7, 8))
    one_day = next(f for f in rows if drift.history_days(f) == 1)
    assert min(ref["features"][one_day]["edges"]) >= 50  # the first day's rows left out


def _warming_features(frame: pd.DataFrame) -> list[str]:
    """Windowed features that carry no fraud signal in the synthetic data (the warm-up
    must not move the score either: that would be a drift the model really sees)."""
    label = frame["label_is_fraud"].to_numpy(dtype=float)
    return [
        f
        for f in FEATURES
        if drift.history_days(f) >= 7
        and abs(np.corrcoef(frame[f].fillna(0).to_numpy(), label)[0, 1]) < 0.05
    ]


def _young_lake(tmp_path, *, days: int = 20, rows: int = 600) -> tuple[MlLayout, list[str]]:
    """A lake whose windowed features only grow with the lake's age, as counts and sums
    over "previous N days" do while the lake is younger than N days: no behaviour change."""
    frame = synthetic_features(days=days, rows_per_day=rows, seed=11)
    # frauds reported within the hour: otherwise the older training days have more labels
    # known at the cut-off, and features that grow with the lake's age would predict that
    known = frame["label_is_fraud"].to_numpy(dtype=bool)
    frame["label_reported_at"] = (frame["event_ts"] + pd.Timedelta(hours=1)).where(known)
    age = drift.history_age_days(frame["event_date"], START)
    warming = _warming_features(frame)
    for f in warming:
        window = drift.history_days(f)
        frame[f] = (frame[f].abs() + 1.0) * np.minimum(age, window) / window
    lake = Lake(tmp_path / "lake")
    write_features(lake.database, frame)
    layout = MlLayout(lake)
    # no label horizon: training reaches the newest gap, as the dates below expect
    train(layout, WindowRequest(label_horizon_days=0), FAST_TRAINING, now=TRAINED_AT)
    return layout, warming


YOUNG = MonitorConfig(psi_warning=0.25, psi_drift=0.5, min_reference_rows=500)  # 600 rows/day


def test_window_warm_up_alone_does_not_recommend_retraining(tmp_path) -> None:
    layout, warming = _young_lake(tmp_path)
    assert len(warming) >= 3
    day = date(2026, 9, 20)
    score_day(layout, day)
    report = monitor(layout, day, YOUNG)
    # by construction the warming features moved a lot...
    assert all(report.feature_psi[f] > YOUNG.psi_drift for f in warming)
    # ...and a monitor that ignored the warm-up would have asked for a new model
    naive, verdict = judge(
        report.feature_psi,
        report.score_psi,
        report.alert_rate,
        report.expected_alert_rate,
        report.realized,
        YOUNG,
    )
    assert verdict == RETRAIN and any(f in naive[0] for f in warming)
    assert report.verdict != RETRAIN, report.text()
    assert set(warming) <= set(report.warming_up)
    assert not any(f in finding for f in warming for finding in report.findings)
    # every warming feature says why; the 1-day windows were compared like with like
    seven = next(f for f in warming if drift.history_days(f) == 7)
    assert "training rows (2026-09-01..2026-09-06) had its 7 days" in report.warming_up[seven]
    assert "from 2026-09-08 on" in report.warming_up[seven]
    one_day = [f for f in FEATURES if drift.history_days(f) == 1]
    assert one_day and not set(one_day) & set(report.warming_up)
    assert all(
        report.history["reference"][f] == "training rows with a full window" for f in one_day
    )
    text = report.text()
    assert "features warming up, not judged" in text and "why not judged" in text
    assert "measures their windows filling up, not a change in behaviour" in text
    written = json.loads(layout.monitoring_file(day).read_text())
    assert written["warming_up"] == report.warming_up
    assert written["history"]["start"] == "2026-09-01"
    assert written["history"]["day_history_days"] == 19


def test_real_drift_on_a_young_lake_still_recommends_retraining(tmp_path) -> None:
    layout, warming = _young_lake(tmp_path)
    one_day = next(f for f in FEATURES if drift.history_days(f) == 1)
    with duckdb.connect(str(layout.lake.database)) as con:  # behaviour really changes
        con.execute(
            f"update curated.ml_features set {POINT_IN_TIME} = {POINT_IN_TIME} + 5, "
            f"{one_day} = {one_day} * 10 + 50 where event_date = '2026-09-20'"
        )
    day = date(2026, 9, 20)
    score_day(layout, day)
    report = monitor(layout, day, YOUNG)
    assert report.verdict == RETRAIN
    drifted = {finding.split(" = ")[0].removeprefix("PSI of ") for finding in report.findings}
    assert {POINT_IN_TIME, one_day} <= drifted
    assert not drifted & set(warming)
    assert set(warming) <= set(report.warming_up)


def test_a_model_without_like_for_like_references_treats_young_windows_as_warming_up(
    trained_lake: MlLayout,
) -> None:
    """Models trained before the history references existed: a windowed feature is judged
    against all training rows only if they all had the window's days."""
    version = json.loads(trained_lake.champion_file.read_text())["version"]
    meta_path = trained_lake.version_dir(version) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["reference"]["history"]
    meta_path.write_text(json.dumps(meta))
    day = date(2026, 9, 20)
    score_day(trained_lake, day)
    report = monitor(trained_lake, day, MonitorConfig(psi_drift=0.5, psi_warning=0.5))
    assert set(report.warming_up) == {f for f in FEATURES if drift.history_days(f)}
    one_day = next(f for f in FEATURES if drift.history_days(f) == 1)
    assert "retrain to compare like with like" in report.warming_up[one_day]
    assert "trained before references over full-window rows were recorded" in report.text()


def test_a_score_moved_mostly_by_warming_up_features_is_a_watch_not_a_retrain() -> None:
    config = MonitorConfig()
    psi = {POINT_IN_TIME: 0.01, "x_30d": 3.0}
    args = (psi, 0.9, 0.003, 0.003, _realized(0, None), config)
    findings, verdict = judge(*args, warming_up=["x_30d"], warming_gain_share=0.6)
    assert verdict == WATCH and len(findings) == 1
    assert findings[0].startswith("PSI of score = 0.90 > 0.1, but 60% of the model's gain")
    # mostly judged features behind the score: a drifted score asks for a retrain
    findings, verdict = judge(*args, warming_up=["x_30d"], warming_gain_share=0.3)
    assert verdict == RETRAIN and findings == ["PSI of score = 0.90 > 0.2"]
    # and a judged feature drifting asks for one whatever the score
    psi[POINT_IN_TIME] = 0.4
    findings, verdict = judge(*args, warming_up=["x_30d"], warming_gain_share=0.9)
    assert verdict == RETRAIN and findings[0] == f"PSI of {POINT_IN_TIME} = 0.40 > 0.2"
