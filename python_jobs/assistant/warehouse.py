"""Read-only execution of SQL over the curated marts.

The guard (`guard.py`) decides what may run; this module makes sure that even a statement
the guard wrongly let through cannot write, read files or reconfigure the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

from python_jobs.lake.layout import Lake


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class Warehouse(Protocol):
    dialect: str  # sqlglot dialect name: "duckdb" or "athena"

    def query(self, sql: str) -> QueryResult: ...


def open_readonly(lake: Lake) -> duckdb.DuckDBPyConnection:
    """The lake's DuckDB file, read-only, no file/URL access, configuration locked."""
    if not lake.database.is_file():
        raise FileNotFoundError(f"no warehouse at {lake.database}: run `banklake build` first")
    connection = duckdb.connect(
        str(lake.database),
        read_only=True,
        config={"enable_external_access": False, "autoload_known_extensions": False},
    )
    connection.execute("set lock_configuration = true")
    return connection


class DuckDBWarehouse:
    dialect = "duckdb"

    def __init__(self, lake: Lake) -> None:
        self._connection = open_readonly(lake)

    def query(self, sql: str) -> QueryResult:
        cursor = self._connection.execute(sql)
        columns = [column[0] for column in cursor.description or []]
        return QueryResult(columns, cursor.fetchall())

    def close(self) -> None:
        self._connection.close()
