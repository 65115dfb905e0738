"""Every kind of bad raw file, for every feed: quarantined with its reason, or accepted where
the build reads it as meant; the build passes with the rest and every raw row reconciles.

The kinds and their verdicts are the ones python_jobs/lake/validate.py documents. One lake
holds good files of every feed on three days plus one file of every (feed, kind) at once,
each under its own name; it is validated and built once (the two steps of
`pipeline.build()`), then each case checks its own file: in quarantine/ with the same bytes,
the same relative path and a `.reason.json` giving the expected reason, or still in raw/
with its rows in the processed layer. `test_the_verdict_is_the_same_on_bytes_and_on_a_path`
judges the same files without dbt, as the S3 trigger (bytes, or a /tmp copy) would.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from python_jobs.dbt_runner import DbtOutcome, run_dbt
from python_jobs.generate.formatting import cpf_digits, format_cpf
from python_jobs.lake.layout import Lake, partition_path
from python_jobs.lake.schemas import (
    ACCOUNTS,
    ALERT_VERDICTS,
    CUSTOMERS,
    FEEDS,
    FRAUD_REPORTS,
    TRANSACTIONS,
    Feed,
)
from python_jobs.lake.validate import (
    REASON_SUFFIX,
    ValidationReport,
    check_raw_file,
    quarantine_key,
    validate_lake,
)
from python_jobs.lake.writer import json_lines, stamp, write_raw
from python_jobs.tests.conftest import customer_rows, transaction_rows

DAY = date(2026, 11, 2)  # where the bad files land, beside that day's good ones
NEXT_DAY = date(2026, 11, 3)
GOOD_DAYS = (date(2026, 11, 1), DAY, NEXT_DAY)
ROWS = 3  # rows in every file that has rows


# --- Files -----------------------------------------------------------------------------------


_CPF_ROOTS = itertools.count(123_456_000, 100)
FIRST = "good01"  # the first good files: customer C1, account A1, report R1


def payload(feed: Feed, n: int, tag: str, day: date = DAY) -> pa.Table:
    """`n` coherent records of `feed` with ids unique to `tag`: every transaction is on
    account A1 of customer C1 (in the first good files), reports point at one of them."""
    ids = [f"{tag}-{i}" for i in range(n)]
    if tag == FIRST and n:
        ids[0] = "1"
    if feed is TRANSACTIONS:
        return transaction_rows(day, n, prefix=f"T{tag}-")
    if feed is CUSTOMERS:
        rows = customer_rows(day).take([0] * n)
        rows = rows.set_column(0, "customer_id", pa.array([f"C{i}" for i in ids], pa.string()))
        first = next(_CPF_ROOTS)  # every customer their own CPF
        roots = np.arange(first, first + n)
        return rows.set_column(2, "cpf", format_cpf(cpf_digits(roots)))
    if feed is ACCOUNTS:
        return pa.table(
            {
                "account_id": [f"A{i}" for i in ids],
                "customer_id": ["C1"] * n,
                "account_type": ["checking"] * n,
                "opened_date": ["2020-01-01"] * n,
                "status": ["active"] * n,
                "credit_limit": pa.array([None] * n, pa.float64()),
                "updated_at": [f"{day} 08:00:00"] * n,
            }
        )
    if feed is ALERT_VERDICTS:
        return pa.table(
            {
                "verdict_id": [f"V{i}" for i in ids],
                "transaction_id": [f"T{FIRST}-{GOOD_DAYS[0]:%Y%m%d}0000"] * n,
                "verdict": ["legitimate"] * n,
                "investigator": ["ana.souza"] * n,
                "decided_at": [f"{day} 12:00:00"] * n,
                "score_date": [str(day)] * n,
                "model_version": ["v1"] * n,
            }
        )
    assert feed is FRAUD_REPORTS, f"no payload for feed {feed.name}"
    return pa.table(
        {
            "report_id": [f"R{i}" for i in ids],
            "transaction_id": [f"T{FIRST}-{GOOD_DAYS[0]:%Y%m%d}0000"] * n,
            "reported_at": [f"{day} 12:00:00"] * n,
            "scenario": ["pix_scam"] * n,
            "report_channel": ["med"] * n,
        }
    )


def stamped(feed: Feed, key: str, n: int = ROWS, rows_of: Feed | None = None) -> pa.Table:
    """Records as the writer stamps them for `key` (of another feed's shape with rows_of)."""
    tag = key.rsplit("/", 1)[-1].split(".")[0]
    return stamp(payload(rows_of or feed, n, tag), rows_of or feed, key, datetime(2026, 11, 2, 2))


def encode(feed: Feed, table: pa.Table, **parquet_options: object) -> bytes:
    """The bytes the writer would write for `table` in `feed`'s format."""
    if feed.file_format == "parquet":
        sink = io.BytesIO()
        options = {"compression": "zstd", "store_schema": False} | parquet_options
        pq.write_table(table, sink, **options)
        return sink.getvalue()
    return gzip.compress("".join(json_lines(table).to_pylist()).encode(), mtime=0)


def good(feed: Feed, key: str) -> bytes:
    return encode(feed, stamped(feed, key))


def plain_lines(feed: Feed, key: str) -> list[bytes]:
    """The uncompressed JSON lines of a good file (each without its newline)."""
    return gzip.decompress(good(feed, key)).splitlines()


def edited_json(feed: Feed, key: str, edit: Callable[[dict], bytes]) -> bytes:
    """A good JSON file whose line 2 is `edit(record)`."""
    lines = plain_lines(feed, key)
    lines[1] = edit(json.loads(lines[1]))
    return gzip.compress(b"\n".join(lines) + b"\n", mtime=0)


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return pa.Table.from_arrays([*table.columns, values], names=[*table.column_names, name])


# --- The kinds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    feed: Feed
    kind: str
    key: str  # lake-relative path it is dropped at
    data: bytes
    reason: str | None  # part of the expected reason; None: valid, stays in raw
    rows: int = 0  # valid files: rows that must reach the processed layer


def key_for(feed: Feed, kind: str, day: date = DAY, folder: str = "", name: str = "") -> str:
    name = name or f"{feed.name}-{day:%Y%m%d}-{kind}{feed.file_suffix}"
    return f"raw/{feed.name}/{partition_path(day)}/{folder}{name}"


NO_LINES = (
    "n/a to Parquet: a JSON-lines kind (Parquet has no lines or byte-order mark; a broken "
    "Parquet file is the truncated, wrong_magic and trailing_bytes kinds)"
)
Made = tuple[bytes, str | None] | tuple[bytes, str | None, int] | str
Maker = Callable[[Feed, str], Made]


def _empty(feed: Feed, key: str) -> Made:
    return b"", "empty file (0 bytes)"


def _truncated(feed: Feed, key: str) -> Made:
    data = good(feed, key)
    expected = "incomplete Parquet file" if feed is TRANSACTIONS else "truncated gzip stream"
    return data[: len(data) // 2], expected


def _wrong_magic(feed: Feed, key: str) -> Made:
    if feed is TRANSACTIONS:  # a gzip'ed JSON delivery named .parquet
        return gzip.compress(json_lines(stamped(feed, key))[0].as_py().encode()), "not a Parquet"
    return gzip.decompress(good(feed, key)), "not a gzip file"  # JSON lines, not compressed


_OTHER = {TRANSACTIONS: CUSTOMERS, CUSTOMERS: ACCOUNTS, ACCOUNTS: FRAUD_REPORTS}


def _wrong_schema(feed: Feed, key: str) -> Made:
    """A file of another feed's records (with their ingestion metadata)."""
    data = encode(feed, stamped(feed, key, rows_of=_OTHER.get(feed, TRANSACTIONS)))
    return data, "missing columns" if feed is TRANSACTIONS else "line 1: missing fields"


def _missing_column(feed: Feed, key: str) -> Made:
    name = feed.payload_columns[1]
    data = encode(feed, stamped(feed, key).drop([name]))
    if feed is TRANSACTIONS:
        return data, f"schema mismatch: missing columns ['{name}']"
    return data, f"line 1: missing fields ['{name}']"


# JSON: a value DuckDB would fail on (credit_limit "abc") or read as something else than sent
# (monthly_income "5000.00" as 5000.0, report_id 123 as the text '123')
_WRONG_JSON_TYPE = {
    CUSTOMERS: ("monthly_income", "5000.00", "expected a number, got a string"),
    ACCOUNTS: ("credit_limit", "abc", "expected a number, got a string"),
    FRAUD_REPORTS: ("report_id", 123, "expected a string, got a number"),
    ALERT_VERDICTS: ("verdict", True, "expected a string, got a boolean"),
}


def _wrong_type(feed: Feed, key: str) -> Made:
    if feed is TRANSACTIONS:
        table = stamped(feed, key)
        index = table.schema.get_field_index("amount")
        table = table.set_column(index, "amount", pa.array([10.5] * ROWS))
        return encode(feed, table), "amount is double, expected string"
    name, value, expected = _WRONG_JSON_TYPE[feed]
    data = edited_json(feed, key, lambda record: json.dumps(record | {name: value}).encode())
    return data, f"line 2: field '{name}': {expected}"


def _extra_column(feed: Feed, key: str) -> Made:
    """Valid: union_by_name (Parquet) and the explicit columns (JSON) leave it out."""
    table = with_column(stamped(feed, key), "note", pa.array(["x"] * ROWS))
    return encode(feed, table), None, ROWS


def _partition_named_column(feed: Feed, key: str) -> Made:
    """A column `day`: Parquet refused (which day is it?); a JSON key is never read."""
    table = with_column(stamped(feed, key), "day", pa.array(["31"] * ROWS))
    if feed is TRANSACTIONS:
        return encode(feed, table), "named like the partition columns"
    return encode(feed, table), None, ROWS


def _case_clash(feed: Feed, key: str) -> Made:
    """`X` beside `x`: DuckDB reads one of them, Athena (case-insensitive) cannot tell."""
    name = feed.payload_columns[0]
    table = with_column(stamped(feed, key), name.upper(), pa.array(["x"] * ROWS))
    return encode(feed, table), "differ only in case"


def _duplicate_key(feed: Feed, key: str) -> Made:
    name = feed.payload_columns[0]
    if feed is TRANSACTIONS:
        table = with_column(stamped(feed, key), name, pa.array(["x"] * ROWS))
        return encode(feed, table), "appear twice"
    twice = f', "{name}": "x"}}'.encode()
    data = edited_json(feed, key, lambda record: json.dumps(record).encode()[:-1] + twice)
    return data, f"line 2: key '{name}' appears twice"


def _bad_json_line(feed: Feed, key: str) -> Made:
    if feed is TRANSACTIONS:
        return NO_LINES
    data = edited_json(feed, key, lambda record: json.dumps(record).encode()[:40])
    return data, "line 2: not valid JSON"


def _non_utf8(feed: Feed, key: str) -> Made:
    """Latin-1 text: DuckDB refuses the whole file, in either format."""
    if feed is TRANSACTIONS:
        table = stamped(feed, key)
        city = table.column("city").combine_chunks()
        text = b"".join(v.encode() for v in city.to_pylist()).replace("ã".encode(), b"\xe3", 2)
        text = text.replace(b"\xe3", "ã".encode(), 1)  # row 0 stays valid, row 1 is not
        width = len("São Paulo".encode())
        offsets = pa.array([0, width, width * 2 - 1, width * 3 - 1], pa.int32())
        bad = pa.StringArray.from_buffers(ROWS, offsets.buffers()[1], pa.py_buffer(text))
        table = table.set_column(table.schema.get_field_index("city"), "city", bad)
        return encode(feed, table), "column 'city', row 1"
    name = feed.payload_columns[0]
    data = edited_json(
        feed, key, lambda r: json.dumps(r | {name: "@@"}).encode().replace(b"@@", b"S\xe3o")
    )
    return data, "line 2: not valid UTF-8"


def _no_rows(feed: Feed, key: str) -> Made:
    """Valid: a complete file of no rows (a day without reports) builds nothing."""
    if feed is TRANSACTIONS:
        return encode(feed, stamped(feed, key, n=0)), None, 0
    return gzip.compress(b"", mtime=0), None, 0


def _blank_lines(feed: Feed, key: str) -> Made:
    """Valid: DuckDB skips blank lines, and Windows line ends are fine to both."""
    if feed is TRANSACTIONS:
        return NO_LINES
    return gzip.compress(b"\r\n\n".join(plain_lines(feed, key)) + b"\r\n\n", mtime=0), None, ROWS


def _several_parts(feed: Feed, key: str) -> Made:
    """Valid: one row group per row, or one gzip member per line (a concatenated delivery)."""
    if feed is TRANSACTIONS:
        return encode(feed, stamped(feed, key), row_group_size=1), None, ROWS
    return b"".join(gzip.compress(line + b"\n") for line in plain_lines(feed, key)), None, ROWS


def _trailing_bytes(feed: Feed, key: str) -> Made:
    """Zero padding after the data: Python's gzip forgives it, DuckDB does not."""
    expected = "incomplete Parquet file" if feed is TRANSACTIONS else "after the end of the gzip"
    return good(feed, key) + b"\0" * 16, expected


def _bom(feed: Feed, key: str) -> Made:
    if feed is TRANSACTIONS:
        return NO_LINES
    return gzip.compress(b"\xef\xbb\xbf" + gzip.decompress(good(feed, key))), "byte order mark"


def _null_line(feed: Feed, key: str) -> Made:
    """`null` is a row of nulls to DuckDB (and crashes pyarrow's JSON reader)."""
    if feed is TRANSACTIONS:
        return NO_LINES
    return edited_json(
        feed, key, lambda record: b"null"
    ), "line 2: expected a JSON object, got null"


def _misplaced(feed: Feed, key: str) -> Made:
    """A good file copied to another day's partition would count twice (placed by KEYS)."""
    return good(feed, key_for(feed, "misplaced")), "rows say they landed in"


def _stray(feed: Feed, key: str) -> Made:
    return b"# notes about this delivery\n", f"expected a {feed.file_suffix} file"


def _good_elsewhere(reason: str) -> Maker:
    """Good content, stamped for where it lies: only the place is wrong."""
    return lambda feed, key: (good(feed, key), reason)


KINDS: dict[str, Maker] = {
    # the eleven kinds
    "empty": _empty,
    "truncated": _truncated,
    "wrong_magic": _wrong_magic,
    "wrong_schema": _wrong_schema,
    "wrong_type": _wrong_type,
    "extra_column": _extra_column,
    "bad_json_line": _bad_json_line,
    "non_utf8": _non_utf8,
    "no_rows": _no_rows,
    "wrong_partition": _good_elsewhere("partition year=2026/month=13/day=02 is not a valid date"),
    "stray_file": _stray,
    # and the others found on the way
    "missing_column": _missing_column,
    "partition_named_column": _partition_named_column,
    "case_clash": _case_clash,
    "duplicate_key": _duplicate_key,
    "blank_lines": _blank_lines,
    "several_parts": _several_parts,
    "trailing_bytes": _trailing_bytes,
    "bom": _bom,
    "null_line": _null_line,
    "misplaced": _misplaced,
    "nested_folder": _good_elsewhere("not directly inside a year=YYYY/month=MM/day=DD partition"),
    "hidden_name": _good_elsewhere("hidden name"),
}


def place(feed: Feed, kind: str) -> str:
    if kind == "wrong_partition":
        return key_for(feed, kind).replace("month=11", "month=13")
    if kind == "stray_file":
        return key_for(feed, kind, name="README.md")
    if kind == "nested_folder":
        return key_for(feed, kind, folder="late/")
    if kind == "hidden_name":
        return key_for(feed, kind, name=f".tmp-{feed.name}-{kind}{feed.file_suffix}")
    if kind == "misplaced":
        return key_for(feed, kind, day=NEXT_DAY)
    return key_for(feed, kind)


def cases() -> list[object]:
    params: list[object] = []
    for kind, make in KINDS.items():
        for feed in FEEDS.values():
            key = place(feed, kind)
            made = make(feed, key)
            case_id = f"{feed.name}-{kind}"
            if isinstance(made, str):
                params.append(pytest.param(None, id=case_id, marks=pytest.mark.skip(reason=made)))
                continue
            data, reason, *rows = made
            case = Case(feed, kind, key, data, reason, rows[0] if rows else 0)
            params.append(pytest.param(case, id=case_id))
    return params


CASES = cases()


# --- The lake, built once --------------------------------------------------------------------


@dataclass
class Built:
    lake: Lake
    report: ValidationReport
    outcome: DbtOutcome
    reconciled: dict[str, tuple[int, int, int, int]]  # feed: raw, accepted, duplicate, rejected


def query(lake: Lake, sql: str, *args: object) -> list[tuple]:
    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Good files of every feed on three days, every bad file dropped in at once; then the
    two steps of `pipeline.build()` (validate, dbt build), keeping dbt's outcome per node."""
    lake = Lake(tmp_path_factory.mktemp("quarantine") / "lake")
    for day in GOOD_DAYS:
        for feed in FEEDS.values():
            table = payload(feed, ROWS, f"good{day:%d}", day)
            ingested = datetime(day.year, day.month, day.day, 2)
            write_raw(lake, feed, day, table, batch="good", ingested_at=ingested)
    for param in CASES:
        case = param.values[0]  # type: ignore[attr-defined]
        if case is not None:
            path = lake.root / case.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(case.data)
    report = validate_lake(lake)
    outcome = run_dbt(["build"], lake, quiet=True)
    reconciled: dict[str, tuple[int, int, int, int]] = {}
    for feed in FEEDS.values():
        raw = sum(
            check_raw_file(path, feed, key=lake.relative(path)).rows or 0
            for path in lake.raw_files(feed)
        )
        try:
            counts = query(
                lake,
                f"select (select count(*) from processed.stg_{feed.name}), "
                "(select count(*) from processed.stg_duplicate_rows where feed = ?), "
                "(select count(*) from processed.stg_rejected_rows where feed = ?)",
                feed.name,
                feed.name,
            )[0]
        except duckdb.Error:  # a failed build: each case says so
            continue
        reconciled[feed.name] = (raw, *counts)
    return Built(lake, report, outcome, reconciled)


# --- The checks ------------------------------------------------------------------------------


@pytest.mark.dbt
@pytest.mark.parametrize("case", CASES)
def test_each_file_is_quarantined_with_its_reason_or_built_and_every_row_reconciles(
    built: Built, case: Case
) -> None:
    lake = built.lake
    raw, moved = lake.root / case.key, lake.root / quarantine_key(case.key)
    if case.reason is None:  # valid: left in raw as it was
        assert not moved.exists(), moved.with_name(moved.name + REASON_SUFFIX).read_text()
        assert raw.read_bytes() == case.data
    else:  # bad: moved out of raw with its bytes and relative path, the reason beside it
        assert not raw.exists(), f"{case.key} was not quarantined"
        assert moved.read_bytes() == case.data
        note = json.loads(moved.with_name(moved.name + REASON_SUFFIX).read_text())
        assert (note["file"], note["feed"]) == (case.key, case.feed.name)
        assert case.reason in note["reason"], note["reason"]
        assert note["size_bytes"] == len(case.data)
        assert note["sha256"] == hashlib.sha256(case.data).hexdigest()
        reported = [q.reason for q in built.report.quarantined if q.original == case.key]
        assert reported == [note["reason"]]
    # one bad file stops nothing: the whole build passed, and raw = processed + duplicates +
    # rejected, by dbt's own test and by counting the rows of the raw files that stayed
    assert built.outcome.success, built.outcome.failures
    assert built.outcome.nodes.get("assert_raw_rows_reconcile") == "pass"
    raw_rows, accepted, duplicates, rejected = built.reconciled[case.feed.name]
    assert raw_rows == accepted + duplicates + rejected, built.reconciled
    if case.reason is None:  # and the valid file's rows are in, in its partition
        rows = query(
            lake,
            "select count(*), count(distinct ingestion_date), min(ingestion_date) "
            f"from processed.stg_{case.feed.name}_triaged where source_file = ?",
            case.key,
        )[0]
        assert rows == (case.rows, 1 if case.rows else 0, DAY if case.rows else None)


@pytest.mark.parametrize("case", CASES)
def test_the_verdict_is_the_same_on_bytes_and_on_a_path(case: Case, tmp_path: Path) -> None:
    """The S3 trigger judges an object's bytes or a /tmp copy of it under its key; `banklake
    validate` a file in the lake: the same verdict, row count included."""
    copy = tmp_path / "object"
    copy.write_bytes(case.data)
    in_lake = tmp_path / "lake" / case.key
    in_lake.parent.mkdir(parents=True)
    in_lake.write_bytes(case.data)

    on_bytes = check_raw_file(case.data, case.feed, key=case.key)
    assert check_raw_file(copy, case.feed, key=case.key) == on_bytes
    assert check_raw_file(in_lake, case.feed, key=case.key) == on_bytes
    if case.reason is None:
        assert (on_bytes.reason, on_bytes.rows) == (None, case.rows)
    else:
        assert case.reason in (on_bytes.reason or ""), on_bytes.reason
