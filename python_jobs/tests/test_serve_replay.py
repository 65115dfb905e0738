"""Real-time scoring end to end: `banklake serve` in its own process, a day replayed through
it (`banklake stream`), the lake it streamed into built by dbt, and the answers compared with
`ml_features` and the batch scores; then the same with a kill -9 in the middle."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from ml.layout import MlLayout
from ml.score import score_day
from ml.tests.conftest import FAST_TRAINING
from ml.train import train
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import current
from python_jobs.lake.schemas import ACCOUNTS, CUSTOMERS, FRAUD_REPORTS, TRANSACTIONS
from python_jobs.pipeline import build, export
from python_jobs.serve.bench import children, run_serve_bench
from python_jobs.serve.parity import ParityReport, check
from python_jobs.serve.placement import plan
from python_jobs.serve.server import running_service
from python_jobs.serve.stream import ServiceGone, day_events, stream_day
from python_jobs.tests.lake_writer_process import database_held_for_writing

pytestmark = pytest.mark.dbt

CONFIG = GeneratorConfig(seed=5, start_date=date(2026, 9, 1), days=24, customers=300)
DAY = date(2026, 9, 25)  # the replayed day: the one after CONFIG's
DYNAMODB_EVENTS: int | None = None  # DAY's events replayed through DynamoDB (None: all)


@dataclass(frozen=True)
class Lakes:
    base: Lake  # built, published, a champion trained
    source: Lake  # base plus the next day, generated (raw only)


def _copy(lake: Lake, to: Path) -> Lake:
    shutil.copytree(lake.root, to, symlinks=True)
    return Lake(to)


def _build(lake: Lake) -> None:
    outcome = build(lake)
    assert outcome.success, outcome.failures
    export(lake)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> Lakes:
    root = tmp_path_factory.mktemp("serve")
    assert CONFIG.start_date and CONFIG.start_date + timedelta(days=CONFIG.days) == DAY
    base = Lake(root / "base")
    generate(base, CONFIG)
    _build(base)
    assert train(MlLayout(base), config=FAST_TRAINING).decision.promote
    source = _copy(base, root / "source")
    generate(source, GeneratorConfig(days=1), append=True)
    return Lakes(base, source)


def _deliver_extracts(source: Lake, serving: Lake) -> None:
    """The day's customer and account extracts: files, not part of the API."""
    for feed in (CUSTOMERS, ACCOUNTS):
        folder = source.partition_dir(feed, DAY)
        if folder.exists():
            shutil.copytree(folder, serving.partition_dir(feed, DAY), dirs_exist_ok=True)


def _replay_args(batch_rows: int = 200, batch_seconds: float = 1.0) -> list[str]:
    return [
        "--ingestion-day",
        DAY.isoformat(),
        "--batch-rows",
        str(batch_rows),
        "--batch-seconds",
        str(batch_seconds),
    ]


def _build_and_check(serving: Lake, source: Lake, answers: Path) -> ParityReport:
    _deliver_extracts(source, serving)
    _build(serving)
    score_day(MlLayout(serving), DAY)
    return check(answers, serving, DAY)


def _answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _stream_rows(lake: Lake) -> tuple[list[str], list[str]]:
    """Transaction ids and report ids in the raw files the service landed."""
    ids, reports = [], []
    for path in lake.raw_files(TRANSACTIONS):
        if "-stream-" in path.name:
            ids += pq.read_table(path, columns=["transaction_id"])["transaction_id"].to_pylist()
    for path in lake.raw_files(FRAUD_REPORTS):
        if "-stream-" in path.name:
            with gzip.open(path, "rt") as handle:
                reports += [json.loads(line)["report_id"] for line in handle]
    return ids, reports


def _accepted(answers: list[dict], kind: str, key: str) -> set[str]:
    return {a["body"][key] for a in answers if a["kind"] == kind and a["status"] == 200}


