"""Turns the user's rows into the four raw feeds, in DuckDB (the parser dbt itself uses).

The rule is the raw layer's: values are written as delivered, so the processed layer can
judge them. The importer only *reads* what the mapping declares — a timestamp in the declared
format is rewritten to the contract's "YYYY-MM-DD HH:MM:SS", an amount in the declared
number format to "1234.56" — and leaves everything else verbatim: a timestamp that does not
match the format, or an amount that is not a number, lands as it came and dbt rejects it
with its reason. Nothing is trimmed, fixed or dropped here.

Customers, accounts and fraud reports are derived from the transactions, so dims and joins
work on data that never had those feeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa

from python_jobs.importer.mapping import CONTRACT_TIMESTAMP, CUSTOMER_PLACEHOLDER, Mapping
from python_jobs.importer.reference import alias_keys
from python_jobs.importer.source import RAW_TIMEZONE, SourceRows
from python_jobs.lake.query import one_row
from python_jobs.lake.schemas import ACCOUNTS, CUSTOMERS, FRAUD_REPORTS, TRANSACTIONS

DAY = "_day"  # helper column: the ingestion day a row lands in
REPORT_PREFIX = "IMP-"  # report_id = prefix + transaction id: deterministic, one per label
# The optional transaction fields: mapping key -> raw column.
OPTIONAL_FIELDS: dict[str, str] = {
    "type": "transaction_type",
    "channel": "channel",
    "direction": "direction",
    "device": "device_id",
    "city": "city",
    "state": "state",
    "mcc": "merchant_category_code",
    "status": "status",
}


@dataclass(frozen=True)
class Feeds:
    """The raw tables of one import, each with a `_day` column (its ingestion partition)."""

    transactions: pa.Table
    customers: pa.Table
    accounts: pa.Table
    fraud_reports: pa.Table
    flags: dict[str, int]  # values dbt will reject, by the reason it will give
    notes: dict[str, int]  # counts behind warnings (see importer.warnings)
    event_days: tuple[date, date] | None  # first and last parseable event date


def build_feeds(rows: SourceRows, mapping: Mapping, forced_day: date | None) -> Feeds:
    con = duckdb.connect()
    try:
        con.execute("set enable_progress_bar = false")
        con.execute(f"set TimeZone = '{RAW_TIMEZONE}'")  # %z timestamps -> São Paulo wall time
        table = rows.table.append_column("_row", pa.array(np.arange(rows.table.num_rows)))
        con.register("source_rows", table)
        con.execute(f"create temp table parsed as {_parsed_sql(rows, mapping)}")
        event_days = one_row(
            con,
            "select min(cast(event_parsed as date)), max(cast(event_parsed as date)) from parsed",
        )
        span = None if event_days[0] is None else (event_days[0], event_days[1])
        fallback = forced_day or (span[1] if span else None)
        con.execute(
            f"create temp view placed as select *, coalesce({_date_literal(forced_day)}, "
            f"cast(event_parsed as date), {_date_literal(fallback)}) as {DAY} from parsed"
        )
        first_day = forced_day or (span[0] if span else fallback)
        transactions = _with_malformed(
            con.sql(_transactions_sql(mapping)).to_arrow_table(), rows, fallback
        )
        customers = con.sql(_customers_sql(mapping, first_day)).to_arrow_table()
        accounts = con.sql(_accounts_sql(mapping, first_day)).to_arrow_table()
        reports = con.sql(_reports_sql(mapping, forced_day)).to_arrow_table()
        flags = _flags(con, set(rows.table.column_names), len(rows.malformed))
        notes = _notes(con, mapping)
    finally:
        con.close()
    return Feeds(
        transactions=transactions.cast(_with_day(TRANSACTIONS.schema)),
        customers=customers.cast(_with_day(CUSTOMERS.schema)),
        accounts=accounts.cast(_with_day(ACCOUNTS.schema)),
        fraud_reports=reports.cast(_with_day(FRAUD_REPORTS.schema)),
        flags=flags,
        notes=notes,
        event_days=span,
    )


# --- SQL pieces ----------------------------------------------------------------------------


def _literal(value: str | None) -> str:
    return "cast(null as varchar)" if value is None else "'" + value.replace("'", "''") + "'"


def _date_literal(value: date | None) -> str:
    return "cast(null as date)" if value is None else f"date '{value.isoformat()}'"


def _formats(formats: list[str]) -> str:
    return "[" + ", ".join(_literal(fmt) for fmt in formats) + "]"


def _col(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


def _blank(expression: str) -> str:
    """dbt's notion of missing: null or blank after trimming."""
    return f"nullif(trim({expression}), '') is null"


