"""`_generator/manifest.json`: the reconciliation truth of what the generator wrote.

Counts are per ingestion day (the partition rows physically landed in) and per feed, plus
totals over all days. Tests and dbt reconciliations compare the lake against these
numbers, so every count here must be recountable from the raw files alone.
"""

from __future__ import annotations

import json
import os
from copy import deepcopy
from datetime import date
from typing import Any

from python_jobs.generate.faults import (
    ACCEPTED_TRANSACTION_FAULTS,
    DUPLICATE_DELIVERY,
    FEED_FAULTS,
    REJECTED_TRANSACTION_FAULTS,
)
from python_jobs.generate.fraud import SCENARIOS
from python_jobs.lake.layout import Lake

MANIFEST_FILE = "manifest.json"
Manifest = dict[str, Any]


def empty_day() -> dict[str, dict[str, Any]]:
    """A day's counts with every key present, so consumers never need defaults."""
    day: dict[str, dict[str, Any]] = {
        feed: {"rows_written": 0, "faults": dict.fromkeys(kinds, 0)}
        for feed, kinds in FEED_FAULTS.items()
    }
    day["transactions"]["fraud_transactions"] = 0
    day["transactions"]["fraud_by_scenario"] = dict.fromkeys(SCENARIOS, 0)
    day["fraud_reports"]["reports_by_scenario"] = dict.fromkeys(SCENARIOS, 0)
    day["customers"]["new_customers"] = 0
    return day


def _add(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def load_manifest(lake: Lake) -> Manifest:
    path = lake.generator_state / MANIFEST_FILE
    if path.exists():
        return json.loads(path.read_text())
    return {
        "format_version": 1,
        "fault_outcomes": {
            "transactions": {
                "duplicate": [DUPLICATE_DELIVERY],
                "accepted": list(ACCEPTED_TRANSACTION_FAULTS),
                "rejected": list(REJECTED_TRANSACTION_FAULTS),
            },
        },
        "runs": [],
        "days": {},
    }


def record_day(manifest: Manifest, day: date, counts: dict[str, dict[str, Any]]) -> None:
    manifest["days"][day.isoformat()] = counts


def finish(
    manifest: Manifest, *, settings: dict[str, Any], run: dict[str, Any], pending: dict[str, int]
) -> Manifest:
    """Recomputes totals from the days (a re-run of a day replaces it, never adds twice)."""
    manifest["days"] = dict(sorted(manifest["days"].items()))
    totals = empty_day()
    for counts in manifest["days"].values():
        _add(totals, counts)
    days = list(manifest["days"])
    manifest.update(
        settings=settings,
        first_day=days[0] if days else None,
        last_day=days[-1] if days else None,
        totals=totals,
        pending=pending,
    )
    manifest["runs"].append(run)
    return manifest


def save_manifest(lake: Lake, manifest: Manifest) -> None:
    folder = lake.generator_state
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{MANIFEST_FILE}"
    tmp.write_text(json.dumps(deepcopy(manifest), indent=2) + "\n")
    os.replace(tmp, folder / MANIFEST_FILE)
