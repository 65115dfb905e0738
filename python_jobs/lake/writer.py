"""Writes raw files: stamps ingestion metadata, enforces the feed schema, never rewrites history.

Raw is immutable and append-only. Writing a file that already exists is allowed only
when the bytes would be identical (a deterministic re-run); anything else is refused,
so a re-delivery can never silently replace what dbt has already processed.

How the bytes are made is chosen for write speed without changing what readers see
(the measurements: bench/NOTES.md, "Generation speed"):

- Parquet: zstd level 1 (half snappy's size for about the same CPU; Athena bills the compressed bytes it scans), one row group per file up to
  `PARQUET_ROW_GROUP_ROWS`, no stored Arrow schema. Text columns the producer hands over
  as Arrow dictionary arrays (the generator's types, channels, cities, states...) are
  written as Parquet dictionary pages straight from their indices; every other text
  column is written plain: trying a dictionary on ids, keys and amounts costs a hash per
  row and then falls back anyway. Min/max statistics only where a reader uses them
  (`STATISTICS_COLUMNS`). Without the stored Arrow schema a dictionary column reads back
  as the plain string the contract declares, in pyarrow as in DuckDB and Athena.
- JSON lines: built by pyarrow compute (escaping, nulls, nested structs) and gzip'ed with
  zlib in one stream at `JSON_GZIP_LEVEL`; no DuckDB connection per file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from python_jobs.lake.layout import WRITING_PREFIX, WRITING_SUFFIX, Lake
from python_jobs.lake.schemas import Feed

PARQUET_COMPRESSION = "zstd"
PARQUET_COMPRESSION_LEVEL = 1
# A generated day (about 330,000 rows at 111,000 customers) is one row group; bigger
# files are split so readers can still parallelize within a file.
PARQUET_ROW_GROUP_ROWS = 1_000_000
# Min/max statistics for the ingestion metadata only: `max(_ingested_at)` (dbt source
# freshness) is answered from them without reading pages. Raw text is always read whole
# (dbt triages every row of a partition), so text statistics would cost a comparison per
# value for no reader.
STATISTICS_COLUMNS = ("_source_row", "_ingested_at")
# zlib level 1: three times faster than the default 6 for files about 30% larger; the
# extracts are a few percent of the lake.
JSON_GZIP_LEVEL = 1
# JSON is built and compressed this many rows at a time (bounded memory, int32 offsets).
JSON_CHUNK_ROWS = 100_000
JSON_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


class RawFileConflict(RuntimeError):
    """A raw file exists with different content: raw files are never overwritten."""


def stamp(table: pa.Table, feed: Feed, source_file: str, ingested_at: datetime) -> pa.Table:
    """Adds the ingestion columns and casts to the feed's schema (column order included).

    A dictionary-encoded text column stays dictionary-encoded: it is the same text, and the
    Parquet writer can store its dictionary as is.
    """
    n = table.num_rows
    missing = [c for c in feed.payload_columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{feed.name}: table lacks columns {missing}")
    ingestion = {
        "_source_file": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int8)), pa.array([source_file], pa.string())
        ),
        "_source_row": pa.array(np.arange(n, dtype=np.int64)),
        "_ingested_at": pa.repeat(pa.scalar(ingested_at, pa.timestamp("us")), n),
    }
    columns, fields = [], []
    for field in feed.schema:
        column = ingestion[field.name] if field.name in ingestion else table[field.name]
        if _is_text_dictionary(column.type, field.type):
            fields.append(pa.field(field.name, column.type))
        else:
            column = column.cast(field.type)
            fields.append(field)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _is_text_dictionary(actual: pa.DataType, declared: pa.DataType) -> bool:
    return pa.types.is_dictionary(actual) and actual.value_type.equals(declared)


def write_raw(
    lake: Lake, feed: Feed, day: date, table: pa.Table, *, batch: str, ingested_at: datetime
) -> Path:
    """Writes one raw file for `feed` in the ingestion partition of `day`; returns its path."""
    target = lake.raw_file(feed, day, batch)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamped = stamp(table, feed, lake.relative(target.parent) + "/" + target.name, ingested_at)
    # the unfinished file matches no reader's glob (layout.WRITING_SUFFIX)
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=WRITING_PREFIX, suffix=feed.file_suffix + WRITING_SUFFIX
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write(stamped, feed, tmp)
        if target.exists():
            if _digest(target, feed) != _digest(tmp, feed):
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
        _write_parquet(table, path)
    else:
        _write_json_lines(table, path)


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with the settings the module docstring explains."""
    names = table.column_names
    pq.write_table(
        table,
        path,
        row_group_size=PARQUET_ROW_GROUP_ROWS,
        compression=PARQUET_COMPRESSION,
        compression_level=PARQUET_COMPRESSION_LEVEL,
        use_dictionary=[f.name for f in table.schema if pa.types.is_dictionary(f.type)],
        write_statistics=[c for c in STATISTICS_COLUMNS if c in names],
        store_schema=False,
    )


# --- JSON lines ------------------------------------------------------------------------------

# Control characters must be escaped; U+2028/U+2029 may stay raw in JSON but are line
# breaks to some line readers, so they are escaped too.
_CONTROL_ESCAPES = {
    char: json.dumps(char)[1:-1] for char in [*map(chr, range(0x20)), "\u2028", "\u2029"]
}
_LINE_SEPARATORS = r"[\x{2028}\x{2029}]"


