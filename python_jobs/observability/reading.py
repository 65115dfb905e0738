"""The local EMF records back (lake/metrics/<job>/<day>.jsonl), one point per metric value.

Readers never wait for writers: a file is read as it is, a last line without its newline (a
write under way) or a line that is not an EMF record is skipped and counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_jobs.observability.catalog import BASE_DIMENSIONS
from python_jobs.observability.emf import metrics_dir


@dataclass(frozen=True)
class Point:
    emitted_at: datetime  # UTC, naive
    environment: str
    job: str
    metric: str
    unit: str
    value: float
    dimensions: dict[str, str]  # beyond Environment and Job
    properties: dict[str, Any]  # Day, ModelVersion, ... when the record has them

    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.dimensions.items()))
        return f"{self.metric} ({extra})" if extra else self.metric


@dataclass
class Points:
    points: list[Point] = field(default_factory=list)
    skipped_lines: int = 0


def read_points(lake_root: Path, *, days: int = 14) -> Points:
    """The points of the last `days` day files of every job, oldest first."""
    found = Points()
    root = metrics_dir(lake_root)
    if not root.is_dir():
        return found
    for job_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(job_dir.glob("*.jsonl"))[-days:]:
            _read_file(path, found)
    found.points.sort(key=lambda p: p.emitted_at)
    return found


def _read_file(path: Path, found: Points) -> None:
    try:
        data = path.read_bytes()
    except OSError:
        return
    lines = data.split(b"\n")
    if lines and lines[-1]:  # no newline yet: a write under way
        found.skipped_lines += 1
    for line in lines[:-1]:
        try:
            record = json.loads(line)
            found.points.extend(points_of(record))
        except (ValueError, KeyError, TypeError):
            found.skipped_lines += 1


def points_of(record: dict[str, Any]) -> list[Point]:
    meta = record["_aws"]
    emitted = datetime.fromtimestamp(meta["Timestamp"] / 1000, UTC).replace(tzinfo=None)
    out = []
    for directive in meta["CloudWatchMetrics"]:
        names = [n for dimension_set in directive["Dimensions"] for n in dimension_set]
        extra = {n: str(record[n]) for n in names if n not in BASE_DIMENSIONS}
        metric_names = {m["Name"] for m in directive["Metrics"]}
        properties = {
            k: v
            for k, v in record.items()
            if k != "_aws" and k not in metric_names and k not in names
        }
        for metric in directive["Metrics"]:
            out.append(
                Point(
                    emitted_at=emitted,
                    environment=str(record["Environment"]),
                    job=str(record["Job"]),
                    metric=metric["Name"],
                    unit=metric.get("Unit", "None"),
                    value=float(record[metric["Name"]]),
                    dimensions=extra,
                    properties=properties,
                )
            )
    return out


def latest_per_job(points: list[Point]) -> list[Point]:
    """Every job's newest emission (the points sharing its newest timestamp)."""
    newest: dict[str, datetime] = {}
    for point in points:
        newest[point.job] = max(newest.get(point.job, point.emitted_at), point.emitted_at)
    return [p for p in points if p.emitted_at == newest[p.job]]
