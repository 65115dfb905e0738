"""The scoring API in process (FastAPI's TestClient runs the app and its start-up): answers,
refusals, idempotency, batches, fraud reports, status endpoints, and a new champion picked up
while answering. The model is trained once on synthetic features; the lake has no export, so
the state starts empty and holds exactly what the tests send."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from ml.artifacts import champion_version
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.tests.conftest import FAST_TRAINING, TRAINED_AT, synthetic_features, write_features
from ml.train import train
from python_jobs.dashboard.server import free_port
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import FRAUD_REPORTS, TRANSACTIONS
from python_jobs.retry import Backoff
from python_jobs.serve.alerts import WEBHOOK_DEAD_LETTER, AlertSink, OutboxSink, WebhookSink
from python_jobs.serve.app import create_app
from python_jobs.serve.asgi import MAX_BODY_BYTES
from python_jobs.serve.contract import FraudReportPayload, TransactionPayload, hash_pii
from python_jobs.serve.service import MAX_BATCH, ScoringService, ServeConfig
from python_jobs.tests.emf_spec import lake_records, values

PIX_KEY = "maria.silva@example.com"  # a person's PIX key: never in an answer or an alert


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api") / "lake"
    layout = MlLayout(Lake(root))
    write_features(layout.lake.database, synthetic_features())
    train(layout, config=FAST_TRAINING, now=TRAINED_AT)
    return root


@pytest.fixture
def lake(tmp_path: Path, template: Path) -> Lake:
    shutil.copytree(template, tmp_path / "lake")
    return Lake(tmp_path / "lake")


@pytest.fixture(params=["memory", "redis", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The online state: in process, on a real redis-server (a key prefix per test), or in a
    DynamoDB table of moto's server (a table per test)."""
    if request.param == "memory":
        return {}
    if request.param == "dynamodb":
        return {
            "state_url": request.getfixturevalue("dynamodb_url"),
            "state_prefix": f"{request.node.name}:",
        }
    socket = request.getfixturevalue("redis_socket")
    return {"state_url": f"unix://{socket}", "state_prefix": f"{request.node.name}:"}


@pytest.fixture
def service(lake: Lake, backend: dict[str, Any]) -> ScoringService:
    return ScoringService(
        ServeConfig(lake=lake.root, batch_rows=10_000, batch_seconds=3600, **backend)
    )


@pytest.fixture
def client(service: ScoringService) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


def tx(n: int = 1, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "transaction_id": f"TAPI{n:08d}",
        "account_id": "A0001",
        "customer_id": "C0001",
        "event_ts": f"2026-10-02 10:{n // 60 % 60:02d}:{n % 60:02d}",
        "transaction_type": "pix",
        "channel": "App",
        "direction": "outbound",
        "amount": "150.00",
        "counterparty_key": PIX_KEY,
        "merchant_category_code": None,
        "device_id": "dv-1",
        "city": "São Paulo",
        "state": "sp",
        "status": "approved",
    }
    payload.update(changes)
    return payload


def _landed(lake: Lake) -> list[str]:
    return [
        tid
        for path in lake.raw_files(TRANSACTIONS)
        for tid in pq.read_table(path, columns=["transaction_id"])["transaction_id"].to_pylist()
    ]


def _without_latency(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "latency_ms"}


def test_the_payload_models_are_the_raw_contract() -> None:
    assert list(TransactionPayload.model_fields) == TRANSACTIONS.payload_columns
    assert list(FraudReportPayload.model_fields) == FRAUD_REPORTS.payload_columns


