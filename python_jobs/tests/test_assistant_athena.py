"""The assistant on Athena: its own work group, the curated database as the query context,
typed rows, and guarded SQL qualified for Athena — against botocore's Stubber on a real
Athena client (every request checked against the service model; no network)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from botocore.stub import Stubber

from python_jobs.assistant.ask import ask, sql_answer
from python_jobs.assistant.guard import AllowList
from python_jobs.assistant.llm import OfflineProvider
from python_jobs.assistant.schema_context import ColumnInfo, RelationInfo, SchemaContext
from python_jobs.assistant.warehouse import AthenaWarehouse, make_warehouse
from python_jobs.aws.athena import AthenaConfigError, AthenaQueryFailed
from python_jobs.lake.layout import Lake
from python_jobs.retry import Polling

ENV = {
    "AWS_REGION": "sa-east-1",
    "BANKLAKE_ATHENA_WORKGROUP": "banklake",  # dbt's: must not be used by the assistant
    "BANKLAKE_ATHENA_STAGING_DIR": "s3://results/athena/",
    "BANKLAKE_ASSISTANT_ATHENA_WORKGROUP": "banklake-assistant",
    "BANKLAKE_ASSISTANT_ATHENA_STAGING_DIR": "s3://results/assistant/",
}


class Capture:
    """Matches any value in a Stubber expectation and keeps it for later asserts."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __eq__(self, other: object) -> bool:
        self.values.append(other)
        return True

    def __hash__(self) -> int:  # pragma: no cover - never hashed
        return 0


def warehouse_on(client: Any, env: dict[str, str] = ENV) -> AthenaWarehouse:
    warehouse = AthenaWarehouse.from_env(env, client_factory=lambda config: client)
    warehouse.runner.backoff = Polling(initial=0.0, maximum=0.0)
    warehouse.runner._sleep = lambda seconds: None
    return warehouse


PAGE_ROWS = 1000  # GetQueryResults' MaxResults as AthenaRunner asks: rows a page, header included


def expect_query(
    stubber: Stubber,
    query_id: str,
    sql: Any,
    columns: list[tuple[str, str]],
    rows: list[list[str | None]],
    scanned: int = 12_345_678,
) -> None:
    """Queues one query as AthenaRunner sends it from the assistant's environment (ENV): its
    start in the assistant's work group, one poll that finds it SUCCEEDED with the bytes it
    scanned, then its result pages of at most PAGE_ROWS rows, the header row first."""
    stubber.add_response(
        "start_query_execution",
        {"QueryExecutionId": query_id},
        {
            "QueryString": sql,
            "WorkGroup": "banklake-assistant",
            "QueryExecutionContext": {"Catalog": "AwsDataCatalog", "Database": "banklake_curated"},
            "ResultConfiguration": {"OutputLocation": "s3://results/assistant/"},
        },
    )
    stubber.add_response(
        "get_query_execution",
        {
            "QueryExecution": {
                "QueryExecutionId": query_id,
                "Status": {"State": "SUCCEEDED"},
                "Statistics": {"DataScannedInBytes": scanned, "EngineExecutionTimeInMillis": 900},
            }
        },
        {"QueryExecutionId": query_id},
    )
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    data = [{"Data": [{"VarCharValue": v} if v is not None else {} for v in row]} for row in rows]
    lines = [header, *data]  # a SELECT's first row is its header, on the first page
    pages = [lines[start : start + PAGE_ROWS] for start in range(0, len(lines), PAGE_ROWS)]
    for number, page in enumerate(pages):
        response: dict[str, Any] = {
            "ResultSet": {
                "Rows": page,
                "ResultSetMetadata": {
                    "ColumnInfo": [{"Name": name, "Type": kind} for name, kind in columns]
                },
            }
        }
        if number + 1 < len(pages):
            response["NextToken"] = f"{query_id}-page-{number + 2}"
        expected = {"QueryExecutionId": query_id, "MaxResults": PAGE_ROWS}
        if number:
            expected["NextToken"] = f"{query_id}-page-{number + 1}"
        stubber.add_response("get_query_results", response, expected)


CONTEXT = SchemaContext(
    relations=(
        RelationInfo(
            "fct_daily_kpis",
            "Daily KPIs.",
            tuple(
                ColumnInfo(name, kind, "")
                for name, kind in [
                    ("event_date", "date"),
                    ("transaction_type", "varchar"),
                    ("channel", "varchar"),
                    ("state", "varchar"),
                    ("transactions", "bigint"),
                    ("approved_transactions", "bigint"),
                    ("approved_volume_brl", "decimal(18,2)"),
                    ("fraud_transactions", "bigint"),
                ]
            ),
            (),
        ),
        RelationInfo("dim_customers", "Customers.", (), ("cpf_hash", "name_masked")),
    ),
    source="test",
)


