"""`banklake bench`: the pandas reference on hand-made rows whose answers are worked out by
hand, and a small smoke run of every stage whose pandas/dbt cross-check must agree.
No timing is asserted: the benchmark reports its targets, tests never gate on speed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.booster import BoosterParams
from ml.train import TrainConfig
from python_jobs.bench import pandas_ref, report, stages
from python_jobs.bench.config import BenchConfig
from python_jobs.bench.crosscheck import (
    CrossCheckFailed,
    cross_check,
    require_agreement,
    window_totals,
)
from python_jobs.bench.run import BenchOutcome, run_bench
from python_jobs.cli import build_parser
from python_jobs.dbt_runner import PROJECT_DIR
from python_jobs.lake.layout import Lake

ALIASES = pandas_ref.load_aliases(PROJECT_DIR / "seeds" / "value_aliases.csv")


def _tx(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """(transaction_id, customer_id, event_ts, amount in cents) rows."""
    frame = pd.DataFrame(rows, columns=["transaction_id", "customer_id", "event_ts", "cents"])
    return frame.assign(
        event_ts=pd.to_datetime(frame["event_ts"]),
        amount_cents=frame["cents"].astype("Int64"),
    ).drop(columns="cents")


def _windows(rows: list[tuple[str, str, str, int]]) -> dict[str, dict[str, int]]:
    result = pandas_ref.customer_windows(_tx(rows)).set_index("transaction_id")
    return result[list(pandas_ref.WINDOW_COLUMNS)].to_dict(orient="index")


def test_windows_leave_out_a_row_exactly_n_days_earlier_and_the_row_itself() -> None:
    got = _windows(
        [
            ("a", "c1", "2026-11-01 10:00:00", 100),
            ("b", "c1", "2026-11-02 10:00:00", 200),  # exactly 1 day after a
            ("c", "c1", "2026-11-08 10:00:00", 400),  # exactly 7 days after a
            ("d", "c1", "2026-12-01 10:00:00", 800),  # exactly 30 days after a
        ]
    )
    # b: a is exactly 1 day earlier, out of the 1-day window, in the 7- and 30-day ones
    assert got["b"]["cust_tx_count_1d"] == 0 and got["b"]["cust_amount_sum_1d"] == 0
    assert got["b"]["cust_tx_count_7d"] == 1 and got["b"]["cust_amount_sum_7d"] == 100
    # c: a is exactly 7 days earlier (out of 7d), b 6 days earlier (in)
    assert (got["c"]["cust_tx_count_7d"], got["c"]["cust_amount_sum_7d"]) == (1, 200)
    assert (got["c"]["cust_tx_count_30d"], got["c"]["cust_amount_sum_30d"]) == (2, 300)
    # d: a exactly 30 days earlier is out; b (29 days) and c (23 days) are in
    assert (got["d"]["cust_tx_count_30d"], got["d"]["cust_amount_sum_30d"]) == (2, 600)
    assert got["a"] == dict.fromkeys(pandas_ref.WINDOW_COLUMNS, 0)


def test_windows_count_other_rows_at_the_same_instant_and_never_other_customers() -> None:
    got = _windows(
        [
            ("e", "c1", "2026-11-02 09:59:59", 7),
            ("f", "c1", "2026-11-02 10:00:00", 300),
            ("g", "c1", "2026-11-02 10:00:00", 20),  # same instant as f
            ("h", "c2", "2026-11-02 10:00:00", 5000),  # another customer
        ]
    )
    assert (got["f"]["cust_tx_count_1d"], got["f"]["cust_amount_sum_1d"]) == (2, 27)
    assert (got["g"]["cust_tx_count_1d"], got["g"]["cust_amount_sum_1d"]) == (2, 307)
    assert (got["e"]["cust_tx_count_30d"], got["e"]["cust_amount_sum_30d"]) == (0, 0)
    assert got["h"] == dict.fromkeys(pandas_ref.WINDOW_COLUMNS, 0)


def _raw(rows: list[dict[str, object]]) -> pd.DataFrame:
    clean = {
        "transaction_id": "T1",
        "account_id": "A1",
        "customer_id": "C1",
        "event_ts": "2026-11-01 10:00:00",
        "transaction_type": "PIX",
        "channel": "mobile",
        "direction": "outbound",
        "amount": "10.00",
        "status": "approved",
        "_source_file": "raw/transactions/x.parquet",
        "_ingested_at": pd.Timestamp("2026-11-01 12:00:00"),
        "ingestion_date": pd.Timestamp("2026-11-01"),
    }
    frame = pd.DataFrame([{**clean, **row} for row in rows])
    frame["_source_row"] = range(len(frame))
    return frame


def test_staging_normalizes_rejects_in_order_and_accepts_the_first_valid_delivery() -> None:
    staged = pandas_ref.stage_transactions(
        _raw(
            [
                # rejected first delivery, then two valid ones: the earlier valid one wins
                {"transaction_id": "T1", "amount": "abc"},
                {"transaction_id": " T1 ", "transaction_type": " Cartão-de_Débito "},
                {"transaction_id": "T1", "_ingested_at": pd.Timestamp("2026-11-02")},
                {"transaction_id": "T2", "amount": "  ", "event_ts": "ontem"},  # ts first
                {"transaction_id": "T3", "amount": ""},
                {"transaction_id": "T4", "amount": "-5.00"},
                {"transaction_id": "T5", "amount": "0.00"},
                {"transaction_id": "T6", "channel": "telepatia"},
                {"transaction_id": "T7", "direction": " INBOUND ", "channel": "Caixa  Eletrônico"},
                {"transaction_id": "  ", "amount": "abc"},
                {"transaction_id": "T8", "status": None},
                {"transaction_id": "T9", "event_ts": "   "},
            ]
        ),
        ALIASES,
    ).sort_values("source_row")
    outcome = list(zip(staged["disposition"], staged["rejection_reason"].fillna("-"), strict=True))
    assert outcome == [
        ("rejected", "unparseable_amount"),
        ("accepted", "-"),
        ("duplicate", "-"),
        ("rejected", "unparseable_event_ts"),
        ("rejected", "missing_amount"),
        ("rejected", "non_positive_amount"),
        ("rejected", "non_positive_amount"),
        ("rejected", "unknown_channel"),
        ("accepted", "-"),
        ("rejected", "missing_transaction_id"),
        ("rejected", "unknown_status"),
        ("rejected", "missing_event_ts"),
    ]
    accepted = pandas_ref.accepted(staged).set_index("transaction_id")
    assert accepted.loc["T1", "transaction_type"] == "DEBIT"
    assert accepted.loc["T7", ["channel", "direction"]].tolist() == ["atm", "inbound"]
    assert accepted.loc["T7", "amount_cents"] == 1000


def test_cli_defaults_are_the_issue_s_run_on_a_temporary_lake() -> None:
    args = build_parser().parse_args(["bench"])
    assert (args.transactions, args.days, args.lake, args.out) == (
        10_000_000,
        30,
        None,
        "bench/results",
    )
    assert not args.skip_pandas and not args.keep_lake


def test_the_recorded_memory_limit_is_the_profile_s_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from python_jobs.bench.run import PROFILE_MEMORY_LIMIT, _settings

    example = (PROJECT_DIR / "profiles.yml.example").read_text()
    assert f"env_var('BANKLAKE_DUCKDB_MEMORY', '{PROFILE_MEMORY_LIMIT}')" in example
    monkeypatch.delenv("BANKLAKE_DUCKDB_MEMORY", raising=False)
    assert _settings()["duckdb_memory_limit"] == PROFILE_MEMORY_LIMIT
    monkeypatch.setenv("BANKLAKE_DUCKDB_MEMORY", "3GB")
    assert _settings()["duckdb_memory_limit"] == "3GB"


@pytest.mark.dbt
def test_the_windows_analysis_compiles_quietly_to_the_six_windows(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lake").mkdir()
    ws = stages.Workspace(Lake(tmp_path / "lake"), tmp_path / "target", tmp_path / "logs")
    sql = stages.compile_analysis(ws, stages.WINDOWS_ANALYSIS)
    assert '"processed"."stg_transactions"' in sql and "{{" not in sql
    for column in pandas_ref.WINDOW_COLUMNS:
        assert f"as {column}" in sql
    assert "stg_transactions" not in capfd.readouterr().out  # the bench's log stays readable


def test_a_lake_that_holds_data_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "raw").mkdir(parents=True)
    with pytest.raises(ValueError, match="not empty"):
        run_bench(BenchConfig(transactions=1_000, days=4, lake=lake, work=tmp_path / "w"))


# --- the smoke run: every stage on a small lake -------------------------------------------

SMOKE_STAGES = (
    report.GENERATION,
    report.BUILD,
    report.FEATURES,
    report.PANDAS_STAGING,
    report.PANDAS_WINDOWS,
    report.SAME_WORK_WINDOWS,
    report.TRAINING,
    report.SCORING_ALL,
    report.SCORING,
    report.DAILY_GENERATION,
    report.INCREMENTAL,
)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> BenchOutcome:
    root = tmp_path_factory.mktemp("bench")
    config = BenchConfig(
        transactions=50_000,
        days=8,
        seed=3,
        start_date=date(2026, 10, 1),
        lake=root / "lake",
        work=root / "work",
        out=root / "results",
        sample_customers=200,
        train=TrainConfig(
            booster=BoosterParams(num_boost_round=50, early_stopping_rounds=10), plots=False
        ),
    )
    return run_bench(config, say=lambda _: None)


@pytest.mark.dbt
def test_smoke_run_measures_every_stage_with_rows(smoke: BenchOutcome) -> None:
    stages = {s["name"]: s for s in smoke.result["stages"]}
    assert tuple(stages) == SMOKE_STAGES
    for name, stage in stages.items():
        assert stage["rows"] > 0, name
        assert stage["seconds"] > 0 and stage["peak_rss_bytes"] > 0, name
    assert 40_000 < smoke.result["transactions"] < 60_000
    assert stages[report.BUILD]["bytes_written"] > 0
    sizes = smoke.result["lake_sizes"]
    assert sizes["raw"] > 0 and sizes["processed"] > 0 and sizes["curated"] > 0
    assert 0 < smoke.result["csv"]["ratio"] < 1
    pruning = smoke.result["pruning"]
    assert pruning["one_day"]["files_read"] == 1
    assert pruning["full_table"]["files_read"] == pruning["full_table"]["files_total"] == 9
    assert pruning["one_day"]["column_bytes"] < pruning["full_table"]["column_bytes"]


@pytest.mark.dbt
def test_smoke_run_writes_json_and_markdown_with_the_targets(smoke: BenchOutcome) -> None:
    written = json.loads(smoke.json_path.read_text())
    assert [(s["name"], s["rows"]) for s in written["stages"]] == [
        (s["name"], s["rows"]) for s in smoke.result["stages"]
    ]
    assert written["cross_check"]["agrees"] and written["machine"]["cores"] > 0
    markdown = smoke.markdown_path.read_text()
    assert smoke.json_path.stem == smoke.markdown_path.stem
    assert not list(smoke.json_path.parent.glob("*.partial.json"))  # replaced by the record
    for stage in SMOKE_STAGES:
        assert f"| {stage} |" in markdown
    verdicts = {t["name"]: t["met"] for t in smoke.result["targets"]}
    assert verdicts["full pipeline, generation excluded"] is None  # not at 10M
    assert "| raw Parquet vs CSV |" in markdown
    # scoring: both figures, the default's (exact reasons for the alerts) and every row's
    stages = {s["name"]: s for s in smoke.result["stages"]}
    default, every = stages[report.SCORING], stages[report.SCORING_ALL]
    assert (default["detail"]["reasons"], every["detail"]["reasons"]) == ("alerts", "all")
    assert default["rows"] == every["rows"]
    assert default["detail"]["alerts"] == every["detail"]["alerts"]
    speed = next(t for t in smoke.result["targets"] if t["name"].startswith("scoring speed"))
    assert speed["met"] is None and "exact reasons for every row" in speed["measured"]


@pytest.mark.dbt
def test_smoke_run_pandas_and_dbt_agree(smoke: BenchOutcome) -> None:
    check = smoke.result["cross_check"]
    assert check["agrees"], check["mismatches"]
    assert check["dispositions"]["accepted"] == check["accepted_rows"] > 40_000
    assert any(k.startswith("rejected:") for k in check["dispositions"])
    assert check["dispositions"].get("duplicate", 0) > 0
    assert check["sampled_transactions"] > 1_000
    staging, windows = smoke.result["pandas_ratios"]
    assert (staging["work"], windows["work"]) == (
        "staging (dedup, normalization)",
        "customer windows",
    )
    # the six windows alone: the same rows as pandas' (their totals are in the cross-check)
    stages = {s["name"]: s for s in smoke.result["stages"]}
    assert stages[report.SAME_WORK_WINDOWS]["rows"] == check["accepted_rows"]
    assert 0 < windows["same_work_seconds"] < stages[report.SAME_WORK_WINDOWS]["seconds"]
    assert "same_work_ratio" not in staging


@pytest.fixture(scope="module")
def final_lake(smoke: BenchOutcome) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """The smoke lake after the bench (it holds the appended day too, built incrementally by
    dbt): its database, and pandas' staged rows and windows of it."""
    lake = Path(smoke.result["lake"])
    staged = pandas_ref.stage_transactions(
        pandas_ref.read_raw_transactions(lake / "raw" / "transactions"), ALIASES
    )
    return (
        lake / "banklake.duckdb",
        staged,
        pandas_ref.customer_windows(pandas_ref.accepted(staged)),
    )


