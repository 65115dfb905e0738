"""The reference values the processed layer validates raw rows against, read from dbt's seeds.

A mapping's `defaults:` fill every row of an imported file, so a default dbt would reject
(say `type: TRANSFER`) would reject the whole import. Checking defaults against the very
seeds dbt uses turns that into one clear mapping error, and keeps a single source of truth.
"""

from __future__ import annotations

import csv
import re
from functools import cache

from python_jobs.dbt_runner import PROJECT_DIR

SEEDS_DIR = PROJECT_DIR / "seeds"
# RE2's \s (DuckDB, Athena) is [\t\n\f\r ]; Python's would also match other Unicode blanks
_BLANKS = re.compile(r"[\t\n\f\r _-]+")


@cache
def seed_values(seed: str, column: str) -> frozenset[str]:
    """Every value of `column` in seeds/<seed>.csv."""
    with (SEEDS_DIR / f"{seed}.csv").open(newline="", encoding="utf-8") as handle:
        return frozenset(row[column] for row in csv.DictReader(handle))


@cache
def alias_keys(domain: str) -> frozenset[str]:
    """The spellings seeds/value_aliases.csv maps for a domain (transaction_type, channel)."""
    with (SEEDS_DIR / "value_aliases.csv").open(newline="", encoding="utf-8") as handle:
        return frozenset(
            row["raw_value"] for row in csv.DictReader(handle) if row["domain"] == domain
        )


def normalize_key(value: str) -> str:
    """Python twin of macros/staging/normalize_key.sql: how dbt looks a spelling up."""
    return _BLANKS.sub(" ", value.lower()).strip(" ")
