"""Where things live in the lake folder (local today, the same keys under s3:// later).

<lake>/raw/<feed>/year=YYYY/month=MM/day=DD/<feed>-YYYYMMDD-<batch>.<ext>
<lake>/quarantine/<same relative path as raw>  (+ .reason.json)
<lake>/curated/<model>/...
<lake>/banklake.duckdb
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from python_jobs.lake.schemas import Feed

LAKE_DIR_ENV = "BANKLAKE_LAKE_DIR"
# A raw file being written is `.tmp-<random><suffix>.tmp` beside its final name: no reader's
# glob (`*.parquet`, `*.jsonl.gz`) matches it, even when a crash leaves it behind.
WRITING_PREFIX = ".tmp-"
WRITING_SUFFIX = ".tmp"
_PARTITION_RE = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})/")


def default_lake_dir() -> Path:
    """The lake folder: $BANKLAKE_LAKE_DIR, else ./lake (the dbt profile agrees)."""
    return Path(os.environ.get(LAKE_DIR_ENV, "lake"))


@dataclass(frozen=True)
class Lake:
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def database(self) -> Path:
        return self.root / "banklake.duckdb"

    @property
    def generator_state(self) -> Path:
        return self.root / "_generator"

    @property
    def validation_state(self) -> Path:
        """What validation found valid already (python_jobs/lake/validate.py)."""
        return self.root / "_validation"

    def partition_dir(self, feed: Feed, day: date) -> Path:
        return self.raw / feed.name / partition_path(day)

    def raw_file(self, feed: Feed, day: date, batch: str) -> Path:
        name = f"{feed.name}-{day:%Y%m%d}-{batch}{feed.file_suffix}"
        return self.partition_dir(feed, day) / name

    def relative(self, path: Path) -> str:
        """Lake-relative POSIX key: what `_source_file` records and what S3 keys reuse."""
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def raw_files(self, feed: Feed) -> list[Path]:
        return sorted((self.raw / feed.name).glob(f"year=*/month=*/day=*/*{feed.file_suffix}"))


def is_being_written(name: str) -> bool:
    """Whether a file name is a writer's unfinished file (not a delivery, read by no one)."""
    return name.startswith(WRITING_PREFIX) and name.endswith(WRITING_SUFFIX)


def partition_path(day: date) -> str:
    return f"year={day:%Y}/month={day:%m}/day={day:%d}"


def partition_date(path: str | Path) -> date | None:
    """The ingestion date encoded in a raw path, or None when the path has no partition."""
    match = _PARTITION_RE.search(Path(path).as_posix() + "/")
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None
