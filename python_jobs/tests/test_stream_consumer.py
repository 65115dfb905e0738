"""The Kinesis path end to end against moto's server on 127.0.0.1: `banklake stream --to
kinesis://` puts a generated raw day on a stream, the records are read back shard by shard
(GetShardIterator, GetRecords) into the events a Lambda event-source mapping sends, and the
consumer's handler is called with them (Lambda code never runs in moto).

What is checked: every accepted record lands once in S3 raw in the local layout (the raw
validator's verdict, DuckDB reads it), a redelivered batch writes nothing new, refusals are
in the dead letter with their reason, the scores are the local service's for the same records
in the same order, and the alerts reach an SQS queue subscribed to the SNS topic without
personal data. The champion is trained once on synthetic features (as test_serve_api.py):
no dbt build.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest

from ml.layout import MlLayout
from ml.tests.conftest import FAST_TRAINING, TRAINED_AT, synthetic_features, write_features
from ml.train import train
from python_jobs.aws import stream_consumer
from python_jobs.aws.kinesis_stream import (
    MAX_RECORDS_PER_CALL,
    Entry,
    PutFailed,
    chunks,
    entries_of,
    parse_stream_url,
    partition_key,
    put_all,
)
from python_jobs.aws.stream_consumer import ConsumerConfig, handler
from python_jobs.aws.stream_local import kinesis_event, read_shards
from python_jobs.cli import main
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import TRANSACTIONS
from python_jobs.lake.validate import check_raw_file
from python_jobs.retry import RetryPolicy
from python_jobs.serve.contract import ContractError, normalize_transaction, text
from python_jobs.serve.service import ScoringRequest, ScoringService, ServeConfig
from python_jobs.serve.stream import day_events
from python_jobs.tests.exports import publish
from python_jobs.tests.moto_s3 import (
    CREDENTIALS,
    REGION,
    keys,
    moto_server,
    new_bucket,
    s3_client,
    stubbed,
    versions,
)

DAY = date(2026, 10, 3)
SOURCE = GeneratorConfig(seed=11, start_date=DAY, days=1, customers=60, fault_rate=0.2)
BATCH = 40  # records per event: several batches per shard
RAW_KEY = "raw/transactions/"
SCORES_KEY = "processed/fraud_scores/"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A lake with a champion and no export: the state starts empty, as the consumer's."""
    lake = Lake(tmp_path_factory.mktemp("consumer") / "lake")
    layout = MlLayout(lake)
    write_features(lake.database, synthetic_features())
    train(layout, config=FAST_TRAINING, now=TRAINED_AT)
    return lake


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """One generated raw day (duplicates and damaged rows included)."""
    lake = Lake(tmp_path_factory.mktemp("source") / "lake")
    generate(lake, SOURCE)
    return lake


def client(endpoint: str, service: Literal["kinesis", "sns", "sqs"]) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)


