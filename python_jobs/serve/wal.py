"""Exactly once into the lake: a write-ahead log, and micro-batches landed from it.

The service answers 200 only after the request's record is in the log and fsync'ed: an
acknowledged transaction survives a kill -9. Records are landed into the lake in micro-batches
(every `batch_rows` records or `batch_seconds`), as any other delivery is:

    <lake>/raw/transactions/year=…/day=…/transactions-YYYYMMDD-stream-<from>-<to>.parquet
    <lake>/raw/fraud_reports/year=…/day=…/fraud_reports-YYYYMMDD-stream-<from>-<to>.jsonl.gz
    <lake>/processed/fraud_scores/score_date=…/stream-<from>-<to>.parquet

<from>-<to> are the log's sequence numbers. A batch is landed in three steps: the intent (the
range) is written, then its files, then `landed_through`; each step is an atomic rename. After
a crash the intent is landed again from the log: every file of a range is a function of the
range's records only, so a file that was already written is written again byte for byte (the
raw writer accepts identical bytes and refuses anything else), and no record lands twice or is
lost.

    <lake>/_stream/wal/wal-<first seq>.jsonl     the log, one segment per landed batch
    <lake>/_stream/landing.json                  {"landed_through": n, "intent": [from, to]}
    <lake>/_stream/dead_letter.jsonl             refused requests, with their reason
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic_core import to_json

from ml.score import SCORES_SCHEMA, write_atomically
from python_jobs.lake.build_lock import unless_building
from python_jobs.lake.durable import fsync_dir, write_json_durably
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import FRAUD_REPORTS, TRANSACTIONS, Feed
from python_jobs.lake.writer import write_raw
from python_jobs.serve.lander import Lander

STREAM_DIR = "_stream"
TRANSACTION, REPORT = "transaction", "report"
# landed segments are kept this long, for the same answer to a repeated request after a
# restart; a repeat of an older transaction gets 409 (the lake has it)
KEEP_SEGMENT_SECONDS = 24 * 3600


@dataclass
class Record:
    """One acknowledged request: what lands in raw, and the answer it was given."""

    seq: int
    kind: str  # TRANSACTION or REPORT
    received_at: str  # ISO, UTC naive: the row's _ingested_at
    ingestion_day: str  # the raw partition it lands in
    payload: dict[str, str | None]  # the raw contract's fields, as text
    answer: dict[str, Any]  # the response body
    score: dict[str, Any] | None = None  # the fraud_scores row (transactions)

    def to_json(self) -> str:
        # pydantic's serializer (Rust): a fifth of json.dumps' time for a record, which is
        # written for every decision; the same JSON for these types (read back by json.loads)
        return to_json(self.__dict__, fallback=str).decode("utf-8")

    @classmethod
    def from_json(cls, line: str) -> Record:
        return cls(**json.loads(line))


@dataclass
class StreamPaths:
    lake: Lake

    @property
    def root(self) -> Path:
        return self.lake.root / STREAM_DIR

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def landing(self) -> Path:
        return self.root / "landing.json"

    @property
    def dead_letter(self) -> Path:
        return self.root / "dead_letter.jsonl"

    def segments(self) -> list[Path]:
        return sorted(self.wal.glob("wal-*.jsonl"))


@dataclass
class LandingState:
    landed_through: int = 0
    intent: tuple[int, int] | None = None


@dataclass
class LandedBatch:
    first: int
    last: int
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


class WriteAheadLog:
    """Appends records durably, lands them into the lake, recovers after a crash.

    Thread-safe: writes, syncs and landings share one lock for the log's own fields, held
    briefly; an fsync and a landing's file writes run outside it (a lock each), so
    decisions are written while they run."""

    def __init__(self, lake: Lake, lander: Lander | None = None) -> None:
        self.lake = lake
        # where landings are made: a process of its own (lander.py), else this one
        self.lander = lander
        self.paths = StreamPaths(lake)
        self.paths.wal.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one fsync at a time; waiters share it
        self._landing_lock = threading.Lock()  # one landing at a time
        self._pending: list[Record] = []  # written, not landed yet
        self._lines: dict[int, str] = {}  # seq -> the log line written, for the lander
        self.written_through = 0  # the last seq written to a segment
        self.synced_through = 0  # the last seq an fsync made durable
        self._segment: Any = None
        self.next_seq = 1
        self.landing = self._read_landing()

    # -- recovery --------------------------------------------------------------------------

    def _read_landing(self) -> LandingState:
        if not self.paths.landing.exists():
            return LandingState()
        data = json.loads(self.paths.landing.read_text(encoding="utf-8"))
        intent = data.get("intent")
        return LandingState(int(data["landed_through"]), tuple(intent) if intent else None)

    def records(self) -> Iterator[Record]:
        """Every record of the log's segments, in sequence order. A torn last line (a crash
        in the middle of an append, never acknowledged) is ignored."""
        for segment in self.paths.segments():
            with segment.open(encoding="utf-8") as handle:
                for line in handle:
                    if not line.endswith("\n"):
                        break
                    yield Record.from_json(line)

    def recover(self) -> list[Record]:
        """After a start: queues the records not landed (an interrupted batch first, landed
        again with the same range by the next `land`). Returns every record still in the log
        (the caller re-applies them to its state)."""
        records = list(self.records())
        if records:
            self.next_seq = records[-1].seq + 1
            # a record the process wrote but had not synced when it died may be in the file
            # (the page cache outlives the process): it is kept, made durable here
            self.written_through = self.synced_through = records[-1].seq
        self._pending = [r for r in records if r.seq > self.landing.landed_through]
        self._truncate_torn_tail()
        return records

    def _truncate_torn_tail(self) -> None:
        segments = self.paths.segments()
        if not segments:
            return
        last = segments[-1]
        data = last.read_bytes()
        end = data.rfind(b"\n") + 1
        with last.open("r+b") as handle:
            if end != len(data):
                handle.truncate(end)
            os.fsync(handle.fileno())

    # -- appending -------------------------------------------------------------------------

    def append(self, records: list[Record]) -> None:
        """Writes records (seq already assigned by `reserve`) and fsyncs before returning."""
        self.write(records)
        self.sync(records[-1].seq)

    def write(self, records: list[Record]) -> None:
        """Writes records to the current segment, not durably yet: `sync` makes them so.
        Nothing written may be acknowledged, or landed, before it is synced."""
        lines = [r.to_json() + "\n" for r in records]
        with self._lock:
            handle = self._open_segment(records[0].seq)
            handle.write("".join(lines))
            handle.flush()
            self._pending.extend(records)
            if self.lander is not None:
                self._lines.update(zip((r.seq for r in records), lines, strict=True))
            self.written_through = records[-1].seq

    def sync(self, through: int) -> None:
        """Returns once every record up to seq `through` is durable. One fsync covers every
        record written when it starts, so callers waiting together share it (group commit);
        writers go on meanwhile (the fsync is on a duplicate of the segment's descriptor)."""
        with self._sync_lock:
            with self._lock:
                target = self.written_through
                if self.synced_through >= through or self._segment is None:
                    return  # synced, or by a landing (which syncs before it rotates)
                descriptor = os.dup(self._segment.fileno())
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            with self._lock:
                self.synced_through = max(self.synced_through, target)

    def _sync_segment(self) -> None:
        """Under the lock: the current segment durable (before a landing reads the pending
        records, and before the segment is closed)."""
        if self._segment is not None and self.synced_through < self.written_through:
            os.fsync(self._segment.fileno())
            self.synced_through = self.written_through

    def reserve(self, n: int = 1) -> int:
        """The first of n new sequence numbers."""
        with self._lock:
            first = self.next_seq
            self.next_seq += n
            return first

    def _open_segment(self, seq: int) -> Any:
        if self._segment is None:
            path = self.paths.wal / f"wal-{seq:012d}.jsonl"
            self._segment = path.open("a", encoding="utf-8")
            fsync_dir(self.paths.wal)
        return self._segment

    @property
    def pending(self) -> int:
        return len(self._pending)

    def oldest_pending(self) -> str | None:
        return self._pending[0].received_at if self._pending else None

    # -- landing ---------------------------------------------------------------------------

    def land(self) -> LandedBatch | None:
        """Lands every pending record as one batch; None when nothing is pending, or when a
        build is reading the lake (the records wait in the log: build_lock.py). The files
        are written without the log's lock: decisions go on being written meanwhile, into a
        new segment."""
        with self._landing_lock, unless_building(self.lake) as free:
            with self._lock:
                if not self._pending or not free:
                    return None
                self._sync_segment()  # only durable records land
                if self.landing.intent is not None:  # a crash interrupted this range: same
                    first, last = self.landing.intent
                else:
                    first, last = self._pending[0].seq, self._pending[-1].seq
                batch = [r for r in self._pending if first <= r.seq <= last]
                if self._segment is not None:  # the next record starts a new segment
                    self._segment.close()
                    self._segment = None
            if self.landing.intent is None:
                self.landing = LandingState(self.landing.landed_through, (first, last))
                write_json_durably(self.paths.landing, _landing_json(self.landing))
            landed = self._land(batch, first, last)
            with self._lock:
                self._pending = [r for r in self._pending if r.seq > last]
                for record in batch:
                    self._lines.pop(record.seq, None)
            self._drop_old_segments()
            return landed

    def _land(self, batch: list[Record], first: int, last: int) -> LandedBatch:
        name = f"stream-{first:012d}-{last:012d}"
        if self.lander is not None:  # the child fsyncs the files' folders before it answers
            lines = [self._lines.get(r.seq) or r.to_json() + "\n" for r in batch]
            files, rows = self.lander.land(lines, name)
            landed = LandedBatch(first, last, files, rows)
        else:
            landed = land_records(self.lake, batch, name)
            landed.first, landed.last = first, last
            for path in landed.files:
                fsync_dir(path.parent)
        self.landing = LandingState(last, None)
        write_json_durably(self.paths.landing, _landing_json(self.landing))
        return landed

    def _drop_old_segments(self) -> None:
        """Landed segments older than KEEP_SEGMENT_SECONDS (every segment but the one being
        written is landed when this runs)."""
        cutoff = time.time() - KEEP_SEGMENT_SECONDS
        for segment in self.paths.segments():
            if segment.stat().st_mtime < cutoff:
                segment.unlink()

    def dead_letter(self, entry: dict[str, Any]) -> None:
        """Keeps a refused request with its reason (durably: it was offered to us)."""
        with self._lock, self.paths.dead_letter.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        with self._lock:
            self._sync_segment()
            if self._segment is not None:
                self._segment.close()
                self._segment = None
        if self.lander is not None:
            self.lander.close()


def land_records(lake: Lake, batch: list[Record], name: str) -> LandedBatch:
    """Writes a batch's raw files (one per feed and ingestion day) and fraud_scores files (one
    per score date), every one named after `name` and a function of the records only: the
    same records and name give the same files, byte for byte (a re-landing is harmless).
    The Kinesis consumer lands its batches with this too, into a folder it then uploads."""
    landed = LandedBatch(batch[0].seq if batch else 0, batch[-1].seq if batch else 0)
    for kind, feed in ((TRANSACTION, TRANSACTIONS), (REPORT, FRAUD_REPORTS)):
        by_day: dict[str, list[Record]] = {}
        for record in batch:
            if record.kind == kind:
                by_day.setdefault(record.ingestion_day, []).append(record)
        for day, records in sorted(by_day.items()):
            path = _land_raw(lake, feed, date.fromisoformat(day), records, name)
            landed.files.append(path)
            landed.rows[feed.name] = landed.rows.get(feed.name, 0) + len(records)
    scores: dict[str, list[dict[str, Any]]] = {}
    for record in batch:
        if record.score is not None:
            scores.setdefault(record.score["score_date"], []).append(record.score)
    for day, rows in sorted(scores.items()):
        path = lake.root / "processed" / "fraud_scores" / f"score_date={day}" / f"{name}.parquet"
        write_atomically(_scores_table(rows), path)
        landed.files.append(path)
        landed.rows["fraud_scores"] = landed.rows.get("fraud_scores", 0) + len(rows)
    return landed


def _landing_json(state: LandingState) -> dict[str, Any]:
    return {
        "landed_through": state.landed_through,
        "intent": list(state.intent) if state.intent else None,
    }


def _land_raw(lake: Lake, feed: Feed, day: date, records: list[Record], name: str) -> Path:
    columns = {c: [r.payload.get(c) for r in records] for c in feed.payload_columns}
    table = pa.table(
        {c: pa.array(columns[c], feed.schema.field(c).type) for c in feed.payload_columns}
    )
    # one ingestion time per file (the writer's contract): the batch's last receipt
    ingested_at = datetime.fromisoformat(max(r.received_at for r in records))
    return write_raw(lake, feed, day, table, batch=name, ingested_at=ingested_at)


def _scores_table(rows: list[dict[str, Any]]) -> pa.Table:
    arrays = {}
    for schema_field in SCORES_SCHEMA:
        values = [row[schema_field.name] for row in rows]
        if pa.types.is_timestamp(schema_field.type):
            values = [None if v is None else datetime.fromisoformat(v) for v in values]
        arrays[schema_field.name] = pa.array(values, schema_field.type)
    return pa.table(arrays, schema=SCORES_SCHEMA)
