"""Plan, then upload, the files of one kind by its policy (policy.py).

For every kind:

- every object carries the SHA-256 of its bytes in its metadata (`x-amz-meta-sha256`), and
  S3 verifies its own SHA-256 checksum of what arrived (ChecksumAlgorithm=SHA256);
- a key already there with the same SHA-256 is skipped, so a re-run uploads nothing;
- new keys are created with `If-None-Match: *` (on the single PUT and on the multipart
  completion), so an object someone else creates between the listing and the upload is not
  overwritten either: that race ends as a skip (same bytes) or a conflict;
- a raw file the S3 trigger already quarantined (`quarantine/<same path>` whose reason
  records the same SHA-256) is not sent again: re-sending it would only be quarantined again
  (scores are not validated on arrival, so there is no quarantine to consult);
- files above the TransferConfig threshold go up in parts, several files at a time
  (replacements are single conditional PUTs: monitoring reports and the pointer are small).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from s3transfer.manager import TransferManager

from python_jobs.aws.clients import error_code
from python_jobs.aws.s3 import list_objects
from python_jobs.aws.s3_location import S3Location
from python_jobs.ingest.local_files import LocalFile, MiB
from python_jobs.ingest.objects import (
    CONDITION_FAILED,
    GONE,
    difference,
    make_puts_conditional,
    object_args,
    put_conditional,
    remote_state,
)
from python_jobs.ingest.policy import IngestConflict
from python_jobs.ingest.report import Conflict, IngestReport, conflict_message, size_text
from python_jobs.lake.validate import REASON_SUFFIX, quarantine_key

Say = Callable[[str], None]


@dataclass(frozen=True)
class IngestConfig:
    """Transfer settings. Files above `multipart_threshold` are uploaded in parts."""

    multipart_threshold: int = 64 * MiB
    multipart_chunksize: int = 16 * MiB  # S3's minimum part is 5 MiB
    max_concurrency: int = 8

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
        )


@dataclass(frozen=True)
class _Put:
    """One planned write: a new key (`if_match` None: If-None-Match: *) or the replacement of
    the object whose ETag was read (If-Match)."""

    file: LocalFile
    if_match: str | None = None
    detail: str = ""  # how the replaced object differed


def transfer(
    s3: Any, files: list[LocalFile], report: IngestReport, config: IngestConfig, say: Say
) -> None:
    """Plan, then upload (or, dry, print the plan), by the report's kind's policy; raises
    IngestConflict before uploading anything when the plan has a conflict, and after the
    upload when a race made one."""
    started = time.perf_counter()
    puts = plan_puts(s3, report.destination, files, report, config)
    if report.conflicts:
        report.seconds = time.perf_counter() - started
        raise IngestConflict(conflict_message(report))
    if report.dry_run:
        for put in puts:
            (report.replaced if put.if_match else report.uploaded).append(put.file)
            verb = "would replace" if put.if_match else "would upload"
            say(f"  {verb} {put.file.key} ({size_text(put.file.size)})")
    else:
        upload(s3, report.destination, puts, report, config, say)
    report.seconds = time.perf_counter() - started
    for item in report.quarantined:
        say(f"  not sent again, quarantined on arrival before: {item.key}")
    if report.conflicts:  # lost a race: someone wrote other bytes between listing and upload
        raise IngestConflict(conflict_message(report))


def plan_puts(
    s3: Any, dest: S3Location, files: list[LocalFile], report: IngestReport, config: IngestConfig
) -> list[_Put]:
    """Sorts the files into skipped, quarantined and conflicts; returns the writes to make.
    A key holding other content is a conflict for an immutable kind, a replacement (with the
    ETag read now) for a replaceable one: report.policy decides, here only."""
    remote = {
        o["Key"]: (o["Size"], o["ETag"]) for o in list_objects(s3, dest.bucket, report.prefix)
    }
    raw = report.kind == "raw"
    quarantine = dest.lake_prefix + "quarantine/"
    reasons = {o["Key"] for o in list_objects(s3, dest.bucket, quarantine)} if raw else set()

    def decide(item: LocalFile) -> tuple[str, _Put | None, str]:
        if item.key in remote:
            size, etag = remote[item.key]
            if size != item.size:
                detail = f"{size:,} bytes in S3, {item.size:,} locally"
            else:
                sha256, etag = remote_state(s3, dest.bucket, item.key, report.policy)
                if sha256 == item.sha256:
                    return "skip", None, ""
                detail = difference(sha256, item.sha256)
            if report.policy.replaceable:
                return "write", _Put(item, if_match=etag, detail=detail), ""
            return "conflict", None, detail
        if raw:
            reason_key = _quarantine_reason_key(dest, item.key)
            if reason_key in reasons and _reason_sha256(s3, dest.bucket, reason_key) == item.sha256:
                return "quarantined", None, ""
        return "write", _Put(item), ""

    with ThreadPoolExecutor(max_workers=config.max_concurrency) as pool:
        decisions = list(pool.map(decide, files))
    puts = []
    for item, (action, put, detail) in zip(files, decisions, strict=True):
        if put is not None:
            puts.append(put)
        elif action == "skip":
            report.skipped.append(item)
        elif action == "quarantined":
            report.quarantined.append(item)
        else:
            report.conflicts.append(Conflict(item, detail))
    return puts


def upload(
    s3: Any,
    dest: S3Location,
    puts: list[_Put],
    report: IngestReport,
    config: IngestConfig,
    say: Say,
) -> None:
    """New keys through the transfer manager (multipart above the threshold, If-None-Match: *
    on every PutObject and CompleteMultipartUpload); replacements as single PutObjects with
    If-Match on the ETag the plan read."""
    make_puts_conditional(s3)
    for put in (p for p in puts if p.if_match):
        item = put.file
        try:
            put_conditional(s3, dest.bucket, item, if_match=put.if_match)
        except ClientError as error:
            if error_code(error) not in CONDITION_FAILED | GONE:
                raise
            report.conflicts.append(Conflict(item, f"changed during this run ({error})"))
            continue
        report.replaced.append(item)
        say(f"  replaced {item.key} ({size_text(item.size)}; {put.detail})")
    new = [put.file for put in puts if not put.if_match]
    with TransferManager(s3, config.transfer_config()) as manager:
        futures = [
            (item, manager.upload(str(item.path), dest.bucket, item.key, object_args(item)))
            for item in new
        ]
        for item, future in futures:
            try:
                future.result()
            except ClientError as error:
                if error_code(error) not in CONDITION_FAILED:
                    raise
                sha256, _ = remote_state(s3, dest.bucket, item.key)  # created meanwhile
                if sha256 == item.sha256:
                    report.skipped.append(item)
                else:
                    detail = difference(sha256, item.sha256)
                    report.conflicts.append(Conflict(item, f"created during this run; {detail}"))
                continue
            report.uploaded.append(item)
            say(f"  uploaded {item.key} ({size_text(item.size)})")


def _quarantine_reason_key(dest: S3Location, key: str) -> str:
    relative = key[len(dest.lake_prefix) :]
    return dest.lake_prefix + quarantine_key(relative) + REASON_SUFFIX


def _reason_sha256(s3: Any, bucket: str, reason_key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=reason_key)["Body"].read()
        return json.loads(body).get("sha256")
    except (ClientError, ValueError):
        return None
