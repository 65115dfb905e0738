"""A real S3 API on 127.0.0.1 (moto's server) for the AWS tests: no network, no account (and
DynamoDB, for the online state's table).

The server speaks HTTP like S3 does, so boto3's transfer manager, multipart uploads,
conditional writes, checksums, versioning and tagging go through the same code paths as in
production. Each test makes its own bucket; the server lives for a test module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

import boto3
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from python_jobs.aws.clients import Service

REGION = "sa-east-1"


class Credentials(TypedDict):
    """Keyword arguments of boto3.client(), typed so that ** passes them as such."""

    aws_access_key_id: str
    aws_secret_access_key: str


CREDENTIALS = Credentials(aws_access_key_id="testing", aws_secret_access_key="testing")


@contextmanager
def moto_server() -> Iterator[str]:
    """Starts moto on a free local port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def offline_client(service: Service) -> Any:
    """A client that can reach nothing: for botocore's Stubber."""
    return boto3.client(service, region_name=REGION, **CREDENTIALS)


@contextmanager
def stubbed(service: Service) -> Iterator[tuple[Any, Stubber]]:
    """An offline client under a Stubber; every queued response must have been used."""
    client = offline_client(service)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)


def new_bucket(s3: Any, *, versioned: bool = True) -> str:
    """A fresh bucket, versioned like the production lake bucket."""
    name = f"banklake-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def versions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """Every stored version of exactly `key` (delete markers excluded)."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


def dynamodb_client(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)


def new_table(client: Any) -> str:
    """A fresh table of the online state (python_jobs/serve/dynamodb_state.py's definition)."""
    from python_jobs.serve.dynamodb_state import create_table

    name = f"banklake-state-{uuid.uuid4().hex[:12]}"
    create_table(client, name)
    return name


def aws_environment(endpoint: str) -> dict[str, str]:
    """The variables that point boto3 (in this process or a child) at moto's server."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
    }
