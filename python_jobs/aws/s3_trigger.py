"""Validation on arrival in S3: the AWS Lambda behind `s3:ObjectCreated:*` events under raw/.

Each new raw object gets the SAME checks as `banklake validate` on the local lake
(`check_raw_file` in python_jobs/lake/validate.py: name, partition path, schema and types, a
full read, row numbering and `_source_file` = the object's lake-relative key), run on a /tmp
copy of the object. A good object is tagged (`banklake-validated=true`, its row count and
SHA-256); a bad one is moved to `quarantine/<same relative path>` with the same JSON reason
object the local quarantine writes, plus where it came from.

Runtime dependencies: boto3 (part of the Lambda Python runtime), the standard library, and
pyarrow from a layer; no DuckDB, no pydantic. pyarrow is in the AWS SDK for pandas managed
layer, but that layer builds Arrow without zstd, and raw transactions are zstd Parquet: use
the layer described in python_jobs/aws/LAMBDA.md (the pinned PyPI pyarrow wheel). Should a
codec be missing anyway, the checks raise ValidatorUnavailable and the invocation fails (to
be retried, then kept in the dead-letter queue): a good file is never quarantined because the
runtime cannot read it.

S3 delivers each event at least once, so every step converges instead of assuming it runs
once: an event means "make this key validated or quarantined", and the handler first looks at
what state the key is already in:
- object tagged validated -> nothing to do (no download);
- object gone and `<quarantine key>.reason.json` present -> already quarantined;
- quarantining writes the copy, then the reason, then deletes the raw version, so a reason
  always has its copy; a retry after a crash finds the reason with the same SHA-256 and only
  finishes the delete, and never copies twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from python_jobs.lake.layout import partition_path
from python_jobs.lake.schemas import FEEDS, TRANSACTIONS
from python_jobs.lake.validate import (
    RAW_PREFIX,
    REASON_SUFFIX,
    FileCheck,
    check_raw_file,
    feed_of,
    quarantine_key,
    reason_note,
)
from python_jobs.observability.jobs import emit_trigger

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)

VALIDATED_TAG = "banklake-validated"
ROWS_TAG = "banklake-rows"
SHA256_TAG = "banklake-sha256"
LAKE_PREFIX_ENV = "BANKLAKE_LAKE_PREFIX"
LAKE_BUCKET_ENV = "BANKLAKE_LAKE_BUCKET"
# Brazil has had no daylight saving time since 2019: America/Sao_Paulo is UTC-3 all year,
# and a fixed offset needs no tz database in the Lambda image.
SAO_PAULO = timezone(timedelta(hours=-3))
_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}


class NoDataYet(RuntimeError):
    """The run day has no validated transactions file yet (Step Functions retries this)."""


@dataclass(frozen=True)
class TriggerConfig:
    """Where the lake sits in the bucket: '' (raw/ at the root) or e.g. 'banklake/'."""

    lake_prefix: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TriggerConfig:
        prefix = env.get(LAKE_PREFIX_ENV, "").strip("/")
        return cls(lake_prefix=prefix + "/" if prefix else "")


@dataclass(frozen=True)
class Outcome:
    """What one event did to one key."""

    key: str
    action: str  # validated | quarantined | already-validated | already-quarantined | ...
    detail: str = ""  # ... | ignored | missing
    rows: int | None = None


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point for S3 event notifications (ObjectCreated under raw/)."""
    outcomes = handle_event(event, _s3(), TriggerConfig.from_env())
    return {"outcomes": [asdict(o) for o in outcomes]}


def handle_event(event: dict[str, Any], s3: Any, config: TriggerConfig) -> list[Outcome]:
    outcomes = [process_object(s3, bucket, key, config) for bucket, key in created_objects(event)]
    for outcome in outcomes:
        LOG.info(json.dumps(asdict(outcome)))
    emit_trigger(o.action for o in outcomes)
    return outcomes


