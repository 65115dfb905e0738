"""Validation on arrival: a raw file must be readable and match its feed's schema and path.

A bad file is moved to `quarantine/` (same relative path) with a `.reason.json` beside it,
so one corrupt delivery never blocks the good ones and is never lost.

Two callers share these checks: `banklake validate` on the local lake folder, and the S3
trigger (python_jobs/aws/s3_trigger.py), which runs them in AWS Lambda on a /tmp copy of each
new object. That is why `check_raw_file` takes the file's bytes or a local copy plus the key
it arrived at, returns a verdict instead of printing, and needs nothing beyond pyarrow and
the standard library (no DuckDB: the Lambda has only boto3 and the pyarrow of a layer).

The rule: a file is accepted only if the build reads it, and reads the values the producer
meant. Every verdict below was checked against what DuckDB does with the same file through
the dbt sources (python_jobs/tests/test_quarantine.py drops every kind into one lake, builds
it and reconciles the rows):

- Place: exactly `raw/<feed>/year=YYYY/month=MM/day=DD/<name><suffix>`, a real date. dbt's
  glob reads that depth only (a file above or below it would be silently skipped); month=13
  breaks the build's partition date. A name starting with '.' or '_' is refused: DuckDB's glob
  reads it, Athena skips it (the writer's own unfinished files end in `.tmp`, which no
  reader matches, and are left alone). Any other name (a README, `_SUCCESS`) is a stray file.
- Empty: a 0-byte file is neither Parquet nor gzip; DuckDB fails the whole feed on it
  ("Input is not a GZIP stream"). A delivery with no rows is a complete file instead, and
  valid: Parquet with the schema and no rows, or a gzip stream of no lines (or blank ones).
- Parquet: every contract column, of its type (text stored as dictionary or large strings is
  the same text to every reader), every page decoded, all text valid UTF-8 (DuckDB refuses
  the file otherwise). Extra columns are valid and ignored: union_by_name carries them, no
  model selects them, the Athena table does not declare them. But not a column named like a
  partition (year, month, day) or two names equal but for case (Athena folds case).
- JSON lines: gzip (several members are fine, trailing bytes are not), strict UTF-8 without
  a BOM, one JSON object per line (blank lines are skipped, as DuckDB does), no key twice,
  every contract key present (the writer writes null for no value; a missing key means
  another schema), each value of its contract type, nested objects alike. Extra keys are
  valid and ignored (by DuckDB's explicit columns and Athena's SerDe). Deliberately stricter
  than DuckDB, which would read each of these as a different value without a word: a number
  for text (a CPF loses its leading zeros), text or true for a number, 0.5 for a row
  number, NaN, a timestamp with an offset (dropped) or more than microseconds, a trailing
  comma. Read with the standard library: pyarrow's JSON reader crashes the process on a
  `null` line and accepts invalid UTF-8.
- Rows: ingestion metadata on every row, `_source_row` 0..n-1, `_source_file` = the key.

Reasons name what is wrong and where: Parquet rows are 0-based (as `_source_row`), JSON
lines 1-based (as an editor and DuckDB's errors count); values are never quoted (PII).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import shutil
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from python_jobs.lake.durable import exclusive, write_json_durably
from python_jobs.lake.layout import Lake, is_being_written
from python_jobs.lake.schemas import FEEDS, INGESTION_COLUMNS, Feed
from python_jobs.observability.jobs import emit_validate

RAW_PREFIX = "raw/"
QUARANTINE_PREFIX = "quarantine/"
REASON_SUFFIX = ".reason.json"
WHAT_NEXT = (
    "fix the file and put it back under raw/ with a new batch name, "
    "or leave it here; dbt never reads quarantine/"
)
_METADATA = [name for name, _ in INGESTION_COLUMNS]
_BATCH_ROWS = 262_144
# DuckDB's read_json refuses a record longer than this (maximum_object_size); raw records
# are a few hundred bytes.
_JSON_MAX_LINE_BYTES = 16 << 20
_READ_CHUNK = 1 << 20
_PARTITION_DIRS = (
    re.compile(r"year=(\d{4})"),
    re.compile(r"month=(\d{2})"),
    re.compile(r"day=(\d{2})"),
)
_PARTITION_COLUMNS = {"year", "month", "day"}
_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
# What DuckDB's TIMESTAMP reads exactly (no offset, at most microseconds).
_TIMESTAMP_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?")
_INT64 = (-(2**63), 2**63 - 1)


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
    checked: int = 0  # files checked by this run: valid + len(quarantined)
    valid: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    # files found valid by an earlier run and unchanged since (same size and modification
    # time): not read again
    unchanged: int = 0

    def summary(self) -> str:
        text = f"{self.checked} raw files checked, {self.valid} valid"
        if self.quarantined:
            text += f", {len(self.quarantined)} quarantined (see lake/quarantine/)"
        if self.unchanged:
            text += f"; {self.unchanged} unchanged since found valid, not read again"
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
    """Every check a raw file of `feed` must pass (the module docstring says which and why):
    place and name, not empty, schema and types, a complete read of every row, ingestion
    metadata on every row, row numbering 0..n-1 (no row lost, added or repeated since the
    writer stamped them) and `_source_file` equal to where the file sits (a copied file
    would count twice).

    `source` is the file itself (a local path, e.g. a /tmp copy of an S3 object) or its
    bytes; both give the same verdict. `key` is the lake-relative path it arrived at
    (`raw/<feed>/year=.../<name>`); without it the local path stands in for the name and
    partition (only the folders above the file are checked), and `_source_file` is not
    checked (nothing says where the file should be).
    """
    where = key if key is not None else (source.as_posix() if isinstance(source, Path) else "")
    problem = _place_problem(where, feed, exact=key is not None)
    if problem:
        return FileCheck(problem)
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if size == 0:
        return FileCheck(
            f"empty file (0 bytes): not a {_FORMAT_NAMES[feed.file_format]}; a delivery "
            f"with no rows is still a complete file ({_EMPTY_DELIVERY[feed.file_format]})"
        )
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


_FORMAT_NAMES = {"parquet": "Parquet file", "jsonl.gz": "gzip stream"}
_EMPTY_DELIVERY = {
    "parquet": "Parquet with the feed's columns and no rows",
    "jsonl.gz": "a gzip stream of no lines",
}


def _place_problem(where: str, feed: Feed, *, exact: bool) -> str | None:
    """Why `where` is not a place dbt reads a raw file of `feed` from, or None. `exact`: the
    whole lake-relative key is known (else only the folders above the file are judged)."""
    parts = where.split("/")
    name = parts[-1]
    if not name.endswith(feed.file_suffix):
        return f"expected a {feed.file_suffix} file for feed '{feed.name}', got '{name}'"
    if name.startswith((".", "_")):
        return (
            f"hidden name '{name}': DuckDB reads a file whose name starts with '.' or '_', "
            "Athena skips it; deliver it under a name that starts otherwise"
        )
    folders = parts[-4:-1]
    matches = [p.fullmatch(part) for p, part in zip(_PARTITION_DIRS, folders, strict=False)]
    placed = len(folders) == 3 and all(matches)
    if exact:
        placed = placed and len(parts) == 6 and parts[:2] == [RAW_PREFIX.rstrip("/"), feed.name]
    if not placed:
        return (
            "not directly inside a year=YYYY/month=MM/day=DD partition: dbt reads only "
            f"{RAW_PREFIX}{feed.name}/year=YYYY/month=MM/day=DD/<file>"
        )
    try:
        date(*(int(m.group(1)) for m in matches if m))
    except ValueError:
        return f"partition {'/'.join(folders)} is not a valid date"
    return None


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
    problem = _parquet_envelope_problem(source)
    if problem:
        return problem
    parquet = pq.ParquetFile(pa.BufferReader(source) if isinstance(source, bytes) else source)
    problem = _schema_problem(parquet.schema_arrow, feed)
    if problem:
        return problem
    _require_codecs(parquet)
    # Decoding every page of every column proves the file is complete.
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
        problem = _utf8_problem(batch, audit.rows)
        if problem:
            return problem
        audit.add(batch)
    return None


def _parquet_envelope_problem(source: Path | bytes) -> str | None:
    """A Parquet file starts and ends with PAR1 (the footer, with the schema, is at the end)."""
    if isinstance(source, bytes):
        head, tail, size = source[:4], source[-4:], len(source)
    else:
        with source.open("rb") as handle:
            head = handle.read(4)
            size = handle.seek(0, io.SEEK_END)
            handle.seek(max(size - 4, 0))
            tail = handle.read(4)
    if head != _PARQUET_MAGIC:
        return "unreadable: not a Parquet file (it does not start with the magic bytes PAR1)"
    if tail != _PARQUET_MAGIC or size < 12:
        return (
            "unreadable: incomplete Parquet file: it starts with PAR1 but does not end with "
            f"the footer's PAR1 ({size} bytes; truncated?)"
        )
    return None


def _utf8_problem(batch: pa.RecordBatch, first_row: int) -> str | None:
    """DuckDB refuses a Parquet file with one invalid UTF-8 value; pyarrow reads it as is."""
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            column.validate(full=True)  # checks the UTF-8 of every text value, nested too
        except pa.ArrowInvalid:
            where = _first_invalid_utf8(column)
            at = f", row {first_row + where[0]} (byte {where[1]} of the value)" if where else ""
            return f"column '{name}'{at}: text is not valid UTF-8"
    return None


def _first_invalid_utf8(column: pa.Array) -> tuple[int, int] | None:
    """(row, byte offset) of the first invalid text value of a flat text column."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string(column.type):
        raw = column.view(pa.binary())
    elif pa.types.is_large_string(column.type):
        raw = column.view(pa.large_binary())
    else:
        return None
    for row, value in enumerate(raw.to_pylist()):
        try:
            (value or b"").decode("utf-8")
        except UnicodeDecodeError as error:
            return row, error.start
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
    """Every line of the gzip stream judged as DuckDB's read_json would read it, and more
    strictly (module docstring)."""
    records = _JsonRecords(feed, audit)
    try:
        for number, line in _lines(_gunzip(source)):
            problem = records.add(line)
            if problem:
                return f"line {number}: {problem}"
    except _Unreadable as error:
        return f"unreadable: {error}"
    records.flush()
    return None