@pytest.fixture(scope="module")
def replayed(lakes: Lakes, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Path]:
    """The day replayed through the service while a dbt build writes the lake it serves
    from (the build takes the database's write lock: the service never opens it)."""
    root = tmp_path_factory.mktemp("replay")
    serving = _copy(lakes.base, root / "serving")
    answers = root / "answers.jsonl"
    with (
        running_service(serving, log=root / "serve.log", extra_args=_replay_args()) as service,
        ThreadPoolExecutor(1) as pool,
    ):
        building = pool.submit(build, serving)
        stream_day(lakes.source, DAY, service.url, answers)
        assert building.result().success
    return serving, answers


@pytest.fixture(scope="module")
def checked(lakes: Lakes, replayed: tuple[Lake, Path]) -> ParityReport:
    """The replayed lake built (once), scored by the batch job, and the answers checked."""
    serving, answers = replayed
    return _build_and_check(serving, lakes.source, answers)


def test_served_features_and_scores_are_dbt_s_and_the_batch_job_s(
    lakes: Lakes, replayed: tuple[Lake, Path], checked: ParityReport
) -> None:
    serving, answers = replayed
    report = checked
    print(report.summary())
    assert report.answered > 1_000
    assert report.missing == []
    assert report.compared == report.answered
    # every difference is explained by a row that arrived after the transaction
    assert report.untouched_mismatches == [], report.summary()
    assert report.scores_compared > 1_000
    # late rows reach few transactions: the comparison is not vacuous
    assert len(report.touched) < report.answered * 0.05
    assert report.compared - len(report.feature_mismatches) > report.answered * 0.95
    # the streamed scores reached the alert mart of the build (before the batch job ran)
    raised = {
        a["body"]["transaction_id"]
        for a in _answers(answers)
        if a["kind"] == "transaction"
        and a["status"] == 200
        and a["body"]["decision"] != "approve"
        and a["body"]["event_ts"].startswith(DAY.isoformat())
    }
    assert raised
    version = current(serving)
    alerts = {
        row["transaction_id"]
        for path in version.mart_files("fct_fraud_alerts")
        for row in pq.read_table(path, columns=["transaction_id", "score_date"]).to_pylist()
        if row["score_date"] == DAY
    }
    assert alerts == raised


def test_every_acknowledged_row_lands_once_and_every_refused_one_is_kept(
    lakes: Lakes, replayed: tuple[Lake, Path]
) -> None:
    serving, answers_path = replayed
    answers = _answers(answers_path)
    sent = day_events(lakes.source, DAY)
    assert len(answers) == len(sent)  # every row of the raw day was offered
    landed, landed_reports = _stream_rows(serving)
    accepted = _accepted(answers, "transaction", "transaction_id")
    assert sorted(landed) == sorted(accepted)  # once each, none refused
    assert sorted(landed_reports) == sorted(_accepted(answers, "report", "report_id"))
    # re-deliveries of the same id got the first answer, and were not landed again
    first: dict[str, dict] = {}
    repeats = 0
    for a in answers:
        if a["kind"] == "transaction" and a["status"] == 200:
            body = {k: v for k, v in a["body"].items() if k != "latency_ms"}
            tid = body["transaction_id"]
            if tid in first:
                repeats += 1
                assert body == first[tid]
            first[tid] = body
    refused = [a for a in answers if a["status"] != 200]
    assert refused  # the generator damages some rows
    dead = [json.loads(line) for line in (serving.root / "_stream/dead_letter.jsonl").open()]
    assert len(dead) == len(refused)
    assert all(d["reason"] and d["field"] and d["payload"] for d in dead)
    statuses = Counter(a["status"] for a in answers)
    assert set(statuses) <= {200, 409, 422}
    # sent = accepted + repeats + refused
    accepted_reports = _accepted(answers, "report", "report_id")
    report_repeats = sum(1 for a in answers if a["kind"] == "report" and a["status"] == 200) - len(
        accepted_reports
    )
    assert len(sent) == len(accepted) + repeats + len(accepted_reports) + report_repeats + len(
        refused
    )


