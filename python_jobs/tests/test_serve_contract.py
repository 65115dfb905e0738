"""The API's reading of raw text is dbt's: the same accepted values, the same refusals."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from python_jobs.importer.reference import normalize_key
from python_jobs.serve.contract import (
    ContractError,
    hash_pii,
    normalize_transaction,
    parse_amount_cents,
    parse_timestamp,
)

AMOUNTS = [
    "1234.56",
    "0.01",
    "7",
    " 7 ",
    "12.345",
    "12.355",
    "12.995",
    "1e3",
    "+5",
    "-0.004",
    ".5",
    "5.",
    "1,5",
    "0x10",
    "1_000",
    "9999999999999999.99",
    "99999999999999999.99",
    "",
    "abc",
    "１２",  # full-width digits
]
TIMESTAMPS = [
    "2026-10-02 10:00:00",
    "2026-1-2 10:00:00",
    " 2026-10-02 10:00:00",
    "2026-10-02 10:00",
    "2026-10-02T10:00:00",
    "2026-10-02 24:00:00",
    "2026-02-30 10:00:00",
    "2026-10-02 10:00:00.5",
    "2024-02-29 23:59:59",
    "02/10/2026 10:00:00",
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@pytest.mark.parametrize("text", AMOUNTS)
def test_amounts_parse_as_duckdb_casts_them(con: duckdb.DuckDBPyConnection, text: str) -> None:
    (expected,) = con.execute("select try_cast(trim(?) as decimal(18, 2))", [text]).fetchone() or (
        None,
    )
    cents = parse_amount_cents(text)
    assert cents == (None if expected is None else int(Decimal(expected).scaleb(2)))


@pytest.mark.parametrize("text", TIMESTAMPS)
def test_timestamps_parse_as_duckdb_parses_them(con: duckdb.DuckDBPyConnection, text: str) -> None:
    (expected,) = con.execute(
        "select try_strptime(trim(?), '%Y-%m-%d %H:%M:%S')", [text]
    ).fetchone() or (None,)
    assert parse_timestamp(text.strip(" ")) == expected


@pytest.mark.parametrize("text", ["PIX", " p-i_x ", "Cartão  de   Crédito", "MOBILE\tBANKING"])
def test_codes_are_looked_up_with_dbt_s_key(con: duckdb.DuckDBPyConnection, text: str) -> None:
    (expected,) = con.execute(
        r"select trim(regexp_replace(lower(?), '[\s_-]+', ' ', 'g'))", [text]
    ).fetchone() or (None,)
    assert normalize_key(text) == expected


def test_personal_keys_are_hashed_as_the_curated_layer_hashes_them(
    con: duckdb.DuckDBPyConnection,
) -> None:
    (expected,) = con.execute(
        "select sha256('banklake-local-salt' || ?)", ["a@b.c"]
    ).fetchone() or (None,)
    assert hash_pii("a@b.c") == expected
    payload = {
        "transaction_id": "T1",
        "account_id": "A",
        "customer_id": "C",
        "event_ts": "2026-10-02 10:00:00",
        "transaction_type": "boleto",
        "channel": "web",
        "direction": "outbound",
        "amount": "10",
        "counterparty_key": "ISSUER-1",
        "status": "approved",
    }
    assert normalize_transaction(payload).counterparty_key == "ISSUER-1"  # a company: kept
    ted = normalize_transaction({**payload, "transaction_type": "TED"})
    assert ted.counterparty_key == hash_pii("ISSUER-1")


def test_a_refusal_names_the_first_rule_dbt_applies() -> None:
    with pytest.raises(ContractError) as refused:
        normalize_transaction({"transaction_id": "T1", "amount": "x", "event_ts": "bad"})
    assert (refused.value.field, refused.value.reason) == ("account_id", "missing_account_id")
