"""The `banklake` command as a user meets it: the happy path, and errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_jobs.cli import main
from python_jobs.dbt_runner import PROJECT_DIR


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
    assert (PROJECT_DIR / "target" / "static_index.html").exists()
    # monitoring, then the offline assistant: the day's report and two answered questions
    assert (lake / "monitoring" / "2026-10-05.json").exists()
    reports = tmp_path / "reports"
    assert (reports / "2026-10-05-pt.md").exists() and (reports / "2026-10-05-pt.html").exists()
    assert out.count("$ banklake ask") == 2
    assert "taxa de fraude" in out and "top 5 customers" in out
