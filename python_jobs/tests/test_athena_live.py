"""The Athena path against a real AWS account: what no offline test can show (Athena's own
parser and planner, partition projection finding real files, Iceberg writes, merge, costs).

Skipped unless BANKLAKE_ATHENA_LIVE=1, the variables of the README's "Run on AWS" section are
set, and boto3 finds credentials. Expects the raw feeds already uploaded to BANKLAKE_S3_RAW_DIR
(`banklake ingest --to ...` after `banklake generate`). Costs cents: the synthetic lake is
small and every query is billed at least 10 MB.

    BANKLAKE_ATHENA_LIVE=1 .venv/bin/pytest -m athena -p no:randomly
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from python_jobs.aws.athena import (
    AthenaConfig,
    AthenaConfigError,
    AthenaQueryFailed,
    AthenaRunner,
    make_client,
)


def _skip_reason() -> str | None:
    if os.environ.get("BANKLAKE_ATHENA_LIVE") != "1":
        return "live Athena tests: set BANKLAKE_ATHENA_LIVE=1 (and the README's AWS variables)"
    try:
        config = AthenaConfig.from_env(need_raw_location=True)
    except AthenaConfigError as error:
        return f"live Athena tests: {error}"
    import boto3

    session = boto3.Session(profile_name=config.profile, region_name=config.region)
    if session.get_credentials() is None:
        return "live Athena tests: boto3 finds no AWS credentials"
    return None


_REASON = _skip_reason()
pytestmark = [pytest.mark.athena, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]


@pytest.fixture(scope="module")
def config() -> AthenaConfig:
    return AthenaConfig.from_env(need_raw_location=True)


@pytest.fixture(scope="module")
def runner(config: AthenaConfig) -> AthenaRunner:
    return AthenaRunner(make_client(config), config)


@pytest.fixture(scope="module")
def registered(config: AthenaConfig, runner: AthenaRunner) -> AthenaConfig:
    from python_jobs.aws.athena_jobs import register

    register(config, runner, say=print)
    return config


def test_register_creates_projected_raw_tables_that_find_the_files(registered, runner) -> None:
    import boto3

    glue = boto3.Session(profile_name=registered.profile, region_name=registered.region).client(
        "glue"
    )
    for feed in ("transactions", "customers", "accounts", "fraud_reports"):
        table = glue.get_table(DatabaseName=registered.raw_database, Name=feed)["Table"]
        assert table["Parameters"]["projection.enabled"] == "true"
        assert [k["Name"] for k in table["PartitionKeys"]] == ["year", "month", "day"]
        assert (
            glue.get_partitions(DatabaseName=registered.raw_database, TableName=feed)["Partitions"]
            == []
        )  # projection, not catalog partitions
    result = runner.run(
        f'select count(*) as n, count(distinct "day") as days '
        f'from "{registered.raw_database}"."transactions"',
    )
    assert int(result.rows[0][0]) > 0, "no raw transactions found: upload the lake first"
    assert result.bytes_scanned > 0 and result.cost_usd >= 10 * 2**20 / 2**40 * 5


def test_a_failing_query_reports_athenas_reason(registered, runner) -> None:
    with pytest.raises(AthenaQueryFailed, match=r"COLUMN_NOT_FOUND|cannot be resolved"):
        runner.run(f'select no_such_column from "{registered.raw_database}"."transactions"')


def test_dbt_builds_on_athena_twice_and_an_analysis_reports_its_cost(
    registered, runner, tmp_path: Path, capsys
) -> None:
    """Full build (Iceberg CTAS, contracts, every data test), then an incremental run (merge),
    then `banklake athena query`."""
    from dbt.cli.main import dbtRunner

    from python_jobs.aws.athena_jobs import query
    from python_jobs.dbt_runner import PROJECT_DIR, ensure_profile

    ensure_profile(PROJECT_DIR)
    for attempt in ("first build", "incremental build"):
        result = dbtRunner().invoke(
            [
                "build",
                "--target",
                "athena",
                "--project-dir",
                str(PROJECT_DIR),
                "--profiles-dir",
                str(PROJECT_DIR),
                "--target-path",
                str(tmp_path / "target"),
                "--log-path",
                str(tmp_path / "logs"),
            ]
        )
        assert result.success, f"{attempt}: {result.exception}"
    outcome = query(registered, runner, Path("analyses/daily_kpis.sql"), max_rows=20)
    assert outcome.rows and "cost $" in capsys.readouterr().out
