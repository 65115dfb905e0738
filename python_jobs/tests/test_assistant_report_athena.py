"""`banklake report --target athena`: the daily report's facts computed on Athena.

- every facts query, as built for Athena, parses with sqlglot's athena dialect, holds no
  DuckDB-only construct (the detector athena_check.py runs on the dbt project) and reads the
  curated database only;
- the Athena-only median is exact (it is DuckDB's median, not approx_percentile);
- canned Athena result pages through botocore's Stubber on a real Athena client (every request
  checked against the service model) become facts, a rendered report and its files, with the
  monitoring report read from S3 (Stubber on a real S3 client);
- on the real scored lake: the Athena SQL, transpiled back to DuckDB by sqlglot, gives the
  same facts as the DuckDB SQL, and those results replayed as Athena pages give the same facts
  and the same Markdown again. Athena itself is not reachable here: that Trino runs these
  queries as sqlglot reads them stays unverified until a live run.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from botocore.response import StreamingBody
from botocore.stub import Stubber
from sqlglot import exp

from python_jobs.assistant.llm import OfflineProvider
from python_jobs.assistant.report import render_report, write_daily_report
from python_jobs.assistant.report_facts import (
    FactsConfig,
    FactsSQL,
    LocalMonitoring,
    NoMonitoring,
    S3Monitoring,
    compute_facts,
    facts_queries,
    monitoring_for,
)
from python_jobs.assistant.warehouse import DuckDBWarehouse, QueryResult
from python_jobs.aws.athena_sql import duckdb_only_constructs
from python_jobs.cli import main
from python_jobs.lake.layout import Lake
from python_jobs.tests.moto_s3 import offline_client, stubbed
from python_jobs.tests.test_assistant_athena import ENV, Capture, expect_query, warehouse_on

ATHENA = FactsSQL("athena", "banklake_curated")
DAY = date(2026, 11, 27)  # a Friday
VERSION = "20261128T094841Z"


@pytest.fixture
def s3() -> Iterator[tuple[Any, Stubber]]:
    with stubbed("s3") as client_and_stubber:
        yield client_and_stubber


def assert_athena_sql(sql: str, database: str = "banklake_curated") -> None:
    """Parses as Athena SQL, no DuckDB-only construct, reads `database` and its own CTEs only."""
    tree = sqlglot.parse_one(sql, read="athena")
    assert duckdb_only_constructs(sql) == [], sql
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if table.db:
            assert table.db == database, table.sql()
        else:
            assert table.name in ctes, f"{table.name} is neither {database}.* nor a CTE"


# --- the SQL ------------------------------------------------------------------------------------


def test_every_facts_query_is_athena_sql_on_the_curated_database() -> None:
    queries = facts_queries(ATHENA, DAY, FactsConfig(), VERSION)
    assert len(queries) == 9
    for sql in queries.values():
        assert_athena_sql(sql)
    # the engine-specific pieces are the Athena ones
    anomalies, top = queries["anomalies"], queries["top_alerts"]
    assert "median(" not in anomalies and "array_sort(array_agg(share)" in anomalies
    assert "date_format(event_ts, '%H:%i')" in top and "strftime" not in top


def test_the_duckdb_queries_are_the_same_text_but_for_the_isolated_pieces() -> None:
    duck = facts_queries(FactsSQL(), DAY, FactsConfig(), VERSION)
    athena = facts_queries(ATHENA, DAY, FactsConfig(), VERSION)
    for name, sql in duck.items():
        sqlglot.parse_one(sql, read="duckdb")
        assert "banklake_curated" not in sql
        if name not in {"anomalies", "top_alerts"}:  # no median, no HH:MM
            assert athena[name] == sql.replace("curated.", "banklake_curated."), name


def test_a_facts_schema_is_a_name_and_the_dialect_known() -> None:
    with pytest.raises(ValueError, match="curated schema"):
        FactsSQL("athena", "x; drop table y")
    with pytest.raises(ValueError, match="no facts SQL"):
        FactsSQL("postgres", "curated")


def test_the_athena_median_is_exact_like_duckdbs() -> None:
    """approx_percentile would move the robust z-scores: the Athena snippet, run through
    sqlglot's DuckDB transpile, equals DuckDB's own median on odd, even, null-holding and
    empty groups."""
    rng = random.Random(7)
    rows = [(g, rng.random() if rng.random() > 0.1 else None) for g in range(40) for _ in range(g)]
    rows += [(100, None), (100, None)]  # only nulls: null, as DuckDB
    con = duckdb.connect()
    con.execute("create table t (g integer, v double)")
    con.executemany("insert into t values (?, ?)", rows)
    snippet = ATHENA.median("v")
    query = sqlglot.transpile(
        f"select g, {snippet} as m from t group by g order by g", read="athena", write="duckdb"
    )[0]
    exact = con.execute("select g, median(v) as m from t group by g order by g").fetchall()
    got = con.execute(query).fetchall()
    assert [g for g, _ in got] == [g for g, _ in exact]
    for (_, a), (_, b) in zip(got, exact, strict=True):
        assert (a is None and b is None) or a == pytest.approx(b, rel=1e-12)


# --- canned Athena pages -> facts -> report ----------------------------------------------------

DOUBLE, BIGINT, DECIMAL, DATE, TIMESTAMP, TEXT, BOOL = (
    "double",
    "bigint",
    "decimal",
    "date",
    "timestamp",
    "varchar",
    "boolean",
)
KPI_COLUMNS = [
    ("event_date", DATE),
    ("transactions", BIGINT),
    ("approved_transactions", BIGINT),
    ("approval_rate_pct", DOUBLE),
    ("approved_volume_brl", DECIMAL),
    ("average_ticket_brl", DOUBLE),
    ("fraud_transactions_reported", BIGINT),
    ("fraud_loss_brl", DECIMAL),
]
ANOMALY_COLUMNS = [
    ("dimension", TEXT),
    ("dimension_value", TEXT),
    ("metric", TEXT),
    ("observed", DOUBLE),
    ("expected", DOUBLE),
    ("share_pct", DOUBLE),
    ("usual_share_pct", DOUBLE),
    ("robust_z", DOUBLE),
    ("is_anomaly", BOOL),
]
ALERT_COLUMNS = [
    ("alert_rank", BIGINT),
    ("transaction_id", TEXT),
    ("score", DOUBLE),
    ("threshold", DOUBLE),
    ("event_time", TEXT),
    ("amount_brl", DECIMAL),
    ("transaction_type", TEXT),
    ("channel", TEXT),
    ("direction", TEXT),
    ("state", TEXT),
    ("mcc_group", TEXT),
    ("counterparty_key", TEXT),
    *(
        (f"reason_{i}_{part}", DOUBLE if part == "contribution" else TEXT)
        for i in (1, 2, 3)
        for part in ("feature", "code", "description", "contribution")
    ),
    ("is_fraud_reported", BOOL),
]


def _reasons(*reasons: tuple[str, str, str, str] | None) -> list[str | None]:
    cells: list[str | None] = []
    for reason in reasons:
        cells += list(reason) if reason else [None] * 4
    return cells


def expect_the_facts_queries(stubber: Stubber, sent: Capture) -> None:
    """The queries compute_facts sends for DAY, in order, with Athena's text answers."""
    expect_query(
        stubber, "q-range", sent, [("_col0", DATE), ("_col1", DATE)], [["2026-10-01", "2026-11-28"]]
    )
    expect_query(stubber, "q-day", sent, [("_col0", BIGINT)], [["14"]])
    expect_query(
        stubber,
        "q-kpis",
        sent,
        KPI_COLUMNS,
        [
            [
                "2026-11-27",
                "1411",
                "1357",
                "96.17292700212615",
                "1313292.34",
                "967.7909653647752",
                "3",
                "4210.00",
            ],
            [
                "2026-11-26",
                "1300",
                "1250",
                "96.15384615384616",
                "1200000.00",
                "960.0",
                "2",
                "1500.50",
            ],
        ],  # no row for 2026-11-20: the week comparison is missing
    )
    expect_query(stubber, "q-history", sent, [("_col0", BIGINT)], [["28"]])
    expect_query(
        stubber,
        "q-anomalies",
        sent,
        ANOMALY_COLUMNS,
        [
            ["channel", "atm", "transactions", "81.0", "35.5", "5.74", "2.52", "6.1234", "true"],
            ["state", "SP", "transactions", "500.0", "490.0", "35.4", "35.1", "0.3", "false"],
            [
                "segment",
                "unknown",
                "approved_volume_brl",
                "0.0",
                "0.0",
                "0.0",
                "0.0",
                None,
                "false",
            ],
        ],
    )
    expect_query(
        stubber,
        "q-performance",
        sent,
        [
            ("model_version", TEXT),
            ("transactions_scored", BIGINT),
            ("alerts", BIGINT),
            ("alerts_confirmed_fraud", BIGINT),
            ("alert_rate_pct", DOUBLE),
            ("precision_so_far_pct", DOUBLE),
        ],
        [[VERSION, "1411", "100", "2", "7.087172218284904", "2.0"]],
    )
    expect_query(
        stubber,
        "q-top",
        sent,
        ALERT_COLUMNS,
        [
            [
                "1",
                "T20261127000000189",
                "0.9731",
                "0.208123",
                "03:12",
                "2500.00",
                "CREDIT",
                "POS",
                "OUT",
                "SP",
                "electronics",
                "PADARIA BOM PAO",
                *_reasons(
                    ("is_night", "NIGHT_TX", "transaction at night (00:00-05:59)", "1.25"),
                    ("amount_zscore_30d", "AMOUNT_SPIKE", "amount unusual for the customer", "0.5"),
                    None,
                ),
                "false",
            ],
            [
                "2",
                "T20261127000000777",
                "0.91",
                "0.208123",
                "14:05",
                "80.10",
                "PIX",
                "MOBILE",
                "OUT",
                "RJ",
                None,
                "maria@example.com",
                *_reasons(("is_new_device", "NEW_DEVICE", "new device", "0.9"), None, None),
                "true",
            ],
        ],
    )
    expect_query(
        stubber,
        "q-reasons",
        sent,
        [("code", TEXT), ("alerts", BIGINT)],
        [["NIGHT_TX", "60"], ["NEW_DEVICE", "40"]],
    )
    expect_query(
        stubber,
        "q-trend",
        sent,
        [("event_date", DATE), ("transactions", BIGINT), ("approved_volume_brl", DECIMAL)],
        [["2026-11-26", "1300", "1200000.00"], ["2026-11-27", "1411", "1313292.34"]],
    )


