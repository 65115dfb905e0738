"""`banklake bench daily`: does the daily run's cost grow with the day or with the history?

For each history length H (days), on a fresh lake: H days at the daily volume, their full
build (processed, curated and the features: where a daily run starts from), one more day
appended, then the daily run (validation and the incremental dbt build, as `banklake build`
runs it after a delivery) timed. Same daily volume and seed for every H, and the same
calendar day appended (the history starts H days before it: weekdays and pay days shape a
day's volume), so the new day is alike; only the history differs. The verdict compares the
daily run at the longest history with the shortest: flat (within FLAT_TOLERANCE) means the
cost follows the day.

Scoring the new day is left out: its cost depends on the day and the model, not the
history, and `banklake bench` measures it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from python_jobs.bench import report, stages
from python_jobs.bench.config import TRANSACTIONS_PER_CUSTOMER_DAY
from python_jobs.bench.machine import machine_facts
from python_jobs.bench.measure import StageResult, Stopwatch
from python_jobs.generate import GeneratorConfig
from python_jobs.lake.layout import Lake

Say = Callable[[str], None]

FLAT_TOLERANCE = 1.2  # the longest history's daily run at most 20% above the shortest's
DAILY_TARGET = 0.20  # the daily run's share of the full build it follows (issue 20)
HISTORY, FULL, APPEND, DAILY = "generate history", "full build", "append one day", "daily run"


@dataclass(frozen=True)
class DailyBenchConfig:
    daily_volume: int = 330_000  # transactions a day (the 10M, 30-day bench's day)
    history_days: tuple[int, ...] = (10, 20, 30)
    seed: int = 42
    new_day: date = date(2026, 11, 18)  # the day appended to every history (a Wednesday)
    out: Path = Path("bench/results")
    work: Path | None = None  # lakes, dbt targets and logs; None: a temporary folder

    def __post_init__(self) -> None:
        if self.daily_volume < 1_000:
            raise ValueError("--daily-volume must be at least 1,000 transactions")
        if not self.history_days:
            raise ValueError("--history-days needs at least one length")
        if min(self.history_days) < 4:
            raise ValueError("--history-days must each be at least 4 (the generator's minimum)")
        if len(set(self.history_days)) != len(self.history_days):
            raise ValueError(f"--history-days repeats a length: {self.history_days}")

    @property
    def customers(self) -> int:
        return max(1, round(self.daily_volume / TRANSACTIONS_PER_CUSTOMER_DAY))


@dataclass(frozen=True)
class HistoryRun:
    """One history length's four stages."""

    history_days: int
    stages: list[StageResult]

    def to_dict(self) -> dict[str, Any]:
        stages = {s.name: s.to_dict() for s in self.stages}  # as recorded (rounded)
        full, daily = stages[FULL], stages[DAILY]
        return {
            "history_days": self.history_days,
            "history_transactions": stages[HISTORY]["rows"],
            "day_transactions": daily["rows"],
            "full_build_seconds": full["seconds"],
            "daily_run_seconds": daily["seconds"],
            "daily_share_of_full": daily["seconds"] / full["seconds"] if full["seconds"] else 0.0,
            "daily_ml_features_seconds": daily["detail"].get("ml_features_seconds", 0.0),
            "daily_peak_rss_bytes": daily["peak_rss_bytes"],
            "daily_spill_bytes": daily["spill_bytes"],
            "stages": list(stages.values()),
        }


def run_daily_bench(config: DailyBenchConfig, *, say: Say = print) -> tuple[dict[str, Any], Path]:
    """Runs every history length (shortest first) and writes daily-<time>.json and .md."""
    started_at = datetime.now(UTC).replace(microsecond=0)
    work = config.work or Path(tempfile.mkdtemp(prefix="banklake-bench-daily-"))
    result: dict[str, Any] = {
        "started_at": started_at.isoformat().replace("+00:00", "Z"),
        "daily_volume": config.daily_volume,
        "customers": config.customers,
        "seed": config.seed,
        "new_day": config.new_day.isoformat(),
        "machine": machine_facts().to_dict(),
        "runs": [],
    }
    try:
        for days in sorted(config.history_days):
            run = _history_run(config, work / f"history-{days}d", days, say)
            result["runs"].append(run.to_dict())
    finally:
        if config.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["verdict"] = verdict(result["runs"])
    stem = f"daily-{report.record_stem(result)}"
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    markdown = config.out / f"{stem}.md"
    markdown.write_text(render_markdown(result))
    say(markdown.read_text())
    return result, markdown


