"""The dashboard's pages with Streamlit's AppTest on a really built, scored and published lake:
every key figure equals SQL over the marts, the dashboard and the daily report agree on every
number they both show, the feedback writes raw exactly once (after the build when one runs),
no PII reaches a page, and the pages keep working while another process writes the database
and while a real `banklake build` rebuilds the lake."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pandas as pd
import pytest
from botocore.stub import Stubber
from streamlit.testing.v1 import AppTest

from ml.features import FEATURES
from python_jobs.assistant.report_facts import FactsSQL, compute_facts
from python_jobs.assistant.warehouse import DuckDBWarehouse
from python_jobs.aws.athena import PRICE_PER_TB_USD
from python_jobs.dashboard import figures, text
from python_jobs.dashboard.config import (
    INVESTIGATOR_ENV,
    SERVING_URL_ENV,
    TARGET_ENV,
    DashboardConfig,
)
from python_jobs.dashboard.figures import QUEUE_LENGTH
from python_jobs.dashboard.pages import PAGES as DASHBOARD_PAGES
from python_jobs.dashboard.server import running_dashboard
from python_jobs.dashboard.session import (
    SESSION_KEY,
    SharedResults,
    open_warehouse,
)
from python_jobs.export import export_curated
from python_jobs.feedback import pending_files
from python_jobs.lake.layout import LAKE_DIR_ENV, Lake
from python_jobs.lake.published import current
from python_jobs.lake.schemas import ALERT_VERDICTS, CUSTOMERS, FRAUD_REPORTS
from python_jobs.serve.server import running_service
from python_jobs.summary import summarize
from python_jobs.tests.assistant_report_lake import LAST_DAY, scored_lake
from python_jobs.tests.lake_writer_process import (
    build_lock_held,
    build_lock_is_held,
    database_held_for_writing,
)
from python_jobs.tests.test_assistant_athena import ENV, expect_query
from python_jobs.tests.test_assistant_report_athena import TranspiledWarehouse

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app" / "main.py"
VIEWS = APP.parent / "views"
PAGES = ("overview", "fraud", "model_health", "data_quality", "ask", "live")
pytestmark = pytest.mark.dbt


@dataclass(frozen=True)
class Built:
    lake: Lake
    target: Path  # dbt's target folder of that build (the assistant's schema context)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    lake = scored_lake(tmp_path_factory)
    return Built(lake, lake.root.parent / "target")


@pytest.fixture
def own_lake(built: Built, tmp_path: Path) -> Built:
    """A copy to write into (verdicts, quarantine notes, new exports)."""
    lake = Lake(tmp_path / "lake")
    shutil.copytree(built.lake.root, lake.root, symlinks=True)
    return Built(lake, built.target)


def app(built: Built, monkeypatch: pytest.MonkeyPatch, script: Path = APP) -> AppTest:
    """The dashboard (or one page's script alone) on `built`, DuckDB target."""
    monkeypatch.setenv(LAKE_DIR_ENV, str(built.lake.root))
    monkeypatch.setenv(TARGET_ENV, "duckdb")
    monkeypatch.setenv(INVESTIGATOR_ENV, "test.investigator")
    monkeypatch.setenv(SERVING_URL_ENV, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("BANKLAKE_DBT_TARGET_PATH", str(built.target))
    monkeypatch.delenv("BANKLAKE_ASSISTANT_PROVIDER", raising=False)
    return AppTest.from_file(str(script), default_timeout=120)


def open_page(at: AppTest, page: str) -> AppTest:
    if not at._tree.children:  # a page switch takes effect only once the app has run
        at.run()
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest, *columns: str, index: int = 0) -> pd.DataFrame:
    """The page's `index`-th table that has all of `columns` (AppTest gives tables no key)."""
    found = [f.value for f in at.dataframe if set(columns) <= set(f.value.columns)]
    assert len(found) > index, f"no table with {columns}"
    return found[index]


def metrics(at: AppTest) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def sql(built: Built, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Independent reads: the database dbt built, not the dashboard's warehouse."""
    with duckdb.connect(str(built.lake.database), read_only=True) as con:
        return con.execute(statement, params).fetchall()


# --- overview ---------------------------------------------------------------------------------


def test_overview_kpis_equal_sql_over_the_marts(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "overview")
    shown = metrics(at)
    ((n, approved, volume, frauds, loss),) = sql(
        built,
        "select sum(transactions), sum(approved_transactions), sum(approved_volume_brl), "
        "sum(fraud_transactions), sum(fraud_loss_brl) from curated.fct_daily_kpis "
        "where event_date = ?",
        [LAST_DAY],
    )
    ((before,),) = sql(
        built,
        "select sum(transactions) from curated.fct_daily_kpis where event_date = ?",
        [LAST_DAY - timedelta(days=1)],
    )
    assert shown["Transactions"][0] == text.count(n)
    assert shown["Transactions"][1] == text.change(round(100 * (n - before) / before, 2), "pct")
    assert shown["Approved volume"][0] == text.brl(volume)
    assert shown["Average ticket"][0] == text.brl(round(float(volume) / approved, 2))
    assert shown["Approval rate"][0] == text.pct(round(100 * approved / n, 2))
    assert shown["Frauds reported so far"][0] == text.count(frauds)
    assert shown["Fraud loss so far"][0] == text.brl(loss)
    assert shown["Fraud rate so far"][0] == text.pct(round(100 * frauds / n, 2))


def test_overview_and_the_report_agree_on_every_number(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "overview")
    shown = metrics(at)
    warehouse = DuckDBWarehouse(built.lake)
    try:
        facts = compute_facts(warehouse, built.lake)
    finally:
        warehouse.close()
    assert facts["report_date"] == LAST_DAY.isoformat()
    for kpi in facts["kpis"]["metrics"]:
        value, delta = shown[text.KPI_LABELS[kpi["metric"]]]
        assert value == text.show(kpi["value"], kpi["unit"]), kpi["metric"]
        # the overview's default period is the report's day, against the day before
        assert delta == (text.change(kpi["previous_day_change"], kpi["change_unit"]) or ""), kpi
    anomalies = table(at, "robust_z", "direction") if facts["anomalies"]["items"] else None
    if anomalies is not None:
        assert list(anomalies["value"]) == [i["value"] for i in facts["anomalies"]["items"]]
        assert list(anomalies["robust_z"]) == [i["robust_z"] for i in facts["anomalies"]["items"]]


def test_overview_filters_slice_the_kpis(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "overview")
    first = LAST_DAY - timedelta(days=6)
    at.date_input(key="overview_days").set_value((first, LAST_DAY))
    at.multiselect(key="overview_channels").set_value(["mobile"])
    at.run()
    ((n, volume),) = sql(
        built,
        "select sum(transactions), sum(approved_volume_brl) from curated.fct_daily_kpis "
        "where event_date between ? and ? and channel = 'mobile'",
        [first, LAST_DAY],
    )
    assert metrics(at)["Transactions"][0] == text.count(n)
    assert metrics(at)["Approved volume"][0] == text.brl(volume)
    # a segment is not in fct_daily_kpis (the page sums fct_daily_kpis_by_segment): checked
    # against the transactions themselves
    (segment,) = sql(built, "select min(segment) from curated.dim_customers")[0]
    at.multiselect(key="overview_segments").set_value([segment])
    at.run()
    ((n, frauds),) = sql(
        built,
        "select count(*), count(*) filter (where t.is_fraud_reported) "
        "from curated.fct_transactions t join curated.dim_customers c using (customer_id) "
        "where t.event_date between ? and ? and t.channel = 'mobile' and c.segment = ?",
        [first, LAST_DAY, segment],
    )
    assert metrics(at)["Transactions"][0] == text.count(n)
    assert metrics(at)["Frauds reported so far"][0] == text.count(frauds)


# --- fraud and alerts -------------------------------------------------------------------------


def test_fraud_page_agrees_with_the_report_and_the_marts(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "fraud")
    shown = metrics(at)
    warehouse = DuckDBWarehouse(built.lake)
    try:
        facts = compute_facts(warehouse, built.lake)["alerts"]
    finally:
        warehouse.close()
    assert shown["Alerts"][0] == text.count(facts["alerts"])
    assert shown["Alert rate"][0] == text.pct(facts["alert_rate_pct"])
    assert shown["Precision so far"][0] == text.pct(facts["precision_so_far_pct"])
    queue = table(at, "transaction_id", "reasons", "counterparty")
    ((alerts,),) = sql(
        built, "select count(*) from curated.fct_fraud_alerts where score_date = ?", [LAST_DAY]
    )
    assert alerts == facts["alerts"] > 0
    assert len(queue) == min(alerts, QUEUE_LENGTH)  # the first QUEUE_LENGTH by rank
    if alerts > QUEUE_LENGTH:
        assert f"The first {text.count(QUEUE_LENGTH)} of {text.count(alerts)} alerts" in " ".join(
            c.value for c in at.caption
        )
    top = [(i["transaction_id"], i["score"]) for i in facts["top"]]
    assert list(zip(queue["transaction_id"], queue["score"], strict=False))[: len(top)] == top
    losses = {
        value: loss
        for value, loss in sql(
            built,
            "select dimension_value, fraud_loss_brl from curated.fct_risk_analysis "
            "where dimension = 'channel'",
        )
    }
    shown_losses = table(at, "value", "loss_brl", index=1)  # the channel tab
    assert dict(zip(shown_losses["value"], shown_losses["loss_brl"], strict=True)) == {
        k: float(v) for k, v in losses.items()
    }


def _alert_under_review(own_lake: Built, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """The fraud page with its second queued alert picked for review, and that alert's
    transaction id."""
    at = open_page(app(own_lake, monkeypatch), "fraud")
    label = at.selectbox(key="review_alert").options[1]
    at.selectbox(key="review_alert").set_value(label)
    at.run()
    return at, label.split(" ", 1)[1]


def test_a_verdict_from_the_page_lands_in_raw_exactly_once(own_lake: Built, monkeypatch) -> None:
    lake = own_lake.lake
    at, transaction_id = _alert_under_review(own_lake, monkeypatch)
    at.button(key="verdict_fraud").click()
    at.run()
    assert any("Recorded" in s.value for s in at.success)
    analyst = [p for p in lake.raw_files(FRAUD_REPORTS) if "-analyst-" in p.name]
    verdicts = lake.raw_files(ALERT_VERDICTS)
    assert len(analyst) == len(verdicts) == 1
    with gzip.open(verdicts[0], "rt") as handle:
        given = json.loads(handle.readline())
    assert (given["transaction_id"], given["verdict"]) == (transaction_id, "fraud")
    assert given["investigator"] == "test.investigator"
    at.button(key="verdict_fraud").click()  # the second click
    at.run()
    assert any("Already recorded" in i.value for i in at.info)
    assert [p for p in lake.raw_files(FRAUD_REPORTS) if "-analyst-" in p.name] == analyst
    assert lake.raw_files(ALERT_VERDICTS) == verdicts
    caption = " ".join(c.value for c in at.caption)
    assert f"{transaction_id}: not reviewed in the marts; verdicts in raw: fraud." in caption


def test_a_verdict_given_during_a_build_lands_when_it_ends(own_lake: Built, monkeypatch) -> None:
    lake = own_lake.lake
    at, transaction_id = _alert_under_review(own_lake, monkeypatch)
    with build_lock_held(lake):  # another process builds: raw must not change
        at.button(key="verdict_legitimate").click()
        at.run()
        assert any("A build is running" in s.value for s in at.success)
        at.button(key="verdict_legitimate").click()  # the second click
        at.run()
        assert any("when the running build ends" in i.value for i in at.info)
        assert not lake.raw_files(ALERT_VERDICTS)
        assert len(pending_files(lake)) == 1
        caption = " ".join(c.value for c in at.caption)
        waiting = "verdicts in raw: none; waiting for the running build: legitimate."
        assert f"{transaction_id}: not reviewed in the marts; {waiting}" in caption
    at.run()  # the page runs again once the build has ended: what waited lands, once
    (verdict,) = lake.raw_files(ALERT_VERDICTS)
    assert not pending_files(lake)
    with gzip.open(verdict, "rt") as handle:
        given = json.loads(handle.readline())
    assert (given["transaction_id"], given["verdict"]) == (transaction_id, "legitimate")
    caption = " ".join(c.value for c in at.caption)
    assert f"{transaction_id}: not reviewed in the marts; verdicts in raw: legitimate." in caption


def test_a_bad_investigator_name_is_refused_on_the_page(own_lake: Built, monkeypatch) -> None:
    at = open_page(app(own_lake, monkeypatch), "fraud")
    at.text_input(key="investigator").set_value("")
    at.run()
    at.button(key="verdict_legitimate").click()
    at.run()
    assert any("investigator" in e.value for e in at.error)
    assert not own_lake.lake.raw_files(ALERT_VERDICTS)


# --- model health -----------------------------------------------------------------------------


def test_model_health_shows_performance_drift_and_the_champion(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "model_health")
    shown = metrics(at)
    ((day, precision),) = sql(
        built,
        "select score_date, precision_so_far from curated.fct_model_performance_daily "
        "order by score_date desc, model_version desc limit 1",
    )
    assert shown["Last scored day"][0] == str(day)
    assert shown["Precision so far"][0] == text.pct(
        None if precision is None else round(100 * precision, 2)
    )
    report = json.loads((built.lake.root / "monitoring" / f"{LAST_DAY}.json").read_text())
    assert shown["Verdict"][0] == report["verdict"]
    not_judged = table(at, "feature", "status", "note")
    marked = dict(zip(not_judged["feature"], not_judged["status"], strict=True))
    for feature in report["warming_up"]:
        assert marked[feature] == "warming up"
    assert set(marked) <= set(FEATURES) | set(report["feature_psi"])
    champion = json.loads((built.lake.root / "models/fraud_xgb/champion.json").read_text())
    assert any(champion["version"] in m.value for m in at.markdown)
    metrics_table = table(at, "roc_auc")
    version_metadata = json.loads(
        (built.lake.root / "models/fraud_xgb" / champion["version"] / "metadata.json").read_text()
    )
    assert set(metrics_table.index) == set(version_metadata["metrics"])


# --- data quality -----------------------------------------------------------------------------


def test_data_quality_counts_equal_the_lake_summary(own_lake: Built, monkeypatch) -> None:
    lake = own_lake.lake
    note = lake.quarantine / "raw/customers/year=2026/month=09/day=02/bad.jsonl.gz.reason.json"
    note.parent.mkdir(parents=True)
    note.write_text(
        json.dumps(
            {
                "file": "raw/customers/year=2026/month=09/day=02/bad.jsonl.gz",
                "feed": "customers",
                "reason": "line 3: cpf '529.982.247-25' of maria@example.com is not text",
                "quarantined_at": "2026-09-02T03:00:00Z",
            }
        )
    )
    at = open_page(app(own_lake, monkeypatch), "data_quality")
    shown = metrics(at)
    summary = summarize(lake)  # the database itself, per triaged model
    assert shown["Raw rows"][0] == text.count(sum(summary.raw_rows(f) for f in summary.processed))
    assert shown["Rejected"][0] == text.count(
        sum(c.get("rejected", 0) for c in summary.processed.values())
    )
    assert shown["Curated rows"][0] == text.count(sum(summary.curated.values()))
    assert shown["Quarantined files"][0] == "1"
    reason = table(at, "quarantined_at", "reason")["reason"][0]
    assert "529.982.247-25" not in reason and "maria@example.com" not in reason
    assert reason.count(text.REDACTED) == 2
    runs = table(at, "command", "failed")
    assert len(runs) >= 1 and set(runs["failed"]) == {0}


def test_data_quality_shows_each_job_s_latest_figures(own_lake: Built, monkeypatch) -> None:
    """The Job metrics view reads lake/metrics/: the generator's figures (the lake's own
    `generate`) and a summary emitted now, each job's latest values, and a history."""
    from python_jobs.pipeline import summarize_and_emit

    summary = summarize_and_emit(own_lake.lake)
    at = open_page(app(own_lake, monkeypatch), "data_quality")
    shown = table(at, "job", "metric", "dimensions", "value")
    assert {"generate", "summary"} <= set(shown["job"])
    raw = shown[(shown["metric"] == "LayerRows") & (shown["dimensions"] == "Layer=raw")]
    assert list(raw["value"]) == [sum(summary.raw_rows(f) for f in summary.processed)]
    generated = shown[(shown["job"] == "generate") & (shown["metric"] == "GeneratedRows")]
    assert generated["value"].sum() > 0
    assert at.selectbox(key="quality_metric_history").value == "summary: NewestDayRejectionRate"


# --- ask and live -----------------------------------------------------------------------------


def ask_sql(at: Any, query: str) -> Any:
    """Runs `query` through the Ask page's SQL mode; the table it shows."""
    at.radio(key="ask_mode").set_value("SQL")
    at.run()
    at.text_area(key="ask_sql").set_value(query)
    at.button(key="ask_run").click()
    at.run()
    return table(at)


def test_ask_runs_guarded_sql_and_shows_it(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "ask")
    rows = ask_sql(
        at, "select channel, sum(transactions) as n from curated.fct_daily_kpis group by channel"
    )
    expected = dict(
        sql(built, "select channel, sum(transactions) from curated.fct_daily_kpis group by 1")
    )
    assert dict(zip(rows["channel"], rows["n"], strict=True)) == expected
    assert "LIMIT" in at.code[0].value
    at.text_area(key="ask_sql").set_value("delete from curated.dim_customers")
    at.button(key="ask_run").click()
    at.run()
    assert any("refused" in w.value for w in at.warning)


def test_ask_answers_a_question_offline(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "ask")
    at.text_input(key="ask_question").set_value("taxa de fraude por canal nos últimos 7 dias")
    at.button(key="ask_run").click()
    at.run()
    assert "fct_daily_kpis" in at.code[0].value
    assert len(table(at)) > 0


def test_live_page_says_how_to_start_the_service(built: Built, monkeypatch) -> None:
    at = open_page(app(built, monkeypatch), "live")
    assert any("not running" in i.value and SERVING_URL_ENV in i.value for i in at.info)


def test_live_page_shows_the_running_service_s_decisions(
    own_lake: Built, monkeypatch, tmp_path: Path
) -> None:
    serving = own_lake
    with running_service(serving.lake, log=tmp_path / "serve.log") as service:
        payload = {
            "transaction_id": "TLIVE0001",
            "account_id": "A1",
            "customer_id": "C1",
            "event_ts": "2026-12-01 10:00:00",
            "transaction_type": "PIX",
            "channel": "mobile",
            "direction": "outbound",
            "amount": "99.90",
            "counterparty_key": "someone@example.com",
            "status": "approved",
        }
        answer = httpx.post(f"{service.url}/v1/transactions", json=payload).json()
        at = app(serving, monkeypatch)
        monkeypatch.setenv(SERVING_URL_ENV, service.url)
        at = open_page(at, "live")
    assert any(answer["model_version"] in s.value for s in at.success)
    decisions = table(at, "transaction_id", "decision", "latency_ms")
    assert decisions["transaction_id"].tolist() == ["TLIVE0001"]
    assert decisions["decision"].tolist() == [answer["decision"]]
    assert "someone@example.com" not in page_text(at)


# --- no PII on any page -----------------------------------------------------------------------


def page_text(at: AppTest) -> str:
    parts = [
        str(node.value)
        for kind in ("markdown", "caption", "info", "success", "warning")
        for node in getattr(at, kind)
    ]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for frame in at.dataframe:
        parts.append(frame.value.to_csv())
    return "\n".join(parts)


def test_no_customer_name_cpf_or_key_on_any_page(built: Built, monkeypatch) -> None:
    raw = built.lake.raw
    with duckdb.connect() as con:
        customers = con.execute(
            "select distinct full_name, cpf from read_json(?, format = 'newline_delimited')",
            [str(raw / CUSTOMERS.name / "*" / "*" / "*" / "*.jsonl.gz")],
        ).fetchall()
        keys = {
            key
            for (key,) in con.execute(
                "select distinct counterparty_key from read_parquet(?) "
                "where counterparty_key like '%@%' or counterparty_key like '+55%'",
                [str(raw / "transactions" / "*" / "*" / "*" / "*.parquet")],
            ).fetchall()
        }
    names = {name for name, _ in customers if name}
    cpfs = {cpf for _, cpf in customers if cpf}
    assert names and cpfs and keys
    at = app(built, monkeypatch)
    for page in PAGES:
        shown = page_text(open_page(at, page))
        assert not [n for n in names if n in shown], page
        assert not [c for c in cpfs if c in shown], page
        assert not [k for k in keys if k in shown], page


# --- the session's warehouse ------------------------------------------------------------------


def test_a_session_moves_to_a_newer_export(own_lake: Built, monkeypatch) -> None:
    at = open_page(app(own_lake, monkeypatch), "data_quality")
    before = at.session_state["banklake_warehouse"].published.version
    export_curated(own_lake.lake)
    open_page(at, "data_quality")
    after = at.session_state["banklake_warehouse"].published.version
    assert after != before


# On Athena: a real boto3 Athena client under botocore's Stubber (every request checked against
# the service model, no network), with the assistant's environment (test_assistant_athena.ENV:
# its own work group beside dbt's, which must not be used). expect_query queues the request
# shapes AthenaRunner sends — the query in the assistant's work group "banklake-assistant",
# the curated database as context, its own staging dir — and Athena's answers: the execution
# SUCCEEDED with the bytes it scanned, then the result page, header row first.


def athena_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("BANKLAKE_ATHENA_SCHEMA", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def billed_usd(megabytes: int) -> float:
    """Athena's on-demand price for `megabytes` billed (binary MB, $ per binary TB)."""
    return megabytes * 2**20 / 2**40 * PRICE_PER_TB_USD


def test_athena_queries_are_metered_and_cached_per_session(
    athena: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client, stubber = athena
    athena_environment(monkeypatch)
    config = DashboardConfig(Lake(tmp_path / "lake"), "athena", "test.investigator", "-")
    # in order: two queries of the first session, then the first one again in a new session;
    # a query the session sends again would meet the next expected QueryString and fail
    expect_query(stubber, "q-1", "select 1 as n", [("n", "bigint")], [["1"]], scanned=50_000_000)
    expect_query(stubber, "q-2", "select 2 as n", [("n", "bigint")], [["2"]], scanned=1_000)
    expect_query(stubber, "q-3", "select 1 as n", [("n", "bigint")], [["1"]], scanned=50_000_000)

    first = open_warehouse(config, athena_client_factory=lambda athena_config: client)
    assert first.dialect == "athena" and first.curated_schema == "banklake_curated"
    for _ in range(3):
        assert first.query("select 1 as n").rows == [(1,)]
    assert first.query("select 2 as n").rows == [(2,)]
    assert first.query("select 1 as n").rows == [(1,)]
    assert [(q.sql, q.bytes_scanned) for q in first.log] == [
        ("select 1 as n", 50_000_000),
        ("select 2 as n", 1_000),
    ]
    # billed per query: rounded up to the next MB (47.7 MB -> 48), at least 10 MB
    assert [q.cost_usd for q in first.log] == [
        pytest.approx(billed_usd(48)),
        pytest.approx(billed_usd(10)),
    ]
    assert first.bytes_scanned == 50_001_000
    assert first.cost_usd == pytest.approx(billed_usd(58))

    second = open_warehouse(config, athena_client_factory=lambda athena_config: client)
    assert second.query("select 1 as n").rows == [(1,)]  # a new session asks Athena again
    assert [q.bytes_scanned for q in second.log] == [50_000_000]
    assert len(first.log) == 2
    stubber.assert_no_pending_responses()


def expect_on_athena(
    stubber: Stubber,
    built: Built,
    query: Callable[[FactsSQL], str],
    query_id: str,
    scanned: int,
) -> str:
    """Queues Athena's answer to a query as a page builds it for the Athena target; returns
    the SQL the page must send. The answer is real: the same query on the built lake, its
    Athena SQL transpiled to DuckDB by sqlglot (TranspiledWarehouse, the report's own check),
    given back as Athena's typed text result pages."""
    replay = TranspiledWarehouse(built.lake)
    try:
        replay.query(query(FactsSQL.for_warehouse(replay)))
    finally:
        replay.close()
    ((columns, rows),) = replay.answers
    assert rows, "an empty answer would prove little"
    sql = query(FactsSQL("athena", "banklake_curated"))
    expect_query(stubber, query_id, sql, columns, rows, scanned=scanned)
    return sql


def test_a_page_on_athena_shows_each_querys_cost_and_reruns_from_the_session(
    built: Built, monkeypatch: pytest.MonkeyPatch, athena: tuple[Any, Stubber]
) -> None:
    """The data quality page (one query) on `--target athena`. The session's warehouse is
    opened the way session_warehouse opens it (open_warehouse, from the dashboard's own
    environment), on the Stubber's client, and handed to the page in its session state."""
    client, stubber = athena
    scanned = 987_654_321  # under the assistant work group's 1 GiB scan cutoff
    sent = expect_on_athena(stubber, built, figures.data_quality_sql, "q-quality", scanned)
    at = app(built, monkeypatch, VIEWS / "data_quality.py")
    monkeypatch.setenv(TARGET_ENV, "athena")
    athena_environment(monkeypatch)
    session = open_warehouse(
        DashboardConfig.from_env(), athena_client_factory=lambda athena_config: client
    )
    at.session_state[SESSION_KEY] = session
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    stubber.assert_no_pending_responses()
    assert at.session_state[SESSION_KEY] is session
    assert [(q.sql, q.bytes_scanned) for q in session.log] == [(sent, scanned)]

    summary = summarize(built.lake)  # the database dbt built, not Athena's answer
    shown = metrics(at)
    assert shown["Raw rows"][0] == text.count(sum(summary.raw_rows(f) for f in summary.processed))
    assert shown["Rejected"][0] == text.count(
        sum(c.get("rejected", 0) for c in summary.processed.values())
    )
    assert shown["Curated rows"][0] == "–"  # the published export's count: DuckDB only

    # 987,654,321 bytes: 987.7 MB shown; billed as 942 binary MB (941.9 rounded up)
    assert f"${billed_usd(942):.4f}" == "$0.0045"
    sidebar = [caption.value for caption in at.sidebar.caption]
    assert "1 query this session, 987.7 MB scanned, $0.0045" in sidebar, sidebar
    first_words = " ".join(sent.split())[:80]
    assert any(
        c.startswith("987.7 MB · $0.0045 · ") and c.endswith(f" s · {first_words}") for c in sidebar
    ), sidebar

    at.run()  # a rerun, as at every click: from the session's cache, no call to Athena
    assert not at.exception, [e.value for e in at.exception]
    assert len(session.log) == 1
    assert metrics(at)["Raw rows"] == shown["Raw rows"]
    assert "1 query this session, 987.7 MB scanned, $0.0045" in [
        caption.value for caption in at.sidebar.caption
    ]


def test_sessions_share_results_per_published_export(own_lake: Built) -> None:
    """Sessions open the dashboard's own warehouse (open_warehouse: DuckDB over the published
    export) with one SharedResults. A session's log lists every query that reached DuckDB:
    the second session on the same export answers from the first one's result, its log
    empty; after a newer export, with other data, the query runs again on the new export."""
    lake = own_lake.lake
    config = DashboardConfig(lake, "duckdb", "test.investigator", "-")
    shared = SharedResults()
    count = "select count(*) as n from curated.fct_transactions"
    published = current(lake)
    with (
        closing(open_warehouse(config, shared)) as first,
        closing(open_warehouse(config, shared)) as second,
    ):
        assert first.warehouse is not second.warehouse  # a connection each, as two sessions
        assert first.published.folder == second.published.folder == published.folder
        answer = first.query(count)
        assert answer.rows == [(published.marts["fct_transactions"].rows,)]
        assert [q.sql for q in first.log] == [count]
        assert second.query(count) is answer  # the first session's result...
        assert second.log == []  # ...and DuckDB was not asked

    # a newer export with fewer transactions: the last day's deleted from the database,
    # then exported the way the build publishes (python_jobs/export.py)
    with duckdb.connect(str(lake.database)) as con:
        (removed,) = con.execute(
            "delete from curated.fct_transactions where event_date = ?", [LAST_DAY]
        ).fetchall()[0]
    assert removed > 0
    export_curated(lake)
    with closing(open_warehouse(config, shared)) as newer:
        assert newer.published.folder != published.folder
        assert newer.query(count).rows == [(answer.rows[0][0] - removed,)]
        assert [q.sql for q in newer.log] == [count]  # another export: DuckDB asked again


# --- while another process writes the database -----------------------------------------------


@pytest.fixture
def database_being_written(own_lake: Built) -> Iterator[None]:
    with database_held_for_writing(own_lake.lake.database):
        yield


def test_every_page_works_while_a_build_holds_the_database(
    own_lake: Built, monkeypatch, database_being_written: None
) -> None:
    with pytest.raises(duckdb.IOException):
        duckdb.connect(str(own_lake.lake.database), read_only=True)
    at = app(own_lake, monkeypatch)
    for page in PAGES:
        open_page(at, page)
        assert not at.warning or page == "ask", [w.value for w in at.warning]
    assert metrics(open_page(at, "overview"))["Transactions"][0] != "–"


# --- during a real build ----------------------------------------------------------------------


def holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (Linux's /proc): how the test knows dbt, inside
    `banklake build`, holds the database, without opening it (an open, even read-only, would
    make dbt's own open fail)."""
    target = str(path.resolve())
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:  # the process has ended
        return False
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(fd))
        except FileNotFoundError:  # closed meanwhile
            continue
    return target in links


def wait_until_dbt_builds(lake: Lake, build: subprocess.Popen[bytes], log: Path) -> None:
    """Until `banklake build` holds the build lock and dbt holds the database open."""
    deadline = time.monotonic() + 300
    while not (build_lock_is_held(lake) and holds_open(build.pid, lake.database)):
        if build.poll() is not None:
            pytest.fail(f"the build ended before dbt held the database:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"dbt did not start in 300 s:\n{log.read_text()}")
        time.sleep(0.1)


def still_building(lake: Lake, build: subprocess.Popen[bytes]) -> bool:
    return (
        build.poll() is None and build_lock_is_held(lake) and holds_open(build.pid, lake.database)
    )


@contextmanager
def banklake_build(lake: Lake, dbt_target: Path, work: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`banklake build` on `lake` in its own process, as the daily job runs it, until the block
    ends (killed if the block fails first); its output in work/build.log. dbt's target is a
    copy of `dbt_target` (the first build's): dbt parses incrementally and starts sooner."""
    target = work / "build-target"
    shutil.copytree(dbt_target, target)
    env = {**os.environ, "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(work / "logs")}
    command = [sys.executable, "-m", "python_jobs.cli", "build", "--lake", str(lake.root)]
    with (work / "build.log").open("wb") as output:
        build = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield build
    finally:
        if build.poll() is None:
            build.kill()
        build.wait()


def test_every_page_works_during_a_real_build(own_lake: Built, monkeypatch, tmp_path: Path) -> None:
    """The dashboard reads the published export, never banklake.duckdb: while `banklake build`
    rebuilds the lake (build lock held, dbt holding the database), the running server answers,
    every page shows its key figures, and a verdict given meanwhile lands once, after it."""
    lake = own_lake.lake
    ((n,),) = sql(
        own_lake,
        "select sum(transactions) from curated.fct_daily_kpis where event_date = ?",
        [LAST_DAY],
    )
    ((alerts,),) = sql(
        own_lake, "select count(*) from curated.fct_fraud_alerts where score_date = ?", [LAST_DAY]
    )
    ((all_transactions,),) = sql(own_lake, "select sum(transactions) from curated.fct_daily_kpis")
    summary = summarize(lake)
    raw_rows = sum(summary.raw_rows(f) for f in summary.processed)
    before = current(lake).version
    env = {
        "BANKLAKE_DBT_TARGET_PATH": str(own_lake.target),
        SERVING_URL_ENV: "http://127.0.0.1:9",
        "BANKLAKE_ASSISTANT_PROVIDER": "offline",
    }
    log = tmp_path / "build.log"
    with (
        running_dashboard(lake, log=tmp_path / "dashboard.log", extra_env=env) as url,
        banklake_build(lake, own_lake.target, tmp_path) as build,
    ):
        wait_until_dbt_builds(lake, build, log)
        assert httpx.get(f"{url}/_stcore/health").text == "ok"
        for spec in DASHBOARD_PAGES:
            assert httpx.get(f"{url}/{spec.url_path}").status_code == 200, spec.url_path
        at = app(own_lake, monkeypatch)
        assert metrics(open_page(at, "overview"))["Transactions"][0] == text.count(n)
        open_page(at, "fraud")
        assert metrics(at)["Alerts"][0] == text.count(alerts)
        at.button(key="verdict_fraud").click()
        at.run()
        assert any("A build is running" in s.value for s in at.success)
        assert metrics(open_page(at, "model_health"))["Last scored day"][0] == str(LAST_DAY)
        assert metrics(open_page(at, "data_quality"))["Raw rows"][0] == text.count(raw_rows)
        open_page(at, "ask")
        answer = ask_sql(at, "select sum(transactions) as n from curated.fct_daily_kpis")
        assert answer["n"].tolist() == [all_transactions]
        assert any("not running" in i.value for i in open_page(at, "live").info)
        assert not lake.raw_files(ALERT_VERDICTS)  # the verdict waits for the build
        assert still_building(lake, build), "the build ended before the pages were loaded"
        assert build.wait(timeout=600) == 0, log.read_text()
    assert "1 investigator verdict(s) recorded during a build landed in raw" in log.read_text()
    assert len(lake.raw_files(ALERT_VERDICTS)) == 1
    assert len([p for p in lake.raw_files(FRAUD_REPORTS) if "-analyst-" in p.name]) == 1
    assert not pending_files(lake)
    assert current(lake).version != before  # the build published a new export
    assert metrics(open_page(at, "overview"))["Transactions"][0] == text.count(n)
    assert at.session_state["banklake_warehouse"].published.version == current(lake).version
