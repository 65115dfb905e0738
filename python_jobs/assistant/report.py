"""`banklake report`: the daily report, grounded in facts computed by SQL.

    facts (report_facts.py, SQL over the curated marts: DuckDB locally, Athena in production)
      -> summary prose (report_narrative.py): the template (offline provider, the default) or
         a language model whose text must pass its checks, else the template with a note
      -> the document (report_document.py): every table, chart and note from the facts
      -> Markdown (+ chart PNGs beside it) and one self-contained HTML file under reports/
         (report_render.py)

The model only writes the summary. This module runs the steps and writes the files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from python_jobs.assistant.formatting import load_template
from python_jobs.assistant.llm import Provider
from python_jobs.assistant.providers import make_provider
from python_jobs.assistant.report_document import Block, Figure, document, facts_filename
from python_jobs.assistant.report_facts import (
    FactsConfig,
    MonitoringReports,
    compute_facts,
    monitoring_for,
)
from python_jobs.assistant.report_narrative import Narrative, narrate
from python_jobs.assistant.report_render import to_html, to_markdown
from python_jobs.assistant.warehouse import MeteredWarehouse, Warehouse, make_warehouse
from python_jobs.lake.layout import Lake

DEFAULT_OUT = Path("reports")


@dataclass(frozen=True)
class RenderedReport:
    facts: dict[str, Any]
    lang: str
    narrative: Narrative
    blocks: list[Block]

    @property
    def figures(self) -> dict[str, bytes]:
        return {b.name: b.png for b in self.blocks if isinstance(b, Figure)}

    def figure_files(self) -> dict[str, str]:
        return {
            name: f"{self.facts['report_date']}-{self.lang}-{name}.png" for name in self.figures
        }

    def markdown(self) -> str:
        return to_markdown(self.blocks, self.figure_files())

    def html(self) -> str:
        return to_html(self.blocks, self.lang)


def render_report(
    facts: Mapping[str, Any], lang: str = "pt", provider: Provider | str | None = None
) -> RenderedReport:
    """The report of already computed facts (what tests and other callers reuse)."""
    chosen = make_provider(provider) if isinstance(provider, str | None) else provider
    narrative = narrate(facts, lang, chosen)
    return RenderedReport(dict(facts), lang, narrative, document(facts, lang, narrative))


@dataclass(frozen=True)
class ReportResult:
    day: date
    lang: str
    markdown: Path
    html: Path
    facts: Path
    narrative: Narrative
    target: str = "duckdb"
    queries: int = 0
    bytes_scanned: int | None = None  # Athena only
    cost_usd: float | None = None  # Athena only, on-demand price
    monitoring: str = ""  # where model health was looked for

    def summary(self) -> str:
        source = self.narrative.source
        if self.narrative.rejection:
            source += f" (model text rejected: {self.narrative.rejection})"
        text = (
            f"daily report {self.day} ({self.lang}, summary from the {source}): "
            f"{self.markdown} and {self.html}"
        )
        if self.target == "athena":
            text += (
                f"\n  facts from {self.queries} Athena queries, scanned "
                f"{(self.bytes_scanned or 0) / 2**20:,.1f} MB, cost ${self.cost_usd or 0:.6f} "
                f"(at $5/TB, 10 MB minimum per query); monitoring looked for in {self.monitoring}"
            )
        return text


@contextmanager
def _open_warehouse(target: str, lake: Lake) -> Iterator[Warehouse]:
    """The target's warehouse (warehouse.make_warehouse: on Athena the assistant's own work
    group, the same as `banklake ask --target athena`), closed afterwards; botocore's errors
    become the one-line RuntimeError the CLI prints."""
    if target == "athena":
        from python_jobs.aws.athena_jobs import aws_errors

        errors: Any = aws_errors("banklake report on Athena")
    else:
        errors = nullcontext()
    with errors:
        warehouse = make_warehouse(target, lake)
        try:
            yield warehouse
        finally:
            close = getattr(warehouse, "close", None)
            if close is not None:
                close()


def write_daily_report(
    lake: Lake,
    day: date | None = None,
    *,
    lang: str = "pt",
    provider: Provider | str | None = None,
    out_dir: Path = DEFAULT_OUT,
    config: FactsConfig | None = None,
    target: str = "duckdb",
    warehouse: Warehouse | None = None,
    monitoring: MonitoringReports | None = None,
) -> ReportResult:
    """Computes the facts of `day` (default: the last day with data) on `target` (duckdb:
    the lake's file; athena: the curated database), writes them and the report as
    <out_dir>/<day>-facts.json, <day>-<lang>.md (+ chart PNGs) and <day>-<lang>.html, and a
    <day>-<lang>.narrative.json saying where the summary came from (and, for rejected model
    text, the numbers that were not in the facts). `warehouse` and `monitoring` replace the
    target's own (tests); monitoring otherwise comes from monitoring_for()."""
    load_template("report", lang)  # fail on an unknown language before any query
    chosen = make_provider(provider) if isinstance(provider, str | None) else provider
    opened = nullcontext(warehouse) if warehouse is not None else _open_warehouse(target, lake)
    with opened as engine:
        reports = monitoring if monitoring is not None else monitoring_for(target, lake)
        metered = MeteredWarehouse(engine)
        facts = compute_facts(metered, lake, day, config or FactsConfig(), monitoring=reports)
    rendered = render_report(facts, lang, chosen)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{facts['report_date']}-{lang}"
    facts_path = out_dir / facts_filename(facts["report_date"])
    facts_path.write_text(json.dumps(facts, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for name, file_name in rendered.figure_files().items():
        (out_dir / file_name).write_bytes(rendered.figures[name])
    markdown = out_dir / f"{stem}.md"
    markdown.write_text(rendered.markdown(), encoding="utf-8")
    page = out_dir / f"{stem}.html"
    page.write_text(rendered.html(), encoding="utf-8")
    (out_dir / f"{stem}.narrative.json").write_text(
        json.dumps(asdict(rendered.narrative), ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8",
    )
    day = date.fromisoformat(facts["report_date"])
    on_athena = metered.dialect == "athena"
    return ReportResult(
        day,
        lang,
        markdown,
        page,
        facts_path,
        rendered.narrative,
        target=metered.dialect,
        queries=metered.queries,
        bytes_scanned=metered.bytes_scanned if on_athena else None,
        cost_usd=metered.cost_usd if on_athena else None,
        monitoring=reports.location,
    )