MONITORING = {
    "day": "2026-11-26",
    "model_version": VERSION,
    "verdict": "watch",
    "findings": [{"kind": "drift"}],
    "alert_rate": 0.0709,
    "expected_alert_rate": 0.0650,
    "score_psi": 0.0204,
    "feature_psi": {"cust_tx_count_30d": 0.31, "is_weekend": 1.19, "amount_log": 0.01},
    "realized": {"mature": {"days": 3, "alerts": 250, "precision": 0.12}},
    "config": {"psi_warning": 0.1, "psi_drift": 0.2, "psi_not_judged": ["is_weekend"]},
}


def expect_monitoring_on_s3(stubber: Stubber, report: dict[str, Any] = MONITORING) -> None:
    """monitoring/ beside raw/: the report, a later one (not read: it is after the report
    day) and a stray object that is not a report."""
    later = date.fromisoformat(report["day"]) + timedelta(days=2)
    stubber.add_response(
        "list_objects_v2",
        {
            "KeyCount": 3,
            "Contents": [
                {"Key": f"monitoring/{report['day']}.json"},
                {"Key": f"monitoring/{later.isoformat()}.json"},
                {"Key": "monitoring/notes.txt"},
            ],
        },
        {"Bucket": "lake", "Prefix": "monitoring/"},
    )
    body = json.dumps(report).encode()
    stubber.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentLength": len(body)},
        {"Bucket": "lake", "Key": f"monitoring/{report['day']}.json"},
    )