def _history_run(config: DailyBenchConfig, folder: Path, days: int, say: Say) -> HistoryRun:
    ws = stages.Workspace(Lake(folder / "lake"), folder / "target", folder / "logs")
    ws.lake.root.mkdir(parents=True)
    watch = Stopwatch(ws.lake.root, [ws.lake.root / "banklake.duckdb.tmp", Path(".tmp")], say)
    say(f"bench daily: {days} days of history at {config.daily_volume:,} a day -> {ws.lake.root}")
    generator = GeneratorConfig(
        seed=config.seed,
        start_date=config.new_day - timedelta(days=days),
        days=days,
        customers=config.customers,
    )
    watch.run(
        HISTORY,
        partial(stages.generation, ws, generator),
        lambda g: g.rows["transactions"],
        isolated=True,
    )
    watch.run(
        FULL,
        partial(stages.dbt_build, ws),
        lambda _: stages.count(ws, "select count(*) from curated.ml_features"),
        lambda b: b.to_detail(),
        isolated=True,
    )
    appended = watch.run(
        APPEND,
        partial(stages.append_day, ws),
        lambda g: g.rows["transactions"],
        lambda g: {"day": g.last_day.isoformat()},
        isolated=True,
    )
    watch.run(
        DAILY,
        partial(stages.dbt_build, ws, daily_new_day=appended.first_day),
        lambda _: stages.raw_transaction_rows(ws, appended.last_day),
        lambda b: {**b.to_detail(), "ml_features_seconds": b.node_seconds.get("ml_features", 0.0)},
        isolated=True,
    )
    return HistoryRun(days, list(watch.stages))


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth of the daily run from the shortest history to the longest, and whether every
    daily run stayed under DAILY_TARGET of its full build."""
    shortest, longest = runs[0], runs[-1]
    growth = longest["daily_run_seconds"] / shortest["daily_run_seconds"]
    return {
        "growth": growth,
        "flat": len(runs) > 1 and growth <= FLAT_TOLERANCE,
        "worst_daily_share": max(r["daily_share_of_full"] for r in runs),
        "daily_share_met": all(r["daily_share_of_full"] < DAILY_TARGET for r in runs),
    }


def render_markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        f"# banklake bench daily, {result['started_at']}",
        "",
        f"The daily run on lakes of different history, {result['daily_volume']:,} transactions a "
        f"day ({result['customers']:,} customers, seed {result['seed']}; the day appended "
        f"to every history: {result['new_day']}). Machine: "
        f"{machine['cpu_model']}, {machine['usable_cores']} usable cores, "
        f"{machine['ram_bytes'] / 2**30:.2f} GiB RAM; load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_at_start'])}.",
        "",
        "| history days | history transactions | full build s | new day transactions | "
        "daily run s | of the full build | ml_features s | daily peak RSS | daily spill |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['history_days']} | {r['history_transactions']:,} | "
            f"{r['full_build_seconds']:.1f} | {r['day_transactions']:,} | "
            f"{r['daily_run_seconds']:.1f} | {r['daily_share_of_full']:.1%} | "
            f"{r['daily_ml_features_seconds']:.1f} | {r['daily_peak_rss_bytes'] / 2**30:.2f} GiB | "
            f"{r['daily_spill_bytes'] / 1e6:,.1f} MB |"
        )
    v = result["verdict"]
    flat = "flat" if v["flat"] else "**grows with the history**"
    share = "met" if v["daily_share_met"] else "**missed**"
    lines += [
        "",
        f"Daily run, longest history against shortest: x{v['growth']:.2f} ({flat}; flat is at "
        f"most x{FLAT_TOLERANCE}). Daily run under {DAILY_TARGET:.0%} of its full build: {share} "
        f"(worst {v['worst_daily_share']:.1%}).",
        "",
    ]
    return "\n".join(lines)
