"""Training end to end on a small synthetic lake: the model folder, its metadata, the checks
on loading, and the champion/challenger decision."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import artifacts
from ml.booster import BoosterParams
from ml.dataset import feature_matrix
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.plots import PLOT_FILES
from ml.protocol import Windows
from ml.train import TrainConfig, WindowRequest, train, training_keys_sha256

FAST = TrainConfig(booster=BoosterParams(num_boost_round=150, early_stopping_rounds=20))
WEAK = TrainConfig(
    booster=BoosterParams(num_boost_round=1, early_stopping_rounds=1, max_depth=1), plots=False
)
T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def test_training_writes_a_complete_verifiable_model_folder(ml_lake: MlLayout) -> None:
    outcome = train(ml_lake, config=FAST, now=T0)
    folder = outcome.directory
    assert folder == ml_lake.models / "20261001T120000Z"
    expected = {"model.json", "forest.json", "metadata.json", "model_card.md", *PLOT_FILES}
    assert {p.name for p in folder.iterdir()} == expected
    for name in PLOT_FILES:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(ml_lake.models.glob(".staging-*"))

    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["features"] == list(FEATURES)
    assert meta["model_sha256"] == hashlib.sha256((folder / "model.json").read_bytes()).hexdigest()
    assert (
        meta["forest_sha256"] == hashlib.sha256((folder / "forest.json").read_bytes()).hexdigest()
    )
    assert meta["model"]["members"] == ["xgboost", "random_forest"]
    windows = Windows.from_dict(meta["windows"])
    assert windows == outcome.result.split.windows
    assert meta["windows"]["cutoff"] == windows.cutoff.isoformat()
    assert "100 cases a day" in meta["threshold"]["rule"]
    assert meta["threshold"]["value"] == outcome.result.candidates["model"].threshold
    # real-time scoring's stricter threshold: a tenth of the cases, never below the alert one
    block = meta["threshold"]["block"]
    assert block["value"] >= meta["threshold"]["value"]
    assert block["validation_cases_per_day"] <= block["cases_per_day"] == 10
    assert meta["data"]["training_keys_sha256"] == training_keys_sha256(
        outcome.result.split.training
    )
    assert meta["data"]["rows"]["test"] == len(outcome.result.split.test) > 0
    assert set(meta["metrics"]) == {
        "model",
        "xgboost",
        "random_forest",
        "logistic_regression",
        "rules",
    }
    # the gate: the model beat the random forest on the same test rows
    forest_ap = meta["metrics"]["random_forest"]["average_precision"]
    assert meta["champion_decision"]["forest_ap"] == forest_ap
    assert meta["metrics"]["model"]["average_precision"] >= forest_ap
    assert meta["libraries"]["xgboost"].startswith("3.")
    assert set(meta["reference"]["features"]) == set(FEATURES)
    assert meta["metrics"]["model"]["average_precision"] > 0.3  # chance is ~0.04
    card = (folder / "model_card.md").read_text()
    assert "## Intended use" in card and "## Limitations" in card
    assert (
        "| XGBoost + forest (model) |" in card
        and "| rules |" in card
        and "| random forest |" in card
    )
    assert "Average precision:" in card  # per scenario

    loaded = artifacts.load_champion(ml_lake)
    assert loaded.version == outcome.version and loaded.threshold == meta["threshold"]["value"]
    assert loaded.block_threshold == block["value"]


def test_a_sampled_fit_is_recorded_in_the_metadata_and_the_card(ml_lake: MlLayout) -> None:
    config = replace(WEAK, booster=replace(WEAK.booster, max_fit_rows=600))
    outcome = train(ml_lake, config=config, now=T0)
    meta = json.loads((outcome.directory / "metadata.json").read_text())
    fit = outcome.result.split.fit
    frauds, negatives = int(fit["label"].sum()), int((~fit["label"].astype(bool)).sum())
    assert meta["data"]["rows"]["fit"] == len(fit) > 600  # the fit rows, not the sample
    assert meta["booster"]["fit_rows"] == 600
    assert meta["booster"]["negative_weight"] == pytest.approx(negatives / (600 - frauds))
    card = (outcome.directory / "model_card.md").read_text()
    assert f"fitted on 600 rows: every known fraud ({frauds:,})" in card
    validation = outcome.result.split.validation
    assert meta["booster"]["stopping_rows"] == len(validation)  # under the cap: every row
    assert "of its" not in card


def test_a_sampled_early_stopping_is_recorded_in_the_metadata_and_the_card(
    ml_lake: MlLayout,
) -> None:
    config = replace(WEAK, booster=replace(WEAK.booster, max_stopping_rows=300))
    outcome = train(ml_lake, config=config, now=T0)
    meta = json.loads((outcome.directory / "metadata.json").read_text())
    validation = outcome.result.split.validation
    assert int(validation["label"].sum()) < 300 < len(validation)
    assert meta["booster"]["stopping_rows"] == 300
    assert meta["data"]["rows"]["validation"] == len(validation)
    card = (outcome.directory / "model_card.md").read_text()
    assert f"over 300 of its {len(validation):,} rows: every known fraud" in card


@pytest.mark.parametrize("name", ["model.json", "forest.json"])
def test_a_model_changed_after_training_is_refused(ml_lake: MlLayout, name: str) -> None:
    outcome = train(ml_lake, config=WEAK, now=T0)
    model = outcome.directory / name
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    model.write_bytes(bytes(data))
    with pytest.raises(artifacts.ModelIntegrityError, match=re.escape(f"{name}: its sha256")):
        artifacts.load_version(ml_lake, outcome.version)


def test_a_model_without_its_forest_is_refused_and_an_old_booster_only_one_scores(
    ml_lake: MlLayout,
) -> None:
    outcome = train(ml_lake, config=WEAK, now=T0)
    loaded = artifacts.load_version(ml_lake, outcome.version)
    x = feature_matrix(outcome.result.split.test)
    # the saved model scores what training evaluated: the mean of the two halves
    assert np.allclose(loaded.model.predict(x), outcome.result.candidates["model"].test_scores)
    (outcome.directory / "forest.json").unlink()
    with pytest.raises(artifacts.ModelIntegrityError, match=r"forest\.json is missing"):
        artifacts.load_version(ml_lake, outcome.version)
    # a version from before the forest joined: no forest_sha256, scored by the booster alone
    meta_path = outcome.directory / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["forest_sha256"]
    meta_path.write_text(json.dumps(meta))
    old = artifacts.load_version(ml_lake, outcome.version)
    assert old.forest is None
    assert np.array_equal(old.model.predict(x), outcome.result.candidates["xgboost"].test_scores)


def test_a_model_trained_on_another_feature_list_is_refused(ml_lake: MlLayout) -> None:
    outcome = train(ml_lake, config=WEAK, now=T0)
    meta_path = outcome.directory / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["features"] = [*FEATURES[:-1], "an_old_feature"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(artifacts.ModelIntegrityError, match="an_old_feature"):
        artifacts.load_version(ml_lake, outcome.version)


def test_a_model_below_the_random_forest_never_replaces_a_champion(ml_lake: MlLayout) -> None:
    # on a lake without a champion the first model scores, and says it fell short
    weak = train(ml_lake, config=WEAK, now=T0)
    forest_ap = weak.metadata["metrics"]["random_forest"]["average_precision"]
    assert weak.decision.challenger_ap is not None and weak.decision.challenger_ap < forest_ap
    assert weak.decision.promote and weak.decision.forest_ap == forest_ap
    assert "no champion yet, so it scores although" in weak.decision.reason
    assert "below the random forest baseline's" in weak.decision.reason
    assert artifacts.champion_version(ml_lake) == weak.version
    # with a champion in place, a model below the forest is refused
    again = train(ml_lake, config=WEAK, now=datetime(2026, 10, 2, tzinfo=UTC))
    assert not again.decision.promote
    assert again.decision.reason.startswith("average precision on the test period")
    assert "below the random forest baseline's" in again.decision.reason
    assert artifacts.champion_version(ml_lake) == weak.version


def test_challenger_replaces_the_champion_only_when_better(ml_lake: MlLayout) -> None:
    weak = train(ml_lake, config=WEAK, now=T0)
    assert weak.decision.promote  # the first model: there was no champion
    assert artifacts.champion_version(ml_lake) == weak.version

    strong = train(ml_lake, config=FAST, now=datetime(2026, 10, 2, tzinfo=UTC))
    assert strong.decision.promote
    assert strong.decision.champion == weak.version
    assert strong.decision.champion_ap is not None and strong.decision.challenger_ap is not None
    assert strong.decision.champion_ap < strong.decision.challenger_ap
    # the champion was re-scored on the challenger's test rows, not read from its metadata
    assert strong.decision.champion_ap == pytest.approx(
        weak.metadata["metrics"]["model"]["average_precision"]
    )
    assert artifacts.champion_version(ml_lake) == strong.version

    again = train(ml_lake, config=FAST, now=datetime(2026, 10, 3, tzinfo=UTC))
    assert not again.decision.promote  # same data, same model: equal is not better
    assert again.decision.challenger_ap == again.decision.champion_ap
    assert "not promoted" in again.decision.message(again.version)
    assert artifacts.champion_version(ml_lake) == strong.version
    assert again.directory.exists()  # kept for the record
    history = json.loads(ml_lake.champion_file.read_text())["history"]
    assert [h["version"] for h in history] == [weak.version, strong.version]


def test_a_broken_champion_is_replaced_and_the_reason_said(ml_lake: MlLayout) -> None:
    first = train(ml_lake, config=FAST, now=T0)
    assert first.decision.promote
    (first.directory / "model.json").write_text("{}")
    second = train(ml_lake, config=FAST, now=datetime(2026, 10, 2, tzinfo=UTC))
    assert second.decision.promote and "cannot be used" in second.decision.reason


def test_prequential_folds_are_recorded_oldest_first(ml_lake: MlLayout) -> None:
    request = WindowRequest(gap_days=2, test_days=3, label_horizon_days=0)
    config = TrainConfig(booster=WEAK.booster, folds=3, fold_step_days=3, plots=False)
    outcome = train(ml_lake, request, config, now=T0)
    folds = outcome.metadata["folds"]
    assert [f["windows"]["test_end"] for f in folds] == ["2026-09-14", "2026-09-17", "2026-09-20"]
    assert folds[-1]["metrics"] == outcome.metadata["metrics"]


def test_versions_never_collide(ml_lake: MlLayout) -> None:
    (ml_lake.models / "20261001T120000Z").mkdir(parents=True)
    assert artifacts.new_version(ml_lake, T0) == "20261001T120000Z-2"


def test_save_version_leaves_nothing_behind_when_it_fails(
    ml_lake: MlLayout, tmp_path: Path
) -> None:
    outcome = train(ml_lake, config=WEAK, now=T0)
    model = artifacts.load_version(ml_lake, outcome.version).model

    def failing(directory: Path, metadata: dict) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        artifacts.save_version(ml_lake, "v-broken", model, {}, extras=failing)
    assert not ml_lake.version_dir("v-broken").exists()
    assert not list(ml_lake.models.glob(".staging-*"))


def test_generator_truth_is_a_diagnostic_beside_the_metrics_never_instead(
    ml_lake: MlLayout, features_and_truth: tuple[pd.DataFrame, set[str]]
) -> None:
    _, truth = features_and_truth
    ml_lake.generator_truth.mkdir(parents=True)
    pd.DataFrame(
        {"transaction_id": sorted(truth), "scenario": "pix_scam", "incident": 1}
    ).to_parquet(ml_lake.generator_truth / "2026-09-01.parquet")
    outcome = train(ml_lake, config=WEAK, now=T0)
    test = outcome.result.split.test
    diagnostic = outcome.metadata["diagnostics"]["generator_truth"]
    assert diagnostic["model"]["frauds"] == int(test["transaction_id"].isin(truth).sum())
    assert diagnostic["model"]["frauds"] > outcome.metadata["metrics"]["model"]["frauds"]
    assert diagnostic["model"]["threshold"] == outcome.metadata["threshold"]["value"]
    # a score flagging exactly the listed frauds: the reported share of them, on known labels
    assert outcome.metadata["diagnostics"]["full_list_known_label_ap"] == pytest.approx(
        outcome.metadata["metrics"]["model"]["frauds"] / diagnostic["model"]["frauds"]
    )
    assert "flags exactly the generator's frauds" in outcome.headline()
    # the decision and the headline metrics use the labels known now
    assert (
        outcome.decision.challenger_ap == outcome.metadata["metrics"]["model"]["average_precision"]
    )
    assert "diagnostic only" in outcome.headline()
    card = (outcome.directory / "model_card.md").read_text()
    assert "## Diagnostic: against the generator's truth" in card
    assert "flags exactly the generator's frauds" in card


def test_training_fingerprint_is_sha256_of_the_sorted_ids_joined_by_newlines() -> None:
    # more ids than one hashing block, shuffled, with non-ASCII ids (UTF-8 order = code point
    # order), given as the loader's Arrow strings, a numpy array or a list
    rng = np.random.default_rng(1)
    ids = [f"tx{i:07d}" for i in rng.permutation(artifacts._HASH_BLOCK + 7)] + ["ação", "Zz"]
    expected = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    assert artifacts.keys_sha256(ids) == expected
    assert artifacts.keys_sha256(np.asarray(ids, dtype=str)) == expected
    assert artifacts.keys_sha256(pd.Series(ids, dtype=pd.StringDtype("pyarrow"))) == expected
    assert artifacts.keys_sha256(ids[:-1]) != expected