def test_the_report_renders_from_athena_result_pages(athena, s3, tmp_path: Path) -> None:
    client, stubber = athena
    s3_client, s3_stubber = s3
    sent = Capture()
    expect_the_facts_queries(stubber, sent)
    expect_monitoring_on_s3(s3_stubber)
    monitoring = monitoring_for(
        "athena", Lake(tmp_path / "none"), {"BANKLAKE_S3_RAW_DIR": "s3://lake/raw/"}, s3=s3_client
    )

    result = write_daily_report(
        Lake(tmp_path / "no-lake-needed"),
        DAY,
        lang="en",
        provider=OfflineProvider(),
        out_dir=tmp_path / "out",
        warehouse=warehouse_on(client),
        monitoring=monitoring,
    )

    # every query sent is Athena SQL on the curated database
    assert len(sent.values) == 9
    for sql in sent.values:
        assert_athena_sql(sql)
    facts = json.loads(result.facts.read_text(encoding="utf-8"))
    assert facts["report_date"] == "2026-11-27" and facts["lake_last_date"] == "2026-11-28"
    kpis = {m["metric"]: m for m in facts["kpis"]["metrics"]}
    assert kpis["transactions"]["value"] == 1411 and kpis["transactions"]["previous_day"] == 1300
    assert kpis["approved_volume_brl"]["value"] == 1313292.34  # Athena's decimal text
    assert kpis["approval_rate_pct"]["value"] == 96.17
    assert kpis["approval_rate_pct"]["previous_day_change"] == 0.02  # percentage points
    assert kpis["transactions"]["same_weekday_last_week"] is None
    assert {n["code"] for n in facts["notes"]} >= {"no_same_weekday_last_week", "monitoring_older"}
    anomalies = facts["anomalies"]
    assert (anomalies["slices_checked"], anomalies["count"]) == (3, 1)
    assert anomalies["items"][0] == {
        "dimension": "channel",
        "value": "atm",
        "metric": "transactions",
        "observed": 81,
        "expected": 35.5,
        "share_pct": 5.74,
        "usual_share_pct": 2.52,
        "robust_z": 6.12,
        "direction": "up",
    }
    alerts = facts["alerts"]
    assert alerts["model_version"] == VERSION and alerts["alert_rate_pct"] == 7.09
    first, second = alerts["top"]
    assert (first["event_time"], first["amount_brl"], first["counterparty"]) == (
        "03:12",
        2500.0,
        "PADARIA BOM PAO",
    )
    assert [r["code"] for r in first["reasons"]] == ["NIGHT_TX", "AMOUNT_SPIKE"]
    assert second["counterparty"] is None  # a PIX key is a person's: never shown
    assert second["fraud_reported_so_far"] is True
    health = facts["model_health"]
    assert health["monitoring_date"] == "2026-11-26" and health["verdict"] == "watch"
    # is_weekend is not judged; cust_tx_count_30d is the one feature above the warning
    assert health["top_drifted_features"] == [{"feature": "cust_tx_count_30d", "psi": 0.31}]
    assert [t["date"] for t in facts["trend"]] == ["2026-11-26", "2026-11-27"]

    markdown = result.markdown.read_text(encoding="utf-8")
    assert "T20261127000000189" in markdown and "PADARIA BOM PAO" in markdown
    assert (
        "maria@example.com" not in markdown and "maria@example.com" not in result.html.read_text()
    )
    assert result.narrative.source == "template"
    # what it cost: 9 queries of 12,345,678 bytes, each billed 12 MB
    assert (result.target, result.queries, result.bytes_scanned) == ("athena", 9, 9 * 12_345_678)
    assert result.cost_usd == pytest.approx(9 * 12 * 2**20 / 2**40 * 5)
    summary = result.summary()
    assert "facts from 9 Athena queries, scanned 106.0 MB, cost $0.000515" in summary
    assert "monitoring looked for in s3://lake/monitoring/" in summary


