"""Reads the user's CSV or Parquet file into text columns, one per mapping key, losing no row.

Raw keeps values exactly as delivered, so every cell is read as text: no type inference
(which would turn "007" into 7 or "1,5" into a date). A CSV line with the wrong number of
fields cannot be split into columns; it is kept whole, with its line number, for the
importer to land in raw so that dbt rejects it visibly. Only a file that cannot be used at
all (unreadable, not CSV or Parquet, a mapped column missing) is an error, and the message
names the file, the mapping key and the column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from python_jobs.importer.mapping import CONTRACT_TIMESTAMP, Mapping

RAW_TIMEZONE = "America/Sao_Paulo"  # raw event_ts is São Paulo wall time (schemas.py)


class UnusableSource(ValueError):
    """The source file as a whole cannot be imported; the message says where and why."""


@dataclass(frozen=True)
class MalformedLine:
    """A CSV line that could not be split into the header's columns."""

    line: int | None  # 1-based physical line in the file (the header is line 1)
    text: str
    fields: int  # how many fields the line has
    expected: int  # how many the header has


@dataclass(frozen=True)
class SourceRows:
    table: pa.Table  # one string column per mapping key ("amount", "fraud.column"...)
    malformed: tuple[MalformedLine, ...]
    typed_timestamps: frozenset[str]  # keys whose column was a real date/timestamp type


def read_source(path: Path, mapping: Mapping) -> SourceRows:
    """The mapped columns of `path` as text, keyed by mapping key, in file order."""
    if not path.is_file():
        raise UnusableSource(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt"}:
        return _read_csv(path, mapping)
    if suffix in {".parquet", ".pq"}:
        return _read_parquet(path, mapping)
    raise UnusableSource(f"{path}: expected a .csv or .parquet file")


def _check_columns(path: Path, mapping: Mapping, available: list[str]) -> dict[str, str]:
    columns = mapping.source_columns()
    missing = [
        f"'{key}' names column '{col}'" for key, col in columns.items() if col not in available
    ]
    if missing:
        raise UnusableSource(
            f"{path}: the file has no such column: "
            + "; ".join(missing)
            + f" (the file's columns: {', '.join(available) or 'none'})"
        )
    return columns


def _read_csv(path: Path, mapping: Mapping) -> SourceRows:
    options = mapping.csv
    header = _csv_header(path, mapping)
    columns = _check_columns(path, mapping, header)
    malformed: list[MalformedLine] = []

    def keep_aside(row: pa_csv.InvalidRow) -> str:
        # Called by the reader for bad lines only: set the line aside, it is landed later.
        malformed.append(
            MalformedLine(row.number, row.text, row.actual_columns, row.expected_columns)
        )
        return "skip"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(encoding=options.encoding, use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter=options.delimiter,
                quote_char=options.quote,
                newlines_in_values=True,
                invalid_row_handler=keep_aside,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                include_columns=sorted(set(columns.values())),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, UnicodeDecodeError, OSError) as error:
        raise UnusableSource(
            f"{path}: cannot read as CSV (encoding {options.encoding}, delimiter "
            f"{options.delimiter!r}): {_first_line(error)}"
        ) from None
    keyed = pa.table({key: table[column] for key, column in columns.items()})
    return SourceRows(keyed, tuple(malformed), frozenset())


def _csv_header(path: Path, mapping: Mapping) -> list[str]:
    options = mapping.csv
    encoding = "utf-8-sig" if options.encoding.lower().replace("_", "-") == "utf-8" else None
    try:
        with path.open(newline="", encoding=encoding or options.encoding) as handle:
            header = next(csv.reader(handle, delimiter=options.delimiter, quotechar=options.quote))
    except StopIteration:
        raise UnusableSource(f"{path}: the file is empty (no header line)") from None
    except (UnicodeDecodeError, csv.Error, OSError) as error:
        raise UnusableSource(
            f"{path}: cannot read the header line as {options.encoding}: {_first_line(error)}"
        ) from None
    return header


def _read_parquet(path: Path, mapping: Mapping) -> SourceRows:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise UnusableSource(f"{path}: cannot read as Parquet: {_first_line(error)}") from None
    columns = _check_columns(path, mapping, schema.names)
    try:
        table = pq.read_table(path, columns=sorted(set(columns.values())))
    except (pa.ArrowException, OSError) as error:
        raise UnusableSource(f"{path}: cannot read as Parquet: {_first_line(error)}") from None
    keyed: dict[str, pa.Array] = {}
    typed: set[str] = set()
    for key, column in columns.items():
        array = table[column].combine_chunks()
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
            keyed[key] = _contract_text(array)
            typed.add(key)
        elif _is_scalar_text_castable(array.type):
            keyed[key] = array.cast(pa.string())
        else:
            raise UnusableSource(
                f"{path}: column '{column}' (mapping key '{key}') has type {array.type}, "
                "which cannot be read as text"
            )
    return SourceRows(pa.table(keyed), (), frozenset(typed))


def _contract_text(array: pa.Array) -> pa.Array:
    """Dates and timestamps as the raw contract's text; zoned instants as São Paulo time."""
    if pa.types.is_timestamp(array.type) and array.type.tz is not None:
        zoned = array.cast(pa.timestamp(array.type.unit, tz=RAW_TIMEZONE))
        array = pc.local_timestamp(zoned)
    seconds = array.cast(pa.timestamp("s"), safe=False)  # the contract has whole seconds
    return pc.strftime(seconds, format=CONTRACT_TIMESTAMP)


def _is_scalar_text_castable(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
        or pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_null(data_type)
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
