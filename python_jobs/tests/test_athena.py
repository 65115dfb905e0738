"""Athena runner, register and query against botocore's Stubber on a real Athena client: the
requests must match the service model, and the responses drive the backoff loop. No network:
the Stubber answers every call, and fails the test on any call it was not told about."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import ANY, Stubber

from python_jobs.aws import athena_jobs
from python_jobs.aws.athena import (
    POLLING,
    AthenaConfig,
    AthenaConfigError,
    AthenaQueryFailed,
    AthenaRunner,
    billed_bytes,
    query_cost_usd,
)
from python_jobs.cli import main
from python_jobs.lake.schemas import FEEDS

MB = 2**20
ENV = {
    "AWS_REGION": "sa-east-1",
    "BANKLAKE_ATHENA_WORKGROUP": "banklake",
    "BANKLAKE_ATHENA_STAGING_DIR": "s3://results/athena/",
    "BANKLAKE_S3_RAW_DIR": "s3://lake/raw/",
}


class FakeClock:
    """sleep() advances the clock: the backoff is checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Iterator[tuple[object, Stubber]]:
    athena = boto3.client(
        "athena",
        region_name="sa-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(athena) as stubber:
        yield athena, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def config() -> AthenaConfig:
    return AthenaConfig.from_env(ENV, need_raw_location=True)


def runner_for(athena: object, config: AthenaConfig, clock: FakeClock, **backoff) -> AthenaRunner:
    polling = replace(POLLING, **backoff)  # Athena's own polling, but for what a test changes
    return AthenaRunner(athena, config, backoff=polling, sleep=clock.sleep, clock=clock)


def execution(query_id: str, state: str, **extra) -> dict:
    status = {"State": state, **extra.pop("status", {})}
    return {"QueryExecution": {"QueryExecutionId": query_id, "Status": status, **extra}}


def expect_start(stubber: Stubber, query_id: str, sql: object = ANY) -> None:
    stubber.add_response(
        "start_query_execution",
        {"QueryExecutionId": query_id},
        {
            "QueryString": sql,
            "WorkGroup": "banklake",
            "QueryExecutionContext": {"Catalog": "AwsDataCatalog"},
            "ResultConfiguration": {"OutputLocation": "s3://results/athena/"},
        },
    )


def test_config_comes_from_the_environment_with_the_profiles_defaults() -> None:
    config = AthenaConfig.from_env(ENV, need_raw_location=True)
    assert (config.region, config.work_group) == ("sa-east-1", "banklake")
    assert config.schema == "banklake"
    assert config.raw_database == "banklake_raw"  # the dbt source's default
    assert config.raw_location == "s3://lake/raw/"
    assert config.scores_database == "banklake_processed_files"
    assert config.profile is None
    other = AthenaConfig.from_env(
        {**ENV, "BANKLAKE_ATHENA_SCHEMA": "dev", "BANKLAKE_AWS_PROFILE": "bank"}
    )
    assert (other.raw_database, other.profile) == ("dev_raw", "bank")
    assert other.scores_database == "dev_processed_files"  # environments never share it


def test_missing_configuration_is_listed_all_at_once() -> None:
    with pytest.raises(AthenaConfigError) as raised:
        AthenaConfig.from_env({}, need_raw_location=True)
    message = str(raised.value)
    for name in (
        "BANKLAKE_ATHENA_STAGING_DIR",
        "BANKLAKE_ATHENA_WORKGROUP",
        "BANKLAKE_S3_RAW_DIR",
        "AWS_REGION",
    ):
        assert name in message
    assert "BANKLAKE_S3_RAW_DIR" not in str(_error(lambda: AthenaConfig.from_env({})))
    with pytest.raises(AthenaConfigError, match="s3://"):
        AthenaConfig.from_env({**ENV, "BANKLAKE_ATHENA_STAGING_DIR": "/tmp/results"})


def _error(call) -> Exception:
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("no error")


def test_cost_is_five_dollars_a_terabyte_with_a_ten_megabyte_minimum() -> None:
    assert billed_bytes(0) == 10 * MB
    assert billed_bytes(10 * MB + 1) == 11 * MB  # rounded up to the next MB
    assert query_cost_usd(0) == pytest.approx(10 * MB / 2**40 * 5)
    assert query_cost_usd(2**40) == pytest.approx(5.0)
    assert query_cost_usd(3 * MB) == query_cost_usd(10 * MB)


def test_a_query_is_started_in_the_work_group_and_polled_with_exponential_backoff(
    client, config
) -> None:
    athena, stubber = client
    clock = FakeClock()
    expect_start(stubber, "q-1", "select 1")
    for state in ("QUEUED", "RUNNING", "RUNNING", "RUNNING"):
        stubber.add_response(
            "get_query_execution", execution("q-1", state), {"QueryExecutionId": "q-1"}
        )
    stubber.add_response(
        "get_query_execution",
        execution(
            "q-1",
            "SUCCEEDED",
            Statistics={"DataScannedInBytes": 123 * MB, "EngineExecutionTimeInMillis": 2500},
        ),
        {"QueryExecutionId": "q-1"},
    )
    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": [{"Name": "n", "Type": "integer"}]},
                "Rows": [{"Data": [{"VarCharValue": "n"}]}, {"Data": [{"VarCharValue": "1"}]}],
            }
        },
        {"QueryExecutionId": "q-1", "MaxResults": 1000},
    )
    result = runner_for(athena, config, clock, initial=0.5, maximum=2.0).run("select 1")
    assert clock.sleeps == [0.5, 1.0, 2.0, 2.0]  # doubles, then capped
    assert (result.columns, result.rows) == (["n"], [("1",)])
    assert result.bytes_scanned == 123 * MB and result.engine_ms == 2500
    assert result.cost_usd == pytest.approx(123 * MB / 2**40 * 5)


