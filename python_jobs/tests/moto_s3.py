"""A real S3 API on 127.0.0.1 (moto's server) for the AWS tests: no network, no account (and
DynamoDB, for the online state's table).

The server speaks HTTP like S3 does, so boto3's transfer manager, multipart uploads,
conditional writes, checksums, versioning and tagging go through the same code paths as in
production. Each test makes its own bucket; the server lives for a test module.
"""

from __future__ import annotations

import threading
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
    list_moto_modules_once()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def list_moto_modules_once() -> None:
    """Makes moto's server list its service modules once, not at every request.

    moto 5.2.5's server finds a request's backend with `host in list_of_moto_modules()`, a
    generator that lists moto's package folder and stats each entry (some 150 system calls),
    twice per request and under the dispatcher's one lock, so that every request of every
    thread waits for it. The folder does not change while the tests run: the list is read
    once, the same names in the same order (test_moto_speedups compares). Idempotent."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "cached_by_banklake", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def listed() -> Iterator[str]:
        return iter(modules)

    listed.cached_by_banklake = True  # type: ignore[attr-defined]
    listed.uncached = backends.list_of_moto_modules  # type: ignore[attr-defined]
    backends.list_of_moto_modules = listed


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
    index_moto_dynamodb_queries()
    answer_moto_dynamodb_results_as_json()
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)


_partition = threading.local()  # the partition a base-table Query of this thread reads
UNINDEXED = threading.Event()  # set: moto's own Query (the test comparing the two sets it)
SERIALIZED = threading.Event()  # set: moto's own response serializer (the test comparing sets it)
# the item reads and writes, whose results are items and counts only (no table descriptions,
# whose timestamps and optional members the serializer shapes)
_ITEM_OPERATIONS = {
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
}


def answer_moto_dynamodb_results_as_json() -> None:
    """Makes moto's server write its DynamoDB results as plain JSON, in this process.

    moto 5.2.5 turns a result's items into DynamoDB's wire format (`{"S": ...}`, `{"N": ...}`:
    DynamoResult, dynamo_to_dict) and then walks that again, member by member, through its
    generic serializer driven by the service model: for the online state's Query answers
    (dozens of items of a dozen attributes) that walk is four fifths of the request (profiled:
    28 of 34 s of 145 Queries), to produce the same JSON that `json.dumps` writes from the
    wire-format dict. Here a DynamoDB result is written with json.dumps, unless it holds what
    JSON cannot (binary values, B/BS, are bytes for the serializer to base64; datetimes): those
    go through moto's serializer as before. The answers boto3 reads are unchanged
    (test_serve_state compares them, every attribute type, with SERIALIZED set). Status 200
    and the protocol's content type, as moto's serializer gives; moto adds the CRC32 header
    over this body afterwards. Item operations only (_ITEM_OPERATIONS); idempotent; errors,
    table operations and other services are untouched."""
    import json

    from moto.dynamodb.responses import DynamoResult

    if getattr(DynamoResult.execute_result, "json_by_banklake", False):
        return
    execute_result = DynamoResult.execute_result

    def as_json(self: Any, context: Any) -> Any:
        if SERIALIZED.is_set() or context.operation_model.name not in _ITEM_OPERATIONS:
            return execute_result(self, context)
        try:
            body = json.dumps(self.result)
        except TypeError:  # bytes or datetimes: the serializer's to encode
            return execute_result(self, context)
        serializer = context.serializer_class(operation_model=context.operation_model)
        return 200, {"Content-Type": serializer._get_protocol_specific_content_type()}, body

    as_json.json_by_banklake = True  # type: ignore[attr-defined]
    DynamoResult.execute_result = as_json  # type: ignore[method-assign]


def index_moto_dynamodb_queries() -> None:
    """Makes moto's DynamoDB Query read its partition only, in this process (the server runs
    in a thread of the tests' process).

    moto 5.2.5's Table.query lists and sorts every item of the table (Table.all_items) to
    keep those of one partition key: a Query costs time in the size of the table (measured
    here: 4 ms on an empty table, 36 ms at 2,000 items), which makes the online state's tests
    at lake scale (tens of thousands of items) take hours. Here all_items, while a base-table
    Query with a partition key runs in the same thread, returns that partition's items only:
    the very items moto's own filter keeps (`item.hash_key == hash_key`), in the same order, so
    the answers are unchanged (test_serve_state checks them against the unpatched Query).
    The partition is sorted by its range keys' values (DynamoType orders by exactly those),
    not through DynamoType's comparisons; and moto's deep copy of the items it answers (a
    third of a Query at the online state's partition sizes) is skipped when no projection
    and no index apply: the answer is then turned into new wire-format dicts (DynamoResult)
    and written out, nothing of it is changed in place. Idempotent; other requests (Scan,
    indexes, projections) are untouched."""
    import copy

    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "indexed_by_banklake", False):
        return
    query, all_items = Table.query, Table.all_items

    def indexed_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        projection = args[5] if len(args) > 5 else kwargs.get("projection_expressions")
        if (
            index_name is not None
            or hash_key is None
            or not self.range_key_attr
            or UNINDEXED.is_set()
        ):
            return query(self, hash_key, *args, **kwargs)
        _partition.current = (self, hash_key)
        _partition.answer_uncopied = not projection
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.current = None
            _partition.answer_uncopied = False

    def partition_items(self: Any) -> Any:
        current = getattr(_partition, "current", None)
        if current is None or current[0] is not self:
            return all_items(self)
        items = self.items.get(current[1], {}).values()
        return sorted(items, key=lambda x: x.range_key.cast_value)

    class _Copy:
        """The `copy` module as table.py sees it: deepcopy is the identity while this
        thread's indexed Query answers uncopied (its results list is its own, fresh)."""

        def deepcopy(self, value: Any, memo: Any = None) -> Any:
            if getattr(_partition, "answer_uncopied", False):
                return value
            return copy.deepcopy(value, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    table_module.copy = _Copy()  # type: ignore[assignment]

    indexed_query.indexed_by_banklake = True  # type: ignore[attr-defined]
    Table.query = indexed_query  # type: ignore[method-assign]
    Table.all_items = partition_items  # type: ignore[method-assign]


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
