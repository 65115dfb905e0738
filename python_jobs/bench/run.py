"""`banklake bench`: strings the stages together on a fresh lake and writes the record.

Order: generate N transactions over D days; dbt build of processed + curated; the feature
mart; the pandas reference on the same raw files (staging, then the customer windows) and
its cross-check against dbt's tables; training; scoring the last day; then the daily run:
one more day appended and an incremental dbt build. Lake sizes, the CSV comparison and the
partition-pruning queries are measured on the final lake.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from python_jobs.bench import pandas_ref, report, stages
from python_jobs.bench.config import BenchConfig
from python_jobs.bench.crosscheck import CrossCheck, cross_check, require_agreement
from python_jobs.bench.machine import machine_facts
from python_jobs.bench.measure import Stopwatch
from python_jobs.bench.pruning import partition_pruning
from python_jobs.bench.storage import csv_comparison, lake_sizes
from python_jobs.dbt_runner import PROJECT_DIR
from python_jobs.generate import GeneratorConfig
from python_jobs.lake.layout import Lake

Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchOutcome:
    result: dict[str, Any]
    json_path: Path
    markdown_path: Path
    markdown: str


def _workspace(config: BenchConfig) -> tuple[stages.Workspace, list[Path]]:
    """The bench's folders, and those to remove afterwards (the temporary ones, unless
    keep_lake). A given --lake must be new or empty, since the bench never writes into a lake
    that holds data, and is kept."""
    cleanup: list[Path] = []
    work = config.work
    if work is None:
        work = Path(tempfile.mkdtemp(prefix="banklake-bench-"))
        cleanup.append(work)
    lake_root = config.lake or work / "lake"
    if lake_root.exists() and any(lake_root.iterdir()):
        raise ValueError(f"{lake_root} is not empty: the bench needs a new lake folder")
    if config.keep_lake and work in cleanup and config.lake is None:
        cleanup.remove(work)  # the lake lives inside the work folder
    workspace = stages.Workspace(Lake(lake_root), work / "target", work / "logs")
    return workspace, cleanup


PROFILE_MEMORY_LIMIT = "5GB"  # profiles.yml.example's default, when the variable is unset


def _settings() -> dict[str, str]:
    return {
        "duckdb_memory_limit": os.environ.get("BANKLAKE_DUCKDB_MEMORY", PROFILE_MEMORY_LIMIT),
        "dbt_threads": os.environ.get("BANKLAKE_THREADS", "2"),
    }


def run_bench(config: BenchConfig, *, say: Say = print) -> BenchOutcome:
    started_at = datetime.now(UTC).replace(microsecond=0)
    machine = machine_facts()
    ws, cleanup = _workspace(config)
    say(f"bench: {config.transactions:,} transactions over {config.days} days -> {ws.lake.root}")
    header: dict[str, Any] = {
        "started_at": started_at.isoformat().replace("+00:00", "Z"),
        "requested_transactions": config.transactions,
        "days": config.days,
        "customers": config.customers,
        "seed": config.seed,
        "lake": str(ws.lake.root),
        "machine": machine.to_dict(),
        "settings": _settings(),
    }
    watch = Stopwatch(
        ws.lake.root,
        [ws.lake.root / "banklake.duckdb.tmp", Path(".tmp")],
        say,
        after_stage=lambda done: report.write_partial(
            {**header, "stages": [stage.to_dict() for stage in done]}, config.out
        ),
    )
    try:
        measured = _run_stages(config, ws, watch, say)
        result: dict[str, Any] = {
            **header,
            "transactions": measured["transactions"],
            "stages": [stage.to_dict() for stage in watch.stages],
            **{k: v for k, v in measured.items() if k != "transactions"},
        }
        result["targets"] = [t.to_dict() for t in report.evaluate_targets(result)]
        json_path, markdown_path = report.write_results(result, config.out)
        markdown = markdown_path.read_text()
        say(markdown)
        say(f"results: {json_path} and {markdown_path}")
        check = result.get("cross_check")
        if check is not None and not check["agrees"]:
            require_agreement(CrossCheck(**check))  # raises, after the record is written
        return BenchOutcome(result, json_path, markdown_path, markdown)
    finally:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


def _run_stages(
    config: BenchConfig, ws: stages.Workspace, watch: Stopwatch, say: Say
) -> dict[str, Any]:
    generator = GeneratorConfig(
        seed=config.seed,
        start_date=config.start_date,
        days=config.days,
        customers=config.customers,
    )
    # Every pipeline stage runs in its own process (measure.ChildStage): its peak memory is
    # its own, not what an earlier stage left allocated in this one.
    generated = watch.run(
        report.GENERATION,
        partial(stages.generation, ws, generator),
        lambda g: g.rows["transactions"],
        lambda g: {
            "first_day": g.first_day.isoformat(),
            "last_day": g.last_day.isoformat(),
            "rows_by_feed": g.rows,
            "fraud_transactions": g.fraud_transactions,
            "generator_transactions_per_second": round(g.transactions_per_second),
        },
        isolated=True,
    )
    raw_rows = generated.rows["transactions"]
    build = watch.run(
        report.BUILD,
        partial(stages.dbt_build, ws, exclude=stages.FEATURE_SELECTOR),
        lambda _: raw_rows,
        lambda b: b.to_detail(),
        isolated=True,
    )
    features = watch.run(
        report.FEATURES,
        partial(stages.dbt_build, ws, select=stages.FEATURE_SELECTOR, validate=False),
        lambda _: stages.count(ws, "select count(*) from curated.ml_features"),
        lambda b: b.to_detail(),
        isolated=True,
    )
    measured: dict[str, Any] = {"transactions": raw_rows}
    if not config.skip_pandas:
        measured.update(_pandas_reference(config, ws, watch, build, features))
        _release_memory()
    watch.run(
        report.TRAINING,
        partial(stages.training, ws, config.train),
        lambda t: t["rows"],
        lambda t: {k: v for k, v in t.items() if k != "rows"},
        isolated=True,
    )
    for name, reasons in ((report.SCORING_ALL, "all"), (report.SCORING, "alerts")):
        # every row's exact reasons first: the day's file is then the default's, as
        # `banklake score` leaves it
        watch.run(
            name,
            partial(stages.scoring, ws, reasons),
            lambda s: s["rows"],
            lambda s: {k: v for k, v in s.items() if k != "rows"},
            isolated=True,
        )
    appended = watch.run(
        report.DAILY_GENERATION,
        partial(stages.append_day, ws),
        lambda g: g.rows["transactions"],
        lambda g: {"day": g.last_day.isoformat()},
        isolated=True,
    )
    watch.run(
        report.INCREMENTAL,
        partial(stages.dbt_build, ws, daily_new_day=appended.first_day),
        lambda _: stages.raw_transaction_rows(ws, appended.last_day),
        lambda b: b.to_detail(),
        isolated=True,
    )
    say("==> lake sizes, raw Parquet vs CSV, partition pruning")
    measured["lake_sizes"] = lake_sizes(ws.lake).to_dict()
    raw_transactions = ws.lake.raw / "transactions"
    measured["csv"] = csv_comparison(
        raw_transactions, ws.target.parent / "transactions.csv", keep=config.keep_csv
    ).to_dict()
    measured["pruning"] = partition_pruning(raw_transactions, _middle_day(generated)).to_dict()
    return measured


def _release_memory() -> None:
    """Gives the pandas reference's memory back to the system before the pipeline goes on:
    pandas' text columns live in Arrow's memory pool, which keeps freed memory for reuse.
    The later stages run in processes of their own (their peaks do not include this one),
    but they share the machine's RAM with it."""
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()


