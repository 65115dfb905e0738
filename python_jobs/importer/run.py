"""`banklake import`: lands a user's transactions file in raw, exactly as the generator would.

Same feeds, schemas and partitions, written through `write_raw`, so validate, dbt, features,
training and scoring run on imported data unchanged. By default each row lands in the
partition of the day it happened (a history import looks like a history of daily files);
`--ingestion-date` puts everything in one partition (a single delivery).

Idempotent: the batch name is derived from the source file's content hash, and the files'
bytes depend only on the file, the mapping and the options (the ingestion time is the end
of the partition day, not the wall clock). Re-importing the same file rewrites identical
files, which the writer accepts as a no-op; the same file with another mapping would change
history and is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from python_jobs.importer.mapping import Mapping
from python_jobs.importer.source import MalformedLine, UnusableSource, read_source
from python_jobs.importer.transform import DAY, Feeds, build_feeds
from python_jobs.lake.layout import Lake, partition_date
from python_jobs.lake.schemas import ACCOUNTS, CUSTOMERS, FRAUD_REPORTS, TRANSACTIONS, Feed
from python_jobs.lake.writer import RawFileConflict, write_raw
from python_jobs.observability.jobs import emit_import

BATCH_PREFIX = "import-"
INGESTION_TIME = time(23, 59, 59)  # deterministic: the end of the partition day
IMPORTS_DIR = "_imports"  # under the lake root: one JSON record per imported batch
MALFORMED_SHOWN = 10


@dataclass(frozen=True)
class LandedFile:
    feed: str
    day: date
    rows: int
    path: Path
    new: bool  # False: an identical file was already there (a re-import)


@dataclass(frozen=True)
class ImportResult:
    source: Path
    batch: str
    files: tuple[LandedFile, ...]
    flags: dict[str, int]  # rows dbt will reject, by reason (a row may count twice)
    malformed: tuple[MalformedLine, ...] = field(default=())  # landed whole in event_ts
    warnings: tuple[str, ...] = field(default=())

    def rows(self, feed: str) -> dict[date, int]:
        return {f.day: f.rows for f in self.files if f.feed == feed}

    @property
    def new_files(self) -> int:
        return sum(f.new for f in self.files)

    def describe(self) -> str:
        lines = [f"import {self.source.name} as batch {self.batch}"]
        lines.append(f"  {'feed':<15}{'ingestion day':<15}{'rows':>8}  file")
        for f in self.files:
            state = "new" if f.new else "already there"
            lines.append(f"  {f.feed:<15}{f.day.isoformat():<15}{f.rows:>8,}  {state}")
        for feed in (TRANSACTIONS, CUSTOMERS, ACCOUNTS, FRAUD_REPORTS):
            total = sum(self.rows(feed.name).values())
            lines.append(f"  {feed.name:<30}{total:>8,}  rows in total")
        if self.flags:
            counts = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.flags.items()))
            lines.append(f"  kept as delivered, dbt will reject them: {counts}")
        for bad in self.malformed[:MALFORMED_SHOWN]:
            lines.append(
                f"  line {bad.line if bad.line is not None else '?'} has {bad.fields} fields, "
                f"the header {bad.expected}: landed whole in event_ts, dbt rejects it"
            )
        if len(self.malformed) > MALFORMED_SHOWN:
            lines.append(f"  ... and {len(self.malformed) - MALFORMED_SHOWN} more such lines")
        lines += [f"  warning: {text}" for text in self.warnings]
        if self.files and not self.new_files:
            lines.append("  nothing new: this file was already imported")
        return "\n".join(lines)


def import_file(
    lake: Lake, source: Path, mapping: Mapping, *, ingestion_date: date | None = None
) -> ImportResult:
    """Imports one transactions file into the lake's raw layer; see the module docstring."""
    batch = BATCH_PREFIX + file_digest(source)[:12]
    rows = read_source(source, mapping)
    feeds = build_feeds(rows, mapping, ingestion_date)
    _check_days(source, mapping, feeds, ingestion_date)
    planned = _plan(lake, feeds, batch)
    _refuse_changed_history(lake, batch, source, planned)
    warnings = _warnings(lake, feeds, planned, batch)
    landed = _write(lake, planned, batch, source)
    result = ImportResult(
        source, batch, tuple(landed), feeds.flags, rows.malformed, tuple(warnings)
    )
    _record(lake, result)
    emit_import(lake.root, result)
    return result


