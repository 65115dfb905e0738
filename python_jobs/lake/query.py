"""The one row of an aggregate query (a count, a sum, min and max), typed as a row.

DuckDB's fetchone() returns None when a query has no row; an aggregate always has one, so a
None here is a bug to report, not a value to carry on with.
"""

from __future__ import annotations

from typing import Any

import duckdb


def one_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None = None
) -> tuple[Any, ...]:
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"the query returned no row: {sql}")
    return row
