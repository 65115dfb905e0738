"""S3 plumbing every job shares: the client (the profile and region every AWS command reads)
and the objects under a prefix."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from python_jobs.aws.clients import aws_client
from python_jobs.environment import aws_profile, aws_region, environment


def make_s3_client(env: Mapping[str, str] | None = None) -> Any:
    """An S3 client with the same profile and region as `banklake athena` and the dbt
    profile (BANKLAKE_AWS_PROFILE, AWS_REGION or AWS_DEFAULT_REGION); unset = boto3's own
    chain. AWS_ENDPOINT_URL, when set, is honoured by boto3 itself."""
    env = environment(env)
    return aws_client("s3", region=aws_region(env), profile=aws_profile(env))


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every object under `prefix`, in S3's order (by key), as ListObjectsV2 describes it
    (Key, Size, ETag, ...), page after page."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])
