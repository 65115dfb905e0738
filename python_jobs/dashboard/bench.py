"""`banklake dashboard --bench`: how long each page takes to render on a lake, recorded.

Two measures per page, each over `runs` fresh browser sessions (a new session opens its own
warehouse: nothing cached, as for an analyst opening the dashboard):

- **server**: the page's script run in Streamlit's AppTest — the queries and building the
  page — cold (a new session) and warm (the same page again in that session: the session's
  cache); plus the overview with a customer-segment filter, a slice summed from
  fct_daily_kpis_by_segment rather than fct_daily_kpis;
- **browser** (when Debian's chromium is there): from navigating to the page to its content
  shown and Streamlit idle, against `banklake dashboard` itself (a fresh server per run) —
  what an analyst waits. Each load is a new server session (its own warehouse), in a browser
  whose cache already holds Streamlit's frontend: first with nothing queried yet on that
  export (the first analyst after a publish), then again (results shared between sessions,
  session.SharedResults). A browser's very first visit, which downloads the frontend, is
  recorded on the live page (no query).

The goal is every page under 2 s. The record goes to `<out>/dashboard-<UTC time>.json` and
`.md`, with the lake's size and the machine's load; no test asserts a time (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_jobs.dashboard.config import SERVING_URL_ENV, TARGET_ENV
from python_jobs.dashboard.pages import PAGES
from python_jobs.dashboard.session import SESSION_KEY, SHARED
from python_jobs.environment import variables_set
from python_jobs.lake.layout import LAKE_DIR_ENV, Lake
from python_jobs.lake.published import current

GOAL_SECONDS = 2.0
APP = Path(__file__).parent / "app" / "main.py"
SEGMENT_FILTER = "overview, segment filter"
# nothing listens there: the live page's probe fails at once, as with no service running
NO_SERVICE = "http://127.0.0.1:9"
Say = Callable[[str], None]


@dataclass
class PageTiming:
    page: str
    server_cold: list[float] = field(default_factory=list)
    server_warm: list[float] = field(default_factory=list)
    browser: list[float] = field(default_factory=list)  # a page load, nothing queried yet
    browser_shared: list[float] = field(default_factory=list)  # again, results shared
    first_visit: list[float] = field(default_factory=list)  # a browser with nothing cached

    def worst_cold(self) -> float:
        """The measure the goal is judged on: the browser's when measured, else the server's."""
        return max(self.browser or self.server_cold)


@dataclass(frozen=True)
class LakeSize:
    transactions: int
    days: int
    alerts: int
    marts_rows: int


def lake_size(lake: Lake) -> LakeSize:
    from python_jobs.assistant.warehouse import DuckDBWarehouse

    published = current(lake)
    warehouse = DuckDBWarehouse(lake)
    try:
        ((days,),) = warehouse.query(
            "select count(distinct event_date) from curated.fct_daily_kpis"
        ).rows
    finally:
        warehouse.close()
    marts = published.marts
    return LakeSize(
        transactions=marts["fct_transactions"].rows,
        days=int(days),
        alerts=marts["fct_fraud_alerts"].rows if "fct_fraud_alerts" in marts else 0,
        marts_rows=sum(m.rows for m in marts.values()),
    )


def _timed(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def time_server(lake: Lake, runs: int, say: Say) -> dict[str, PageTiming]:
    """Each page's script run in AppTest: cold in a new session, then warm."""
    from streamlit.testing.v1 import AppTest

    timings = {page.url_path: PageTiming(page.url_path) for page in PAGES}
    timings[SEGMENT_FILTER] = PageTiming(SEGMENT_FILTER)
    environment = {LAKE_DIR_ENV: str(lake.root), TARGET_ENV: "duckdb", SERVING_URL_ENV: NO_SERVICE}
    with variables_set(environment):
        AppTest.from_file(str(APP), default_timeout=300).run()  # imports: once per process
        for run in range(runs):
            for page in PAGES:
                at = AppTest.from_file(str(APP), default_timeout=300)
                at.run()  # the default page, in order to switch (not timed)
                at.switch_page(f"views/{page.file}")
                # a session that has queried nothing, its own new warehouse, and nothing in
                # the results other sessions share: as the first analyst after a publish
                at.session_state[SESSION_KEY].close()
                del at.session_state[SESSION_KEY]
                SHARED.clear()
                timings[page.url_path].server_cold.append(_timed(at.run))
                timings[page.url_path].server_warm.append(_timed(at.run))
                if page.url_path == "overview":
                    segments = at.multiselect(key="overview_segments")
                    segments.set_value(segments.options[:1])
                    timings[SEGMENT_FILTER].server_cold.append(_timed(at.run))
                    timings[SEGMENT_FILTER].server_warm.append(_timed(at.run))
            say(f"    server, run {run + 1}/{runs} done")
    return timings


