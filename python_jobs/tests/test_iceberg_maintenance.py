"""Iceberg maintenance (macros/athena_maintenance.sql) issues OPTIMIZE and VACUUM for exactly
the Iceberg tables this project has written, checked against a local moto server (its
Athena accepts the statements without running them; Glue says which tables exist)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from python_jobs.aws import athena_check as check
from python_jobs.dbt_runner import PROJECT_DIR

pytestmark = pytest.mark.dbt


def test_optimize_and_vacuum_every_registered_iceberg_table(tmp_path: Path) -> None:
    with check.moto_aws() as aws:
        env = check.clean_environment() | aws
        check.create_buckets(aws)
        check.queue_compile_time_answers(aws)
        manifest = check.dbt_compile(env, tmp_path, select="resource_type:model")
        registered = check.register_incremental_tables(manifest, aws)
        assert registered, "the project has incremental Iceberg models"

        done = subprocess.run(
            [
                check._dbt_executable(),
                "run-operation",
                "optimize_iceberg_tables",
                "--target",
                "athena",
                "--project-dir",
                str(PROJECT_DIR),
                "--profiles-dir",
                str(tmp_path / "profiles"),
                "--target-path",
                str(tmp_path / "target"),
                "--log-path",
                str(tmp_path / "logs"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for unique_id in registered:
        node = manifest["nodes"][unique_id]
        name = f"{node['schema']}.{node['alias']}"
        assert f"optimize {name} rewrite data using bin_pack" in done.stdout
        assert f"vacuum {name}" in done.stdout
    # tables that were never written are left alone
    assert done.stdout.count("optimize_iceberg_tables: optimize ") == len(registered)
