"""Where a `review` or `block` decision goes: alert sinks.

An alert carries what an investigator needs and nothing personal in clear: ids, the curated
counterparty key (hashed when it is a person's PIX key or account), amount, type, channel,
score, decision and reasons. Raw text of the request (a PIX key, a city) is never copied in.
Every sink writes exactly the dict it is given, as JSON, and adds no field of its own.

- `OutboxSink` (the default): one JSON line per alert in a local file
  (<lake>/_stream/alerts.jsonl).
- `WebhookSink`: a POST of the alert's JSON to a URL (httpx).
- `SnsSink`: an SNS publish of the alert's JSON to a topic, with a `decision` message
  attribute for subscription filters (boto3, the client of python_jobs/aws/clients.py).

The remote sinks never make the scoring request wait on the network: `send` serializes the
alert and puts it on an in-memory queue, and one worker thread per sink delivers in order.
The worker retries with python_jobs/retry.py's deterministic backoff what may pass (HTTP
5xx, 408, 429, refused or dropped connections; SNS throttling and server errors) and gives up
at once on a final answer (any other 4xx, a topic that does not exist). An alert that cannot
be delivered is appended, with its reason, to the sink's dead-letter JSON-lines file
(fsync'ed), as is one offered to a full queue or a closed sink: an alert offered is delivered
or kept.
`close()` lets the worker drain the queue for at most `drain_timeout` seconds; what is left
then, the alert in the middle of its retries included, is dead-lettered as "shutdown".
The counters `accepted`, `sent`, `retried` (retry attempts) and `dead_lettered` are plain
attributes the service can report.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from python_jobs.aws.clients import aws_client, error_code
from python_jobs.environment import aws_profile, aws_region, environment
from python_jobs.retry import Backoff, RetryPolicy, retry_call

log = logging.getLogger("banklake.serve")

# An alert in flight for at most 0.5 + 1 + 2 + 4 s of waits before it is dead-lettered.
DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=8.0)
DEFAULT_DRAIN_TIMEOUT = 10.0
DEFAULT_MAX_QUEUE = 10_000

SHUTDOWN = "shutdown"
QUEUE_FULL = "queue full"

# HTTP answers worth another try; any other non-2xx answer is final.
RETRYABLE_STATUS = frozenset({408, 429})
# SNS error codes worth another try (throttling, the service's own failures).
SNS_RETRYABLE = frozenset(
    {
        "Throttled",
        "Throttling",
        "ThrottlingException",
        "KMSThrottling",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)

WEBHOOK_DEAD_LETTER = "alerts_webhook_dead_letter.jsonl"
SNS_DEAD_LETTER = "alerts_sns_dead_letter.jsonl"


class AlertSink(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _serialize(alert: dict[str, Any]) -> str:
    """The alert as one line of JSON, every sink alike (dates and decimals as text)."""
    return json.dumps(alert, default=str)


class OutboxSink:
    """Appends each alert to a JSON-lines file."""

    name = "outbox"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._handle = path.open("a", encoding="utf-8")

    def send(self, alert: dict[str, Any]) -> None:
        with self._lock:
            self._handle.write(_serialize(alert) + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()


class Undelivered(Exception):
    """A delivery that failed: the reason kept in the dead letter, the HTTP status if any,
    and whether another attempt may succeed."""

    def __init__(self, reason: str, *, status: int | None = None, retryable: bool) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retryable = reason, status, retryable


class _Aborted(Exception):
    """close() stopped waiting: the alert between two attempts is dead-lettered."""


@dataclass(frozen=True)
class _Queued:
    body: str  # the alert's JSON, made when it was offered


@dataclass
class _Progress:
    attempts: int = 0
    last: Undelivered | None = None  # the last attempt's failure


_STOP = object()  # put last on the queue by close()


class _QueuedSink:
    """An in-memory queue, one worker thread delivering with retries, a dead-letter file.

    Subclasses say how one alert is delivered (`_deliver`, raising Undelivered), and what
    to release once the worker has stopped (`_release`)."""

    name = "queued"

    def __init__(
        self,
        dead_letter: Path,
        *,
        attempts: int,
        backoff: Backoff,
        drain_timeout: float,
        max_queue: int,
        stop_timeout: float,
    ) -> None:
        self.dead_letter = dead_letter
        self.policy = RetryPolicy(
            initial=backoff.initial,
            factor=backoff.factor,
            maximum=backoff.maximum,
            max_attempts=attempts,
        )
        self.drain_timeout = drain_timeout
        self.max_queue = max_queue
        self._stop_timeout = stop_timeout  # the longest one attempt may take
        dead_letter.parent.mkdir(parents=True, exist_ok=True)
        # counters, read by the service's metrics
        self.accepted = 0
        self.sent = 0
        self.retried = 0
        self.dead_lettered = 0
        self.lost = 0  # the dead letter could not be written (logged)
        self._lock = threading.Lock()  # the counters and the closed flag
        self._file_lock = threading.Lock()  # the dead-letter file (never held by send's lock)
        self._closed = False
        self._abort = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=f"alerts-{self.name}", daemon=True)

    def _start(self) -> None:
        """Starts the worker: last in a subclass's __init__, once it can deliver."""
        self._worker.start()

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive (False once close() has stopped it)."""
        return self._worker.is_alive()

    @property
    def pending(self) -> int:
        """Alerts offered and not delivered nor dead-lettered yet (the one in flight too)."""
        with self._lock:
            return self.accepted - self.sent - self.dead_lettered - self.lost

    # -- the caller's side -------------------------------------------------------------------

    def send(self, alert: dict[str, Any]) -> None:
        """Queues the alert and returns: no network on the caller's thread (a full queue or a
        closed sink writes the dead letter, a local file, at once)."""
        item = _Queued(_serialize(alert))
        with self._lock:
            self.accepted += 1
            refused = SHUTDOWN if self._closed else None
            if refused is None and self._queue.qsize() >= self.max_queue:
                refused = QUEUE_FULL
            if refused is None:
                self._queue.put(item)
                return
        self._keep(item, refused, attempts=0)

    def close(self) -> None:
        """Delivers what is queued for at most `drain_timeout` seconds, then dead-letters the
        rest as "shutdown" and stops the worker. A second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._worker.join(self.drain_timeout)
        if self._worker.is_alive():
            self._abort.set()  # waits between attempts end; every queued alert is kept
            self._worker.join(self._stop_timeout)
        while True:  # the worker is stuck in one attempt: keep what it did not take
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Queued):
                self._keep(item, SHUTDOWN, attempts=0)
        if self._worker.is_alive():
            log.warning("alert sink %s: an attempt still running after close()", self.name)
        else:
            self._release()

    # -- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if not isinstance(item, _Queued):
                return
            if self._abort.is_set():
                self._keep(item, SHUTDOWN, attempts=0)
            else:
                self._attempt(item)

    def _attempt(self, item: _Queued) -> None:
        progress = _Progress()

        def deliver() -> None:
            progress.attempts += 1
            try:
                self._deliver(item.body)
            except Undelivered as error:
                progress.last = error
                raise

        try:
            retry_call(
                deliver,
                self.policy,
                wait_for=_wait_for,
                on_retry=self._on_retry,
                sleep=self._sleep,
            )
        except _Aborted:
            last = progress.last
            status = None if last is None else last.status
            self._keep(item, SHUTDOWN, attempts=progress.attempts, status=status)
        except Undelivered as error:
            self._keep(item, error.reason, attempts=progress.attempts, status=error.status)
        except Exception as error:  # a bug or an unexpected client error: kept, not lost
            log.exception("alert sink %s: unexpected error", self.name)
            self._keep(item, f"{type(error).__name__}: {error}", attempts=progress.attempts)
        else:
            with self._lock:
                self.sent += 1

    def _on_retry(self, error: Exception, attempt: int, delay: float) -> None:
        with self._lock:
            self.retried += 1
        log.warning(
            "alert sink %s: %s (attempt %d of %d); retrying in %.1f s",
            self.name,
            error,
            attempt,
            self.policy.max_attempts,
            delay,
        )

    def _sleep(self, delay: float) -> None:
        if self._abort.wait(delay):
            raise _Aborted()

    def _keep(
        self, item: _Queued, reason: str, *, attempts: int, status: int | None = None
    ) -> None:
        """Appends the alert and why it was not delivered to the dead letter, fsync'ed."""
        alert = json.loads(item.body)
        entry = {
            "dead_lettered_at": datetime.now(UTC).isoformat(),
            "sink": self.name,
            "reason": reason,
            "status": status,
            "attempts": attempts,
            "alert": alert,
        }
        try:
            with self._file_lock, self.dead_letter.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            with self._lock:
                self.lost += 1
            log.exception(
                "alert sink %s: alert %s lost, the dead letter %s failed",
                self.name,
                alert.get("alert_id"),
                self.dead_letter,
            )
            return
        with self._lock:
            self.dead_lettered += 1
        log.warning(
            "alert sink %s: alert %s dead-lettered (%s)", self.name, alert.get("alert_id"), reason
        )

    def _deliver(self, body: str) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Frees the client once the worker has stopped."""


def _wait_for(error: Exception, delay: float) -> float | None:
    """retry_call's verdict: the backoff's delay when the failure may pass, else final."""
    return delay if isinstance(error, Undelivered) and error.retryable else None


class WebhookSink(_QueuedSink):
    """POSTs each alert's JSON to `url` from a worker thread. A 2xx delivers; 5xx, 408, 429
    and transport errors (refused, reset, timed out) are retried; any other answer is final.
    Undelivered alerts go to `dead_letter` with the status or the error."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        dead_letter: Path,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 5.0,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.url = url
        self.timeout = timeout
        super().__init__(
            dead_letter,
            attempts=attempts,
            backoff=backoff,
            drain_timeout=drain_timeout,
            max_queue=max_queue,
            stop_timeout=2 * timeout + 1.0,  # connect, then the answer
        )
        self._client = httpx.Client(timeout=timeout, headers={"Content-Type": "application/json"})
        self._start()

    def _deliver(self, body: str) -> None:
        try:
            response = self._client.post(self.url, content=body.encode("utf-8"))
        except httpx.TransportError as error:
            raise Undelivered(f"{type(error).__name__}: {error}", retryable=True) from error
        status = response.status_code
        if 200 <= status < 300:
            return
        raise Undelivered(
            f"HTTP {status}", status=status, retryable=status >= 500 or status in RETRYABLE_STATUS
        )

    def _release(self) -> None:
        self._client.close()


