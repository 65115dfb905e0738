"""The real-time path on AWS: the Lambda behind a Kinesis event-source mapping that scores each
transaction with `banklake serve`'s code and lands it in the lake on S3
(docs/decisions/0022-kinesis-lambda-consumer.md, docs/aws.md "The real-time path").

One invocation is one batch of one shard, in sequence order. For each batch:

1. Every record is read as the API reads a request: base64, JSON, the API's payload model
   (contract.TransactionPayload), the processed layer's rules (normalize_transaction). A
   transaction id the state already knows (a producer's repeat) is refused too, as the API's
   409. A refusal goes to the batch's dead letter with its reason: nothing is dropped.
2. The accepted ones are decided in order with serve's code (decisions.decide_in_order: the
   state's features, then the champion's score, decision and reasons).
3. The decisions are written to S3 as the batch's *intent*, keyed by shard and first sequence
   number, before anything is landed (the Lambda's stand-in for serve's write-ahead log).
4. The intent is landed with serve's landing (wal.land_records): raw `transactions` files in
   the local layout and the fraud_scores rows, named after the batch's range
   `kinesis-<shard>-<first seq>-<last seq>`, built in a /tmp folder and uploaded to the same
   lake-relative keys; the dead letter beside them. Each upload is conditional on the key
   not existing (If-None-Match: *): the range fixes the name and the intent fixes the bytes,
   so a key that exists already holds exactly these bytes, and a retried batch writes no
   second object nor a second version.
5. review/block decisions are published to SNS (alerts.SnsSink: hashed keys only; what SNS
   would not take is kept in the lake, `_stream/alerts_dead_letter/`), then a `.landed.json`
   marker is written beside the intent.

Delivery: Kinesis and Lambda deliver at least once. A batch delivered again (a retry, a lost
checkpoint) finds its intent: it is landed again from the intent, not decided again, so the
files, scores and counts are the first delivery's; a batch whose marker exists is done (no
alert twice). A retry may start at the same record but reach further (more records arrived):
only the intent's records are landed and the first record after them is reported as failed,
so Lambda hands it over again as the start of the next batch (ReportBatchItemFailures). Any
failure reports the batch's first record: the whole batch comes again. The one case left is a
failure between the state's update and the intent's write (milliseconds): the retry finds the
transactions known and dead-letters them as `already_known` with their payload (kept, never
landed twice). Should a record still be delivered twice into raw under two names, dbt's
triage takes the first delivery of a transaction id and marks the later ones `duplicate`
(macros/staging/triage.sql), and stg_fraud_scores keeps one score per transaction.

The figures of a batch (records, accepted, refused, duplicates, alerts, alerts undelivered,
records replayed from an intent, max lag from ApproximateArrivalTimestamp) are logged as one
JSON line and returned under "metrics", for CloudWatch EMF later.

Configuration (environment variables, ConsumerConfig):
    BANKLAKE_LAKE_URI         s3://bucket[/prefix]: the lake's root (raw/ under it)
    BANKLAKE_MODEL_URI        where the champion is read: s3://.../models/fraud_xgb/ or a
                              local folder; default <lake>/models/fraud_xgb/
    BANKLAKE_STATE            the online state (serve's factory: redis://, unix://,
                              dynamodb:// in generations, loaded by `banklake state load`, its
                              pointer read once a batch); unset = in this process (tests)
    BANKLAKE_STATE_PREFIX     its key prefix (banklake:)
    BANKLAKE_ALERT_TOPIC_ARN  the SNS topic for review/block alerts; unset = no alerts
    BANKLAKE_INGESTION_DAY    a replay's raw partition (YYYY-MM-DD); default: each record's
                              arrival day in São Paulo
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from ml.artifacts import LoadedModel
from ml.layout import MODEL_NAME, MlLayout
from python_jobs.aws.champion_copy import copy_champion
from python_jobs.aws.clients import error_code
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import TRANSACTIONS
from python_jobs.observability.jobs import emit_consumer
from python_jobs.serve.alerts import SNS_DEAD_LETTER, SnsSink, make_sns_client
from python_jobs.serve.contract import (
    ContractError,
    Transaction,
    TransactionPayload,
    normalize_transaction,
    text,
)
from python_jobs.serve.decisions import alert_body, answer_body, decide_in_order, score_row
from python_jobs.serve.dynamodb_generations import GenerationalState
from python_jobs.serve.scoring import APPROVE, ModelHolder
from python_jobs.serve.service import open_state
from python_jobs.serve.state import StateBackend
from python_jobs.serve.wal import TRANSACTION, Record, land_records

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)

LAKE_URI_ENV = "BANKLAKE_LAKE_URI"
MODEL_URI_ENV = "BANKLAKE_MODEL_URI"
STATE_ENV = "BANKLAKE_STATE"
STATE_PREFIX_ENV = "BANKLAKE_STATE_PREFIX"
ALERT_TOPIC_ENV = "BANKLAKE_ALERT_TOPIC_ARN"
INGESTION_DAY_ENV = "BANKLAKE_INGESTION_DAY"

STREAM_DIR = "_stream/kinesis/"  # intents and markers, under the lake root
DEAD_LETTER_DIR = "_stream/dead_letter/"
ALERTS_DEAD_LETTER_DIR = "_stream/alerts_dead_letter/"
# Brazil has had no daylight saving time since 2019 (as s3_trigger.py): a fixed offset
SAO_PAULO = timezone(timedelta(hours=-3))
MODEL_CHECK_SECONDS = 60.0  # how often a warm container looks for a new champion
_MISSING = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


@dataclass(frozen=True)
class ConsumerConfig:
    bucket: str
    lake_prefix: str  # '' or 'banklake/': the lake's root in the bucket
    model_uri: str
    state_url: str | None = None
    state_prefix: str = "banklake:"
    alert_topic_arn: str | None = None
    ingestion_day: date | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ConsumerConfig:
        lake_uri = env.get(LAKE_URI_ENV, "")
        if not lake_uri.startswith("s3://") or not lake_uri[5:].strip("/"):
            raise ValueError(f"{LAKE_URI_ENV} must be s3://bucket[/prefix], got {lake_uri!r}")
        bucket, _, prefix = lake_uri[5:].partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        day = env.get(INGESTION_DAY_ENV)
        return cls(
            bucket=bucket,
            lake_prefix=prefix,
            model_uri=env.get(MODEL_URI_ENV) or f"s3://{bucket}/{prefix}models/{MODEL_NAME}/",
            state_url=env.get(STATE_ENV) or None,
            state_prefix=env.get(STATE_PREFIX_ENV) or "banklake:",
            alert_topic_arn=env.get(ALERT_TOPIC_ENV) or None,
            ingestion_day=date.fromisoformat(day) if day else None,
        )


# -- the records of an event ---------------------------------------------------------------


@dataclass(frozen=True)
class StreamRecord:
    """One Kinesis record as the event-source mapping hands it over."""

    shard: str
    sequence: str
    arrival: float  # ApproximateArrivalTimestamp, epoch seconds
    data: str  # base64, as in the event

    @property
    def received_at(self) -> str:
        """The arrival as serve's received_at (ISO, UTC naive): `_ingested_at`, scored_at."""
        return datetime.fromtimestamp(self.arrival, UTC).replace(tzinfo=None).isoformat()