class _Unreadable(Exception):
    """The stream itself is broken (not gzip, truncated, trailing bytes, a giant line)."""


def _gunzip(source: Path | bytes) -> Iterator[bytes]:
    """The decompressed bytes of every gzip member, in order. Python's gzip module forgives
    zero padding after the last member; DuckDB does not, so neither does this."""
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    with stream:
        head = stream.read(2)
        if head != _GZIP_MAGIC:
            raise _Unreadable("not a gzip file (it does not start with the magic bytes 1f 8b)")
        member, done, fed = zlib.decompressobj(wbits=31), 0, 0
        chunk = head + stream.read(_READ_CHUNK)
        while chunk:
            fed += len(chunk)
            try:
                while not member.eof:  # bounded output: a gzip of zeros cannot fill memory
                    out = member.decompress(chunk, _READ_CHUNK)
                    chunk = member.unconsumed_tail
                    if not out and not chunk:
                        break
                    yield out
            except zlib.error as error:
                raise _Unreadable(_gzip_error(done, fed, str(error))) from None
            if member.eof:
                done, chunk = done + 1, member.unused_data
                fed, member = 0, zlib.decompressobj(wbits=31)
                if chunk:
                    continue
            chunk = stream.read(_READ_CHUNK)
        if fed:  # the last member never reached its end
            raise _Unreadable(_gzip_error(done, fed, None))


