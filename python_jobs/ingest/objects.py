"""The objects `banklake ingest` writes and compares on S3: each carries the SHA-256 of its
bytes in its metadata (`x-amz-meta-sha256`) and S3 verifies its own SHA-256 of what arrived;
writes are conditional (If-None-Match: * for a new key, If-Match on the ETag read before for a
replacement), so an object someone else wrote meanwhile is never overwritten."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from python_jobs.aws.clients import error_code
from python_jobs.ingest.local_files import LocalFile, MiB
from python_jobs.ingest.policy import Policy

SHA256_METADATA = "sha256"  # stored as x-amz-meta-sha256, hex
CONTENT_TYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".gz": "application/gzip",
    ".json": "application/json",
    ".md": "text/markdown",
    ".png": "image/png",
}
# S3's answers to a conditional write whose condition no longer holds: 412 (If-None-Match
# found an object, If-Match another ETag), 409 (a concurrent conditional write to the key),
# 404 (If-Match on a key deleted meanwhile)
CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
GONE = {"NoSuchKey", "404"}


def remote_state(
    s3: Any, bucket: str, key: str, policy: Policy | None = None
) -> tuple[str | None, str]:
    """(the object's SHA-256, hex: our metadata, else S3's full-object SHA-256 checksum,
    else, if the policy says so, the digest of its downloaded bytes; its ETag)."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    etag = head["ETag"]
    if SHA256_METADATA in head.get("Metadata", {}):
        return head["Metadata"][SHA256_METADATA], etag
    checksum = head.get("ChecksumSHA256")
    if checksum and "-" not in checksum:  # "-N" marks a composite (per-part) checksum
        return base64.b64decode(checksum).hex(), etag
    if policy is not None and policy.hash_unlabelled:
        body = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(MiB):
            digest.update(chunk)
        return digest.hexdigest(), etag
    return None, etag


def object_args(item: LocalFile) -> dict[str, Any]:
    """What every object carries: its SHA-256, S3's own SHA-256 check, its content type."""
    return {
        "Metadata": {SHA256_METADATA: item.sha256},
        "ChecksumAlgorithm": "SHA256",
        "ContentType": CONTENT_TYPES.get(item.path.suffix, "binary/octet-stream"),
    }


def put_conditional(s3: Any, bucket: str, item: LocalFile, *, if_match: str | None) -> None:
    """One PutObject: If-Match on the ETag read before (a replacement), else If-None-Match: *
    (a new key)."""
    condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
    s3.put_object(
        Bucket=bucket, Key=item.key, Body=item.path.read_bytes(), **object_args(item), **condition
    )


def make_puts_conditional(s3: Any) -> None:
    """Adds If-None-Match: * to every PutObject and CompleteMultipartUpload of this client
    that does not carry If-Match (a replacement)."""

    def if_none_match(params: dict[str, Any], **_: Any) -> None:
        if "IfMatch" not in params:
            params.setdefault("IfNoneMatch", "*")

    for operation in ("PutObject", "CompleteMultipartUpload"):
        s3.meta.events.register(
            f"before-parameter-build.s3.{operation}",
            if_none_match,
            unique_id=f"banklake-ingest-if-none-match-{operation}",
        )


def difference(remote: str | None, local: str) -> str:
    if remote is None:
        return "the S3 object has no SHA-256 to compare (not uploaded by ingest)"
    return f"SHA-256 {remote[:12]}... in S3, {local[:12]}... locally"


def read_json(s3: Any, bucket: str, key: str) -> tuple[Any, str | None]:
    """(the object's JSON, or None if unreadable, its ETag), or (None, None) if no object."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in GONE:
            return None, None
        raise
    body = got["Body"].read()
    try:
        return json.loads(body), got["ETag"]
    except ValueError:
        return None, got["ETag"]
