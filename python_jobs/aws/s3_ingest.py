"""`banklake ingest --to s3://bucket/raw/`: the local raw partitions, uploaded to the same keys.
`--scores` does the same for the fraud scores (`<lake>/processed/fraud_scores/score_date=*/`),
which go beside raw/ under the lake's root on S3, where `banklake athena register` points the
scores table.

Raw is immutable on S3 as it is in the local lake (python_jobs/lake/writer.py), so the upload
is idempotent and never replaces anything (the scores follow the same rules: a day's scores on
S3 are what dbt on Athena already read, so replacing them is a deliberate act, not a side
effect of a re-run):

- every object carries the SHA-256 of its bytes in its metadata (`x-amz-meta-sha256`), and
  S3 verifies its own SHA-256 checksum of what arrived (ChecksumAlgorithm=SHA256);
- a key already there with the same SHA-256 is skipped, so a re-run uploads nothing;
- a key already there with other content is a conflict: the run refuses before uploading
  anything (half of one lake and half of another is worse than neither), names every key,
  and says what to do;
- puts are conditional (`If-None-Match: *`, on the single PUT and on the multipart
  completion), so an object someone else creates between the listing and the upload is not
  overwritten either: that race ends as a skip (same bytes) or a conflict;
- a raw file the S3 trigger already quarantined (`quarantine/<same path>` whose reason
  records the same SHA-256) is not sent again: re-sending it would only be quarantined again
  (scores are not validated on arrival, so there is no quarantine to consult);
- files above the TransferConfig threshold go up in parts, several files at a time.

The destination must end in `raw/`: rows record their lake-relative path (`_source_file` =
`raw/<feed>/...`) and the S3 trigger checks it against the key, so the prefix above `raw/` is
the lake's root on S3.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from s3transfer.manager import TransferManager

from python_jobs.aws.athena_ddl import SCORES_PARTITION, SCORES_PREFIX
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import FEEDS
from python_jobs.lake.validate import RAW_PREFIX, REASON_SUFFIX, quarantine_key

Say = Callable[[str], None]
SHA256_METADATA = "sha256"  # stored as x-amz-meta-sha256, hex
_MiB = 1024 * 1024
_CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet", ".gz": "application/gzip"}


class IngestConflict(RuntimeError):
    """Objects already in S3 differ from the local files of the same name: nothing replaced."""


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/[lake/]raw/`: where the local `raw/` folder goes."""

    bucket: str
    prefix: str  # ends with "raw/"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://"):
            raise ValueError(f"--to must be an s3:// URL, got {url!r}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if not bucket or not (prefix == RAW_PREFIX or prefix.endswith("/" + RAW_PREFIX)):
            raise ValueError(
                f"--to must name the lake's raw/ prefix, like s3://my-bucket/raw/ or "
                f"s3://my-bucket/banklake/raw/ (got {url!r}): rows record their path as "
                "raw/<feed>/..., and the S3 trigger checks it against the key"
            )
        return cls(bucket=bucket, prefix=prefix)

    @property
    def lake_prefix(self) -> str:
        """The lake's root on S3: everything before `raw/` ('' or 'banklake/')."""
        return self.prefix[: -len(RAW_PREFIX)]

    def key(self, lake_relative: str) -> str:
        return self.lake_prefix + lake_relative

    @property
    def scores_prefix(self) -> str:
        """Where `--scores` uploads: processed/fraud_scores/ under the same lake root (the
        location athena_ddl.scores_location derives from BANKLAKE_S3_RAW_DIR)."""
        return self.lake_prefix + SCORES_PREFIX

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class IngestConfig:
    """Transfer settings. Files above `multipart_threshold` are uploaded in parts."""

    multipart_threshold: int = 64 * _MiB
    multipart_chunksize: int = 16 * _MiB  # S3's minimum part is 5 MiB
    max_concurrency: int = 8

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
        )


