"""Partition pruning: what an analyst's one-day question reads against the whole table.

The raw transactions are Hive-partitioned by ingestion day (year=/month=/day=). The same
aggregate runs twice on DuckDB, once filtered on one day's partition columns and once over
everything; each reports the files and bytes DuckDB's profiler says it read, and the bytes
an engine that reads only the needed column chunks (Athena) scans, from the Parquet footers
of the files in scope. The Athena price uses its billing rule (python_jobs/aws/athena.py:
$5/TB, rounded up to the MB, at least 10 MB a query).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from python_jobs.aws.athena import billed_bytes, query_cost_usd
from python_jobs.lake.layout import partition_path

COLUMNS_READ = ("transaction_type", "amount")
_QUERY = """
select transaction_type, count(*) as transactions,
       sum(try_cast(amount as decimal(18, 2))) as amount_brl
from read_parquet('{files}', hive_partitioning = true,
                  hive_types = {{'year': 'VARCHAR', 'month': 'VARCHAR', 'day': 'VARCHAR'}})
{where}
group by transaction_type
"""


@dataclass(frozen=True)
class PrunedQuery:
    label: str
    sql: str
    seconds: float
    result_rows: int
    files_read: int
    files_total: int
    duckdb_bytes_read: int  # DuckDB profiler's total_bytes_read
    column_bytes: int  # compressed bytes of the columns read in the files in scope
    athena_billed_bytes: int
    athena_cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PruningReport:
    day: str
    one_day: PrunedQuery
    full_table: PrunedQuery

    @property
    def bytes_ratio(self) -> float:
        full = self.full_table.column_bytes
        return self.one_day.column_bytes / full if full else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "one_day": self.one_day.to_dict(),
            "full_table": self.full_table.to_dict(),
            "bytes_ratio": round(self.bytes_ratio, 6),
        }


def _column_bytes(files: list[Path]) -> int:
    total = 0
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
        wanted = [i for i, name in enumerate(names) if name in COLUMNS_READ]
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            total += sum(row_group.column(i).total_compressed_size for i in wanted)
    return total


def _scan_info(profile: dict[str, Any]) -> tuple[int, int]:
    """(files read, files in the glob) from the READ_PARQUET operator's extra info."""
    pending = [profile]
    while pending:
        node = pending.pop()
        info: dict[str, Any] = node.get("extra_info") or {}
        if node.get("operator_name") == "READ_PARQUET":
            scanning = re.match(r"(\d+)/(\d+)", str(info.get("Scanning Files", "")))
            globbed: str | int = scanning.group(1) if scanning else 0
            read = int(info.get("Total Files Read", globbed))
            return read, int(scanning.group(2)) if scanning else read
        pending += node.get("children", [])
    return 0, 0


def _run(label: str, sql: str, files_in_scope: list[Path]) -> PrunedQuery:
    with tempfile.TemporaryDirectory() as scratch, duckdb.connect() as con:
        output = Path(scratch) / "profile.json"
        con.execute("pragma enable_profiling = 'json'")
        con.execute(f"pragma profiling_output = '{output.as_posix()}'")
        settings = {"TOTAL_BYTES_READ": "true", "EXTRA_INFO": "true", "LATENCY": "true"}
        con.execute(f"set custom_profiling_settings = '{json.dumps(settings)}'")
        started = time.perf_counter()
        rows = con.execute(sql).fetchall()
        seconds = time.perf_counter() - started
        con.execute("pragma disable_profiling")
        profile = json.loads(output.read_text())
    files_read, files_total = _scan_info(profile)
    column_bytes = _column_bytes(files_in_scope)
    return PrunedQuery(
        label=label,
        sql=" ".join(sql.split()),
        seconds=round(seconds, 4),
        result_rows=len(rows),
        files_read=files_read,
        files_total=files_total,
        duckdb_bytes_read=int(profile.get("total_bytes_read", 0)),
        column_bytes=column_bytes,
        athena_billed_bytes=billed_bytes(column_bytes),
        athena_cost_usd=query_cost_usd(column_bytes),
    )


def partition_pruning(raw_transactions: Path, day: date) -> PruningReport:
    """The one-day query on `day`'s ingestion partition against the full-table query."""
    files = sorted(raw_transactions.glob("year=*/month=*/day=*/*.parquet"))
    pattern = f"{raw_transactions.as_posix()}/*/*/*/*.parquet"
    day_files = [f for f in files if partition_path(day) in f.as_posix()]
    where = f"where year = '{day:%Y}' and month = '{day:%m}' and day = '{day:%d}'"
    return PruningReport(
        day=day.isoformat(),
        one_day=_run("one day", _QUERY.format(files=pattern, where=where), day_files),
        full_table=_run("full table", _QUERY.format(files=pattern, where=""), files),
    )