def test_a_failed_query_raises_with_athenas_reason(client, config) -> None:
    athena, stubber = client
    clock = FakeClock()
    expect_start(stubber, "q-2")
    stubber.add_response(
        "get_query_execution", execution("q-2", "RUNNING"), {"QueryExecutionId": "q-2"}
    )
    stubber.add_response(
        "get_query_execution",
        execution(
            "q-2",
            "FAILED",
            status={
                "StateChangeReason": "COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved",
                "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006, "ErrorMessage": "bad"},
            },
        ),
        {"QueryExecutionId": "q-2"},
    )
    with pytest.raises(AthenaQueryFailed) as raised:
        runner_for(athena, config, clock).run("select x")
    assert raised.value.state == "FAILED"
    assert "COLUMN_NOT_FOUND" in str(raised.value) and "(bad)" in str(raised.value)
    assert clock.sleeps == [0.5]


def test_a_throttled_poll_is_only_a_longer_wait(client, config) -> None:
    athena, stubber = client
    clock = FakeClock()
    expect_start(stubber, "q-3")
    stubber.add_client_error("get_query_execution", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_response(
        "get_query_execution", execution("q-3", "SUCCEEDED"), {"QueryExecutionId": "q-3"}
    )
    result = runner_for(athena, config, clock).run("create database x", max_rows=None)
    assert clock.sleeps == [0.5] and result.rows == []


def test_other_errors_while_polling_are_not_swallowed(client, config) -> None:
    athena, stubber = client
    expect_start(stubber, "q-4")
    stubber.add_client_error("get_query_execution", "InvalidRequestException", "no such query", 400)
    with pytest.raises(Exception, match="no such query"):
        runner_for(athena, config, FakeClock()).run("select 1")


def test_a_query_that_outlives_the_timeout_is_stopped(client, config) -> None:
    athena, stubber = client
    clock = FakeClock()
    expect_start(stubber, "q-5")
    for _ in range(3):
        stubber.add_response(
            "get_query_execution", execution("q-5", "RUNNING"), {"QueryExecutionId": "q-5"}
        )
    stubber.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-5"})
    with pytest.raises(AthenaQueryFailed, match="TIMED OUT"):
        runner_for(athena, config, clock, initial=1.0, maximum=1.0, timeout=2.5).run("select 1")
    assert clock.sleeps == [1.0, 1.0]


def test_results_are_read_page_by_page_up_to_max_rows(client, config) -> None:
    athena, stubber = client
    expect_start(stubber, "q-6")
    stubber.add_response(
        "get_query_execution", execution("q-6", "SUCCEEDED"), {"QueryExecutionId": "q-6"}
    )
    header = {"Data": [{"VarCharValue": "day"}, {"VarCharValue": "n"}]}
    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "ResultSetMetadata": {
                    "ColumnInfo": [{"Name": "day", "Type": "date"}, {"Name": "n", "Type": "bigint"}]
                },
                "Rows": [header, {"Data": [{"VarCharValue": "2026-10-01"}, {}]}],
            },
            "NextToken": "page-2",
        },
        {"QueryExecutionId": "q-6", "MaxResults": 1000},
    )
    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [
                    {"Data": [{"VarCharValue": "2026-10-02"}, {"VarCharValue": "7"}]},
                    {"Data": [{"VarCharValue": "2026-10-03"}, {"VarCharValue": "9"}]},
                ]
            },
            "NextToken": "page-3",
        },
        {"QueryExecutionId": "q-6", "MaxResults": 1000, "NextToken": "page-2"},
    )
    result = runner_for(athena, config, FakeClock()).run("select ...", max_rows=2)
    assert result.columns == ["day", "n"] and result.types == ["date", "bigint"]
    assert result.rows == [("2026-10-01", None), ("2026-10-02", "7")]
    assert result.truncated
    table = athena_jobs.format_rows(result)
    assert table.splitlines()[0].split() == ["day", "n"] and "null" in table


