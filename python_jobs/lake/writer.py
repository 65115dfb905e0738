"""Writes raw files: stamps ingestion metadata, enforces the feed schema, never rewrites history.

Raw is immutable and append-only. Writing a file that already exists is allowed only
when the bytes would be identical (a deterministic re-run); anything else is refused,
so a re-delivery can never silently replace what dbt has already processed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import Feed

PARQUET_COMPRESSION = "zstd"


class RawFileConflict(RuntimeError):
    """A raw file exists with different content: raw files are never overwritten."""


def stamp(table: pa.Table, feed: Feed, source_file: str, ingested_at: datetime) -> pa.Table:
    """Adds the ingestion columns and casts to the feed's schema (column order included)."""
    n = table.num_rows
    missing = [c for c in feed.payload_columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{feed.name}: table lacks columns {missing}")
    table = table.select(feed.payload_columns)
    table = table.append_column("_source_file", pa.repeat(pa.scalar(source_file, pa.string()), n))
    table = table.append_column("_source_row", pa.array(np.arange(n, dtype=np.int64)))
    table = table.append_column(
        "_ingested_at", pa.repeat(pa.scalar(ingested_at, pa.timestamp("us")), n)
    )
    return table.cast(feed.schema)


def write_raw(
    lake: Lake, feed: Feed, day: date, table: pa.Table, *, batch: str, ingested_at: datetime
) -> Path:
    """Writes one raw file for `feed` in the ingestion partition of `day`; returns its path."""
    target = lake.raw_file(feed, day, batch)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamped = stamp(table, feed, lake.relative(target.parent) + "/" + target.name, ingested_at)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=feed.file_suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write(stamped, feed, tmp)
        if target.exists():
            if _digest(target) != _digest(tmp):
                raise RawFileConflict(
                    f"{target} already exists with different content; raw files are immutable. "
                    "Write the new delivery under another batch name."
                )
            tmp.unlink()
        else:
            tmp.rename(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _write(table: pa.Table, feed: Feed, path: Path) -> None:
    if feed.file_format == "parquet":
        pq.write_table(table, path, compression=PARQUET_COMPRESSION)
        return
    # Newline-delimited JSON, gzip, written by DuckDB (vectorized, handles nested structs).
    con = duckdb.connect()
    try:
        con.register("rows_to_write", table)
        con.execute(
            f"copy (select * from rows_to_write) to '{path}' "
            "(format json, compression gzip, timestampformat '%Y-%m-%d %H:%M:%S')"
        )
    finally:
        con.close()


def _digest(path: Path) -> str:
    if path.suffix == ".gz":
        # gzip headers carry no timestamp from DuckDB, but compare the payload to be safe.
        import gzip

        with gzip.open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()
