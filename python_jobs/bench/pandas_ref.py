"""The pandas reference: what a team would write without dbt, doing the same work as the
dbt models, so that the benchmark compares like with like.

- `stage_transactions`: stg_transactions_triaged's typing, normalization (trim, blanks to
  null, seeds/value_aliases.csv lookups on the normalized key), rejection reasons in the same
  order, and its dedup (the first valid delivery of a transaction_id by ingested_at,
  source_file, source_row is accepted, later ones are duplicates).
- `customer_windows`: ml_features' cust_tx_count_{1,7,30}d and cust_amount_sum_{1,7,30}d over
  the accepted transactions: the previous N days (event_ts - N days, event_ts], without the
  transaction itself; other transactions at the same instant are in (ml/features.py,
  macros/cross_db/rolling_window.sql).

Idiomatic pandas: vectorized string methods, groupby + rolling on a time offset. Amounts
are integer cents, as a bank team would keep money, so sums are exact like dbt's decimals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WINDOW_DAYS = (1, 7, 30)
WINDOW_COLUMNS = tuple(
    f"cust_{kind}_{days}d" for days in WINDOW_DAYS for kind in ("tx_count", "amount_sum")
)
RAW_COLUMNS = [
    "transaction_id",
    "account_id",
    "customer_id",
    "event_ts",
    "transaction_type",
    "channel",
    "direction",
    "amount",
    "status",
    "_source_file",
    "_source_row",
    "_ingested_at",
]
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def read_raw_transactions(raw_transactions: Path) -> pd.DataFrame:
    """Every raw transactions file with its ingestion date (from the Hive partition)."""
    frame = pd.read_parquet(raw_transactions, columns=[*RAW_COLUMNS, "year", "month", "day"])
    parts = frame[["year", "month", "day"]].astype("int64")
    frame["ingestion_date"] = pd.to_datetime(parts)
    return frame.drop(columns=["year", "month", "day"])


def load_aliases(seed_csv: Path) -> dict[str, dict[str, str]]:
    """domain -> {normalized raw value: canonical value}, from the dbt seed itself."""
    aliases = pd.read_csv(seed_csv, dtype=str, keep_default_na=False)
    return {
        domain: dict(zip(group["raw_value"], group["canonical_value"], strict=True))
        for domain, group in aliases.groupby("domain")
    }


def _trim(text: pd.Series) -> pd.Series:
    return text.str.strip(" ")  # SQL trim: spaces only


def _blank_to_null(text: pd.Series) -> pd.Series:
    trimmed = _trim(text)
    return trimmed.mask(trimmed == "")


def normalize_key(text: pd.Series) -> pd.Series:
    """macros/staging/normalize_key.sql: lower case, runs of blanks, _ and - to one space."""
    return text.str.lower().str.replace(r"[\s_-]+", " ", regex=True).str.strip(" ")


def _cents(amount: pd.Series) -> pd.Series:
    number = pd.to_numeric(_trim(amount), errors="coerce")
    number = number.where(np.isfinite(number))
    return (number * 100).round().astype("Int64")


def stage_transactions(raw: pd.DataFrame, aliases: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Typed, normalized raw rows with `rejection_reason` and `disposition`, one per raw row."""
    staged = pd.DataFrame(
        {
            "transaction_id": _blank_to_null(raw["transaction_id"]),
            "account_id": _blank_to_null(raw["account_id"]),
            "customer_id": _blank_to_null(raw["customer_id"]),
            "event_ts": pd.to_datetime(
                _trim(raw["event_ts"]), format=TIMESTAMP_FORMAT, errors="coerce"
            ),
            "transaction_type": normalize_key(raw["transaction_type"]).map(
                aliases["transaction_type"]
            ),
            "channel": normalize_key(raw["channel"]).map(aliases["channel"]),
            "direction": _trim(raw["direction"]).str.lower(),
            "amount_cents": _cents(raw["amount"]),
            "status": _trim(raw["status"]).str.lower(),
            "ingestion_date": raw["ingestion_date"],
            "ingested_at": raw["_ingested_at"],
            "source_file": raw["_source_file"],
            "source_row": raw["_source_row"],
        }
    )
    staged["rejection_reason"] = _rejection_reason(staged, raw)
    return _triage(staged)


