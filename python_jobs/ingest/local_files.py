"""The local files `banklake ingest` uploads, each at its lake-relative key under the lake's
root on S3 and with its SHA-256: the raw partitions, the fraud scores, the monitoring reports
and a model version's files."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from python_jobs.aws.athena_ddl import SCORES_PARTITION
from python_jobs.aws.s3_location import S3Location
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import FEEDS

MiB = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: Path
    key: str
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def local_raw_files(lake: Lake, destination: S3Location) -> list[LocalFile]:
    """Every raw file of every feed, in its partition, with its SHA-256."""
    if not lake.raw.is_dir():
        raise FileNotFoundError(f"{lake.raw} does not exist: nothing to ingest (wrong --lake?)")
    files = []
    for feed in FEEDS.values():
        for path in lake.raw_files(feed):
            if path.name.startswith(".tmp-"):
                continue  # a writer's temporary file, not a delivery
            files.append(local_file(lake, destination, path))
    return files


def local_file(lake: Lake, destination: S3Location, path: Path) -> LocalFile:
    """The file at its lake-relative key under the lake's root on S3, with its SHA-256."""
    return LocalFile(
        path=path,
        key=destination.key(lake.relative(path)),
        size=path.stat().st_size,
        sha256=file_sha256(path),
    )


def scores_dir(lake: Lake) -> Path:
    """The local scores folder, where the scoring job writes it (ml/layout.py)."""
    from ml.layout import MlLayout  # imported late: ml/ pulls pandas and duckdb

    return MlLayout(lake).scores


def local_score_files(
    lake: Lake, destination: S3Location, days: Collection[date] | None = None
) -> list[LocalFile]:
    """Every day's scores file (or those of `days`), `score_date=YYYY-MM-DD/*.parquet`, with
    its SHA-256. The scoring job's temporary files (dot files) are not deliveries. A partition
    folder whose name is not a date is refused: Athena's date projection would never find
    it."""
    folder = scores_dir(lake)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: nothing to upload (run `banklake score` first, or the "
            "wrong --lake?)"
        )
    files, misplaced = [], []
    for path in sorted(folder.glob(f"{SCORES_PARTITION}=*/*.parquet")):
        if path.name.startswith("."):
            continue
        try:
            day = date.fromisoformat(path.parent.name.removeprefix(f"{SCORES_PARTITION}="))
        except ValueError:
            misplaced.append(lake.relative(path))
            continue
        if days is not None and day not in days:
            continue
        files.append(local_file(lake, destination, path))
    if misplaced:
        raise ValueError(
            f"not in a {SCORES_PARTITION}=YYYY-MM-DD folder, so Athena would never read them: "
            + ", ".join(misplaced)
        )
    return files


def monitoring_dir(lake: Lake) -> Path:
    """The local monitoring folder, where `banklake monitor` writes (ml/layout.py)."""
    from ml.layout import MlLayout  # imported late: ml/ pulls pandas and duckdb

    return MlLayout(lake).monitoring


def local_monitoring_files(
    lake: Lake, destination: S3Location, days: Collection[date] | None = None
) -> list[LocalFile]:
    """Every monitoring report (or those of `days`), `monitoring/YYYY-MM-DD.json`, with its
    SHA-256: the names the Athena report looks for (report_facts._REPORT_NAME). Anything else
    in the folder (a writer's temporary file) is not a report and is left alone."""
    folder = monitoring_dir(lake)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: nothing to upload (run `banklake monitor` first, or the "
            "wrong --lake?)"
        )
    files = []
    for path in sorted(folder.glob("*.json")):
        try:
            day = date.fromisoformat(path.stem)
        except ValueError:
            continue
        if path.stem != day.isoformat() or (days is not None and day not in days):
            continue
        files.append(local_file(lake, destination, path))
    return files


def local_model_files(lake: Lake, destination: S3Location, version: str) -> list[LocalFile]:
    """Every file of the version folder (model.json, metadata.json, the card, the plots):
    save_version renames the folder into place whole, so it holds finished files only; dot
    files are skipped all the same."""
    from ml.layout import MlLayout  # imported late: ml/ pulls pandas and duckdb

    folder = MlLayout(lake).version_dir(version)
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [local_file(lake, destination, path) for path in paths]
