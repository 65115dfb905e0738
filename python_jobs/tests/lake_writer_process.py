"""Real second processes that hold what a build holds, for the tests of what must keep working
(or wait) meanwhile:

- `database_held_for_writing`: a lake's `banklake.duckdb` open for writing, mid-transaction, as
  a dbt build does: DuckDB then refuses every other process the file, even read-only. The
  readers' tests run against it (nothing it does is committed: killed, it leaves the file as
  it was).
- `build_lock_held`: the lake's build lock, exclusively, as `banklake build` holds it for a
  whole build (python_jobs/lake/build_lock.py); `build_lock_is_held` tells whether some
  process holds it.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from python_jobs.lake.build_lock import LOCK_FILE
from python_jobs.lake.layout import Lake

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


HOLD_BUILD_LOCK = """
import sys
from pathlib import Path
from python_jobs.lake.build_lock import building
from python_jobs.lake.layout import Lake
with building(Lake(Path(sys.argv[1]))):
    print("building", flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


@contextmanager
def build_lock_held(lake: Lake) -> Iterator[subprocess.Popen[str]]:
    """Another process holds `lake`'s build lock exclusively until the block ends; then it
    releases the lock and exits (the block's end waits for that)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_BUILD_LOCK, str(lake.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "building"
        yield holder
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()


def build_lock_is_held(lake: Lake) -> bool:
    """Whether some process holds `lake`'s build lock exclusively (a build runs): a shared lock
    is refused without waiting. The probe holds nothing afterwards."""
    path = lake.root / LOCK_FILE
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