def _rejection_reason(staged: pd.DataFrame, raw: pd.DataFrame) -> pd.Series:
    """The first rule a row breaks, in stg_transactions_triaged's order (null: valid)."""
    rules = [
        ("missing_transaction_id", staged["transaction_id"].isna()),
        ("missing_account_id", staged["account_id"].isna()),
        ("missing_customer_id", staged["customer_id"].isna()),
        ("missing_event_ts", _blank_to_null(raw["event_ts"]).isna()),
        ("unparseable_event_ts", staged["event_ts"].isna()),
        ("missing_amount", _blank_to_null(raw["amount"]).isna()),
        ("unparseable_amount", staged["amount_cents"].isna()),
        ("non_positive_amount", staged["amount_cents"].fillna(1) <= 0),
        ("unknown_transaction_type", staged["transaction_type"].isna()),
        ("unknown_channel", staged["channel"].isna()),
        ("unknown_direction", ~staged["direction"].isin(["inbound", "outbound"])),
        ("unknown_status", ~staged["status"].isin(["approved", "declined"])),
    ]
    conditions = [rule.fillna(False).to_numpy(dtype=bool) for _, rule in rules]
    reasons = np.select(conditions, [name for name, _ in rules], default="")
    return pd.Series(reasons, index=staged.index).replace("", None)


def _triage(staged: pd.DataFrame) -> pd.DataFrame:
    """accepted / duplicate / rejected: the first valid delivery of each id is accepted."""
    staged = staged.sort_values(["ingested_at", "source_file", "source_row"], kind="stable")
    valid = staged["rejection_reason"].isna()
    repeated = staged["transaction_id"].where(valid).duplicated() & valid
    staged["disposition"] = np.where(
        ~valid, "rejected", np.where(repeated, "duplicate", "accepted")
    )
    return staged


def accepted(staged: pd.DataFrame) -> pd.DataFrame:
    """stg_transactions: the accepted rows."""
    return staged.loc[staged["disposition"] == "accepted"]


def customer_windows(transactions: pd.DataFrame) -> pd.DataFrame:
    """transaction_id, customer_id and the six window columns, one row per transaction.

    groupby + rolling(offset) gives (event_ts - N days, event_ts] over the rows up to the
    current one; for transactions at the same instant the last of them sees all of them, so
    its value is given to every one, and each then takes out its own count and amount.
    Amount sums are in cents."""
    frame = transactions[["transaction_id", "customer_id", "event_ts", "amount_cents"]]
    frame = frame.sort_values(["customer_id", "event_ts"], kind="stable").reset_index(drop=True)
    cents = frame["amount_cents"].astype("int64")
    values = frame[["customer_id", "event_ts"]].assign(tx=1.0, cents=cents.astype("float64"))
    result = frame[["transaction_id", "customer_id", "event_ts"]].copy()
    grouped = values.groupby("customer_id", sort=False)
    same_instant = [frame["customer_id"], frame["event_ts"]]
    for days in WINDOW_DAYS:
        rolled = grouped.rolling(f"{days}D", on="event_ts")[["tx", "cents"]].sum()
        # rows come back grouped by customer in order of appearance: the frame's own order
        rolled = rolled.reset_index(drop=True)
        at_instant = rolled.groupby(same_instant, sort=False).transform("last")
        result[f"cust_tx_count_{days}d"] = at_instant["tx"].astype("int64") - 1
        result[f"cust_amount_sum_{days}d"] = at_instant["cents"].round().astype("int64") - cents
    return result
