"""The raw layer's writer and validator: layout, immutability, quarantine with nothing lost."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from python_jobs.lake import writer
from python_jobs.lake.layout import Lake, is_being_written, partition_date
from python_jobs.lake.schemas import CUSTOMERS, TRANSACTIONS, Feed
from python_jobs.lake.validate import problem_with, validate_lake
from python_jobs.lake.writer import STATISTICS_COLUMNS, RawFileConflict, write_raw
from python_jobs.tests.conftest import customer_rows, transaction_rows

DAY = date(2026, 11, 1)


def test_writer_lays_out_hive_partitions_and_stamps_ingestion_metadata(lake: Lake) -> None:
    path = write_raw(
        lake,
        TRANSACTIONS,
        DAY,
        transaction_rows(DAY, 3),
        batch="0001",
        ingested_at=datetime(2026, 11, 1, 2),
    )
    assert path.relative_to(lake.root).as_posix() == (
        "raw/transactions/year=2026/month=11/day=01/transactions-20261101-0001.parquet"
    )
    table = pq.read_table(path)
    assert table.schema.equals(TRANSACTIONS.schema)
    assert set(table.column("_source_file").to_pylist()) == {lake.relative(path)}
    assert table.column("_source_row").to_pylist() == [0, 1, 2]
    assert partition_date(path) == DAY


def test_raw_files_are_immutable(lake: Lake) -> None:
    stamp = datetime(2026, 11, 1, 2)
    first = write_raw(
        lake, TRANSACTIONS, DAY, transaction_rows(DAY, 3), batch="0001", ingested_at=stamp
    )
    before = first.read_bytes()
    # the same content again is a no-op (deterministic re-runs are fine) ...
    write_raw(lake, TRANSACTIONS, DAY, transaction_rows(DAY, 3), batch="0001", ingested_at=stamp)
    # ... different content under the same name is refused, and the file is left alone
    with pytest.raises(RawFileConflict, match="immutable"):
        write_raw(
            lake, TRANSACTIONS, DAY, transaction_rows(DAY, 4), batch="0001", ingested_at=stamp
        )
    assert first.read_bytes() == before
    assert not list(first.parent.glob(".tmp-*"))


def test_an_unfinished_raw_file_is_seen_by_no_reader(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash mid-write leaves the writer's temporary file beside the final name: its name
    matches neither dbt's glob (`*.parquet`) nor the validator's walk, so it is neither read
    unchecked nor quarantined while a writer may still be busy with it."""
    names: list[str] = []
    real_write = writer._write

    def spy(table: pa.Table, feed: Feed, path: Path) -> None:
        names.append(path.name)
        real_write(table, feed, path)

    monkeypatch.setattr(writer, "_write", spy)
    path = write_raw(
        lake, TRANSACTIONS, DAY, transaction_rows(DAY, 2), batch="0001", ingested_at=datetime.now()
    )
    assert len(names) == 1 and is_being_written(names[0])
    assert not names[0].endswith(TRANSACTIONS.file_suffix)
    (path.parent / names[0]).write_bytes(b"PAR1 half-written")  # what a crash leaves
    assert lake.raw_files(TRANSACTIONS) == [path]
    report = validate_lake(lake)
    assert (report.checked, report.valid) == (1, 1)
    assert (path.parent / names[0]).exists()
    # a leftover of the old naming (`.tmp-<random>.parquet`) is a hidden name dbt would read
    old = path.parent / ".tmp-abc123.parquet"
    old.write_bytes(path.read_bytes())
    assert validate_lake(lake).quarantined[0].reason.startswith("hidden name")


def test_writer_refuses_a_table_missing_columns(lake: Lake) -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        write_raw(
            lake,
            TRANSACTIONS,
            DAY,
            transaction_rows(DAY, 2).drop(["amount"]),
            batch="0001",
            ingested_at=datetime(2026, 11, 1),
        )


def test_good_files_validate(small_raw_lake: Lake) -> None:
    report = validate_lake(small_raw_lake)
    assert (report.checked, report.valid, report.quarantined) == (4, 4, [])


