"""`banklake ingest`: one kind of file a run, each by its policy."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date
from pathlib import Path
from typing import Any, Literal

from python_jobs.aws.s3 import make_s3_client
from python_jobs.aws.s3_location import S3Location
from python_jobs.ingest.local_files import (
    LocalFile,
    local_monitoring_files,
    local_raw_files,
    local_score_files,
    monitoring_dir,
    scores_dir,
)
from python_jobs.ingest.model import ingest_model
from python_jobs.ingest.report import IngestReport
from python_jobs.ingest.transfer import IngestConfig, transfer
from python_jobs.lake.layout import Lake

Say = Callable[[str], None]
Kind = Literal["raw", "scores", "monitoring", "model"]
KINDS: tuple[Kind, ...] = ("raw", "scores", "monitoring", "model")


def ingest(
    lake: Lake,
    destination: S3Location,
    *,
    kind: Kind = "raw",
    days: Collection[date] | None = None,
    force_champion: bool = False,
    s3: Any = None,
    config: IngestConfig | None = None,
    dry_run: bool = False,
    say: Say = print,
) -> IngestReport:
    """Uploads every local file of `kind` that S3 lacks: the raw partitions, the fraud scores,
    the monitoring reports, or the champion (model.ingest_model). Raises IngestConflict
    (uploading nothing) when a key of an immutable kind holds different content, and replaces
    it (If-Match) for a replaceable kind (policy.py). `days` limits scores or monitoring to
    those days (the Athena scorer uploads only the day it scored). `s3` defaults to
    make_s3_client(); its PutObject and CompleteMultipartUpload calls become conditional."""
    if kind not in KINDS:
        raise ValueError(f"ingest uploads one kind of file a run, one of {KINDS}; got {kind!r}")
    if days is not None and kind not in ("scores", "monitoring"):
        raise ValueError("days selects scores or monitoring reports, not raw files")
    if force_champion and kind != "model":
        raise ValueError("force_champion applies to the model upload only")
    config = config or IngestConfig()
    if s3 is None:
        s3 = make_s3_client()
    if kind == "model":
        return ingest_model(
            lake,
            destination,
            s3=s3,
            config=config,
            dry_run=dry_run,
            force_champion=force_champion,
            say=say,
        )
    source, prefix, files = _local_files(lake, destination, kind, days)
    report = IngestReport(destination=destination, prefix=prefix, kind=kind, dry_run=dry_run)
    say(f"ingest {source} -> {destination.url(prefix)}: {len(files)} {kind} files")
    transfer(s3, files, report, config, say)
    say(report.summary())
    return report


def _local_files(
    lake: Lake, destination: S3Location, kind: Kind, days: Collection[date] | None
) -> tuple[Path, str, list[LocalFile]]:
    """(the local folder, the key prefix on S3, the files) of raw, scores or monitoring."""
    if kind == "scores":
        files = local_score_files(lake, destination, days)
        return scores_dir(lake), destination.scores_prefix, files
    if kind == "monitoring":
        files = local_monitoring_files(lake, destination, days)
        return monitoring_dir(lake), destination.monitoring_prefix, files
    return lake.raw, destination.prefix, local_raw_files(lake, destination)
