"""pytest, for every test folder: each xdist worker gets its own dbt target and log folders.

`make test` runs the suite on every core (pytest-xdist, one test file per worker at a time).
dbt writes its manifest, partial-parse cache and run results into the project's target/
unless told otherwise; two workers building at once must not share those files. Set before
any fixture runs dbt; python_jobs/dbt_runner.py's target_dir() reads the same variable.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        os.environ["DBT_TARGET_PATH"] = f"target/pytest-{worker}"
        os.environ["DBT_LOG_PATH"] = f"logs/pytest-{worker}"
