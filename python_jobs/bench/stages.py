"""The pipeline's stages as the bench runs them: the same functions `make demo` and the
daily run call, pointed at the bench's own lake, dbt target folder and log folder (so a
bench never touches the repository's target/ that other dbt runs use)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from ml.train import TrainConfig
from python_jobs.bench.crosscheck import window_totals
from python_jobs.dbt_runner import DbtOutcome, require_success, run_dbt
from python_jobs.generate import GenerationResult, GeneratorConfig, generate
from python_jobs.lake.layout import Lake
from python_jobs.lake.query import one_row
from python_jobs.lake.validate import validate_lake
from python_jobs.pipeline import daily_build_args

# The feature mart and what reads it are built in their own stage.
FEATURE_SELECTOR = "ml_features+"
# Tests run in the same stage right after the build, failures recorded instead of fatal (a
# failing test makes `dbt build` skip every model downstream). Empty: every test blocks, as in
# the pipeline. It held "test_name:no_pii_in_clear" while CPF-shaped PIX keys could equal a
# customer's CPF at bench sizes (fixed in a6809c0: PIX keys reach curated only hashed).
NON_BLOCKING_TESTS: tuple[str, ...] = ()
# The pandas reference's window work and nothing more, in the SQL of ml_features' own macros.
WINDOWS_ANALYSIS = "bench_customer_windows"
PROJECT = "banklake"  # dbt_project.yml's name: the folder of compiled SQL


@dataclass(frozen=True)
class Workspace:
    lake: Lake
    target: Path  # dbt --target-path
    logs: Path  # dbt --log-path


@dataclass
class DbtStage:
    """A dbt invocation's outcome and its node timings from run_results.json."""

    outcome: DbtOutcome
    seconds_by_type: dict[str, float]
    node_seconds: dict[str, float]  # model name -> execution seconds
    raw_rows: int = 0
    quarantined: int = 0
    non_blocking_failures: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def slowest(self, n: int = 5) -> list[tuple[str, float]]:
        ranked = sorted(self.node_seconds.items(), key=lambda item: -item[1])
        return [(name, round(seconds, 3)) for name, seconds in ranked[:n]]

    def to_detail(self) -> dict[str, Any]:
        return {
            "dbt_statuses": dict(self.outcome.statuses),
            "dbt_seconds_by_type": {k: round(v, 3) for k, v in self.seconds_by_type.items()},
            "slowest_models": self.slowest(),
            "quarantined_files": self.quarantined,
            "non_blocking_test_failures": self.non_blocking_failures,
            **self.extra,
        }


def generation(ws: Workspace, config: GeneratorConfig) -> GenerationResult:
    return generate(ws.lake, config)


def append_day(ws: Workspace) -> GenerationResult:
    """The daily feed: the next day after the lake's last one, with the lake's own settings."""
    return generate(ws.lake, GeneratorConfig(days=1), append=True)


def _run_results(target: Path) -> tuple[dict[str, float], dict[str, float]]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    by_type: dict[str, float] = defaultdict(float)
    models: dict[str, float] = {}
    for result in results:
        resource_type, *_, name = result["unique_id"].split(".")
        by_type[resource_type] += float(result.get("execution_time") or 0.0)
        if resource_type in {"model", "snapshot", "seed"}:
            models[name] = float(result.get("execution_time") or 0.0)
    return dict(by_type), models


def dbt_build(
    ws: Workspace,
    *,
    select: str | None = None,
    exclude: str | None = None,
    validate: bool = True,
    daily_new_day: date | None = None,
) -> DbtStage:
    """Validates the raw files (as `banklake build` does), then `dbt build` of the selection
    (with daily_new_day, as the daily run builds after delivering the days from then on);
    fails on any failing node or test, except the non-blocking tests (NON_BLOCKING_TESTS),
    which run right after in the same stage and whose failures are recorded instead."""
    quarantined = len(validate_lake(ws.lake).quarantined) if validate else 0
    selection = ["--select", select] if select else []
    excluded = [*([exclude] if exclude else []), *NON_BLOCKING_TESTS]
    daily = daily_build_args(daily_new_day) if daily_new_day else []
    outcome = _dbt(ws, "build", *selection, *(["--exclude", *excluded] if excluded else []), *daily)
    require_success(outcome)
    by_type, models = _run_results(ws.target)
    stage = DbtStage(outcome, by_type, models, quarantined=quarantined)
    for test in NON_BLOCKING_TESTS:
        scoped = f"{test},{select}" if select else test
        checked = _dbt(ws, "test", "--select", scoped, *(["--exclude", exclude] if exclude else []))
        if checked.count("test", "error") or any("could not run" in f for f in checked.failures):
            require_success(checked)
        stage.outcome.statuses.update(checked.statuses)
        for resource_type, seconds in _run_results(ws.target)[0].items():
            stage.seconds_by_type[resource_type] = (
                stage.seconds_by_type.get(resource_type, 0.0) + seconds
            )
        stage.non_blocking_failures += checked.failures
    return stage


