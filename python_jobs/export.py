"""Exports the curated marts from the DuckDB file to `lake/curated/` as Parquet.

The export is what downstream tools (and the S3 sync) read without a database. It replaces
the previous export whole, via a temporary folder, so readers never see a half-written mart.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from python_jobs.lake.layout import Lake
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


def export_curated(lake: Lake) -> list[ExportedTable]:
    if not lake.database.exists():
        raise FileNotFoundError(
            f"{lake.database} does not exist: run `banklake build` (or `make demo`) first"
        )
    staging = lake.root / ".curated-export-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    exported: list[ExportedTable] = []
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        tables = curated_tables(con)
        if not tables:
            raise RuntimeError(f"no curated tables in {lake.database}: did dbt build succeed?")
        for table in tables:
            rows = one_row(con, f'select count(*) from curated."{table}"')[0]
            target = staging / table
            partition = PARTITIONED_BY.get(table)
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
            exported.append(ExportedTable(table, rows, lake.curated / table))
    finally:
        con.close()
    shutil.rmtree(lake.curated, ignore_errors=True)
    staging.rename(lake.curated)
    return exported