@dataclass(frozen=True)
class LocalFile:
    path: Path
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Conflict:
    file: LocalFile
    detail: str


@dataclass
class IngestReport:
    destination: S3Location
    prefix: str = ""  # the key prefix this run uploads under (default: destination.prefix)
    kind: str = "raw"  # "raw" or "scores": what the messages call the files
    uploaded: list[LocalFile] = field(default_factory=list)
    skipped: list[LocalFile] = field(default_factory=list)  # already there, same SHA-256
    quarantined: list[LocalFile] = field(default_factory=list)  # quarantined on arrival before
    conflicts: list[Conflict] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    def __post_init__(self) -> None:
        if not self.prefix:
            self.prefix = self.destination.prefix

    @property
    def bytes_uploaded(self) -> int:
        return sum(f.size for f in self.uploaded)

    def summary(self) -> str:
        verb = "would upload" if self.dry_run else "uploaded"
        text = (
            f"{verb} {len(self.uploaded)} files ({_size(self.bytes_uploaded)}), "
            f"skipped {len(self.skipped)} (already there, same SHA-256), "
            f"{len(self.quarantined)} previously quarantined on arrival, "
            f"{len(self.conflicts)} conflicts, in {self.seconds:.1f} s "
            f"-> {self.destination.url(self.prefix)}"
        )
        return text


def make_s3_client(env: Mapping[str, str] | None = None) -> Any:
    """An S3 client with the same profile and region as `banklake athena` and the dbt
    profile (BANKLAKE_AWS_PROFILE, AWS_REGION or AWS_DEFAULT_REGION); unset = boto3's own
    chain. AWS_ENDPOINT_URL, when set, is honoured by boto3 itself."""
    import boto3

    env = os.environ if env is None else env
    session = boto3.Session(
        profile_name=env.get("BANKLAKE_AWS_PROFILE") or None,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
    )
    return session.client("s3")


def ingest(
    lake: Lake,
    destination: S3Location,
    *,
    scores: bool = False,
    s3: Any = None,
    config: IngestConfig | None = None,
    dry_run: bool = False,
    say: Say = print,
) -> IngestReport:
    """Uploads every local raw file (with `scores`, every fraud scores file) that S3 lacks;
    raises IngestConflict (uploading nothing) when a key holds different content. `s3`
    defaults to make_s3_client(); its PutObject and CompleteMultipartUpload calls become
    conditional (`If-None-Match: *`)."""
    config = config or IngestConfig()
    if s3 is None:
        s3 = make_s3_client()
    started = time.perf_counter()
    if scores:
        source, prefix, kind = scores_dir(lake), destination.scores_prefix, "scores"
        files = local_score_files(lake, destination)
    else:
        source, prefix, kind = lake.raw, destination.prefix, "raw"
        files = local_raw_files(lake, destination)
    say(f"ingest {source} -> {destination.url(prefix)}: {len(files)} {kind} files")
    report = IngestReport(destination=destination, prefix=prefix, kind=kind, dry_run=dry_run)
    to_upload = _plan(s3, destination, files, report, config)
    if report.conflicts:
        report.seconds = time.perf_counter() - started
        raise IngestConflict(_conflict_message(report))
    if dry_run:
        report.uploaded = to_upload
        for item in to_upload:
            say(f"  would upload {item.key} ({_size(item.size)})")
    else:
        _upload(s3, destination, to_upload, report, config, say)
    report.seconds = time.perf_counter() - started
    for item in report.quarantined:
        say(f"  not sent again, quarantined on arrival before: {item.key}")
    if report.conflicts:  # lost a race: someone wrote other bytes between listing and upload
        raise IngestConflict(_conflict_message(report))
    say(report.summary())
    return report


