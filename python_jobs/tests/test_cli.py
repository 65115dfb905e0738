"""The `banklake` command as a user meets it: the happy path, and errors that say what to do."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from python_jobs.cli import main
from python_jobs.dbt_runner import target_dir


def test_generate_then_refuse_to_overwrite_then_append(tmp_path: Path, capsys) -> None:
    lake = str(tmp_path / "lake")
    args = [
        "generate",
        "--lake",
        lake,
        "--customers",
        "60",
        "--days",
        "2",
        "--start-date",
        "2026-10-01",
    ]
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "lake/raw/transactions").glob("*/*/*")) == [
        "day=01",
        "day=02",
    ]
    capsys.readouterr()

    assert main(args) == 1
    assert "--append" in capsys.readouterr().err

    assert main(["generate", "--lake", lake, "--days", "1", "--append"]) == 0
    assert (tmp_path / "lake/raw/transactions/year=2026/month=10/day=03").is_dir()


def test_daily_run_on_an_empty_lake_says_what_to_do_first(tmp_path: Path, capsys) -> None:
    assert main(["run", "--lake", str(tmp_path / "empty")]) == 1
    assert "banklake demo" in capsys.readouterr().err


def test_bad_option_values_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--lake", str(tmp_path), "--start-date", "yesterday"])
    assert main(["generate", "--lake", str(tmp_path / "l"), "--fraud-rate", "2"]) == 1
    assert not (tmp_path / "l" / "raw").exists()


@pytest.mark.dbt
def test_demo_builds_everything_and_tells_where_to_look(tmp_path: Path, capsys) -> None:
    lake = tmp_path / "lake"
    code = main(
        [
            "demo",
            "--lake",
            str(lake),
            "--customers",
            "150",
            "--days",
            "5",
            "--start-date",
            "2026-10-01",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "dbt build" in out and "tests passed" in out
    assert "fct_transactions" in out and str(lake / "banklake.duckdb") in out
    # the last day arrived as the daily feed, after a first build
    assert out.count("==> dbt build (seeds") == 2
    # then the model was trained against its baselines and the last day scored
    assert "training the fraud model" in out and "scoring the last day" in out
    assert list((lake / "processed" / "fraud_scores").glob("score_date=2026-10-05/*.parquet"))
    assert (lake / "curated" / "fct_fraud_alerts").is_dir()
    assert (lake / "curated" / "dim_customers" / "data.parquet").exists()
    assert (target_dir() / "static_index.html").exists()
    # monitoring, then the offline assistant: the day's report and two answered questions
    assert (lake / "monitoring" / "2026-10-05.json").exists()
    reports = tmp_path / "reports"
    assert (reports / "2026-10-05-pt.md").exists() and (reports / "2026-10-05-pt.html").exists()
    assert out.count("$ banklake ask") == 2
    assert "taxa de fraude" in out and "top 5 customers" in out


def test_version_is_the_installed_package_s(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"banklake {version('banklake')}"


def test_summary_of_a_lake_not_built_says_what_to_run(tmp_path: Path, capsys) -> None:
    """No lake folder, a folder without its database, a database dbt never built: each a
    hint on stderr and exit 1, as train and score give, never a DuckDB traceback."""
    missing, unbuilt, empty = tmp_path / "missing", tmp_path / "unbuilt", tmp_path / "empty"
    unbuilt.mkdir()
    empty.mkdir()
    duckdb.connect(str(empty / "banklake.duckdb")).close()
    for lake in (missing, unbuilt, empty):
        for extra in ([], ["--json"]):
            assert main(["summary", "--lake", str(lake), *extra]) == 1
            captured = capsys.readouterr()
            assert captured.out == ""
            assert captured.err.startswith("banklake summary: ")
            assert "run `banklake build` (or `make demo`) first" in captured.err
            assert "Traceback" not in captured.err


def _built_looking_lake(root: Path) -> Path:
    """A DuckDB file with the relations `summary` reads, a few rows in each."""
    root.mkdir()
    with duckdb.connect(str(root / "banklake.duckdb")) as con:
        con.execute("create schema processed; create schema curated")
        for feed in ("transactions", "customers", "accounts", "fraud_reports"):
            con.execute(
                f"create table processed.stg_{feed}_triaged as select * from (values "
                "(date '2026-10-01', 'accepted'), (date '2026-10-02', 'accepted'), "
                "(date '2026-10-02', 'rejected')) t(ingestion_date, disposition)"
            )
        con.execute(
            "create table processed.stg_rejected_rows as select * from "
            "(values ('transactions', 'invalid_amount')) t(feed, rejection_reason)"
        )
        con.execute("create table curated.dim_customers as select 1 as customer_key")
    (root / "quarantine" / "raw").mkdir(parents=True)
    (root / "quarantine" / "raw" / "x.parquet.reason.json").write_text("{}")
    return root


def test_summary_json_is_one_document_with_its_keys(tmp_path: Path, capsys) -> None:
    lake = _built_looking_lake(tmp_path / "lake")
    assert main(["summary", "--lake", str(lake), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == [
        "command",
        "target",
        "lake",
        "database",
        "feeds",
        "rejected",
        "quarantined_files",
        "curated",
    ]
    assert (document["command"], document["target"]) == ("summary", "duckdb")
    assert document["feeds"]["transactions"] == {
        "raw_rows": 3,
        "accepted": 2,
        "duplicate": 0,
        "rejected": 1,
    }
    assert document["rejected"] == [{"feed": "transactions", "reason": "invalid_amount", "rows": 1}]
    assert document["quarantined_files"] == 1
    assert document["curated"] == {"dim_customers": 1}
    # without --json: the human table, same numbers
    assert main(["summary", "--lake", str(lake)]) == 0
    assert "invalid_amount" in capsys.readouterr().out


def test_bench_json_is_one_document_with_its_keys(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench's --json document from its outcome (the run itself: test_bench.py's smoke).
    Whatever else the run writes to stdout, from Python or from a child process, goes to
    stderr: stdout is the document alone."""
    from python_jobs.bench.run import BenchOutcome

    record = {
        "transactions": 1000,
        "days": 4,
        "stages": [
            {"name": "generation", "seconds": 1.5, "rows": 1000, "peak_rss_bytes": 10, "cpu": 1}
        ],
        "targets": [{"name": "generation speed", "goal": ">= 1", "measured": "2", "met": True}],
        "cross_check": {"agrees": True},
    }
    said: list[str] = []

    def run_bench(config, say):
        say("bench: progress")
        print("a stray line")
        subprocess.run(["echo", "a child process"], check=True)
        said.append(str(config.transactions))
        return BenchOutcome(record, tmp_path / "r.json", tmp_path / "r.md", "| table |")

    monkeypatch.setattr("python_jobs.bench.run.run_bench", run_bench)
    assert main(["bench", "--transactions", "1000", "--days", "4", "--json"]) == 0
    captured = capfd.readouterr()
    document = json.loads(captured.out)
    assert "bench: progress" in captured.err and said == ["1000"]
    assert "a stray line" in captured.err and "a child process" in captured.err
    assert document == {
        "command": "bench",
        "transactions": 1000,
        "days": 4,
        "results_json": str(tmp_path / "r.json"),
        "results_markdown": str(tmp_path / "r.md"),
        "stages": [{"name": "generation", "seconds": 1.5, "rows": 1000, "peak_rss_bytes": 10}],
        "targets": record["targets"],
        "cross_check_agrees": True,
    }


def test_a_started_sagemaker_job_s_json_says_how_to_collect_it() -> None:
    from ml.sagemaker import SageMakerJob
    from python_jobs.cli_json import started

    job = SageMakerJob("banklake-fraud-xgb-1", "arn:aws:sagemaker:x", "s3://b/m/model.tar.gz")
    assert started(job) == {
        "command": "train",
        "status": "started",
        "backend": "sagemaker",
        "job_name": "banklake-fraud-xgb-1",
        "job_arn": "arn:aws:sagemaker:x",
        "model_uri": "s3://b/m/model.tar.gz",
        "collect": "banklake train --collect banklake-fraud-xgb-1",
    }
