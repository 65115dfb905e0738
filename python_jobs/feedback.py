"""An investigator's verdict on a fraud alert, into the raw layer, exactly once.

The dashboard's feedback (and `banklake verdict`) call `record_verdict`:

- **fraud**: a fraud report (feed `fraud_reports`, channel `analyst`, scenario
  `analyst_confirmed`) lands with the verdict, so the next build's labels — fct_transactions,
  the model's monitoring and its training — count the transaction as fraud, as they count a
  chargeback;
- **legitimate**: only the verdict, a confirmed negative: fct_model_performance_daily's
  precision among reviewed alerts needs them (docs/decisions/0014-alert-feedback-in-raw.md).

Both verdicts land in the raw feed `alert_verdicts` with who gave them and when. Files go
through the lake writer like every delivery (immutable, validated, triaged by dbt).

Exactly once: the verdict id is derived from (transaction, verdict) and the report id from
(transaction, fraud), and each names its own file (batch `analyst-<id>`). Under a lock, a file
already written for that id, in any ingestion day, makes the call a no-op: a second click
writes nothing. If two files ever carried the same id (a copy by hand), dbt's triage accepts
the first and marks the other a duplicate: never two labels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from python_jobs.lake.build_lock import exclusive
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import ALERT_VERDICTS, FRAUD_REPORTS, Feed
from python_jobs.lake.writer import write_raw

VERDICTS = ("fraud", "legitimate")  # seeds/alert_verdicts.csv
ANALYST_CHANNEL = "analyst"  # seeds/report_channels.csv
ANALYST_SCENARIO = "analyst_confirmed"  # seeds/fraud_scenarios.csv
BATCH_PREFIX = "analyst-"
# the bank's clock, as the raw feeds' own timestamps (event_ts, reported_at)
BANK_TIME = ZoneInfo("America/Sao_Paulo")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
LOCK_FILE = "_feedback.lock"
_TRANSACTION_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MODEL_VERSION = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# a person's name or login: letters (accents too), digits, space and . _ - @ ; nothing else
_INVESTIGATOR = re.compile(r"[\w .@-]{1,64}")


class FeedbackError(ValueError):
    """A verdict that cannot be recorded as given (the message says which value and why)."""


@dataclass(frozen=True)
class Alert:
    """The alert a verdict is about: its transaction, scoring day and model version."""

    transaction_id: str
    score_date: date
    model_version: str


@dataclass(frozen=True)
class VerdictOutcome:
    verdict_id: str
    report_id: str | None  # the fraud report of a fraud verdict
    written: bool  # False: it had been recorded before (a second click)
    files: list[Path]  # what now holds it in raw (written now or before)

    def summary(self) -> str:
        if self.written:
            return f"verdict {self.verdict_id} recorded: " + ", ".join(map(str, self.files))
        return f"verdict {self.verdict_id} was already recorded: nothing written"


def verdict_id(transaction_id: str, verdict: str) -> str:
    return "V" + _digest(f"{transaction_id}|{verdict}")


def report_id(transaction_id: str) -> str:
    """The analyst's fraud report of a transaction: one per (transaction, fraud)."""
    return "AN" + _digest(f"{transaction_id}|fraud")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24].upper()


def check_investigator(name: str) -> str:
    """The investigator as recorded: trimmed, 1-64 characters of a name or login (a line
    break, tab or other control character is refused, not cleaned away)."""
    cleaned = name.strip(" ")
    if not _INVESTIGATOR.fullmatch(cleaned) or any(c.isspace() and c != " " for c in cleaned):
        raise FeedbackError(
            "investigator: give a name or login of 1 to 64 letters, digits, spaces or . _ - @ "
            f"(got {name!r})"
        )
    return cleaned