def _write_json_lines(table: pa.Table, path: Path) -> None:
    """Newline-delimited JSON, gzip. The gzip header carries no name and no time, so equal
    tables give equal bytes (the immutability check compares payloads anyway)."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=JSON_GZIP_LEVEL, mtime=0
        ) as out,
    ):
        for start in range(0, table.num_rows, JSON_CHUNK_ROWS):
            out.write(_string_data(json_lines(table.slice(start, JSON_CHUNK_ROWS))))


def json_lines(table: pa.Table) -> pa.Array:
    """Each row as one JSON object and a newline, columns in table order; every piece is
    built column-wise by pyarrow compute (no per-row Python), and one final join
    assembles the rows."""
    if table.num_rows == 0:
        return pa.array([], pa.string())
    parts: list[str | pa.Array] = []
    for i, (name, column) in enumerate(zip(table.column_names, table.columns, strict=True)):
        parts.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        parts.extend(_json_parts(column.combine_chunks()))
    parts.append("}\n")
    return _join(parts)


def _join(parts: list[str | pa.Array]) -> pa.Array:
    """Concatenates literal and array pieces row-wise (adjacent literals merged first)."""
    merged: list[str | pa.Array] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return pc.binary_join_element_wise(*merged, "")


def _json_parts(values: pa.Array) -> list[str | pa.Array]:
    """The JSON text of every value as pieces to join: literals around arrays where the
    column has no nulls (e.g. the quotes of a string), one null-free array otherwise."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        # Encode each distinct value once, then pick by index: a constant column (the
        # source file) or a small vocabulary costs one gather.
        return [_json_text(values.dictionary).take(values.indices).fill_null("null")]
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return _json_parts(pc.dictionary_encode(values))  # strftime is ~1.5 us a value
    if values.null_count == 0:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return ['"', _escaped(values), '"']
        if pa.types.is_struct(kind):
            parts: list[str | pa.Array] = []
            for i, child in enumerate(values.flatten()):
                parts.append(("{" if i == 0 else ",") + json.dumps(kind.field(i).name) + ":")
                parts.extend(_json_parts(child))
            return [*parts, "}"]
    return [_json_text(values).fill_null("null")]


def _json_text(values: pa.Array) -> pa.Array:
    """JSON text of every value; null where the value is null."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        return _json_text(values.dictionary).take(values.indices)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.binary_join_element_wise('"', _escaped(values), '"', "")
    if pa.types.is_boolean(kind):
        return pc.if_else(values, "true", "false")
    if pa.types.is_integer(kind):
        return values.cast(pa.string())
    if pa.types.is_floating(kind):
        values = values.cast(pa.float64())
        text = pc.if_else(pc.is_finite(values), values, None).cast(pa.string())  # no NaN in JSON
        # 1500.0 is written 1500.0, not 1500: it stays a float to type-inferring readers.
        return pc.if_else(
            pc.match_substring_regex(text, "[.eE]"),
            text,
            pc.binary_join_element_wise(text, ".0", ""),
        )
    if pa.types.is_timestamp(kind):
        seconds = pc.cast(values, pa.timestamp("s", kind.tz), safe=False)
        return pc.binary_join_element_wise(
            '"', pc.strftime(seconds, format=JSON_TIMESTAMP_FORMAT), '"', ""
        )
    if pa.types.is_date(kind):
        return pc.binary_join_element_wise('"', pc.strftime(values, format="%Y-%m-%d"), '"', "")
    if pa.types.is_struct(kind):
        parts: list[str | pa.Array] = []
        for i, child in enumerate(values.flatten()):
            parts.append(("{" if i == 0 else ",") + json.dumps(kind.field(i).name) + ":")
            parts.extend(_json_parts(child))
        return pc.if_else(values.is_null(), None, _join([*parts, "}"]))
    raise TypeError(f"no JSON encoding for {kind}")


def _escaped(values: pa.Array) -> pa.Array:
    """String contents with quotes, backslashes, control characters and line separators
    escaped; everything else (accents included) stays UTF-8. Values that need nothing
    (nearly all) are recognized by one scan of the byte buffer."""
    values = values.cast(pa.string())
    if not _may_need_escape(values):
        return values
    values = pc.replace_substring(values, "\\", "\\\\")
    values = pc.replace_substring(values, '"', '\\"')
    for char, escaped in _CONTROL_ESCAPES.items():
        if pc.any(pc.match_substring(values, char)).as_py():
            values = pc.replace_substring(values, char, escaped)
    return values


def _may_need_escape(values: pa.Array) -> bool:
    data = values.buffers()[2]
    if data is None or len(values) == 0:
        return False
    raw = np.frombuffer(data, np.uint8)
    if ((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any():
        return True
    # U+2028 / U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
    return bool((raw == 0xE2).any()) and bool(
        pc.any(pc.match_substring_regex(values, _LINE_SEPARATORS)).as_py()
    )


def _string_data(lines: pa.Array) -> memoryview:
    """The bytes of a null-free string array, in row order, without a copy."""
    offsets = np.frombuffer(
        lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4
    )
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a raw JSON-lines file (gzip), in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _digest(path: Path, feed: Feed) -> str:
    if feed.file_format == "jsonl.gz":
        # Compare the payload: the same records are the same delivery, whatever the gzip.
        with gzip.open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()
