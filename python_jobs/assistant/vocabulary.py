"""Feature names in an investigator's words, and what kind of value each feature holds.

English wording is the project's reason-code seed (seeds/feature_reason_codes.csv, the same
words fct_fraud_alerts shows); Portuguese wording and the value kinds are in
templates/feature_words.csv. A test checks both cover every model feature.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from functools import cache
from typing import Any

from python_jobs.assistant.formatting import TEMPLATES_DIR
from python_jobs.dbt_runner import PROJECT_DIR

FEATURE_WORDS = TEMPLATES_DIR / "feature_words.csv"
REASON_CODES_SEED = PROJECT_DIR / "seeds" / "feature_reason_codes.csv"
# how a feature's value reads: amount (ln of the amount: shown as the amount), money, count,
# flag (0/1), hour, seconds, ratio (x times), zscore, share (a fraction, shown as %)
KINDS = ("amount", "money", "count", "flag", "hour", "seconds", "ratio", "zscore", "share")


@cache
def _feature_words() -> dict[str, dict[str, str]]:
    with FEATURE_WORDS.open(encoding="utf-8", newline="") as handle:
        return {row["feature"]: row for row in csv.DictReader(handle)}


@cache
def reason_codes() -> dict[str, dict[str, str]]:
    """feature -> {reason_code, description} from the seed."""
    with REASON_CODES_SEED.open(encoding="utf-8", newline="") as handle:
        return {row["feature"]: row for row in csv.DictReader(handle)}


def feature_kind(feature: str) -> str:
    return _feature_words().get(feature, {}).get("kind", "count")


def feature_label(feature: str, lang: str, fallback: str | None = None) -> str:
    """The feature in plain words: pt from feature_words.csv, en from the reason-code seed
    (or `fallback`, the description a mart already carries)."""
    if lang == "pt" and feature in _feature_words():
        return _feature_words()[feature]["pt"]
    if fallback:
        return fallback
    return reason_codes().get(feature, {}).get("description", feature)


def reason_code(feature: str) -> str:
    return reason_codes().get(feature, {}).get("reason_code", feature.upper())


def reason_words(reason: Mapping[str, Any], lang: str) -> str:
    """A score reason (a feature, with the seed's description as the fallback) in words."""
    return feature_label(reason["feature"], lang, fallback=reason.get("description"))
