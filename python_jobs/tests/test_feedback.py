"""Investigators' verdicts land in raw exactly once, never while a build reads raw, and become
labels and confirmed negatives at the next build (python_jobs/feedback.py,
docs/decisions/0014-alert-feedback-in-raw.md)."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from python_jobs.cli import main
from python_jobs.feedback import (
    BANK_TIME,
    Alert,
    FeedbackError,
    PendingVerdict,
    land_pending,
    land_pending_for_build,
    pending_files,
    pending_verdicts,
    record_verdict,
    recorded_verdicts,
    report_id,
    verdict_id,
)
from python_jobs.lake.build_lock import building
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import ALERT_VERDICTS, FEEDS, FRAUD_REPORTS
from python_jobs.lake.validate import validate_lake
from python_jobs.lake.writer import write_raw
from python_jobs.pipeline import build
from python_jobs.tests.lake_writer_process import build_lock_held

PROJECT_DIR = Path(__file__).resolve().parents[2]
ALERT = Alert("T20261101000000042", date(2026, 11, 1), "20261101T060000Z")
NOW = datetime(2026, 11, 3, 14, 30, tzinfo=UTC)  # 11:30 in São Paulo


def rows(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def raw_files(lake: Lake) -> list[Path]:
    return sorted(p for feed in FEEDS.values() for p in lake.raw_files(feed))


def test_a_fraud_verdict_writes_a_fraud_report_and_the_verdict(lake: Lake) -> None:
    outcome = record_verdict(lake, ALERT, "fraud", "Ana Souza", now=NOW)
    assert outcome.written
    assert outcome.report_id == report_id(ALERT.transaction_id)
    assert outcome.verdict_id == verdict_id(ALERT.transaction_id, "fraud")
    (report,) = lake.raw_files(FRAUD_REPORTS)
    (verdict,) = lake.raw_files(ALERT_VERDICTS)
    assert sorted(outcome.files) == sorted([report, verdict])
    assert "year=2026/month=11/day=03" in report.as_posix()  # the bank's day
    (reported,) = rows(report)
    assert {k: reported[k] for k in FRAUD_REPORTS.payload_columns} == {
        "report_id": outcome.report_id,
        "transaction_id": ALERT.transaction_id,
        "reported_at": "2026-11-03 11:30:00",
        "scenario": "analyst_confirmed",
        "report_channel": "analyst",
    }
    (given,) = rows(verdict)
    assert {k: given[k] for k in ALERT_VERDICTS.payload_columns} == {
        "verdict_id": outcome.verdict_id,
        "transaction_id": ALERT.transaction_id,
        "verdict": "fraud",
        "investigator": "Ana Souza",
        "decided_at": "2026-11-03 11:30:00",
        "score_date": "2026-11-01",
        "model_version": ALERT.model_version,
    }
    assert given["_ingested_at"].startswith("2026-11-03 14:30:00")  # UTC, as every delivery
    # the files are deliveries like any other: the validator keeps them
    assert not validate_lake(lake).quarantined


def test_a_second_click_writes_nothing(lake: Lake) -> None:
    first = record_verdict(lake, ALERT, "fraud", "Ana Souza", now=NOW)
    before = {p: p.read_bytes() for p in raw_files(lake)}
    later = datetime(2026, 11, 9, 10, 0, tzinfo=UTC)  # another day, another investigator
    second = record_verdict(lake, ALERT, "fraud", "Bruno Lima", now=later)
    assert not second.written
    assert second.files == first.files
    assert {p: p.read_bytes() for p in raw_files(lake)} == before
    assert "already recorded" in second.summary()


def test_a_legitimate_verdict_is_the_verdict_alone(lake: Lake) -> None:
    outcome = record_verdict(lake, ALERT, "legitimate", "Ana Souza", now=NOW)
    assert outcome.report_id is None
    assert not lake.raw_files(FRAUD_REPORTS)
    (verdict,) = lake.raw_files(ALERT_VERDICTS)
    assert rows(verdict)[0]["verdict"] == "legitimate"
    assert recorded_verdicts(lake, ALERT.transaction_id) == {"legitimate": [verdict]}


def test_a_changed_mind_is_a_second_verdict_not_a_second_copy(lake: Lake) -> None:
    record_verdict(lake, ALERT, "legitimate", "Ana Souza", now=NOW)
    record_verdict(lake, ALERT, "fraud", "Ana Souza", now=NOW)
    record_verdict(lake, ALERT, "fraud", "Ana Souza", now=NOW)
    assert sorted(recorded_verdicts(lake, ALERT.transaction_id)) == ["fraud", "legitimate"]
    assert len(lake.raw_files(ALERT_VERDICTS)) == 2
    assert len(lake.raw_files(FRAUD_REPORTS)) == 1


def test_clicks_at_the_same_moment_write_once(lake: Lake) -> None:
    barrier = threading.Barrier(6)
    outcomes = []

    def click() -> None:
        barrier.wait()
        outcomes.append(record_verdict(lake, ALERT, "fraud", "Ana Souza", now=NOW))

    threads = [threading.Thread(target=click) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(o.written for o in outcomes) == 1
    assert len(lake.raw_files(FRAUD_REPORTS)) == len(lake.raw_files(ALERT_VERDICTS)) == 1


# --- while a build reads raw: recorded at once, landed after it, still exactly once ----------


def raw_bytes(lake: Lake) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in raw_files(lake)}


def test_a_verdict_given_during_a_build_waits_for_it_then_lands_once(lake: Lake) -> None:
    with build_lock_held(lake):  # another process builds
        first = record_verdict(lake, ALERT, "fraud", "Ana Souza", now=NOW)
        later = NOW + timedelta(minutes=2)
        again = record_verdict(lake, ALERT, "fraud", "Bruno Lima", now=later)  # double click
        assert first.written and not first.landed and first.files == []
        assert "lands in raw when the build ends" in first.summary()
        assert not again.written and again.pending == first.pending
        assert "already recorded" in again.summary()
        assert not raw_files(lake)  # raw untouched while the build reads it
        assert pending_files(lake) == [first.pending]
        assert pending_verdicts(lake, ALERT.transaction_id) == ["fraud"]
        assert first.pending is not None
        assert PendingVerdict.read(first.pending).investigator == "Ana Souza"  # the first click
        assert land_pending(lake) == []  # the build still runs: nothing lands, no wait
        assert not raw_files(lake)
    landed_at = NOW + timedelta(minutes=20)  # the build has ended
    assert land_pending(lake, now=landed_at) == [first.verdict_id]
    (report,) = lake.raw_files(FRAUD_REPORTS)
    (verdict,) = lake.raw_files(ALERT_VERDICTS)
    (given,) = rows(verdict)
    assert (given["investigator"], given["decided_at"]) == ("Ana Souza", "2026-11-03 11:30:00")
    assert given["_ingested_at"].startswith("2026-11-03 14:50:00")  # the landing's time
    assert rows(report)[0]["reported_at"] == "2026-11-03 11:30:00"  # the click's
    assert not pending_files(lake) and pending_verdicts(lake, ALERT.transaction_id) == []
    assert not validate_lake(lake).quarantined
    before = raw_bytes(lake)
    assert land_pending(lake) == []
    third = record_verdict(lake, ALERT, "fraud", "Ana Souza", now=landed_at)
    assert not third.written and third.landed
    assert sorted(third.files) == sorted([report, verdict])
    assert raw_bytes(lake) == before


def test_a_build_lands_what_is_pending_inside_its_lock(lake: Lake) -> None:
    with build_lock_held(lake):
        legitimate = record_verdict(lake, ALERT, "legitimate", "Ana Souza", now=NOW)
    assert legitimate.pending is not None
    with building(lake):  # the next build, before it reads raw
        assert land_pending(lake) == []  # to any other landing, a build runs
        assert land_pending_for_build(lake, now=NOW) == [legitimate.verdict_id]
        (verdict,) = lake.raw_files(ALERT_VERDICTS)
    assert not pending_files(lake)
    assert recorded_verdicts(lake, ALERT.transaction_id) == {"legitimate": [verdict]}


def test_a_crash_before_the_pending_file_is_removed_lands_nothing_twice(lake: Lake) -> None:
    with build_lock_held(lake):
        given = record_verdict(lake, ALERT, "fraud", "Ana Souza", now=NOW)
    assert given.pending is not None
    saved = given.pending.read_bytes()
    assert land_pending(lake, now=NOW) == [given.verdict_id]
    landed = raw_bytes(lake)
    assert len(landed) == 2
    # the crash: raw written, the pending file still there; landed again on another day
    given.pending.write_bytes(saved)
    next_day = NOW + timedelta(days=1)
    assert land_pending(lake, now=next_day) == [given.verdict_id]
    assert raw_bytes(lake) == landed
    assert not pending_files(lake)
    # a crash between the report and the verdict: only the verdict is written again
    (verdict,) = lake.raw_files(ALERT_VERDICTS)
    verdict.unlink()
    given.pending.write_bytes(saved)
    assert land_pending(lake, now=next_day) == [given.verdict_id]
    assert lake.raw_files(FRAUD_REPORTS) == [p for p in landed if FRAUD_REPORTS.name in p.name]
    assert len(lake.raw_files(ALERT_VERDICTS)) == 1


def test_cli_verdict_during_a_build(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["verdict", ALERT.transaction_id, "fraud", "--by", "ana.souza"]
    args += ["--score-date", "2026-11-01", "--model-version", ALERT.model_version]
    args += ["--lake", str(lake.root)]
    with build_lock_held(lake):
        assert main(args) == 0
        assert "lands in raw when the build ends" in capsys.readouterr().out
        assert not raw_files(lake)
    assert main(args) == 0  # no build now: what was pending lands, nothing new is written
    assert "already recorded" in capsys.readouterr().out
    assert len(lake.raw_files(ALERT_VERDICTS)) == len(lake.raw_files(FRAUD_REPORTS)) == 1


@pytest.mark.parametrize(
    ("alert", "verdict", "investigator", "message"),
    [
        (ALERT, "maybe", "Ana", "verdict: one of fraud, legitimate"),
        (ALERT, "fraud", "", "investigator"),
        (ALERT, "fraud", "Ana\nDROP", "investigator"),
        (ALERT, "fraud", "x" * 65, "investigator"),
        (Alert("T1' or '1'='1", ALERT.score_date, "v1"), "fraud", "Ana", "not a transaction id"),
        (Alert("T1", ALERT.score_date, "v 1;"), "fraud", "Ana", "not a model version"),
    ],
)
def test_bad_input_is_refused_with_what_is_wrong(
    lake: Lake, alert: Alert, verdict: str, investigator: str, message: str
) -> None:
    with pytest.raises(FeedbackError, match=message):
        record_verdict(lake, alert, verdict, investigator, now=NOW)
    assert not raw_files(lake)


def test_cli_verdict(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "verdict",
        ALERT.transaction_id,
        "legitimate",
        "--by",
        "ana.souza",
        "--score-date",
        "2026-11-01",
        "--model-version",
        ALERT.model_version,
        "--lake",
        str(lake.root),
    ]
    assert main(args) == 0
    assert "recorded" in capsys.readouterr().out
    assert main(args) == 0
    assert "already recorded" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse refuses a verdict it does not know
        main([*args[:2], "perhaps", *args[3:]])
    capsys.readouterr()
    assert main([*args[:3], "--by", "bad\tname", *args[5:]]) == 1
    assert "investigator" in capsys.readouterr().err


# --- the next build: labels, confirmed negatives, every raw row reconciled ----------------


@pytest.mark.dbt
def test_the_next_build_uses_the_verdicts(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from python_jobs.tests.assistant_report_lake import LAST_DAY, scored_lake

    lake = Lake(tmp_path / "lake")
    shutil.copytree(scored_lake(tmp_path_factory).root, lake.root, symlinks=True)
    with duckdb.connect(str(lake.database), read_only=True) as con:
        alerts = con.execute(
            "select transaction_id, score_date, model_version from curated.fct_fraud_alerts "
            "where score_date = ? and not is_fraud_reported order by alert_rank limit 2",
            [LAST_DAY],
        ).fetchall()
        before = con.execute(
            "select alerts_confirmed_fraud from curated.fct_model_performance_daily "
            "where score_date = ?",
            [LAST_DAY],
        ).fetchone()
    assert before is not None and len(alerts) == 2
    fraud, legitimate = (Alert(t, d, v) for t, d, v in alerts)
    # the end of the alerts' day at the bank: a verdict comes after the transaction (a report
    # dated before it fails the lake's own test), whichever hour the top alerts fell on
    now = datetime.combine(LAST_DAY, time(23, 59), BANK_TIME)
    record_verdict(lake, fraud, "fraud", "Ana Souza", now=now)
    record_verdict(lake, fraud, "fraud", "Ana Souza", now=now)  # the second click
    with build_lock_held(lake):  # given while a build ran: pending until the next one
        waiting = record_verdict(lake, legitimate, "legitimate", "Ana Souza", now=now)
    assert waiting.pending is not None and len(lake.raw_files(ALERT_VERDICTS)) == 1
    # the same report delivered again under another name (by hand, through the writer): a
    # duplicate, not a second label
    (report,) = [p for p in lake.raw_files(FRAUD_REPORTS) if "-analyst-" in p.name]
    resent = pa.Table.from_pylist(rows(report)).select(FRAUD_REPORTS.payload_columns)
    write_raw(
        lake, FRAUD_REPORTS, LAST_DAY, resent, batch="resent", ingested_at=now.replace(tzinfo=None)
    )

    # the next build (the pipeline's, as `banklake build` runs it) lands the pending verdict
    # inside its lock, before it reads raw
    outcome = build(lake)
    assert outcome.success, outcome.failures[:5]
    assert outcome.nodes["assert_raw_rows_reconcile"] == "pass"
    assert not pending_files(lake)

    with duckdb.connect(str(lake.database), read_only=True) as con:
        triaged = con.execute(
            "select disposition, count(*) from processed.stg_fraud_reports_triaged "
            "where report_id = ? group by 1 order by 1",
            [report_id(fraud.transaction_id)],
        ).fetchall()
        assert triaged == [("accepted", 1), ("duplicate", 1)]
        labelled = con.execute(
            "select is_fraud_reported, fraud_scenario from curated.fct_transactions "
            "where transaction_id = ?",
            [fraud.transaction_id],
        ).fetchall()
        assert labelled == [(True, "analyst_confirmed")]
        reviews = dict(
            con.execute(
                "select transaction_id, review_verdict from curated.fct_fraud_alerts "
                "where review_verdict is not null"
            ).fetchall()
        )
        assert reviews == {
            fraud.transaction_id: "fraud",
            legitimate.transaction_id: "legitimate",
        }
        after = con.execute(
            "select alerts_confirmed_fraud, alerts_confirmed_legitimate, precision_reviewed "
            "from curated.fct_model_performance_daily where score_date = ?",
            [LAST_DAY],
        ).fetchone()
        assert after is not None
        confirmed, negatives, reviewed = after
        assert (confirmed, negatives) == (before[0] + 1, 1)
        assert reviewed == pytest.approx(confirmed / (confirmed + 1))
        # who gave the verdict stays in processed: no curated column carries the name
        curated_text = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'curated' and column_name like '%investigator%'"
        ).fetchall()
        assert curated_text == []
        (who,) = con.execute(
            "select distinct investigator from processed.stg_alert_verdicts"
        ).fetchone() or (None,)
        assert who == "Ana Souza"


def test_every_raw_feed_is_wired_where_feeds_are_listed() -> None:
    """The contract (schemas.FEEDS) and dbt's one list of feeds (raw_feeds()) agree, and each
    feed has its source and triaged model: the reconciliation covers every raw row."""
    import re

    import yaml

    macro = (PROJECT_DIR / "macros/staging/raw_feeds.sql").read_text()
    listed = re.findall(r"'(\w+)'", macro.split("return(")[1])
    assert listed == list(FEEDS)
    sources = yaml.safe_load((PROJECT_DIR / "models/processed/_sources.yml").read_text())
    raw = next(s for s in sources["sources"] if s["name"] == "raw")
    assert sorted(t["name"] for t in raw["tables"]) == sorted(FEEDS)
    for feed in FEEDS:
        assert (PROJECT_DIR / f"models/processed/stg_{feed}_triaged.sql").is_file()
