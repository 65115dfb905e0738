"""`--json`: what `summary`, `train`, `score`, `monitor` and `bench` print for a scheduler.

One JSON document on stdout, with the keys docs/operations.md (Machine-readable output)
lists: the same keys on every run, null where a value does not apply. While the command runs,
anything else written to stdout (a job's text, a library's, a child process's) goes to stderr,
and errors still exit nonzero with their message on stderr and nothing on stdout. The
documents are built here from the jobs' result objects, so a job's wording can change without
changing them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.generalization import MechanismResult
    from ml.monitor import MonitorReport
    from ml.sagemaker import SageMakerJob
    from ml.score import ScoreResult
    from ml.train import TrainOutcome
    from python_jobs.aws.athena_score import AthenaScoreResult
    from python_jobs.bench.run import BenchOutcome

# the test metrics reported per model (ml/metrics.py's Metrics has more: see the model card)
METRIC_KEYS = (
    "rows",
    "frauds",
    "average_precision",
    "roc_auc",
    "precision",
    "recall",
    "alerts_per_day",
    "precision_at_k",
)


class Document:
    """What a command hands back for --json; written once the command is done."""

    def __init__(self) -> None:
        self.value: Mapping[str, Any] | None = None

    def emit(self, document: Mapping[str, Any]) -> None:
        self.value = document


def write(document: Mapping[str, Any]) -> None:
    """The one document on stdout: dates and paths as strings, indented for a reader."""
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Python's stdout and file descriptor 1 (what child processes inherit) both point at
    stderr until the block ends, so that stdout carries the document alone."""
    sys.stdout.flush()
    try:
        saved: int | None = os.dup(1)
    except OSError:  # no descriptor 1 (a closed stdout): Python's level only
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def to_stderr(line: str) -> None:
    """What the jobs say while working, out of stdout's way."""
    print(line, file=sys.stderr)


def trained(outcome: TrainOutcome, backend: str) -> dict[str, Any]:
    decision = outcome.decision
    metadata = outcome.metadata
    return {
        "command": "train",
        "status": "trained",
        "backend": backend,
        "version": outcome.version,
        "model_dir": str(outcome.directory),
        "promoted": decision.promote,
        "champion": outcome.version if decision.promote else decision.champion,
        "previous_champion": decision.champion,
        "reason": decision.reason,
        "challenger_average_precision": decision.challenger_ap,
        "champion_average_precision": decision.champion_ap,
        "threshold": metadata["threshold"]["value"],
        "alert_budget_per_day": metadata["threshold"]["alert_budget_per_day"],
        "windows": metadata["windows"],
        "labels_as_of": metadata["data"].get("labels_as_of"),
        "metrics": {
            name: {key: metrics.get(key) for key in METRIC_KEYS}
            for name, metrics in metadata["metrics"].items()
        },
    }


def started(job: SageMakerJob) -> dict[str, Any]:
    """`train --backend sagemaker --no-wait`: the job runs on; collect it later."""
    return {
        "command": "train",
        "status": "started",
        "backend": "sagemaker",
        "job_name": job.name,
        "job_arn": job.arn,
        "model_uri": job.model_uri,
        "collect": f"banklake train --collect {job.name}",
    }


def scored(result: ScoreResult | None, day: Any, target: str) -> dict[str, Any]:
    """`score`: None when the day's scores were already there (athena: already on S3)."""
    return {
        "command": "score",
        "target": target,
        "day": str(day),
        "scored": result is not None,
        "rows": result.rows if result else None,
        "alerts": result.alerts if result else None,
        "model_version": result.model_version if result else None,
        "threshold": result.threshold if result else None,
        "scores_file": str(result.path) if result else None,
        "explanation": (result.explanation or None) if result else None,
        "reasons": result.reasons if result else None,
        "reasons_method": result.reasons_method if result else None,
    }


def scored_on_athena(result: AthenaScoreResult) -> dict[str, Any]:
    return {
        **scored(result.score, result.day, "athena"),
        "features_table": result.table,
        "uploaded": result.uploaded,
        "bytes_scanned": result.query.bytes_scanned if result.query else 0,
        "cost_usd": result.query.cost_usd if result.query else 0.0,
    }


def monitored(report: MonitorReport, report_file: Path) -> dict[str, Any]:
    return {
        "command": "monitor",
        "day": report.day.isoformat(),
        "model_version": report.model_version,
        "verdict": report.verdict,
        "findings": list(report.findings),
        "rows": report.rows,
        "alerts": report.alerts,
        "alert_rate": report.alert_rate,
        "expected_alert_rate": report.expected_alert_rate,
        "score_psi": report.score_psi,
        "feature_psi": dict(report.feature_psi),
        "warming_up": sorted(report.warming_up),
        "realized_mature": report.realized.get("mature"),
        "report_file": str(report_file),
    }


def benched_daily(result: dict[str, Any], markdown: Path) -> dict[str, Any]:
    keys = ("history_days", "full_build_seconds", "daily_run_seconds", "daily_share_of_full")
    return {
        "command": "bench daily",
        "daily_volume": result["daily_volume"],
        "results_json": str(markdown.with_suffix(".json")),
        "results_markdown": str(markdown),
        "runs": [{key: run[key] for key in keys} for run in result["runs"]],
        "verdict": result["verdict"],
    }


def benched(outcome: BenchOutcome) -> dict[str, Any]:
    result = outcome.result
    check = result.get("cross_check")
    return {
        "command": "bench",
        "transactions": result.get("transactions"),
        "days": result.get("days"),
        "results_json": str(outcome.json_path),
        "results_markdown": str(outcome.markdown_path),
        "stages": [
            {key: stage.get(key) for key in ("name", "seconds", "rows", "peak_rss_bytes")}
            for stage in result.get("stages", [])
        ],
        "targets": list(result.get("targets", [])),
        "cross_check_agrees": check["agrees"] if check is not None else None,
    }


def mechanisms(results: Sequence[MechanismResult], record: Path) -> dict[str, Any]:
    return {
        "command": "mechanisms",
        "record": str(record),
        "lakes": len(results),
        "meet_the_bar": sum(not r.failures() for r in results),
        "results": [r.to_dict() for r in results],
    }