def _gzip_error(done: int, fed: int, detail: str | None) -> str:
    """`detail`: zlib's complaint, or None when the file ended inside a member."""
    if done == 0:
        if detail is None:
            return "truncated gzip stream: the file ends inside the compressed data"
        return f"corrupt gzip stream ({detail})"
    return (
        f"{fed} byte{'s' if fed > 1 else ''} after the end of the gzip stream, not another "
        f"gzip member (DuckDB refuses trailing bytes; {detail or 'it ends too soon'})"
    )


def _lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based number, bytes) of every line, split at \\n only (as DuckDB does)."""
    pending, number = b"", 0
    for chunk in chunks:
        if not chunk:
            continue
        pieces = (pending + chunk).split(b"\n")
        pending = pieces.pop()
        for piece in pieces:
            number += 1
            if len(piece) > _JSON_MAX_LINE_BYTES:
                raise _Unreadable(_too_long(number))
            yield number, piece
        if len(pending) > _JSON_MAX_LINE_BYTES:
            raise _Unreadable(_too_long(number + 1))
    if pending:
        yield number + 1, pending


def _too_long(number: int) -> str:
    return f"line {number} is longer than {_JSON_MAX_LINE_BYTES >> 20} MiB (DuckDB's limit)"


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record = dict(pairs)
    if len(record) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for i, name in enumerate(names) if name in names[:i])
        raise _DuplicateKey(f"key '{twice}' appears twice in one object (DuckDB refuses it)")
    if len({name.lower() for name in record}) != len(record):
        folded = Counter(name.lower() for name in record)
        clash = sorted(name for name in record if folded[name.lower()] > 1)
        raise _DuplicateKey(f"keys {clash} differ only in case (Athena folds case)")
    return record


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_no_constant)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_EXPECTED = {
    "text": "a string",
    "number": "a number",
    "integer": "an integer",
    "timestamp": "a 'YYYY-MM-DD HH:MM:SS[.ffffff]' string",
}


def _json_spec(data_type: pa.DataType) -> object:
    """What a contract type must be in JSON: a kind of _EXPECTED, or {field: spec}."""
    if pa.types.is_struct(data_type):
        return {f.name: _json_spec(f.type) for f in data_type}
    if pa.types.is_string(data_type):
        return "text"
    if pa.types.is_float64(data_type):
        return "number"
    if pa.types.is_int64(data_type):
        return "integer"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    raise TypeError(f"no JSON rule for {data_type}")


def _json_kind(value: object) -> str:
    """The JSON type of a parsed value, for messages (the value itself may be PII)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "null"