def test_without_the_raw_dir_there_is_no_monitoring_and_the_report_says_so(tmp_path: Path) -> None:
    assert isinstance(monitoring_for("athena", Lake(tmp_path), {}), NoMonitoring)
    local = monitoring_for("duckdb", Lake(tmp_path), {})
    assert isinstance(local, LocalMonitoring) and local.folder == tmp_path / "monitoring"


def test_an_empty_monitoring_prefix_is_no_monitoring(s3, tmp_path: Path) -> None:
    s3_client, s3_stubber = s3
    s3_stubber.add_response(
        "list_objects_v2", {"KeyCount": 0}, {"Bucket": "lake", "Prefix": "bank/monitoring/"}
    )
    reports = monitoring_for(
        "athena", Lake(tmp_path), {"BANKLAKE_S3_RAW_DIR": "s3://lake/bank/raw/"}, s3=s3_client
    )
    assert isinstance(reports, S3Monitoring) and reports.location == "s3://lake/bank/monitoring/"
    assert reports.days() == []


def test_a_monitoring_permission_error_is_raised_not_read_as_no_monitoring(s3) -> None:
    from botocore.exceptions import ClientError

    s3_client, s3_stubber = s3
    s3_stubber.add_client_error("list_objects_v2", "AccessDenied", "Access Denied")
    with pytest.raises(ClientError, match="AccessDenied"):
        S3Monitoring("lake", "monitoring/", s3_client).days()


def test_cli_report_on_athena(monkeypatch, athena, tmp_path: Path, capsys) -> None:
    """`banklake report --target athena` through the real CLI: the assistant's work group
    from the environment (as `banklake ask --target athena`), no monitoring without the raw
    prefix."""
    from python_jobs.aws import athena as athena_module

    client, stubber = athena
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BANKLAKE_S3_RAW_DIR", raising=False)
    monkeypatch.delenv("BANKLAKE_ATHENA_SCHEMA", raising=False)
    monkeypatch.setattr(athena_module, "make_client", lambda config: client)
    expect_the_facts_queries(stubber, Capture())
    out = tmp_path / "out"
    argv = [
        "report",
        "--target",
        "athena",
        "--date",
        "2026-11-27",
        "--lang",
        "en",
        "--out",
        str(out),
    ]
    assert main([*argv, "--provider", "offline"]) == 0
    printed = capsys.readouterr().out
    assert "daily report 2026-11-27 (en, summary from the template)" in printed
    assert "9 Athena queries" in printed and "monitoring looked for in none" in printed
    markdown = (out / "2026-11-27-en.md").read_text(encoding="utf-8")
    assert "No model monitoring yet" in markdown