def local_raw_files(lake: Lake, destination: S3Location) -> list[LocalFile]:
    """Every raw file of every feed, in its partition, with its SHA-256."""
    if not lake.raw.is_dir():
        raise FileNotFoundError(f"{lake.raw} does not exist: nothing to ingest (wrong --lake?)")
    files = []
    for feed in FEEDS.values():
        for path in lake.raw_files(feed):
            if path.name.startswith(".tmp-"):
                continue  # a writer's temporary file, not a delivery
            files.append(
                LocalFile(
                    path=path,
                    key=destination.key(lake.relative(path)),
                    size=path.stat().st_size,
                    sha256=_sha256(path),
                )
            )
    return files


def scores_dir(lake: Lake) -> Path:
    """The local scores folder, where the scoring job writes it (ml/layout.py)."""
    from ml.layout import MlLayout  # imported late: ml/ pulls pandas and duckdb

    return MlLayout(lake).scores


def local_score_files(lake: Lake, destination: S3Location) -> list[LocalFile]:
    """Every day's scores file, `score_date=YYYY-MM-DD/*.parquet`, with its SHA-256. The
    scoring job's temporary files (dot files) are not deliveries. A partition folder whose
    name is not a date is refused: Athena's date projection would never find it."""
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
            date.fromisoformat(path.parent.name.removeprefix(f"{SCORES_PARTITION}="))
        except ValueError:
            misplaced.append(lake.relative(path))
            continue
        files.append(
            LocalFile(
                path=path,
                key=destination.key(lake.relative(path)),
                size=path.stat().st_size,
                sha256=_sha256(path),
            )
        )
    if misplaced:
        raise ValueError(
            f"not in a {SCORES_PARTITION}=YYYY-MM-DD folder, so Athena would never read them: "
            + ", ".join(misplaced)
        )
    return files


def _plan(
    s3: Any, dest: S3Location, files: list[LocalFile], report: IngestReport, config: IngestConfig
) -> list[LocalFile]:
    """Sorts the files into skipped, quarantined and conflicts; returns those to upload."""
    remote = _list_sizes(s3, dest.bucket, report.prefix)
    raw = report.kind == "raw"
    reasons = set(_list_sizes(s3, dest.bucket, dest.lake_prefix + "quarantine/")) if raw else set()

    def decide(item: LocalFile) -> tuple[str, str]:
        if item.key in remote:
            if remote[item.key] != item.size:
                return "conflict", f"{remote[item.key]:,} bytes in S3, {item.size:,} locally"
            return _compare(s3, dest.bucket, item)
        if raw:
            reason_key = _quarantine_reason_key(dest, item.key)
            if reason_key in reasons and _reason_sha256(s3, dest.bucket, reason_key) == item.sha256:
                return "quarantined", ""
        return "upload", ""

    with ThreadPoolExecutor(max_workers=config.max_concurrency) as pool:
        decisions = list(pool.map(decide, files))
    to_upload = []
    for item, (action, detail) in zip(files, decisions, strict=True):
        if action == "upload":
            to_upload.append(item)
        elif action == "skip":
            report.skipped.append(item)
        elif action == "quarantined":
            report.quarantined.append(item)
        else:
            report.conflicts.append(Conflict(item, detail))
    return to_upload


def _compare(s3: Any, bucket: str, item: LocalFile) -> tuple[str, str]:
    """'skip' when the object holds the local bytes, else ('conflict', why)."""
    remote = _remote_sha256(s3, bucket, item.key)
    if remote is None:
        return "conflict", "the S3 object has no SHA-256 to compare (not uploaded by ingest)"
    if remote != item.sha256:
        return "conflict", f"SHA-256 {remote[:12]}... in S3, {item.sha256[:12]}... locally"
    return "skip", ""