def test_a_dynamodb_backed_service_answers_as_dbt_and_as_the_in_process_one(
    lakes: Lakes,
    replayed: tuple[Lake, Path],
    checked: ParityReport,
    dynamodb_url: str,
    tmp_path: Path,
) -> None:
    """The parity test for the DynamoDB state (moto's server): the day replayed through
    `banklake serve --state dynamodb://TABLE`, warmed from the same export, compared with
    `ml_features` and the batch scores of the lake built for the in-process replay (same
    transactions: no dbt build of its own), and answer for answer with the in-process
    service. The whole day, as the local backends replay it (DYNAMODB_EVENTS: None): an
    event costs some 110 ms through moto's server even with the tests' speed-ups of it
    (moto_s3.py), about three minutes for the day's 1,126 events on a shared two-core
    machine (warm-up 42-56 s, replay 123-134 s), ten without the speed-ups."""
    built, in_process = replayed
    serving = _copy(lakes.base, tmp_path / "serving")
    answers = tmp_path / "answers.jsonl"
    args = [*_replay_args(), "--state", dynamodb_url]
    # (the warm-up writes the export's rows into moto: give it time on a busy machine)
    with running_service(
        serving, log=tmp_path / "serve.log", extra_args=args, start_seconds=900
    ) as service:
        stream_day(lakes.source, DAY, service.url, answers, limit=DYNAMODB_EVENTS)
    report = check(answers, built, DAY)
    print(report.summary())
    expected = bodies(in_process)[:DYNAMODB_EVENTS]
    assert report.answered > len(expected) * 0.8
    assert report.missing == [] and report.compared == report.answered
    # every difference is explained by a row that arrived after the transaction (in the
    # whole day: a late row may come after the events replayed here)
    assert set(report.untouched_mismatches) <= checked.touched, report.summary()
    assert report.scores_compared > len(expected) // 2
    assert report.compared - len(report.feature_mismatches) > report.answered * 0.95

    served = bodies(answers)
    assert len(served) == len(expected)
    assert served == expected


def bodies(path: Path) -> list[tuple[str, int, dict]]:
    """Each answer of a replay, its latency left out."""
    return [
        (a["kind"], a["status"], {k: v for k, v in a["body"].items() if k != "latency_ms"})
        for a in _answers(path)
    ]


def test_one_process_answers_the_day_as_the_two_processes_did(
    lakes: Lakes, replayed: tuple[Lake, Path], tmp_path: Path
) -> None:
    """`banklake serve --single-process` (HTTP in the scoring process itself) answers the
    day's replay exactly as the default's HTTP process and scoring process did."""
    _, two_processes = replayed
    serving = _copy(lakes.base, tmp_path / "serving")
    answers = tmp_path / "answers.jsonl"
    args = [*_replay_args(), "--single-process"]
    with running_service(serving, log=tmp_path / "serve.log", extra_args=args) as service:
        assert _http_processes(service.process.pid) == []
        stream_day(lakes.source, DAY, service.url, answers)
    assert len(bodies(answers)) == len(bodies(two_processes)) > 1_000
    assert bodies(answers) == bodies(two_processes)


def test_the_http_process_ends_with_the_scoring_process(lakes: Lakes, tmp_path: Path) -> None:
    """Each on its cores (the scoring process on one of its own, where there are two or
    more); a stop (SIGTERM) ends both, cleanly; a kill -9 of the scoring process ends its
    HTTP process at once: nothing answers on the port that the scoring process did not
    decide."""
    serving = _copy(lakes.base, tmp_path / "serving")
    with running_service(serving, log=tmp_path / "serve.log") as service:
        (front,) = _http_processes(service.process.pid)
        assert httpx.get(service.url + "/v1/health").status_code == 200
        placed = plan()
        if placed is not None:  # Linux, two cores or more
            assert _cores(service.process.pid) == {placed.scoring}
            assert _cores(front) == {placed.others}
    assert service.process.returncode == 0 and _ended(front)
    with running_service(serving, log=tmp_path / "serve.log") as service:
        (front,) = _http_processes(service.process.pid)
        assert httpx.get(service.url + "/v1/ready").status_code == 200
        service.kill()
        deadline = time.monotonic() + 30
        while not _ended(front) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(front)
        with pytest.raises(httpx.TransportError):
            httpx.get(service.url + "/v1/health", timeout=5)