def test_a_transaction_gets_a_decision_reasons_and_the_champion_s_version(
    client: TestClient, lake: Lake
) -> None:
    response = client.post("/v1/transactions", json=tx(), params={"include": "features"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] in {"approve", "review", "block"}
    assert 0 <= body["score"] <= 1
    assert body["model_version"] == champion_version(MlLayout(lake))
    assert 0 < len(body["reasons"]) <= 3
    assert all(r["reason_code"] and r["description"] for r in body["reasons"])
    assert body["latency_ms"] > 0
    assert list(body["features"]) == list(FEATURES)
    # normalized as dbt does: alias spellings, the personal key hashed
    assert body["transaction_type"] == "PIX" and body["channel"] == "mobile"
    assert body["counterparty_key"] == hash_pii(PIX_KEY)
    assert PIX_KEY not in response.text
    plain = client.post("/v1/transactions", json=tx(2)).json()
    assert "features" not in plain


def test_features_see_the_earlier_transactions_of_the_customer(client: TestClient) -> None:
    first = client.post("/v1/transactions", json=tx(1), params={"include": "features"}).json()
    second = client.post(
        "/v1/transactions", json=tx(2, amount="50.10"), params={"include": "features"}
    ).json()
    assert first["features"]["cust_tx_count_1d"] == 0
    assert first["features"]["is_first_time_counterparty"] is True
    assert second["features"]["cust_tx_count_1d"] == 1
    assert second["features"]["cust_amount_sum_1d"] == 150.0
    assert second["features"]["cust_seconds_since_prev_tx"] == 1
    assert second["features"]["is_first_time_counterparty"] is False


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"amount": None}, "amount", "missing"),  # absent: pydantic's code
        ({"amount": "12,50"}, "amount", "unparseable_amount"),
        ({"amount": "-3.00"}, "amount", "non_positive_amount"),
        ({"amount": ["1"]}, "amount", None),  # mistyped: not text or a number
        ({"event_ts": "2026-10-02T10:00:00"}, "event_ts", "unparseable_event_ts"),
        ({"event_ts": 1759400000}, "event_ts", None),
        ({"transaction_type": "DOC"}, "transaction_type", "unknown_transaction_type"),
        ({"channel": "fax"}, "channel", "unknown_channel"),
        ({"direction": "sideways"}, "direction", "unknown_direction"),
        ({"status": "maybe"}, "status", "unknown_status"),
        ({"customer_id": "  "}, "customer_id", "missing_customer_id"),
        ({"nickname": "x"}, "nickname", None),  # not a field of the contract
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_applied(
    client: TestClient,
    service: ScoringService,
    lake: Lake,
    change: dict[str, Any],
    field: str,
    reason: str | None,
) -> None:
    payload = tx()
    if change.get("amount", "") is None:
        del payload["amount"]
    else:
        payload.update(change)
    response = client.post("/v1/transactions", json=payload)
    assert response.status_code == 422, response.text
    (detail, *_) = response.json()["detail"]
    assert field in detail["loc"]
    if reason is not None:
        assert detail["type"] == reason
    assert service.state.applied == 0
    assert service.wal.pending == 0
    service.flush()
    assert _landed(lake) == []
    (dead,) = [json.loads(line) for line in service.wal.paths.dead_letter.open()]
    assert dead["payload"]["transaction_id"] == payload["transaction_id"]
    assert field in dead["field"]