def _middle_day(generated: Any) -> date:
    first, last = generated.first_day, generated.last_day
    return first + (last - first) // 2


def _pandas_reference(
    config: BenchConfig,
    ws: stages.Workspace,
    watch: Stopwatch,
    build: stages.DbtStage,
    features: stages.DbtStage,
) -> dict[str, Any]:
    """Staging and the customer windows in pandas on the same raw files, timed like the dbt
    stages, then checked against dbt's tables (after the timings, outside them)."""
    aliases = pandas_ref.load_aliases(PROJECT_DIR / "seeds" / "value_aliases.csv")
    staged = watch.run(
        report.PANDAS_STAGING,
        lambda: pandas_ref.stage_transactions(
            pandas_ref.read_raw_transactions(ws.lake.raw / "transactions"), aliases
        ),
        len,
    )
    windows = watch.run(
        report.PANDAS_WINDOWS,
        lambda: pandas_ref.customer_windows(pandas_ref.accepted(staged)),
        len,
    )
    settings = _settings()
    same_work = watch.run(
        report.SAME_WORK_WINDOWS,
        partial(
            stages.same_work_windows,
            ws,
            stages.compile_analysis(ws, stages.WINDOWS_ANALYSIS),
            settings["duckdb_memory_limit"],
            int(settings["dbt_threads"]),
        ),
        lambda q: q.rows,
        lambda q: {
            "analysis": f"analyses/{stages.WINDOWS_ANALYSIS}.sql",
            "query_seconds": round(q.query_seconds, 3),
        },
        isolated=True,
    )
    check = cross_check(
        ws.lake.database,
        staged,
        windows,
        sample_customers=config.sample_customers,
        seed=config.seed,
        same_work=(same_work.rows, same_work.window_totals),
    )
    stage_seconds = {s.name: s.seconds for s in watch.stages}
    ratios: list[dict[str, Any]] = []
    for work, dbt_stage, dbt_stats, model, pandas_stage in (
        (
            "staging (dedup, normalization)",
            report.BUILD,
            build,
            "stg_transactions_triaged",
            report.PANDAS_STAGING,
        ),
        ("customer windows", report.FEATURES, features, "ml_features", report.PANDAS_WINDOWS),
    ):
        pandas_seconds = stage_seconds[pandas_stage]
        model_seconds = dbt_stats.node_seconds.get(model, 0.0)
        ratios.append(
            {
                "work": work,
                "dbt_stage_seconds": stage_seconds[dbt_stage],
                "dbt_model": model,
                "dbt_model_seconds": round(model_seconds, 3),
                "pandas_seconds": pandas_seconds,
                "stage_ratio": pandas_seconds / stage_seconds[dbt_stage],
                "node_ratio": pandas_seconds / model_seconds if model_seconds else 0.0,
            }
        )
    # ml_features computes 47 features, pandas six: the same six alone, in the model's SQL
    windows_ratio = ratios[-1]
    windows_ratio["same_work_seconds"] = round(same_work.query_seconds, 3)
    windows_ratio["same_work_ratio"] = windows_ratio["pandas_seconds"] / same_work.query_seconds
    return {"cross_check": check.to_dict(), "pandas_ratios": ratios}
