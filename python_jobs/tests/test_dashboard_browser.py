"""The dashboard in a real browser: `banklake dashboard` started on 127.0.0.1, Debian's chromium
driven by Playwright (executable_path: no browser is downloaded), every page opened while
another process holds the database for writing (a build), key figures compared with SQL over
the marts, a verdict given twice during that build (recorded once, pending, nothing in raw)
that lands in raw exactly once when the build ends (a third click adds nothing), no PII in
any page, and a screenshot of each page saved as a test artifact
(test-artifacts/dashboard/; with BANKLAKE_UPDATE_SCREENSHOTS=1 also the README's small copies
in docs/images/dashboard/)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest

from python_jobs.dashboard import text
from python_jobs.dashboard.browser import (
    CHROMIUM,
    PAGE_TIMEOUT_MS,
    READY_TEXT,
    chromium,
    open_page,
    shown_metrics,
)
from python_jobs.dashboard.server import running_dashboard
from python_jobs.feedback import PendingVerdict, pending_files
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import ALERT_VERDICTS, CUSTOMERS, FRAUD_REPORTS
from python_jobs.lake.writer import read_json_lines
from python_jobs.tests.assistant_report_lake import LAST_DAY, scored_lake
from python_jobs.tests.lake_writer_process import database_held_for_writing

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PROJECT_DIR = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BANKLAKE_TEST_ARTIFACTS", PROJECT_DIR / "test-artifacts"))
README_IMAGES = PROJECT_DIR / "docs" / "images" / "dashboard"
README_WIDTH = 900  # the README's copies: small PNGs
pytestmark = pytest.mark.dbt


def require_chromium() -> Path:
    """Debian's chromium, or a skip that says how to get it (a failure under CI)."""
    if CHROMIUM.is_file():
        return CHROMIUM
    message = (
        f"Debian's chromium is not installed ({CHROMIUM}): `make test` installs it as root "
        "(.ci/install-debian-packages); without root run `sudo apt-get install chromium` (README)"
    )
    if os.environ.get("BANKLAKE_CI") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Running:
    lake: Lake
    url: str
    end_build: Callable[[], None]  # releases the database (the module's last test does)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`banklake dashboard` on a copy of a scored, published lake whose database another
    process holds for writing (a build) until the verdict test ends that build."""
    require_chromium()
    built = scored_lake(tmp_path_factory)
    root = tmp_path_factory.mktemp("browser")
    lake = Lake(root / "lake")
    shutil.copytree(built.root, lake.root, symlinks=True)
    env = {
        "BANKLAKE_DBT_TARGET_PATH": str(built.root.parent / "target"),
        "BANKLAKE_SERVING_URL": "http://127.0.0.1:9",
        "BANKLAKE_ASSISTANT_PROVIDER": "offline",
    }
    with ExitStack() as build, ExitStack() as running:
        build.enter_context(database_held_for_writing(lake.database))
        url = running.enter_context(
            running_dashboard(
                lake, log=root / "dashboard.log", investigator="browser.test", extra_env=env
            )
        )
        yield Running(lake, url, build.close)


@pytest.fixture(scope="module")
def browser(dashboard: Running) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1300})
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """The page as a test artifact; with BANKLAKE_UPDATE_SCREENSHOTS=1 the README's copy too."""
    page.wait_for_timeout(1500)  # charts finish painting (not a check)
    target = ARTIFACTS / "dashboard" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    if os.environ.get("BANKLAKE_UPDATE_SCREENSHOTS") == "1":
        from PIL import Image

        README_IMAGES.mkdir(parents=True, exist_ok=True)
        with Image.open(target) as image:
            height = round(image.height * README_WIDTH / image.width)
            small = image.convert("RGB").resize((README_WIDTH, height), Image.Resampling.LANCZOS)
            small.quantize(colors=64).save(README_IMAGES / f"{name}.png", optimize=True)
    return target


def sql(lake: Lake, statement: str, params: list[object] | None = None) -> list[tuple]:
    """SQL over the published marts (the database is held by the writer: its export)."""
    with duckdb.connect() as con:
        for mart in ("fct_daily_kpis", "fct_fraud_alerts", "fct_model_performance_daily"):
            con.execute(
                f"create view {mart} as select * from read_parquet("
                f"'{lake.curated / mart}/**/*.parquet', hive_partitioning = true)"
            )
        return con.execute(statement, params).fetchall()


