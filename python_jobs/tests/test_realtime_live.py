"""The real-time path against a deployed stack: what no offline test can show (the event source
mapping invoking the consumer image, its role's rights, KMS on every hop, SNS -> SQS delivery).

Skipped unless BANKLAKE_ATHENA_LIVE=1 (the live suites' one switch), BANKLAKE_STACK names a
deployed stack of infrastructure/banklake.yaml with the consumer (StreamConsumerImageUri set)
and boto3 finds credentials and a region. It refuses a stack deployed with the default NamePrefix
(`banklake`): raw/ is immutable (ADR 0002; the bucket policy lets only the trigger delete it),
so the records this test puts on the stream stay in that stack's raw/ for good. Run it against
a test stack (e.g. NamePrefix=banklake-test).

1. a small day is generated locally (fault-free, 20 customers) and its first transactions are
   given ids of this run (`rtlive<run>-...`), so that nothing of the run can be mistaken for
   anything else;
2. they go on TransactionStream as `banklake stream --to kinesis://` puts them
   (python_jobs/aws/kinesis_stream.py: one JSON object per record, the body
   `POST /v1/transactions` takes; the customer's hash as the partition key);
3. it waits (bounded) for every record in raw/transactions/ and in processed/fraud_scores/,
   then checks that the fraud-alert queue holds an alert for exactly the run's transactions
   scored `review` or `block`, and that none of them was dead-lettered;
4. it removes what it can: the alert messages (received and deleted), the score objects that
   hold only the run's rows (every version), the online-state items of the run's customers.
   The raw objects stay (immutable) and are listed in the output.

Costs about $0.01 a run (itemized in docs/aws.md, "Real-time path"). Needs kinesis:PutRecords,
cloudformation:DescribeStacks/DescribeStackResource, s3 list/get on the lake bucket and
delete-object-version on processed/fraud_scores/, sqs receive/delete on FraudAlertQueue,
dynamodb Scan/DeleteItem on OnlineStateTable, kms on the lake key.

    BANKLAKE_ATHENA_LIVE=1 BANKLAKE_STACK=banklake-test \\
        .venv/bin/pytest -m realtime python_jobs/tests/test_realtime_live.py
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from python_jobs.aws.kinesis_stream import entries_of, make_kinesis_client, put_all
from python_jobs.aws.stream_consumer import DEAD_LETTER_DIR

RECORDS = 40
WAIT_SECONDS = 600.0  # a cold start of the image and the consumer's landing interval
POLL_SECONDS = 10.0
DEFAULT_PREFIX = "banklake"


def _skip_reason() -> str | None:
    if os.environ.get("BANKLAKE_ATHENA_LIVE") != "1":
        return "live real-time tests: set BANKLAKE_ATHENA_LIVE=1 and BANKLAKE_STACK"
    if not os.environ.get("BANKLAKE_STACK"):
        return "live real-time tests: BANKLAKE_STACK (a deployed test stack's name) is not set"
    import boto3

    session = boto3.Session()
    if session.get_credentials() is None:
        return "live real-time tests: boto3 finds no AWS credentials"
    if session.region_name is None:
        return "live real-time tests: no AWS region (AWS_REGION / AWS_DEFAULT_REGION)"
    return None


_REASON = _skip_reason()
pytestmark = [pytest.mark.realtime, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]


@dataclass(frozen=True)
class Stack:
    name: str
    stream: str
    bucket: str
    table: str
    alert_queue_url: str
    dead_letter_queue_url: str


@dataclass
class Run:
    """What one run put on the stream, and what it found."""

    tag: str  # every id of the run starts with it
    started: datetime
    records: list[dict[str, Any]]
    raw_keys: set[str] = field(default_factory=set)
    raw_ids: Counter[str] = field(default_factory=Counter)  # rows in raw/ per transaction
    score_keys: dict[str, bool] = field(default_factory=dict)  # key -> holds only run rows
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # transaction id -> row
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters_before: int = 0

    @property
    def ids(self) -> set[str]:
        return {r["transaction_id"] for r in self.records}


def _client(service: str) -> Any:
    import boto3

    session: Any = boto3.Session()  # one client per call: a test's handful of requests
    return session.client(service)


@pytest.fixture(scope="module")
def stack() -> Stack:
    name = os.environ["BANKLAKE_STACK"]
    cloudformation = _client("cloudformation")
    (described,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in described["Parameters"]}
    if parameters.get("NamePrefix", DEFAULT_PREFIX) == DEFAULT_PREFIX:
        pytest.skip(
            f"live real-time tests: {name} has the default NamePrefix ({DEFAULT_PREFIX}); "
            "the run's records would stay in its raw/ for good: use a test stack"
        )
    from botocore.exceptions import ClientError

    try:
        cloudformation.describe_stack_resource(
            StackName=name, LogicalResourceId="StreamConsumerEventSourceMapping"
        )
    except ClientError as error:
        pytest.skip(f"live real-time tests: {name} has no stream consumer ({error})")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    return Stack(
        name=name,
        stream=outputs["TransactionStreamName"],
        bucket=outputs["LakeBucketName"],
        table=outputs["OnlineStateTableName"],
        alert_queue_url=outputs["FraudAlertQueueUrl"],
        dead_letter_queue_url=outputs["StreamConsumerDeadLetterQueueUrl"],
    )


def _generated_records(work: Path, tag: str) -> list[dict[str, Any]]:
    """The first RECORDS transactions of a generated day in arrival order, re-keyed for the
    run (transaction, account and customer ids get the run's tag)."""
    from python_jobs.generate import GeneratorConfig, generate
    from python_jobs.lake.layout import Lake
    from python_jobs.serve.stream import day_events

    day = datetime.now(UTC).date() - timedelta(days=1)
    lake = Lake(work / "lake")
    config = GeneratorConfig(seed=11, start_date=day, days=1, customers=20, fault_rate=0.0)
    generate(lake, config)
    events = [e for e in day_events(lake, day) if e.kind == "transaction"][:RECORDS]
    assert len(events) == RECORDS, f"the generated day has only {len(events)} transactions"
    records = []
    for event in events:
        payload = dict(event.payload)
        for key in ("transaction_id", "account_id", "customer_id"):
            payload[key] = f"{tag}-{payload[key]}"
        records.append(payload)
    return records


def _put_records(stack: Stack, records: list[dict[str, Any]]) -> None:
    """On the stream as `banklake stream --to kinesis://` puts them (the customer's hash as
    the partition key; a throttled entry put again, alone)."""
    result = put_all(make_kinesis_client(), stack.stream, entries_of(records))
    assert result.put == len(records), result.summary()


def _new_objects(stack: Stack, prefix: str, since: datetime) -> Iterator[dict[str, Any]]:
    paginator = _client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=stack.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["LastModified"] >= since:
                yield item


def _rows(stack: Stack, key: str) -> list[dict[str, Any]]:
    body = _client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    if key.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(body)).to_pylist()
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def _look(stack: Stack, run: Run) -> None:
    """Reads the raw and score objects written since the run started that it has not read."""
    since = run.started - timedelta(minutes=1)
    for item in _new_objects(stack, "raw/transactions/", since):
        if item["Key"] in run.raw_keys:
            continue
        ids = [row.get("transaction_id") for row in _rows(stack, item["Key"])]
        landed = [str(i) for i in ids if i in run.ids]
        if landed:
            run.raw_keys.add(item["Key"])
            run.raw_ids.update(landed)
    for item in _new_objects(stack, "processed/fraud_scores/", since):
        if item["Key"] in run.score_keys:
            continue
        rows = _rows(stack, item["Key"])
        ours = [row for row in rows if row.get("transaction_id") in run.ids]
        if ours:
            run.score_keys[item["Key"]] = len(ours) == len(rows)
            run.scores.update({str(row["transaction_id"]): row for row in ours})


