"""A real second process holding a lake's `banklake.duckdb` open for writing, mid-transaction,
as a dbt build does: DuckDB then refuses every other process the file, even read-only. The
readers' tests run against it (nothing it does is committed: killed, it leaves the file as
it was)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLD_WRITE_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("begin")
con.execute("create schema if not exists curated")
con.execute("create or replace table curated.fct_daily_kpis as select 1 as transactions")
print("holding", flush=True)
time.sleep(600)
"""


@contextmanager
def database_held_for_writing(database: Path) -> Iterator[subprocess.Popen[str]]:
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(database)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "holding"
        yield writer
    finally:
        writer.kill()
        writer.wait()