def file_digest(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise UnusableSource(f"{path}: cannot read: {error.strerror}") from None


def _check_days(source: Path, mapping: Mapping, feeds: Feeds, forced: date | None) -> None:
    if feeds.event_days is None and forced is None:
        formats = " or ".join(repr(fmt) for fmt in mapping.timestamp.formats)
        raise UnusableSource(
            f"{source}: no value of column '{mapping.timestamp.column}' (mapping key "
            f"'timestamp') matches the format {formats}, so no row has an ingestion day. Fix "
            "timestamp.format in the mapping, or pass --ingestion-date to land it all anyway."
        )
    if forced is not None and feeds.event_days is not None and forced < feeds.event_days[1]:
        raise UnusableSource(
            f"{source}: --ingestion-date {forced} is before the file's last transaction "
            f"({feeds.event_days[1]}): data cannot arrive before it happens."
        )


Planned = list[tuple[Feed, date, pa.Table]]


def _plan(lake: Lake, feeds: Feeds, batch: str) -> Planned:
    """One table per (feed, ingestion day); extracts and reports only when they have rows."""
    planned: Planned = []
    tables = (
        (TRANSACTIONS, feeds.transactions),
        (CUSTOMERS, feeds.customers),
        (ACCOUNTS, feeds.accounts),
        (FRAUD_REPORTS, feeds.fraud_reports),
    )
    for feed, table in tables:
        for day in sorted(pc.unique(table[DAY]).to_pylist()):
            rows = table.filter(pc.equal(table[DAY], pa.scalar(day, pa.date32())))
            planned.append((feed, day, rows.drop_columns([DAY])))
    return planned


def _batch_files(lake: Lake, batch: str) -> set[Path]:
    return set(lake.raw.glob(f"*/year=*/month=*/day=*/*-{batch}.*"))


def _refuse_changed_history(lake: Lake, batch: str, source: Path, planned: Planned) -> None:
    """A batch already in raw must come back identical: raw is immutable, and a second,
    different rendering of the same file would double its transactions downstream."""
    targets = {lake.raw_file(feed, day, batch) for feed, day, _ in planned}
    stray = sorted(_batch_files(lake, batch) - targets)
    if stray:
        raise RawFileConflict(
            f"{source} was already imported as batch {batch} with another mapping or "
            f"--ingestion-date (e.g. {lake.relative(stray[0])}); raw files are immutable. "
            "Re-run with the original options, or remove that batch's files from raw/ "
            "(and rebuild with --full-refresh) to import it differently."
        )


def _write(lake: Lake, planned: Planned, batch: str, source: Path) -> list[LandedFile]:
    # Files that exist first: if one differs, the refusal comes before anything new lands.
    order = sorted(planned, key=lambda item: not lake.raw_file(item[0], item[1], batch).exists())
    landed = []
    for feed, day, table in order:
        target = lake.raw_file(feed, day, batch)
        new = not target.exists()
        ingested_at = datetime.combine(day, INGESTION_TIME)
        try:
            path = write_raw(lake, feed, day, table, batch=batch, ingested_at=ingested_at)
        except RawFileConflict:
            raise RawFileConflict(
                f"{source} was already imported as batch {batch} and {lake.relative(target)} "
                "now comes out different (another mapping or --ingestion-date?); raw files "
                "are immutable. Re-run with the original options, or remove that batch's "
                "files from raw/ (and rebuild with --full-refresh) to import it differently."
            ) from None
        landed.append(LandedFile(feed.name, day, table.num_rows, path, new))
    feed_order = [TRANSACTIONS.name, CUSTOMERS.name, ACCOUNTS.name, FRAUD_REPORTS.name]
    return sorted(landed, key=lambda f: (feed_order.index(f.feed), f.day))


def _warnings(lake: Lake, feeds: Feeds, planned: Planned, batch: str) -> list[str]:
    notes = feeds.notes
    warnings = []
    if notes.get("labels_without_transaction_id"):
        warnings.append(
            f"{notes['labels_without_transaction_id']} fraud-labelled rows have no transaction "
            "id: no report written for them (the rows themselves are in raw, rejected)"
        )
    if notes.get("reported_before_event"):
        warnings.append(
            f"{notes['reported_before_event']} fraud labels are known before their transaction "
            "happened: dbt's test fct_transactions (fraud_reported_at >= event_ts) will fail"
        )
    if notes.get("accounts_with_owners"):
        warnings.append(
            f"{notes['accounts_with_owners']} accounts appear with more than one customer: "
            "each account's owner is the customer of its earliest transaction"
        )
    warnings += _older_partitions(lake, planned, batch)
    return warnings


def _older_partitions(lake: Lake, planned: Planned, batch: str) -> list[str]:
    """dbt's incremental models read only ingestion days from the last one processed
    (minus a day's lookback) onwards; older partitions need a full refresh to be seen."""
    late: dict[str, date] = {}
    for feed in (TRANSACTIONS, CUSTOMERS, ACCOUNTS, FRAUD_REPORTS):
        existing = [
            day
            for path in lake.raw_files(feed)
            if not path.name.endswith(f"-{batch}{feed.file_suffix}")
            and (day := partition_date(path)) is not None
        ]
        days = [day for f, day, _ in planned if f is feed]
        if existing and days and min(days) < max(existing):
            late[feed.name] = max(existing)
    if not late:
        return []
    feeds = ", ".join(f"{name} (newest {day})" for name, day in late.items())
    return [
        f"lands in days older than the newest already in the lake for {feeds}; an "
        "incremental build may not read them: rebuild with `dbt build --full-refresh` "
        "(BANKLAKE_LAKE_DIR set to this lake)"
    ]


def _record(lake: Lake, result: ImportResult) -> None:
    """lake/_imports/<batch>.json: which source file a batch came from, for forensics
    (raw rows point at their batch through _source_file)."""
    folder = lake.root / IMPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "batch": result.batch,
        "source_name": result.source.name,
        "source_sha256": file_digest(result.source),
        "files": [
            {
                "feed": f.feed,
                "day": f.day.isoformat(),
                "rows": f.rows,
                "path": lake.relative(f.path),
            }
            for f in result.files
        ],
        "flags": dict(sorted(result.flags.items())),
    }
    path = folder / f"{result.batch}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