def _wait_for_the_lake(stack: Stack, run: Run) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        _look(stack, run)
        if set(run.raw_ids) == run.ids and set(run.scores) == run.ids:
            return
        time.sleep(POLL_SECONDS)


def _receive_alerts(stack: Stack, run: Run, wait_seconds: int) -> None:
    """One receive: the run's alerts are kept and deleted; any other message is made visible
    again at once (somebody else's)."""
    sqs = _client("sqs")
    answer = sqs.receive_message(
        QueueUrl=stack.alert_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
    )
    for message in answer.get("Messages", []):
        alert = json.loads(message["Body"])  # raw delivery: the alert's JSON itself
        handle = message["ReceiptHandle"]
        if alert.get("transaction_id") in run.ids:
            run.alerts[str(alert["transaction_id"])] = alert
            sqs.delete_message(QueueUrl=stack.alert_queue_url, ReceiptHandle=handle)
        else:
            sqs.change_message_visibility(
                QueueUrl=stack.alert_queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )


def _drain_alerts(stack: Stack, run: Run) -> None:
    """Receives until the queue gave the alert of every run transaction scored review/block,
    or the wait is over; then one more look, so that an extra alert (one the scores do not
    flag) is seen. It stops as soon as it can: each receive of another's message counts
    towards the queue's redrive."""
    flagged = {t for t, s in run.scores.items() if s.get("decision") in {"review", "block"}}
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and not flagged <= set(run.alerts):
        _receive_alerts(stack, run, wait_seconds=10)
    _receive_alerts(stack, run, wait_seconds=5)


