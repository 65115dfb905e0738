"""`banklake summary --target athena` against botocore's Stubber on real Athena and S3 clients:
the requests match the service models, every query parses as Athena SQL with no DuckDB-only
construct, and the answers become the same summary, printed the same way, as the local one."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlglot
from botocore.stub import Stubber
from sqlglot import exp

from python_jobs.aws import athena_summary
from python_jobs.aws.athena import AthenaConfig
from python_jobs.aws.athena_sql import duckdb_only_constructs
from python_jobs.aws.athena_summary import (
    curated_counts_sql,
    curated_tables_sql,
    processed_sql,
    rejected_sql,
    summarize_athena,
)
from python_jobs.cli import main
from python_jobs.summary import FEEDS, LakeSummary, render_body
from python_jobs.tests.moto_s3 import stubbed
from python_jobs.tests.test_athena import ENV, FakeClock, execution, expect_start, runner_for

MB = 2**20


@pytest.fixture
def s3() -> Iterator[tuple[Any, Stubber]]:
    with stubbed("s3") as client_and_stubber:
        yield client_and_stubber


class Recorder:
    """Stands for QueryString in an expected request: records what was sent."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __eq__(self, sql: object) -> bool:
        self.sql.append(str(sql))
        return True


def expect_select(
    stubber: Stubber,
    query_id: str,
    columns: list[str],
    rows: Sequence[tuple[str, ...]],
    sql: object,
    scanned: int = 0,
) -> None:
    """One SELECT: start, one poll (SUCCEEDED), one page of results with the header row."""
    expect_start(stubber, query_id, sql)
    stubber.add_response(
        "get_query_execution",
        execution(query_id, "SUCCEEDED", Statistics={"DataScannedInBytes": scanned}),
        {"QueryExecutionId": query_id},
    )
    header = {"Data": [{"VarCharValue": c} for c in columns]}
    stubber.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "ResultSetMetadata": {
                    "ColumnInfo": [{"Name": c, "Type": "varchar"} for c in columns]
                },
                "Rows": [header, *({"Data": [{"VarCharValue": v} for v in r]} for r in rows)],
            }
        },
        {"QueryExecutionId": query_id, "MaxResults": 1000},
    )


PROCESSED_ROWS = [  # feed, ingestion day, disposition, rows
    ("transactions", "2026-11-01", "accepted", "500"),
    ("transactions", "2026-11-02", "accepted", "380"),
    ("transactions", "2026-11-01", "duplicate", "12"),
    ("transactions", "2026-11-02", "rejected", "8"),
    ("customers", "2026-11-01", "accepted", "300"),
    ("accounts", "2026-11-01", "accepted", "410"),
    ("accounts", "2026-11-02", "rejected", "1"),
]
REJECTED_ROWS = [
    ("accounts", "unknown_customer", "1"),
    ("transactions", "invalid_amount", "5"),
    ("transactions", "bad_timestamp", "3"),
]
CURATED = ["dim_customers", "fct_daily_kpis", "fct_transactions"]


def expect_the_four_queries(stubber: Stubber, recorder: Recorder) -> None:
    expect_select(
        stubber,
        "q-processed",
        ["feed", "ingestion_date", "disposition", "n"],
        PROCESSED_ROWS,
        recorder,
        40 * MB,
    )
    expect_select(
        stubber, "q-rejected", ["feed", "rejection_reason", "n"], REJECTED_ROWS, recorder, MB
    )
    # a scratch table a failed build left behind is no mart
    tables = [(t,) for t in [*CURATED, "fct_transactions__dbt_tmp"]]
    expect_select(stubber, "q-tables", ["table_name"], tables, recorder)
    counts = [(t, str(100 * (i + 1))) for i, t in enumerate(reversed(CURATED))]
    expect_select(stubber, "q-counts", ["table_name", "n"], counts, recorder, 2 * MB)