@pytest.mark.dbt
def test_cross_check_fails_loudly_when_pandas_differs(
    final_lake: tuple[Path, pd.DataFrame, pd.DataFrame],
) -> None:
    database, staged, windows = final_lake
    windows = windows.copy()  # the fixture's frame is shared with the next test
    check = cross_check(database, staged, windows, sample_customers=50, seed=1)
    assert check.agrees, check.mismatches
    windows.loc[windows.index[0], "cust_tx_count_7d"] += 1
    check = cross_check(database, staged, windows, sample_customers=50, seed=1)
    assert not check.agrees
    with pytest.raises(CrossCheckFailed, match="cust_tx_count_7d"):
        require_agreement(check)


@pytest.mark.dbt
def test_cross_check_compares_the_windows_sql_alone_with_pandas(
    final_lake: tuple[Path, pd.DataFrame, pd.DataFrame],
) -> None:
    database, staged, windows = final_lake
    with duckdb.connect(str(database), read_only=True) as con:
        rows, totals = window_totals(con, "curated.ml_features")
    same = cross_check(
        database, staged, windows, sample_customers=5, seed=1, same_work=(rows, totals)
    )
    assert same.agrees, same.mismatches
    totals[3] += 1  # cust_amount_sum_7d, one cent off
    check = cross_check(
        database, staged, windows, sample_customers=5, seed=1, same_work=(rows, totals)
    )
    assert check.mismatches == [
        f"total cust_amount_sum_7d: pandas {totals[3] - 1}, the windows analysis {totals[3]}"
    ]
    short = cross_check(
        database, staged, windows, sample_customers=5, seed=1, same_work=(rows - 1, totals)
    )
    assert f"window rows differ: pandas {rows}, the windows analysis {rows - 1}" in short.mismatches