def _dead_letters(stack: Stack) -> int:
    attributes = _client("sqs").get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def _clean_up(stack: Stack, run: Run) -> None:
    s3 = _client("s3")
    for key, only_ours in run.score_keys.items():
        if not only_ours:
            continue
        versions = s3.list_object_versions(Bucket=stack.bucket, Prefix=key)
        for version in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            if version["Key"] == key:
                s3.delete_object(Bucket=stack.bucket, Key=key, VersionId=version["VersionId"])
    # the run's online state: every item whose key names one of its customers (a scan of a
    # test stack's table; the items would expire by expires_at anyway)
    dynamodb = _client("dynamodb")
    paginator = dynamodb.get_paginator("scan")
    pages = paginator.paginate(
        TableName=stack.table,
        FilterExpression="contains(pk, :tag) OR contains(sk, :tag)",
        ExpressionAttributeValues={":tag": {"S": run.tag}},
        ProjectionExpression="pk, sk",
    )
    for page in pages:
        for item in page.get("Items", []):
            dynamodb.delete_item(TableName=stack.table, Key={"pk": item["pk"], "sk": item["sk"]})
    if run.raw_keys:
        print(f"raw/ keeps the run's records (immutable): {sorted(run.raw_keys)}")


@pytest.fixture(scope="module")
def run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tag = f"rtlive{uuid.uuid4().hex[:10]}"
    records = _generated_records(tmp_path_factory.mktemp("realtime-live"), tag)
    live = Run(tag=tag, started=datetime.now(UTC), records=records)
    live.dead_letters_before = _dead_letters(stack)
    try:
        _put_records(stack, records)
        _wait_for_the_lake(stack, live)
        _drain_alerts(stack, live)
        yield live
    finally:
        _clean_up(stack, live)


def test_every_record_lands_in_raw_once_and_is_scored(run: Run) -> None:
    missing = run.ids - set(run.raw_ids)
    assert not missing, f"not in raw/ after {WAIT_SECONDS:.0f} s: {sorted(missing)}"
    assert {t: n for t, n in run.raw_ids.items() if n > 1} == {}  # each exactly once
    assert set(run.scores) == run.ids, f"not scored: {run.ids - set(run.scores)}"
    for transaction_id, score in run.scores.items():
        assert 0.0 <= float(score["score"]) <= 1.0, transaction_id
        assert score["decision"] in {"approve", "review", "block"}, transaction_id
        assert score["customer_id"] == next(
            r["customer_id"] for r in run.records if r["transaction_id"] == transaction_id
        )


def test_the_alerts_are_the_review_and_block_decisions(run: Run) -> None:
    flagged = {t for t, s in run.scores.items() if s["decision"] in {"review", "block"}}
    assert set(run.alerts) == flagged
    for transaction_id, alert in run.alerts.items():
        assert alert["decision"] == run.scores[transaction_id]["decision"]
        # no PII in clear in an alert: the generated customer's name or CPF never appear
        assert not {"cpf", "name", "customer_name"} & set(alert), sorted(alert)


def test_nothing_of_the_run_was_dead_lettered(stack: Stack, run: Run) -> None:
    since = run.started - timedelta(minutes=1)
    for item in _new_objects(stack, DEAD_LETTER_DIR, since):
        body = _client("s3").get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
        if item["Key"].endswith(".gz"):
            body = gzip.decompress(body)
        assert run.tag.encode() not in body, item["Key"]
    # the consumer's dead letters are batch metadata (shard, sequence numbers), not ids: on a
    # test stack, any new one since the run started is the run's
    assert _dead_letters(stack) == run.dead_letters_before