def test_an_oversized_body_is_refused(client: TestClient, service: ScoringService) -> None:
    response = client.post(
        "/v1/transactions",
        content=b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "body_too_large"
    assert service.state.applied == 0


def test_the_same_transaction_again_gets_the_same_answer_and_counts_once(
    client: TestClient, service: ScoringService, lake: Lake
) -> None:
    first = client.post("/v1/transactions", json=tx()).json()
    again = client.post("/v1/transactions", json=tx(amount="999.00")).json()
    assert _without_latency(again) == _without_latency(first)
    assert service.state.applied == 1
    later = client.post("/v1/transactions", json=tx(2), params={"include": "features"}).json()
    assert later["features"]["cust_tx_count_1d"] == 1  # the repeat is not in the state
    service.flush()
    assert sorted(_landed(lake)) == [tx(1)["transaction_id"], tx(2)["transaction_id"]]


def test_a_batch_is_its_transactions_one_by_one(
    client: TestClient, tmp_path: Path, template: Path, backend: dict[str, Any]
) -> None:
    payloads = [tx(n, amount=f"{10 * n}.00", counterparty_key=f"key-{n % 2}") for n in range(1, 6)]
    batch = client.post(
        "/v1/transactions:batch", json={"transactions": payloads}, params={"include": "features"}
    )
    assert batch.status_code == 200, batch.text
    shutil.copytree(template, tmp_path / "other")
    if backend:
        backend = {**backend, "state_prefix": backend["state_prefix"] + "other:"}
    other = ScoringService(ServeConfig(lake=tmp_path / "other", **backend))
    with TestClient(create_app(other)) as single:
        one_by_one = [
            single.post("/v1/transactions", json=p, params={"include": "features"}).json()
            for p in payloads
        ]
    assert [_without_latency(d) for d in batch.json()["decisions"]] == [
        _without_latency(d) for d in one_by_one
    ]


DECIDING = {"latency_ms", "features"}  # the time it took, and what ?include=features adds


def test_the_hot_path_answers_as_the_route_does(
    tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`POST /v1/transactions` without a query is decided by the FastDecisions middleware, not
    by FastAPI's route; with `?include=features` the route decides. The same requests, good
    and bad, to two services from the same lake: the same statuses, answers and dead letters."""
    validated: list[bytes] = []
    original = TransactionPayload.model_validate_json

    def spy(data: Any, **kwargs: Any) -> TransactionPayload:
        validated.append(data)
        return original(data, **kwargs)

    monkeypatch.setattr(TransactionPayload, "model_validate_json", spy)
    sequence = [
        tx(1),
        tx(2, amount=1250.5, counterparty_key="key-b", device_id=None),
        tx(3, amount="12,00"),  # refused by the processed layer's rules: 422 from the service
        tx(4, channel="telepathy"),
        {**tx(5), "nickname": "x"},  # not in the contract: 422 from validation
        tx(6, amount="9000.00", device_id="dv-new", event_ts="2026-10-02 03:00:00"),
        tx(1),  # a repeat: the first answer
    ]
    answers: dict[str, list[tuple[int, Any]]] = {}
    dead_letters: dict[str, list[dict[str, Any]]] = {}
    for name, params in [("hot", {}), ("route", {"include": "features"})]:
        shutil.copytree(template, tmp_path / name)
        service = ScoringService(ServeConfig(lake=tmp_path / name, batch_rows=10_000))
        with TestClient(create_app(service)) as client:
            responses = [client.post("/v1/transactions", json=p, params=params) for p in sequence]
            raw = client.post(
                "/v1/transactions",
                content=b'{"transaction_id": ',  # not JSON
                headers={"content-type": "application/json"},
                params=params,
            )
        answers[name] = [
            (r.status_code, {k: v for k, v in r.json().items() if k not in DECIDING})
            for r in [*responses, raw]
        ]
        dead_letters[name] = [
            {k: v for k, v in json.loads(line).items() if k != "refused_at"}
            for line in service.wal.paths.dead_letter.open()
        ]
    assert answers["hot"] == answers["route"]
    assert answers["hot"][0][1]["decision"] in {"approve", "review", "block"}
    assert dead_letters["hot"] == dead_letters["route"]
    assert [status for status, _ in answers["hot"]] == [200, 200, 422, 422, 422, 200, 200, 422]
    # the hot path read every body without a query (and only those), the route none of them
    assert len(validated) == len(sequence) + 1


def test_a_batch_with_a_bad_transaction_applies_nothing(
    client: TestClient, service: ScoringService
) -> None:
    payloads = [tx(1), tx(2, amount="abc"), tx(3)]
    response = client.post("/v1/transactions:batch", json={"transactions": payloads})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "transactions", 1, "amount"]
    assert service.state.applied == 0 and service.wal.pending == 0
    too_many = {"transactions": [tx(n) for n in range(MAX_BATCH + 1)]}
    assert client.post("/v1/transactions:batch", json=too_many).status_code == 422
    assert service.state.applied == 0


def test_a_fraud_report_counts_for_the_next_transaction_at_once(
    client: TestClient, service: ScoringService, lake: Lake
) -> None:
    client.post(
        "/v1/transactions", json=tx(1, counterparty_key="MERCHANT-9", transaction_type="DEBIT")
    )
    report = {
        "report_id": "R1",
        "transaction_id": tx(1)["transaction_id"],
        "reported_at": "2026-10-02 11:00:00",
        "scenario": "card_testing",
        "report_channel": "chargeback",
    }
    answer = client.post("/v1/fraud-reports", json=report)
    assert answer.status_code == 200, answer.text
    assert answer.json()["transaction_known"] is True
    assert client.post("/v1/fraud-reports", json=report).json() == answer.json()  # once
    before_report = tx(
        2, customer_id="C0002", counterparty_key="MERCHANT-9", transaction_type="DEBIT"
    )
    before = client.post("/v1/transactions", json=before_report, params={"include": "features"})
    assert before.json()["features"]["cp_fraud_reported_30d"] == 0  # reported at 11:00
    other_customer = tx(
        3,
        event_ts="2026-10-02 11:01:00",
        customer_id="C0002",
        counterparty_key="MERCHANT-9",
        transaction_type="DEBIT",
    )
    after = client.post("/v1/transactions", json=other_customer, params={"include": "features"})
    assert after.json()["features"]["cp_fraud_reported_30d"] == 1
    bad = client.post("/v1/fraud-reports", json={**report, "report_id": "R2", "scenario": "?"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "unknown_scenario"
    service.flush()
    landed = [p for p in lake.raw_files(FRAUD_REPORTS)]
    assert len(landed) == 1


def test_ready_and_metrics_describe_the_service(client: TestClient, lake: Lake) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}
    ready = client.get("/v1/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["model_version"] == champion_version(MlLayout(lake))
    assert body["lake_export"] is None  # nothing published: an empty state, said so
    client.post("/v1/transactions", json=tx())
    client.post("/v1/transactions", json=tx(2, amount="x"))
    text = client.get("/metrics").text
    assert 'banklake_requests_total{path="/v1/transactions",status="200"} 1' in text
    assert 'banklake_refused_total{reason="unparseable_amount"} 1' in text
    assert "banklake_request_latency_seconds_count 1" in text
    assert "banklake_flush_pending_records 1" in text
    assert client.get("/v1/ready").json()["not_landed"] == 1


def test_the_service_emits_each_interval_s_figures(
    client: TestClient, service: ScoringService, lake: Lake
) -> None:
    """EMF records (job serve) from the interval's own requests: latency percentiles equal to
    the answers' latencies (nearest rank), decisions, alerts and refusals counted once."""
    answers = [
        client.post(
            "/v1/transactions",
            json=tx(n, amount=f"{50 * n}.00", event_ts=f"2026-10-02 03:{n:02d}:00", device_id=None),
        ).json()
        for n in range(1, 21)
    ]
    client.post("/v1/transactions", json=tx(99, amount="x"))
    service.emit_metrics()
    service.emit_metrics()  # a quiet interval: counts of zero, no latency
    lines = lake_records(lake.root, "serve")
    latencies = sorted(a["latency_ms"] for a in answers)
    assert values(lines, "ApiRequests") == [20, 0]
    assert values(lines, "ApiLatencyP50") == [pytest.approx(latencies[9], abs=0.001)]
    assert values(lines, "ApiLatencyP99") == [pytest.approx(latencies[19], abs=0.001)]
    for decision in {a["decision"] for a in answers}:
        made = sum(a["decision"] == decision for a in answers)
        assert values(lines, "Decisions", Decision=decision) == [made, 0]
    assert values(lines, "Alerts") == [sum(a["decision"] != "approve" for a in answers), 0]
    assert values(lines, "Refusals", Reason="unparseable_amount") == [1, 0]
    assert values(lines, "FlushPendingRecords")[0] == 20


def test_alerts_carry_reasons_and_hashed_keys_only(
    client: TestClient, service: ScoringService
) -> None:
    answers = [
        client.post(
            "/v1/transactions",
            json=tx(n, amount=f"{50 * n}.00", event_ts=f"2026-10-02 03:{n:02d}:00", device_id=None),
        ).json()
        for n in range(1, 40)
    ]
    outbox = service.wal.paths.root / "alerts.jsonl"
    alerts = [json.loads(line) for line in outbox.open()] if outbox.exists() else []
    raised = [a for a in answers if a["decision"] != "approve"]
    assert raised, "no alert raised: the test would check nothing"
    assert [a["transaction_id"] for a in alerts] == [a["transaction_id"] for a in raised]
    for alert in alerts:
        assert alert["reasons"] and alert["counterparty_key"] == hash_pii(PIX_KEY)
        assert PIX_KEY not in json.dumps(alert) and "São Paulo" not in json.dumps(alert)


def test_a_new_champion_answers_without_a_restart_or_a_failed_request(
    client: TestClient, service: ScoringService, lake: Lake
) -> None:
    layout = MlLayout(lake)
    old = champion_version(layout)
    answered: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:  # requests keep coming while the champion changes
        n = 0
        while not stop.is_set() and n < 5_000:
            n += 1
            response = client.post("/v1/transactions", json=tx(n))
            answered.append((response.status_code, response.json().get("model_version")))

    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(load)
        write_features(lake.database, synthetic_features(seed=11))
        outcome = train(layout, config=FAST_TRAINING, now=datetime(2026, 10, 2, tzinfo=UTC))
        new = champion_version(layout)
        assert new is not None and outcome.decision.promote and new != old
        assert service.models.wait_for(new)
        while not any(version == new for _, version in answered[-10:]) and loading.running():
            stop.wait(0.05)
        stop.set()
        loading.result()
    assert {status for status, _ in answered} == {200}
    versions = [version for _, version in answered]
    assert versions[0] == old and versions[-1] == new
    switch = versions.index(new)
    assert set(versions[:switch]) == {old} and set(versions[switch:]) == {new}


def test_concurrent_clients_are_decided_one_after_another(
    client: TestClient, service: ScoringService
) -> None:
    """Requests in flight together may be decided together: each is still answered alone (a
    refused one refuses only itself) and sees exactly the ones decided before it."""
    good = [tx(n, event_ts="2026-10-02 10:00:00") for n in range(1, 41)]
    bad = [tx(n, amount="not money") for n in range(100, 105)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda p: client.post("/v1/transactions", json=p, params={"include": "features"}),
                good + bad,
            )
        )
    assert [r.status_code for r in responses] == [200] * len(good) + [422] * len(bad)
    seen_before = sorted(r.json()["features"]["cust_tx_count_1d"] for r in responses[: len(good)])
    assert seen_before == list(range(len(good)))  # a strict order, nobody missed or twice
    assert service.state.applied == len(good)


def test_an_answer_waits_for_its_fsync_and_one_fsync_serves_many_batches(
    client: TestClient,
    service: ScoringService,
    monkeypatch: pytest.MonkeyPatch,
    backend: dict[str, Any],
) -> None:
    """Group commit: the next batch is decided while the log syncs the previous ones, and no
    answer leaves before an fsync covering its record has ended."""
    # a slow disk, slower than a decision (hundreds of ms on moto's DynamoDB)
    pause = 1.0 if str(backend.get("state_url", "")).startswith("dynamodb") else 0.05
    durable: dict[str, float] = {}  # transaction id -> when an fsync covering it ended
    syncing: list[tuple[float, float]] = []
    decided_at: list[float] = []
    real_fsync, real_decide = os.fsync, service.decide_written

    def slow_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if "/_stream/wal/" not in path:
            real_fsync(fd)
            return
        covered = os.fstat(fd).st_size
        started = time.perf_counter()
        time.sleep(pause)  # the decider runs ahead meanwhile
        real_fsync(fd)
        ended = time.perf_counter()
        syncing.append((started, ended))
        with open(path, "rb") as handle:
            # the size can be read while a write is half done (fstat takes no lock on the
            # file): only the complete lines before it were covered as records
            whole, _, _torn = handle.read(covered).rpartition(b"\n")
            for line in whole.splitlines():
                durable.setdefault(json.loads(line)["answer"]["transaction_id"], ended)

    def decide_written(*args: Any, **kwargs: Any) -> Any:
        decided_at.append(time.perf_counter())
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(service, "decide_written", decide_written)
    payloads = [tx(n, customer_id=f"C{n:04d}") for n in range(1, 61)]
    # each id sent twice, close together: a repeat's answer is its first one, which may
    # still be waiting for its fsync
    sent = [p for pair in zip(payloads, payloads, strict=True) for p in pair]
    with ThreadPoolExecutor(12) as pool:
        answered = list(
            pool.map(
                lambda p: (client.post("/v1/transactions", json=p), time.perf_counter()),
                sent,
            )
        )
    assert all(response.status_code == 200 for response, _ in answered)
    for response, at in answered:
        assert durable[response.json()["transaction_id"]] <= at
    # decisions were made while an fsync ran, and fsyncs were fewer than the batches
    assert any(start < t < end for t in decided_at for start, end in syncing)
    assert 0 < len(syncing) < len(decided_at)
    assert sorted(_landed_after_flush(service)) == sorted(p["transaction_id"] for p in payloads)


def test_a_repeat_is_answered_only_once_its_first_answer_is_durable(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same id again while its first decision's fsync runs: the repeat gets that answer,
    but not before that fsync has ended."""
    syncing, disk_done = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def held_fsync(fd: int) -> None:
        if "/_stream/wal/" in os.readlink(f"/proc/self/fd/{fd}"):
            syncing.set()
            disk_done.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", held_fsync)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/transactions", json=tx(1))
        assert syncing.wait(10)
        # in a client's batch: decided and answered on the deciding thread, not queued
        # behind the first answer
        repeat = pool.submit(client.post, "/v1/transactions:batch", json={"transactions": [tx(1)]})
        time.sleep(0.3)  # ample for the repeat to be decided: it must still wait
        assert not repeat.done()
        disk_done.set()
        assert first.result().status_code == repeat.result().status_code == 200
    (again,) = repeat.result().json()["decisions"]
    assert _without_latency(again) == _without_latency(first.result().json())


def _landed_after_flush(service: ScoringService) -> list[str]:
    service.flush()
    return _landed(service.lake)


def test_a_failed_fsync_answers_503_and_nothing_after_it_is_answered(
    client: TestClient, service: ScoringService, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post("/v1/transactions", json=tx(1)).status_code == 200
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if "/_stream/wal/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    failed = client.post("/v1/transactions", json=tx(2))
    assert failed.status_code == 503
    assert "write-ahead log failed" in failed.json()["detail"]
    monkeypatch.setattr(os, "fsync", real_fsync)
    # the state may hold what the log does not: no more answers until a restart
    assert client.post("/v1/transactions", json=tx(3)).status_code == 503
    assert client.get("/v1/ready").status_code == 503


def test_the_api_keeps_answering_while_the_alert_webhook_is_down(
    lake: Lake, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}/alerts"  # nothing listens there
    webhook = WebhookSink(
        down,
        tmp_path / WEBHOOK_DEAD_LETTER,
        attempts=2,
        backoff=Backoff(initial=0.01, factor=2.0, maximum=0.05),
        drain_timeout=5.0,
    )
    sinks: list[AlertSink] = [OutboxSink(tmp_path / "outbox.jsonl"), webhook]
    service = ScoringService(ServeConfig(lake=lake.root, sinks=sinks))
    with TestClient(create_app(service)) as client:
        answers = [
            client.post(
                "/v1/transactions",
                json=tx(n, amount=f"{50 * n}.00", event_ts=f"2026-10-02 03:{n:02d}:00"),
            )
            for n in range(1, 40)
        ]
    assert {a.status_code for a in answers} == {200}
    raised = [a.json()["transaction_id"] for a in answers if a.json()["decision"] != "approve"]
    assert raised
    # stopping the service closed the sinks: what the webhook never took is kept, with why
    dead = [json.loads(line) for line in (tmp_path / WEBHOOK_DEAD_LETTER).open()]
    assert sorted(d["alert"]["transaction_id"] for d in dead) == sorted(raised)
    assert all(d["reason"] for d in dead)
    outbox = [json.loads(line) for line in (tmp_path / "outbox.jsonl").open()]
    assert [a["transaction_id"] for a in outbox] == raised


def test_an_old_answer_is_forgotten_but_the_transaction_is_never_counted_twice(
    client: TestClient, service: ScoringService, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post("/v1/transactions", json=tx()).status_code == 200
    monkeypatch.setattr("python_jobs.serve.service.ANSWERS_KEPT_SECONDS", -1)
    service._forget_old_answers()
    again = client.post("/v1/transactions", json=tx())
    assert again.status_code == 409
    assert again.json()["detail"][0]["type"] == "already_in_lake"
    assert service.state.applied == 1


def test_the_hourly_prune_lets_decisions_in_between_its_parts(
    client: TestClient, service: ScoringService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-process state prunes one shard at a time, the service's lock taken for each part
    only (a whole pass over a bank's state held every decision up for seconds); the other
    backends prune in one call. Either way the rows past every window are gone."""
    assert client.post("/v1/transactions", json=tx(1)).status_code == 200
    # a day a hundred days later: every row of the first is behind the horizon
    late = tx(2, event_ts="2027-01-10 10:00:00", customer_id="C0002")
    assert client.post("/v1/transactions", json=late).status_code == 200
    state = service.state
    lock = service._lock
    taken: list[int] = []  # the prune's acquisitions of the service's lock

    pruning = threading.get_ident()

    class Counting:
        def __enter__(self) -> None:
            lock.acquire()
            if threading.get_ident() == pruning:  # not the service's own background thread
                taken.append(1)

        def __exit__(self, *exc: object) -> None:
            lock.release()

    monkeypatch.setattr(service, "_lock", Counting())
    service._prune()
    parts = getattr(state, "prune_parts", 1)
    # one acquisition per part: the lock (not reentrant) was released between parts
    assert len(taken) == parts
    assert parts > 1 or not hasattr(state, "prune_parts")
    assert state.knows("TAPI00000002")
    assert not state.knows("TAPI00000001")


@pytest.mark.parametrize("single_process", [False, True])
def test_serve_runs_with_short_interpreter_lock_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, single_process: bool
) -> None:
    """The service's threads hand each request to each other: `banklake serve` shortens the
    interpreter's switch interval before the scoring process runs (its own loop with the
    HTTP process beside it, or uvicorn in it: server.SWITCH_INTERVAL_SECONDS)."""
    import sys

    from python_jobs.serve import server

    seen: list[float] = []

    def running(main: Any, *args: Any, **kwargs: Any) -> int:
        if hasattr(main, "close"):
            main.close()  # the scoring process's coroutine, not run here
        seen.append(sys.getswitchinterval())
        return 0

    monkeypatch.setattr(server.uvicorn, "run", running)
    monkeypatch.setattr(server.uvloop, "run", running)
    before = sys.getswitchinterval()
    try:
        lake = Lake(tmp_path / "lake")
        port = server.free_port()
        assert server.serve(lake, port=port, single_process=single_process) == 0
    finally:
        sys.setswitchinterval(before)
    assert seen == [server.SWITCH_INTERVAL_SECONDS] and before > server.SWITCH_INTERVAL_SECONDS


# -- landings in a process of their own (python_jobs/serve/lander.py) ------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for folder in ("raw", "processed")
        for p in (root / folder).rglob("*")
        if p.is_file()
    }


