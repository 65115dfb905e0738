"""python_jobs/aws/athena_dry_run.py's parts on known inputs: the comparison finds what it
claims and forgives only what it claims, the external tables read as Athena declares them, and
the coverage check fails on a node neither executed nor listed. The dry run itself, on a real
built lake, is in test_dbt_pipeline.py (it reuses that module's lake)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import duckdb
import pytest

from python_jobs.aws.athena_ddl import hive_type, scores_schema
from python_jobs.aws.athena_dry_run import (
    COLUMNS_NOT_COMPARED,
    NOT_EXECUTED,
    AthenaCompile,
    DryRunReport,
    compare_relations,
    duckdb_type,
    external_table_view,
    recorded_test_failures,
    unaccounted,
)
from python_jobs.lake.schemas import FEEDS

TARGET = """
    select * from (values
        (1::bigint, 10.50::decimal(18, 2), date '2026-10-01', 0.1::double, 'a', true),
        (2::bigint, 20.25::decimal(18, 2), date '2026-10-02', 1e6::double, 'b', false),
        (3::bigint, null::decimal(18, 2), null::date, null::double, null, null)
    ) as t(id, amount, day, ratio, code, flag)
"""


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(f"create table target as {TARGET}")
    yield connection
    connection.close()


def athena_side(con: duckdb.DuckDBPyConnection, select: str) -> list[str]:
    con.execute(f"create or replace table athena as {select}")
    return compare_relations(con, "athena", "target")


def test_the_same_rows_in_other_types_and_order_are_equal(con: duckdb.DuckDBPyConnection) -> None:
    """Athena's widths (sum as bigint against DuckDB's hugeint, decimal(38, 2) against the
    contract's decimal(18, 2)), a date computed as a timestamp, a double in its last bits and
    another row order are no difference."""
    assert (
        athena_side(
            con,
            """
            select id::hugeint as id, amount::decimal(38, 2) as amount,
                day::timestamp as day, ratio * (1 + 1e-13) as ratio, code, flag
            from target order by id desc
            """,
        )
        == []
    )


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ("update athena set amount = 10.51 where id = 1", "amount: different values"),
        ("update athena set day = day + 1 where id = 2", "day: different values"),
        ("update athena set ratio = ratio * (1 + 1e-6) where id = 2", "ratio: 1 of 3 sorted"),
        ("update athena set code = null where id = 1", "code: different values"),
        ("update athena set flag = not flag where id = 1", "flag: different values"),
        ("insert into athena select * from target where id = 1", "4 rows from Athena's SQL"),
        ("alter table athena drop column flag", "only in the target's ['flag']"),
        ("alter table athena alter code type integer using 0", "code: INTEGER from Athena's"),
        # the same values per column, paired in other rows: only the row checksum sees it
        (
            "update athena set code = case id when 1 then 'b' when 2 then 'a' end where id < 3",
            "rows pair their values differently",
        ),
    ],
)
def test_a_difference_is_found_and_named(
    con: duckdb.DuckDBPyConnection, change: str, found: str
) -> None:
    con.execute("create table athena as select * from target")
    assert compare_relations(con, "athena", "target") == []
    con.execute(change)
    differences = compare_relations(con, "athena", "target")
    assert any(found in difference for difference in differences), differences


def test_an_excluded_column_is_not_compared(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create table athena as select * replace (upper(code) as code) from target")
    assert compare_relations(con, "athena", "target") == ["code: different values (checksum)"]
    assert compare_relations(con, "athena", "target", {"code"}) == []
    assert all(reason for reason in COLUMNS_NOT_COMPARED.values())


def test_hive_types_of_every_contract_column_have_a_duckdb_type() -> None:
    assert duckdb_type("struct<state:string,city:string>") == "STRUCT(state VARCHAR, city VARCHAR)"
    assert duckdb_type("array<struct<a:bigint>>") == "STRUCT(a BIGINT)[]"
    assert duckdb_type("decimal(18,2)") == "DECIMAL(18,2)"
    for schema in [feed.schema for feed in FEEDS.values()] + [scores_schema()]:
        for column in schema:
            assert duckdb_type(hive_type(column.type))
    with pytest.raises(ValueError, match="no DuckDB type"):
        duckdb_type("map<string,string>")


def test_an_external_table_with_no_file_is_empty_with_its_columns() -> None:
    """A Glue table of a feed nothing delivered is empty, not missing: the view gives no row
    and every column typed as Athena declares it, the partitions as strings."""
    feed = FEEDS["alert_verdicts"]
    sql = external_table_view([], "unused/*.jsonl.gz", feed.schema, ("year", "month", "day"))
    with duckdb.connect() as con:
        columns = con.execute(f"describe {sql}").fetchall()
        assert con.execute(f"select count(*) from ({sql})").fetchall() == [(0,)]
    types = {name: data_type for name, data_type, *_ in columns}
    assert list(types) == [*feed.schema.names, "year", "month", "day"]
    assert types["_ingested_at"] == "TIMESTAMP" and types["_source_row"] == "BIGINT"
    assert types["year"] == "VARCHAR"


def test_the_expected_failures_are_the_newest_builds() -> None:
    def run(command: str, failures: int) -> SimpleNamespace:
        tests = [{"name": "t", "kind": "test", "failures": failures}]
        tests.append({"name": "u", "kind": "unit_test", "failures": 9})
        return SimpleNamespace(command=command, tests=tests)

    runs = [run("dbt test", 5), run("dbt build --select x", 2), run("dbt build", 1)]
    assert recorded_test_failures(runs) == {"t": 2}
    with pytest.raises(LookupError):
        recorded_test_failures([run("dbt test", 5)])


def test_a_node_neither_executed_nor_listed_fails_the_check() -> None:
    compiled = AthenaCompile(
        first={"model.p.a": None, "test.p.b": None},  # type: ignore[dict-item]
        incremental={},
        bounds={},
        manifest={},
    )
    report = DryRunReport("first build", executed={"model.p.a": "model", "test.p.b": "test"})
    assert unaccounted(compiled, report) == [
        f"NOT_EXECUTED names no node: {uid}" for uid in sorted(NOT_EXECUTED)
    ]
    del report.executed["test.p.b"]
    assert "not executed: test.p.b" in unaccounted(compiled, report)