def _value_problem(value: object, spec: object, path: str) -> str | None:
    """Why `value` is not of the contract type `spec` (null always is), or None."""
    if value is None:
        return None
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"field '{path}': expected an object, got {_json_kind(value)}"
        return _object_problem(value, spec, path + ".")
    if _VALID[str(spec)](value):
        return None
    got = _json_kind(value)
    if got == "a number" and spec in ("number", "integer"):
        if isinstance(value, float) and not math.isfinite(value):
            got = "an infinite number"
        elif isinstance(value, float):
            got = "a fraction"
        else:
            got = "a number beyond 64 bits"
    elif spec == "timestamp" and got == "a string":
        got = "a string in another format or an impossible time"
    return f"field '{path}': expected {_EXPECTED[str(spec)]}, got {got}"


def _is_int64(value: object) -> bool:
    return type(value) is int and _INT64[0] <= value <= _INT64[1]


@lru_cache(maxsize=1024)  # a file's rows share a few _ingested_at values
def _is_timestamp(text: str) -> bool:
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second, _ = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return False
    return True


# bool is an int to Python, not a number to the contract: types are compared exactly
_VALID: dict[str, Callable[[object], bool]] = {
    "text": lambda value: type(value) is str,
    "number": lambda value: _is_int64(value) or (type(value) is float and math.isfinite(value)),
    "integer": _is_int64,
    "timestamp": lambda value: type(value) is str and _is_timestamp(value),
}


def _object_problem(record: dict[str, object], spec: dict[str, object], prefix: str) -> str | None:
    if not spec.keys() <= record.keys():
        missing = [name for name in spec if name not in record]
        inside = f" of '{prefix[:-1]}'" if prefix else ""
        return f"missing fields {missing}{inside} (a field with no value is written as null)"
    for name, field_spec in spec.items():
        value = record[name]
        if value is None or (type(value) is str and field_spec == "text"):
            continue  # most values: judged without a call
        problem = _value_problem(value, field_spec, prefix + name)
        if problem:
            return problem
    return None


