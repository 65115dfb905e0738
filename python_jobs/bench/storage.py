"""How much room each layer takes, and what the raw Parquet saves against CSV.

The processed and curated layers are tables inside the DuckDB file: their size is the
DuckDB blocks their tables occupy (pragma_storage_info), plus any files dbt's jobs write
under the layer's folder (the fraud scores under processed/).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from python_jobs.bench.measure import folder_size
from python_jobs.lake.layout import Lake
from python_jobs.lake.query import one_row


@dataclass(frozen=True)
class LakeSizes:
    raw_by_feed: dict[str, int]
    duckdb_by_schema: dict[str, int]  # bytes of DuckDB blocks per schema
    processed_files: int  # lake/processed/ (fraud scores)
    models_files: int  # lake/models/ (fraud model versions)
    duckdb_file: int
    lake_total: int

    @property
    def raw(self) -> int:
        return sum(self.raw_by_feed.values())

    @property
    def processed(self) -> int:
        return self.duckdb_by_schema.get("processed", 0) + self.processed_files

    @property
    def curated(self) -> int:
        return self.duckdb_by_schema.get("curated", 0)

    def to_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "raw": self.raw,
            "processed": self.processed,
            "curated": self.curated,
        }


def duckdb_schema_sizes(database: Path) -> dict[str, int]:
    """Bytes of persistent blocks used by each schema's tables."""
    with duckdb.connect(str(database), read_only=True) as con:
        block_size = one_row(con, "select block_size from pragma_database_size()")[0]
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = "
            "current_database() and not temporary"
        ).fetchall()
        sizes: dict[str, int] = {}
        for schema, table in tables:
            blocks = one_row(
                con,
                "select count(distinct block_id) from pragma_storage_info(?) where persistent",
                [f'"{schema}"."{table}"'],
            )[0]
            sizes[schema] = sizes.get(schema, 0) + int(blocks) * int(block_size)
    return dict(sorted(sizes.items()))


def lake_sizes(lake: Lake) -> LakeSizes:
    feeds = sorted(p for p in lake.raw.iterdir() if p.is_dir()) if lake.raw.exists() else []
    return LakeSizes(
        raw_by_feed={feed.name: folder_size(feed) for feed in feeds},
        duckdb_by_schema=duckdb_schema_sizes(lake.database) if lake.database.exists() else {},
        processed_files=folder_size(lake.root / "processed"),
        models_files=folder_size(lake.root / "models"),
        duckdb_file=folder_size(lake.database),
        lake_total=folder_size(lake.root),
    )


@dataclass(frozen=True)
class CsvComparison:
    parquet_bytes: int
    csv_bytes: int
    rows: int
    seconds_to_write_csv: float

    @property
    def ratio(self) -> float:
        """Parquet bytes as a share of the CSV bytes."""
        return self.parquet_bytes / self.csv_bytes if self.csv_bytes else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": round(self.ratio, 4)}


def csv_comparison(raw_transactions: Path, csv_path: Path, *, keep: bool) -> CsvComparison:
    """Writes the very same raw transaction rows (every column, ingestion metadata
    included) as one plain CSV with a header, and compares the bytes."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    files = f"{raw_transactions.as_posix()}/*/*/*/*.parquet"
    started = time.perf_counter()
    with duckdb.connect() as con:
        rows = one_row(
            con,
            f"copy (select * from read_parquet('{files}', union_by_name = true)) "
            f"to '{csv_path.as_posix()}' (format csv, header)",
        )[0]
    seconds = time.perf_counter() - started
    comparison = CsvComparison(
        parquet_bytes=folder_size(raw_transactions),
        csv_bytes=csv_path.stat().st_size,
        rows=int(rows),
        seconds_to_write_csv=round(seconds, 3),
    )
    if not keep:
        csv_path.unlink()
    return comparison
