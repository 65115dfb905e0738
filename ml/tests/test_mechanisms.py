"""The mechanisms benchmark (ml/mechanisms.py, ml/generalization.py).

The simulator is checked against each mechanism's definition on datasets of seeds the model
was never looked at with; the benchmark then runs small, the whole user path (import,
validate, dbt, train) for every mechanism of one such seed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from ml.generalization import (
    MIN_THRESHOLD_AP,
    THRESHOLD_MECHANISM,
    MechanismResult,
    run_benchmark,
    write_record,
)
from ml.mechanisms import MECHANISMS, WorldConfig, simulate
from ml.train import BASELINES, BOOSTER, FOREST, MODEL
from python_jobs.importer.mapping import load_mapping

SMALL = WorldConfig(customers=300, terminals=600, days=28)
# The benchmark's smallest useful bank: six weeks (three of training under the default
# protocol) with enough frauds of every mechanism to rank.
BENCHMARK = WorldConfig(customers=500, terminals=1000, days=42)
# Seeds nobody tuned on: the parameters were chosen on seeds 1-6 (docs/fraud-model.md).
UNSEEN_SEEDS = (101, 202)


def _frame(mechanism: str, folder: Path, seed: int, world: WorldConfig = SMALL) -> pd.DataFrame:
    dataset = simulate(mechanism, folder, replace(world, seed=seed))
    frame = pd.read_csv(dataset.csv, dtype={"device_id": str}, keep_default_na=False)
    frame["ts"] = pd.to_datetime(frame["tx_datetime"])
    frame["day"] = frame["ts"].dt.floor("D")
    frame.attrs["params"] = dataset.params
    assert len(frame) == dataset.transactions
    assert int(frame["tx_fraud"].sum()) == dataset.frauds > 0
    return frame


@pytest.mark.parametrize("seed", UNSEEN_SEEDS)
def test_amount_threshold_is_exactly_the_threshold(tmp_path: Path, seed: int) -> None:
    frame = _frame("amount_threshold", tmp_path, seed)
    threshold = frame.attrs["params"]["threshold_brl"]
    fraud = frame["tx_fraud"] == 1
    assert (fraud == (frame["tx_amount"] > threshold)).all()


@pytest.mark.parametrize("seed", UNSEEN_SEEDS)
def test_a_compromised_counterparty_takes_every_transaction_of_its_days(
    tmp_path: Path, seed: int
) -> None:
    frame = _frame("compromised_counterparty", tmp_path, seed)
    per_terminal_day = frame.groupby(["counterparty_id", "day"])["tx_fraud"].agg(["min", "max"])
    touched = per_terminal_day[per_terminal_day["max"] == 1]
    assert len(touched) > 0
    assert (touched["min"] == 1).all()  # a day with fraud at a terminal is all fraud
    # and it lasts: a compromised terminal's fraud spans at least a week of days
    spans = frame[frame["tx_fraud"] == 1].groupby("counterparty_id")["day"].agg(["min", "max"])
    assert ((spans["max"] - spans["min"]).dt.days >= 7).any()


@pytest.mark.parametrize("seed", UNSEEN_SEEDS)
def test_a_compromised_customer_pays_amounts_multiplied(tmp_path: Path, seed: int) -> None:
    frame = _frame("compromised_customer", tmp_path, seed)
    factor = frame.attrs["params"]["amount_factor"]
    legit_mean = frame[frame["tx_fraud"] == 0].groupby("customer_id")["tx_amount"].mean()
    fraud = frame[frame["tx_fraud"] == 1]
    ratio = (fraud["tx_amount"] / fraud["customer_id"].map(legit_mean)).median()
    assert factor / 2 < ratio < factor * 2
    assert (fraud["counterparty_id"].str.startswith("TERM-")).all()  # same terminals as ever


@pytest.mark.parametrize("seed", UNSEEN_SEEDS)
def test_an_account_takeover_drains_from_a_new_device_to_new_beneficiaries(
    tmp_path: Path, seed: int
) -> None:
    frame = _frame("account_takeover", tmp_path, seed)
    fraud = frame[frame["tx_fraud"] == 1]
    legit = frame[frame["tx_fraud"] == 0]
    assert (fraud["tx_type"] == "PIX").all()
    seen = set(zip(legit["customer_id"], legit["device_id"], strict=True))
    assert not any(
        pair in seen for pair in zip(fraud["customer_id"], fraud["device_id"], strict=True)
    )
    paid = set(zip(legit["customer_id"], legit["counterparty_id"], strict=True))
    assert not any(
        pair in paid for pair in zip(fraud["customer_id"], fraud["counterparty_id"], strict=True)
    )
    night = (fraud["ts"].dt.hour < 6).mean()
    assert night > (legit["ts"].dt.hour < 6).mean()


def test_every_parameter_is_drawn_from_the_seed_and_a_seed_is_reproducible(
    tmp_path: Path,
) -> None:
    drawn = {
        seed: simulate("compromised_customer", tmp_path / str(seed), replace(SMALL, seed=seed))
        for seed in UNSEEN_SEEDS
    }
    first, second = (drawn[seed].params for seed in UNSEEN_SEEDS)
    behaviour = [key for key in first if key != "world"]
    assert all(first[key] != second[key] for key in behaviour if key != "label_delay_days")
    again = simulate("compromised_customer", tmp_path / "again", replace(SMALL, seed=101))
    assert again.csv.read_bytes() == drawn[101].csv.read_bytes()
    assert again.params == drawn[101].params


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_each_dataset_comes_with_a_mapping_banklake_import_reads(
    tmp_path: Path, mechanism: str
) -> None:
    dataset = simulate(mechanism, tmp_path, replace(SMALL, days=3))
    mapping = load_mapping(dataset.mapping)
    assert mapping.fraud is not None
    assert mapping.fraud.label_delay_days == dataset.params["label_delay_days"]


def test_an_unknown_mechanism_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mechanism 'phishing'"):
        simulate("phishing", tmp_path, SMALL)
    with pytest.raises(ValueError, match="unknown mechanisms"):
        run_benchmark([1], ["phishing"], work=tmp_path)


def _result(mechanism: str, model: float, forest: float, promoted: bool) -> MechanismResult:
    return MechanismResult(
        mechanism=mechanism,
        seed=1,
        params={},
        transactions=10,
        frauds=1,
        test_frauds=1,
        windows="",
        average_precision={MODEL: model, FOREST: forest},
        promoted=promoted,
        decision="",
    )


def test_the_bar_is_the_forest_and_the_threshold() -> None:
    assert _result("compromised_customer", 0.8, 0.7, True).failures() == []
    assert _result("compromised_customer", 0.7, 0.8, False).failures()
    assert _result(THRESHOLD_MECHANISM, 0.94, 0.9, True).failures()
    assert _result(THRESHOLD_MECHANISM, MIN_THRESHOLD_AP, 0.9, True).failures() == []


@pytest.mark.dbt
def test_the_benchmark_lands_each_mechanism_through_import_and_trains_it(
    tmp_path: Path,
) -> None:
    results = run_benchmark([UNSEEN_SEEDS[0]], world=BENCHMARK, work=tmp_path / "lakes")
    assert [r.mechanism for r in results] == list(MECHANISMS)
    for r in results:
        assert r.test_frauds > 0, r
        assert set(r.average_precision) == {MODEL, BOOSTER, *BASELINES}
        assert all(ap is not None and 0 <= ap <= 1 for ap in r.average_precision.values()), r
        lake = tmp_path / "lakes" / f"seed-{r.seed}" / r.mechanism / "lake"
        assert list((lake / "raw" / "transactions").rglob("*.parquet"))  # landed by import
    assert all(r.promoted for r in results)  # each lake's first model
    # the bar: at least the forest on every mechanism, and the amount threshold learnt (one
    # split, a handful of examples)
    assert {r.mechanism: r.failures() for r in results} == {m: [] for m in MECHANISMS}
    threshold = next(r for r in results if r.mechanism == THRESHOLD_MECHANISM)
    model_ap = threshold.average_precision[MODEL]
    assert model_ap is not None and model_ap >= MIN_THRESHOLD_AP, threshold
    json_path, md_path = write_record(results, tmp_path / "results")
    record = json.loads(json_path.read_text())
    assert [r["mechanism"] for r in record["results"]] == list(MECHANISMS)
    assert all(r.mechanism in md_path.read_text() for r in results)


def test_the_command_takes_seeds_mechanisms_and_the_bank_size() -> None:
    from python_jobs.cli import build_parser

    args = build_parser().parse_args(
        ["mechanisms", "--seeds", "4,5", "--mechanism", "amount_threshold", "--customers", "200"]
    )
    assert args.seeds == [4, 5]
    assert args.mechanism == ["amount_threshold"]
    assert (args.customers, args.terminals, args.days) == (200, None, None)
    assert args.handler.__name__ == "cmd_mechanisms"


def test_an_unknown_mechanism_on_the_command_line_is_an_error_naming_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from python_jobs.cli import main

    status = main(
        ["mechanisms", "--seeds", "1", "--mechanism", "phishing", "--work", str(tmp_path)]
    )
    assert status != 0
    assert "amount_threshold" in capsys.readouterr().err


def test_the_json_document_has_the_keys_docs_operations_lists(tmp_path: Path) -> None:
    from python_jobs import cli_json

    results = [
        _result(THRESHOLD_MECHANISM, 1.0, 1.0, True),
        _result("account_takeover", 0.9, 1.0, True),
    ]
    json_path, _ = write_record(results, tmp_path)
    document = cli_json.mechanisms(results, json_path)
    assert list(document) == ["command", "record", "lakes", "meet_the_bar", "results"]
    assert (document["lakes"], document["meet_the_bar"]) == (2, 1)
    assert document["results"][1]["failures"]
    operations = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    assert all(f"`{key}`" in operations for key in document)