def check_alert(alert: Alert) -> Alert:
    if not _TRANSACTION_ID.fullmatch(alert.transaction_id):
        raise FeedbackError(f"not a transaction id: {alert.transaction_id!r}")
    if not _MODEL_VERSION.fullmatch(alert.model_version):
        raise FeedbackError(f"not a model version: {alert.model_version!r}")
    return alert


def raw_files_of(lake: Lake, feed: Feed, record_id: str) -> list[Path]:
    """The raw files of any ingestion day written for `record_id` (its batch name)."""
    pattern = f"year=*/month=*/day=*/{feed.name}-*-{BATCH_PREFIX}{record_id}{feed.file_suffix}"
    return sorted((lake.raw / feed.name).glob(pattern))


def recorded_verdicts(lake: Lake, transaction_id: str) -> dict[str, list[Path]]:
    """Verdict -> its raw files, for the verdicts already given on a transaction (in raw
    now, whether or not a build has read them yet)."""
    found = {v: raw_files_of(lake, ALERT_VERDICTS, verdict_id(transaction_id, v)) for v in VERDICTS}
    return {verdict: files for verdict, files in found.items() if files}


@contextmanager
def _feedback_lock(lake: Lake) -> Iterator[None]:
    """One verdict at a time per lake (two investigators clicking at once, two browser tabs):
    the existence check and the write are one step."""
    with exclusive(lake.root / LOCK_FILE):
        yield


def record_verdict(
    lake: Lake,
    alert: Alert,
    verdict: str,
    investigator: str,
    *,
    now: datetime | None = None,
) -> VerdictOutcome:
    """Records `investigator`'s `verdict` on `alert` in raw, exactly once (module docstring).
    `now`: an aware datetime (default: the current time)."""
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict: one of {', '.join(VERDICTS)} (got {verdict!r})")
    alert = check_alert(alert)
    who = check_investigator(investigator)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise FeedbackError("now must carry its time zone")
    local = now.astimezone(BANK_TIME)
    ingested_at = now.astimezone(UTC).replace(tzinfo=None)  # the contract's UTC, naive
    vid = verdict_id(alert.transaction_id, verdict)
    rid = report_id(alert.transaction_id) if verdict == "fraud" else None
    with _feedback_lock(lake):
        written = False
        files: list[Path] = []
        if rid is not None:  # the report first: the verdict file marks the whole as done
            existing = raw_files_of(lake, FRAUD_REPORTS, rid)
            if not existing:
                existing = [
                    write_raw(
                        lake,
                        FRAUD_REPORTS,
                        local.date(),
                        _fraud_report(rid, alert, local),
                        batch=BATCH_PREFIX + rid,
                        ingested_at=ingested_at,
                    )
                ]
                written = True
            files += existing
        existing = raw_files_of(lake, ALERT_VERDICTS, vid)
        if not existing:
            existing = [
                write_raw(
                    lake,
                    ALERT_VERDICTS,
                    local.date(),
                    _verdict(vid, alert, verdict, who, local),
                    batch=BATCH_PREFIX + vid,
                    ingested_at=ingested_at,
                )
            ]
            written = True
        files += existing
    return VerdictOutcome(vid, rid, written, files)


def _fraud_report(rid: str, alert: Alert, at: datetime) -> pa.Table:
    return pa.table(
        {
            "report_id": [rid],
            "transaction_id": [alert.transaction_id],
            "reported_at": [at.strftime(TIMESTAMP_FORMAT)],
            "scenario": [ANALYST_SCENARIO],
            "report_channel": [ANALYST_CHANNEL],
        }
    )


def _verdict(vid: str, alert: Alert, verdict: str, who: str, at: datetime) -> pa.Table:
    return pa.table(
        {
            "verdict_id": [vid],
            "transaction_id": [alert.transaction_id],
            "verdict": [verdict],
            "investigator": [who],
            "decided_at": [at.strftime(TIMESTAMP_FORMAT)],
            "score_date": [alert.score_date.isoformat()],
            "model_version": [alert.model_version],
        }
    )
