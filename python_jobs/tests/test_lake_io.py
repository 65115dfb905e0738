"""The raw layer's writer and validator: layout, immutability, quarantine with nothing lost."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from python_jobs.lake.layout import Lake, partition_date
from python_jobs.lake.schemas import CUSTOMERS, TRANSACTIONS
from python_jobs.lake.validate import problem_with, validate_lake
from python_jobs.lake.writer import RawFileConflict, write_raw
from python_jobs.tests.conftest import transaction_rows

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
