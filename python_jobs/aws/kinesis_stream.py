"""`banklake stream --to kinesis://STREAM`: a lake's raw day put on a Kinesis Data Stream, in
arrival order, as the core banking producers would put it.

The records are the transactions of SRC's raw day in the order `banklake stream --url` sends
them (python_jobs/serve/stream.py day_events: files by name, rows by position, duplicates and
damaged rows included). Each record's data is the JSON of one raw `transactions` row, the body
of POST /v1/transactions; the consumer (stream_consumer.py) validates it with the API's
contract.

Partition key: the SHA-256 of the customer id (hex). Kinesis keeps order within a shard, and
a key always maps to the same shard, so every transaction of a customer reaches the consumer
in the order it was put, and the customer's features (most of the model's) see its earlier
transactions as `banklake serve` does. A transaction-id key would spread a customer over
every shard and let its transactions be featured out of order. The hash keeps the customer id
out of the key (keys show up in Kinesis' own tooling) and spreads customers evenly. A record
without a customer id (refused by the consumer anyway) is keyed by its transaction id, or by
its position.

PutRecords takes at most 500 records and 5 MiB a call. A call can succeed in part: the entries
that failed (throttling, ProvisionedThroughputExceeded, InternalFailure) are put again, only
them, with python_jobs/retry.py's backoff, at most `attempts` calls for a chunk. A retried
entry lands after entries of its call that succeeded: a customer's transactions can then
arrive out of order (the consumer's state takes a late, earlier row as the batch does;
docs/decisions/0022). Bounded: `limit` records, `max_seconds`. The endpoint is boto3's:
AWS_ENDPOINT_URL when set (moto's server in tests and `docs/aws.md`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from python_jobs.aws.clients import aws_client, error_code
from python_jobs.environment import aws_profile, aws_region, environment
from python_jobs.lake.layout import Lake
from python_jobs.retry import RetryPolicy, retry_call
from python_jobs.serve.stream import day_events

SCHEME = "kinesis://"
MAX_RECORDS_PER_CALL = 500  # PutRecords' limit
MAX_BYTES_PER_CALL = 5 * 1024 * 1024  # PutRecords' limit, data and partition keys together
DEFAULT_RETRY = RetryPolicy(initial=0.1, factor=2.0, maximum=2.0, max_attempts=8)
# whole-call errors worth another try; any other error (no such stream, access denied) is final
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "LimitExceededException",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottlingException",
    }
)


class PutFailed(RuntimeError):
    """Entries PutRecords still refused after every attempt (error codes counted)."""


class _Partial(Exception):
    """Some entries of a call failed: they are put again."""


@dataclass(frozen=True)
class Entry:
    data: bytes
    partition_key: str


@dataclass
class PutResult:
    stream: str
    put: int = 0
    calls: int = 0
    retried_entries: int = 0
    seconds: float = 0.0
    shards: dict[str, int] | None = None  # records per shard id

    def summary(self) -> str:
        rate = self.put / self.seconds if self.seconds else 0.0
        shards = ", ".join(f"{s}: {n:,}" for s, n in sorted((self.shards or {}).items()))
        return (
            f"put {self.put:,} records on kinesis://{self.stream} in {self.seconds:.1f} s "
            f"({rate:,.0f} records/s), {self.calls:,} PutRecords calls, "
            f"{self.retried_entries:,} entries retried; by shard: {shards or '-'}"
        )


def parse_stream_url(url: str) -> str:
    """The stream name of `kinesis://NAME`."""
    if not url.startswith(SCHEME) or not url[len(SCHEME) :].strip("/"):
        raise ValueError(f"--to must be kinesis://STREAM_NAME, got {url!r}")
    name = url[len(SCHEME) :].strip("/")
    if "/" in name:
        raise ValueError(f"{url!r}: a stream name has no '/'")
    return name


def partition_key(payload: Mapping[str, Any], position: int) -> str:
    """The customer's key (module docstring); the transaction's, or the position, without."""
    for field in ("customer_id", "transaction_id"):
        value = payload.get(field)
        if isinstance(value, str) and value.strip(" "):
            return hashlib.sha256(f"{field}:{value.strip(' ')}".encode()).hexdigest()
    return f"position-{position}"


def entries_of(payloads: Sequence[Mapping[str, Any]]) -> list[Entry]:
    return [
        Entry(json.dumps(dict(p), ensure_ascii=False).encode("utf-8"), partition_key(p, i))
        for i, p in enumerate(payloads)
    ]


def chunks(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Consecutive runs within PutRecords' limits, in order."""
    out: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        n = len(entry.data) + len(entry.partition_key.encode())
        if current and (len(current) == MAX_RECORDS_PER_CALL or size + n > MAX_BYTES_PER_CALL):
            out.append(current)
            current, size = [], 0
        current.append(entry)
        size += n
    if current:
        out.append(current)
    return out


