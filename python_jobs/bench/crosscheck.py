"""The pandas reference against dbt's tables: a benchmark that compares different work is
worthless, so the run fails loudly when they disagree.

Compared: every raw row's disposition and rejection reason (counts per pair), the accepted
rows' totals (count, cents), window totals over every transaction (in ml_features, and in
the windows analysis the bench times as the same work), and, for a sample of customers,
every transaction's six window values row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from python_jobs.bench.pandas_ref import WINDOW_COLUMNS
from python_jobs.lake.query import one_row


class CrossCheckFailed(RuntimeError):
    """pandas and dbt produced different numbers from the same raw data."""


@dataclass
class CrossCheck:
    dispositions: dict[str, int]  # "accepted", "duplicate", "rejected:<reason>" -> rows
    accepted_rows: int
    sampled_customers: int
    sampled_transactions: int
    mismatches: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "agrees": self.agrees,
            "dispositions": self.dispositions,
            "accepted_rows": self.accepted_rows,
            "sampled_customers": self.sampled_customers,
            "sampled_transactions": self.sampled_transactions,
            "mismatches": self.mismatches,
        }


def _disposition_counts(frame: pd.DataFrame) -> dict[str, int]:
    keys = frame["disposition"].where(
        frame["disposition"] != "rejected", "rejected:" + frame["rejection_reason"].astype(str)
    )
    return {str(k): int(v) for k, v in keys.value_counts().sort_index().items()}


def window_totals(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, list[int]]:
    """`relation`'s rows and the sum of each window column over them (amounts in cents)."""
    parts = []
    for column in WINDOW_COLUMNS:
        value = f"round({column} * 100)" if "amount" in column else column
        parts.append(f"cast(sum({value}) as hugeint) as {column}")
    rows, *totals = one_row(con, f"select count(*), {', '.join(parts)} from {relation}")
    return int(rows), [int(total or 0) for total in totals]


def cross_check(
    database: Path,
    staged: pd.DataFrame,
    windows: pd.DataFrame,
    *,
    sample_customers: int,
    seed: int,
    same_work: tuple[int, list[int]] | None = None,
) -> CrossCheck:
    """Compares pandas' staged rows and windows with processed.stg_transactions_triaged and
    curated.ml_features (only the columns named in pandas_ref, whatever else the mart has),
    and with `same_work` (rows and window_totals of the windows analysis) when given."""
    accepted = staged.loc[staged["disposition"] == "accepted"]
    with duckdb.connect(str(database), read_only=True) as con:
        dbt_dispositions = con.execute(
            "select disposition || coalesce(':' || rejection_reason, '') as k, count(*) "
            "from processed.stg_transactions_triaged group by 1 order by 1"
        ).fetchall()
        dbt_accepted = one_row(
            con,
            "select count(*), cast(sum(round(amount_brl * 100)) as hugeint) "
            "from processed.stg_transactions",
        )
        dbt_totals = window_totals(con, "curated.ml_features")
        customers = np.sort(accepted["customer_id"].unique())
        rng = np.random.default_rng(seed)
        chosen = rng.choice(customers, size=min(sample_customers, customers.size), replace=False)
        con.register("chosen", pd.DataFrame({"customer_id": chosen}))
        dbt_rows = con.execute(
            f"select transaction_id, {', '.join(WINDOW_COLUMNS)} from curated.ml_features "
            "where customer_id in (select customer_id from chosen)"
        ).df()

    mismatches: list[str] = []
    pandas_dispositions = _disposition_counts(staged)
    if pandas_dispositions != dict(dbt_dispositions):
        mismatches.append(
            f"dispositions differ: pandas {pandas_dispositions}, dbt {dict(dbt_dispositions)}"
        )
    pandas_accepted = (len(accepted), int(accepted["amount_cents"].sum()))
    if pandas_accepted != (dbt_accepted[0], int(dbt_accepted[1] or 0)):
        mismatches.append(
            f"accepted (rows, cents) differ: pandas {pandas_accepted}, dbt {tuple(dbt_accepted)}"
        )
    mismatches += _compare_totals(windows, "ml_features", *dbt_totals)
    if same_work is not None:
        mismatches += _compare_totals(windows, "the windows analysis", *same_work)
    mismatches += _compare_sample(windows.loc[windows["customer_id"].isin(chosen)], dbt_rows)
    return CrossCheck(
        dispositions=pandas_dispositions,
        accepted_rows=len(accepted),
        sampled_customers=int(chosen.size),
        sampled_transactions=len(dbt_rows),
        mismatches=mismatches,
    )


def _compare_totals(windows: pd.DataFrame, name: str, rows: int, totals: list[int]) -> list[str]:
    problems = []
    if len(windows) != rows:
        problems.append(f"window rows differ: pandas {len(windows)}, {name} {rows}")
    for column, total in zip(WINDOW_COLUMNS, totals, strict=True):
        pandas_total = int(windows[column].sum())
        if pandas_total != total:
            problems.append(f"total {column}: pandas {pandas_total}, {name} {total}")
    return problems


def _compare_sample(pandas_rows: pd.DataFrame, dbt_rows: pd.DataFrame) -> list[str]:
    dbt_rows = dbt_rows.copy()
    for column in WINDOW_COLUMNS:
        if "amount" in column:
            dbt_rows[column] = (dbt_rows[column] * 100).round()
        dbt_rows[column] = dbt_rows[column].astype("int64")
    merged = pandas_rows.merge(
        dbt_rows, on="transaction_id", how="outer", suffixes=("_pandas", "_dbt"), indicator=True
    )
    problems = []
    missing = merged.loc[merged["_merge"] != "both", ["transaction_id", "_merge"]]
    if len(missing):
        problems.append(
            f"{len(missing)} sampled transactions only on one side, e.g. "
            + ", ".join(f"{r.transaction_id} ({r._merge})" for r in missing.head(5).itertuples())
        )
    both = merged.loc[merged["_merge"] == "both"]
    for column in WINDOW_COLUMNS:
        differ = both.loc[both[f"{column}_pandas"] != both[f"{column}_dbt"]]
        if len(differ):
            first = differ.iloc[0]
            problems.append(
                f"{column}: {len(differ)} sampled rows differ, e.g. {first['transaction_id']}: "
                f"pandas {first[f'{column}_pandas']}, dbt {first[f'{column}_dbt']}"
            )
    return problems


def require_agreement(check: CrossCheck) -> CrossCheck:
    if not check.agrees:
        raise CrossCheckFailed(
            "pandas and dbt disagree on the same data:\n  " + "\n  ".join(check.mismatches)
        )
    return check