def _amount_sql(mapping: Mapping) -> str:
    """The amount as "1234.56" when it is a number in the declared format, else verbatim."""
    spec = mapping.amount
    decimal = "\\" + spec.decimal_separator
    whole = "\\d+"
    if spec.grouping is not None:
        group = "\\" + spec.grouping if spec.grouping != " " else " "
        whole = f"(\\d+|\\d{{1,3}}({group}\\d{{3}})+)"
    pattern = f"[+-]?{whole}({decimal}\\d+)?"
    value = 'trim("amount")'
    if spec.grouping is not None:
        value = f"replace({value}, {_literal(spec.grouping)}, '')"
    if spec.decimal_separator != ".":
        value = f"replace({value}, ',', '.')"
    value = f"ltrim({value}, '+')"
    return (
        f'case when regexp_full_match(trim("amount"), {_literal(pattern)}) '
        f'then {value} else "amount" end'
    )


def _parsed_sql(rows: SourceRows, mapping: Mapping) -> str:
    """One row per readable source row: raw transaction values plus parsed helpers."""
    columns = set(rows.table.column_names)
    ts_formats = (
        [CONTRACT_TIMESTAMP] if "timestamp" in rows.typed_timestamps else mapping.timestamp.formats
    )
    event = f'try_strptime(trim("timestamp"), {_formats(ts_formats)})'
    defaults = mapping.defaults
    prefix, suffix = defaults.account_id.split(CUSTOMER_PLACEHOLDER)
    account = (
        '"account_id"'
        if "account_id" in columns
        else f'{_literal(prefix)} || "customer_id" || {_literal(suffix)}'
    )
    fields = {
        "transaction_id": '"transaction_id"',
        "account_id": account,
        "customer_id": '"customer_id"',
        "event_ts": f'coalesce(strftime({event}, {_literal(CONTRACT_TIMESTAMP)}), "timestamp")',
        "amount": _amount_sql(mapping),
        "counterparty_key": '"counterparty"',
    }
    for key, raw in OPTIONAL_FIELDS.items():
        fields[raw] = _col(key) if key in columns else _literal(getattr(defaults, key))
    helpers = {"event_parsed": event, "_row": "_row"}
    helpers.update(_label_helpers(rows, mapping, columns, event))
    select = ",\n  ".join(f"{expr} as {_col(name)}" for name, expr in {**fields, **helpers}.items())
    return f"select\n  {select}\nfrom source_rows"


def _label_helpers(rows: SourceRows, mapping: Mapping, columns: set[str], event: str) -> dict:
    fraud = mapping.fraud
    if fraud is None:
        return {
            "is_fraud": "false",
            "reported_text": _literal(None),
            "reported_parsed": "cast(null as timestamp)",
            "scenario": _literal(None),
        }
    truthy = ", ".join(_literal(value) for value in fraud.truthy_keys)
    helpers = {"is_fraud": f'coalesce(lower(trim("fraud.column")) in ({truthy}), false)'}
    if fraud.known_at is not None:
        formats = (
            [CONTRACT_TIMESTAMP]
            if "fraud.known_at" in rows.typed_timestamps
            else fraud.known_at.formats
        )
        parsed = f'try_strptime(trim("fraud.known_at"), {_formats(formats)})'
        helpers["reported_parsed"] = parsed
        helpers["reported_text"] = (
            f'coalesce(strftime({parsed}, {_literal(CONTRACT_TIMESTAMP)}), "fraud.known_at")'
        )
    else:
        parsed = f"{event} + to_days({fraud.label_delay_days})"
        helpers["reported_parsed"] = parsed
        helpers["reported_text"] = f"strftime({parsed}, {_literal(CONTRACT_TIMESTAMP)})"
    scenario = _literal(mapping.defaults.scenario)
    if "fraud.scenario" in columns:  # a blank scenario is an unclassified fraud: the default
        scenario = f"coalesce(nullif(trim(\"fraud.scenario\"), ''), {scenario})"
    helpers["scenario"] = scenario
    return helpers


def _transactions_sql(mapping: Mapping) -> str:
    columns = ", ".join(_col(name) for name in TRANSACTIONS.payload_columns)
    return f"select {columns}, {DAY} from placed order by {DAY}, _row"


def _customers_sql(mapping: Mapping, first_day: date | None) -> str:
    """One record per customer seen with a usable timestamp; PII unknown, so null."""
    return f"""
        select
            trim(customer_id) as customer_id,
            cast(null as varchar) as full_name,
            cast(null as varchar) as cpf,
            cast(null as varchar) as birth_date,
            {_literal(mapping.defaults.segment)} as segment,
            cast(null as double) as monthly_income,
            cast(null as varchar) as risk_rating,
            cast(null as varchar) as onboarding_date,
            cast(null as struct(state varchar, city varchar)) as address,
            strftime(min(event_parsed), {_literal(CONTRACT_TIMESTAMP)}) as updated_at,
            {_date_literal(first_day)} as {DAY}
        from placed
        where event_parsed is not null and not {_blank("customer_id")}
        group by trim(customer_id)
        order by customer_id
    """