def test_a_landing_process_writes_what_landing_in_process_writes(
    lake: Lake, tmp_path: Path
) -> None:
    """`banklake serve` lands in a child process: the same files, byte for byte, as the
    in-process landing of the same records; the child ends with the service."""
    from python_jobs.serve.wal import land_records

    service = ScoringService(
        ServeConfig(lake=lake.root, batch_rows=10_000, batch_seconds=3600, landing_process=True)
    )
    with TestClient(create_app(service)) as client:
        for n in range(1, 8):
            assert client.post("/v1/transactions", json=tx(n)).status_code == 200
        report = {
            "report_id": "R1",
            "transaction_id": tx(3)["transaction_id"],
            "reported_at": "2026-10-03 09:00:00",
            "scenario": "account_takeover",
        }
        assert client.post("/v1/fraud-reports", json=report).status_code == 200
        records = list(service.wal.records())
        service.flush()
        lander = service.wal.lander
        assert lander is not None and lander._process is not None
        child = lander._process
        assert child.poll() is None  # the landing went through the child, still running
        assert service.wal.pending == 0 and sorted(_landed(lake)) == [
            tx(n)["transaction_id"] for n in range(1, 8)
        ]
    assert child.wait(timeout=30) == 0  # ended with the service
    other = Lake(tmp_path / "other")
    name = f"stream-{records[0].seq:012d}-{records[-1].seq:012d}"
    land_records(other, records, name)
    by_child = _files(lake.root)
    assert by_child == _files(other.root) and len(by_child) >= 3  # transactions, report, scores


