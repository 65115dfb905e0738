"""python_jobs/aws/athena_transpile.py: Athena SQL run on DuckDB computes what Athena computes.

Each rewrite is checked on real DuckDB against the value Trino gives (Trino's documented
semantics), and against what sqlglot's plain athena -> duckdb transpile computes instead, so
that each one is shown to be needed; each refusal on SQL it must refuse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from math import inf
from typing import Any

import duckdb
import pytest
import sqlglot

from python_jobs.aws.athena_transpile import (
    JAVA_WHITESPACE,
    AthenaRefuses,
    NotEmulated,
    athena_type,
    catalog_schema,
    install_macros,
    java_replacement_to_re2,
    to_duckdb,
)

TABLE = "memory.main.t"


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    install_macros(connection)
    connection.execute(
        """
        create table t (
            a integer, b integer, n bigint, amount decimal(18, 2), ts1 timestamp,
            ts2 timestamp, d1 date, d2 date, s varchar, x double
        )
        """
    )
    connection.execute(
        """
        insert into t values
            (7, 2, 2, 138.89, '2026-10-01 23:00:00', '2026-10-02 01:00:00', '2026-10-01',
             '2026-10-03', 'Maria da Silva', 1.5),
            (-7, 2, 2, -138.89, '2026-10-01 23:00:00', '2026-10-02 01:00:00', '2026-10-01',
             '2026-10-03', 'Ana', 2.5)
        """
    )
    yield connection
    connection.close()


def athena(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(to_duckdb(sql, catalog_schema(con, "memory"))).fetchall()


def plain(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sqlglot.transpile(sql, read="athena", write="duckdb")[0]).fetchall()


def athena_type_of(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    (column,) = con.execute(f"describe {to_duckdb(sql, catalog_schema(con, 'memory'))}").fetchall()
    return str(column[1])


@pytest.mark.parametrize(
    ("sql", "trino", "sqlglot_alone"),
    [
        # Trino: integer division truncates toward zero
        (f"select a / b from {TABLE}", [(3,), (-3,)], [(3.5,), (-3.5,)]),
        # decimal / bigint: decimal(18, 2), exact, rounded half up (away from zero)
        (
            f"select amount / n from {TABLE}",
            [(Decimal("69.45"),), (Decimal("-69.45"),)],
            [(69.445,), (-69.445,)],
        ),
        # nested: the outer division divides the inner one's decimal(18, 2) quotient
        (
            f"select amount / n / 4 from {TABLE}",
            [(Decimal("17.36"),), (Decimal("-17.36"),)],
            [(17.36125,), (-17.36125,)],
        ),
        # dbt-athena's datediff('day'): to_milliseconds of a date difference, integer division
        (
            "select ((to_milliseconds((cast(cast(d2 as timestamp) as date) - "
            f"cast(cast(d1 as timestamp) as date)))) / 86400000) from {TABLE}",
            [(2,), (2,)],
            # DuckDB's to_milliseconds(2 days as a number) is an interval of 2 ms
            [(timedelta(0),), (timedelta(0),)],
        ),
        # date_diff counts whole units elapsed: two hours across midnight are 0 days
        (f"select date_diff('day', ts1, ts2) from {TABLE}", [(0,), (0,)], [(1,), (1,)]),
        # regexp_replace: every match, `$1` a group reference; the two-argument form removes
        (
            f"select regexp_replace(s, '(\\S)\\S*', '$1***'), regexp_replace(s, 'a') from {TABLE}",
            [("M*** d*** S***", "Mri d Silv"), ("A***", "An")],
            [("$1*** $1*** $1***", "Mri d Silv"), ("$1***", "An")],
        ),
        # trim removes Java's whitespace: tab, newline..., but not the no-break space U+00A0
        # (DuckDB's trim: Unicode spaces, U+00A0 included, and no tab)
        (
            "select trim(chr(9) || ' x ' || chr(10)), ltrim(chr(12) || 'y'), "
            f"trim(chr(160) || 'z') from {TABLE} where a > 0",
            [("x", "y", "\xa0z")],
            [("\t x \n", "\x0cy", "z")],
        ),
    ],
)
def test_athena_semantics_where_sqlglot_alone_computes_duckdbs(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    trino: list[tuple[Any, ...]],
    sqlglot_alone: list[tuple[Any, ...]],
) -> None:
    assert athena(con, sql) == trino
    assert plain(con, sql) == sqlglot_alone


def test_the_types_athena_gives(con: duckdb.DuckDBPyConnection) -> None:
    # Trino: decimal(min(38, p1 + s2 + max(0, s2 - s1)), max(s1, s2))
    divided = "select cast(1 as decimal(10, 2)) / cast(3 as decimal(10, 4))"
    assert athena_type_of(con, divided) == "DECIMAL(16,4)"
    assert athena(con, divided) == [(Decimal("0.3333"),)]
    assert athena_type_of(con, f"select amount / n from {TABLE}") == "DECIMAL(18,2)"
    assert athena_type_of(con, f"select a / b from {TABLE}") == "INTEGER"
    assert athena_type_of(con, f"select n / a from {TABLE}") == "BIGINT"
    # date_add on a date is a date (DuckDB's date + interval is a timestamp)
    assert athena_type_of(con, f"select date_add('day', 1, d1) from {TABLE}") == "DATE"
    assert athena(con, f"select date_add('day', -1, d1) from {TABLE} where a > 0")[0][0].day == 30
    # a double operand: a double on both engines
    assert athena(con, f"select x / a from {TABLE} where a > 0") == [(1.5 / 7,)]


def test_division_by_zero_fails_as_on_athena(con: duckdb.DuckDBPyConnection) -> None:
    assert plain(con, f"select a / (b - 2) from {TABLE}") == [(inf,), (-inf,)]
    with pytest.raises(duckdb.Error, match="Division by zero"):
        athena(con, f"select a / (b - 2) from {TABLE}")
    with pytest.raises(duckdb.Error, match="Division by zero"):
        athena(con, f"select amount / (n - 2) from {TABLE}")
    # nullif, as the project writes it, gives null instead
    assert athena(con, f"select amount / nullif(n - 2, 0) from {TABLE}") == [(None,), (None,)]


@pytest.mark.parametrize(
    ("sql", "error", "message"),
    [
        (f"select avg(amount) from {TABLE}", NotEmulated, "avg() of a decimal"),
        (f"select cast(ts1 as varchar) from {TABLE}", NotEmulated, "timestampntz to varchar"),
        (f"select cast(x as varchar) from {TABLE}", NotEmulated, "double to varchar"),
        (f"select to_milliseconds(ts1) from {TABLE}", NotEmulated, "to_milliseconds"),
        (f"select a / missing from {TABLE}", NotEmulated, "division of"),
        (f"select regexp_replace(s, 'a', x -> 'b') from {TABLE}", NotEmulated, "lambda"),
        (f"select s || a from {TABLE}", AthenaRefuses, "`||` with a int operand"),
    ],
)
def test_what_is_not_emulated_is_refused(
    con: duckdb.DuckDBPyConnection, sql: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        athena(con, sql)


def test_what_is_safe_is_not_refused(con: duckdb.DuckDBPyConnection) -> None:
    # a date and an integer print the same on both engines; avg of an integer is a double
    assert athena(
        con, f"select cast(d1 as varchar), cast(a as varchar), avg(a) from {TABLE} group by 1, 2"
    ) == [("2026-10-01", "7", 7.0), ("2026-10-01", "-7", -7.0)]


def test_java_replacements_become_re2_ones() -> None:
    assert java_replacement_to_re2("$1***") == "\\1***"
    assert java_replacement_to_re2("a\\$b\\\\c$2") == "a$b\\\\c\\2"
    with pytest.raises(NotEmulated):
        java_replacement_to_re2("${name}")


def test_java_whitespace_is_what_trino_trims() -> None:
    assert {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1F, 0x20, 0x2003, 0x2028, 0x3000} <= set(
        JAVA_WHITESPACE
    )
    assert not {0x00A0, 0x2007, 0x202F, 0x41} & set(JAVA_WHITESPACE)


def test_duckdb_types_are_read_as_athena_types() -> None:
    assert athena_type("HUGEINT").sql() == "BIGINT"  # DuckDB's sum of integers
    assert athena_type("TIMESTAMP_MS").sql() == "TIMESTAMP"
    assert athena_type("DECIMAL(18,2)").sql() == "DECIMAL(18, 2)"
