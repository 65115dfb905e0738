"""The import mapping: which column of the user's file feeds which raw transaction field.

A mapping is a small YAML file (see examples/mapping.example.yml). Only five fields are
required — what a fraud pipeline cannot do without: a transaction id, a timestamp, the
customer, the counterparty and the amount. Everything else is either mapped to a column or
filled from `defaults:`. The model is strict: an unknown or misspelled key is an error rather
than silently ignored, because an ignored `amont:` would import every amount as missing.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, Literal, TypeVar

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from python_jobs.importer.reference import alias_keys, normalize_key, seed_values

CONTRACT_TIMESTAMP = "%Y-%m-%d %H:%M:%S"  # the raw layer's event_ts text (schemas.py)
CUSTOMER_PLACEHOLDER = "{customer_id}"

# What each required key means, for the "missing key" message.
REQUIRED_KEYS: dict[str, str] = {
    "transaction_id": "the column with the transaction id",
    "timestamp": "the column with when the transaction happened",
    "customer_id": "the column with the customer id",
    "counterparty": "the column with the merchant, terminal or beneficiary id",
    "amount": "the column with the amount in BRL",
}


class MappingError(ValueError):
    """The mapping file is missing, unreadable or invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _ColumnBlock(_Strict):
    """A block about one source column; a bare string is shorthand for its `column`."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `timestamp: data_hora` means `timestamp: {column: data_hora}`
        return {"column": value} if isinstance(value, str) else value


class TimestampColumn(_ColumnBlock):
    column: str = Field(min_length=1)
    # strptime format(s), tried in order (DuckDB's try_strptime, the parser dbt itself uses).
    # With %z the offset is honoured and the time converted to São Paulo wall time.
    format: str | list[str] = CONTRACT_TIMESTAMP

    @property
    def formats(self) -> list[str]:
        return [self.format] if isinstance(self.format, str) else list(self.format)

    @field_validator("format")
    @classmethod
    def _valid_formats(cls, value: str | list[str]) -> str | list[str]:
        formats = [value] if isinstance(value, str) else value
        if not formats:
            raise ValueError("give at least one format")
        for fmt in formats:
            _check_format(fmt)
        return value


def _check_format(fmt: str) -> None:
    try:
        duckdb.execute("select try_strptime('', ?)", [fmt])
    except duckdb.Error as error:
        raise ValueError(f"{fmt!r} is not a strptime format: {error}") from None
    if not any(code in fmt for code in ("%Y", "%y", "%G")):
        raise ValueError(f"{fmt!r} has no year (%Y or %y)")
    if not any(code in fmt for code in ("%d", "%-d", "%j", "%-j")):
        raise ValueError(f"{fmt!r} has no day of the month (%d)")


class AmountColumn(_ColumnBlock):
    column: str = Field(min_length=1)
    decimal_separator: Literal[".", ","] = "."
    # None: "." when the decimal separator is "," (1.234,56), else no grouping accepted.
    # Grouping must be in threes: "1.234,56" is read, "12.34" in a "," file is not guessed.
    thousands_separator: Literal[".", ",", " ", "'"] | None = None

    @model_validator(mode="after")
    def _separators_differ(self) -> AmountColumn:
        if self.thousands_separator == self.decimal_separator:
            raise ValueError("thousands_separator must differ from decimal_separator")
        return self

    @property
    def grouping(self) -> str | None:
        if self.thousands_separator is not None:
            return self.thousands_separator
        return "." if self.decimal_separator == "," else None


class FraudLabel(_ColumnBlock):
    column: str = Field(min_length=1)
    # Case-insensitive, trimmed; any other value (blank included) means not labelled fraud.
    truthy: list[str] = Field(
        default=["1", "true", "t", "yes", "y", "sim", "s", "fraud", "fraude"], min_length=1
    )
    known_at: TimestampColumn | None = None  # when the label became known...
    label_delay_days: int | None = Field(default=None, ge=0)  # ...or a fixed delay
    scenario: str | None = None  # column with a scenario code from seeds/fraud_scenarios.csv

    @model_validator(mode="after")
    def _one_label_time(self) -> FraudLabel:
        # A label's time decides which training cut-off may see it: it is never guessed.
        if (self.known_at is None) == (self.label_delay_days is None):
            raise ValueError(
                "give exactly one of known_at (a column) or label_delay_days (a number): "
                "when each fraud label became known"
            )
        return self

    @property
    def truthy_keys(self) -> list[str]:
        return sorted({value.strip().lower() for value in self.truthy})


class CsvOptions(_Strict):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


class Defaults(_Strict):
    """Values for optional fields the file has no column for (documented in the example)."""

    type: str = "PIX"
    channel: str = "mobile"
    direction: Literal["outbound", "inbound"] = "outbound"
    status: Literal["approved", "declined"] = "approved"
    account_id: str = "ACC-" + CUSTOMER_PLACEHOLDER  # one account per customer
    device: str | None = None
    city: str | None = None
    state: str | None = None
    mcc: str | None = None
    # derived customers and accounts
    segment: str = "varejo"
    account_type: Literal["checking", "savings", "credit_card"] = "checking"
    account_status: Literal["active", "blocked", "closed"] = "active"
    # derived fraud reports
    scenario: str = "imported"
    report_channel: Literal["chargeback", "med", "customer_contact"] = "customer_contact"

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return _known_spelling(value, "transaction_type")

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        return _known_spelling(value, "channel")

    @field_validator("account_id")
    @classmethod
    def _per_customer(cls, value: str) -> str:
        if value.count(CUSTOMER_PLACEHOLDER) != 1:
            raise ValueError(
                f"must contain {CUSTOMER_PLACEHOLDER} once, e.g. 'ACC-{{customer_id}}'"
            )
        return value

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str | None) -> str | None:
        return _in_seed(value, "br_states", "state_code")

    @field_validator("segment")
    @classmethod
    def _known_segment(cls, value: str) -> str:
        return _in_seed(value, "customer_segments", "segment")

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str) -> str:
        return _in_seed(value, "fraud_scenarios", "scenario")


def _known_spelling(value: str, domain: str) -> str:
    if normalize_key(value) not in alias_keys(domain):
        raise ValueError(f"{value!r} is no {domain} dbt knows (seeds/value_aliases.csv)")
    return value


_Code = TypeVar("_Code", bound=str | None)


def _in_seed(value: _Code, seed: str, column: str) -> _Code:
    if value is not None and value not in seed_values(seed, column):
        known = ", ".join(sorted(seed_values(seed, column)))
        raise ValueError(f"{value!r} is not in seeds/{seed}.csv ({known})")
    return value


class Mapping(_Strict):
    """Source column names per raw field, how to read them, and defaults for the rest."""

    transaction_id: str = Field(min_length=1)
    timestamp: TimestampColumn
    customer_id: str = Field(min_length=1)
    counterparty: str = Field(min_length=1)
    amount: AmountColumn
    account_id: str | None = None
    type: str | None = None
    channel: str | None = None
    direction: str | None = None
    device: str | None = None
    city: str | None = None
    state: str | None = None
    mcc: str | None = None
    status: str | None = None
    fraud: FraudLabel | None = None
    defaults: Defaults = Defaults()
    csv: CsvOptions = CsvOptions()

    def source_columns(self) -> dict[str, str]:
        """Mapping key -> source column, for every column the file must have."""
        keys = [
            "transaction_id",
            "customer_id",
            "counterparty",
            "account_id",
            "type",
            "channel",
            "direction",
            "device",
            "city",
            "state",
            "mcc",
            "status",
        ]
        columns = {key: getattr(self, key) for key in keys if getattr(self, key) is not None}
        columns["timestamp"] = self.timestamp.column
        columns["amount"] = self.amount.column
        if self.fraud is not None:
            columns["fraud.column"] = self.fraud.column
            if self.fraud.known_at is not None:
                columns["fraud.known_at"] = self.fraud.known_at.column
            if self.fraud.scenario is not None:
                columns["fraud.scenario"] = self.fraud.scenario
        return columns


def parse_mapping(data: object, origin: str = "mapping") -> Mapping:
    """Validates already-loaded YAML; errors name each offending key."""
    if not isinstance(data, dict):
        raise MappingError(f"{origin}: expected a YAML mapping of keys, got {type(data).__name__}")
    try:
        return Mapping.model_validate(data)
    except ValidationError as error:
        problems = "\n  ".join(_describe(item) for item in error.errors())
        raise MappingError(f"{origin}: invalid mapping:\n  {problems}") from None


def load_mapping(path: Path) -> Mapping:
    """Reads and validates a mapping YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise MappingError(f"{path}: cannot read the mapping: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MappingError(f"{path}: not valid YAML: {error}") from None
    return parse_mapping(data, str(path))


def _describe(item: ErrorDetails) -> str:
    location = [str(part) for part in item["loc"] if not isinstance(part, int)]
    # Union and shorthand validators add their own names to the location: keep the YAML keys.
    location = [part for part in location if not part.startswith(("function-", "str", "list["))]
    key = ".".join(location) or "(top level)"
    kind = item["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{key}'"
    if kind == "missing":
        hint = REQUIRED_KEYS.get(key)
        return f"missing required key '{key}'" + (f" ({hint})" if hint else "")
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"'{key}': {message}"
