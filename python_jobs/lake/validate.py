"""Validation on arrival: a raw file must be readable and match its feed's schema and path.

A bad file is moved to `quarantine/` (same relative path) with a `.reason.json` beside it,
so one corrupt delivery never blocks the good ones and is never lost. The same checks back
the S3 trigger (the Athena issue), which is why they take a path and return a reason instead
of printing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from python_jobs.lake.layout import Lake, partition_date
from python_jobs.lake.schemas import FEEDS, Feed


@dataclass(frozen=True)
class Quarantined:
    original: str  # lake-relative path the file arrived at
    moved_to: Path
    reason: str


@dataclass
class ValidationReport:
    checked: int = 0
    valid: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.checked} raw files checked, {self.valid} valid"
        if self.quarantined:
            text += f", {len(self.quarantined)} quarantined (see lake/quarantine/)"
        return text


def duckdb_type(data_type: pa.DataType) -> str:
    """The DuckDB type a raw column is read as (the dbt sources declare the same)."""
    if pa.types.is_string(data_type):
        return "VARCHAR"
    if pa.types.is_float64(data_type):
        return "DOUBLE"
    if pa.types.is_int64(data_type):
        return "BIGINT"
    if pa.types.is_timestamp(data_type):
        return "TIMESTAMP"
    if pa.types.is_struct(data_type):
        fields = ", ".join(f"{f.name} {duckdb_type(f.type)}" for f in data_type)
        return f"STRUCT({fields})"
    raise TypeError(f"no DuckDB mapping for {data_type}")


def problem_with(path: Path, feed: Feed, lake: Lake | None = None) -> str | None:
    """Why `path` is not a valid raw file of `feed`, or None when it is."""
    if not path.name.endswith(feed.file_suffix):
        return f"expected a {feed.file_suffix} file for feed '{feed.name}', got '{path.name}'"
    if partition_date(path) is None:
        return "not inside a year=YYYY/month=MM/day=DD partition with a valid date"
    try:
        if feed.file_format == "parquet":
            reason = _parquet_problem(path, feed)
        else:
            reason = _jsonl_problem(path, feed)
    except Exception as error:  # any reader failure means the file is unreadable
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"unreadable: {type(error).__name__}: {first_line}"[:500]
    if reason is None and lake is not None:
        reason = _source_file_problem(path, feed, lake)
    return reason


def _parquet_problem(path: Path, feed: Feed) -> str | None:
    parquet = pq.ParquetFile(path)
    actual = parquet.schema_arrow
    problem = _schema_problem(actual, feed)
    if problem:
        return problem
    for _ in parquet.iter_batches(batch_size=262_144, columns=["_source_row"]):
        pass  # decoding every page proves the file is complete
    return None


def _jsonl_problem(path: Path, feed: Feed) -> str | None:
    # DuckDB reads a truncated gzip stream without complaint; gzip checks length and CRC.
    with gzip.open(path, "rb") as stream:
        while stream.read(1 << 20):
            pass
    columns = {f.name: duckdb_type(f.type) for f in feed.schema}
    con = duckdb.connect()
    try:
        con.execute(
            "select count(*) from read_json(?, format = 'newline_delimited', columns = ?)",
            [str(path), columns],
        ).fetchone()
        missing = con.execute(
            "select count(*) from read_json(?, format = 'newline_delimited', columns = ?) "
            "where _source_file is null or _source_row is null or _ingested_at is null",
            [str(path), columns],
        ).fetchone()[0]
    finally:
        con.close()
    if missing:
        return f"{missing} records lack ingestion metadata (_source_file/_source_row/_ingested_at)"
    return None


def _schema_problem(actual: pa.Schema, feed: Feed) -> str | None:
    names = set(actual.names)
    missing = [f.name for f in feed.schema if f.name not in names]
    if missing:
        return f"schema mismatch: missing columns {missing}"
    wrong = [
        f"{f.name} is {actual.field(f.name).type}, expected {f.type}"
        for f in feed.schema
        if not actual.field(f.name).type.equals(f.type)
    ]
    if wrong:
        return "schema mismatch: " + "; ".join(wrong)
    return None


def _source_file_problem(path: Path, feed: Feed, lake: Lake) -> str | None:
    """The file must sit where its rows say they landed (a copied file would double count)."""
    expected = lake.relative(path)
    con = duckdb.connect()
    try:
        if feed.file_format == "parquet":
            query = "select distinct _source_file from read_parquet(?)"
            params: list[object] = [str(path)]
        else:
            columns = {f.name: duckdb_type(f.type) for f in feed.schema}
            query = (
                "select distinct _source_file from "
                "read_json(?, format = 'newline_delimited', columns = ?)"
            )
            params = [str(path), columns]
        recorded = [row[0] for row in con.execute(query, params).fetchall()]
    finally:
        con.close()
    if recorded and recorded != [expected]:
        return f"rows say they landed in {recorded[:3]}, but the file is at {expected}"
    return None


def quarantine(lake: Lake, path: Path, feed: Feed, reason: str) -> Quarantined:
    """Moves a bad raw file out of the raw tree, keeping its relative path and the reason."""
    relative = path.resolve().relative_to(lake.raw.resolve()).as_posix()
    target = lake.quarantine / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    size = path.stat().st_size
    shutil.move(str(path), target)
    note = {
        "file": f"raw/{relative}",
        "feed": feed.name,
        "reason": reason,
        "quarantined_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "size_bytes": size,
        "sha256": digest,
        "what_next": "fix the file and put it back under raw/ with a new batch name, "
        "or leave it here; dbt never reads quarantine/",
    }
    reason_path = target.with_name(target.name + ".reason.json")
    reason_path.write_text(json.dumps(note, indent=2) + "\n")
    return Quarantined(original=f"raw/{relative}", moved_to=target, reason=reason)


def validate_lake(lake: Lake, feeds: Iterable[Feed] | None = None) -> ValidationReport:
    """Checks every raw file; quarantines the bad ones. Returns what it found."""
    report = ValidationReport()
    for feed in feeds or FEEDS.values():
        feed_dir = lake.raw / feed.name
        if not feed_dir.exists():
            continue
        for path in sorted(p for p in feed_dir.rglob("*") if p.is_file()):
            if path.name.startswith(".tmp-"):
                continue  # a writer's temporary file, not a delivery
            report.checked += 1
            reason = problem_with(path, feed, lake)
            if reason is None:
                report.valid += 1
            else:
                report.quarantined.append(quarantine(lake, path, feed, reason))
    return report