def stream_records(event: Mapping[str, Any]) -> list[StreamRecord]:
    out = []
    for record in event.get("Records", []):
        kinesis = record["kinesis"]
        out.append(
            StreamRecord(
                shard=str(record["eventID"]).split(":", 1)[0],
                sequence=str(kinesis["sequenceNumber"]),
                arrival=float(kinesis["approximateArrivalTimestamp"]),
                data=str(kinesis["data"]),
            )
        )
    return out


@dataclass(frozen=True)
class Refusal:
    status: int  # the API's: 400 unreadable, 422 contract, 409 already known
    field: str
    reason: str
    detail: str
    payload: Any


@dataclass(frozen=True)
class Accepted:
    transaction: Transaction
    payload: dict[str, str | None]  # the raw contract's fields as text, as serve lands them
    body: dict[str, Any]  # the record's JSON


def read_record(record: StreamRecord) -> Accepted | Refusal:
    """The transaction a record carries, read as the API reads a request, or its refusal."""
    try:
        raw = base64.b64decode(record.data, validate=True)
    except (binascii.Error, ValueError) as error:
        return Refusal(400, "data", "bad_base64", f"not base64: {error}", record.data)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        shown = raw.decode("utf-8", errors="replace")
        return Refusal(400, "data", "bad_json", f"not JSON: {error}", shown)
    if not isinstance(body, dict):
        return Refusal(400, "data", "not_an_object", "a record is one JSON object", body)
    try:
        payload = TransactionPayload.model_validate(body).model_dump()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "data"
        return Refusal(422, where, str(first.get("type")), str(first.get("msg")), body)
    payload = {k: text(v) for k, v in payload.items()}
    try:
        return Accepted(normalize_transaction(payload), payload, body)
    except ContractError as error:
        return Refusal(422, error.field, error.reason, error.detail, body)