def test_validation_reads_again_only_the_files_new_or_changed_since_found_valid(
    small_raw_lake: Lake,
) -> None:
    """A build validates the whole raw layer every day; a file found valid and unchanged since
    (same size and modification time) is not read again, and every file present is counted
    once: checked now, or unchanged."""
    lake = small_raw_lake
    first = validate_lake(lake)
    assert (first.checked, first.valid, first.unchanged, first.quarantined) == (4, 4, 0, [])
    again = validate_lake(lake)
    assert (again.checked, again.valid, again.unchanged, again.quarantined) == (0, 0, 4, [])
    assert "4 unchanged since found valid" in again.summary()

    day_dir = lake.partition_dir(TRANSACTIONS, DAY)
    replaced = next(day_dir.glob("*-0001.parquet"))
    replaced.write_bytes(b"PAR1 not what was checked")  # new bytes under a checked name
    added = write_raw(
        lake,
        TRANSACTIONS,
        DAY,
        transaction_rows(DAY, 2),
        batch="0002",
        ingested_at=datetime(2026, 11, 1, 3),
    )
    third = validate_lake(lake)
    assert (third.checked, third.valid, third.unchanged) == (2, 1, 3)
    assert [q.original for q in third.quarantined] == [lake.relative(replaced)]
    assert validate_lake(lake).unchanged == 4  # the added file is now known valid

    # an edit that keeps both size and time is not seen without `--all` (recheck)
    before = added.stat()
    added.write_bytes(b"x" * before.st_size)
    os.utime(added, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert validate_lake(lake).unchanged == 4
    rechecked = validate_lake(lake, recheck=True)
    assert (rechecked.checked, rechecked.unchanged) == (4, 0)
    assert [q.original for q in rechecked.quarantined] == [lake.relative(added)]


def test_an_unreadable_validation_ledger_means_every_file_is_checked_again(
    small_raw_lake: Lake,
) -> None:
    lake = small_raw_lake
    validate_lake(lake)
    ledger = lake.validation_state / "valid_files.json"
    ledger.write_text("{not json")
    report = validate_lake(lake)
    assert (report.checked, report.valid, report.unchanged) == (4, 4, 0)
    # entries of another shape are ignored: their files are checked again
    files = json.loads(ledger.read_text())["files"]
    first = sorted(files)[0]
    files[first] = [files[first][0], str(files[first][1])]
    files["no-slash"] = [1, 2]
    ledger.write_text(json.dumps({"files": files}))
    report = validate_lake(lake)
    assert (report.checked, report.valid, report.unchanged) == (1, 1, 3)
    assert set(json.loads(ledger.read_text())["files"]) == {
        lake.relative(path) for path in lake.raw.rglob("*") if path.is_file()
    }


def test_bad_files_are_quarantined_with_reason_and_good_ones_untouched(
    small_raw_lake: Lake,
) -> None:
    lake = small_raw_lake
    good = sorted(p.relative_to(lake.root) for p in lake.raw.rglob("*") if p.is_file())
    day_dir = lake.partition_dir(TRANSACTIONS, DAY)

    corrupt = day_dir / "transactions-20261101-0002.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet at all")

    wrong_schema = day_dir / "transactions-20261101-0003.parquet"
    pq.write_table(pa.table({"transaction_id": ["X"], "amount": [1.5]}), wrong_schema)

    truncated = lake.partition_dir(CUSTOMERS, DAY) / "customers-20261101-0002.jsonl.gz"
    source = next(lake.partition_dir(CUSTOMERS, DAY).glob("*.jsonl.gz"))
    truncated.write_bytes(source.read_bytes()[:20])

    # a valid file copied into another day's partition would double count
    misplaced_dir = lake.partition_dir(TRANSACTIONS, date(2026, 11, 3))
    misplaced_dir.mkdir(parents=True)
    shutil.copy(next(day_dir.glob("*-0001.parquet")), misplaced_dir / "transactions-x.parquet")

    report = validate_lake(lake)

    assert report.checked == 8
    assert report.valid == 4
    reasons = {q.original: q.reason for q in report.quarantined}
    assert set(reasons) == {
        "raw/transactions/year=2026/month=11/day=01/transactions-20261101-0002.parquet",
        "raw/transactions/year=2026/month=11/day=01/transactions-20261101-0003.parquet",
        "raw/customers/year=2026/month=11/day=01/customers-20261101-0002.jsonl.gz",
        "raw/transactions/year=2026/month=11/day=03/transactions-x.parquet",
    }
    assert reasons[next(k for k in reasons if k.endswith("-0002.parquet"))].startswith("unreadable")
    wrong = reasons[next(k for k in reasons if k.endswith("-0003.parquet"))]
    assert "missing columns" in wrong and "account_id" in wrong
    misplaced = "raw/transactions/year=2026/month=11/day=03/transactions-x.parquet"
    assert "landed in" in reasons[misplaced]

    # nothing lost: each bad file sits in quarantine with a JSON reason naming it
    for item in report.quarantined:
        assert item.moved_to.exists()
        note = json.loads(item.moved_to.with_name(item.moved_to.name + ".reason.json").read_text())
        assert note["file"] == item.original and note["reason"] == item.reason
        assert len(note["sha256"]) == 64
    # and the good files are exactly where they were
    remaining = sorted(p.relative_to(lake.root) for p in lake.raw.rglob("*") if p.is_file())
    assert remaining == good


