"""What the API accepts: the raw contract's payload, validated and normalized as dbt would.

A request body carries the fields of a raw `transactions` (or `fraud_reports`) row, as text
(python_jobs/lake/schemas.py: the pydantic models are built from that contract). The service
must accept exactly what the processed layer accepts and turn it into the same values, or the
online features would differ from `ml_features`:

- codes are looked up as models/processed/stg_transactions_triaged.sql does (trimmed, aliases
  of seeds/value_aliases.csv through normalize_key, directions and statuses from their seeds);
- a personal counterparty (PIX key, bank account) becomes the curated layer's salted hash
  (macros/cross_db/text.sql hash_pii; BANKLAKE_PII_SALT, the same local default);
- amounts and timestamps are parsed by DuckDB itself whenever the text is not in the
  canonical form ("1234.56", "YYYY-MM-DD HH:MM:SS"), so an odd spelling is accepted or
  refused exactly as dbt's `try_cast` / `try_strptime` would. The canonical forms, nearly
  every request, are parsed in Python with the same result.

A refusal is a ContractError naming the field and the processed layer's rejection reason
(`unparseable_amount`, `unknown_channel`, ...), the same codes as stg_rejected_rows.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from python_jobs.importer.reference import SEEDS_DIR, normalize_key, seed_values

PII_SALT_ENV = "BANKLAKE_PII_SALT"
LOCAL_PII_SALT = "banklake-local-salt"  # macros/cross_db/text.sql, the embedded default
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
# decimal(18, 2): at most 16 digits before the point
_CANONICAL_AMOUNT = re.compile(r"([0-9]{1,16})(?:\.([0-9]{1,2}))?")  # ASCII digits only
_CANONICAL_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")

# Fields the processed layer rejects a row without, in the order its rejection rules test them.
REQUIRED_TRANSACTION_FIELDS = (
    "transaction_id",
    "account_id",
    "customer_id",
    "event_ts",
    "amount",
    "transaction_type",
    "channel",
    "direction",
    "status",
)
REQUIRED_REPORT_FIELDS = ("report_id", "transaction_id", "reported_at", "scenario")


class ContractError(ValueError):
    """A payload the processed layer would reject: the field and dbt's rejection reason."""

    def __init__(self, field: str, reason: str, detail: str) -> None:
        super().__init__(f"{field}: {detail} ({reason})")
        self.field = field
        self.reason = reason
        self.detail = detail


Text = StrictStr


class TransactionPayload(BaseModel):
    """A raw `transactions` row (python_jobs/lake/schemas.py; a test keeps the two equal).
    Values are text as the source delivers them; `amount` also takes a JSON number."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: Text
    account_id: Text
    customer_id: Text
    event_ts: Text = Field(description="YYYY-MM-DD HH:MM:SS, São Paulo wall time")
    transaction_type: Text = Field(description="PIX, TED, BOLETO, DEBIT, CREDIT (or an alias)")
    channel: Text = Field(description="mobile, internet_banking, atm, pos, branch (or an alias)")
    direction: Text = Field(description="outbound or inbound")
    amount: Text | int | float = Field(description='BRL, e.g. "1234.56"')
    counterparty_key: Text | None = Field(
        default=None, description="PIX key, merchant, terminal, account (hashed when personal)"
    )
    merchant_category_code: Text | None = None
    device_id: Text | None = None
    city: Text | None = None
    state: Text | None = Field(default=None, description="UF, e.g. SP")
    status: Text = Field(description="approved or declined")


class FraudReportPayload(BaseModel):
    """A raw `fraud_reports` row: a confirmed fraud (chargeback, MED claim, ...)."""

    model_config = ConfigDict(extra="forbid")

    report_id: Text
    transaction_id: Text
    reported_at: Text = Field(description="YYYY-MM-DD HH:MM:SS, São Paulo wall time")
    scenario: Text = Field(description="a scenario of seeds/fraud_scenarios.csv")
    report_channel: Text | None = Field(
        default=None, description="chargeback, med, customer_contact, analyst"
    )


@dataclass(frozen=True, slots=True)
class Transaction:
    """One accepted transaction in the curated layer's terms (fct_transactions' values)."""

    transaction_id: str
    account_id: str
    customer_id: str
    event_ts: datetime  # naive São Paulo wall time, to the second
    transaction_type: str
    channel: str
    direction: str
    amount_cents: int  # decimal(18, 2) as an exact integer
    counterparty_key: str | None  # hashed when personal, as in fct_transactions
    device_id: str | None
    state: str | None
    status: str

    @property
    def epoch(self) -> int:
        """Seconds since 1970-01-01 of the wall time: windows are differences of these."""
        return _epoch(self.event_ts)

    @property
    def amount(self) -> float:
        return self.amount_cents / 100


@dataclass(frozen=True, slots=True)
class FraudReport:
    report_id: str
    transaction_id: str
    reported_at: datetime
    scenario: str
    report_channel: str | None


def _epoch(ts: datetime) -> int:
    return int((ts - _EPOCH).total_seconds())


_EPOCH = datetime(1970, 1, 1)


def text(value: Any) -> str | None:
    """A payload value as the raw layer stores it (text), None when absent."""
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _trimmed(value: str | None) -> str | None:
    """dbt's nullif(trim(x), '')."""
    if value is None:
        return None
    value = value.strip(" ")
    return value or None