def _dbt(ws: Workspace, *args: str) -> DbtOutcome:
    return run_dbt([*args, "--log-path", str(ws.logs)], ws.lake, target_path=ws.target, quiet=True)


def count(ws: Workspace, sql: str, params: list[object] | None = None) -> int:
    with duckdb.connect(str(ws.lake.database), read_only=True) as con:
        return int(one_row(con, sql, params or [])[0])


def raw_transaction_rows(ws: Workspace, day: date | None = None) -> int:
    """Raw transaction rows in the lake (or in one ingestion day), from the Parquet footers."""
    import pyarrow.parquet as pq

    pattern = f"year={day:%Y}/month={day:%m}/day={day:%d}/*.parquet" if day else "*/*/*/*.parquet"
    files = sorted((ws.lake.raw / "transactions").glob(pattern))
    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def training(ws: Workspace, config: TrainConfig) -> dict[str, Any]:
    """`banklake train` with the default windows but no label horizon: the test is the newest
    week and training reaches up to its gap, the most rows the protocol fits (as in the
    records made before the horizon existed, so they stay comparable). What the record keeps
    of it: plain values (the stage runs in its own process), never the booster."""
    from ml.layout import MlLayout
    from ml.train import MODEL, WindowRequest, train

    outcome = train(MlLayout(ws.lake), WindowRequest(label_horizon_days=0), config)
    data = outcome.result.split
    return {
        "rows": len(data.fit) + len(data.validation) + len(data.test),
        "version": outcome.version,
        "windows": outcome.metadata["windows"],
        "trees": outcome.result.fitted.best_iteration + 1,
        "average_precision": outcome.metadata["metrics"][MODEL]["average_precision"],
    }


def scoring(ws: Workspace, reasons: str = "alerts") -> dict[str, Any]:
    """`banklake score --reasons R` of the features' last day with the champion: "alerts"
    (the default: exact reasons for the alerted rows only) or "all" (for every row)."""
    from ml.layout import MlLayout
    from ml.score import score_day

    scored = score_day(MlLayout(ws.lake), reasons=reasons)
    return {
        "rows": scored.rows,
        "day": scored.day.isoformat(),
        "alerts": scored.alerts,
        "reasons": scored.reasons,
        "reasons_method": scored.reasons_method,
    }


def compile_analysis(ws: Workspace, name: str) -> str:
    """An analysis (analyses/) as dbt compiles it for the lake's profile: dbt never runs
    analyses, it only writes their SQL. (`--quiet` still prints a selected node's SQL;
    `--log-level none` does not.)"""
    require_success(_dbt(ws, "compile", "--select", name, "--log-level", "none"))
    return (ws.target / "compiled" / PROJECT / "analyses" / f"{name}.sql").read_text()


@dataclass(frozen=True)
class QueryRun:
    rows: int
    query_seconds: float  # the query alone, without the process start and the totals
    window_totals: list[int]  # crosscheck.window_totals of its result


def same_work_windows(ws: Workspace, sql: str, memory_limit: str, threads: int) -> QueryRun:
    """The compiled windows analysis into a temporary table (in memory, spilling like dbt
    would: pandas' result is an in-memory frame too), with the profile's memory limit and
    threads; then its totals, outside the query's time, for the cross-check."""
    with duckdb.connect(str(ws.lake.database), read_only=True) as con:
        con.execute(f"set memory_limit = '{memory_limit}'")
        con.execute(f"set threads = {int(threads)}")
        started = time.perf_counter()
        con.execute(f"create temp table same_work as {sql}")
        seconds = time.perf_counter() - started
        rows, totals = window_totals(con, "same_work")
    return QueryRun(rows, seconds, totals)
