"""`banklake bench daily`: the daily run timed on lakes of different history. The smoke run
builds two small lakes for real (generator, dbt, the daily increment); no timing is asserted,
only that every stage ran on the rows it says and that the record reports them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from python_jobs.bench.daily import (
    APPEND,
    DAILY,
    FULL,
    HISTORY,
    DailyBenchConfig,
    run_daily_bench,
    verdict,
)
from python_jobs.cli import build_parser


def test_cli_defaults_are_the_10m_bench_s_day_on_three_histories() -> None:
    args = build_parser().parse_args(["bench", "daily"])
    assert (args.stage, args.daily_volume, args.history_days) == ("daily", 330_000, [10, 20, 30])
    args = build_parser().parse_args(
        ["bench", "daily", "--daily-volume", "10000000", "--history-days", "5,7"]
    )
    assert (args.daily_volume, args.history_days) == (10_000_000, [5, 7])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"daily_volume": 10}, "--daily-volume"),
        ({"history_days": ()}, "--history-days"),
        ({"history_days": (3, 10)}, "at least 4"),
        ({"history_days": (10, 10)}, "repeats"),
    ],
)
def test_a_bad_request_names_its_flag(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DailyBenchConfig(**kwargs)


def _run(days: int, daily: float, full: float) -> dict[str, Any]:
    return {
        "history_days": days,
        "daily_run_seconds": daily,
        "daily_share_of_full": daily / full,
    }


def test_the_verdict_compares_the_longest_history_with_the_shortest() -> None:
    flat = verdict([_run(10, 10.0, 100.0), _run(20, 30.0, 200.0), _run(30, 11.0, 300.0)])
    assert flat["growth"] == pytest.approx(1.1) and flat["flat"]
    assert flat["daily_share_met"] and flat["worst_daily_share"] == pytest.approx(0.15)
    grows = verdict([_run(10, 10.0, 40.0), _run(30, 25.0, 300.0)])
    assert grows["growth"] == pytest.approx(2.5) and not grows["flat"]
    assert not grows["daily_share_met"] and grows["worst_daily_share"] == pytest.approx(0.25)
    # one history shows no growth either way: never called flat
    assert not verdict([_run(10, 10.0, 100.0)])["flat"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    root = tmp_path_factory.mktemp("bench-daily")
    config = DailyBenchConfig(
        daily_volume=1_500, history_days=(5, 4), seed=5, out=root / "results", work=root / "w"
    )
    result, markdown = run_daily_bench(config, say=lambda _: None)
    return result, markdown, root / "w"


@pytest.mark.dbt
def test_smoke_run_times_each_history_s_build_and_daily_run(
    smoke: tuple[dict[str, Any], Path, Path],
) -> None:
    result, _, work = smoke
    runs = result["runs"]
    assert [r["history_days"] for r in runs] == [4, 5]  # shortest first
    for run in runs:
        stages = {s["name"]: s for s in run["stages"]}
        assert tuple(stages) == (HISTORY, FULL, APPEND, DAILY)
        assert all(s["rows"] > 0 and s["seconds"] > 0 for s in stages.values())
        assert run["full_build_seconds"] == stages[FULL]["seconds"]
        assert run["daily_run_seconds"] == stages[DAILY]["seconds"]
        assert stages[DAILY]["detail"]["dbt_statuses"]  # the daily build ran its nodes
        assert run["daily_ml_features_seconds"] > 0
        # the lake holds the history and the day, every accepted one featured
        lake = work / f"history-{run['history_days']}d" / "lake"
        with duckdb.connect(str(lake / "banklake.duckdb"), read_only=True) as con:
            days, featured = con.execute(
                "select count(distinct event_date), count(*) from curated.ml_features"
            ).fetchall()[0]
            accepted = con.execute("select count(*) from curated.fct_transactions").fetchall()[0][0]
        assert featured == accepted
        assert days >= run["history_days"] + 1
        assert stages[APPEND]["detail"]["day"] == result["new_day"]
        assert run["day_transactions"] == stages[APPEND]["rows"]
    assert runs[1]["history_transactions"] > runs[0]["history_transactions"]
    assert result["verdict"]["growth"] == pytest.approx(
        runs[1]["daily_run_seconds"] / runs[0]["daily_run_seconds"]
    )


@pytest.mark.dbt
def test_smoke_run_writes_the_record_as_json_and_markdown(
    smoke: tuple[dict[str, Any], Path, Path],
) -> None:
    result, markdown, _ = smoke
    written = json.loads(markdown.with_suffix(".json").read_text())
    assert written["runs"] == json.loads(json.dumps(result["runs"], default=str))
    text = markdown.read_text()
    assert markdown.name.startswith("daily-")
    for run in result["runs"]:
        assert f"| {run['history_days']} | {run['history_transactions']:,} |" in text
    assert "Daily run, longest history against shortest" in text


@pytest.mark.dbt
def test_the_json_document_carries_each_run_and_the_verdict(
    smoke: tuple[dict[str, Any], Path, Path],
) -> None:
    from python_jobs.cli_json import benched_daily

    result, markdown, _ = smoke
    document = json.loads(json.dumps(benched_daily(result, markdown)))
    assert document["command"] == "bench daily" and document["daily_volume"] == 1_500
    assert document["results_json"] == str(markdown.with_suffix(".json"))
    assert [r["history_days"] for r in document["runs"]] == [4, 5]
    assert [r["daily_run_seconds"] for r in document["runs"]] == [
        r["daily_run_seconds"] for r in result["runs"]
    ]
    assert document["verdict"] == result["verdict"]