def test_file_outside_a_dated_partition_is_a_problem(lake: Lake) -> None:
    path = lake.raw / "transactions" / "year=2026" / "month=02" / "day=30" / "t.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(transaction_rows(DAY, 1), path)
    assert "partition" in (problem_with(path, TRANSACTIONS) or "")


# --- How raw files are encoded ---------------------------------------------------------------


def test_dictionary_text_columns_are_written_as_dictionaries_and_read_back_as_text(
    lake: Lake,
) -> None:
    """A producer may hand low-cardinality text as Arrow dictionary arrays (the generator
    does): Parquet stores dictionary pages straight from the indices, and every reader
    still sees the contract's plain strings."""
    rows = transaction_rows(DAY, 4)
    for name in ("transaction_type", "channel", "city"):
        rows = rows.set_column(
            rows.schema.get_field_index(name), name, pc.dictionary_encode(rows[name])
        )
    path = write_raw(
        lake, TRANSACTIONS, DAY, rows, batch="0001", ingested_at=datetime(2026, 11, 1, 2)
    )
    table = pq.read_table(path)
    assert table.schema.equals(TRANSACTIONS.schema)
    assert table["city"].to_pylist() == ["São Paulo"] * 4
    assert problem_with(path, TRANSACTIONS, lake) is None
    meta = pq.ParquetFile(path).metadata.row_group(0)
    columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" in columns["channel"].encodings
    assert "RLE_DICTIONARY" not in columns["counterparty_key"].encodings  # ids: plain
    assert {c.compression for c in columns.values()} == {"ZSTD"}
    with_stats = {name for name, c in columns.items() if c.is_stats_set}
    assert with_stats == set(STATISTICS_COLUMNS)
    con = duckdb.connect()
    described = con.execute(f"describe select * from read_parquet('{path}')").fetchall()
    kinds = {row[0]: row[1] for row in described}
    assert kinds["channel"] == "VARCHAR" and kinds["_ingested_at"] == "TIMESTAMP"


TRICKY = ['quote " in', "back\\slash", "tab\tnew\nline\x01", "acentuação", "", None, "\u2028x"]


def test_json_lines_escape_every_string_and_keep_types(lake: Lake) -> None:
    """The JSON writer builds lines column-wise: quotes, backslashes, control characters
    and line separators are escaped, nulls are null, a float stays a float."""
    n = len(TRICKY)
    rows = customer_rows(DAY).take([0] * n)
    rows = rows.set_column(0, "customer_id", pa.array(TRICKY, pa.string()))
    rows = rows.set_column(
        rows.schema.get_field_index("monthly_income"),
        "monthly_income",
        pa.array([5000.0, 1967.13, None, float("nan"), 1e21, 0.1, -2.5]),
    )
    address = [{"state": "SP", "city": 'a "b"'}, None, *[{"state": None, "city": "X"}] * (n - 2)]
    rows = rows.set_column(rows.schema.get_field_index("address"), "address", pa.array(address))
    path = write_raw(lake, CUSTOMERS, DAY, rows, batch="0001", ingested_at=datetime(2026, 11, 1))
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    assert lines[-1] == "" and len(lines) == n + 1  # one object per line, \n-terminated
    records = [json.loads(line) for line in lines[:-1]]
    assert [r["customer_id"] for r in records] == TRICKY
    assert [r["monthly_income"] for r in records] == [5000.0, 1967.13, None, None, 1e21, 0.1, -2.5]
    assert '"monthly_income":5000.0,' in lines[0]  # not 5000: it stays a float
    assert [r["address"] for r in records] == address
    assert records[3]["_ingested_at"] == "2026-11-01 00:00:00" and records[3]["_source_row"] == 3
    assert problem_with(path, CUSTOMERS, lake) is None
    read = (
        duckdb.connect()
        .execute(
            f"select customer_id, monthly_income, address.city from read_json('{path}', "
            "format = 'newline_delimited', columns = {'customer_id': 'VARCHAR', "
            "'monthly_income': 'DOUBLE', 'address': 'STRUCT(state VARCHAR, city VARCHAR)'})"
        )
        .fetchall()
    )
    assert [r[0] for r in read] == TRICKY and read[0][1:] == (5000.0, 'a "b"')


def test_json_files_are_byte_identical_for_equal_tables(lake: Lake, tmp_path: Path) -> None:
    """No time or file name in the gzip header: a deterministic re-run writes the same bytes."""
    other = Lake(tmp_path / "other")
    stamp = datetime(2026, 11, 1, 2)
    first = write_raw(lake, CUSTOMERS, DAY, customer_rows(DAY), batch="0001", ingested_at=stamp)
    second = write_raw(other, CUSTOMERS, DAY, customer_rows(DAY), batch="0001", ingested_at=stamp)
    assert first.read_bytes() == second.read_bytes()