def test_a_landing_the_process_cannot_make_fails_with_its_reason_and_the_next_one_lands(
    tmp_path: Path,
) -> None:
    from python_jobs.serve.lander import Lander, LandingFailed

    lake = Lake(tmp_path / "lake")
    lander = Lander(lake)
    try:
        with pytest.raises(LandingFailed, match="JSONDecodeError"):
            lander.land(["not a record\n"], "stream-000000000001-000000000001")
        first = lander._process
        assert first is not None and first.poll() is None  # told, not dead
        assert lander.land([], "stream-000000000002-000000000001") == ([], {})
        first.kill()
        first.wait()
        # a dead child is started again for the next landing
        assert lander.land([], "stream-000000000003-000000000002") == ([], {})
        assert lander._process is not first
    finally:
        lander.close()


def test_a_landing_process_that_stops_answering_is_killed_and_the_landing_fails(
    tmp_path: Path,
) -> None:
    """A child that reads the batch and never answers (a hung disk): the landing fails after
    the bound with its reason, the child is killed, and the next landing starts a new one."""
    import subprocess
    import sys

    from python_jobs.serve.lander import Lander, LandingFailed

    hung = [sys.executable, "-c", "import sys, time; sys.stdin.readline(); time.sleep(600)"]
    lander = Lander(Lake(tmp_path / "lake"), answer_seconds=1.0, command=hung)
    try:
        started = lander._child()
        with pytest.raises(LandingFailed, match="did not answer within 1 s"):
            lander.land([], "stream-000000000001-000000000000")
        assert started.wait(timeout=10) != 0  # killed, not left behind
        assert lander._process is None
        lander.command = [sys.executable, "-m", "python_jobs.serve.lander", str(tmp_path / "l")]
        lander.answer_seconds = 120.0  # a new child imports pyarrow before its first answer
        assert lander.land([], "stream-000000000002-000000000001") == ([], {})
        assert isinstance(lander._process, subprocess.Popen)
    finally:
        lander.close()