def make_sns_client(region: str | None = None, *, timeout: float = 5.0) -> Any:
    """An SNS client with the profile and region every AWS command reads (`region` first),
    botocore's retries off (the sink retries). AWS_ENDPOINT_URL is honoured by boto3."""
    from botocore.config import Config

    env = environment()
    return aws_client(
        "sns",
        region=region or aws_region(env),
        profile=aws_profile(env),
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        ),
    )


class SnsSink(_QueuedSink):
    """Publishes each alert's JSON to an SNS topic from a worker thread, with the decision as
    a message attribute. Throttling, SNS's own errors and connection failures are retried;
    any other error (no such topic, access denied) is final. Undelivered alerts go to
    `dead_letter` with the error code and message."""

    name = "sns"

    def __init__(
        self,
        topic_arn: str,
        dead_letter: Path,
        *,
        client: Any | None = None,
        region: str | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 5.0,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.topic_arn = topic_arn
        # made here, not in send: a missing region or profile fails at start-up
        self._own_client = client is None
        self.client = client if client is not None else make_sns_client(region, timeout=timeout)
        super().__init__(
            dead_letter,
            attempts=attempts,
            backoff=backoff,
            drain_timeout=drain_timeout,
            max_queue=max_queue,
            stop_timeout=2 * timeout + 1.0,
        )
        self._start()

    def _deliver(self, body: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        decision = json.loads(body).get("decision")
        attributes = (
            {"decision": {"DataType": "String", "StringValue": str(decision)}}
            if decision is not None
            else {}
        )
        try:
            self.client.publish(TopicArn=self.topic_arn, Message=body, MessageAttributes=attributes)
        except ClientError as error:
            code = error_code(error)
            message = error.response.get("Error", {}).get("Message", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise Undelivered(
                f"{code}: {message}" if message else code or str(error),
                status=status,
                retryable=code in SNS_RETRYABLE or (status is not None and status >= 500),
            ) from error
        except (BotoConnectionError, HTTPClientError) as error:
            raise Undelivered(f"{type(error).__name__}: {error}", retryable=True) from error
        except BotoCoreError as error:  # a malformed request, missing credentials: final
            raise Undelivered(f"{type(error).__name__}: {error}", retryable=False) from error

    def _release(self) -> None:
        if self._own_client:  # a client given to the sink is its owner's to close
            self.client.close()


def build_sinks(
    outbox: Path,
    webhook_url: str | None,
    sns_topic_arn: str | None,
    dead_letter_dir: Path,
) -> list[AlertSink]:
    """The outbox, then the webhook and the SNS topic when given, each remote sink with its
    own dead letter in `dead_letter_dir`. If one cannot be made (SNS without a region), those
    made before it are closed and the error raised."""
    sinks: list[AlertSink] = [OutboxSink(outbox)]
    try:
        if webhook_url:
            sinks.append(WebhookSink(webhook_url, dead_letter_dir / WEBHOOK_DEAD_LETTER))
        if sns_topic_arn:
            sinks.append(SnsSink(sns_topic_arn, dead_letter_dir / SNS_DEAD_LETTER))
    except Exception:
        for sink in sinks:
            sink.close()
        raise
    return sinks


__all__ = [
    "AlertSink",
    "OutboxSink",
    "SnsSink",
    "Undelivered",
    "WebhookSink",
    "build_sinks",
    "make_sns_client",
]