def _remote_sha256(s3: Any, bucket: str, key: str) -> str | None:
    """The object's SHA-256 (hex): our metadata, else S3's full-object SHA-256 checksum."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    if SHA256_METADATA in head.get("Metadata", {}):
        return head["Metadata"][SHA256_METADATA]
    checksum = head.get("ChecksumSHA256")
    if checksum and "-" not in checksum:  # "-N" marks a composite (per-part) checksum
        return base64.b64decode(checksum).hex()
    return None


def _upload(
    s3: Any,
    dest: S3Location,
    files: list[LocalFile],
    report: IngestReport,
    config: IngestConfig,
    say: Say,
) -> None:
    _make_puts_conditional(s3)
    with TransferManager(s3, config.transfer_config()) as manager:
        futures = [
            (
                item,
                manager.upload(
                    str(item.path),
                    dest.bucket,
                    item.key,
                    extra_args={
                        "Metadata": {SHA256_METADATA: item.sha256},
                        "ChecksumAlgorithm": "SHA256",
                        "ContentType": _CONTENT_TYPES.get(item.path.suffix, "binary/octet-stream"),
                    },
                ),
            )
            for item in files
        ]
        for item, future in futures:
            try:
                future.result()
            except ClientError as error:
                if _error_code(error) not in {"PreconditionFailed", "412"}:
                    raise
                action, detail = _compare(s3, dest.bucket, item)  # created meanwhile
                if action == "skip":
                    report.skipped.append(item)
                else:
                    report.conflicts.append(Conflict(item, f"created during this run; {detail}"))
                continue
            report.uploaded.append(item)
            say(f"  uploaded {item.key} ({_size(item.size)})")


def _make_puts_conditional(s3: Any) -> None:
    """Adds If-None-Match: * to every PutObject and CompleteMultipartUpload of this client."""

    def if_none_match(params: dict[str, Any], **_: Any) -> None:
        params.setdefault("IfNoneMatch", "*")

    for operation in ("PutObject", "CompleteMultipartUpload"):
        s3.meta.events.register(
            f"before-parameter-build.s3.{operation}",
            if_none_match,
            unique_id=f"banklake-ingest-if-none-match-{operation}",
        )


def _list_sizes(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            sizes[obj["Key"]] = obj["Size"]
    return sizes


def _quarantine_reason_key(dest: S3Location, key: str) -> str:
    relative = key[len(dest.lake_prefix) :]
    return dest.lake_prefix + quarantine_key(relative) + REASON_SUFFIX


def _reason_sha256(s3: Any, bucket: str, reason_key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=reason_key)["Body"].read()
        return json.loads(body).get("sha256")
    except (ClientError, ValueError):
        return None


def _conflict_message(report: IngestReport) -> str:
    dest = report.destination
    raw = report.kind == "raw"
    lines = [
        f"refusing to replace {len(report.conflicts)} {report.kind} object(s) in "
        f"s3://{dest.bucket}/ that differ from the local files ("
        + ("raw is immutable" if raw else "dbt on Athena may already have read them")
        + (f"; {len(report.uploaded)} other files were uploaded" if report.uploaded else "")
        + ("; nothing was uploaded" if not report.uploaded else "")
        + "):"
    ]
    lines += [f"  {dest.url(c.file.key)}: {c.detail}" for c in report.conflicts]
    if raw:
        lines.append(
            "What to do: if the local file is a new delivery, land it under another batch name "
            "(raw files are never replaced); if the S3 object is the wrong one, delete it "
            "deliberately (aws s3 rm <url>; bucket versioning keeps the old version) and run "
            "`banklake ingest` again."
        )
    else:
        lines.append(
            "What to do: if the day was re-scored on purpose (a new champion, a fix), delete "
            "the S3 object deliberately (aws s3 rm <url>; bucket versioning keeps the old "
            "version), run `banklake ingest --scores` again, then rebuild what reads the "
            "scores (dbt build --target athena --select stg_fraud_scores+)."
        )
    return "\n".join(lines)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _size(n: int) -> str:
    return f"{n / _MiB:,.1f} MiB" if n >= _MiB else f"{n / 1024:,.1f} KiB"
