"""Real-time scoring, without HTTP: validate, feature, score, log durably, apply, alert.

One lock orders every change: a transaction is featured on the state as it is, its record is
written to the write-ahead log, and it is answered only once an fsync covers it. (Requests
decided together are applied one after another before their common fsync, so that each sees
the previous ones; the next requests are decided while the log syncs, and one fsync covers
every record written by then (group commit). Should an fsync fail, the service stops
answering until a restart rebuilds the state from the lake and the log.) A refused request
changes nothing and is kept in the dead-letter file with its reason. The same transaction id
(or report id) again within ANSWERS_KEPT_SECONDS gets the first answer, counted once; later
the state still knows the transaction and refuses it (409), so it is never counted twice.

Start-up (`start`): land a batch a crash interrupted, warm the state from the published lake,
then re-apply what the lake's export does not hold yet: the stream's own landed files, then
the log's records. After a kill -9 the state is the one a rebuild from the lake would give.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
from pydantic_core import to_json

from ml.layout import MlLayout
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import FRAUD_REPORTS, TRANSACTIONS
from python_jobs.lake.writer import read_json_lines
from python_jobs.observability.jobs import emit_serve
from python_jobs.serve.alerts import AlertSink, OutboxSink
from python_jobs.serve.contract import (
    ContractError,
    FraudReport,
    Transaction,
    epoch,
    normalize_report,
    normalize_transaction,
    text,
)
from python_jobs.serve.decisions import alert_body, answer_body, feature_matrix, score_row
from python_jobs.serve.lander import Lander
from python_jobs.serve.metrics import Metrics
from python_jobs.serve.scoring import APPROVE, BLOCK, REVIEW, ModelHolder, score
from python_jobs.serve.state import Featurized, OnlineState, StateBackend
from python_jobs.serve.wal import REPORT, TRANSACTION, Record, StreamPaths, WriteAheadLog
from python_jobs.serve.warmup import Warmup, warm

BANK_TIME = ZoneInfo("America/Sao_Paulo")
MAX_BATCH = 500  # transactions per POST /v1/transactions:batch
RECENT_DECISIONS = 200  # GET /v1/decisions/recent (the dashboard's live page)
STREAM_FILE_MARK = "-stream-"
# How long an answer is kept for a repeated request (a client's retry): with its features,
# an answer is a few kilobytes, so at a thousand transactions a second this is bounded in time
ANSWERS_KEPT_SECONDS = 15 * 60
# How often rows no window can reach any more are dropped from the state
PRUNE_EVERY_SECONDS = 3600.0

log = logging.getLogger("banklake.serve")


class Refused(ValueError):
    """A request the service will not apply: HTTP status, the field, the reason."""

    def __init__(self, status: int, field: str, reason: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.status, self.field, self.reason, self.detail = status, field, reason, detail
        self.index: int | None = None  # the transaction's position in a batch

    def body(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason, "detail": self.detail}


class Unavailable(RuntimeError):
    """The service cannot answer now (no champion, or it stopped after a log failure)."""


@dataclass(frozen=True)
class ScoringRequest:
    """One transaction to decide: its payload, whether to answer with its features, and when
    it arrived (time.monotonic seconds, the same clock in every process of the machine: latency
    counts the wait for its turn, and the hop from the HTTP process)."""

    payload: dict[str, Any]
    include_features: bool
    started: float
    # the payload as text and its reading, when read before its turn (`prepare`, on the
    # event loop: the deciding thread, which every decision waits for, does less)
    prepared: Prepared | None = None


class Prepared(NamedTuple):
    payload: dict[str, str | None]  # the raw contract's fields as text (what lands)
    transaction: Transaction


class Written(NamedTuple):
    """Requests decided and written to the log, not yet durable (ScoringService.finish)."""

    requests: list[ScoringRequest]
    results: list[dict[str, Any] | Refused | None]  # None: none left once decided
    records: list[Record]
    # the log's last record when these were decided: a repeated id's answer may be an
    # earlier batch's, not synced yet, and is answered only once that batch is durable
    through: int


@dataclass
class ServeConfig:
    lake: Path
    batch_rows: int = 1_000  # land a micro-batch every N records ...
    batch_seconds: float = 5.0  # ... or T seconds
    # Replays of history (banklake stream): every row lands in this ingestion day, as the
    # source lake had it. Default: the bank's calendar day when the request arrives.
    ingestion_day: date | None = None
    sinks: list[AlertSink] = field(default_factory=list)
    # The online state: in this process (None, the default), on a Redis server
    # (redis://host:port/db, unix:///path/redis.sock) or in a DynamoDB table (dynamodb://TABLE),
    # under this key prefix. Either way a start rebuilds it from the published lake and the log.
    state_url: str | None = None
    state_prefix: str = "banklake:"
    # the service's figures (EMF, job serve: latency percentiles, decisions, refusals, flush
    # lag) every this many seconds and at shutdown, from the flusher thread
    metrics_seconds: float = 60.0
    # land micro-batches in a child process (python_jobs/serve/lander.py): what `banklake serve`
    # does, so that a landing never holds the decisions up; in process when False
    landing_process: bool = False

    def __post_init__(self) -> None:
        if self.state_url is not None:
            state_scheme(self.state_url)


class ScoringService:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.lake = Lake(config.lake)
        self.layout = MlLayout(self.lake)
        self.state: StateBackend = _state(config)
        self.models = ModelHolder(self.layout)
        self.wal = WriteAheadLog(self.lake, Lander(self.lake) if config.landing_process else None)
        self.metrics = Metrics()
        self.sinks = config.sinks or [OutboxSink(StreamPaths(self.lake).root / "alerts.jsonl")]
        self._lock = threading.Lock()
        # transaction id -> answer and report id -> answer, oldest first (pruned by age)
        # kept as JSON bytes, not dicts: a quarter of an hour of answers at hundreds a second
        # is millions of small objects the cyclic collector would walk at every full
        # collection; bytes are not tracked
        self._answers: dict[str, bytes] = {}
        self._reports: dict[str, bytes] = {}
        self._answered_at: deque[tuple[float, str, bool]] = deque()  # (time, id, is_report)
        self._pruned_at = time.monotonic()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DECISIONS)
        self.warmup: Warmup | None = None
        self.ready = False
        self.failed: str | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._register_gauges()
        self._metrics_at = time.monotonic()
        self._counted: dict[str, dict[str, int]] = {}  # counter -> label -> value last emitted

    # -- start and stop --------------------------------------------------------------------

    def start(self, *, flusher: bool = True) -> None:
        self.models.load()
        records = self.wal.recover()
        # a generational DynamoDB state is shared with the Kinesis consumer and loaded by
        # `banklake state load`: a start loads it only for an export it does not serve yet
        # (and keeps what was applied since: dynamodb_generations.py)
        self.warmup = warm(self.state, self.lake, reuse=getattr(self.state, "generational", False))
        self._apply_landed_stream_files()
        for record in records:
            self._reapply(record)
        # the warmed state lives as long as the process: the cyclic collector need not walk
        # its millions of objects again at every full collection (a pause for every request
        # waiting then)
        gc.collect()
        gc.freeze()
        self.ready = True
        log.info(
            "ready: model %s, %s rows warmed from export %s in %.1f s, %d log records",
            self.models.version,
            f"{self.warmup.rows:,}",
            self.warmup.version,
            self.warmup.seconds,
            len(records),
        )
        if flusher:
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
            self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=30)
        self.flush()
        self._emit_metrics()  # the last interval, with what the last flush left
        self.wal.close()
        for sink in self.sinks:
            sink.close()

    def emit_metrics(self) -> list[dict[str, Any]]:
        """The interval since the last call as EMF records (job serve): latency percentiles
        over the requests answered in it, its decisions, alerts (decisions other than
        approve) and refusals, and the flush lag now. Called by the flusher thread, never on
        a request's path (the request path only appends its latency)."""
        now = time.monotonic()
        interval, self._metrics_at = now - self._metrics_at, now
        latencies, answered = self.metrics.take_latencies()
        decisions = self._since_emitted("banklake_decisions_total", "decision")
        return emit_serve(
            self.lake.root,
            interval_seconds=interval,
            requests=answered,
            latencies_seconds=latencies,
            decisions=decisions,
            refusals=self._since_emitted("banklake_refused_total", "reason"),
            alerts=sum(n for decision, n in decisions.items() if decision != APPROVE),
            alert_failures=sum(
                self._since_emitted("banklake_alert_failures_total", "sink").values()
            ),
            flush_lag_seconds=self._flush_lag(),
            flush_pending=self.wal.pending,
        )

    def _emit_metrics(self) -> None:
        try:
            self.emit_metrics()
        except Exception:
            log.exception("emitting the service's metrics failed")

    def _since_emitted(self, counter: str, label: str) -> dict[str, int]:
        """A counter's growth per label value since the last emission (0 for a value seen
        before and quiet since, so that each series stays continuous)."""
        before = self._counted.setdefault(counter, {})
        now: dict[str, int] = {}
        for labels, n in self.metrics.totals(counter).items():
            key = dict(labels).get(label, "")
            now[key] = now.get(key, 0) + n
        grown = {key: n - before.get(key, 0) for key, n in now.items()}
        before.update(now)
        return grown

    def _flush_loop(self) -> None:
        while not self._stop.wait(min(self.config.batch_seconds, 0.5)):
            oldest = self.wal.oldest_pending()
            due = self.wal.pending >= self.config.batch_rows or (
                oldest is not None
                and datetime.now(UTC).replace(tzinfo=None) - datetime.fromisoformat(oldest)
                >= timedelta(seconds=self.config.batch_seconds)
            )
            if due:
                try:
                    self.flush()
                except Exception:
                    log.exception("landing a micro-batch failed; retrying")
            self._forget_old_answers()
            if time.monotonic() - self._metrics_at >= self.config.metrics_seconds:
                self._emit_metrics()
            if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
                dropped = self._prune()
                self._pruned_at = time.monotonic()
                log.info("state pruned: %s rows past every window dropped", f"{dropped:,}")

    def _prune(self) -> int:
        """The state's prune under the lock; in parts, the lock released between them, where
        the backend prunes in parts (the in-process state: a whole pass holds decisions up
        for seconds at bank scale)."""
        parts = getattr(self.state, "prune_parts", None)
        if parts is None:
            with self._lock:
                return self.state.prune()
        dropped = 0
        for part in range(parts):
            with self._lock:
                dropped += self.state.prune_part(part)  # type: ignore[attr-defined]
        return dropped

    def _remember(self, key: str, answer: dict[str, Any], *, report: bool) -> None:
        (self._reports if report else self._answers)[key] = to_json(answer)
        self._answered_at.append((time.monotonic(), key, report))

    def _forget_old_answers(self) -> None:
        cutoff = time.monotonic() - ANSWERS_KEPT_SECONDS
        with self._lock:
            while self._answered_at and self._answered_at[0][0] < cutoff:
                _, key, report = self._answered_at.popleft()
                (self._reports if report else self._answers).pop(key, None)

    def flush(self) -> None:
        """Lands every acknowledged record not landed yet."""
        landed = self.wal.land()
        if landed is not None:
            for feed, n in landed.rows.items():
                self.metrics.count(
                    "banklake_landed_rows_total", "Rows landed in the lake.", n, feed=feed
                )

    # -- re-applying what the export does not hold -----------------------------------------

    def _apply_landed_stream_files(self) -> None:
        """The stream's landed raw files, for the rows the export does not hold yet."""
        for path in sorted(
            self.lake.raw_files(TRANSACTIONS), key=lambda p: p.name.split(STREAM_FILE_MARK)[-1]
        ):
            if STREAM_FILE_MARK not in path.name:
                continue
            for payload in pq.read_table(path).select(TRANSACTIONS.payload_columns).to_pylist():
                tx = normalize_transaction(payload)
                if not self.state.knows(tx.transaction_id):
                    self.state.apply(tx, self.state.featurize(tx))
        for path in self.lake.raw_files(FRAUD_REPORTS):
            if STREAM_FILE_MARK in path.name:
                for payload in read_json_lines(path):
                    report = normalize_report(payload)
                    self.state.apply_report(report.transaction_id, epoch(report.reported_at))

    def _reapply(self, record: Record) -> None:
        if record.kind == TRANSACTION:
            tx = normalize_transaction(record.payload)
            if _age_seconds(record.received_at) < ANSWERS_KEPT_SECONDS:
                self._remember(tx.transaction_id, record.answer, report=False)
            if not self.state.knows(tx.transaction_id):
                self.state.apply(tx, self.state.featurize(tx))
        else:
            report = normalize_report(record.payload)
            if _age_seconds(record.received_at) < ANSWERS_KEPT_SECONDS:
                self._remember(report.report_id, record.answer, report=True)
            self.state.apply_report(report.transaction_id, epoch(report.reported_at))

    # -- transactions ----------------------------------------------------------------------

    def _check_available(self) -> None:
        if self.failed:
            raise Unavailable(self.failed)
        if not self.ready:
            raise Unavailable("warming up")

    def _received(self, event_day: date | None = None) -> tuple[str, str]:
        now = datetime.now(UTC)
        day = self.config.ingestion_day or now.astimezone(BANK_TIME).date()
        return now.replace(tzinfo=None).isoformat(), day.isoformat()

    def _refuse(self, kind: str, payload: Any, error: Refused) -> Refused:
        self.wal.dead_letter(
            {
                "refused_at": datetime.now(UTC).isoformat(),
                "kind": kind,
                "status": error.status,
                **error.body(),
                "payload": payload,
            }
        )
        self.metrics.count(
            "banklake_refused_total", "Requests refused, by reason.", reason=error.reason
        )
        return error

    def _normalize(self, payload: dict[str, Any]) -> Transaction:
        try:
            return normalize_transaction(payload)
        except ContractError as error:
            raise self._refuse(
                TRANSACTION, payload, Refused(422, error.field, error.reason, error.detail)
            ) from error

    def prepare(self, payload: dict[str, Any]) -> Prepared:
        """A payload read as the processed layer reads it, before its turn; a refusal
        (Refused, dead-lettered) applies nothing, whenever it is made."""
        as_text = {k: text(v) for k, v in payload.items()}
        return Prepared(as_text, self._normalize(as_text))

    def submit(
        self, payloads: list[dict[str, Any]], *, include_features: bool = False
    ) -> list[dict[str, Any]]:
        """Scores transactions in order (a batch is the same as its requests one by one).
        All or nothing: a refused one refuses the batch (raised), and nothing is applied."""
        if len(payloads) > MAX_BATCH:
            raise self._refuse(
                TRANSACTION,
                {"transactions": len(payloads)},
                Refused(413, "transactions", "batch_too_large", f"at most {MAX_BATCH} a batch"),
            )
        started = time.monotonic()
        requests = [ScoringRequest(p, include_features, started) for p in payloads]
        results = self.decide(requests, atomic=True)
        return [r for r in results if not isinstance(r, Refused)]

    def decide(
        self, requests: list[ScoringRequest], *, atomic: bool
    ) -> list[dict[str, Any] | Refused]:
        """Decides requests in order, as if one by one; later ones see the earlier ones.

        atomic: a refusal is raised and nothing is applied (a client's batch). Otherwise each
        request stands alone and its refusal is returned in its place (independent requests
        the server coalesced to score them together: one model call, one fsync)."""
        return self.finish(self.decide_written(requests, atomic=atomic))

    def decide_written(self, requests: list[ScoringRequest], *, atomic: bool) -> Written:
        """decide() up to the log: the decisions made, applied to the state and written to
        the log, not yet durable. Nothing of them may be answered before `finish` (the
        fsync): the API decides the next requests while the log syncs these (group commit),
        and the requests decided meanwhile see these in the state, as one by one."""
        self._check_available()
        many = len(requests) > 1
        results: list[dict[str, Any] | Refused | None] = [None] * len(requests)
        transactions: list[Transaction | None] = []
        payloads: list[dict[str, str | None]] = []
        for i, request in enumerate(requests):
            try:
                prepared = request.prepared or self.prepare(request.payload)
            except Refused as error:
                if atomic:
                    error.index = i if many else None
                    raise
                results[i] = error
                payloads.append({})
                transactions.append(None)
            else:
                payloads.append(prepared.payload)
                transactions.append(prepared.transaction)
        model = self.models.model
        if model is None:
            raise Unavailable("no champion model")
        records: list[Record] = []
        with self._lock:
            self._check_available()
            fresh: list[tuple[int, Transaction, Featurized]] = []
            new_ids: set[str] = set()
            for i, tx in enumerate(transactions):  # refuse before anything is applied
                if tx is None or tx.transaction_id in self._answers:
                    continue
                if tx.transaction_id not in new_ids and self.state.knows(tx.transaction_id):
                    refused = self._already_in_lake(payloads[i], tx.transaction_id)
                    if atomic:
                        refused.index = i if many else None
                        raise refused
                    results[i] = refused
                    continue
                new_ids.add(tx.transaction_id)
            seen: set[str] = set()
            for i, tx in enumerate(transactions):
                if tx is None or results[i] is not None:
                    continue
                if tx.transaction_id in self._answers or tx.transaction_id in seen:
                    if tx.transaction_id in self._answers:
                        self.metrics.count("banklake_duplicates_total", "Repeated transaction ids.")
                    continue  # answered below, once this call's own answers are known
                seen.add(tx.transaction_id)
                featurized = self.state.featurize(tx)
                if many:  # the next ones see it, as one by one
                    self.state.apply(tx, featurized)
                fresh.append((i, tx, featurized))
            scored = score(model, feature_matrix([f for _, _, f in fresh])) if fresh else []
            received_at, day = self._received()
            first = self.wal.reserve(len(fresh))
            for k, ((i, tx, featurized), s) in enumerate(zip(fresh, scored, strict=True)):
                records.append(
                    Record(
                        seq=first + k,
                        kind=TRANSACTION,
                        received_at=received_at,
                        ingestion_day=day,
                        payload={c: payloads[i].get(c) for c in TRANSACTIONS.payload_columns},
                        answer=answer_body(tx, s, featurized),
                        score=score_row(tx, s, received_at),
                    )
                )
            if records:
                try:
                    self.wal.write(records)
                except OSError as error:
                    raise self._log_failed(error) from error
                if not many:
                    _, tx, featurized = fresh[0]
                    self.state.apply(tx, featurized)
                for record in records:
                    self._remember(record.answer["transaction_id"], record.answer, report=False)
            answered = {record.answer["transaction_id"]: record.answer for record in records}
            for i, tx in enumerate(transactions):
                if results[i] is None and tx is not None:
                    answer = answered.get(tx.transaction_id)
                    results[i] = (
                        json.loads(self._answers[tx.transaction_id]) if answer is None else answer
                    )
            through = self.wal.written_through
        return Written(requests, results, records, through)

    def finish(self, written: Written) -> list[dict[str, Any] | Refused]:
        """Waits until the log holds `written` durably (one fsync for every batch written by
        then), then counts, alerts and answers: only what is durable is acknowledged."""
        requests, results, records, through = written
        if through:
            self._check_available()  # an earlier sync failed: these are not durable either
            try:
                self.wal.sync(through)
            except OSError as error:
                raise self._log_failed(error) from error
        for record in records:
            self._count_decision(record.answer)
            if record.answer["decision"] != APPROVE:
                self._alert(record)
        now = time.monotonic()
        final: list[dict[str, Any] | Refused] = []
        for request, result in zip(requests, results, strict=True):
            assert result is not None
            if isinstance(result, Refused):
                final.append(result)
                continue
            latency = now - request.started
            self.metrics.observe_latency(latency)
            body = {k: v for k, v in result.items() if k != "features"}
            body["latency_ms"] = round(latency * 1000, 3)
            if request.include_features:
                body["features"] = result["features"]
            final.append(body)
        fresh_ids = {record.answer["transaction_id"] for record in records}
        for decided in final:
            if not isinstance(decided, Refused) and decided["transaction_id"] in fresh_ids:
                fresh_ids.discard(decided["transaction_id"])
                self.recent.append(_recent(decided))
        return final

    def _log_failed(self, error: OSError) -> Unavailable:
        # the state may hold rows the log does not: stop answering until a restart rebuilds
        # it from the lake and the log
        self.failed = f"write-ahead log failed: {error}"
        return Unavailable(self.failed)

    def _already_in_lake(self, payload: dict[str, Any], tid: str) -> Refused:
        return self._refuse(
            TRANSACTION,
            payload,
            Refused(
                409,
                "transaction_id",
                "already_in_lake",
                f"{tid} is already known: in the lake, or answered more than "
                f"{ANSWERS_KEPT_SECONDS // 60} minutes ago",
            ),
        )

    def _count_decision(self, answer: dict[str, Any]) -> None:
        self.metrics.count(
            "banklake_decisions_total",
            "Scored transactions, by decision.",
            decision=answer["decision"],
        )

    def _alert(self, record: Record) -> None:
        alert = alert_body(record.answer, record.score, record.received_at)
        for sink in self.sinks:
            try:
                sink.send(alert)
                self.metrics.count(
                    "banklake_alerts_total", "Alerts raised and handed to a sink.", sink=sink.name
                )
            except Exception:
                log.exception("alert sink %s failed", sink.name)
                self.metrics.count(
                    "banklake_alert_failures_total", "Alerts a sink failed.", sink=sink.name
                )

    # -- fraud reports ---------------------------------------------------------------------

    def report(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._check_available()
        payload = {k: text(v) for k, v in payload.items()}
        try:
            report = normalize_report(payload)
        except ContractError as error:
            raise self._refuse(
                REPORT, payload, Refused(422, error.field, error.reason, error.detail)
            ) from error
        with self._lock:
            known = self._reports.get(report.report_id)
            if known is not None:
                return dict(json.loads(known))
            received_at, day = self._received()
            answer = _report_answer(report, self.state.knows(report.transaction_id))
            record = Record(
                seq=self.wal.reserve(),
                kind=REPORT,
                received_at=received_at,
                ingestion_day=day,
                payload={c: text(payload.get(c)) for c in FRAUD_REPORTS.payload_columns},
                answer=answer,
            )
            try:
                self.wal.append([record])
            except OSError as error:
                self.failed = f"write-ahead log failed: {error}"
                raise Unavailable(self.failed) from error
            self.state.apply_report(report.transaction_id, epoch(report.reported_at))
            self._remember(report.report_id, answer, report=True)
        self.metrics.count("banklake_fraud_reports_total", "Fraud reports received.")
        return answer

    # -- status ----------------------------------------------------------------------------

    def readiness(self) -> dict[str, Any]:
        model = self.models.model
        newest = self.state.newest
        return {
            "ready": self.ready and self.failed is None and model is not None,
            "failed": self.failed,
            "model_version": self.models.version,
            "review_threshold": None if model is None else model.threshold,
            "block_threshold": None if model is None else model.block_threshold,
            "model_reload_error": self.models.last_error,
            "lake_export": None if self.warmup is None else self.warmup.version,
            "lake_published_at": None
            if self.warmup is None or self.warmup.published_at is None
            else self.warmup.published_at.isoformat(),
            "lake_newest_event": None
            if self.warmup is None or self.warmup.newest_event is None
            else self.warmup.newest_event.isoformat(),
            "warmup_seconds": None if self.warmup is None else round(self.warmup.seconds, 3),
            "newest_event": None
            if newest == 0
            else (datetime(1970, 1, 1) + timedelta(seconds=newest)).isoformat(),
            "not_landed": self.wal.pending,
            "state": self.state.size(),
        }

    def _register_gauges(self) -> None:
        self.metrics.gauge(
            "banklake_state_customers",
            "Customers in the online state.",
            lambda: len(self.state.customers),
        )
        self.metrics.gauge(
            "banklake_state_transactions",
            "Transactions the online state holds.",
            lambda: len(self.state.transactions),
        )
        self.metrics.gauge(
            "banklake_flush_pending_records",
            "Acknowledged records not landed in the lake yet.",
            lambda: self.wal.pending,
        )
        self.metrics.gauge(
            "banklake_flush_lag_seconds",
            "Age of the oldest record not landed yet.",
            self._flush_lag,
        )

        for sink in self.sinks:
            for counter in ("sent", "retried", "dead_lettered", "pending"):
                if hasattr(sink, counter):
                    self.metrics.gauge(
                        f"banklake_alert_sink_{counter}",
                        f"Alerts a remote sink has {counter.replace('_', ' ')} (since start).",
                        _reader(sink, counter),
                        sink=sink.name,
                    )

    def _flush_lag(self) -> float:
        oldest = self.wal.oldest_pending()
        if oldest is None:
            return 0.0
        now = datetime.now(UTC).replace(tzinfo=None)
        return (now - datetime.fromisoformat(oldest)).total_seconds()


def open_state(url: str | None, prefix: str = "banklake:") -> StateBackend:
    """The online state at `url` (None: in this process), as `banklake serve --state` opens
    it: the one factory the Kinesis consumer uses too."""
    return _state(ServeConfig(lake=Path("."), state_url=url, state_prefix=prefix))


REDIS_SCHEMES = ("redis", "rediss", "unix")
STATE_SCHEMES = (*REDIS_SCHEMES, "dynamodb")


def state_scheme(url: str) -> str:
    """The backend `url` names (--state): raises ValueError naming an unknown scheme."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in STATE_SCHEMES:
        raise ValueError(
            f"--state {url!r}: unknown scheme {scheme!r}; expected redis://host:port/db, "
            "unix:///path/redis.sock or dynamodb://TABLE"
        )
    return scheme


def _state(config: ServeConfig) -> StateBackend:
    if config.state_url is None:
        return OnlineState()
    if state_scheme(config.state_url) == "dynamodb":
        from python_jobs.serve.dynamodb_generations import GenerationalState

        return GenerationalState.from_url(config.state_url, config.state_prefix)
    from python_jobs.serve.redis_state import RedisState

    return RedisState.from_url(config.state_url, config.state_prefix)


def _age_seconds(received_at: str) -> float:
    """Seconds since a record's receipt (ISO, UTC naive)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return (now - datetime.fromisoformat(received_at)).total_seconds()


def _reader(source: object, attribute: str) -> Callable[[], float]:
    return lambda: float(getattr(source, attribute))


def _recent(answer: dict[str, Any]) -> dict[str, Any]:
    """A decision as the live view lists it: no keys beyond the transaction's id."""
    return {
        "transaction_id": answer["transaction_id"],
        "event_ts": answer["event_ts"],
        "amount_brl": answer["amount_brl"],
        "transaction_type": answer["transaction_type"],
        "channel": answer["channel"],
        "score": answer["score"],
        "decision": answer["decision"],
        "reasons": ", ".join(r["reason_code"] or r["feature"] for r in answer["reasons"]),
        "model_version": answer["model_version"],
        "latency_ms": answer["latency_ms"],
    }


def _report_answer(report: FraudReport, known: bool) -> dict[str, Any]:
    return {
        "report_id": report.report_id,
        "transaction_id": report.transaction_id,
        "reported_at": report.reported_at.isoformat(sep=" "),
        "scenario": report.scenario,
        "transaction_known": known,
    }


__all__ = [
    "BLOCK",
    "MAX_BATCH",
    "REVIEW",
    "Refused",
    "ScoringService",
    "ServeConfig",
    "Unavailable",
    "open_state",
]