def test_the_assistant_needs_its_own_work_group() -> None:
    env = {key: value for key, value in ENV.items() if key != "BANKLAKE_ASSISTANT_ATHENA_WORKGROUP"}
    with pytest.raises(AthenaConfigError, match="BANKLAKE_ASSISTANT_ATHENA_WORKGROUP"):
        AthenaWarehouse.from_env(env, client_factory=lambda config: None)


def test_queries_run_in_the_assistant_work_group_with_typed_rows(athena) -> None:
    client, stubber = athena
    expect_query(
        stubber,
        "q-1",
        "select 1",
        [
            ("event_date", "date"),
            ("n", "bigint"),
            ("volume", "decimal"),
            ("rate", "double"),
            ("flag", "boolean"),
            ("state", "varchar"),
        ],
        [
            ["2026-11-27", "42", "1234.50", "0.0125", "true", "SP"],
            ["2026-11-28", None, None, None, "false", None],
        ],
    )
    result = warehouse_on(client).query("select 1")
    assert result.columns == ["event_date", "n", "volume", "rate", "flag", "state"]
    assert result.rows == [
        (date(2026, 11, 27), 42, Decimal("1234.50"), 0.0125, True, "SP"),
        (date(2026, 11, 28), None, None, None, False, None),
    ]
    assert result.bytes_scanned == 12_345_678 and not result.truncated


def test_a_long_answer_is_read_page_by_page(athena) -> None:
    client, stubber = athena
    rows: list[list[str | None]] = [[str(n)] for n in range(2_500)]
    expect_query(stubber, "q-long", "select n from t", [("n", "bigint")], rows)
    result = warehouse_on(client).query("select n from t")
    stubber.assert_no_pending_responses()  # three pages: 999 rows after the header, 1000, 501
    assert result.rows == [(n,) for n in range(2_500)] and not result.truncated


def test_a_failed_query_raises_athenas_reason(athena) -> None:
    client, stubber = athena
    stubber.add_response("start_query_execution", {"QueryExecutionId": "q-9"})
    stubber.add_response(
        "get_query_execution",
        {
            "QueryExecution": {
                "QueryExecutionId": "q-9",
                "Status": {
                    "State": "FAILED",
                    "StateChangeReason": "Query exhausted the bytes scanned limit",
                },
            }
        },
    )
    with pytest.raises(AthenaQueryFailed, match="bytes scanned limit"):
        warehouse_on(client).query("select 1")


def test_guarded_sql_is_qualified_for_athena_and_sent_as_is(athena) -> None:
    client, stubber = athena
    sent = Capture()
    expect_query(stubber, "q-2", sent, [("state", "varchar"), ("n", "bigint")], [["SP", "10"]])
    answer = sql_answer(
        "select state, sum(transactions) as n from curated.fct_daily_kpis group by 1",
        warehouse_on(client),
        CONTEXT,
        max_rows=50,
    )
    (sql,) = sent.values
    assert sql == answer.sql
    assert "FROM banklake_curated.fct_daily_kpis" in sql and sql.rstrip().endswith("LIMIT 50")
    assert answer.rows == [("SP", 10)]


def test_an_offline_intent_runs_on_athena(athena) -> None:
    client, stubber = athena
    sent = Capture()
    expect_query(stubber, "q-asof", sent, [("last_day", "date")], [["2026-11-28"]])
    expect_query(
        stubber,
        "q-intent",
        sent,
        [
            ("channel", "varchar"),
            ("transactions", "bigint"),
            ("approved_transactions", "bigint"),
            ("approved_volume_brl", "decimal"),
            ("average_ticket_brl", "decimal"),
            ("fraud_transactions", "bigint"),
            ("fraud_rate", "double"),
        ],
        [
            ["mobile", "1000", "990", "50000.00", "50.51", "7", "0.007"],
            ["pos", "500", "480", "9000.00", "18.75", "1", "0.002"],
        ],
    )
    answer = ask(
        "taxa de fraude por canal ontem",
        provider=OfflineProvider(),
        warehouse=warehouse_on(client),
        context=CONTEXT,
    )
    as_of_sql, intent = sent.values
    assert "banklake_curated.fct_daily_kpis" in as_of_sql
    assert "banklake_curated.fct_daily_kpis" in intent
    assert "CAST('2026-11-28' AS DATE)" in intent  # yesterday = the last data day
    assert answer.rows[0][0] == "mobile"
    assert "mobile (0,70%)" in answer.reading


def test_make_warehouse_targets(monkeypatch, tmp_path) -> None:
    for key in ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(AthenaConfigError):
        make_warehouse("athena", Lake(tmp_path))
    with pytest.raises(FileNotFoundError, match="banklake build"):
        make_warehouse("duckdb", Lake(tmp_path))
    with pytest.raises(ValueError, match="unknown target"):
        make_warehouse("postgres", Lake(tmp_path))


def test_allow_list_uses_the_athena_curated_database() -> None:
    allow: AllowList = CONTEXT.allow_list("banklake_curated")
    assert allow.schema == "banklake_curated"
    assert allow.pii_columns["dim_customers"] == frozenset({"cpf_hash", "name_masked"})