def test_the_pager_reads_every_page_and_keeps_a_first_row_that_is_not_the_header(
    client, config
) -> None:
    """The one pager (AthenaRunner.fetch) that `athena query`, the summary, the scorer and
    the assistant's warehouse read through: NextToken until there is none, exactly max_rows
    is not truncated, and a DDL-like result whose first row is data (not the header) keeps
    it."""
    athena, stubber = client
    info = [{"Name": "n", "Type": "integer"}, {"Name": "label", "Type": "varchar"}]
    Page = tuple[list[list[str | None]], list[dict[str, str]] | None, str | None]
    pages: list[Page] = [
        ([["n", "label"], ["1", "a"]], info, "t-2"),
        ([["2", "b"]], None, "t-3"),
        ([["3", None]], None, None),
    ]
    for number, (page_rows, columns, token) in enumerate(pages, start=1):
        result_set: dict = {
            "Rows": [{"Data": [{"VarCharValue": v} if v else {} for v in row]} for row in page_rows]
        }
        if columns:
            result_set["ResultSetMetadata"] = {"ColumnInfo": columns}
        response: dict = {"ResultSet": result_set, **({"NextToken": token} if token else {})}
        expected = {"QueryExecutionId": "q-p", "MaxResults": 1000}
        if number > 1:
            expected["NextToken"] = f"t-{number}"
        stubber.add_response("get_query_results", response, expected)
    rows = runner_for(athena, config, FakeClock()).fetch("q-p", max_rows=3)
    assert (rows.columns, rows.types) == (["n", "label"], ["integer", "varchar"])
    assert rows.rows == [("1", "a"), ("2", "b"), ("3", None)] and not rows.truncated

    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": [{"Name": "x", "Type": "varchar"}]},
                "Rows": [{"Data": [{"VarCharValue": "not the header"}]}],
            }
        },
        {"QueryExecutionId": "q-d", "MaxResults": 1000},
    )
    ddl = runner_for(athena, config, FakeClock()).fetch("q-d", max_rows=10)
    assert ddl.rows == [("not the header",)] and not ddl.truncated