def test_cli_report_on_athena_says_which_variable_to_set(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.delenv("BANKLAKE_ASSISTANT_ATHENA_WORKGROUP", raising=False)
    assert main(["report", "--target", "athena", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("banklake report:") and "BANKLAKE_ASSISTANT_ATHENA_WORKGROUP" in err


# --- the real scored lake: same facts on both engines -------------------------------------------


def _athena_type(values: list[Any]) -> str:
    value = next((v for v in values if v is not None), None)
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return BIGINT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, Decimal):
        return DECIMAL
    if isinstance(value, datetime):  # before date: a datetime is a date too
        return TIMESTAMP
    if isinstance(value, date):
        return DATE
    return TEXT


def _athena_text(value: Any) -> str | None:
    """A value as Athena's GetQueryResults writes it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):  # Trino's text of a timestamp(6): a space, microseconds
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class TranspiledWarehouse:
    """The Athena SQL, transpiled to DuckDB by sqlglot, on the lake's file: what the Athena
    snippets compute, short of Athena. Keeps every answer to replay it as Athena pages."""

    dialect = "athena"
    curated_schema = "curated"

    def __init__(self, lake: Lake) -> None:
        self.connection = duckdb.connect(str(lake.database), read_only=True)
        self.answers: list[tuple[list[tuple[str, str]], list[list[str | None]]]] = []

    def query(self, sql: str) -> QueryResult:
        assert_athena_sql(sql, database="curated")
        cursor = self.connection.execute(sqlglot.transpile(sql, read="athena", write="duckdb")[0])
        columns = [c[0] for c in cursor.description or []]
        rows = cursor.fetchall()
        types = [_athena_type([row[i] for row in rows]) for i in range(len(columns))]
        self.answers.append(
            (
                list(zip(columns, types, strict=True)),
                [[_athena_text(v) for v in row] for row in rows],
            )
        )
        return QueryResult(columns, rows)

    def close(self) -> None:
        self.connection.close()


@pytest.mark.dbt
def test_on_the_scored_lake_athena_gives_the_duckdb_facts_and_report(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from ml.layout import MlLayout
    from python_jobs.tests.assistant_report_lake import LAST_DAY, scored_lake

    lake = scored_lake(tmp_path_factory)
    local_monitoring = LocalMonitoring(MlLayout(lake).monitoring)
    flagged = scored = 0
    for day in (LAST_DAY, LAST_DAY - timedelta(days=1), LAST_DAY - timedelta(days=3)):
        duck = DuckDBWarehouse(lake)
        try:
            expected = compute_facts(duck, lake, day)
        finally:
            duck.close()
        transpiled = TranspiledWarehouse(lake)
        try:
            assert compute_facts(transpiled, lake, day) == expected, day
        finally:
            transpiled.close()

        # the same answers as Athena result pages, through the Stubber
        client = offline_client("athena")
        s3_client = offline_client("s3")
        sent = Capture()
        with Stubber(client) as stubber, Stubber(s3_client) as s3_stubber:
            for i, (columns, rows) in enumerate(transpiled.answers):
                expect_query(stubber, f"q-{i}", sent, columns, rows)
            if expected["model_health"]["available"]:
                report = local_monitoring.read(expected["model_health"]["monitoring_date"])
                expect_monitoring_on_s3(s3_stubber, report)
            else:
                s3_stubber.add_response(
                    "list_objects_v2", {"KeyCount": 0}, {"Bucket": "lake", "Prefix": "monitoring/"}
                )
            on_athena = compute_facts(
                warehouse_on(client),
                lake,
                day,
                FactsConfig(),
                S3Monitoring("lake", "monitoring/", s3_client),
            )
            stubber.assert_no_pending_responses()
            s3_stubber.assert_no_pending_responses()
        assert on_athena == expected, day
        for sql in sent.values:
            assert_athena_sql(sql)
        for lang in ("pt", "en"):
            assert (
                render_report(on_athena, lang, "offline").markdown()
                == render_report(expected, lang, "offline").markdown()
            )
        flagged += expected["anomalies"]["count"]
        scored += expected["alerts"]["available"]
    assert flagged and scored, "no anomaly or no scored day: the comparison proved little"
