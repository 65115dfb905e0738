"""The alert sinks against real parts: a local HTTP server (http.server) for the webhook, and
moto's server for SNS, whose topic delivers into an SQS queue the test reads back.

Nothing here measures time: "send does not wait on the network" is shown by a server that
holds its answer until the test lets it go, and every wait is bounded (a sink's close()
drains for at most its drain_timeout, a held server lets every answer go HOLD seconds after
it started at the latest).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from python_jobs.retry import Backoff
from python_jobs.serve.alerts import (
    SHUTDOWN,
    OutboxSink,
    SnsSink,
    WebhookSink,
    build_sinks,
)
from python_jobs.serve.contract import hash_pii
from python_jobs.tests.moto_s3 import CREDENTIALS, REGION

FAST = Backoff(initial=0.01, factor=2.0, maximum=0.05)  # retries without real waits
HOLD = 30.0  # a held server answers at most this long after it started, test or no test
DRAIN = 30.0  # close()'s bound in the tests that expect everything delivered

# What a request carried in clear, which no sink may write (tests build alerts as the
# service does: the PIX key hashed, the CPF and the city not copied at all).
RAW_PIX_KEY = "maria.silva@example.com"
RAW_CPF = "529.982.247-25"
RAW_CITY = "Ribeirão Preto"


def alert(i: int, decision: str = "review") -> dict[str, Any]:
    """An alert with exactly the fields ScoringService._alert builds."""
    return {
        "alert_id": f"A-T{i:06d}",
        "raised_at": "2026-11-30T13:00:00.123456",
        "transaction_id": f"T{i:06d}",
        "score": 0.91,
        "decision": decision,
        "reasons": [
            {
                "feature": "amount_vs_avg_30d",
                "reason_code": "AMOUNT_SPIKE",
                "description": "valor muito acima da média do cliente",
                "contribution": 1.25,
            }
        ],
        "model_version": "fraud_xgb-20261129-0001",
        "customer_id": "C000042",
        "event_ts": "2026-11-30T09:59:58",
        "account_id": "ACC000042",
        "counterparty_key": hash_pii(RAW_PIX_KEY),
        "amount_brl": 4999.9,
        "transaction_type": "PIX",
        "channel": "mobile",
    }


def dead_letters(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- a real HTTP server ------------------------------------------------------------------------

Answer = Callable[[str, int], int]  # (alert id, how many times it came, from 1) -> status


@dataclass
class Webhook:
    """What a local server received: every POST body, and how often each alert came."""

    url: str
    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    answered: int = 0
    first_received: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for body in self.bodies]


@contextmanager
def webhook(
    answer: Answer = lambda _id, _hit: 200, *, hold: threading.Event | None = None
) -> Iterator[Webhook]:
    """A ThreadingHTTPServer on 127.0.0.1 answering each POST with `answer`'s status; with
    `hold`, every answer waits until the test sets it (HOLD seconds after the start at most,
    for all answers together: a sink that waited for each would fail, not hang)."""
    state: Webhook
    release_by = time.monotonic() + HOLD

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a production endpoint would

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            alert_id = json.loads(body)["alert_id"]
            with state.lock:
                state.bodies.append(body)
                state.content_types.append(self.headers.get("Content-Type", ""))
                state.hits[alert_id] += 1
                hit = state.hits[alert_id]
            state.first_received.set()
            if hold is not None:
                hold.wait(max(0.0, release_by - time.monotonic()))
            self.send_response(answer(alert_id, hit))
            self.send_header("Content-Length", "0")
            self.end_headers()
            with state.lock:
                state.answered += 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    state = Webhook(url=f"http://{host!s}:{port}/alerts")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if hold is not None:
            hold.set()
        server.shutdown()
        server.server_close()
        thread.join(HOLD)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A local port bound and not listening: every connection to it is refused (and no other
    process can take it while the test runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def sinks() -> Iterator[list[Any]]:
    """Sinks a test made, closed at the end even when it fails (close() is idempotent)."""
    made: list[Any] = []
    yield made
    for sink in made:
        sink.close()


def webhook_sink(sinks: list[Any], url: str, dead_letter: Path, **options: Any) -> WebhookSink:
    options.setdefault("backoff", FAST)
    options.setdefault("drain_timeout", DRAIN)
    sink = WebhookSink(url, dead_letter, **options)
    sinks.append(sink)
    return sink


# -- webhook -----------------------------------------------------------------------------------


def test_webhook_delivers_every_alert_exactly_once_with_its_body(
    tmp_path: Path, sinks: list[Any]
) -> None:
    sent = [alert(i, "block" if i % 3 == 0 else "review") for i in range(25)]
    dead_letter = tmp_path / "dead.jsonl"
    with webhook() as server:
        sink = webhook_sink(sinks, server.url, dead_letter)
        for a in sent:
            sink.send(a)
        sink.close()
    assert server.alerts() == sent  # in order, each body intact
    assert set(server.hits.values()) == {1}
    assert set(server.content_types) == {"application/json"}
    assert (sink.accepted, sink.sent, sink.retried, sink.dead_lettered) == (25, 25, 0, 0)
    assert sink.pending == 0
    assert not sink.running
    assert dead_letters(dead_letter) == []


def test_send_returns_while_the_server_has_not_answered(tmp_path: Path, sinks: list[Any]) -> None:
    hold = threading.Event()
    sent = [alert(i) for i in range(10)]
    with webhook(hold=hold) as server:
        sink = webhook_sink(sinks, server.url, tmp_path / "dead.jsonl", timeout=HOLD + 5)
        for a in sent:
            sink.send(a)
        # every send returned, yet the server has answered nothing: no send waited on it
        assert server.answered == 0
        assert sink.accepted == 10
        assert sink.pending == 10
        hold.set()
        sink.close()
    assert server.alerts() == sent
    assert sink.sent == 10


def test_nothing_listening_dead_letters_every_alert_after_the_retries(
    tmp_path: Path, sinks: list[Any]
) -> None:
    sent = [alert(i) for i in range(10)]
    dead_letter = tmp_path / "dead.jsonl"
    with refusing_port() as port:
        sink = webhook_sink(sinks, f"http://127.0.0.1:{port}/alerts", dead_letter, attempts=3)
        for a in sent:
            sink.send(a)  # returns although nothing can be reached
        assert sink.accepted == 10
        sink.close()
    kept = dead_letters(dead_letter)
    assert [entry["alert"] for entry in kept] == sent
    for entry in kept:
        assert entry["sink"] == "webhook"
        assert entry["reason"].startswith("ConnectError")
        assert entry["status"] is None
        assert entry["attempts"] == 3
    assert (sink.sent, sink.retried, sink.dead_lettered) == (0, 20, 10)


def test_server_error_dead_letters_every_alert_after_the_retries(
    tmp_path: Path, sinks: list[Any]
) -> None:
    sent = [alert(i) for i in range(5)]
    dead_letter = tmp_path / "dead.jsonl"
    with webhook(lambda _id, _hit: 500) as server:
        sink = webhook_sink(sinks, server.url, dead_letter, attempts=3)
        for a in sent:
            sink.send(a)
        sink.close()
    assert server.hits == {a["alert_id"]: 3 for a in sent}
    kept = dead_letters(dead_letter)
    assert [entry["alert"] for entry in kept] == sent
    assert {(e["reason"], e["status"], e["attempts"]) for e in kept} == {("HTTP 500", 500, 3)}
    assert (sink.sent, sink.retried, sink.dead_lettered) == (0, 10, 5)


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_a_passing_failure_is_retried_and_delivered(
    tmp_path: Path, sinks: list[Any], status: int
) -> None:
    sent = [alert(i) for i in range(4)]
    dead_letter = tmp_path / "dead.jsonl"
    with webhook(lambda _id, hit: status if hit == 1 else 200) as server:
        sink = webhook_sink(sinks, server.url, dead_letter, attempts=3)
        for a in sent:
            sink.send(a)
        sink.close()
    assert server.hits == {a["alert_id"]: 2 for a in sent}
    assert server.alerts() == [a for a in sent for _ in range(2)]  # the same body again
    assert (sink.sent, sink.retried, sink.dead_lettered) == (4, 4, 0)
    assert dead_letters(dead_letter) == []


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_client_error_is_dead_lettered_without_retry(
    tmp_path: Path, sinks: list[Any], status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    sent = [alert(i) for i in range(3)]
    dead_letter = tmp_path / "dead.jsonl"
    with webhook(lambda _id, _hit: status) as server:
        sink = webhook_sink(sinks, server.url, dead_letter, attempts=5)
        for a in sent:
            sink.send(a)
        sink.close()
    assert server.hits == {a["alert_id"]: 1 for a in sent}
    kept = dead_letters(dead_letter)
    assert [entry["alert"] for entry in kept] == sent
    assert {(e["reason"], e["status"], e["attempts"]) for e in kept} == {
        (f"HTTP {status}", status, 1)
    }
    assert (sink.sent, sink.retried, sink.dead_lettered) == (0, 0, 3)
    assert synced.count(str(dead_letter)) == 3  # each entry on disk before the next


def test_close_dead_letters_what_is_still_queued_as_shutdown(
    tmp_path: Path, sinks: list[Any]
) -> None:
    sent = [alert(i) for i in range(5)]
    dead_letter = tmp_path / "dead.jsonl"
    with refusing_port() as port:
        # the first alert fails and waits a minute before its next attempt: close() must not
        sink = webhook_sink(
            sinks,
            f"http://127.0.0.1:{port}/alerts",
            dead_letter,
            attempts=5,
            backoff=Backoff(initial=60.0, maximum=60.0),
            drain_timeout=0.2,
        )
        for a in sent:
            sink.send(a)
        sink.close()
        assert not sink.running
        late = alert(99)
        sink.send(late)  # after close: kept as well
    kept = dead_letters(dead_letter)
    assert sorted(e["alert"]["alert_id"] for e in kept) == sorted(
        a["alert_id"] for a in [*sent, late]
    )
    assert {e["reason"] for e in kept} == {SHUTDOWN}
    assert sink.dead_lettered == 6
    assert sink.sent == 0
    assert sink.pending == 0


def test_a_full_queue_dead_letters_at_once(tmp_path: Path, sinks: list[Any]) -> None:
    hold = threading.Event()
    dead_letter = tmp_path / "dead.jsonl"
    with webhook(hold=hold) as server:
        sink = webhook_sink(sinks, server.url, dead_letter, timeout=HOLD + 5, max_queue=2)
        sink.send(alert(0))
        assert server.first_received.wait(HOLD)  # the worker holds alert 0: the queue is empty
        for i in (1, 2, 3):
            sink.send(alert(i))
        kept = dead_letters(dead_letter)
        assert [(e["alert"]["alert_id"], e["reason"], e["attempts"]) for e in kept] == [
            ("A-T000003", "queue full", 0)
        ]
        hold.set()
        sink.close()
    assert [a["alert_id"] for a in server.alerts()] == ["A-T000000", "A-T000001", "A-T000002"]
    assert (sink.accepted, sink.sent, sink.dead_lettered) == (4, 3, 1)


# -- what the sinks write: the alert, nothing more ---------------------------------------------


def test_sinks_write_exactly_the_alert_they_are_given(tmp_path: Path, sinks: list[Any]) -> None:
    request = {  # the request the alert came from, in clear: none of it may leak by a sink
        "transaction_id": "T000001",
        "counterparty_key": RAW_PIX_KEY,
        "cpf": RAW_CPF,
        "city": RAW_CITY,
    }
    a = alert(1)
    assert a["counterparty_key"] != request["counterparty_key"]
    outbox = OutboxSink(tmp_path / "alerts.jsonl")
    sinks.append(outbox)
    with webhook() as ok, webhook(lambda _id, _hit: 400) as refusing:
        delivered = webhook_sink(sinks, ok.url, tmp_path / "ok-dead.jsonl")
        refused = webhook_sink(sinks, refusing.url, tmp_path / "refused-dead.jsonl")
        for sink in (outbox, delivered, refused):
            sink.send(a)
            sink.close()
    outbox_text = (tmp_path / "alerts.jsonl").read_text(encoding="utf-8")
    dead_text = (tmp_path / "refused-dead.jsonl").read_text(encoding="utf-8")
    (dead,) = dead_letters(tmp_path / "refused-dead.jsonl")
    assert [json.loads(line) for line in outbox_text.splitlines()] == [a]
    assert ok.alerts() == [a]
    assert ok.bodies == [json.dumps(a).encode("utf-8")]  # no field added, none reordered
    assert dead["alert"] == a
    assert set(dead) == {"dead_lettered_at", "sink", "reason", "status", "attempts", "alert"}
    for text in (outbox_text, ok.bodies[0].decode("utf-8"), dead_text):
        unescaped = json.dumps(json.loads(text), ensure_ascii=False)  # "ã" as itself
        for raw in (RAW_PIX_KEY, RAW_CPF, RAW_CITY):
            assert raw not in text
            assert raw not in unescaped


# -- SNS against moto's server -----------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    arn: str
    queue_url: str  # an SQS queue subscribed with raw delivery: it holds what was published


@pytest.fixture
def aws(endpoint: str) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION, **CREDENTIALS}
    return boto3.client("sns", **kwargs), boto3.client("sqs", **kwargs)


@pytest.fixture
def topic(aws: tuple[Any, Any]) -> Topic:
    sns, sqs = aws
    name = f"alerts-{uuid.uuid4().hex[:12]}"
    arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return Topic(arn, queue_url)


def received(sqs: Any, topic: Topic, expected: int) -> list[dict[str, Any]]:
    """The queue's messages, read until `expected` came or 10 empty receives in a row."""
    messages: list[dict[str, Any]] = []
    empty = 0
    while len(messages) < expected and empty < 10:
        batch = sqs.receive_message(
            QueueUrl=topic.queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
        empty = 0 if batch else empty + 1
        messages.extend(batch)
    return messages


def sns_client(endpoint: str) -> Any:
    return boto3.client(
        "sns",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5),
        **CREDENTIALS,
    )


