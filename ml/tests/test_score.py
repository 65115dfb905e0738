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


def test_alerts_only_reasons_keep_every_alert_exact_and_give_the_others_serve_s_paths(
    trained_lake: MlLayout,
) -> None:
    from ml.booster import top_reasons
    from ml.dataset import feature_matrix, load_features
    from ml.score import ALL

    day, now = date(2026, 9, 20), datetime(2026, 9, 21, tzinfo=UTC)
    every = score_day(trained_lake, day, now=now, reasons=ALL)
    every_rows = pq.read_table(every.path).to_pandas()
    default = score_day(trained_lake, day, now=now)  # the alerts only
    assert (every.reasons, default.reasons) == ("all", "alerts")
    assert "alerts" in default.reasons_method and "path attributions" in default.reasons_method
    rows = pq.read_table(default.path).to_pandas()
    # the same rows, scores bit for bit, the same decisions
    keys = ["transaction_id", "customer_id", "event_ts", "threshold", "decision", "scored_at"]
    assert rows[keys].equals(every_rows[keys])
    assert np.array_equal(rows["score"].to_numpy(), every_rows["score"].to_numpy())
    alerted = (rows["decision"] == "alert").to_numpy()
    assert 0 < alerted.sum() < len(rows) and default.alerts == every.alerts == alerted.sum()
    # an alert's reasons: identical, names and contributions bit for bit
    reasons = [f"reason_{i}{part}" for i in (1, 2, 3) for part in ("", "_contribution")]
    assert rows.loc[alerted, reasons].equals(every_rows.loc[alerted, reasons])
    # the others: real-time scoring's reasons for an approval (path attributions), not the
    # exact ones (they would be the same file otherwise)
    assert not rows.loc[~alerted, reasons].equals(every_rows.loc[~alerted, reasons])
    frame = load_features(trained_lake.features, day, day)
    frame = frame.sort_values("transaction_id", kind="stable").reset_index(drop=True)
    assert frame["transaction_id"].tolist() == rows["transaction_id"].tolist()
    model = artifacts.load_champion(trained_lake).model
    x = feature_matrix(frame)
    served = model.score_few(x[~alerted], exact=np.zeros(int((~alerted).sum()), dtype=bool))
    assert np.array_equal(served[0], rows.loc[~alerted, "score"].to_numpy())
    index, value = top_reasons(served[1].contributions, 3)
    names = np.array([*FEATURES, None], dtype=object)
    for i in range(3):
        assert list(names[index[:, i]]) == rows.loc[~alerted, f"reason_{i + 1}"].tolist()
        np.testing.assert_array_equal(
            value[:, i], rows.loc[~alerted, f"reason_{i + 1}_contribution"].to_numpy()
        )


def test_alerts_only_reasons_do_not_depend_on_how_many_threads_share_the_rows(
    trained_lake: MlLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml import compiled_trees
    from ml.dataset import feature_matrix, load_features
    from ml.score import score_alerts_explained

    model = artifacts.load_champion(trained_lake)
    x = feature_matrix(load_features(trained_lake.features))
    monkeypatch.setattr(compiled_trees, "BLOCK_ROWS", 97)  # many blocks of a small lake
    one = score_alerts_explained(model, x, threads=1)
    two = score_alerts_explained(model, x, threads=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[0], model.model.predict(x))
    assert np.array_equal(one[1].contributions, two[1].contributions)


def test_a_model_the_compiled_trees_do_not_model_gets_exact_reasons_for_every_row(
    trained_lake: MlLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.dataset import feature_matrix, load_features
    from ml.ensemble import FraudModel
    from ml.score import score_alerts_explained
    from ml.tree_model import UnsupportedModel

    def refuse(self: FraudModel, x: np.ndarray, *, threads: int = 1) -> None:
        raise UnsupportedModel("categorical splits")

    model = artifacts.load_champion(trained_lake)
    x = feature_matrix(load_features(trained_lake.features, date(2026, 9, 20)))
    monkeypatch.setattr(FraudModel, "score_paths", refuse)
    scores, explanation = score_alerts_explained(model, x)
    assert "for every row (the compiled trees do not model categorical splits)" in (
        explanation.method
    )
    assert np.array_equal(scores, model.model.predict(x))
    assert np.array_equal(explanation.contributions, model.model.explain(x).contributions)
