"""`python -m python_jobs.observability.dbt_results target/run_results.json [scope]`: a dbt
build run by dbt itself (the daily state machine's Build step on AWS runs `dbt build --target
athena` in CodeBuild) emits its test tallies as the `banklake build` job does, read from
dbt's run_results.json through python_jobs/dbt_runs.py. Exit status 0 unless the file is
missing or not dbt's: the build's own status is the buildspec's to keep."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from python_jobs.dbt_runs import summarize
from python_jobs.observability.jobs import emit_build


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m python_jobs.observability.dbt_results RUN_RESULTS [SCOPE]")
        return 2
    path = Path(args[0])
    try:
        run_results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"{path}: no dbt run results to count ({error})", file=sys.stderr)
        return 1
    run = summarize(run_results, "dbt build")
    emit_build(None, run.statuses, scope=args[1] if len(args) > 1 else "full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