def created_objects(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of every ObjectCreated record. Event keys are URL-encoded ('=' as %3D,
    spaces as '+'), so they are decoded before any S3 call."""
    found = []
    for record in event.get("Records", []):
        if record.get("eventSource") != "aws:s3":
            continue
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        found.append((s3["bucket"]["name"], unquote_plus(s3["object"]["key"])))
    return found


def process_object(s3: Any, bucket: str, key: str, config: TriggerConfig) -> Outcome:
    """Brings `key` to its final state, validated (tagged) or quarantined, from any state."""
    relative = key[len(config.lake_prefix) :] if key.startswith(config.lake_prefix) else None
    if relative is None or not relative.startswith(RAW_PREFIX) or key.endswith("/"):
        return Outcome(key, "ignored", "not a file under the lake's raw/ prefix")
    q_key = config.lake_prefix + quarantine_key(relative)
    head = _head(s3, bucket, key)
    if head is None:
        return _gone(s3, bucket, key, q_key)
    version = _version(head)
    tags = _tags(s3, bucket, key, version)
    if tags.get(VALIDATED_TAG) == "true":
        return Outcome(key, "already-validated", rows=_int(tags.get(ROWS_TAG)))
    feed = feed_of(relative)
    with tempfile.TemporaryDirectory(prefix="banklake-") as folder:
        local = Path(folder) / "object"
        try:
            sha256 = _download(s3, bucket, key, head, local)
        except ClientError as error:
            if _code(error) in _MISSING:  # quarantined meanwhile by a parallel delivery
                return _gone(s3, bucket, key, q_key)
            raise
        if feed is None:
            known = ", ".join(sorted(FEEDS))
            check = FileCheck(f"unknown feed: raw/ holds one folder per feed ({known})")
        else:
            check = check_raw_file(local, feed, key=relative)
    if check.ok:
        tags |= {VALIDATED_TAG: "true", ROWS_TAG: str(check.rows), SHA256_TAG: sha256}
        _put_tags(s3, bucket, key, version, tags)
        return Outcome(key, "validated", rows=check.rows)
    note = reason_note(
        relative,
        feed.name if feed else relative.split("/")[1],
        check.reason or "",
        size_bytes=int(head["ContentLength"]),
        sha256=sha256,
    )
    note |= {"bucket": bucket, "source_key": key, "source_version_id": version}
    try:
        _quarantine(s3, bucket, key, head, q_key, note)
    except ClientError as error:
        if _code(error) in _MISSING:  # a parallel delivery finished the move first
            return _gone(s3, bucket, key, q_key)
        raise
    return Outcome(key, "quarantined", check.reason or "")


def _quarantine(
    s3: Any, bucket: str, key: str, head: Mapping[str, Any], q_key: str, note: dict[str, Any]
) -> None:
    """Copy, then reason, then delete: each step is safe to repeat after a crash."""
    reason_key = q_key + REASON_SUFFIX
    previous = _read_json(s3, bucket, reason_key)
    if not (previous and previous.get("sha256") == note["sha256"] and _head(s3, bucket, q_key)):
        source: dict[str, str] = {"Bucket": bucket, "Key": key}
        if _version(head):
            source["VersionId"] = _version(head) or ""
        s3.copy(
            source,
            bucket,
            q_key,
            ExtraArgs={"CopySourceIfMatch": head["ETag"], "MetadataDirective": "COPY"},
        )
        s3.put_object(
            Bucket=bucket,
            Key=reason_key,
            Body=(json.dumps(note, indent=2) + "\n").encode(),
            ContentType="application/json",
        )
    # Delete exactly the version that was checked and copied: a newer upload under the same
    # key (its own event will judge it) is neither hidden nor removed.
    if _version(head):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=_version(head))
    else:
        s3.delete_object(Bucket=bucket, Key=key)


def _gone(s3: Any, bucket: str, key: str, q_key: str) -> Outcome:
    if _head(s3, bucket, q_key + REASON_SUFFIX) is not None:
        return Outcome(key, "already-quarantined", f"see {q_key}{REASON_SUFFIX}")
    LOG.warning("s3://%s/%s: no such object and nothing in quarantine/ (deleted?)", bucket, key)
    return Outcome(key, "missing", "no such object and nothing in quarantine/")


def sweep_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Step Functions' IngestValidated step: every raw object of the run day is validated or
    quarantined before dbt reads it, even if an S3 event was lost (the per-key work is the
    same idempotent `process_object`). Raises NoDataYet when the day has no validated
    transactions file, so the state machine waits and retries instead of building nothing."""
    day = run_day(event)
    outcomes = sweep_day(_s3(), os.environ[LAKE_BUCKET_ENV], day, TriggerConfig.from_env())
    emit_trigger(o.action for o in outcomes)
    counts = Counter(o.action for o in outcomes)
    transactions = [
        o
        for o in outcomes
        if f"/{TRANSACTIONS.name}/" in o.key and o.action in {"validated", "already-validated"}
    ]
    if not transactions:
        raise NoDataYet(f"no validated {TRANSACTIONS.name} file for {day} yet ({dict(counts)})")
    return {
        "day": day.isoformat(),
        "files": len(outcomes),
        "counts": dict(sorted(counts.items())),
        "rows": {o.key: o.rows for o in outcomes if o.rows is not None},
    }


def sweep_day(s3: Any, bucket: str, day: date, config: TriggerConfig) -> list[Outcome]:
    outcomes = []
    for feed in FEEDS.values():
        prefix = f"{config.lake_prefix}{RAW_PREFIX}{feed.name}/{partition_path(day)}/"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                outcomes.append(process_object(s3, bucket, obj["Key"], config))
    return outcomes


def run_day(event: Mapping[str, Any]) -> date:
    """The ingestion day a run covers: `day` if given, else the day before the scheduled time
    (EventBridge Scheduler's <aws.scheduler.scheduled-time>) in São Paulo, else yesterday."""
    if event.get("day"):
        return date.fromisoformat(str(event["day"]))
    scheduled = event.get("scheduled_time")
    moment = (
        datetime.fromisoformat(str(scheduled).replace("Z", "+00:00"))
        if scheduled
        else datetime.now(UTC)
    )
    return moment.astimezone(SAO_PAULO).date() - timedelta(days=1)


@cache
def _s3() -> Any:
    """One client per Lambda container (created on first use, reused across invocations)."""
    import boto3

    return boto3.client("s3")


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _code(error) in _MISSING:
            return None
        raise


def _version(head: Mapping[str, Any]) -> str | None:
    version = head.get("VersionId")
    return None if version in (None, "null") else str(version)


def _tags(s3: Any, bucket: str, key: str, version: str | None) -> dict[str, str]:
    args = {"VersionId": version} if version else {}
    tag_set = s3.get_object_tagging(Bucket=bucket, Key=key, **args)["TagSet"]
    return {t["Key"]: t["Value"] for t in tag_set}


def _put_tags(s3: Any, bucket: str, key: str, version: str | None, tags: dict[str, str]) -> None:
    args = {"VersionId": version} if version else {}
    tag_set = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set}, **args)


def _download(s3: Any, bucket: str, key: str, head: Mapping[str, Any], target: Path) -> str:
    """Streams exactly the version `head` saw to `target`; returns its SHA-256."""
    args = {"VersionId": _version(head)} if _version(head) else {}
    body = s3.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"], **args)["Body"]
    digest = hashlib.sha256()
    with target.open("wb") as handle:
        while chunk := body.read(_CHUNK):
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as error:
        if _code(error) in _MISSING:
            return None
        raise
    except ValueError:
        return None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