def _http_processes(pid: int) -> list[int]:
    return [
        child
        for child in children(pid)
        if b"python_jobs.serve.front" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _cores(pid: int) -> set[frozenset[int]]:
    """The cores each thread of a process may run on."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return {frozenset(os.sched_getaffinity(int(task.name))) for task in tasks}


def _ended(pid: int) -> bool:
    """Gone, or a zombie no one has reaped yet (it holds no socket)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_kill_9_loses_nothing_acknowledged_and_lands_nothing_twice(
    lakes: Lakes, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    serving = _copy(lakes.base, tmp_path / "serving")
    log = tmp_path / "serve.log"
    first_run = tmp_path / "first.jsonl"
    args = _replay_args(batch_rows=37, batch_seconds=0.05)  # land often: crash mid-landing
    if backend == "redis":  # the state on a real redis-server, rebuilt at the restart
        args += ["--state", f"unix://{request.getfixturevalue('redis_socket')}"]
    with running_service(serving, log=log, extra_args=args) as service:
        killer = threading.Timer(2.0, service.kill)
        killer.start()
        with pytest.raises(ServiceGone):
            stream_day(lakes.source, DAY, service.url, first_run)
        killer.join()
    acknowledged = _accepted(_answers(first_run), "transaction", "transaction_id")
    assert 0 < len(acknowledged) < len(day_events(lakes.source, DAY))
    # restarted, the whole day is offered again: the acknowledged ones get their first
    # answer, the rest is scored now
    second_run = tmp_path / "second.jsonl"
    # it warms up again while a build holds the database
    with ExitStack() as build_running:
        build_running.enter_context(database_held_for_writing(serving.database))
        with running_service(serving, log=log, extra_args=args) as service:
            build_running.close()  # the build ends; what waited in the log lands
            stream_day(lakes.source, DAY, service.url, second_run)
    answers = _answers(second_run)
    before = {
        a["body"]["transaction_id"]: a["body"]
        for a in _answers(first_run)
        if a["kind"] == "transaction" and a["status"] == 200
    }
    for a in answers:
        if a["kind"] == "transaction" and a["body"].get("transaction_id") in before:
            assert a["status"] == 200
            assert a["body"]["score"] == before[a["body"]["transaction_id"]]["score"]
    landed, _ = _stream_rows(serving)
    assert sorted(landed) == sorted(_accepted(answers, "transaction", "transaction_id"))
    assert acknowledged <= set(landed)
    # the state after the crash was the lake's: features still equal dbt's
    report = _build_and_check(serving, lakes.source, second_run)
    print(report.summary())
    assert report.untouched_mismatches == [], report.summary()
    assert report.compared == report.answered


def test_the_serve_benchmark_records_loads_memory_and_warm_up(lakes: Lakes, tmp_path: Path) -> None:
    """A smoke run of `banklake bench serve` (no timing is asserted: make bench measures)."""
    bench, record = run_serve_bench(
        lakes.base, rates=(20.0, 40.0), seconds=2.0, out=tmp_path, say=lambda _: None
    )
    assert [load.sent for load in bench.loads] == [40, 80]
    assert all(load.statuses == {200: load.sent} for load in bench.loads)
    assert bench.rows_warmed > 0 and bench.rss_after_warmup_bytes > 0
    written = json.loads(record.read_text())
    assert written["state"]["transactions_warmed"] == bench.rows_warmed
    assert [load["sent"] for load in written["loads"]] == [40, 80]
    assert all(load["server_cpu_ms_per_request"] > 0 for load in written["loads"])
    # shares of the machine's cores (CPU time over wall time: at most every core, with the
    # clock ticks' rounding)
    cores = (os.cpu_count() or 1) + 0.5
    assert all(0 < load["server_cores"] < cores for load in written["loads"])
    assert all(0 < load["client_cores"] < cores for load in written["loads"])
    # the scoring process is one of the service's processes (HTTP, landing)
    assert all(0 < load["scoring_cores"] <= load["server_cores"] for load in written["loads"])
    assert "| offered /s |" in record.with_suffix(".md").read_text()
    assert written["lake"] == str(lakes.base.root)