def test_register_creates_databases_then_replaces_each_raw_table_and_the_scores_table(
    client, config, monkeypatch
):
    athena, stubber = client
    manifest = SimpleNamespace(
        nodes={
            "model.a": SimpleNamespace(resource_type="model", schema="banklake_processed"),
            "model.b": SimpleNamespace(resource_type="model", schema="banklake_curated"),
            "seed.c": SimpleNamespace(resource_type="seed", schema="banklake_reference"),
            "test.d": SimpleNamespace(resource_type="test", schema="banklake_dbt_test__audit"),
        }
    )
    monkeypatch.setattr(athena_jobs, "_invoke_dbt", lambda args, target_path: manifest)
    statements: list[str] = []

    class Recorder:
        def __eq__(self, sql: object) -> bool:  # Stubber compares expected == actual
            statements.append(str(sql))
            return True

    databases = [
        "banklake_raw",
        "banklake_processed_files",
        "banklake_curated",
        "banklake_processed",
        "banklake_reference",
    ]
    for number in range(len(databases) + 2 * (len(FEEDS) + 1)):
        expect_start(stubber, f"ddl-{number}", Recorder())
        stubber.add_response(
            "get_query_execution",
            execution(f"ddl-{number}", "SUCCEEDED"),
            {"QueryExecutionId": f"ddl-{number}"},
        )
    said: list[str] = []
    report = athena_jobs.register(config, runner_for(athena, config, FakeClock()), said.append)
    assert report.databases == databases
    assert report.tables == [
        *(f"banklake_raw.{name}" for name in FEEDS),
        "banklake_processed_files.fraud_scores",
    ]
    creates = [s for s in statements if s.startswith("CREATE DATABASE")]
    assert [s.split("`")[1] for s in creates] == databases
    tables = statements[len(databases) :]
    pairs = list(zip(tables[::2], tables[1::2], strict=True))
    for name, (drop, create) in zip(FEEDS, pairs[:-1], strict=True):
        assert drop == f"DROP TABLE IF EXISTS `banklake_raw`.`{name}`"
        assert create.startswith(f"CREATE EXTERNAL TABLE `banklake_raw`.`{name}`")
        assert f"LOCATION 's3://lake/raw/{name}/'" in create
    drop, create = pairs[-1]
    assert drop == "DROP TABLE IF EXISTS `banklake_processed_files`.`fraud_scores`"
    assert create.startswith("CREATE EXTERNAL TABLE `banklake_processed_files`.`fraud_scores`")
    assert "LOCATION 's3://lake/processed/fraud_scores/'" in create  # beside raw/
    assert len(said) == len(databases) + len(FEEDS) + 1


def test_register_refuses_a_raw_location_the_scores_cannot_be_placed_from(monkeypatch):
    """Before dbt parses anything and before any DDL: nothing half-registered."""
    config = AthenaConfig.from_env({**ENV, "BANKLAKE_S3_RAW_DIR": "s3://lake/landing/"})
    monkeypatch.setattr(athena_jobs, "_invoke_dbt", lambda *a: pytest.fail("dbt ran"))
    with pytest.raises(ValueError, match="raw/ prefix"):
        athena_jobs.register(config, runner=None, say=lambda _: None)  # type: ignore[arg-type]


def test_query_runs_the_compiled_analysis_and_prints_rows_bytes_and_cost(
    client, config, monkeypatch, capsys
):
    athena, stubber = client
    compiled = 'select 1 as n from "awsdatacatalog"."banklake_curated"."fct_daily_kpis"'
    seen: list[Path] = []

    def compile_analysis(path: Path, target: str) -> str:
        seen.append(path)
        return compiled

    monkeypatch.setattr(athena_jobs, "compile_analysis", compile_analysis)
    expect_start(stubber, "q-7", compiled)
    stubber.add_response(
        "get_query_execution",
        execution("q-7", "SUCCEEDED", Statistics={"DataScannedInBytes": 52_428_800}),
        {"QueryExecutionId": "q-7"},
    )
    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": [{"Name": "n", "Type": "integer"}]},
                "Rows": [{"Data": [{"VarCharValue": "n"}]}, {"Data": [{"VarCharValue": "1"}]}],
            }
        },
        {"QueryExecutionId": "q-7", "MaxResults": 1000},
    )
    athena_jobs.query(
        config, runner_for(athena, config, FakeClock()), Path("analyses/daily_kpis.sql"), 10
    )
    out = capsys.readouterr().out
    assert seen == [Path("analyses/daily_kpis.sql")]
    assert "1 rows" in out and "scanned 50.0 MB" in out
    assert "$0.000238" in out  # 50 MB at $5 per TB


def test_compile_analysis_refuses_anything_but_an_analysis(tmp_path: Path) -> None:
    stray = tmp_path / "daily.sql"
    stray.write_text("select 1")
    for path in (stray, Path("models/curated/fct_transactions.sql"), Path("analyses/nope.sql")):
        with pytest.raises(FileNotFoundError, match="not an analysis"):
            athena_jobs.compile_analysis(path, tmp_path)


def test_cli_says_which_variables_to_set(monkeypatch, capsys) -> None:
    for name in (*ENV, "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert main(["athena", "register"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("banklake athena:") and "BANKLAKE_S3_RAW_DIR" in err
    assert main(["athena", "query", "analyses/daily_kpis.sql"]) == 1
    assert "BANKLAKE_ATHENA_WORKGROUP" in capsys.readouterr().err