def sns_sink(sinks: list[Any], arn: str, dead_letter: Path, **options: Any) -> SnsSink:
    options.setdefault("backoff", FAST)
    options.setdefault("drain_timeout", DRAIN)
    sink = SnsSink(arn, dead_letter, **options)
    sinks.append(sink)
    return sink


def test_sns_publishes_every_alert_with_its_decision(
    tmp_path: Path, sinks: list[Any], endpoint: str, aws: tuple[Any, Any], topic: Topic
) -> None:
    sent = [alert(i, "block" if i % 2 else "review") for i in range(12)]
    dead_letter = tmp_path / "dead.jsonl"
    sink = sns_sink(sinks, topic.arn, dead_letter, client=sns_client(endpoint))
    for a in sent:
        sink.send(a)
    sink.close()
    messages = received(aws[1], topic, len(sent))
    bodies = sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["alert_id"])
    assert bodies == sent
    for message in messages:
        decision = json.loads(message["Body"])["decision"]
        assert message["MessageAttributes"]["decision"] == {
            "DataType": "String",
            "StringValue": decision,
        }
    assert (sink.sent, sink.retried, sink.dead_lettered) == (12, 0, 0)
    assert dead_letters(dead_letter) == []


def test_sns_missing_topic_is_dead_lettered_without_retry(
    tmp_path: Path, sinks: list[Any], endpoint: str, topic: Topic
) -> None:
    dead_letter = tmp_path / "dead.jsonl"
    missing = topic.arn + "-missing"
    sink = sns_sink(sinks, missing, dead_letter, client=sns_client(endpoint), attempts=4)
    sink.send(alert(1, "block"))
    sink.close()
    (entry,) = dead_letters(dead_letter)
    assert entry["alert"] == alert(1, "block")
    assert entry["sink"] == "sns"
    assert entry["reason"].startswith("NotFound")
    assert (entry["status"], entry["attempts"]) == (404, 1)
    assert (sink.sent, sink.retried, sink.dead_lettered) == (0, 0, 1)


