"""The end-of-run summary: rows per layer, what was rejected and why, where to look next.

summarize() reads the local DuckDB file; python_jobs/aws/athena_summary.py fills the same
LakeSummary from Athena (`banklake summary --target athena`) and prints it with the same
render_body(), so the two engines' summaries read alike and can be compared line by line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from python_jobs.lake.layout import Lake
from python_jobs.lake.query import one_row
from python_jobs.lake.schemas import FEEDS as RAW_FEEDS

FEEDS = tuple(RAW_FEEDS)  # every raw feed, in the contract's order
DISPOSITIONS = ("accepted", "duplicate", "rejected")  # of every triaged raw row


@dataclass
class LakeSummary:
    processed: dict[str, dict[str, int]] = field(default_factory=dict)  # feed -> disposition
    rejected: list[tuple[str, str, int]] = field(default_factory=list)  # feed, reason, rows
    curated: dict[str, int] = field(default_factory=dict)
    quarantined_files: int | None = 0  # None: not counted (no quarantine to look at)
    # the newest ingestion day, every feed: (day, raw rows, rejected rows); its rejection
    # rate is what the operator alarm watches (a bad delivery, not the lake's history)
    newest_day: tuple[str, int, int] | None = None

    def add_triaged(self, feed: str, rows: Iterable[tuple[object, object, object]]) -> None:
        """A feed's triaged rows counted by (ingestion_date, disposition, n), either engine."""
        counts = self.processed.setdefault(feed, {})
        for day, disposition, n in rows:
            counts[str(disposition)] = counts.get(str(disposition), 0) + int(str(n or 0))
            self._by_day.append((str(day), str(disposition), int(str(n or 0))))
        self.newest_day = None
        if self._by_day:
            newest = max(day for day, _, _ in self._by_day)
            today = [(d, n) for day, d, n in self._by_day if day == newest]
            rejected = sum(n for d, n in today if d == "rejected")
            self.newest_day = (newest, sum(n for _, n in today), rejected)

    _by_day: list[tuple[str, str, int]] = field(default_factory=list, repr=False, compare=False)

    def raw_rows(self, feed: str) -> int:
        return sum(self.processed.get(feed, {}).values())

    def to_dict(self) -> dict[str, Any]:
        """`banklake summary --json`'s counts, the same keys on both engines
        (docs/operations.md, Machine-readable output)."""
        return {
            "feeds": {
                feed: {
                    "raw_rows": self.raw_rows(feed),
                    **{d: self.processed.get(feed, {}).get(d, 0) for d in DISPOSITIONS},
                }
                for feed in FEEDS
            },
            "rejected": [
                {"feed": feed, "reason": reason, "rows": n} for feed, reason, n in self.rejected
            ],
            "quarantined_files": self.quarantined_files,
            "curated": dict(self.curated),
        }


def summarize(lake: Lake) -> LakeSummary:
    """The lake's counts from its DuckDB file; a lake not built yet says what to run."""
    if not lake.database.exists():
        raise FileNotFoundError(
            f"no database at {lake.database}: run `banklake build` (or `make demo`) first"
        )
    summary = LakeSummary()
    if lake.quarantine.exists():
        summary.quarantined_files = sum(1 for _ in lake.quarantine.rglob("*.reason.json"))
    try:
        con = duckdb.connect(str(lake.database), read_only=True)
    except duckdb.IOException as error:
        raise RuntimeError(
            f"cannot open {lake.database} read-only ({error}); is dbt writing to it?"
        ) from error
    try:
        _count(con, summary)
    except duckdb.CatalogException as error:
        missing = str(error).splitlines()[0]
        raise RuntimeError(
            f"{lake.database} is not built yet ({missing}): run `banklake build` "
            "(or `make demo`) first"
        ) from error
    finally:
        con.close()
    return summary


def _count(con: duckdb.DuckDBPyConnection, summary: LakeSummary) -> None:
    built = {
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'processed'"
        ).fetchall()
    }
    for feed in FEEDS:
        if f"stg_{feed}_triaged" not in built and "stg_transactions_triaged" in built:
            # a feed newer than the lake's last build (alert_verdicts): nothing triaged yet
            summary.processed[feed] = {}
            continue
        rows = con.execute(
            "select cast(ingestion_date as varchar), disposition, count(*) "
            f"from processed.stg_{feed}_triaged group by 1, 2"
        ).fetchall()
        summary.add_triaged(feed, rows)
    summary.rejected = [
        (feed, reason, n)
        for feed, reason, n in con.execute(
            "select feed, rejection_reason, count(*) from processed.stg_rejected_rows "
            "group by 1, 2 order by 1, 3 desc, 2"
        ).fetchall()
    ]
    tables = con.execute(
        "select table_name from information_schema.tables where table_schema = 'curated' order by 1"
    ).fetchall()
    for (table,) in tables:
        summary.curated[table] = one_row(con, f'select count(*) from curated."{table}"')[0]


def render(summary: LakeSummary, lake: Lake, *, docs: Path | None = None) -> str:
    lines = render_body(summary, "banklake: what is in the lake now", "lake/quarantine/")
    lines += ["", f"DuckDB file:   {lake.database}"]
    lines.append(f"curated files: {lake.curated}/")
    if docs is not None:
        lines.append(f"docs site:     {docs}")
    return "\n".join(lines)


def render_body(summary: LakeSummary, title: str, quarantine: str) -> list[str]:
    """Everything but where the data lives: the part both engines print the same way."""
    lines = ["", title, ""]
    lines.append(f"{'feed':<15}{'raw rows':>12}{'accepted':>12}{'duplicates':>12}{'rejected':>10}")
    for feed in FEEDS:
        counts = summary.processed.get(feed, {})
        lines.append(
            f"{feed:<15}{summary.raw_rows(feed):>12,}{counts.get('accepted', 0):>12,}"
            f"{counts.get('duplicate', 0):>12,}{counts.get('rejected', 0):>10,}"
        )
    if summary.rejected:
        lines += ["", "rejected rows by reason (processed.stg_rejected_rows):"]
        lines += [f"  {feed:<15}{reason:<28}{n:>8,}" for feed, reason, n in summary.rejected]
    if summary.quarantined_files:
        lines += ["", f"quarantined files: {summary.quarantined_files} ({quarantine})"]
    lines += ["", "curated marts (rows):"]
    lines += [f"  {table:<28}{n:>12,}" for table, n in summary.curated.items()]
    return lines
