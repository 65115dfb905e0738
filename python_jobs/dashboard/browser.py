"""Debian's chromium, driven by Playwright, on the running dashboard: for the browser test and
the page benchmark (development tools: playwright is in the dev lock, imported only here).

Chromium is never downloaded: Playwright launches /usr/bin/chromium (`executable_path`);
`make test` installs it when missing (.ci/install-debian-packages)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from python_jobs.dashboard.pages import PAGES

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
# url path -> a text the page shows once its script has run
READY_TEXT = {page.url_path: page.ready_text for page in PAGES}
# a bound for a busy machine: how long to wait, never a claim about speed
PAGE_TIMEOUT_MS = 90_000


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(page: Page, base_url: str, path: str) -> None:
    """Goes to a page and waits until its script has run: its ready text shown, Streamlit's
    running indicator gone. An exception shown by Streamlit fails."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/{'' if path == 'overview' else path}")
    expect(page.get_by_text(READY_TEXT[path]).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=PAGE_TIMEOUT_MS)
    if page.get_by_test_id("stException").count():
        raise AssertionError(f"{path}: {page.get_by_test_id('stException').first.inner_text()}")


def shown_metrics(page: Page) -> dict[str, str]:
    """Every st.metric on the page: label -> value as shown. Read until two reads agree:
    Streamlit may still be replacing the elements of a run just finished."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    previous: dict[str, str] | None = None
    for _ in range(20):
        found = {}
        for metric in page.get_by_test_id("stMetric").all():
            label = metric.get_by_test_id("stMetricLabel").inner_text().strip()
            found[label] = metric.get_by_test_id("stMetricValue").inner_text().strip()
        if found and found == previous:
            return found
        previous = found
        page.wait_for_timeout(250)
    raise AssertionError(f"the page's metrics did not settle: {previous}")