def make_kinesis_client(env: Mapping[str, str] | None = None) -> Any:
    """A Kinesis client with the profile and region every AWS command reads; botocore's own
    retries off (put_all retries, entry by entry)."""
    from botocore.config import Config

    env = environment(env)
    return aws_client(
        "kinesis",
        region=aws_region(env),
        profile=aws_profile(env),
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def put_all(
    client: Any,
    stream: str,
    entries: Sequence[Entry],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    max_seconds: float | None = None,
    sleep: Any = time.sleep,
) -> PutResult:
    """Puts every entry, in order, chunk after chunk; a chunk's failed entries are put again
    (only them) until none fails or the policy's attempts are spent (PutFailed)."""
    result = PutResult(stream, shards={})
    started = time.perf_counter()
    for chunk in chunks(entries):
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
        _put_chunk(client, stream, chunk, result, policy, sleep)
    result.seconds = time.perf_counter() - started
    return result


def _put_chunk(
    client: Any,
    stream: str,
    chunk: list[Entry],
    result: PutResult,
    policy: RetryPolicy,
    sleep: Any,
) -> None:
    from botocore.exceptions import ClientError

    pending = list(chunk)  # what is left to put, in order

    def call() -> None:
        result.calls += 1
        answer = client.put_records(
            StreamName=stream,
            Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending],
        )
        failed: list[Entry] = []
        codes: dict[str, int] = {}
        for entry, outcome in zip(pending, answer["Records"], strict=True):
            if "ErrorCode" in outcome:
                failed.append(entry)
                codes[outcome["ErrorCode"]] = codes.get(outcome["ErrorCode"], 0) + 1
            else:
                result.put += 1
                assert result.shards is not None
                shard = outcome["ShardId"]
                result.shards[shard] = result.shards.get(shard, 0) + 1
        if failed:
            pending[:] = failed
            result.retried_entries += len(failed)
            raise _Partial(f"{len(failed)} of the call's entries failed: {codes}")

    def wait_for(error: Exception, delay: float) -> float | None:
        if isinstance(error, _Partial):
            return delay
        if isinstance(error, ClientError) and error_code(error) in RETRYABLE_CODES:
            return delay
        return None

    try:
        retry_call(call, policy, wait_for=wait_for, sleep=sleep)
    except _Partial as error:
        raise PutFailed(
            f"kinesis://{stream}: {len(pending)} entries still failed after "
            f"{policy.max_attempts} attempts ({error}); {result.put:,} put before"
        ) from error


def stream_to_kinesis(
    source: Lake,
    day: date,
    url: str,
    *,
    client: Any | None = None,
    limit: int | None = None,
    max_seconds: float | None = None,
) -> PutResult:
    """Puts SRC's raw transactions of `day` on the stream `url` names, in arrival order."""
    stream = parse_stream_url(url)
    payloads = [e.payload for e in day_events(source, day) if e.kind == "transaction"]
    if limit is not None:
        payloads = payloads[:limit]
    return put_all(
        client if client is not None else make_kinesis_client(),
        stream,
        entries_of(payloads),
        max_seconds=max_seconds,
    )
