"""What `make demo` shows of the assistant: the day's report and two sample questions, all
offline (no model, no network), through the same guard and read-only warehouse as
`banklake report` and `banklake ask`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from python_jobs.assistant.ask import ask, open_assistant, render_answer
from python_jobs.assistant.llm import OfflineProvider
from python_jobs.assistant.report import ReportResult, write_daily_report
from python_jobs.lake.layout import Lake

# One question in each language the offline intents understand.
SAMPLE_QUESTIONS = (
    "taxa de fraude por canal nos últimos 7 dias",
    "top 5 customers by spend last 30 days",
)


def reports_dir(lake: Lake) -> Path:
    """Beside the lake folder: `reports/` at the project root for the default `lake/`."""
    return lake.root.resolve().parent / "reports"


def demo_assistant(lake: Lake, *, say: Callable[[str], None] = print) -> ReportResult:
    report = write_daily_report(lake, out_dir=reports_dir(lake), provider=OfflineProvider())
    say(f"    {report.summary()}")
    with open_assistant("duckdb", lake) as (warehouse, context):
        for question in SAMPLE_QUESTIONS:
            answer = ask(question, provider=OfflineProvider(), warehouse=warehouse, context=context)
            say(f"\n$ banklake ask {question!r}")
            say(render_answer(answer).rstrip())
    return report