class _DuckDBParser:
    """DuckDB's own casts, for texts outside the canonical forms (one connection per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _con(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = duckdb.connect(":memory:")
            self._local.con = con
        return con

    def amount(self, value: str) -> Decimal | None:
        row = self._con().execute("select try_cast(? as decimal(18, 2))", [value]).fetchone()
        return None if row is None else row[0]

    def timestamp(self, value: str) -> datetime | None:
        row = self._con().execute("select try_strptime(?, ?)", [value, TIMESTAMP_FORMAT]).fetchone()
        return None if row is None else row[0]


_DUCKDB = _DuckDBParser()


def parse_amount_cents(value: str) -> int | None:
    """try_cast(trim(value) as decimal(18, 2)) in cents; None when DuckDB would give null."""
    value = value.strip(" ")
    match = _CANONICAL_AMOUNT.fullmatch(value)
    if match:
        return int(match.group(1)) * 100 + int((match.group(2) or "").ljust(2, "0"))
    parsed = _DUCKDB.amount(value)
    return None if parsed is None else int(parsed.scaleb(2))


def parse_timestamp(value: str) -> datetime | None:
    """try_strptime(value, '%Y-%m-%d %H:%M:%S'); None when DuckDB would give null."""
    if _CANONICAL_TS.fullmatch(value):
        try:
            # the canonical shape is ISO 8601's: fromisoformat parses it as strptime with
            # TIMESTAMP_FORMAT does, at a tenth of the cost
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # e.g. 24:00:00 or 30 February: DuckDB decides
    return _DUCKDB.timestamp(value)


@cache
def _aliases(domain: str) -> dict[str, str]:
    with (SEEDS_DIR / "value_aliases.csv").open(newline="", encoding="utf-8") as handle:
        return {
            row["raw_value"]: row["canonical_value"]
            for row in csv.DictReader(handle)
            if row["domain"] == domain
        }


@cache
def _personal_types() -> frozenset[str]:
    with (SEEDS_DIR / "transaction_types.csv").open(newline="", encoding="utf-8") as handle:
        return frozenset(
            row["transaction_type"]
            for row in csv.DictReader(handle)
            if row["counterparty_is_personal"] == "true"
        )


def pii_salt() -> str:
    return os.environ.get(PII_SALT_ENV) or LOCAL_PII_SALT


def hash_pii(value: str) -> str:
    """macros/cross_db/text.sql hash_pii: sha256 hex of salt || value."""
    return hashlib.sha256((pii_salt() + value).encode("utf-8")).hexdigest()


def _lookup(domain: str, value: str | None) -> str | None:
    return None if value is None else _aliases(domain).get(normalize_key(value))


def _lower_trim(value: str | None) -> str | None:
    return None if value is None else value.strip(" ").lower()


def normalize_transaction(payload: Mapping[str, str | None]) -> Transaction:
    """The processed layer's reading of one raw row, or its rejection (ContractError)."""
    transaction_id = _trimmed(payload.get("transaction_id"))
    account_id = _trimmed(payload.get("account_id"))
    customer_id = _trimmed(payload.get("customer_id"))
    raw_ts = payload.get("event_ts")
    raw_amount = payload.get("amount")
    # the order of models/processed/stg_transactions_triaged.sql's rejection rules
    if transaction_id is None:
        raise ContractError("transaction_id", "missing_transaction_id", "is missing or blank")
    if account_id is None:
        raise ContractError("account_id", "missing_account_id", "is missing or blank")
    if customer_id is None:
        raise ContractError("customer_id", "missing_customer_id", "is missing or blank")
    if _trimmed(raw_ts) is None:
        raise ContractError("event_ts", "missing_event_ts", "is missing or blank")
    assert raw_ts is not None
    event_ts = parse_timestamp(raw_ts.strip(" "))
    if event_ts is None:
        raise ContractError(
            "event_ts", "unparseable_event_ts", f"{raw_ts!r} is not 'YYYY-MM-DD HH:MM:SS'"
        )
    if _trimmed(raw_amount) is None:
        raise ContractError("amount", "missing_amount", "is missing or blank")
    assert raw_amount is not None
    cents = parse_amount_cents(raw_amount)
    if cents is None:
        raise ContractError(
            "amount", "unparseable_amount", f"{raw_amount!r} is not a decimal(18, 2) amount"
        )
    if cents <= 0:
        raise ContractError("amount", "non_positive_amount", f"{raw_amount!r} is not positive")
    transaction_type = _lookup("transaction_type", payload.get("transaction_type"))
    if transaction_type is None:
        raise ContractError(
            "transaction_type",
            "unknown_transaction_type",
            f"{payload.get('transaction_type')!r} is not a known type (seeds/value_aliases.csv)",
        )
    channel = _lookup("channel", payload.get("channel"))
    if channel is None:
        raise ContractError(
            "channel",
            "unknown_channel",
            f"{payload.get('channel')!r} is not a known channel (seeds/value_aliases.csv)",
        )
    direction = _lower_trim(payload.get("direction"))
    if direction not in seed_values("transaction_directions", "direction"):
        raise ContractError(
            "direction",
            "unknown_direction",
            f"{payload.get('direction')!r} is not inbound/outbound",
        )
    status = _lower_trim(payload.get("status"))
    if status not in seed_values("transaction_statuses", "status"):
        raise ContractError(
            "status", "unknown_status", f"{payload.get('status')!r} is not approved/declined"
        )
    assert direction is not None and status is not None
    counterparty = _trimmed(payload.get("counterparty_key"))
    if counterparty is not None and transaction_type in _personal_types():
        counterparty = hash_pii(counterparty)
    state = _trimmed(payload.get("state"))
    return Transaction(
        transaction_id=transaction_id,
        account_id=account_id,
        customer_id=customer_id,
        event_ts=event_ts,
        transaction_type=transaction_type,
        channel=channel,
        direction=direction,
        amount_cents=cents,
        counterparty_key=counterparty,
        device_id=_trimmed(payload.get("device_id")),
        state=None if state is None else state.upper(),
        status=status,
    )


