"""Small files that must survive a crash whole, and the lock their writers take turns with.

Written to a temporary name, fsync'ed, renamed over the final name, and the folder fsync'ed
(the rename itself is then on disk). A reader sees the old content or the new one, never a
part; after a power cut, what a caller was told is written is there. The real-time
service's landing state (python_jobs/serve/wal.py), the investigators' pending verdicts
(python_jobs/feedback.py) and the files validation found valid (python_jobs/lake/validate.py)
are written this way."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created if need be) for the block; waits for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fsync_dir(path: Path) -> None:
    """Makes the folder's entries (a rename, a new or removed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Makes a file's content durable (a file written by someone who did not fsync it)."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def write_json_durably(path: Path, data: dict[str, Any]) -> None:
    """Atomic and durable: temporary file (`.<name>.tmp`, which no `*.json` glob matches),
    fsync, rename, fsync of the folder. One writer per path at a time (callers hold a lock)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)
