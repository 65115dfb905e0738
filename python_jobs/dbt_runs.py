"""The last dbt runs' results, kept in the lake: what the dashboard's data-quality page shows.

dbt rewrites `target/run_results.json` at every invocation (the scores marts' build right after
the full build, `dbt docs generate`), and a failed build — the one worth looking at — is never
published. So after every run through python_jobs/dbt_runner.py its results are summarized into
`<lake>/_dbt_runs/<generated_at>-<invocation>.json`: the command, when, how long, the count per
status and every test with its status and failing rows (no compiled SQL, no data). The newest
`KEEP_RUNS` are kept.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_jobs.lake.layout import Lake

RUNS_DIR = "_dbt_runs"
KEEP_RUNS = 30
_TESTS = ("test", "unit_test")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class DbtRun:
    generated_at: str
    command: str
    elapsed_seconds: float
    statuses: dict[str, int]  # "model:success", "test:pass", "test:fail", ...
    tests: list[dict[str, Any]]  # name, kind, status, failures, message

    @property
    def tests_failed(self) -> int:
        return sum(1 for t in self.tests if t["status"] in {"fail", "error", "runtime error"})

    @property
    def tests_warned(self) -> int:
        return sum(1 for t in self.tests if t["status"] == "warn")

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "command": self.command,
            "elapsed_seconds": self.elapsed_seconds,
            "statuses": self.statuses,
            "tests": self.tests,
        }


def runs_dir(lake: Lake) -> Path:
    return lake.root / RUNS_DIR


def summarize(run_results: dict[str, Any], command: str) -> DbtRun:
    """The part of dbt's run_results.json the data-quality page shows."""
    statuses: Counter[str] = Counter()
    tests = []
    for result in run_results.get("results", []):
        unique_id = str(result.get("unique_id", ""))
        kind = unique_id.split(".")[0]
        status = str(result.get("status", "")).lower()
        statuses[f"{kind}:{status}"] += 1
        if kind in _TESTS:
            message = (result.get("message") or "").strip().splitlines()
            tests.append(
                {
                    "name": unique_id.split(".")[2] if unique_id.count(".") >= 2 else unique_id,
                    "kind": kind,
                    "status": status,
                    "failures": result.get("failures"),
                    # dbt's own one-liner ("Got 3 results, configured to fail if != 0")
                    "message": message[0][:200] if message else None,
                }
            )
    metadata = run_results.get("metadata", {})
    return DbtRun(
        generated_at=str(metadata.get("generated_at", "")),
        command=command,
        elapsed_seconds=float(run_results.get("elapsed_time") or 0.0),
        statuses=dict(statuses),
        tests=tests,
    )


def record_run(lake: Lake, run_results_file: Path, command: str) -> Path | None:
    """Keeps the summary of a run_results.json written by the run that just finished."""
    if not run_results_file.is_file():
        return None
    run_results = json.loads(run_results_file.read_text(encoding="utf-8"))
    run = summarize(run_results, command)
    folder = runs_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    invocation = run_results.get("metadata", {}).get("invocation_id", "")
    name = _SAFE.sub("-", f"{run.generated_at}-{invocation}")
    path = folder / f"{name}.json"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(run.to_dict(), indent=1), encoding="utf-8")
    tmp.rename(path)
    for old in sorted(folder.glob("*.json"))[:-KEEP_RUNS]:
        old.unlink(missing_ok=True)
    return path


def recent_runs(lake: Lake, count: int = 10) -> list[DbtRun]:
    """The newest `count` recorded runs, newest first."""
    runs = []
    for path in sorted(runs_dir(lake).glob("*.json"), reverse=True)[:count]:
        data = json.loads(path.read_text(encoding="utf-8"))
        runs.append(
            DbtRun(
                generated_at=data["generated_at"],
                command=data["command"],
                elapsed_seconds=float(data["elapsed_seconds"]),
                statuses=dict(data["statuses"]),
                tests=list(data["tests"]),
            )
        )
    return runs
