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

Never while a build reads raw. A build reads raw many times and holds the build lock for all
of it (python_jobs/lake/build_lock.py): a file landing in between is seen by some reads and
not others, and the build's reconciliation fails. Waiting for the lock would block the
investigator's click for the rest of a build (minutes). So a click only *records* the verdict,
at once and durably, in a pending queue, and the verdict *lands* in raw when no build reads it:

    <lake>/_feedback/pending/<verdict id>.json    one file per verdict, written atomically

- `record_verdict` writes the pending file, then lands every pending verdict unless a build
  runs (`unless_building`: the shared lock, without waiting). The answer says which happened:
  in raw now, or recorded and landing when the build ends.
- `banklake build` / `run` / `demo` land what is pending inside their exclusive lock before
  reading raw (`land_pending_for_build`), and again right after releasing it; the dashboard's
  fraud page lands what is pending when it opens. Nothing waits longer than the next build.

Exactly once. The verdict id is derived from (transaction, verdict) and the report id from
(transaction, fraud); each names its own raw file (batch `analyst-<id>`). Recording and landing
take one lock per lake (`_feedback.lock`): a verdict already in raw (a file for its id, in any
ingestion day) or already pending makes a click a no-op, so a second click adds neither a
pending file nor a raw row. Landing writes each raw file only if none exists for its id, and
removes the pending file last: a crash in between leaves the pending file, whose next landing
finds the raw files and only removes it. If two files ever carried the same id (a copy by
hand), dbt's triage accepts the first and marks the other a duplicate: never two labels.