def test_every_page_opens_with_the_figures_of_the_marts(page: Page, dashboard: Running) -> None:
    for path in READY_TEXT:
        open_page(page, dashboard.url, path)
        if path == "overview":
            shown = shown_metrics(page)
            ((n, volume, before),) = sql(
                dashboard.lake,
                "select sum(transactions) filter (where event_date = ?), "
                "sum(approved_volume_brl) filter (where event_date = ?), "
                "sum(transactions) filter (where event_date = ?) from fct_daily_kpis",
                [LAST_DAY, LAST_DAY, LAST_DAY - timedelta(days=1)],
            )
            assert shown["Transactions"] == text.count(n)
            assert shown["Approved volume"] == text.brl(volume)
            assert before > 0
        if path == "fraud":
            ((alerts,),) = sql(
                dashboard.lake,
                "select count(*) from fct_fraud_alerts where score_date = ?",
                [LAST_DAY],
            )
            assert shown_metrics(page)["Alerts"] == text.count(alerts)
        if path == "model-health":
            ((day,),) = sql(
                dashboard.lake, "select max(score_date) from fct_model_performance_daily"
            )
            assert shown_metrics(page)["Last scored day"] == str(day)
        screenshot(page, path)


def test_no_customer_name_or_cpf_in_any_page(page: Page, dashboard: Running) -> None:
    with duckdb.connect() as con:
        customers = con.execute(
            "select distinct full_name, cpf from read_json(?, format = 'newline_delimited')",
            [str(dashboard.lake.raw / CUSTOMERS.name / "*" / "*" / "*" / "*.jsonl.gz")],
        ).fetchall()
    for path in READY_TEXT:
        open_page(page, dashboard.url, path)
        body = page.inner_text("body")
        assert not [name for name, cpf in customers if name in body or cpf in body], path


def test_a_verdict_given_during_a_build_waits_for_it_and_a_second_click_adds_nothing(
    page: Page, dashboard: Running
) -> None:
    """While the database is held for writing (a build) the verdict is recorded in the pending
    queue, not in raw; once the build ends, the fraud page lands it, exactly once. The
    module's last test: it ends the build the other tests load the pages during."""
    from playwright.sync_api import expect

    lake = dashboard.lake
    open_page(page, dashboard.url, "fraud")
    page.get_by_test_id("stSelectbox").filter(has_text="Alert").first.click()
    option = page.get_by_role("option").nth(2)
    label = option.inner_text().strip()
    transaction_id = label.split(" ", 1)[1]
    option.click()
    expect(page.get_by_text(f"{transaction_id}: not reviewed")).to_be_visible(
        timeout=PAGE_TIMEOUT_MS
    )
    page.get_by_role("button", name="Confirm fraud").click()
    expect(page.get_by_text("A build is running")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_text("waiting for the running build: fraud")).to_be_visible(
        timeout=PAGE_TIMEOUT_MS
    )
    assert not [p for p in lake.raw_files(FRAUD_REPORTS) if "-analyst-" in p.name]
    assert not lake.raw_files(ALERT_VERDICTS)
    (pending,) = pending_files(lake)
    given = PendingVerdict.read(pending)
    assert (given.transaction_id, given.verdict, given.investigator) == (
        transaction_id,
        "fraud",
        "browser.test",
    )
    assert given.report_id is not None  # a confirmed fraud: its report lands with it
    screenshot(page, "fraud-feedback")

    page.get_by_role("button", name="Confirm fraud").click()  # the second click
    expect(page.get_by_text("Already recorded")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    assert pending_files(lake) == [pending]
    assert not lake.raw_files(ALERT_VERDICTS)

    # the build ends; the fraud page, opened again, lands what waited: in raw exactly once
    dashboard.end_build()
    open_page(page, dashboard.url, "fraud")
    analyst = [p for p in lake.raw_files(FRAUD_REPORTS) if "-analyst-" in p.name]
    (verdict,) = lake.raw_files(ALERT_VERDICTS)
    assert len(analyst) == 1 and not pending_files(lake)
    assert [r["transaction_id"] for r in read_json_lines(analyst[0])] == [transaction_id]
    assert [r["verdict"] for r in read_json_lines(verdict)] == ["fraud"]
    page.get_by_test_id("stSelectbox").filter(has_text="Alert").first.click()
    page.get_by_role("option").filter(has_text=transaction_id).first.click()
    page.get_by_role("button", name="Confirm fraud").click()  # once more, after it landed
    expect(page.get_by_text("Already recorded")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    assert [p for p in lake.raw_files(FRAUD_REPORTS) if "-analyst-" in p.name] == analyst
    assert lake.raw_files(ALERT_VERDICTS) == [verdict]
