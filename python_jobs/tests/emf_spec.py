"""The CloudWatch Embedded Metric Format specification as checks, written from the spec
(docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_
Specification.html), not from the writer: the tests hold every line the jobs emit to it, and
to the catalog's documented dimensions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from python_jobs.observability.catalog import CATALOG

# the spec's MetricDefinition Unit values (CloudWatch's StandardUnit)
SPEC_UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}
MAX_DIMENSIONS_PER_SET = 30
MAX_METRICS_PER_DIRECTIVE = 100
MAX_VALUES_PER_METRIC = 100


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def problems(record: Any) -> list[str]:
    """What in `record` breaks the EMF specification ([] when nothing)."""
    found: list[str] = []
    if not isinstance(record, dict):
        return ["the root is not a JSON object"]
    meta = record.get("_aws")
    if not isinstance(meta, dict):
        return ["no _aws metadata object"]
    if set(meta) - {"Timestamp", "CloudWatchMetrics", "LogGroupName"}:
        found.append(f"_aws has members the spec does not define: {sorted(meta)}")
    stamp = meta.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp <= 0:
        found.append(f"_aws.Timestamp {stamp!r} is not milliseconds since the epoch")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*found, "_aws.CloudWatchMetrics is not a non-empty array"]
    for directive in directives:
        if not isinstance(directive, dict):
            found.append("a MetricDirective is not an object")
            continue
        if set(directive) - {"Namespace", "Dimensions", "Metrics"}:
            found.append(f"a MetricDirective has extra members: {sorted(directive)}")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 1024:
            found.append(f"Namespace {namespace!r} is not a 1-1024 character string")
        sets = directive.get("Dimensions")
        if not isinstance(sets, list):
            found.append("Dimensions is not an array of DimensionSets")
            sets = []
        for dimension_set in sets:
            if not isinstance(dimension_set, list) or len(dimension_set) > MAX_DIMENSIONS_PER_SET:
                found.append(f"DimensionSet {dimension_set!r}: not an array of at most 30 names")
                continue
            for name in dimension_set:
                value = record.get(name) if isinstance(name, str) else None
                if not isinstance(value, str) or not 1 <= len(value) <= 1024:
                    found.append(f"dimension {name!r}: no 1-1024 character string at the root")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list) or len(metrics) > MAX_METRICS_PER_DIRECTIVE:
            found.append("Metrics is not an array of at most 100 MetricDefinitions")
            metrics = []
        for metric in metrics:
            if not isinstance(metric, dict) or set(metric) - {"Name", "Unit", "StorageResolution"}:
                found.append(f"MetricDefinition {metric!r} has members the spec does not define")
                continue
            name = metric.get("Name")
            if not isinstance(name, str) or not 1 <= len(name) <= 1024:
                found.append(f"metric Name {name!r} is not a 1-1024 character string")
                continue
            if "Unit" in metric and metric["Unit"] not in SPEC_UNITS:
                found.append(f"{name}: unit {metric['Unit']!r} is not a CloudWatch unit")
            if metric.get("StorageResolution", 60) not in (1, 60):
                found.append(f"{name}: StorageResolution must be 1 or 60")
            value = record.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > MAX_VALUES_PER_METRIC or not all(map(_number, values)):
                found.append(f"{name}: {value!r} at the root is not a number (or <=100 numbers)")
    return found


def documented(record: dict[str, Any]) -> list[str]:
    """What in `record` differs from the catalog: each metric's unit and dimension set."""
    found = []
    for directive in record["_aws"]["CloudWatchMetrics"]:
        if directive["Namespace"] != "banklake":
            found.append(f"namespace {directive['Namespace']}")
        for metric in directive["Metrics"]:
            entry = CATALOG.get(metric["Name"])
            if entry is None:
                found.append(f"{metric['Name']} is not in the catalog")
                continue
            if metric.get("Unit") != entry.unit:
                found.append(f"{metric['Name']}: unit {metric.get('Unit')}, catalog {entry.unit}")
            if directive["Dimensions"] != [list(entry.dimension_set)]:
                found.append(f"{metric['Name']}: dimensions {directive['Dimensions']}")
            if record["Job"] not in entry.jobs:
                found.append(f"{metric['Name']} emitted by {record['Job']}, not its catalog's")
    return found


def read_lines(path: Path) -> list[dict[str, Any]]:
    """A metrics file's records; NaN or Infinity (not JSON) and any bad line fail."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{path}: {constant} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def lake_records(lake_root: Path, job: str | None = None) -> list[dict[str, Any]]:
    """Every record under <lake>/metrics/ (of one job), each checked against the spec and
    the catalog: a failing one fails the calling test."""
    pattern = f"{job}/*.jsonl" if job else "*/*.jsonl"
    records = [
        r for path in sorted((lake_root / "metrics").glob(pattern)) for r in read_lines(path)
    ]
    for record in records:
        assert problems(record) == [], record
        assert documented(record) == [], record
    return records


def values(records: list[dict[str, Any]], metric: str, **dimensions: str) -> list[float]:
    """The values of `metric` in `records` (with those dimension values), oldest first."""
    return [
        r[metric]
        for r in records
        if metric in r and all(r.get(k) == v for k, v in dimensions.items())
    ]