@pytest.fixture
def aws_env(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    return endpoint


@dataclass
class Setup:
    s3: Any
    bucket: str
    topic: str
    queue_url: str
    sqs: Any


@pytest.fixture
def setup(aws_env: str, template: Lake, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    """A lake bucket (versioned, as production) holding the champion, an SNS topic with an
    SQS queue subscribed, and the handler's environment."""
    s3 = s3_client(aws_env)
    bucket = new_bucket(s3)
    models = MlLayout(template).models
    for path in models.rglob("*"):
        if path.is_file():
            key = "banklake/models/fraud_xgb/" + path.relative_to(models).as_posix()
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    sns, sqs = client(aws_env, "sns"), client(aws_env, "sqs")
    topic = sns.create_topic(Name=f"alerts-{bucket}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"alerts-{bucket}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv(stream_consumer.LAKE_URI_ENV, f"s3://{bucket}/banklake")
    monkeypatch.setenv(stream_consumer.ALERT_TOPIC_ENV, topic)
    monkeypatch.setenv(stream_consumer.INGESTION_DAY_ENV, DAY.isoformat())
    monkeypatch.delenv(stream_consumer.STATE_ENV, raising=False)
    monkeypatch.delenv(stream_consumer.MODEL_URI_ENV, raising=False)
    stream_consumer._consumer.cache_clear()
    yield Setup(s3, bucket, topic, queue_url, sqs)
    stream_consumer._consumer.cache_clear()


def queued_alerts(setup: Setup) -> list[dict[str, Any]]:
    alerts = []
    for _ in range(100):  # bounded
        messages = setup.sqs.receive_message(
            QueueUrl=setup.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            alerts.append(json.loads(json.loads(message["Body"])["Message"]))
            setup.sqs.delete_message(
                QueueUrl=setup.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    return alerts


def objects(setup: Setup, prefix: str) -> dict[str, bytes]:
    return {
        key: setup.s3.get_object(Bucket=setup.bucket, Key=key)["Body"].read()
        for key in keys(setup.s3, setup.bucket, "banklake/" + prefix)
    }


def dead_letters(setup: Setup) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for body in objects(setup, stream_consumer.DEAD_LETTER_DIR).values()
        for line in body.decode().splitlines()
    ]


def test_a_streamed_day_lands_once_scored_as_serve_with_alerts_and_dead_letters(
    setup: Setup, source: Lake, template: Lake, tmp_path: Path
) -> None:
    kinesis = client(setup.s3.meta.endpoint_url, "kinesis")
    stream = f"transactions-{setup.bucket}"
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            [
                "stream",
                "--source-lake",
                str(source.root),
                "--date",
                DAY.isoformat(),
                "--to",
                f"kinesis://{stream}",
            ]
        )
    assert code == 0 and "records/s" in out.getvalue()
    sent = [e.payload for e in day_events(source, DAY) if e.kind == "transaction"]
    # a producer's retry puts a few records again (the generated day has no such repeats)
    put_all(kinesis, stream, entries_of(sent[:5]))
    sent += sent[:5]
    shards = read_shards(kinesis, stream)
    assert sum(len(r) for r in shards.values()) == len(sent)
    assert all(shards.values()), "every shard holds records: the test covers two shards"
    # a customer's transactions are on one shard, in the order they were put
    put_data = [e.data for e in entries_of(sent)]
    shard_of_key: dict[str, str] = {}
    for shard, records in shards.items():
        data = [r["Data"] for r in records]
        assert data == [d for d in put_data if d in set(data)]
        for r in records:
            assert shard_of_key.setdefault(r["PartitionKey"], shard) == shard

    events = [
        kinesis_event(shard, stream, records[i : i + BATCH])
        for shard, records in sorted(shards.items())
        for i in range(0, len(records), BATCH)
    ]
    responses = [handler(event, None) for event in events]
    assert all(r["batchItemFailures"] == [] for r in responses)
    totals = Counter[str]()
    for r in responses:
        totals.update({k: v for k, v in r["metrics"].items() if k != "max_lag_ms"})
    assert totals["records"] == len(sent) == totals["accepted"] + totals["refused"]
    assert totals["refused"] > 0 and totals["duplicates"] > 0, "the day has faults to refuse"

    # every accepted record once, in the local layout, under the raw contract
    raw = objects(setup, RAW_KEY)
    landed: list[str] = []
    for key, body in raw.items():
        relative = key.removeprefix("banklake/")
        check = check_raw_file(body, TRANSACTIONS, key=relative)
        assert check.ok, (key, check.reason)
        assert (
            f"/year={DAY:%Y}/month={DAY:%m}/day={DAY:%d}/transactions-{DAY:%Y%m%d}-kinesis-" in key
        )
        landed += pq.read_table(io.BytesIO(body))["transaction_id"].to_pylist()
    assert len(landed) == len(set(landed)) == totals["accepted"]
    local = tmp_path / "downloaded"
    for key, body in raw.items():
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(body)
    rows = duckdb.sql(
        f"select count(*), count(distinct transaction_id), min(_source_file) "
        f"from read_parquet('{local}/banklake/raw/transactions/*/*/*/*.parquet', "
        "hive_partitioning = true)"
    ).fetchone()
    assert rows is not None and rows[0] == rows[1] == len(landed)
    assert str(rows[2]).startswith("raw/transactions/year=")

    # refusals: in the dead letter with their reason, none landed
    refused = dead_letters(setup)
    assert len(refused) == totals["refused"]
    assert all(e["reason"] and e["field"] and e["sequence_number"] for e in refused)
    assert {"already_known"} < {e["reason"] for e in refused}

    # the scores: the local service's, given the same records in the same order
    scores = {
        row["transaction_id"]: row
        for body in objects(setup, SCORES_KEY).values()
        for row in pq.read_table(io.BytesIO(body)).to_pylist()
    }
    assert set(scores) == set(landed)
    serving = Lake(tmp_path / "serving")
    shutil.copytree(template.root, serving.root)
    service = ScoringService(ServeConfig(lake=serving.root, ingestion_day=DAY))
    service.start(flusher=False)
    try:
        ordered = [
            json.loads(base64.b64decode(r["kinesis"]["data"]))
            for event in events
            for r in event["Records"]
        ]
        answers = service.decide([ScoringRequest(p, False, 0.0) for p in ordered], atomic=False)
    finally:
        service.stop()
    local_scores = {a["transaction_id"]: a for a in answers if isinstance(a, dict)}
    assert set(local_scores) == set(scores)
    for tid, answer in local_scores.items():
        assert scores[tid]["score"] == answer["score"], tid
        assert scores[tid]["reason_1"] == answer["reasons"][0]["feature"]

    # alerts: one per review/block, on the queue, no personal data
    alerts = queued_alerts(setup)
    raised = {tid for tid, a in local_scores.items() if a["decision"] != "approve"}
    assert raised, "no alert raised: the test would check nothing"
    assert {a["transaction_id"] for a in alerts} == raised and len(alerts) == len(raised)
    personal: set[str] = {p["city"] for p in sent if p.get("city")}
    for p in sent:  # the counterparty keys the contract hashes: a person's PIX key or account
        try:
            tx = normalize_transaction({k: text(v) for k, v in p.items()})
        except ContractError:
            continue
        if tx.counterparty_key and tx.counterparty_key != str(p["counterparty_key"]).strip(" "):
            personal.add(str(p["counterparty_key"]).strip(" "))
    assert personal
    for alert in alerts:
        assert set(alert) == {
            "alert_id",
            "raised_at",
            "transaction_id",
            "score",
            "decision",
            "reasons",
            "model_version",
            "customer_id",
            "event_ts",
            "account_id",
            "counterparty_key",
            "amount_brl",
            "transaction_type",
            "channel",
        }
        shown = json.dumps(alert, ensure_ascii=False)
        assert not [value for value in personal if value in shown]

    # a batch delivered again: nothing new in the lake, no alert again
    before = {k: versions(setup.s3, setup.bucket, k) for k in keys(setup.s3, setup.bucket)}
    again = handler(events[0], None)
    assert again["batchItemFailures"] == [] and again["metrics"]["replayed"] > 0
    assert again["metrics"]["alerts"] == 0
    after = {k: versions(setup.s3, setup.bucket, k) for k in keys(setup.s3, setup.bucket)}
    assert after == before
    assert queued_alerts(setup) == []
    # ... and one that failed after its files, before its marker: landed again from its
    # intent (no second object, no second version), its alerts published again (same ids)
    shard, first_seq = events[0]["Records"][0]["eventID"].split(":")
    (marker,) = [k for k in before if k.endswith(f"/{shard}/{first_seq}.landed.json")]
    setup.s3.delete_object(Bucket=setup.bucket, Key=marker)
    again = handler(events[0], None)
    assert again["batchItemFailures"] == [] and again["metrics"]["replayed"] > 0
    after = {k: versions(setup.s3, setup.bucket, k) for k in keys(setup.s3, setup.bucket)}
    assert {k: v for k, v in after.items() if k != marker} == {
        k: v for k, v in before.items() if k != marker
    }
    republished = queued_alerts(setup)
    assert republished and {a["alert_id"] for a in republished} <= {a["alert_id"] for a in alerts}


def put_one_shard(
    setup: Setup, payloads: list[dict[str, Any] | bytes]
) -> tuple[str, str, list[dict[str, Any]]]:
    kinesis = client(setup.s3.meta.endpoint_url, "kinesis")
    stream = f"one-{setup.bucket}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    data = [p if isinstance(p, bytes) else json.dumps(p).encode() for p in payloads]
    kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": "k"} for d in data])
    ((shard, records),) = read_shards(kinesis, stream).items()
    return shard, stream, records


def payload(n: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": f"TK{n:06d}",
        "account_id": "A1",
        "customer_id": "C1",
        "event_ts": f"{DAY} 10:00:{n:02d}",
        "transaction_type": "PIX",
        "channel": "mobile",
        "direction": "outbound",
        "amount": "120.00",
        "counterparty_key": "maria@example.com",
        "merchant_category_code": None,
        "device_id": "d1",
        "city": "Recife",
        "state": "PE",
        "status": "approved",
    }
    body.update(changes)
    return body


def test_bad_records_are_dead_lettered_with_their_reason_and_the_good_ones_land(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = payload(2)
    del missing["account_id"]
    shard, stream, records = put_one_shard(
        setup, [payload(1), b"{not json", missing, payload(3, amount="abc"), payload(1)]
    )
    event = kinesis_event(shard, stream, records)
    event["Records"].insert(
        1,
        {**event["Records"][1], "kinesis": {**event["Records"][1]["kinesis"], "data": "%%%"}},
    )
    event["Records"][1]["kinesis"]["sequenceNumber"] = "1"  # its own, before the others
    monkeypatch.setenv("BANKLAKE_METRICS", "log")
    response = handler(event, None)
    assert response["batchItemFailures"] == []
    assert response["metrics"]["accepted"] == 1 and response["metrics"]["refused"] == 5
    # the same figures as CloudWatch EMF on the log (stderr), where the alarms find them
    (emf,) = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "_aws" in line]
    assert emf["Job"] == "consumer"
    assert (emf["StreamRecords"], emf["StreamAccepted"], emf["StreamRefused"]) == (6, 1, 5)
    reasons = {(e["field"], e["reason"]) for e in dead_letters(setup)}
    assert reasons == {
        ("data", "bad_base64"),
        ("data", "bad_json"),
        ("account_id", "missing"),
        ("amount", "unparseable_amount"),
        ("transaction_id", "already_known"),
    }
    bad_json = next(e for e in dead_letters(setup) if e["reason"] == "bad_json")
    assert bad_json["payload"] == "{not json" and bad_json["status"] == 400
    raw = objects(setup, RAW_KEY)
    (body,) = raw.values()
    assert pq.read_table(io.BytesIO(body))["transaction_id"].to_pylist() == ["TK000001"]


def test_a_retry_reaching_further_lands_its_first_range_and_hands_back_the_rest(
    setup: Setup,
) -> None:
    shard, stream, records = put_one_shard(setup, [payload(n) for n in range(1, 9)])
    first = handler(kinesis_event(shard, stream, records[:5]), None)
    assert first["batchItemFailures"] == []
    # the same start delivered again with more records: the first five are the first
    # delivery's, the sixth is handed back as the start of the next batch
    wider = handler(kinesis_event(shard, stream, records), None)
    assert wider["batchItemFailures"] == [{"itemIdentifier": records[5]["SequenceNumber"]}]
    assert wider["metrics"]["replayed"] == 5
    rest = handler(kinesis_event(shard, stream, records[5:]), None)
    assert rest["batchItemFailures"] == [] and rest["metrics"]["accepted"] == 3
    landed = [
        tid
        for body in objects(setup, RAW_KEY).values()
        for tid in pq.read_table(io.BytesIO(body))["transaction_id"].to_pylist()
    ]
    assert sorted(landed) == [f"TK{n:06d}" for n in range(1, 9)]
    assert dead_letters(setup) == []


def test_a_failure_hands_the_whole_batch_back(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard, stream, records = put_one_shard(setup, [payload(n) for n in range(1, 4)])
    monkeypatch.setenv(stream_consumer.LAKE_URI_ENV, f"s3://{setup.bucket}-missing/banklake")
    monkeypatch.setenv(
        stream_consumer.MODEL_URI_ENV, f"s3://{setup.bucket}/banklake/models/fraud_xgb/"
    )
    stream_consumer._consumer.cache_clear()
    response = handler(kinesis_event(shard, stream, records), None)
    assert response["batchItemFailures"] == [{"itemIdentifier": records[0]["SequenceNumber"]}]


def test_an_s3_champion_is_loaded_and_its_copy_removed(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uri = f"s3://{setup.bucket}/banklake/models/fraud_xgb/"
    source = stream_consumer.ChampionSource(uri, setup.s3)
    model = source.model()
    assert model.version, "no champion loaded"
    # scored from memory: nothing of the copy is left in /tmp
    assert list(tmp_path.iterdir()) == []
    assert source.model() is model  # the same champion: not copied again


def test_the_configuration_comes_from_the_environment() -> None:
    config = ConsumerConfig.from_env(
        {
            "BANKLAKE_LAKE_URI": "s3://lake-bucket/banklake/",
            "BANKLAKE_STATE": "redis://127.0.0.1:6379/0",
            "BANKLAKE_ALERT_TOPIC_ARN": "arn:aws:sns:sa-east-1:123456789012:alerts",
        }
    )
    assert (config.bucket, config.lake_prefix) == ("lake-bucket", "banklake/")
    assert config.model_uri == "s3://lake-bucket/banklake/models/fraud_xgb/"
    assert config.state_url == "redis://127.0.0.1:6379/0" and config.ingestion_day is None
    with pytest.raises(ValueError, match="BANKLAKE_LAKE_URI"):
        ConsumerConfig.from_env({"BANKLAKE_LAKE_URI": "/tmp/lake"})


# -- the producer ------------------------------------------------------------------------


def test_the_partition_key_is_the_customer_s_hash() -> None:
    a = partition_key({"customer_id": "C1", "transaction_id": "T1"}, 0)
    assert a == partition_key({"customer_id": " C1", "transaction_id": "T2"}, 5)
    assert "C1" not in a and len(a) == 64
    assert partition_key({"customer_id": " ", "transaction_id": "T1"}, 0) != a
    assert partition_key({}, 7) == "position-7"
    assert parse_stream_url("kinesis://tx") == "tx"
    with pytest.raises(ValueError):
        parse_stream_url("s3://tx")


def test_calls_stay_within_put_records_limits() -> None:
    small = entries_of([{"transaction_id": f"T{i}"} for i in range(1201)])
    assert [len(c) for c in chunks(small)] == [MAX_RECORDS_PER_CALL, MAX_RECORDS_PER_CALL, 201]
    big = [Entry(b"x" * 1_000_000, "k") for _ in range(12)]
    assert [len(c) for c in chunks(big)] == [5, 5, 2]


def test_only_failed_entries_are_put_again_then_it_gives_up() -> None:
    entries = entries_of([{"customer_id": f"C{i}", "transaction_id": f"T{i}"} for i in range(3)])
    ok = {"SequenceNumber": "1", "ShardId": "shardId-000000000000"}
    throttled = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
    waits: list[float] = []
    with stubbed("kinesis") as (kinesis, stubber):
        records = [{"Data": e.data, "PartitionKey": e.partition_key} for e in entries]
        stubber.add_response(
            "put_records",
            {"FailedRecordCount": 1, "Records": [ok, throttled, ok]},
            {"StreamName": "tx", "Records": records},
        )
        stubber.add_response(
            "put_records",
            {"Records": [ok]},
            {"StreamName": "tx", "Records": [records[1]]},
        )
        result = put_all(kinesis, "tx", entries, sleep=waits.append)
    assert (result.put, result.calls, result.retried_entries) == (3, 2, 1)
    assert waits == [0.1]
    with stubbed("kinesis") as (kinesis, stubber):
        for _ in range(2):
            stubber.add_response("put_records", {"FailedRecordCount": 1, "Records": [throttled]})
        with pytest.raises(PutFailed, match="1 entries still failed after 2 attempts"):
            put_all(
                kinesis,
                "tx",
                entries[:1],
                policy=RetryPolicy(initial=0.1, max_attempts=2),
                sleep=waits.append,
            )


def test_alerts_sns_refuses_are_kept_in_the_lake(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard, stream, records = put_one_shard(setup, [payload(n) for n in range(1, 4)])
    monkeypatch.setenv(stream_consumer.ALERT_TOPIC_ENV, setup.topic + "-gone")
    stream_consumer._consumer.cache_clear()
    response = handler(kinesis_event(shard, stream, records), None)
    metrics = response["metrics"]
    assert response["batchItemFailures"] == []
    assert metrics["alerts"] > 0 and metrics["alerts_undelivered"] == metrics["alerts"]
    kept = [
        json.loads(line)
        for body in objects(setup, stream_consumer.ALERTS_DEAD_LETTER_DIR).values()
        for line in body.decode().splitlines()
    ]
    assert len(kept) == metrics["alerts"] and all("NotFound" in k["reason"] for k in kept)


def test_banklake_consume_runs_the_handler_as_the_event_source_mapping(setup: Setup) -> None:
    shard, stream, records = put_one_shard(setup, [payload(n) for n in range(1, 8)])
    # an earlier delivery of the first two: the mapping's first batch of five is handed back
    # from the third record, which starts the next batch
    handler(kinesis_event(shard, stream, records[:2]), None)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["consume", "--from", f"kinesis://{stream}", "--batch-size", "5"]) == 0
    # records 1-5 (1-2 replayed from the intent, 3 handed back), then 3-7
    assert "2 invocations (1 redeliveries)" in out.getvalue()
    assert "accepted 7" in out.getvalue() and "replayed 2" in out.getvalue()
    landed = [
        tid
        for body in objects(setup, RAW_KEY).values()
        for tid in pq.read_table(io.BytesIO(body))["transaction_id"].to_pylist()
    ]
    assert sorted(landed) == [f"TK{n:06d}" for n in range(1, 8)]
    assert len(objects(setup, RAW_KEY)) == 2  # one raw file a batch: 1-2 and 3-7


def test_on_a_shared_state_another_container_refuses_what_one_landed(
    setup: Setup,
    redis_socket: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """The state on Redis (serve's backend, through serve's factory): a transaction landed by
    one container is known to the next one, so a producer's repeat arriving as another batch
    is dead-lettered, not landed twice."""
    monkeypatch.setenv(stream_consumer.STATE_ENV, f"unix://{redis_socket}")
    monkeypatch.setenv(stream_consumer.STATE_PREFIX_ENV, f"{request.node.name}:")
    shard, stream, records = put_one_shard(
        setup, [payload(1), payload(2), payload(3), payload(2), payload(3)]
    )
    first = handler(kinesis_event(shard, stream, records[:3]), None)
    assert first["metrics"]["accepted"] == 3
    stream_consumer._consumer.cache_clear()  # a new container
    second = handler(kinesis_event(shard, stream, records[3:]), None)
    assert second["batchItemFailures"] == []
    assert (second["metrics"]["accepted"], second["metrics"]["duplicates"]) == (0, 2)
    landed = [
        tid
        for body in objects(setup, RAW_KEY).values()
        for tid in pq.read_table(io.BytesIO(body))["transaction_id"].to_pylist()
    ]
    assert sorted(landed) == ["TK000001", "TK000002", "TK000003"]
    assert {e["reason"] for e in dead_letters(setup)} == {"already_known"}


def test_on_a_loaded_dynamodb_state_the_consumer_s_batch_sees_the_export_s_history(
    setup: Setup, template: Lake, tmp_path: Path, dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DynamoDB state of the stack (serve's factory: generations, ADR 0021) loaded with
    `banklake state load` from a lake's export, then a batch through the handler: its
    scores are those of the in-process service warmed from the same export, and not those
    of an empty state (the history changes them)."""
    history = [
        payload(n, event_ts=f"{DAY - timedelta(days=1)} {12 + n // 10}:{n % 10:02d}:00")
        for n in range(1, 21)
    ]
    serving = Lake(tmp_path / "serving")
    shutil.copytree(template.root, serving.root)
    publish(serving, [normalize_transaction({k: text(v) for k, v in p.items()}) for p in history])
    load = ["state", "load", "--lake", str(serving.root), "--state", dynamodb_url]
    assert main([*load, "--grace-seconds", "0"]) == 0
    monkeypatch.setenv(stream_consumer.STATE_ENV, dynamodb_url)
    streamed = [payload(n, amount=f"{90 + n}.00") for n in range(21, 31)]
    shard, stream, records = put_one_shard(setup, list[dict[str, Any] | bytes](streamed))
    response = handler(kinesis_event(shard, stream, records), None)
    assert response["batchItemFailures"] == [] and response["metrics"]["accepted"] == 10
    scores = {
        row["transaction_id"]: row["score"]
        for body in objects(setup, SCORES_KEY).values()
        for row in pq.read_table(io.BytesIO(body)).to_pylist()
    }

    def in_process(lake: Lake) -> dict[str, float]:
        service = ScoringService(ServeConfig(lake=lake.root, ingestion_day=DAY))
        service.start(flusher=False)
        try:
            answers = service.decide(
                [ScoringRequest(p, False, 0.0) for p in streamed], atomic=False
            )
        finally:
            service.stop()
        return {a["transaction_id"]: a["score"] for a in answers if isinstance(a, dict)}

    assert scores == in_process(serving)
    cold = Lake(tmp_path / "cold")
    shutil.copytree(template.root, cold.root)
    assert scores != in_process(cold)
