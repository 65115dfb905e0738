"""Training/serving parity: what the service answered against what dbt and the batch job compute.

After a replay (`banklake stream`) and a build of the lake the service streamed into, every
answered transaction has a row in `ml_features` and, for the replayed day, a batch score.
They must agree: features exactly (floats to 1e-9 relative), scores to 1e-9 relative.

One honest exception: a row that arrived after a transaction but belongs to its past (a late
delivery, or a row of the same instant delivered after it) was not there when the service
answered, while dbt sees it. Such transactions are "touched by late rows": counted and
reported apart, and they are the only ones allowed to differ.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from ml.features import FEATURES
from ml.layout import MlLayout
from ml.score import read_scores
from python_jobs.assistant.warehouse import view_sql
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import current
from python_jobs.serve.state import DAY, RETENTION_DAYS

REL_TOL = 1e-9


@dataclass
class ParityReport:
    answered: int = 0  # accepted transactions (first answers)
    compared: int = 0  # of those, found in ml_features
    missing: list[str] = field(default_factory=list)  # answered, not in ml_features
    touched: set[str] = field(default_factory=set)  # whose past holds a later-arriving row
    feature_mismatches: dict[str, list[str]] = field(default_factory=dict)  # tid -> features
    scores_compared: int = 0
    score_mismatches: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def untouched_mismatches(self) -> list[str]:
        bad = set(self.feature_mismatches) | set(self.score_mismatches)
        return sorted(bad - self.touched)

    def summary(self) -> str:
        return (
            f"{self.answered:,} transactions answered, {self.compared:,} compared with "
            f"ml_features ({len(self.missing):,} missing): "
            f"{len(self.feature_mismatches):,} differ, all among the "
            f"{len(self.touched):,} touched by late rows"
            if not self.untouched_mismatches
            else f"{len(self.untouched_mismatches):,} transactions differ without a late row: "
            f"{self.untouched_mismatches[:5]}"
        ) + (
            f"; scores: {self.scores_compared:,} compared with the batch job, "
            f"{len(self.score_mismatches):,} differ"
        )


def same(served: Any, built: Any) -> bool:
    if served is None or built is None:
        return served is None and built is None
    if isinstance(served, bool) or isinstance(built, bool):
        return bool(served) == bool(built)
    return math.isclose(float(served), float(built), rel_tol=REL_TOL, abs_tol=1e-12)


def _answers(path: Path) -> list[dict[str, Any]]:
    """The first accepted answer of each transaction, in arrival order, and the reports."""
    out, seen = [], set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            body = entry["body"]
            if entry["status"] != 200:
                continue
            if entry["kind"] == "report":
                out.append({"kind": "report", **body})
            elif body["transaction_id"] not in seen:
                seen.add(body["transaction_id"])
                out.append({"kind": "transaction", **body})
    return out


def late_touched(
    arrivals: list[dict[str, Any]], keys: dict[str, tuple[str, str | None, str | None]]
) -> set[str]:
    """Transactions whose window history (same customer, counterparty or device, up to the
    state's retention back) holds a row or a report that arrived after them."""
    groups: dict[tuple[str, str], list[tuple[int, int, str]]] = defaultdict(list)
    reports: list[tuple[int, int, str]] = []
    for position, entry in enumerate(arrivals):
        if entry["kind"] == "report":
            reports.append((position, _epoch(entry["reported_at"]), entry["transaction_id"]))
            continue
        tid = entry["transaction_id"]
        customer, counterparty, device = keys.get(tid, (None, None, None))
        t = _epoch(entry["event_ts"])
        for kind, value in (("c", customer), ("k", counterparty), ("d", device)):
            if value is not None:
                groups[(kind, value)].append((position, t, tid))
    touched: set[str] = set()
    reach = RETENTION_DAYS * DAY
    for rows in groups.values():
        for position, t, tid in rows:
            if any(p > position and t - reach < u <= t for p, u, _ in rows):
                touched.add(tid)
    # a report made by a transaction's time but delivered after it: its counterparty's rows
    counterparty_of = {tid: keys.get(tid, (None, None, None))[1] for tid in keys}
    for position, reported, reported_tid in reports:
        counterparty = counterparty_of.get(reported_tid)
        if counterparty is None:
            continue
        for p, t, tid in groups.get(("k", counterparty), []):
            if p < position and reported <= t:
                touched.add(tid)
    return touched


def _epoch(text: str) -> int:
    return int((datetime.fromisoformat(text) - datetime(1970, 1, 1)).total_seconds())


def check(answers: Path, lake: Lake, day: date) -> ParityReport:
    """Compares the answers of a replay with the built lake (published export) and the batch
    scores of `day`."""
    arrivals = _answers(answers)
    transactions = [a for a in arrivals if a["kind"] == "transaction"]
    report = ParityReport(answered=len(transactions))
    version = current(lake)
    con = duckdb.connect(":memory:")
    try:
        con.execute("create schema curated")
        for mart in ("ml_features", "fct_transactions"):
            con.execute(view_sql(version, version.marts[mart]))
        ids = [a["transaction_id"] for a in transactions]
        con.execute("create temp table answered (transaction_id varchar)")
        con.executemany("insert into answered values (?)", [[i] for i in ids])
        built = {
            row[0]: row[1:]
            for row in con.execute(
                f"select f.transaction_id, {', '.join('f.' + n for n in FEATURES)} "
                "from curated.ml_features f join answered using (transaction_id)"
            ).fetchall()
        }
        keys = {
            row[0]: (row[1], row[2], row[3])
            for row in con.execute(
                "select transaction_id, customer_id, counterparty_key, device_id "
                "from curated.fct_transactions join answered using (transaction_id)"
            ).fetchall()
        }
    finally:
        con.close()
    report.touched = late_touched(arrivals, keys)
    for answer in transactions:
        tid = answer["transaction_id"]
        row = built.get(tid)
        if row is None:
            report.missing.append(tid)
            continue
        report.compared += 1
        served = answer["features"]
        wrong = [n for n, b in zip(FEATURES, row, strict=True) if not same(served[n], b)]
        if wrong:
            report.feature_mismatches[tid] = wrong
    scores = read_scores(MlLayout(lake), day)
    batch = dict(zip(scores["transaction_id"], scores["score"], strict=True))
    for answer in transactions:
        tid = answer["transaction_id"]
        if tid in batch:
            report.scores_compared += 1
            if not math.isclose(answer["score"], batch[tid], rel_tol=REL_TOL, abs_tol=1e-12):
                report.score_mismatches[tid] = (answer["score"], float(batch[tid]))
    return report