# -- the champion --------------------------------------------------------------------------


class ChampionSource:
    """The champion of BANKLAKE_MODEL_URI, loaded with ml's own loader (no pickle): a local
    folder is read in place; an S3 prefix is copied to /tmp first (champion.json and the
    files of its version that the loader reads and verifies), and the copy removed once
    loaded. A warm container looks for a new champion every MODEL_CHECK_SECONDS."""

    def __init__(self, uri: str, s3: Any) -> None:
        self.uri = uri.rstrip("/") + "/"
        self.s3 = s3
        self._holder: ModelHolder | None = None
        self._champion: bytes | None = None
        self._checked = 0.0

    def model(self) -> LoadedModel:
        now = time.monotonic()
        if self._holder is None or now - self._checked >= MODEL_CHECK_SECONDS:
            self._checked = now
            if not self.uri.startswith("s3://"):
                if self._holder is None:  # the local folder is the layout's models folder
                    models = Path(self.uri)
                    layout = MlLayout(Lake(models.parent.parent))
                    self._holder = ModelHolder(layout)
                    self._holder.load()
            else:
                self._refresh_from_s3()
        assert self._holder is not None and self._holder.version is not None
        model = self._holder.model
        assert model is not None
        return model

    def _refresh_from_s3(self) -> None:
        bucket, _, prefix = self.uri[5:].partition("/")
        champion = self.s3.get_object(Bucket=bucket, Key=prefix + "champion.json")["Body"].read()
        if champion == self._champion and self._holder is not None:
            return
        # The loaded model lives in memory: the copy is removed once loaded, so a warm
        # container that sees many promotions does not fill its small /tmp with old models.
        with tempfile.TemporaryDirectory(prefix="banklake-model-") as folder:
            layout = MlLayout(Lake(Path(folder)))
            copy_champion(self.s3, self.uri, layout)
            holder = ModelHolder(layout)
            holder.load()  # verifies the sha256s and the feature list, or raises
            # the pointer this copy read (a promotion in between is picked up next time)
            champion = layout.champion_file.read_bytes()
        self._holder, self._champion = holder, champion
        LOG.info(json.dumps({"champion": holder.version, "from": self.uri}))


# -- one batch -----------------------------------------------------------------------------


