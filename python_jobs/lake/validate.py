"""Validation on arrival: a raw file must be readable and match its feed's schema and path.

A bad file is moved to `quarantine/` (same relative path) with a `.reason.json` beside it,
so one corrupt delivery never blocks the good ones and is never lost.

Two callers share these checks: `banklake validate` on the local lake folder, and the S3
trigger (python_jobs/aws/s3_trigger.py), which runs them in AWS Lambda on a /tmp copy of each
new object. That is why `check_raw_file` takes the file's bytes or a local copy plus the key
it arrived at, returns a verdict instead of printing, and needs nothing beyond pyarrow and
the standard library (no DuckDB: the Lambda has only boto3 and the pyarrow of a layer).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from python_jobs.lake.layout import Lake, partition_date
from python_jobs.lake.schemas import FEEDS, INGESTION_COLUMNS, Feed

RAW_PREFIX = "raw/"
QUARANTINE_PREFIX = "quarantine/"
REASON_SUFFIX = ".reason.json"
WHAT_NEXT = (
    "fix the file and put it back under raw/ with a new batch name, "
    "or leave it here; dbt never reads quarantine/"
)
_METADATA = [name for name, _ in INGESTION_COLUMNS]
_BATCH_ROWS = 262_144
# One JSON record must fit in a block; raw records are a few hundred bytes.
_JSON_BLOCK_BYTES = 16 << 20


class ValidatorUnavailable(RuntimeError):
    """The checks cannot run here (e.g. a pyarrow built without a codec the file uses).

    Raised instead of returning a reason: an environment problem must fail loudly and be
    retried, never quarantine a good file.
    """


@dataclass(frozen=True)
class FileCheck:
    """The verdict on one raw file: why it is bad (None when it is good) and its row count."""

    reason: str | None
    rows: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


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


def feed_of(key: str) -> Feed | None:
    """The feed a lake-relative key belongs to (`raw/<feed>/...`), or None."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] + "/" != RAW_PREFIX:
        return None
    return FEEDS.get(parts[1])


def quarantine_key(raw_key: str) -> str:
    """`raw/<rest>` -> `quarantine/<rest>`: a quarantined file keeps its relative path."""
    if not raw_key.startswith(RAW_PREFIX):
        raise ValueError(f"{raw_key!r} is not under {RAW_PREFIX}")
    return QUARANTINE_PREFIX + raw_key[len(RAW_PREFIX) :]


def reason_note(
    raw_key: str, feed: str, reason: str, *, size_bytes: int, sha256: str
) -> dict[str, object]:
    """The JSON object written beside a quarantined file, locally and on S3 alike."""
    return {
        "file": raw_key,
        "feed": feed,
        "reason": reason,
        "quarantined_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "size_bytes": size_bytes,
        "sha256": sha256,
        "what_next": WHAT_NEXT,
    }


def codec_available(name: str) -> bool:
    """Whether this pyarrow can decompress `name` (a function so tests can stand in)."""
    return pa.Codec.is_available(name)


def check_raw_file(source: Path | bytes, feed: Feed, *, key: str | None = None) -> FileCheck:
    """Every check a raw file of `feed` must pass: name, partition, schema and types, a
    complete read of every row, ingestion metadata on every row, row numbering 0..n-1 (no
    row lost, added or repeated since the writer stamped them) and `_source_file` equal to
    where the file sits (a copied file would count twice).

    `source` is the file itself (a local path, e.g. a /tmp copy of an S3 object) or its
    bytes. `key` is the lake-relative path it arrived at (`raw/<feed>/year=.../<name>`);
    without it the local path stands in for the name and partition, and `_source_file` is
    not checked (nothing says where the file should be).
    """
    where = key if key is not None else (source.as_posix() if isinstance(source, Path) else "")
    name = where.rsplit("/", 1)[-1]
    if not name.endswith(feed.file_suffix):
        return FileCheck(f"expected a {feed.file_suffix} file for feed '{feed.name}', got '{name}'")
    if partition_date(where) is None:
        return FileCheck("not inside a year=YYYY/month=MM/day=DD partition with a valid date")
    audit = _RowAudit()
    try:
        if feed.file_format == "parquet":
            problem = _read_parquet(source, feed, audit)
        else:
            problem = _read_jsonl(source, feed, audit)
    except ValidatorUnavailable:
        raise
    except Exception as error:  # any reader failure means the file is unreadable
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return FileCheck(f"unreadable: {type(error).__name__}: {first_line}"[:500])
    problem = problem or audit.problem(key)
    return FileCheck(problem, rows=None if problem else audit.rows)


