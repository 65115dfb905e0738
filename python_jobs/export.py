"""Exports the curated marts from the DuckDB file to `lake/curated/` as Parquet, and publishes it.

The export is what every reader uses instead of the database file (the assistant, the report,
the dashboard, downstream tools and the S3 sync): each export is written whole into a new
version folder, then `lake/curated` is switched to it atomically (python_jobs/lake/published.py),
so readers never see a half-written mart, even while the next build runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from python_jobs.lake.layout import Lake
from python_jobs.lake.published import (
    PublishedMart,
    new_version_folder,
    switch_to,
    write_manifest,
)
from python_jobs.lake.query import one_row

# Large facts are split by day so a one-day read touches one folder.
PARTITIONED_BY = {
    "fct_transactions": "event_date",
    "fct_daily_kpis": "event_date",
    "ml_features": "event_date",
}


@dataclass(frozen=True)
class ExportedTable:
    name: str
    rows: int
    path: Path


def curated_tables(con: duckdb.DuckDBPyConnection, schema: str = "curated") -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = ? and table_type = 'BASE TABLE' order by table_name",
        [schema],
    ).fetchall()
    return [name for (name,) in rows]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'curated' and table_name = ? order by ordinal_position",
        [table],
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def _export_table(
    con: duckdb.DuckDBPyConnection, table: str, target: Path, rows: int
) -> str | None:
    """One mart into `target`; returns the partition column it was split by, if any. An
    empty mart is one file with no rows (a partitioned COPY of nothing writes no file, and
    readers need the schema)."""
    partition = PARTITIONED_BY.get(table) if rows else None
    if partition:
        con.execute(
            f"copy (select * from curated.\"{table}\") to '{target}' "
            f"(format parquet, compression zstd, partition_by ({partition}))"
        )
    else:
        target.mkdir()
        con.execute(
            f"copy (select * from curated.\"{table}\") to '{target / 'data.parquet'}' "
            "(format parquet, compression zstd)"
        )
    return partition


def publish_marts(
    con: duckdb.DuckDBPyConnection, lake: Lake, tables: list[str] | None = None
) -> list[ExportedTable]:
    """The tables of `con`'s curated schema (all, or `tables`) written into a new version
    folder of `lake` and switched to (python_jobs/lake/published.py). `banklake export` hands
    it the build's DuckDB file; `banklake export --target athena` an in-memory database of
    what Athena unloaded (python_jobs/aws/athena_export.py)."""
    folder = new_version_folder(lake)
    exported: list[ExportedTable] = []
    marts: list[PublishedMart] = []
    try:
        for table in tables if tables is not None else curated_tables(con):
            rows = one_row(con, f'select count(*) from curated."{table}"')[0]
            partition = _export_table(con, table, folder / table, rows)
            files = sorted(
                p.relative_to(folder).as_posix() for p in (folder / table).rglob("*.parquet")
            )
            marts.append(PublishedMart(table, rows, _columns(con, table), partition, files))
            exported.append(ExportedTable(table, rows, lake.curated / table))
        write_manifest(folder, marts)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    switch_to(lake, folder)
    return exported


def export_curated(lake: Lake) -> list[ExportedTable]:
    if not lake.database.exists():
        raise FileNotFoundError(
            f"{lake.database} does not exist: run `banklake build` (or `make demo`) first"
        )
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        tables = curated_tables(con)
        if not tables:
            raise RuntimeError(f"no curated tables in {lake.database}: did dbt build succeed?")
        return publish_marts(con, lake, tables)
    finally:
        con.close()