def _has_surrogate(value: object) -> bool:
    """Text holding half a surrogate pair (`\\ud800`): valid to Python's json, not to DuckDB."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


@dataclass
class _JsonRecords:
    """Judges JSON lines one by one and hands their ingestion metadata to the row audit in
    batches (the audit of Parquet rows, so the same reasons)."""

    feed: Feed
    audit: _RowAudit
    spec: dict[str, object] = field(init=False)
    metadata: list[list[object]] = field(init=False)

    def __post_init__(self) -> None:
        self.spec = {f.name: _json_spec(f.type) for f in self.feed.schema}
        self.metadata = [[] for _ in _METADATA]

    def add(self, line: bytes) -> str | None:
        """Why the line is bad, or None (a blank line is no record: DuckDB skips it)."""
        if not line.strip(b" \t\r"):
            return None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            return f"not valid UTF-8 (byte {error.start + 1} of the line)"
        if text.startswith("\ufeff"):
            return "starts with a byte order mark (BOM), which DuckDB refuses"
        try:
            record = _DECODER.decode(text)
        except _DuplicateKey as error:
            return str(error)
        except json.JSONDecodeError as error:
            return f"not valid JSON ({error.msg}; character {error.colno})"
        except ValueError as error:  # NaN, Infinity
            return f"not valid JSON ({error})"
        if not isinstance(record, dict):
            return f"expected a JSON object, got {_json_kind(record)}"
        if _SURROGATE_ESCAPE.search(line) and _has_surrogate(record):
            return "a \\u escape is half a surrogate pair, not a character (DuckDB refuses it)"
        problem = _object_problem(record, self.spec, "")
        if problem:
            return problem
        for values, name in zip(self.metadata, _METADATA, strict=True):
            values.append(record[name])
        if len(self.metadata[0]) >= _BATCH_ROWS:
            self.flush()
        return None

    def flush(self) -> None:
        if not self.metadata[0]:
            return
        # _ingested_at goes to the audit as the text it is: only its presence is audited
        types = (pa.string(), pa.int64(), pa.string())
        columns = [pa.array(v, t) for v, t in zip(self.metadata, types, strict=True)]
        self.audit.add(pa.table(dict(zip(_METADATA, columns, strict=True))))
        self.metadata = [[] for _ in _METADATA]


def _schema_problem(actual: pa.Schema, feed: Feed) -> str | None:
    folded = Counter(name.lower() for name in actual.names)
    clashes = sorted(name for name in actual.names if folded[name.lower()] > 1)
    if clashes:
        return (
            f"schema mismatch: columns {clashes} appear twice, or differ only in case "
            "(Athena folds case)"
        )
    names = set(actual.names)
    missing = [f.name for f in feed.schema if f.name not in names]
    if missing:
        return f"schema mismatch: missing columns {missing}"
    wrong = [
        f"{f.name} is {actual.field(f.name).type}, expected {f.type}"
        for f in feed.schema
        if not _as_read(actual.field(f.name).type).equals(f.type)
    ]
    if wrong:
        return "schema mismatch: " + "; ".join(wrong)
    partitions = sorted(name for name in actual.names if name.lower() in _PARTITION_COLUMNS)
    if partitions:
        return (
            f"schema mismatch: columns {partitions} are named like the partition columns "
            "(the folders say the partition)"
        )
    return None


def _as_read(data_type: pa.DataType) -> pa.DataType:
    """The type every reader sees: Parquet stores dictionary and large text as plain text
    (the Arrow flavour is only a hint pyarrow may have stored in the file)."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    if pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return pa.string()
    return data_type


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


# The raw files found valid, by lake-relative path: [size in bytes, modification time in ns]
# when they were checked. A raw file is never rewritten in place (writers rename a finished
# file into its name), so a file with the same size and time is the file that was checked, and
# a build reads the whole history's files without checking each of them again every day; any
# change to a file (a new delivery under its name, an edit) checks it again.
VALID_FILES = "valid_files.json"


def _signature(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _found_valid(ledger: Path) -> dict[str, list[int]]:
    """The ledger's files, raw/<feed>/... -> [size, time]; none (every file checked again)
    when it is missing or unreadable, and no entry of another shape."""
    try:
        files = json.loads(ledger.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {
        key: value
        for key, value in files.items()
        if key.startswith(RAW_PREFIX)
        and key.count("/") > 1
        and isinstance(value, list)
        and len(value) == 2
        and all(type(number) is int for number in value)
    }


def validate_lake(
    lake: Lake, feeds: Iterable[Feed] | None = None, *, recheck: bool = False
) -> ValidationReport:
    """Checks every raw file not found valid before as it is now (VALID_FILES; recheck: every
    file); quarantines the bad ones. Returns what it found: every raw file present is checked,
    or unchanged, or quarantined. One validation at a time per lake (a lock beside the
    ledger), so two never move the same file or write the ledger at once."""
    report = ValidationReport()
    ledger = lake.validation_state / VALID_FILES
    chosen = list(feeds or FEEDS.values())
    with exclusive(lake.validation_state / ".lock"):
        known = {} if recheck else _found_valid(ledger)
        names = {feed.name for feed in chosen}
        # the other feeds' entries stay as they were (a key is raw/<feed>/...)
        valid = {key: value for key, value in known.items() if key.split("/")[1] not in names}
        for feed in chosen:
            feed_dir = lake.raw / feed.name
            if not feed_dir.exists():
                continue
            for path in sorted(p for p in feed_dir.rglob("*") if p.is_file()):
                if is_being_written(path.name):
                    continue  # a writer's unfinished file: no reader's glob matches it
                key, signature = lake.relative(path), _signature(path)
                if known.get(key) == signature:
                    report.unchanged += 1
                    valid[key] = signature
                    continue
                report.checked += 1
                reason = problem_with(path, feed, lake)
                if reason is None:
                    report.valid += 1
                    valid[key] = signature
                else:
                    report.quarantined.append(quarantine(lake, path, feed, reason))
        write_json_durably(ledger, {"files": valid})
    emit_validate(lake.root, report)
    return report