def time_browser(lake: Lake, runs: int, timings: dict[str, PageTiming], say: Say) -> bool:
    """Each page in Chromium against `banklake dashboard`, a fresh server per run; False when
    Debian's chromium is not installed (nothing measured)."""
    from python_jobs.dashboard.browser import CHROMIUM, chromium
    from python_jobs.dashboard.server import running_dashboard

    if not CHROMIUM.is_file():
        say(f"    browser: not measured ({CHROMIUM} is not installed)")
        return False
    with tempfile.TemporaryDirectory() as scratch, chromium() as browser:
        for run in range(runs):
            log = Path(scratch) / f"dashboard-{run}.log"
            env = {SERVING_URL_ENV: NO_SERVICE}
            with running_dashboard(lake, log=log, extra_env=env) as url:
                first = browser.new_context()  # a browser that has never seen the dashboard
                tab = first.new_page()
                first_visit = _load(tab, url, "live")  # the frontend's files; no query
                for page in PAGES:
                    # a new server session: its own warehouse, nothing shared yet (cold)
                    timings[page.url_path].browser.append(_load(tab, url, page.url_path))
                    # another new session: what the previous one queried is shared
                    timings[page.url_path].browser_shared.append(_load(tab, url, page.url_path))
                timings["live"].first_visit.append(first_visit)
                first.close()
            say(f"    browser, run {run + 1}/{runs} done")
    return True


def _load(tab: Any, url: str, path: str) -> float:
    from python_jobs.dashboard.browser import open_page

    started = time.perf_counter()
    open_page(tab, url, path)
    return time.perf_counter() - started


@dataclass(frozen=True)
class BenchRecord:
    measured_at: str
    lake: str
    size: LakeSize
    runs: int
    machine: dict[str, Any]
    pages: list[PageTiming]
    browser_measured: bool

    def verdicts(self) -> list[tuple[str, float, bool]]:
        return [(p.page, p.worst_cold(), p.worst_cold() < GOAL_SECONDS) for p in self.pages]


def run_bench(
    lake: Lake, *, runs: int = 3, out: Path = Path("bench/results"), say: Say = print
) -> tuple[BenchRecord, Path, Path]:
    """Measures every page (module docstring) and writes the record; returns it and its
    JSON and Markdown paths."""
    size = lake_size(lake)
    say(
        f"dashboard bench: {size.transactions:,} transactions over {size.days} days, "
        f"{runs} run(s) per page"
    )
    machine = {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    timings = time_server(lake, runs, say)
    browser = time_browser(lake, runs, timings, say)
    record = BenchRecord(
        measured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        lake=str(lake.root),
        size=size,
        runs=runs,
        machine=machine,
        pages=list(timings.values()),
        browser_measured=browser,
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"dashboard-{record.measured_at.replace('-', '').replace(':', '')}"
    json_path, markdown_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render(record), encoding="utf-8")
    say(render(record))
    return record, json_path, markdown_path


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "–"


def _worst(values: list[float]) -> str:
    return f"{max(values):.2f}" if values else "–"


def render(record: BenchRecord) -> str:
    size = record.size
    lines = [
        f"# Dashboard pages, {record.measured_at}",
        "",
        f"Lake: {size.transactions:,} transactions over {size.days} days, {size.alerts:,} "
        f"alerts, {size.marts_rows:,} rows in the published marts. {record.runs} run(s) per "
        f"page; {record.machine['cpus']} CPUs, load average at the start "
        f"{record.machine['load_average_at_start']}.",
        "",
        "Seconds. Server: the page's script in AppTest, cold (a new session, nothing cached "
        "or shared) and warm (the same page again in that session). Browser: navigating to "
        "the page until it is shown and Streamlit idle, a new server session each time, "
        "Streamlit's frontend in the browser's cache, cold (nothing queried yet on the export: "
        "the first analyst after a publish) and shared (another session after it). First "
        "visit: a browser that has never loaded the dashboard (live page, no query).",
        "",
        "| page | server cold (median / worst) | server warm | browser cold (median / worst) "
        "| browser shared | first visit | under 2 s (browser cold, worst) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for timing, (_, worst, met) in zip(record.pages, record.verdicts(), strict=True):
        lines.append(
            f"| {timing.page} | {_median(timing.server_cold)} / {_worst(timing.server_cold)} "
            f"| {_median(timing.server_warm)} "
            f"| {_median(timing.browser)} / {_worst(timing.browser)} "
            f"| {_median(timing.browser_shared)} | {_median(timing.first_visit)} "
            f"| {'yes' if met else 'no'} ({worst:.2f}) |"
        )
    if not record.browser_measured:
        lines += ["", "The browser was not measured: Debian's chromium is not installed."]
    return "\n".join(lines) + "\n"
