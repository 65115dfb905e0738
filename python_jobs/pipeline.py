"""The jobs `make demo` and the daily run are made of, each a function the CLI and tests call.

generate -> validate (quarantine) -> dbt build -> export curated -> docs -> summary
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from python_jobs.dbt_runner import DbtOutcome, require_success, run_dbt, target_dir
from python_jobs.export import ExportedTable, export_curated
from python_jobs.feedback import land_pending, land_pending_for_build
from python_jobs.generate import GenerationResult, GeneratorConfig, generate
from python_jobs.lake.build_lock import building
from python_jobs.lake.layout import Lake
from python_jobs.lake.validate import ValidationReport, validate_lake
from python_jobs.observability.jobs import emit_build, emit_summary
from python_jobs.summary import LakeSummary, render, summarize

Say = Callable[[str], None]
T = TypeVar("T")


def _quiet(_: str) -> None:
    return None


@dataclass
class StepTimer:
    say: Say

    def run(self, label: str, step: Callable[[], T], result: Callable[[T], str]) -> T:
        self.say(f"==> {label}")
        started = time.perf_counter()
        value = step()
        self.say(f"    {result(value)} ({time.perf_counter() - started:.1f} s)")
        return value


def has_generator_state(lake: Lake) -> bool:
    return (lake.generator_state / "state.json").exists()


def daily_build_args(new_day: date) -> list[str]:
    """What the daily run adds to `dbt build` after delivering the ingestion days from
    `new_day` on: data tests look only at the rows the incremental models rewrite
    (var daily_test_new_day, macros/testing/daily_test_scope.sql), and the unit tests, which
    check the SQL on fixed fixtures and cannot fail on new data, are left to full builds and
    CI. Every other build tests whole tables and runs the unit tests."""
    return [
        "--vars",
        json.dumps({"daily_test_new_day": new_day.isoformat()}),
        "--exclude",
        "resource_type:unit_test",
    ]


def build(
    lake: Lake,
    *,
    say: Say = _quiet,
    select: list[str] | None = None,
    daily_new_day: date | None = None,
) -> DbtOutcome:
    """Validates the raw files (quarantining bad ones), then `dbt build`; with daily_new_day,
    as the daily run does after delivering the days from then on (daily_build_args). Raw does
    not change meanwhile: the real-time service's landings and investigators' verdicts wait
    (python_jobs/lake/build_lock.py). Verdicts recorded while an earlier build ran land first,
    inside the lock, so this build reads them; those recorded during this one land after it."""
    with building(lake):
        _say_landed(say, land_pending_for_build(lake))
        outcome = _build(lake, say=say, select=select, daily_new_day=daily_new_day)
    _say_landed(say, land_pending(lake))
    return outcome


def _say_landed(say: Say, landed: list[str]) -> None:
    if landed:
        say(f"==> {len(landed)} investigator verdict(s) recorded during a build landed in raw")


def _build(
    lake: Lake, *, say: Say, select: list[str] | None, daily_new_day: date | None
) -> DbtOutcome:
    timer = StepTimer(say)
    report: ValidationReport = timer.run(
        "validating raw files", lambda: validate_lake(lake), lambda r: r.summary()
    )
    for item in report.quarantined:
        say(f"    quarantined {item.original}: {item.reason}")
    args = [
        "build",
        *(["--select", *select] if select else []),
        *(daily_build_args(daily_new_day) if daily_new_day else []),
    ]
    outcome = timer.run(
        "dbt build (seeds, snapshots, models, tests)",
        lambda: run_dbt(args, lake, quiet=True),
        lambda o: (
            f"{o.tests_passed} of {o.tests_total} tests passed"
            + (f", {o.tests_warned} warned (severity warn)" if o.tests_warned else "")
            + ("" if o.success else f", {len(o.failures)} failures")
        ),
    )
    # counted before require_success: a failing build's failures are the figures that matter
    scope = "daily" if daily_new_day else "select" if select else "full"
    emit_build(lake.root, outcome.statuses, scope=scope)
    return require_success(outcome)


def summarize_and_emit(lake: Lake) -> LakeSummary:
    """The lake summary, its figures emitted (job summary: rows per layer, rejections)."""
    summary = summarize(lake)
    emit_summary(lake.root, summary, target="duckdb")
    return summary


def build_docs(lake: Lake, *, say: Say = _quiet) -> Path:
    timer = StepTimer(say)
    timer.run(
        "dbt docs generate --static",
        lambda: require_success(run_dbt(["docs", "generate", "--static"], lake, quiet=True)),
        lambda _: "docs site written",
    )
    return target_dir() / "static_index.html"


def export(lake: Lake, *, say: Say = _quiet) -> list[ExportedTable]:
    return StepTimer(say).run(
        "exporting curated marts to Parquet",
        lambda: export_curated(lake),
        lambda tables: (
            f"{len(tables)} marts, {sum(t.rows for t in tables):,} rows -> {lake.curated}/"
        ),
    )


def append_days(lake: Lake, days: int, *, say: Say = _quiet) -> GenerationResult:
    """Generates the next `days` days of the daily feed onto an existing generated lake."""
    return StepTimer(say).run(
        f"generating the next {days} day(s) of the daily feed",
        lambda: generate(lake, GeneratorConfig(days=days), append=True, progress=say),
        describe_generation,
    )


def demo(lake: Lake, config: GeneratorConfig, *, say: Say = print) -> None:
    """The main job. On an empty lake: generate all but the last day, build, then deliver the
    last day as the daily feed and build again (incremental: only new partitions are read,
    and the customer snapshot records the day's changes). Then train the fraud model against
    its baselines, score the last day and build the alert marts from the scores; monitor the
    scored day and let the offline assistant write the day's report and answer two sample
    questions. On a lake the demo already made: deliver one more day and do the same."""
    timer = StepTimer(say)
    if has_generator_state(lake):
        say(f"{lake.root} already holds generated data: delivering one more day.")
        append_days(lake, 1, say=say)
    else:
        history = replace(config, days=max(config.days - 1, 1))
        timer.run(
            f"generating {history.days} days for {config.customers:,} customers into {lake.raw}",
            lambda: generate(lake, history, progress=say),
            describe_generation,
        )
        if config.days > 1:
            build(lake, say=say)
            append_days(lake, 1, say=say)
    build(lake, say=say)
    train_and_score(lake, say=say)
    export(lake, say=say)
    docs = build_docs(lake, say=say)
    assistant_showcase(lake, say=say)
    say(render(summarize_and_emit(lake), lake, docs=docs))
    say(
        "\nNext: `source .venv/bin/activate`, then `dbt build`, `dbt test -s fct_transactions`,"
        f" `dbt docs serve`, or `duckdb {lake.database}`."
    )
    say(
        f"Dashboard: `banklake dashboard --lake {lake.root}`, then open http://127.0.0.1:8501 "
        "(docs/dashboard.md)."
    )
    say(
        f"Real-time scoring: `banklake serve --lake {lake.root}`, then POST a transaction to "
        "http://127.0.0.1:8000/v1/transactions (the README has a curl example; docs/serving.md)."
    )


def train_and_score(lake: Lake, *, say: Say = _quiet) -> None:
    """Trains (champion/challenger), scores the last day, then rebuilds the marts that read
    the scores (fct_fraud_alerts, fct_model_performance_daily)."""
    from ml.jobs import demo_job  # imported late: xgboost and sklearn are slow to import

    demo_job(lake, say=say)
    build_scores_marts(lake, say=say)


def assistant_showcase(lake: Lake, *, say: Say = _quiet) -> None:
    """Monitoring of the scored day, then the offline assistant: the day's report and two
    sample questions (one pt-BR, one English)."""
    from ml.jobs import monitor_job
    from python_jobs.assistant.showcase import demo_assistant

    say("==> monitoring the scored day")
    monitor_job(lake, say=say)
    say("==> the assistant, offline: daily report and two sample questions")
    demo_assistant(lake, say=say)


def build_scores_marts(lake: Lake, *, say: Say = _quiet) -> DbtOutcome:
    return require_success(
        StepTimer(say).run(
            "dbt build of the marts that read the scores",
            lambda: run_dbt(["build", "--select", "stg_fraud_scores+"], lake, quiet=True),
            lambda o: f"{o.tests_passed} of {o.tests_total} tests passed",
        )
    )


def daily_run(lake: Lake, days: int = 1, *, say: Say = print) -> None:
    """The local daily pipeline: next day(s) of data, validate, incremental build, score the
    new days with the champion model (when there is one), alert marts, export."""
    if not has_generator_state(lake):
        raise RuntimeError(
            f"{lake.root} has no generated data to continue: run `banklake demo` or "
            "`banklake generate` first"
        )
    result = append_days(lake, days, say=say)
    build(lake, say=say, daily_new_day=result.first_day)
    score_new_days(lake, result.first_day, result.last_day, say=say)
    export(lake, say=say)
    say(render(summarize_and_emit(lake), lake))


def score_new_days(lake: Lake, first: date, last: date, *, say: Say = _quiet) -> None:
    from ml.artifacts import NoChampionError
    from ml.jobs import score_job

    day = first
    try:
        while day <= last:
            score_job(lake, day, say=say)
            day += timedelta(days=1)
    except NoChampionError as error:
        say(f"    not scored: {error}")
        return
    build_scores_marts(lake, say=say)


def describe_generation(result: GenerationResult) -> str:
    rows = result.rows
    text = (
        f"{result.first_day} to {result.last_day}: {rows.get('transactions', 0):,} transactions "
        f"({result.fraud_transactions:,} fraud), {rows.get('customers', 0):,} customer and "
        f"{rows.get('accounts', 0):,} account records, {rows.get('fraud_reports', 0):,} fraud "
        f"reports; {result.transactions_per_second:,.0f} transactions/s"
    )
    return "; ".join([text, *result.notes])