def test_sns_unreachable_is_dead_lettered_after_the_retries(
    tmp_path: Path, sinks: list[Any], topic: Topic
) -> None:
    dead_letter = tmp_path / "dead.jsonl"
    with refusing_port() as port:
        client = sns_client(f"http://127.0.0.1:{port}")
        sink = sns_sink(sinks, topic.arn, dead_letter, client=client, attempts=3)
        for i in range(3):
            sink.send(alert(i))
        assert sink.accepted == 3
        sink.close()
    kept = dead_letters(dead_letter)
    assert [e["alert"] for e in kept] == [alert(i) for i in range(3)]
    assert {e["attempts"] for e in kept} == {3}
    assert all(e["reason"].startswith("EndpointConnectionError") for e in kept)
    assert (sink.sent, sink.retried, sink.dead_lettered) == (0, 6, 3)


@contextmanager
def throttling_proxy(upstream: str, throttled: int) -> Iterator[str]:
    """A local HTTP proxy to moto that answers its first `throttled` requests as SNS does
    when throttled (400, Throttling), then forwards every request to moto."""
    count = 0
    lock = threading.Lock()
    error = (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        b"<Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            nonlocal count
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                count += 1
                throttle = count <= throttled
            if throttle:
                status, content, content_type = 400, error, "text/xml"
            else:
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in {"host", "content-length"}
                }
                answer = httpx.post(
                    upstream + self.path, content=body, headers=headers, timeout=HOLD
                )
                status, content = answer.status_code, answer.content
                content_type = answer.headers.get("Content-Type", "text/xml")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(HOLD)


