"""Builds and the stream's landings take turns: raw must not change while dbt reads it.

A build reads the raw layer many times (validation, each staging model, the reconciliation
tests); a file landing in between would be seen by some reads and not by others, and the
build's own checks would fail (assert_raw_rows_reconcile does). So `banklake build` / `run` /
`demo` hold an exclusive lock on `<lake>/.build.lock` (flock) for the whole build, and the
real-time service lands a micro-batch only when it gets the lock shared, without waiting:
while a build runs, acknowledged records stay in the write-ahead log (durable) and land right
after it. Investigators' verdicts do the same (python_jobs/feedback.py): recorded at once in a
pending queue, landed under the shared lock when no build runs, and by the build itself,
inside its exclusive lock, before it reads raw.

A `dbt build` started by hand does not take the lock, but it holds DuckDB's write lock on
banklake.duckdb: a landing also skips while any process holds that (checked by trying to
open the file read-only). The residual race, a hand-started dbt between that check and the
landing's few milliseconds, is why builds should go through `banklake build`.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from python_jobs.lake.durable import exclusive
from python_jobs.lake.layout import Lake

LOCK_FILE = ".build.lock"


@contextmanager
def building(lake: Lake) -> Iterator[None]:
    """Held for a whole build: waits for a landing in progress to finish."""
    with exclusive(lake.root / LOCK_FILE):
        yield


def _database_in_use(lake: Lake) -> bool:
    if not lake.database.exists():
        return False
    try:
        duckdb.connect(str(lake.database), read_only=True).close()
    except duckdb.IOException:
        return True
    return False


@contextmanager
def unless_building(lake: Lake) -> Iterator[bool]:
    """Yields True, holding the lock shared, when no build runs; False (and holds nothing)
    when one does."""
    lake.root.mkdir(parents=True, exist_ok=True)
    with (lake.root / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield not _database_in_use(lake)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