def _accounts_sql(mapping: Mapping, first_day: date | None) -> str:
    """One record per account; its owner is the customer of its earliest transaction."""
    return f"""
        select
            trim(account_id) as account_id,
            arg_min(trim(customer_id), (event_parsed, _row)) as customer_id,
            {_literal(mapping.defaults.account_type)} as account_type,
            cast(null as varchar) as opened_date,
            {_literal(mapping.defaults.account_status)} as status,
            cast(null as double) as credit_limit,
            strftime(min(event_parsed), {_literal(CONTRACT_TIMESTAMP)}) as updated_at,
            {_date_literal(first_day)} as {DAY}
        from placed
        where event_parsed is not null and not {_blank("account_id")}
            and not {_blank("customer_id")}
        group by trim(account_id)
        order by account_id
    """


def _reports_sql(mapping: Mapping, forced_day: date | None) -> str:
    """One report per labelled transaction, in the partition of the day it became known."""
    return f"""
        select
            {_literal(REPORT_PREFIX)} || trim(transaction_id) as report_id,
            trim(transaction_id) as transaction_id,
            reported_text as reported_at,
            scenario,
            {_literal(mapping.defaults.report_channel)} as report_channel,
            coalesce({_date_literal(forced_day)}, cast(reported_parsed as date), {DAY}) as {DAY}
        from placed
        where is_fraud and not {_blank("transaction_id")}
        order by {DAY}, _row
    """


def _with_malformed(transactions: pa.Table, rows: SourceRows, day: date | None) -> pa.Table:
    """Lines that could not be split land whole in event_ts, every other field empty, so the
    row is kept and visibly rejected (missing_transaction_id) with its text there to read."""
    if not rows.malformed:
        return transactions
    n = len(rows.malformed)
    columns = {
        name: pa.nulls(n, pa.string())
        for name in TRANSACTIONS.payload_columns
        if name != "event_ts"
    }
    columns["event_ts"] = pa.array([line.text for line in rows.malformed], pa.string())
    columns[DAY] = pa.repeat(pa.scalar(day, pa.date32()), n)
    extra = pa.table(columns).select(transactions.column_names)
    return pa.concat_tables([transactions, extra.cast(transactions.schema)])


def _flags(con: duckdb.DuckDBPyConnection, mapped: set[str], malformed: int) -> dict[str, int]:
    """Rows the processed layer will reject, counted by the reason it will give (a row with
    two problems counts under both). Defaults are valid by construction (see mapping.py),
    so only mapped columns are checked."""
    checks = {
        "missing_transaction_id": _blank("transaction_id"),
        "missing_account_id": _blank("account_id"),
        "missing_customer_id": _blank("customer_id"),
        "missing_event_ts": _blank("event_ts"),
        "unparseable_event_ts": (
            f"not {_blank('event_ts')} and "
            f"try_strptime(trim(event_ts), {_literal(CONTRACT_TIMESTAMP)}) is null"
        ),
        "missing_amount": _blank("amount"),
        "unparseable_amount": (
            f"not {_blank('amount')} and try_cast(trim(amount) as decimal(18, 2)) is null"
        ),
        "non_positive_amount": "try_cast(trim(amount) as decimal(18, 2)) <= 0",
    }
    optional = {
        "type": ("unknown_transaction_type", _unknown_spelling("transaction_type")),
        "channel": ("unknown_channel", _unknown_spelling("channel")),
        "direction": (
            "unknown_direction",
            "coalesce(lower(trim(direction)), '') not in ('inbound', 'outbound')",
        ),
        "status": (
            "unknown_status",
            "coalesce(lower(trim(status)), '') not in ('approved', 'declined')",
        ),
    }
    checks.update(check for key, check in optional.items() if key in mapped)
    sums = ", ".join(f"count(*) filter (where {check})" for check in checks.values())
    counts = one_row(con, f"select {sums} from placed")
    flags = {name: int(count) for name, count in zip(checks, counts, strict=True) if count}
    if malformed:
        flags["malformed_line"] = malformed
    return flags


def _unknown_spelling(column: str) -> str:
    keys = ", ".join(_literal(key) for key in sorted(alias_keys(column)))
    normalized = f"trim(regexp_replace(lower({column}), '[\\s_-]+', ' ', 'g'))"
    return f"coalesce({normalized}, '') not in ({keys})"


def _notes(con: duckdb.DuckDBPyConnection, mapping: Mapping) -> dict[str, int]:
    """Counts that will not be rejected but deserve a warning."""
    row = one_row(
        con,
        f"""
        select
            count(*) filter (where is_fraud and {_blank("transaction_id")}),
            count(*) filter (where is_fraud and reported_parsed < event_parsed),
            (
                select count(*) from (
                    select trim(account_id) from placed
                    where not {_blank("account_id")} and not {_blank("customer_id")}
                    group by 1 having count(distinct trim(customer_id)) > 1
                )
            )
        from placed
        """,
    )
    names = ("labels_without_transaction_id", "reported_before_event", "accounts_with_owners")
    return {name: int(count) for name, count in zip(names, row, strict=True) if count}


def _with_day(schema: pa.Schema) -> pa.Schema:
    payload = [field for field in schema if not field.name.startswith("_")]
    return pa.schema([*payload, pa.field(DAY, pa.date32())])