The raw files' ingestion day and `_ingested_at` are the landing's (the bank's day, UTC), so an
incremental build's lookback always reads them; `decided_at` and `reported_at` are the click's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from python_jobs.lake.build_lock import unless_building
from python_jobs.lake.durable import exclusive, fsync_dir, fsync_file, write_json_durably
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
PENDING_DIR = "_feedback/pending"
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
class PendingVerdict:
    """A recorded verdict before it lands in raw: everything its raw rows hold but the
    ingestion columns, which are the landing's. Its JSON is the pending file's content."""

    verdict_id: str
    report_id: str | None  # a fraud verdict's report
    transaction_id: str
    verdict: str
    investigator: str
    decided_at: str  # the bank's wall time of the click, TIMESTAMP_FORMAT
    score_date: str  # ISO
    model_version: str

    @classmethod
    def read(cls, path: Path) -> PendingVerdict:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class VerdictOutcome:
    verdict_id: str
    report_id: str | None  # the fraud report of a fraud verdict
    written: bool  # False: it had been recorded before (a second click)
    files: list[Path]  # what now holds it in raw (written now or before); [] while pending
    pending: Path | None = None  # its pending file while a build runs (not in raw yet)

    @property
    def landed(self) -> bool:
        return self.pending is None

    def summary(self) -> str:
        if self.written and self.landed:
            return f"verdict {self.verdict_id} recorded: " + ", ".join(map(str, self.files))
        if self.written:
            return (
                f"verdict {self.verdict_id} recorded ({self.pending}); a build is running: it "
                "lands in raw when the build ends"
            )
        if self.landed:
            return f"verdict {self.verdict_id} was already recorded: nothing written"
        return (
            f"verdict {self.verdict_id} was already recorded and lands in raw when the running "
            "build ends: nothing written"
        )


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


def pending_dir(lake: Lake) -> Path:
    return lake.root / PENDING_DIR


def pending_path(lake: Lake, vid: str) -> Path:
    """A verdict's pending file: named by its id, so a verdict has at most one."""
    return pending_dir(lake) / f"{vid}.json"


def pending_files(lake: Lake) -> list[Path]:
    """Every pending verdict's file (a temporary `.<name>.tmp` of a crashed write is not)."""
    folder = pending_dir(lake)
    return sorted(folder.glob("V*.json")) if folder.is_dir() else []


def pending_verdicts(lake: Lake, transaction_id: str) -> list[str]:
    """The verdicts on a transaction recorded but not landed yet (a build was running)."""
    return [v for v in VERDICTS if pending_path(lake, verdict_id(transaction_id, v)).exists()]


@contextmanager
def _feedback_lock(lake: Lake) -> Iterator[None]:
    """One recording or landing at a time per lake (two investigators clicking at once, two
    browser tabs, a build landing): each check of raw and the pending queue and the write
    that follows are one step. Taken after the build lock, never before it."""
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
    """Records `investigator`'s `verdict` on `alert` exactly once, then lands it in raw unless
    a build is running (module docstring). Never waits for a build. `now`: an aware datetime
    (default: the current time), the click's time and, when it lands now, the landing's."""
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict: one of {', '.join(VERDICTS)} (got {verdict!r})")
    alert = check_alert(alert)
    who = check_investigator(investigator)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise FeedbackError("now must carry its time zone")
    given = _pending_verdict(alert, verdict, who, now.astimezone(BANK_TIME))
    with _feedback_lock(lake):
        in_raw = _raw_files(lake, given)
        path = pending_path(lake, given.verdict_id)
        written = not in_raw and not path.exists()
        if written:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_durably(path, asdict(given))
    if in_raw:
        return VerdictOutcome(given.verdict_id, given.report_id, False, in_raw)
    land_pending(lake, now=now)
    files = _raw_files(lake, given)
    if files:
        return VerdictOutcome(given.verdict_id, given.report_id, written, files)
    return VerdictOutcome(given.verdict_id, given.report_id, written, [], pending=path)


def land_pending(lake: Lake, *, now: datetime | None = None) -> list[str]:
    """Lands every pending verdict in raw unless a build is running (then lands nothing and
    does not wait: they stay pending). Returns the verdict ids landed. Cheap when nothing is
    pending (no lock is taken): the dashboard calls it whenever its fraud page runs."""
    if not pending_files(lake):
        return []
    with unless_building(lake) as free:
        if not free:
            return []
        return _land_all(lake, now or datetime.now(UTC))


def land_pending_for_build(lake: Lake, *, now: datetime | None = None) -> list[str]:
    """Lands every pending verdict; for a build, inside `build_lock.building` before it reads
    raw (the caller holds the build lock exclusively, so `land_pending` would see a build)."""
    if not pending_files(lake):
        return []
    return _land_all(lake, now or datetime.now(UTC))


def _land_all(lake: Lake, now: datetime) -> list[str]:
    """Under the feedback lock: each pending verdict's raw files (those not there yet), made
    durable, then its pending file removed (module docstring: a crash in between is safe)."""
    landed = []
    with _feedback_lock(lake):
        for path in pending_files(lake):
            given = PendingVerdict.read(path)
            for file in _land(lake, given, now):
                fsync_file(file)
                fsync_dir(file.parent)
            path.unlink()
            fsync_dir(path.parent)
            landed.append(given.verdict_id)
    return landed


def _land(lake: Lake, given: PendingVerdict, now: datetime) -> list[Path]:
    """The verdict's raw files, each written only when no file holds its id yet. The report
    first: the verdict file marks the whole as landed (`_raw_files`)."""
    day = now.astimezone(BANK_TIME).date()
    ingested_at = now.astimezone(UTC).replace(tzinfo=None)  # the contract's UTC, naive
    files: list[Path] = []
    parts = [(ALERT_VERDICTS, given.verdict_id, _verdict(given))]
    if given.report_id is not None:
        parts.insert(0, (FRAUD_REPORTS, given.report_id, _fraud_report(given)))
    for feed, record_id, table in parts:
        existing = raw_files_of(lake, feed, record_id) or [
            write_raw(
                lake, feed, day, table, batch=BATCH_PREFIX + record_id, ingested_at=ingested_at
            )
        ]
        files += existing
    return files


def _raw_files(lake: Lake, given: PendingVerdict) -> list[Path]:
    """The verdict's raw files once it has landed (its verdict file is there), else []."""
    verdict_files = raw_files_of(lake, ALERT_VERDICTS, given.verdict_id)
    if not verdict_files:
        return []
    if given.report_id is None:
        return verdict_files
    return raw_files_of(lake, FRAUD_REPORTS, given.report_id) + verdict_files


def _pending_verdict(alert: Alert, verdict: str, who: str, local: datetime) -> PendingVerdict:
    return PendingVerdict(
        verdict_id=verdict_id(alert.transaction_id, verdict),
        report_id=report_id(alert.transaction_id) if verdict == "fraud" else None,
        transaction_id=alert.transaction_id,
        verdict=verdict,
        investigator=who,
        decided_at=local.strftime(TIMESTAMP_FORMAT),
        score_date=alert.score_date.isoformat(),
        model_version=alert.model_version,
    )


def _fraud_report(given: PendingVerdict) -> pa.Table:
    return pa.table(
        {
            "report_id": [given.report_id],
            "transaction_id": [given.transaction_id],
            "reported_at": [given.decided_at],
            "scenario": [ANALYST_SCENARIO],
            "report_channel": [ANALYST_CHANNEL],
        }
    )


def _verdict(given: PendingVerdict) -> pa.Table:
    return pa.table(
        {
            "verdict_id": [given.verdict_id],
            "transaction_id": [given.transaction_id],
            "verdict": [given.verdict],
            "investigator": [given.investigator],
            "decided_at": [given.decided_at],
            "score_date": [given.score_date],
            "model_version": [given.model_version],
        }
    )
