"""Runs dbt in-process against a given lake, and tallies what it did.

The CLI and the tests go through here so that the lake folder, the profile and the project
are always the ones the user meant: BANKLAKE_LAKE_DIR is what the dbt profile and sources
read, and the repository root is both the dbt project and its profiles directory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from python_jobs.environment import variables_set
from python_jobs.lake.layout import LAKE_DIR_ENV, Lake

PROJECT_DIR = Path(__file__).resolve().parents[1]
# the commands whose results are kept in the lake's run history (the data-quality page)
RECORDED_COMMANDS = frozenset({"build", "test", "run", "seed", "snapshot"})
TARGET_PATH_ENV = "DBT_TARGET_PATH"  # dbt's own variable for --target-path


def target_dir(project_dir: Path = PROJECT_DIR) -> Path:
    """Where dbt writes when no --target-path is given: $DBT_TARGET_PATH (relative to the
    project, as dbt reads it), else the project's target/."""
    configured = os.environ.get(TARGET_PATH_ENV)
    return project_dir / configured if configured else project_dir / "target"


class DbtFailed(RuntimeError):
    """dbt finished with errors or failing tests."""


@dataclass
class DbtOutcome:
    command: str
    success: bool
    statuses: Counter[str] = field(default_factory=Counter)  # "model:success", "test:pass", ...
    failures: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> "pass", "error", ...

    def count(self, resource_type: str, *statuses: str) -> int:
        return sum(self.statuses[f"{resource_type}:{status}"] for status in statuses)

    @property
    def tests_passed(self) -> int:
        return self.count("test", "pass") + self.count("unit_test", "pass")

    @property
    def tests_warned(self) -> int:
        return self.count("test", "warn")

    @property
    def tests_total(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.split(":")[0] in _TEST_TYPES)


_TEST_TYPES = {"test", "unit_test"}


def ensure_profile(project_dir: Path = PROJECT_DIR) -> Path:
    """profiles.yml is created from the committed example on first use (it is git-ignored)."""
    profile = project_dir / "profiles.yml"
    if not profile.exists():
        shutil.copyfile(project_dir / "profiles.yml.example", profile)
    return profile


def run_dbt(
    args: Sequence[str],
    lake: Lake,
    *,
    project_dir: Path = PROJECT_DIR,
    target_path: Path | None = None,
    quiet: bool = False,
) -> DbtOutcome:
    """Runs `dbt <args>` for `lake`; never raises for failing nodes (see DbtOutcome)."""
    from dbt.cli.main import dbtRunner  # imported late: dbt is slow to import

    ensure_profile(project_dir)
    lake.root.mkdir(parents=True, exist_ok=True)
    cli_args = [*args, "--project-dir", str(project_dir)]
    if target_path is not None:
        cli_args += ["--target-path", str(target_path)]
    if quiet:
        cli_args = ["--quiet", *cli_args]
    started = time.time()
    with variables_set(
        {LAKE_DIR_ENV: str(lake.root.resolve()), "DBT_PROFILES_DIR": str(project_dir)}
    ):
        try:
            result = dbtRunner().invoke(cli_args)
        finally:
            _release_duckdb_file()
    outcome = DbtOutcome(command=" ".join(args), success=bool(result.success))
    if args and args[0] in RECORDED_COMMANDS:
        _record(lake, (target_path or target_dir(project_dir)) / "run_results.json", started, args)
    if result.exception is not None:
        outcome.failures.append(f"dbt {args[0]} could not run: {result.exception}")
        return outcome
    for node_result in getattr(result.result, "results", None) or []:
        node = node_result.node
        status = str(node_result.status).split(".")[-1].lower()
        outcome.statuses[f"{node.resource_type}:{status}"] += 1
        outcome.nodes[node.name] = status
        if status in {"error", "fail", "runtimeerr"}:
            message = (node_result.message or "").strip().splitlines()
            outcome.failures.append(f"{node.name}: {message[0] if message else status}")
    return outcome


def _record(lake: Lake, run_results: Path, started: float, args: Sequence[str]) -> None:
    """The run's results into the lake's run history (python_jobs/dbt_runs.py), when this
    run wrote them (a run that could not start leaves the previous file)."""
    from python_jobs.dbt_runs import record_run

    if run_results.is_file() and run_results.stat().st_mtime >= started - 1:
        record_run(lake, run_results, "dbt " + " ".join(args))


def _release_duckdb_file() -> None:
    """dbt-duckdb keeps its database open after an in-process run; DuckDB then refuses any
    other connection to the file from this process (export, summary, tests). Close it."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a locked dependency
        return
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def require_success(outcome: DbtOutcome) -> DbtOutcome:
    if not outcome.success:
        listed = "\n  ".join(outcome.failures[:20]) or "see the dbt log above"
        raise DbtFailed(
            f"dbt {outcome.command} failed:\n  {listed}\n"
            "Inspect target/run_results.json or rerun the failing node with "
            "`dbt build -s <name>` after `source .venv/bin/activate`."
        )
    return outcome