def test_sns_throttled_then_published(
    tmp_path: Path, sinks: list[Any], endpoint: str, aws: tuple[Any, Any], topic: Topic
) -> None:
    dead_letter = tmp_path / "dead.jsonl"
    with throttling_proxy(endpoint, throttled=2) as proxy:
        sink = sns_sink(sinks, topic.arn, dead_letter, client=sns_client(proxy), attempts=3)
        sink.send(alert(7, "block"))
        sink.close()
    (message,) = received(aws[1], topic, 1)
    assert json.loads(message["Body"]) == alert(7, "block")
    assert (sink.sent, sink.retried, sink.dead_lettered) == (1, 2, 0)
    assert dead_letters(dead_letter) == []


@pytest.fixture
def aws_environment(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a deployment gives: region, credentials, moto as AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("BANKLAKE_AWS_PROFILE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("aws_environment")
def test_sns_default_client_comes_from_the_environment(
    tmp_path: Path, sinks: list[Any], aws: tuple[Any, Any], topic: Topic
) -> None:
    sink = sns_sink(sinks, topic.arn, tmp_path / "dead.jsonl")
    assert sink.client.meta.region_name == REGION
    assert (
        sink.client.meta.config.retries["total_max_attempts"] == 1
    )  # the sink retries, not botocore
    sink.send(alert(3, "block"))
    sink.close()
    (message,) = received(aws[1], topic, 1)
    assert json.loads(message["Body"]) == alert(3, "block")
    assert sink.sent == 1


# -- the factory -------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_environment")
def test_build_sinks_makes_every_configured_sink(
    tmp_path: Path, sinks: list[Any], aws: tuple[Any, Any], topic: Topic
) -> None:
    a = alert(5, "block")
    dead_letter_dir = tmp_path / "stream"
    with webhook() as server:
        built = build_sinks(tmp_path / "alerts.jsonl", server.url, topic.arn, dead_letter_dir)
        sinks.extend(built)
        assert [sink.name for sink in built] == ["outbox", "webhook", "sns"]
        outbox, hook, sns = built
        assert isinstance(outbox, OutboxSink) and outbox.path == tmp_path / "alerts.jsonl"
        assert isinstance(hook, WebhookSink) and hook.url == server.url
        assert isinstance(sns, SnsSink) and sns.topic_arn == topic.arn
        assert hook.dead_letter.parent == sns.dead_letter.parent == dead_letter_dir
        assert hook.dead_letter != sns.dead_letter
        for sink in built:
            sink.send(a)
            sink.close()
    assert [json.loads(line) for line in outbox.path.read_text().splitlines()] == [a]
    assert server.alerts() == [a]
    (message,) = received(aws[1], topic, 1)
    assert json.loads(message["Body"]) == a


def test_build_sinks_without_remote_sinks_is_the_outbox(tmp_path: Path, sinks: list[Any]) -> None:
    built = build_sinks(tmp_path / "alerts.jsonl", None, None, tmp_path / "stream")
    sinks.extend(built)
    assert [type(sink) for sink in built] == [OutboxSink]


def test_build_sinks_closes_what_it_made_when_a_sink_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import NoRegionError

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "BANKLAKE_AWS_PROFILE", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))

    def webhook_workers() -> int:
        return sum(t.name == "alerts-webhook" and t.is_alive() for t in threading.enumerate())

    before = webhook_workers()
    with refusing_port() as port, pytest.raises(NoRegionError):
        build_sinks(
            tmp_path / "alerts.jsonl",
            f"http://127.0.0.1:{port}/alerts",
            "arn:aws:sns:sa-east-1:123456789012:alerts",
            tmp_path / "stream",
        )
    assert webhook_workers() == before  # the webhook sink made first was closed
