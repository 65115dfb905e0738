"""`banklake import`: a user's file lands in raw exactly as generated data would, nothing is
fixed or lost on the way, a re-import changes nothing, and dbt rejects what was planted bad."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from python_jobs.cli import main
from python_jobs.dbt_runner import PROJECT_DIR
from python_jobs.importer import (
    MappingError,
    UnusableSource,
    import_file,
    load_mapping,
    parse_mapping,
)
from python_jobs.lake.layout import Lake
from python_jobs.lake.query import one_row
from python_jobs.lake.schemas import ACCOUNTS, CUSTOMERS, FRAUD_REPORTS, TRANSACTIONS, Feed
from python_jobs.lake.validate import validate_lake
from python_jobs.lake.writer import RawFileConflict

EXAMPLE_CSV = PROJECT_DIR / "examples" / "transactions.example.csv"
EXAMPLE_MAPPING = PROJECT_DIR / "examples" / "mapping.example.yml"

MINIMAL = {
    "transaction_id": "id",
    "timestamp": "ts",
    "customer_id": "cliente",
    "counterparty": "favorecido",
    "amount": "valor",
}
HEADER = "id,ts,cliente,favorecido,valor"


def write_csv(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def raw_rows(lake: Lake, feed: Feed) -> list[dict]:
    """Every row of a raw feed, with its ingestion partition as `_day`."""
    rows = []
    for path in lake.raw_files(feed):
        if feed.file_format == "parquet":
            records = pq.read_table(path).to_pylist()
        else:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                records = [json.loads(line) for line in handle]
        rows += [{**row, "_day": partition_day(path)} for row in records]
    return rows


def partition_day(path: Path) -> date:
    stamp = path.name.split("-")[1]
    return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))


def snapshot(lake: Lake) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(lake.raw.rglob("*")) if p.is_file()}


# --- mapping validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"amount": None}, "missing required key 'amount'"),
        ({"timestamp": None}, "missing required key 'timestamp'"),
        ({"amont": "valor"}, "unknown key 'amont'"),
        ({"defaults": {"tipo": "PIX"}}, "unknown key 'defaults.tipo'"),
        ({"timestamp": {"column": "ts", "format": "%d/%m/%Q"}}, "'timestamp.format'"),
        ({"timestamp": {"column": "ts", "format": "%H:%M"}}, "has no year"),
        ({"amount": {"column": "valor", "decimal_separator": ";"}}, "'amount.decimal_separator'"),
        ({"fraud": {"column": "f"}}, "exactly one of known_at"),
        (
            {"fraud": {"column": "f", "label_delay_days": 2, "known_at": "k"}},
            "exactly one of known_at",
        ),
        ({"defaults": {"type": "TRANSFER"}}, "'defaults.type'"),
        ({"defaults": {"scenario": "ghost"}}, "'defaults.scenario'"),
        ({"defaults": {"account_id": "ACC-1"}}, "'defaults.account_id'"),
        ({"csv": {"encoding": "klingon"}}, "'csv.encoding'"),
    ],
)
def test_invalid_mappings_are_refused_naming_the_key(change: dict, expected: str) -> None:
    data = {**MINIMAL, **change}
    data = {key: value for key, value in data.items() if value is not None}
    with pytest.raises(MappingError) as error:
        parse_mapping(data)
    assert expected in str(error.value)


def test_mapping_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("transaction_id: [unclosed\n")
    with pytest.raises(MappingError, match=r"broken\.yml: not valid YAML"):
        load_mapping(broken)
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "absent.yml")


def test_the_example_mapping_is_valid_and_documents_every_default() -> None:
    mapping = load_mapping(EXAMPLE_MAPPING)
    assert mapping.timestamp.formats == ["%d/%m/%Y %H:%M:%S"]
    assert mapping.amount.grouping == "."
    assert mapping.fraud is not None and mapping.fraud.label_delay_days == 7
    text = EXAMPLE_MAPPING.read_text()
    for key in type(mapping.defaults).model_fields:
        assert f"  {key}:" in text, f"defaults.{key} is not documented in the example"


# --- what lands in raw -------------------------------------------------------------------


def test_missing_optional_columns_get_the_documented_defaults(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    source = write_csv(
        tmp_path / "tx.csv",
        HEADER,
        "T1,2026-03-02 10:00:00,C1,MER-1,10.50",
        "T2,2026-03-02 11:00:00,C2,MER-2,20.00",
        "T3,2026-03-03 09:00:00,C1,MER-1,5.00",
    )
    result = import_file(lake, source, parse_mapping(MINIMAL))

    tx = raw_rows(lake, TRANSACTIONS)
    assert [r["transaction_id"] for r in tx] == ["T1", "T2", "T3"]
    assert {r["transaction_type"] for r in tx} == {"PIX"}
    assert {r["channel"] for r in tx} == {"mobile"}
    assert {r["direction"] for r in tx} == {"outbound"}
    assert {r["status"] for r in tx} == {"approved"}
    assert [r["account_id"] for r in tx] == ["ACC-C1", "ACC-C2", "ACC-C1"]
    for column in ("device_id", "city", "state", "merchant_category_code"):
        assert {r[column] for r in tx} == {None}
    assert [r["_day"] for r in tx] == [date(2026, 3, 2)] * 2 + [date(2026, 3, 3)]

    customers = raw_rows(lake, CUSTOMERS)
    assert [(c["customer_id"], c["updated_at"]) for c in customers] == [
        ("C1", "2026-03-02 10:00:00"),
        ("C2", "2026-03-02 11:00:00"),
    ]
    assert {(c["segment"], c["cpf"], c["full_name"]) for c in customers} == {("varejo", None, None)}
    accounts = raw_rows(lake, ACCOUNTS)
    assert [(a["account_id"], a["customer_id"]) for a in accounts] == [
        ("ACC-C1", "C1"),
        ("ACC-C2", "C2"),
    ]
    assert {(a["account_type"], a["status"]) for a in accounts} == {("checking", "active")}
    # extracts land on the first ingestion day, like the generator's first full extract
    assert {r["_day"] for r in customers + accounts} == {date(2026, 3, 2)}
    assert raw_rows(lake, FRAUD_REPORTS) == []
    assert result.flags == {}
    assert validate_lake(lake).quarantined == []


def test_declared_formats_are_read_and_everything_else_lands_verbatim(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    source = write_csv(
        tmp_path / "tx.csv",
        "id;ts;cliente;favorecido;valor",
        "T1;02/03/2026 10:00;C1;MER-1;1.234,56",  # Brazilian number: read
        "T2;02/03/2026 10:05;C1;MER-1;R$ 12,50",  # not a number: verbatim
        "T3;2026-03-02 10:10;C1;MER-1;12.34",  # grouping not in threes: not guessed
        "T4;31/02/2026 10:15;C2;MER-2;5,00",  # impossible date: verbatim
        "T5;02/03/2026 10:20;;MER-2;-3,00",  # no customer, negative amount
        "T6;02/03/2026 10:25;C2;MER-2;5,00;extra",  # one field too many
        "T7;02/03/2026 10:30; C3 ;MER-3;",  # padded customer, no amount
    )
    mapping = parse_mapping(
        {
            **MINIMAL,
            "timestamp": {"column": "ts", "format": "%d/%m/%Y %H:%M"},
            "amount": {"column": "valor", "decimal_separator": ","},
            "csv": {"delimiter": ";"},
        }
    )
    result = import_file(lake, source, mapping)

    tx = {r["_source_row"]: r for r in raw_rows(lake, TRANSACTIONS)}
    assert len(tx) == 7  # no row lost
    by_id = {r["transaction_id"]: r for r in tx.values()}
    assert (by_id["T1"]["event_ts"], by_id["T1"]["amount"]) == ("2026-03-02 10:00:00", "1234.56")
    assert by_id["T2"]["amount"] == "R$ 12,50"
    assert (by_id["T3"]["event_ts"], by_id["T3"]["amount"]) == ("2026-03-02 10:10", "12.34")
    assert by_id["T4"]["event_ts"] == "31/02/2026 10:15"
    assert (by_id["T5"]["customer_id"], by_id["T5"]["amount"]) == ("", "-3.00")
    assert (by_id["T7"]["customer_id"], by_id["T7"]["amount"]) == (" C3 ", "")
    malformed = by_id[None]
    assert malformed["event_ts"] == "T6;02/03/2026 10:25;C2;MER-2;5,00;extra"
    assert {malformed[c] for c in ("account_id", "customer_id", "amount")} == {None}

    assert result.flags == {
        "unparseable_amount": 1,  # T2 (T3's "12.34" is a number dbt reads)
        "unparseable_event_ts": 2,  # T3 (not in the declared format) and T4
        "missing_customer_id": 1,  # T5
        "non_positive_amount": 1,  # T5
        "missing_amount": 1,  # T7
        "malformed_line": 1,  # T6
    }
    assert [(m.line, m.fields, m.expected) for m in result.malformed] == [(7, 6, 5)]
    text = result.describe()
    assert "malformed_line 1" in text and "line 7 has 6 fields" in text
    # derived records use the trimmed id, as the processed layer reads it; C2 has no row with
    # a usable timestamp (T4 unreadable, T6 unsplittable), so it gets no customer record
    assert sorted(c["customer_id"] for c in raw_rows(lake, CUSTOMERS)) == ["C1", "C3"]


def test_reimport_is_a_no_op_and_another_file_gets_its_own_batch(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    mapping = parse_mapping({**MINIMAL, "fraud": {"column": "f", "label_delay_days": 2}})
    first = write_csv(tmp_path / "jan.csv", HEADER + ",f", "T1,2026-03-02 10:00:00,C1,M,10.00,1")
    result = import_file(lake, first, mapping)
    assert result.new_files == 4  # transactions, customers, accounts, one report
    before = snapshot(lake)

    again = import_file(lake, first, mapping)
    assert again.new_files == 0 and again.batch == result.batch
    assert snapshot(lake) == before
    assert "already imported" in again.describe()
    record = json.loads((lake.root / "_imports" / f"{result.batch}.json").read_text())
    assert (record["source_name"], len(record["files"])) == ("jan.csv", 4)

    second = write_csv(tmp_path / "feb.csv", HEADER + ",f", "T2,2026-03-02 12:00:00,C2,M,20.00,0")
    other = import_file(lake, second, mapping)
    assert other.batch != result.batch
    assert other.warnings == ()  # the same day as the newest in the lake: still read

    earlier = write_csv(tmp_path / "old.csv", HEADER + ",f", "T0,2026-03-01 09:00:00,C1,M,5.00,0")
    (warning,) = import_file(lake, earlier, mapping).warnings
    assert "transactions (newest 2026-03-02)" in warning and "--full-refresh" in warning
    day_files = sorted(p.name for p in lake.partition_dir(TRANSACTIONS, date(2026, 3, 2)).iterdir())
    assert day_files == sorted(
        f"transactions-20260302-{batch}.parquet" for batch in (result.batch, other.batch)
    )


def test_the_same_file_with_another_mapping_is_refused_before_anything_lands(
    tmp_path: Path,
) -> None:
    lake = Lake(tmp_path / "lake")
    source = write_csv(tmp_path / "tx.csv", HEADER + ",f", "T1,2026-03-02 10:00:00,C1,M,10.00,1")
    import_file(
        lake, source, parse_mapping({**MINIMAL, "fraud": {"column": "f", "label_delay_days": 2}})
    )
    before = snapshot(lake)
    for changed in (
        {**MINIMAL, "fraud": {"column": "f", "label_delay_days": 5}},  # reports move days
        {
            **MINIMAL,
            "defaults": {"channel": "atm"},
            "fraud": {"column": "f", "label_delay_days": 2},
        },
    ):
        with pytest.raises(RawFileConflict, match="already imported"):
            import_file(lake, source, parse_mapping(changed))
        assert snapshot(lake) == before


def test_label_delay_puts_reports_in_the_partition_of_the_day_they_became_known(
    tmp_path: Path,
) -> None:
    lake = Lake(tmp_path / "lake")
    source = write_csv(
        tmp_path / "tx.csv",
        HEADER + ",fraude,cenario",
        "T1,2026-03-02 23:30:00,C1,M,10.00,SIM,",
        "T2,2026-03-03 08:00:00,C1,M,10.00,nao,",
        "T3,2026-03-04 09:00:00,C2,M,10.00,s,pix_scam",
    )
    fraud = {"column": "fraude", "truthy": ["sim", "S"], "label_delay_days": 3}
    import_file(lake, source, parse_mapping({**MINIMAL, "fraud": {**fraud, "scenario": "cenario"}}))
    reports = sorted(raw_rows(lake, FRAUD_REPORTS), key=lambda r: r["transaction_id"])
    assert [
        (r["report_id"], r["transaction_id"], r["reported_at"], r["_day"], r["scenario"])
        for r in reports
    ] == [
        ("IMP-T1", "T1", "2026-03-05 23:30:00", date(2026, 3, 5), "imported"),
        ("IMP-T3", "T3", "2026-03-07 09:00:00", date(2026, 3, 7), "pix_scam"),
    ]
    assert {r["report_channel"] for r in reports} == {"customer_contact"}


def test_known_at_column_and_a_forced_ingestion_date(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "tx.csv",
        HEADER + ",fraude,contestado",
        "T1,2026-03-02 10:00:00,C1,M,10.00,1,2026-03-20",
        "T2,2026-03-03 10:00:00,C1,M,10.00,1,depois",
    )
    known_at = {"column": "contestado", "format": "%Y-%m-%d"}
    mapping = parse_mapping({**MINIMAL, "fraud": {"column": "fraude", "known_at": known_at}})

    by_event = Lake(tmp_path / "by_event")
    import_file(by_event, source, mapping)
    reports = {r["transaction_id"]: r for r in raw_rows(by_event, FRAUD_REPORTS)}
    assert (reports["T1"]["reported_at"], reports["T1"]["_day"]) == (
        "2026-03-20 00:00:00",
        date(2026, 3, 20),
    )
    # unreadable: kept verbatim (dbt rejects it), in its transaction's partition
    assert (reports["T2"]["reported_at"], reports["T2"]["_day"]) == ("depois", date(2026, 3, 3))

    forced = Lake(tmp_path / "forced")
    result = import_file(forced, source, mapping, ingestion_date=date(2026, 3, 31))
    assert {f.day for f in result.files} == {date(2026, 3, 31)}
    assert len(raw_rows(forced, TRANSACTIONS)) == 2
    with pytest.raises(UnusableSource, match="before the file's last transaction"):
        import_file(Lake(tmp_path / "early"), source, mapping, ingestion_date=date(2026, 3, 2))


def test_parquet_sources_keep_their_types_meaning(tmp_path: Path) -> None:
    source = tmp_path / "tx.parquet"
    utc = pa.timestamp("us", tz="UTC")
    pq.write_table(
        pa.table(
            {
                "id": pa.array([101, 102], pa.int64()),
                "ts": pa.array([datetime(2026, 3, 2, 13, 0, 5, 900, tzinfo=UTC)] * 2, utc),
                "cliente": ["C1", "C2"],
                "favorecido": ["M", "M"],
                "valor": pa.array([12.5, None], pa.float64()),
            }
        ),
        source,
    )
    lake = Lake(tmp_path / "lake")
    result = import_file(lake, source, parse_mapping(MINIMAL))
    tx = raw_rows(lake, TRANSACTIONS)
    # instants become São Paulo wall time (UTC-3), whole seconds, as the contract says
    assert [(r["transaction_id"], r["event_ts"], r["amount"]) for r in tx] == [
        ("101", "2026-03-02 10:00:05", "12.5"),
        ("102", "2026-03-02 10:00:05", None),
    ]
    assert result.flags == {"missing_amount": 1}


def test_an_unusable_file_is_an_error_naming_file_key_and_column(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    no_amount = write_csv(tmp_path / "no_amount.csv", "id,ts,cliente,favorecido", "T1,x,C,M")
    with pytest.raises(UnusableSource) as error:
        import_file(lake, no_amount, parse_mapping(MINIMAL))
    assert "no_amount.csv" in str(error.value) and "'amount' names column 'valor'" in str(
        error.value
    )

    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 certainly not parquet")
    with pytest.raises(UnusableSource, match=r"corrupt\.parquet: cannot read as Parquet"):
        import_file(lake, corrupt, parse_mapping(MINIMAL))

    wrong_format = write_csv(tmp_path / "dates.csv", HEADER, "T1,02/03/2026,C,M,1.00")
    with pytest.raises(UnusableSource, match="--ingestion-date") as error:
        import_file(lake, wrong_format, parse_mapping(MINIMAL))
    assert "column 'ts'" in str(error.value)
    assert not lake.raw.exists()  # nothing written by any failed import


def test_cli_import_prints_counts_and_reports_errors(tmp_path: Path, capsys) -> None:
    lake = str(tmp_path / "lake")
    args = ["import", "--source", str(EXAMPLE_CSV), "--mapping", str(EXAMPLE_MAPPING)]
    assert main([*args, "--lake", lake]) == 0
    out = capsys.readouterr().out
    assert "transactions   2026-03-02" in out and "50  rows in total" in out

    bad = tmp_path / "bad.yml"
    bad.write_text(EXAMPLE_MAPPING.read_text() + "\nextra_key: 1\n")
    assert (
        main(["import", "--source", str(EXAMPLE_CSV), "--mapping", str(bad), "--lake", lake]) == 1
    )
    assert "unknown key 'extra_key'" in capsys.readouterr().err


# --- end to end --------------------------------------------------------------------------

# The rows planted bad in examples/transactions.example.csv, and the reason dbt must give.
PLANTED = Counter(
    {
        ("TX-000116", "unparseable_amount"): 1,  # "R$ 45,90"
        ("TX-000126", "unparseable_event_ts"): 1,  # 30/02/2026
        ("TX-000133", "missing_customer_id"): 1,
        ("TX-000137", "non_positive_amount"): 1,  # "-80,00"
        ("TX-000144", "unknown_transaction_type"): 1,  # "ESTORNO"
        (None, "missing_transaction_id"): 1,  # TX-000147: unquoted ";" in the city
    }
)


@pytest.mark.dbt
def test_the_example_imports_and_builds_with_exactly_the_planted_rows_rejected(
    tmp_path: Path,
) -> None:
    from python_jobs.pipeline import build

    lake = Lake(tmp_path / "lake")
    result = import_file(lake, EXAMPLE_CSV, load_mapping(EXAMPLE_MAPPING))
    assert sum(result.rows(TRANSACTIONS.name).values()) == 50  # every data line of the file
    build(lake)  # raises unless every dbt model and test passes

    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        rejected = Counter(
            con.execute(
                "select record_key, rejection_reason from processed.stg_rejected_rows"
            ).fetchall()
        )
        malformed = con.execute(
            "select raw_event_ts from processed.stg_transactions_triaged "
            "where rejection_reason = 'missing_transaction_id'"
        ).fetchall()
        duplicates = con.execute(
            "select feed, record_key from processed.stg_duplicate_rows"
        ).fetchall()
        accepted = one_row(con, "select count(*) from curated.fct_transactions")[0]
        labels = con.execute(
            "select transaction_id, fraud_scenario, days_to_report from curated.fct_transactions "
            "where is_fraud_reported order by 1"
        ).fetchall()
        customers = one_row(con, "select count(*) from curated.dim_customers")[0]
        unmatched_accounts = one_row(
            con,
            "select count(*) from curated.fct_transactions t "
            "left join curated.dim_accounts a using (account_id) where a.account_id is null",
        )[0]
    finally:
        con.close()

    assert rejected == PLANTED
    assert "TX-000147" in malformed[0][0]  # the unsplittable line, there to read
    assert duplicates == [("transactions", "TX-000146")]
    assert accepted == 50 - sum(PLANTED.values()) - len(duplicates)
    # what the importer said dbt would reject is what dbt rejected
    predicted = Counter(result.flags)
    predicted["missing_transaction_id"] += predicted.pop("malformed_line")
    assert predicted == Counter(reason for _, reason in PLANTED.elements())
    assert labels == [
        ("TX-000121", "imported", 7),
        ("TX-000122", "pix_scam", 7),
        ("TX-000136", "card_testing", 7),
    ]
    assert customers == 12 and unmatched_accounts == 0
