"""`banklake consume --from kinesis://STREAM`: the consumer's Lambda handler run on this machine,
as Lambda's event-source mapping would run it: each shard read from the start
(GetShardIterator TRIM_HORIZON, then GetRecords), its records handed to the handler in order,
`batch_size` at a time, as the Kinesis events Lambda sends; a batch the handler hands back
(batchItemFailures) is delivered again from the record it names, at most `attempts` times.

For local runs against moto's server (AWS_ENDPOINT_URL) and tests: Lambda code never runs in
moto. The handler's configuration is its own environment (stream_consumer.py). Bounded: at
most `max_records` records a shard.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from python_jobs.aws.kinesis_stream import parse_stream_url

ACCOUNT = "123456789012"  # what the events name; nothing reads it
Handler = Callable[[dict[str, Any], object], dict[str, Any]]


def read_shards(kinesis: Any, stream: str, *, max_records: int = 1_000_000) -> dict[str, list[Any]]:
    """Every record of every shard, in order, from the start of the stream."""
    out: dict[str, list[Any]] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[Any] = []
        while iterator is not None and len(records) < max_records:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator")
            if not page["Records"]:
                break  # caught up: a local run reads what is there, it does not wait
        out[shard["ShardId"]] = records[:max_records]
    return out


def kinesis_event(
    shard: str, stream: str, records: list[Any], region: str = "sa-east-1"
) -> dict[str, Any]:
    """The event Lambda's Kinesis event-source mapping sends for `records` of `shard`."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/banklake-stream-consumer",
                "awsRegion": region,
                "eventSourceARN": f"arn:aws:kinesis:{region}:{ACCOUNT}:stream/{stream}",
            }
            for r in records
        ]
    }


@dataclass
class ConsumeResult:
    invocations: int = 0
    redeliveries: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if name == "max_lag_ms":
                self.metrics[name] = max(self.metrics.get(name, 0.0), float(value))
            else:
                self.metrics[name] = self.metrics.get(name, 0) + value

    def summary(self) -> str:
        figures = ", ".join(f"{k} {v:,.0f}" for k, v in self.metrics.items())
        return f"{self.invocations:,} invocations ({self.redeliveries:,} redeliveries): {figures}"


class Stuck(RuntimeError):
    """A batch was handed back more often than `attempts` allows."""


def consume(
    kinesis: Any,
    url: str,
    handler: Handler,
    *,
    batch_size: int = 1000,
    attempts: int = 3,
    max_records: int = 1_000_000,
) -> ConsumeResult:
    """Runs `handler` over every shard's records as the event-source mapping would."""
    stream = parse_stream_url(url)
    region = kinesis.meta.region_name or "sa-east-1"
    result = ConsumeResult()
    for shard, records in sorted(read_shards(kinesis, stream, max_records=max_records).items()):
        start, tries = 0, 0
        while start < len(records):
            batch = records[start : start + batch_size]
            answer = handler(kinesis_event(shard, stream, batch, region), None)
            result.invocations += 1
            result.add(answer.get("metrics", {}))
            failed = [f["itemIdentifier"] for f in answer.get("batchItemFailures", [])]
            if not failed:
                start, tries = start + len(batch), 0
                continue
            # Lambda checkpoints before the lowest sequence number named, and retries from it
            lowest = min(failed, key=int)
            again = next(i for i, r in enumerate(batch) if r["SequenceNumber"] == lowest)
            tries = tries + 1 if again == 0 else 0
            if tries >= attempts:
                raise Stuck(f"{shard}: the batch from {lowest} failed {tries} times")
            result.redeliveries += 1
            start += again
    return result