def expect_quarantine_listing(stubber: Stubber) -> None:
    stubber.add_response(
        "list_objects_v2",
        {
            "KeyCount": 3,
            "Contents": [
                {"Key": "quarantine/transactions/year=2026/month=11/day=01/t.parquet"},
                {"Key": "quarantine/transactions/year=2026/month=11/day=01/t.parquet.reason.json"},
                {"Key": "quarantine/customers/year=2026/month=11/day=02/c.jsonl.gz.reason.json"},
            ],
        },
        {"Bucket": "lake", "Prefix": "quarantine/"},
    )


def test_the_summary_is_four_athena_queries_and_a_quarantine_listing(athena, s3) -> None:
    client, stubber = athena
    s3_client, s3_stubber = s3
    config = AthenaConfig.from_env(ENV)
    recorder = Recorder()
    expect_the_four_queries(stubber, recorder)
    expect_quarantine_listing(s3_stubber)

    result = summarize_athena(config, runner_for(client, config, FakeClock()), s3=s3_client)

    summary = result.summary
    assert summary.processed == {
        "transactions": {"accepted": 880, "duplicate": 12, "rejected": 8},
        "customers": {"accepted": 300},
        "accounts": {"accepted": 410, "rejected": 1},
    }
    assert summary.raw_rows("transactions") == 900
    # the newest ingestion day apart, every feed: 380 + 8 + 1 raw rows, 9 rejected
    assert summary.newest_day == ("2026-11-02", 389, 9)
    assert summary.rejected == [
        ("accounts", "unknown_customer", 1),
        ("transactions", "invalid_amount", 5),
        ("transactions", "bad_timestamp", 3),
    ]
    assert summary.curated == {"dim_customers": 300, "fct_daily_kpis": 200, "fct_transactions": 100}
    assert summary.quarantined_files == 2  # one .reason.json per quarantined file
    assert result.quarantine == "s3://lake/quarantine/"
    assert [q.query_id for q in result.queries] == [
        "q-processed",
        "q-rejected",
        "q-tables",
        "q-counts",
    ]
    assert result.bytes_scanned == 43 * MB
    # billed per query: 40 + 10 + 10 + 10 MB at $5 per TB
    assert result.cost_usd == pytest.approx(70 * MB / 2**40 * 5)

    # every query is Athena SQL that reads the dbt tables of the configured schema
    assert len(recorder.sql) == 4
    for sql in recorder.sql:
        sqlglot.parse_one(sql, read="athena")
        assert duckdb_only_constructs(sql) == [], sql
    read = [
        {f"{t.db}.{t.name}" for t in sqlglot.parse_one(sql, read="athena").find_all(exp.Table)}
        for sql in recorder.sql
    ]
    assert read[0] == {f"banklake_processed.stg_{feed}_triaged" for feed in FEEDS}
    assert read[1] == {"banklake_processed.stg_rejected_rows"}
    assert read[2] == {"information_schema.tables"}
    assert "table_schema = 'banklake_curated'" in recorder.sql[2]
    assert read[3] == {f"banklake_curated.{t}" for t in CURATED}


def test_it_prints_what_the_local_summary_prints_and_what_it_cost(athena, s3) -> None:
    client, stubber = athena
    s3_client, s3_stubber = s3
    config = AthenaConfig.from_env({**ENV, "BANKLAKE_ATHENA_SCHEMA": "prod"})
    expect_the_four_queries(stubber, Recorder())
    expect_quarantine_listing(s3_stubber)

    result = summarize_athena(config, runner_for(client, config, FakeClock()), s3=s3_client)
    text = result.render()

    local = render_body(result.summary, "title", "s3://lake/quarantine/")[2:]  # same body
    assert "\n".join(local) in text
    assert "prod_processed and prod_curated" in text and "work group banklake" in text
    assert "quarantined files: 2 (s3://lake/quarantine/)" in text
    assert "4 Athena queries, scanned 43.0 MB, cost $0.000334" in text


