"""Daily scoring: the exact file contract, reasons, determinism and atomic replacement."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml import artifacts
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.score import SCORES_SCHEMA, score_day
from ml.tests.conftest import FAST_TRAINING, TRAINED_AT
from ml.train import train

EXPECTED_COLUMNS = [
    ("transaction_id", pa.string()),
    ("customer_id", pa.string()),
    ("event_ts", pa.timestamp("us")),
    ("model_version", pa.string()),
    ("score", pa.float64()),
    ("threshold", pa.float64()),
    ("decision", pa.string()),
    ("reason_1", pa.string()),
    ("reason_1_contribution", pa.float64()),
    ("reason_2", pa.string()),
    ("reason_2_contribution", pa.float64()),
    ("reason_3", pa.string()),
    ("reason_3_contribution", pa.float64()),
    ("scored_at", pa.timestamp("us")),
]


def test_scores_file_has_exactly_the_contract(trained_lake: MlLayout) -> None:
    result = score_day(trained_lake, date(2026, 9, 20), now=datetime(2026, 9, 21, 3, 0, tzinfo=UTC))
    assert result.path == trained_lake.lake.root / (
        "processed/fraud_scores/score_date=2026-09-20/scores.parquet"
    )
    table = pq.read_table(result.path)
    assert [(f.name, f.type) for f in table.schema] == EXPECTED_COLUMNS
    assert table.schema.equals(SCORES_SCHEMA)
    frame = table.to_pandas()
    assert len(frame) == result.rows == 300 and frame["transaction_id"].is_unique
    assert (frame["event_ts"].dt.date == date(2026, 9, 20)).all()
    champion = artifacts.load_champion(trained_lake)
    assert (frame["model_version"] == champion.version).all()
    assert (frame["threshold"] == champion.threshold).all()
    assert ((frame["score"] >= champion.threshold) == (frame["decision"] == "alert")).all()
    assert set(frame["decision"]) <= {"alert", "pass"}
    assert result.alerts == int((frame["decision"] == "alert").sum()) > 0
    assert (frame["scored_at"] == np.datetime64("2026-09-21T03:00:00")).all()


def test_reasons_are_distinct_features_with_decreasing_positive_contributions(
    trained_lake: MlLayout,
) -> None:
    frame = pq.read_table(score_day(trained_lake, date(2026, 9, 20)).path).to_pandas()
    alerts = frame[frame["decision"] == "alert"]
    assert alerts["reason_1"].notna().all()
    for i in (1, 2, 3):
        named = frame[f"reason_{i}"].notna()
        assert set(frame.loc[named, f"reason_{i}"]) <= set(FEATURES)
        assert (frame.loc[named, f"reason_{i}_contribution"] > 0).all()
        assert frame.loc[~named, f"reason_{i}_contribution"].isna().all()
    both = frame["reason_2"].notna()
    assert (
        frame.loc[both, "reason_1_contribution"] >= frame.loc[both, "reason_2_contribution"]
    ).all()
    assert (frame.loc[both, "reason_1"] != frame.loc[both, "reason_2"]).all()
    # the highest scores are explained by the signals planted in the synthetic frauds
    planted = {
        "amount_log",
        "amount_ratio_to_avg_30d",
        "is_new_device",
        "is_first_time_counterparty",
        "is_night",
    }
    assert set(frame.nlargest(10, "score")["reason_1"]) <= planted


def test_same_model_and_data_give_the_same_scores_and_rescoring_replaces(
    trained_lake: MlLayout,
) -> None:
    day = date(2026, 9, 20)
    first = pq.read_table(score_day(trained_lake, day, now=datetime(2026, 9, 21, tzinfo=UTC)).path)
    second_result = score_day(trained_lake, day, now=datetime(2026, 9, 22, tzinfo=UTC))
    second = pq.read_table(second_result.path)
    assert first.drop(["scored_at"]).equals(second.drop(["scored_at"]))
    assert second["scored_at"][0].as_py() == datetime(2026, 9, 22)  # the new file won
    folder = second_result.path.parent
    assert [p.name for p in folder.iterdir()] == ["scores.parquet"]  # no temp file left


def test_default_day_is_the_last_day_of_the_features(trained_lake: MlLayout) -> None:
    assert score_day(trained_lake).day == date(2026, 9, 20)


def test_scoring_needs_a_champion_and_a_day_with_data(ml_lake: MlLayout) -> None:
    with pytest.raises(artifacts.NoChampionError, match="banklake train"):
        score_day(ml_lake, date(2026, 9, 20))
    train(ml_lake, config=FAST_TRAINING, now=TRAINED_AT)
    with pytest.raises(
        ValueError, match=r"no transactions on 2026-12-01.*2026-09-01\.\.2026-09-20"
    ):
        score_day(ml_lake, date(2026, 12, 1))


def test_real_time_reasons_are_the_batch_job_s_where_exact_and_paths_elsewhere(
    trained_lake: MlLayout, features_frame
) -> None:
    from ml.dataset import feature_matrix
    from ml.ensemble import path_contributions

    model = artifacts.load_champion(trained_lake).model
    x = feature_matrix(features_frame.head(40))
    batch = model.explain(x).contributions
    exact = model.explain_few(x).contributions
    np.testing.assert_allclose(exact, batch, rtol=1e-5, atol=1e-7)  # TreeSHAP, two ways
    mixed = np.arange(len(x)) % 2 == 0
    few = model.explain_few(x, exact=mixed).contributions
    np.testing.assert_allclose(few[mixed], batch[mixed], rtol=1e-5, atol=1e-7)
    # the others: the booster's path attributions, in score points like the rest (a row's
    # still add up to its score minus the mean score)
    assert not np.allclose(few[~mixed], batch[~mixed])
    paths = path_contributions(model.booster, x[~mixed])
    assert not np.allclose(paths, model.explain(x[~mixed]).contributions)
    np.testing.assert_allclose(few.sum(axis=1), batch.sum(axis=1), rtol=1e-4, atol=1e-6)