@dataclass
class Metrics:
    records: int = 0
    accepted: int = 0
    refused: int = 0
    duplicates: int = 0  # of the refused: transaction ids already known
    alerts: int = 0
    alerts_undelivered: int = 0
    replayed: int = 0  # records landed again from an earlier delivery's intent
    max_lag_ms: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class Consumer:
    """What a warm container keeps between invocations: clients, the state, the champion."""

    config: ConsumerConfig
    s3: Any
    sns: Any | None = None
    state: StateBackend = field(init=False)
    champion: ChampionSource = field(init=False)

    def __post_init__(self) -> None:
        self.state = open_state(self.config.state_url, self.config.state_prefix)
        self.champion = ChampionSource(self.config.model_uri, self.s3)

    def key(self, relative: str) -> str:
        return self.config.lake_prefix + relative

    def handle(self, event: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
        """Every shard's batch of the event (the mapping sends one shard's); returns the
        partial batch response and the figures."""
        records = stream_records(event)
        metrics = Metrics(records=len(records))
        now = time.time() if now is None else now
        if records:
            metrics.max_lag_ms = round(max(0.0, (now - min(r.arrival for r in records)) * 1000), 3)
        failures: list[dict[str, str]] = []
        by_shard: dict[str, list[StreamRecord]] = {}
        for record in records:
            by_shard.setdefault(record.shard, []).append(record)
        for shard_records in by_shard.values():
            try:
                retry_from = self.process(shard_records, metrics)
            except Exception:
                LOG.exception(
                    "batch of %s failed: retried from its first record", shard_records[0].shard
                )
                retry_from = shard_records[0].sequence
            if retry_from is not None:
                failures.append({"itemIdentifier": retry_from})
        LOG.info(json.dumps({"banklake_stream_batch": metrics.as_dict()}))
        # the same figures as CloudWatch EMF (the log in Lambda): the operators' alarms
        emit_consumer(
            metrics.records, metrics.accepted, metrics.refused, metrics.alerts, metrics.max_lag_ms
        )
        return {"batchItemFailures": failures, "metrics": metrics.as_dict()}

    def process(self, records: Sequence[StreamRecord], metrics: Metrics) -> str | None:
        """Lands one shard's batch; returns the sequence number Lambda must deliver again
        from (None: the whole batch is done)."""
        shard, first = records[0].shard, records[0].sequence
        intent_key = self.key(f"{STREAM_DIR}{shard}/{first}.json")
        intent = self._read_json(intent_key)
        if intent is None:
            body = _json_bytes(self._decide(records))
            intent = json.loads(body)  # land what a redelivery would read back, exactly
            if not self._put(intent_key, body, "application/json"):
                intent = self._read_json(intent_key)  # a parallel delivery wrote it first
                assert intent is not None
        else:
            metrics.replayed += len(intent["records"])
        covered = {r.sequence for r in records}.issubset(set(intent["sequences"]))
        done_key = intent_key.removesuffix(".json") + ".landed.json"
        if self._read_json(done_key) is None:
            alerts, undelivered = self._land(intent)
            metrics.alerts += alerts
            metrics.alerts_undelivered += undelivered
            self._put(
                done_key,
                _json_bytes({"name": intent["name"], "alerts": alerts}),
                "application/json",
            )
        metrics.accepted += len(intent["records"])
        metrics.refused += len(intent["refused"])
        metrics.duplicates += sum(1 for r in intent["refused"] if r["reason"] == "already_known")
        if covered:
            return None
        # the batch reaches past what this range's first delivery decided: the rest again
        last = intent["sequences"][-1]
        return next(r.sequence for r in records if int(r.sequence) > int(last))

    def _decide(self, records: Sequence[StreamRecord]) -> dict[str, Any]:
        """Reads, refuses and decides the batch (the state is updated): the intent."""
        model = self.champion.model()
        if isinstance(self.state, GenerationalState):
            # once a batch: the generation it reads (docs/decisions/0021; each apply reads the
            # pointer again after its gate, so a switch during the batch loses nothing)
            self.state.read_pointer()
        name = f"kinesis-{records[0].shard}-{records[0].sequence}-{records[-1].sequence}"
        refused: list[dict[str, Any]] = []
        accepted: list[tuple[StreamRecord, Accepted]] = []
        seen: set[str] = set()
        for record in records:
            read = read_record(record)
            if isinstance(read, Accepted):
                tid = read.transaction.transaction_id
                if tid in seen or self.state.knows(tid):  # the API's 409
                    read = Refusal(
                        409,
                        "transaction_id",
                        "already_known",
                        f"{tid} was delivered before",
                        read.body,
                    )
            if isinstance(read, Refusal):
                refused.append(_dead_letter_entry(record, read))
                continue
            seen.add(read.transaction.transaction_id)
            accepted.append((record, read))
        decided = decide_in_order(self.state, model, [a.transaction for _, a in accepted])
        landed: list[dict[str, Any]] = []
        for k, ((record, read), d) in enumerate(zip(accepted, decided, strict=True)):
            tx, received_at = d.transaction, record.received_at
            landed.append(
                Record(
                    seq=k + 1,
                    kind=TRANSACTION,
                    received_at=received_at,
                    ingestion_day=self._ingestion_day(record).isoformat(),
                    payload={c: read.payload.get(c) for c in TRANSACTIONS.payload_columns},
                    answer=_without_features(answer_body(tx, d.scored, d.featurized)),
                    score=score_row(tx, d.scored, received_at),
                ).__dict__
            )
        return {
            "name": name,
            "sequences": [r.sequence for r in records],
            "records": landed,
            "refused": refused,
        }

    def _ingestion_day(self, record: StreamRecord) -> date:
        if self.config.ingestion_day is not None:
            return self.config.ingestion_day
        return datetime.fromtimestamp(record.arrival, SAO_PAULO).date()

    def _land(self, intent: Mapping[str, Any]) -> tuple[int, int]:
        """Uploads the intent's files (serve's landing, in /tmp), its dead letter, then
        publishes its alerts. Returns the alerts raised, and those SNS did not take (kept in
        the lake's alerts dead letter)."""
        name = intent["name"]
        records = [Record(**r) for r in intent["records"]]
        with tempfile.TemporaryDirectory(prefix="banklake-batch-") as folder:
            lake = Lake(Path(folder))
            if records:
                for path in land_records(lake, records, name).files:
                    content = "application/octet-stream"
                    self._put(self.key(lake.relative(path)), path.read_bytes(), content)
        if intent["refused"]:
            lines = "".join(json.dumps(e, default=str) + "\n" for e in intent["refused"])
            self._put(
                self.key(f"{DEAD_LETTER_DIR}{name}.jsonl"), lines.encode(), "application/x-ndjson"
            )
        alerts = [
            alert_body(r.answer, r.score, r.received_at)
            for r in records
            if r.answer["decision"] != APPROVE
        ]
        undelivered = 0
        if alerts and self.config.alert_topic_arn:
            undelivered = self._publish(name, alerts)
        return len(alerts), undelivered

    def _publish(self, name: str, alerts: list[dict[str, Any]]) -> int:
        """Publishes with serve's SnsSink (its retries); what it could not deliver is kept in
        the lake's alerts dead letter, not lost with the container's /tmp."""
        assert self.config.alert_topic_arn is not None
        if self.sns is None:
            self.sns = make_sns_client()
        with tempfile.TemporaryDirectory(prefix="banklake-alerts-") as folder:
            dead_letter = Path(folder) / SNS_DEAD_LETTER
            sink = SnsSink(self.config.alert_topic_arn, dead_letter, client=self.sns)
            for alert in alerts:
                sink.send(alert)
            sink.close()  # drains the queue (bounded), dead-letters what is left
            if dead_letter.exists() and dead_letter.stat().st_size:
                key = self.key(f"{ALERTS_DEAD_LETTER_DIR}{name}.jsonl")
                self.s3.put_object(
                    Bucket=self.config.bucket, Key=key, Body=dead_letter.read_bytes()
                )
                LOG.warning(
                    "%d alerts of %s undelivered: kept in %s", sink.dead_lettered, name, key
                )
            return sink.dead_lettered

    # -- S3 ------------------------------------------------------------------------------

    def _put(self, key: str, body: bytes, content_type: str) -> bool:
        """Creates `key` unless it exists (If-None-Match: *). False when it existed: every
        key here is a function of a range whose content is fixed by its intent."""
        try:
            self.s3.put_object(
                Bucket=self.config.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                IfNoneMatch="*",
            )
        except ClientError as error:
            if error_code(error) in _EXISTS:
                return False
            raise
        return True

    def _read_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.config.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in _MISSING:
                return None
            raise
        loaded: dict[str, Any] = json.loads(body)
        return loaded


def _dead_letter_entry(record: StreamRecord, refusal: Refusal) -> dict[str, Any]:
    """serve's dead-letter entry (service._refuse), with where the record was in the stream.
    refused_at is the record's arrival: a redelivery writes the same entry."""
    return {
        "refused_at": record.received_at,
        "kind": TRANSACTION,
        "status": refusal.status,
        "field": refusal.field,
        "reason": refusal.reason,
        "detail": refusal.detail,
        "payload": refusal.payload,
        "shard": record.shard,
        "sequence_number": record.sequence,
    }


def _without_features(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as the intent keeps it: the feature vector answers no one here, and it is
    most of an answer's size."""
    return {k: v for k, v in answer.items() if k != "features"}


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, default=str, ensure_ascii=False) + "\n").encode("utf-8")


# -- the Lambda entry point ----------------------------------------------------------------


@cache
def _consumer() -> Consumer:
    """One per Lambda container (made on first use, reused by the next invocations)."""
    from python_jobs.aws.s3 import make_s3_client

    return Consumer(ConsumerConfig.from_env(), make_s3_client())


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point for a Kinesis event-source mapping with ReportBatchItemFailures."""
    return _consumer().handle(event)