def problem_with(path: Path, feed: Feed, lake: Lake | None = None) -> str | None:
    """Why `path` is not a valid raw file of `feed`, or None when it is."""
    key = lake.relative(path) if lake is not None else None
    return check_raw_file(path, feed, key=key).reason


@dataclass
class _RowAudit:
    """Streams over the ingestion columns batch by batch: constant memory for any file."""

    rows: int = 0
    missing_metadata: int = 0
    first_misnumbered: int | None = None
    source_files: set[str] = field(default_factory=set)

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        n = batch.num_rows
        columns = [batch.column(name) for name in _METADATA]
        missing = columns[0].is_null()
        for column in columns[1:]:
            missing = pc.or_(missing, column.is_null())
        self.missing_metadata += pc.sum(pc.cast(missing, pa.int64())).as_py() or 0
        expected = pa.array(range(self.rows, self.rows + n), pa.int64())
        numbered = pc.equal(batch.column("_source_row"), expected)
        if self.first_misnumbered is None and not pc.all(numbered).as_py() and n:
            wrong = pc.index(pc.fill_null(numbered, False), False).as_py()
            self.first_misnumbered = self.rows + wrong
        self.source_files.update(
            v for v in pc.unique(batch.column("_source_file")).to_pylist() if v
        )
        self.rows += n

    def problem(self, key: str | None) -> str | None:
        if self.missing_metadata:
            return (
                f"{self.missing_metadata} records lack ingestion metadata "
                "(_source_file/_source_row/_ingested_at)"
            )
        if self.first_misnumbered is not None:
            return (
                f"row count: {self.rows} rows, but _source_row is not 0..{self.rows - 1} in order "
                f"(first wrong at row {self.first_misnumbered}): rows were lost, added or repeated"
            )
        recorded = sorted(self.source_files)
        if key is not None and recorded and recorded != [key]:
            return f"rows say they landed in {recorded[:3]}, but the file is at {key}"
        return None


def _read_parquet(source: Path | bytes, feed: Feed, audit: _RowAudit) -> str | None:
    parquet = pq.ParquetFile(pa.BufferReader(source) if isinstance(source, bytes) else source)
    problem = _schema_problem(parquet.schema_arrow, feed)
    if problem:
        return problem
    _require_codecs(parquet)
    # Decoding every page of every column proves the file is complete.
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
        audit.add(batch)
    return None


def _require_codecs(parquet: pq.ParquetFile) -> None:
    meta = parquet.metadata
    codecs = {
        meta.row_group(g).column(c).compression.lower()
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    }
    missing = sorted(c for c in codecs - {"uncompressed"} if not codec_available(c))
    if missing:
        raise ValidatorUnavailable(
            f"this pyarrow ({pa.__version__}) cannot decompress {missing}: the file is not "
            "judged; run the validator with a pyarrow that has them (see "
            "python_jobs/aws/LAMBDA.md)"
        )


def _read_jsonl(source: Path | bytes, feed: Feed, audit: _RowAudit) -> str | None:
    # gzip checks the stream's length and CRC: a truncated delivery fails here.
    data = gzip.decompress(source if isinstance(source, bytes) else source.read_bytes())
    if data.strip():
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(block_size=_JSON_BLOCK_BYTES),
            parse_options=pajson.ParseOptions(
                explicit_schema=feed.schema, unexpected_field_behavior="ignore"
            ),
        )
        for batch in _batches(table):
            audit.add(batch)
    return None


def _batches(table: pa.Table) -> Iterator[pa.RecordBatch]:
    yield from table.select(_METADATA).to_batches(max_chunksize=_BATCH_ROWS)


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


def quarantine(lake: Lake, path: Path, feed: Feed, reason: str) -> Quarantined:
    """Moves a bad raw file out of the raw tree, keeping its relative path and the reason."""
    raw_key = lake.relative(path)
    target = lake.root / quarantine_key(raw_key)
    target.parent.mkdir(parents=True, exist_ok=True)
    note = reason_note(
        raw_key,
        feed.name,
        reason,
        size_bytes=path.stat().st_size,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    shutil.move(str(path), target)
    reason_path = target.with_name(target.name + REASON_SUFFIX)
    reason_path.write_text(json.dumps(note, indent=2) + "\n")
    return Quarantined(original=raw_key, moved_to=target, reason=reason)


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
