"""What the dashboard reads from the lake's files rather than from the marts: each is a file
some job writes whole (monitoring reports, model versions, quarantine notes, the dbt run
history), never the database dbt writes.

- monitoring: `banklake monitor`'s reports, through report_facts' MonitoringReports (the lake's
  folder locally, monitoring/ on S3 for the Athena target);
- the champion, its history and every version's metrics and card (ml's model folder);
- quarantined files with their reasons (redacted: a reason may quote the bad value);
- the last dbt runs (python_jobs/dbt_runs.py) and the raw sources' freshness thresholds
  (dbt's manifest).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ml.features import FEATURES
from ml.layout import MlLayout
from python_jobs.assistant.report_facts import MonitoringReports
from python_jobs.assistant.schema_context import default_target_dir
from python_jobs.dashboard.text import redact
from python_jobs.lake.layout import Lake
from python_jobs.lake.validate import REASON_SUFFIX

# --- monitoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float | None
    status: str  # "judged", "warming up", "not judged", "not monitored"
    note: str | None  # why a warming-up feature is not judged yet


@dataclass(frozen=True)
class Monitoring:
    day: str
    model_version: str
    verdict: str
    findings: list[str]
    score_psi: float | None
    alert_rate: float | None
    expected_alert_rate: float | None
    psi_warning: float
    psi_drift: float
    features: list[FeatureDrift]


def latest_monitoring(reports: MonitoringReports, day: date | None = None) -> Monitoring | None:
    """The newest monitoring report (on or before `day`), every feature of the model's list
    (ml.features.FEATURES, in its order; others the report has after them) with its PSI and
    whether monitoring judged it: warming-up features are marked, not hidden."""
    days = sorted(d for d in reports.days() if day is None or d <= day.isoformat())
    if not days:
        return None
    report = reports.read(days[-1])
    config = report.get("config", {})
    psi: dict[str, float] = report.get("feature_psi", {})
    warming: dict[str, str] = report.get("warming_up", {})
    not_judged = set(config.get("psi_not_judged", []))
    names = [*FEATURES, *(name for name in psi if name not in FEATURES)]
    features = []
    for name in names:
        if name in warming:
            status, note = "warming up", str(warming[name])
        elif name in not_judged:
            status, note = "not judged", "its PSI on one day is large by construction"
        elif name in psi:
            status, note = "judged", None
        else:
            status, note = "not monitored", "not in this report (a feature newer than the model?)"
        features.append(FeatureDrift(name, psi.get(name), status, note))
    return Monitoring(
        day=str(report["day"]),
        model_version=str(report["model_version"]),
        verdict=str(report["verdict"]),
        findings=[str(f) for f in report.get("findings", [])],
        score_psi=report.get("score_psi"),
        alert_rate=report.get("alert_rate"),
        expected_alert_rate=report.get("expected_alert_rate"),
        psi_warning=float(config.get("psi_warning", 0.1)),
        psi_drift=float(config.get("psi_drift", 0.2)),
        features=features,
    )


# --- the model: champion, history, versions, card ---------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    version: str
    created_at: str | None
    threshold: float | None
    metrics: dict[str, dict[str, float]]  # model -> metric -> value (numbers only)
    card: str | None  # the model card's text, images left out


@dataclass(frozen=True)
class ModelRegistry:
    champion: str | None
    since: str | None
    history: list[dict[str, Any]]  # version, since, reason: every promotion
    versions: list[ModelVersion]  # newest first


_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")


def model_registry(lake: Lake) -> ModelRegistry:
    """What the model folder holds. Metrics are read generically: every number the metadata
    records per model (the keys change with the training code, the page does not)."""
    layout = MlLayout(lake)
    champion: dict[str, Any] = {}
    if layout.champion_file.is_file():
        champion = json.loads(layout.champion_file.read_text(encoding="utf-8"))
    versions = []
    folders = sorted((p for p in layout.models.glob("*") if p.is_dir()), reverse=True)
    for folder in folders:
        metadata_file = folder / "metadata.json"
        if not metadata_file.is_file():
            continue
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        metrics = {
            str(model): {
                str(k): float(v)
                for k, v in values.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            for model, values in (metadata.get("metrics") or {}).items()
            if isinstance(values, dict)
        }
        threshold = metadata.get("threshold")
        if isinstance(threshold, dict):
            threshold = threshold.get("value")
        card_file = folder / "model_card.md"
        card = None
        if card_file.is_file():
            card = _IMAGE.sub("", card_file.read_text(encoding="utf-8"))
        versions.append(
            ModelVersion(
                version=folder.name,
                created_at=metadata.get("created_at"),
                threshold=float(threshold) if isinstance(threshold, int | float) else None,
                metrics=metrics,
                card=card,
            )
        )
    return ModelRegistry(
        champion=champion.get("version"),
        since=champion.get("since"),
        history=list(champion.get("history", [])),
        versions=versions,
    )


# --- quarantine -------------------------------------------------------------------------------


def quarantined_files(lake: Lake) -> list[dict[str, Any]]:
    """Every quarantined file with its note (validate.py), newest first, reasons redacted."""
    notes = []
    for path in lake.quarantine.rglob(f"*{REASON_SUFFIX}") if lake.quarantine.exists() else []:
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            note = {"reason": "the reason note cannot be read"}
        notes.append(
            {
                "quarantined_at": note.get("quarantined_at"),
                "feed": note.get("feed"),
                "file": note.get("file") or str(path.relative_to(lake.root)),
                "reason": redact(note.get("reason", "")),
                "size_bytes": note.get("size_bytes"),
            }
        )
    return sorted(notes, key=lambda n: str(n["quarantined_at"]), reverse=True)


# --- source freshness -------------------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    warn_hours: float | None
    error_hours: float | None


_HOURS = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}


def source_freshness(
    feeds: tuple[str, ...], target_dir: Path | None = None
) -> dict[str, Freshness]:
    """The raw sources' freshness thresholds as dbt declares them (models/processed/
    _sources.yml, read from dbt's manifest); none for a feed without one (alert verdicts)."""
    manifest_file = (target_dir or default_target_dir()) / "manifest.json"
    sources: dict[str, Any] = {}
    if manifest_file.is_file():
        sources = json.loads(manifest_file.read_text(encoding="utf-8")).get("sources", {})
    found = {}
    for feed in feeds:
        node: dict[str, Any] = next(
            (s for s in sources.values() if s.get("source_name") == "raw" and s["name"] == feed),
            {},
        )
        freshness = node.get("freshness") or {}
        found[feed] = Freshness(
            _hours(freshness.get("warn_after")), _hours(freshness.get("error_after"))
        )
    return found


def _hours(rule: dict[str, Any] | None) -> float | None:
    if not rule or rule.get("count") is None or rule.get("period") not in _HOURS:
        return None
    return float(rule["count"]) * _HOURS[rule["period"]]
