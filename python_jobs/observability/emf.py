"""EMF records (CloudWatch Embedded Metric Format) and where they go.

A job calls `emit(job, figures, lake=...)` once with what it measured. The figures are grouped
by their dimension values (an EMF record has one value per dimension, at its root), up to 100
metrics a record (the specification's limit), each record:

    {"_aws": {"Timestamp": <ms>, "CloudWatchMetrics": [{"Namespace": "banklake",
       "Dimensions": [["Environment", "Job", ...]], "Metrics": [{"Name": ..., "Unit": ...}]}]},
     "Environment": "local", "Job": "score", <metric>: <number>, ..., <properties>}

Where they go ($BANKLAKE_METRICS): `lake`, appended as JSON lines to
<lake>/metrics/<job>/<UTC day>.jsonl (the dashboard reads them); `log`, one line each on
stderr, which Lambda, CodeBuild and ECS ship to CloudWatch Logs, where the records become
metrics (stderr, not stdout: stdout carries commands' own output, `--json` documents and
`banklake summary > file`); `both`; `off`. Unset: `log` when running in Lambda, CodeBuild or
ECS (their own environment variables say so), else `lake`.

Appends are one write(2) on a file opened O_APPEND: concurrent writers never interleave
within a line and never overwrite one another, and a reader is never blocked (it skips a last
line still being written; reading.py). Failing to write a metric is logged, never raised: a
job's result matters more than its figures. A figure the catalog does not declare for the
job, or with other dimensions than declared, is a programming error and raises.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_jobs.observability.catalog import (
    CATALOG,
    JOBS,
    NAMESPACE,
    PROPERTIES,
)

SINK_ENV = "BANKLAKE_METRICS"
ENVIRONMENT_ENV = "BANKLAKE_ENVIRONMENT"
SINKS = ("lake", "log", "both", "off")
# set by the AWS runtimes the jobs run in: Lambda, CodeBuild, ECS (Fargate or EC2)
AWS_RUNTIME_MARKERS = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "CODEBUILD_BUILD_ID",
    "ECS_CONTAINER_METADATA_URI_V4",
)
MAX_METRICS_PER_RECORD = 100  # the EMF specification's limit per MetricDirective
# dimension values from closed vocabularies: a short code, never free text (no PII)
_DIMENSION_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:+-]{0,127}$")

log = logging.getLogger("banklake.metrics")


@dataclass(frozen=True)
class Figure:
    """One measured value: a catalog metric, its number (None: not measurable this time, not
    emitted) and the dimensions its catalog entry declares beyond Environment and Job."""

    name: str
    value: float | int | None
    dimensions: Mapping[str, str] = field(default_factory=dict)


def metrics_dir(lake_root: Path) -> Path:
    return lake_root / "metrics"


def environment() -> str:
    return os.environ.get(ENVIRONMENT_ENV) or "local"


def sink() -> str:
    configured = os.environ.get(SINK_ENV, "").strip().lower()
    if configured:
        if configured not in SINKS:
            raise ValueError(f"${SINK_ENV}={configured!r}: choose one of {', '.join(SINKS)}")
        return configured
    return "log" if any(os.environ.get(m) for m in AWS_RUNTIME_MARKERS) else "lake"


def records(
    job: str,
    figures: Iterable[Figure],
    *,
    properties: Mapping[str, str | float | int] | None = None,
    now: datetime | None = None,
    env: str | None = None,
) -> list[dict[str, Any]]:
    """The EMF records of `figures` (checked against the catalog), one per dimension set."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}: the catalog's jobs are {', '.join(JOBS)}")
    extra = dict(properties or {})
    unknown = set(extra) - set(PROPERTIES)
    if unknown:
        raise ValueError(f"unknown record properties {sorted(unknown)}: allowed {PROPERTIES}")
    stamp = int((now or datetime.now(UTC)).timestamp() * 1000)
    base = {"Environment": env or environment(), "Job": job}
    groups: dict[tuple[tuple[str, str], ...], dict[str, float | int]] = {}
    for figure in figures:
        if figure.value is None:
            continue
        _check(job, figure)
        key = tuple(sorted(figure.dimensions.items()))
        values = groups.setdefault(key, {})
        if figure.name in values:
            raise ValueError(f"{figure.name} {dict(key)} given twice in one emission")
        values[figure.name] = figure.value
    out = []
    for key, values in groups.items():
        names = list(values)
        for start in range(0, len(names), MAX_METRICS_PER_RECORD):
            chunk = names[start : start + MAX_METRICS_PER_RECORD]
            # every metric of the group has these dimensions: in the catalog's order
            dimension_set = list(CATALOG[chunk[0]].dimension_set)
            record: dict[str, Any] = {
                "_aws": {
                    "Timestamp": stamp,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            "Dimensions": [dimension_set],
                            "Metrics": [{"Name": n, "Unit": CATALOG[n].unit} for n in chunk],
                        }
                    ],
                },
                **base,
                **dict(key),
                **extra,
            }
            record.update({n: values[n] for n in chunk})
            out.append(record)
    return out


def _check(job: str, figure: Figure) -> None:
    metric = CATALOG.get(figure.name)
    if metric is None:
        raise ValueError(f"{figure.name} is not in the metrics catalog")
    if job not in metric.jobs:
        raise ValueError(f"{figure.name} is not declared for job {job} (catalog: {metric.jobs})")
    if tuple(sorted(figure.dimensions)) != tuple(sorted(metric.dimensions)):
        raise ValueError(
            f"{figure.name}: dimensions {sorted(figure.dimensions)}, the catalog declares "
            f"{sorted(metric.dimensions)}"
        )
    for name, code in figure.dimensions.items():
        if not isinstance(code, str) or not _DIMENSION_VALUE.match(code):
            raise ValueError(f"{figure.name}: dimension {name}={code!r} is not a short code")
    value = figure.value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{figure.name}: value {value!r} is not a finite number")


def emit(
    job: str,
    figures: Iterable[Figure],
    *,
    lake: Path | None = None,
    properties: Mapping[str, str | float | int] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Builds the records and sends them where $BANKLAKE_METRICS says; returns them.
    `lake`: the lake's root folder (None: no local copy, e.g. a Lambda's)."""
    made = records(job, figures, properties=properties, now=now)
    if not made:
        return made
    where = sink()
    lines = "".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n" for r in made)
    if where in ("lake", "both") and lake is not None:
        stamp = datetime.fromtimestamp(made[0]["_aws"]["Timestamp"] / 1000, UTC)
        path = metrics_dir(lake) / job / f"{stamp:%Y-%m-%d}.jsonl"
        try:
            append(path, lines)
        except OSError as error:
            log.warning("metrics of %s not written to %s: %s", job, path, error)
    if where in ("log", "both"):
        try:
            sys.stderr.write(lines)
            sys.stderr.flush()
        except (OSError, ValueError) as error:  # a closed stream
            log.warning("metrics of %s not logged: %s", job, error)
    return made


def append(path: Path, text: str) -> None:
    """Appends whole lines in one write(2) to a file opened O_APPEND (see the module doc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it whole; a short write goes on
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)