def normalize_report(payload: Mapping[str, str | None]) -> FraudReport:
    """models/processed/stg_fraud_reports_triaged.sql's reading of one report."""
    report_id = _trimmed(payload.get("report_id"))
    transaction_id = _trimmed(payload.get("transaction_id"))
    if report_id is None:
        raise ContractError("report_id", "missing_report_id", "is missing or blank")
    if transaction_id is None:
        raise ContractError("transaction_id", "missing_transaction_id", "is missing or blank")
    raw = payload.get("reported_at")
    reported_at = None if raw is None else parse_timestamp(raw)  # dbt does not trim it
    if reported_at is None:
        raise ContractError(
            "reported_at", "unparseable_reported_at", f"{raw!r} is not 'YYYY-MM-DD HH:MM:SS'"
        )
    scenario = _lower_trim(payload.get("scenario"))
    if scenario not in seed_values("fraud_scenarios", "scenario"):
        raise ContractError(
            "scenario",
            "unknown_scenario",
            f"{payload.get('scenario')!r} is not a scenario of seeds/fraud_scenarios.csv",
        )
    assert scenario is not None
    return FraudReport(
        report_id=report_id,
        transaction_id=transaction_id,
        reported_at=reported_at,
        scenario=scenario,
        report_channel=_lower_trim(payload.get("report_channel")),
    )


def epoch(ts: datetime) -> int:
    return _epoch(ts)