def test_its_json_has_the_local_keys_then_where_and_what_it_cost(
    athena, s3, monkeypatch, capsys
) -> None:
    client, stubber = athena
    s3_client, s3_stubber = s3
    config = AthenaConfig.from_env({**ENV, "BANKLAKE_ATHENA_SCHEMA": "prod"})
    expect_the_four_queries(stubber, Recorder())
    expect_quarantine_listing(s3_stubber)
    result = summarize_athena(config, runner_for(client, config, FakeClock()), s3=s3_client)

    def fake(say):
        say("the human summary")
        return result

    monkeypatch.setattr(athena_summary, "summary_on_athena", fake)
    assert main(["summary", "--target", "athena", "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert "the human summary" not in captured.out + captured.err  # --json: no table
    assert list(document)[:2] == ["command", "target"]
    assert (document["command"], document["target"]) == ("summary", "athena")
    local_keys = list(result.summary.to_dict())
    assert list(document)[2:] == [
        *local_keys,
        "processed_database",
        "curated_database",
        "work_group",
        "quarantine",
        "queries",
        "bytes_scanned",
        "cost_usd",
    ]
    assert document["processed_database"] == "prod_processed"
    assert document["quarantined_files"] == 2 and document["queries"] == 4
    assert document["quarantine"] == "s3://lake/quarantine/"


def test_without_the_raw_location_the_quarantine_is_not_counted(athena) -> None:
    client, stubber = athena
    env = {k: v for k, v in ENV.items() if k != "BANKLAKE_S3_RAW_DIR"}
    config = AthenaConfig.from_env(env)
    expect_the_four_queries(stubber, Recorder())
    result = summarize_athena(config, runner_for(client, config, FakeClock()))
    assert result.summary.quarantined_files is None
    assert "quarantined files: not counted (set BANKLAKE_S3_RAW_DIR)" in result.render()


def test_before_the_first_build_it_says_what_to_run(athena) -> None:
    client, stubber = athena
    config = AthenaConfig.from_env(ENV)
    expect_start(stubber, "q-1")
    stubber.add_response(
        "get_query_execution",
        execution(
            "q-1",
            "FAILED",
            status={
                "StateChangeReason": "TABLE_NOT_FOUND: line 2:6: Table "
                "'awsdatacatalog.banklake_processed.stg_transactions_triaged' does not exist"
            },
        ),
        {"QueryExecutionId": "q-1"},
    )
    with pytest.raises(RuntimeError, match="dbt build --target athena"):
        summarize_athena(config, runner_for(client, config, FakeClock()))


def test_the_queries_are_built_from_glue_names_only() -> None:
    for build in (processed_sql, rejected_sql, curated_tables_sql):
        with pytest.raises(ValueError, match="Glue name"):
            build("banklake_curated'; drop table x; --")
    with pytest.raises(ValueError, match="no curated tables"):
        curated_counts_sql("banklake_curated", [])


def test_an_empty_summary_renders_like_the_local_one() -> None:
    """No curated table yet: the count query is skipped, and the body is the local body."""
    summary = LakeSummary(quarantined_files=0)
    assert render_body(summary, "t", "q")[-1] == "curated marts (rows):"


def test_cli_summary_on_athena_says_which_variables_to_set(monkeypatch, capsys) -> None:
    for name in (*ENV, "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert main(["summary", "--target", "athena"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("banklake summary:") and "BANKLAKE_ATHENA_WORKGROUP" in err


def test_cli_summary_on_athena_prints_the_summary(monkeypatch, capsys) -> None:
    seen: list[object] = []

    def fake(say) -> None:
        seen.append(say)
        say("summary on athena")

    monkeypatch.setattr(athena_summary, "summary_on_athena", fake)
    assert main(["summary", "--target", "athena"]) == 0
    assert capsys.readouterr().out == "summary on athena\n" and seen == [print]