def test_a_run_asked_for_10m_is_judged_at_10m_whatever_the_generator_drew() -> None:
    """The generator's volume varies by a few percent around --transactions: a 10M run that
    drew 9.75M rows is still judged against the 10M targets; a 1M run is not."""
    from python_jobs.bench.report import PIPELINE, SCORING, evaluate_targets

    def stage(name: str) -> dict[str, float | str]:
        return {
            "name": name,
            "seconds": 200.0,
            "rows_per_second": 15_000.0,
            "cpu_seconds": 20.0,
            "peak_rss_bytes": 5 * 2**30,
            "peak_swap_bytes": 0,
            "spill_bytes": 0,
        }

    def verdicts(requested: int, drawn: int) -> dict[str, bool | None]:
        result = {
            "requested_transactions": requested,
            "transactions": drawn,
            "stages": [stage(name) for name in PIPELINE],
        }
        return {t.name: t.met for t in evaluate_targets(result)}

    at_10m = verdicts(10_000_000, 9_753_739)
    assert at_10m["full pipeline, generation excluded"] is False  # 800 s
    assert at_10m["peak memory of the pipeline (process tree)"] is True
    assert at_10m["scoring speed (the day's file, exact reasons for every alert)"] is False
    at_1m = verdicts(1_000_000, 1_020_000)
    assert at_1m["full pipeline, generation excluded"] is None
    assert at_1m["peak memory of the pipeline (process tree)"] is None
    assert SCORING in PIPELINE
