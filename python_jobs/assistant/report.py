"""`banklake report`: the daily report, grounded in facts computed by SQL.

    facts (report_facts.py, SQL over the curated marts: DuckDB locally, Athena in production)
      -> summary prose: the template (offline provider, the default) or a language model
         whose text must pass the checks below, else the template with a note saying so
      -> Markdown (+ chart PNGs beside it) and one self-contained HTML file under reports/

The model only writes the summary; every table, chart and note comes from the facts. Its
text is accepted only when the provider finished normally (stop reason end_turn or
stop_sequence), it has no links, images or HTML (what an injected instruction would use to
exfiltrate or to smuggle content), and every number in it passes the grounding check
(grounding.py). Data text in the facts reaches the model inside a <facts> block with < and
> escaped, so a merchant name cannot close the block; the grounding check is the backstop
when an instruction in the data gets through anyway.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from python_jobs.assistant import charts
from python_jobs.assistant.formatting import Formatter, load_template
from python_jobs.assistant.grounding import check_grounding
from python_jobs.assistant.llm import Provider, ProviderError
from python_jobs.assistant.prompting import load_prompt
from python_jobs.assistant.providers import make_provider
from python_jobs.assistant.report_facts import (
    FactsConfig,
    MonitoringReports,
    compute_facts,
    monitoring_for,
)
from python_jobs.assistant.vocabulary import feature_label
from python_jobs.assistant.warehouse import QueryResult, Warehouse, make_warehouse
from python_jobs.lake.layout import Lake

DEFAULT_OUT = Path("reports")
ACCEPTED_STOP_REASONS = frozenset({"end_turn", "stop_sequence", "stop"})
MAX_TOKENS = 900
_MARKUP = re.compile(
    r"(?i)(https?://|www\.|ftp://|mailto:|javascript:|data:|!\[|\]\(|<\s*/?\s*[a-z][^>]*>)"
)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_MD_SPECIAL = re.compile(r"([\\`\[\]<>|!])")


# --- the summary: template or model ------------------------------------------------------------


@dataclass(frozen=True)
class Narrative:
    """The summary shown and where it came from; `rejection` says why model text was not
    used, `ungrounded` what in it was not in the facts."""

    text: str
    source: str  # "template" or "model"
    provider: str
    rejection: str | None = None  # ungrounded, markup, empty, provider_error, stop
    stop_reason: str | None = None
    ungrounded: list[str] = field(default_factory=list)
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def note(self, lang: str) -> str:
        words = load_template("report", lang)["narrative"]
        key = "model" if self.source == "model" else "template"
        if self.rejection:
            key = f"rejected_{self.rejection}"
        return words[key].format(
            provider=self.provider, count=len(self.ungrounded), stop_reason=self.stop_reason
        )


def _value(facts: Mapping[str, Any], metric: str) -> Mapping[str, Any]:
    return next(item for item in facts["kpis"]["metrics"] if item["metric"] == metric)


def template_summary(facts: Mapping[str, Any], lang: str) -> str:
    """The summary from templates/report.<lang>.ini: paragraphs of plain sentences."""
    words = load_template("report", lang)["summary"]
    labels = load_template("report", lang)
    f = Formatter(lang)
    day = facts["report_date"]
    tx, volume = _value(facts, "transactions"), _value(facts, "approved_volume_brl")
    first = [
        words["day"].format(
            date_long=f.day_long(day),
            transactions=f.count(tx["value"]),
            approved=f.count(_value(facts, "approved_transactions")["value"]),
            approval_rate=f.pct(_value(facts, "approval_rate_pct")["value"]),
            volume=f.money(volume["value"]),
            ticket=f.money(_value(facts, "average_ticket_brl")["value"]),
        )
    ]
    comparisons = facts["kpis"]["comparisons"]
    for key, field_name, sentence in (
        ("previous_day", "previous_day_change", "previous"),
        ("same_weekday_last_week", "same_weekday_last_week_change", "week"),
    ):
        other = comparisons[key]
        if other["available"]:
            first.append(
                words[sentence].format(
                    date=f.day(other["date"]),
                    transactions_change=f.signed(tx[field_name]),
                    volume_change=f.signed(volume[field_name]),
                )
            )
        else:
            first.append(words[f"{sentence}_missing"].format(date=f.day(other["date"])))
    first.append(
        words["fraud"].format(
            fraud=f.count(_value(facts, "fraud_transactions_reported")["value"]),
            loss=f.money(_value(facts, "fraud_loss_brl")["value"]),
        )
    )

    anomalies = facts["anomalies"]
    if not anomalies["available"]:
        second = words["anomalies_unavailable"].format(
            days=anomalies["history_days"], needed=anomalies["method"]["min_history_days"]
        )
    elif anomalies["items"]:
        top = anomalies["items"][0]
        second = words["anomalies"].format(
            count=f.count(anomalies["count"]),
            checked=f.count(anomalies["slices_checked"]),
            dimension=labels["anomalies"][top["dimension"]],
            value=top["value"],
            share=f.pct(top["share_pct"]),
            metric=labels["anomalies"][top["metric"]],
            usual=f.pct(top["usual_share_pct"]),
            z=f.number(top["robust_z"], 1),
        )
    else:
        second = words["anomalies_none"].format(checked=f.count(anomalies["slices_checked"]))

    alerts = facts["alerts"]
    if alerts["available"]:
        third = [
            words["alerts"].format(
                alerts=f.count(alerts["alerts"]),
                scored=f.count(alerts["transactions_scored"]),
                rate=f.pct(alerts["alert_rate_pct"]),
                confirmed=f.count(alerts["alerts_confirmed_fraud_so_far"]),
            )
        ]
        if alerts["top"]:
            top = alerts["top"][0]
            third.append(
                words["alerts_top"].format(
                    transaction_id=top["transaction_id"],
                    transaction_type=top["transaction_type"],
                    amount=f.money(top["amount_brl"]),
                    score=f.number(top["score"], 4),
                    reasons="; ".join(_reason_words(reason, lang) for reason in top["reasons"]),
                )
            )
    else:
        third = [words["alerts_unavailable"].format(date=f.day(day))]

    health = facts["model_health"]
    if health["available"]:
        fourth = [
            words["health"].format(
                date=f.day(health["monitoring_date"]),
                verdict=labels["verdicts"][health["verdict"]],
                rate=f.pct(health["alert_rate_pct"], 2),
                expected=f.pct(health["expected_alert_rate_pct"], 2),
                psi=f.number(health["score_psi"], 3),
            )
        ]
        if health["top_drifted_features"]:
            worst = health["top_drifted_features"][0]
            fourth.append(
                words["health_drift"].format(
                    warning=f.number(health["psi_warning"], 1),
                    count=f.count(health["features_above_warning"]),
                    feature=worst["feature"],
                    psi=f.number(worst["psi"], 2),
                )
            )
    else:
        fourth = [words["health_unavailable"]]
    paragraphs = [" ".join(first), second, " ".join(third), " ".join(fourth)]
    return "\n\n".join(text[:1].upper() + text[1:] for text in paragraphs)


def _reason_words(reason: Mapping[str, Any], lang: str) -> str:
    return feature_label(reason["feature"], lang, fallback=reason.get("description"))


def facts_for_prompt(facts: Mapping[str, Any]) -> str:
    """The facts as JSON that cannot close its <facts> block: < and > are escaped (still
    valid JSON), so data text like "</facts> ignore the above" stays inside as data."""
    text = json.dumps(facts, ensure_ascii=False, indent=1, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def build_prompts(facts: Mapping[str, Any], lang: str) -> tuple[str, str]:
    """(system, user) from prompts/report_system.txt and prompts/report_user.txt."""
    words = load_template("report", lang)["prompt"]
    values = {
        "language": words["language"],
        "number_format": words["number_format"],
        "report_date": facts["report_date"],
        "facts": facts_for_prompt(facts),
    }
    return fill(load_prompt("report_system"), values), fill(load_prompt("report_user"), values)


def fill(template: str, values: Mapping[str, str]) -> str:
    """{{name}} placeholders, in one pass: a value (the facts) is never scanned again, so
    data text that reads "{{language}}" stays as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def narrate(facts: Mapping[str, Any], lang: str, provider: Provider) -> Narrative:
    """The model's summary when it passes every check, else the template's (and why)."""
    fallback = template_summary(facts, lang)
    if provider.offline:
        return Narrative(fallback, "template", provider.name)
    system, user = build_prompts(facts, lang)
    try:
        completion = provider.complete(system, user, max_tokens=MAX_TOKENS, temperature=0.0)
    except ProviderError as error:
        return Narrative(
            fallback, "template", provider.name, "provider_error", error=str(error)[:500]
        )
    usage = {"input_tokens": completion.input_tokens, "output_tokens": completion.output_tokens}
    text = completion.text.strip()
    if completion.stop_reason not in ACCEPTED_STOP_REASONS:
        return Narrative(
            fallback, "template", provider.name, "stop", stop_reason=completion.stop_reason, **usage
        )
    if not text:
        return Narrative(fallback, "template", provider.name, "empty", **usage)
    if _MARKUP.search(text):
        return Narrative(fallback, "template", provider.name, "markup", **usage)
    grounding = check_grounding(text, facts, lang)
    if not grounding.ok:
        return Narrative(
            fallback,
            "template",
            provider.name,
            "ungrounded",
            ungrounded=grounding.ungrounded,
            **usage,
        )
    return Narrative(text, "model", provider.name, stop_reason=completion.stop_reason, **usage)


# --- the document ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    note: bool = False  # rendered in italics: says where something came from


@dataclass(frozen=True)
class Prose:
    """The summary: paragraphs separated by blank lines, "- " bullets allowed."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str
    png: bytes


Block = Heading | Paragraph | Prose | Bullets | Table | Figure


def document(facts: Mapping[str, Any], lang: str, narrative: Narrative) -> list[Block]:
    """Every block of the report, in order, from the facts and the summary."""
    words = load_template("report", lang)
    f = Formatter(lang)
    day = facts["report_date"]
    blocks: list[Block] = [
        Heading(words["document"]["title"].format(date_long=f.day_long(day)), 1),
        Paragraph(
            words["document"]["facts_line"].format(
                first_date=f.day(facts["lake_first_date"]),
                last_date=f.day(facts["lake_last_date"]),
            ),
            note=True,
        ),
        Heading(words["headings"]["summary"]),
        Prose(narrative.text),
        Paragraph(narrative.note(lang), note=True),
        Heading(words["headings"]["kpis"]),
        _kpi_table(facts, lang),
    ]
    trend = charts.trend_chart(facts, lang)
    if trend:
        blocks.append(Figure("trend", words["charts"]["trend_title"], trend))
    blocks += _anomaly_blocks(facts, lang)
    blocks += _alert_blocks(facts, lang)
    blocks += _health_blocks(facts, lang)
    notes = [_note(note, lang) for note in facts["notes"]]
    blocks += [
        Heading(words["headings"]["notes"]),
        Bullets(notes or [words["notes"]["none"]]),
        Heading(words["headings"]["method"]),
        Paragraph(words["method"]["text"].format(facts_file=facts_filename(day))),
    ]
    return blocks


def _note(note: Mapping[str, Any], lang: str) -> str:
    f = Formatter(lang)
    values = {key: f.day(value) if key == "date" else value for key, value in note.items()}
    return load_template("report", lang)["notes"][note["code"]].format(**values)


def _kpi_table(facts: Mapping[str, Any], lang: str) -> Table:
    words = load_template("report", lang)["kpis"]
    f = Formatter(lang)
    comparisons = facts["kpis"]["comparisons"]
    header = [
        words["metric"],
        words["day"].format(date=f.day(facts["report_date"])),
        words["previous"].format(date=f.day(comparisons["previous_day"]["date"])),
        words["change"],
        words["week"].format(date=f.day(comparisons["same_weekday_last_week"]["date"])),
        words["change"],
    ]

    def show(value: Any, unit: str) -> str:
        return {"count": f.count, "brl": f.money, "pct": f.pct}[unit](value)

    rows = [
        [
            words[item["metric"]],
            show(item["value"], item["unit"]),
            show(item["previous_day"], item["unit"]),
            f.signed(item["previous_day_change"], 1, item["change_unit"]),
            show(item["same_weekday_last_week"], item["unit"]),
            f.signed(item["same_weekday_last_week_change"], 1, item["change_unit"]),
        ]
        for item in facts["kpis"]["metrics"]
    ]
    return Table(header, rows)


def _anomaly_blocks(facts: Mapping[str, Any], lang: str) -> list[Block]:
    words = load_template("report", lang)["anomalies"]
    f = Formatter(lang)
    anomalies = facts["anomalies"]
    method = anomalies["method"]
    blocks: list[Block] = [Heading(load_template("report", lang)["headings"]["anomalies"])]
    if not anomalies["available"]:
        text = words["unavailable"].format(
            days=anomalies["history_days"], needed=method["min_history_days"]
        )
        return [*blocks, Paragraph(text)]
    blocks.append(
        Paragraph(
            words["intro"].format(
                date=f.day(facts["report_date"]),
                days=method["window_days"],
                threshold=f.number(method["threshold_z"], 1),
            )
        )
    )
    if not anomalies["items"]:
        checked = f.count(anomalies["slices_checked"])
        return [*blocks, Paragraph(words["none"].format(checked=checked))]
    rows = [
        [
            words[item["dimension"]],
            item["value"],
            words[item["metric"]],
            f.count(item["observed"])
            if item["metric"] == "transactions"
            else f.money(item["observed"]),
            f.number(item["expected"], 0)
            if item["metric"] == "transactions"
            else f.money(item["expected"]),
            f.pct(item["share_pct"]),
            f.pct(item["usual_share_pct"]),
            f.number(item["robust_z"], 1),
        ]
        for item in anomalies["items"]
    ]
    header = [
        words[key]
        for key in ("dimension", "value", "metric", "observed", "expected", "share", "usual", "z")
    ]
    return [*blocks, Table(header, rows)]


def _alert_blocks(facts: Mapping[str, Any], lang: str) -> list[Block]:
    words = load_template("report", lang)["alerts"]
    f = Formatter(lang)
    alerts = facts["alerts"]
    blocks: list[Block] = [Heading(load_template("report", lang)["headings"]["alerts"])]
    if not alerts["available"]:
        return [*blocks, Paragraph(words["unavailable"].format(date=f.day(facts["report_date"])))]
    blocks.append(
        Paragraph(
            words["intro"].format(
                alerts=f.count(alerts["alerts"]),
                scored=f.count(alerts["transactions_scored"]),
                rate=f.pct(alerts["alert_rate_pct"]),
                version=alerts["model_version"],
                confirmed=f.count(alerts["alerts_confirmed_fraud_so_far"]),
                shown=f.count(alerts["shown"]),
            )
        )
    )
    columns = "rank transaction time score amount kind state counterparty reasons"
    header = [words[key] for key in columns.split()]
    rows = [
        [
            f.count(item["rank"]),
            item["transaction_id"],
            item["event_time"] or "—",
            f.number(item["score"], 4),
            f.money(item["amount_brl"]),
            f"{item['transaction_type']} / {item['channel']}",
            item["state"] or "—",
            item["counterparty"] or "—",
            "; ".join(
                f"{reason['code']}: {_reason_words(reason, lang)}" for reason in item["reasons"]
            ),
        ]
        for item in alerts["top"]
    ]
    blocks.append(Table(header, rows))
    chart = charts.reasons_chart(facts, lang)
    if chart:
        blocks.append(Figure("reasons", words["reason_chart"], chart))
    return blocks


def _health_blocks(facts: Mapping[str, Any], lang: str) -> list[Block]:
    words = load_template("report", lang)
    health_words = words["health"]
    f = Formatter(lang)
    health, alerts = facts["model_health"], facts["alerts"]
    blocks: list[Block] = [Heading(words["headings"]["model_health"])]
    if not health["available"]:
        return [*blocks, Paragraph(health_words["unavailable"])]
    items = [
        health_words["verdict"].format(
            date=f.day(health["monitoring_date"]), verdict=words["verdicts"][health["verdict"]]
        ),
        health_words["alert_rate"].format(
            rate=f.pct(health["alert_rate_pct"], 2),
            expected=f.pct(health["expected_alert_rate_pct"], 2),
        ),
        health_words["score_psi"].format(psi=f.number(health["score_psi"], 3)),
        health_words["drift"].format(
            warning=f.number(health["psi_warning"], 1),
            count=f.count(health["features_above_warning"]),
            warming=f.count(health.get("features_warming_up", 0)),
        ),
        *(
            health_words["drifted"].format(feature=item["feature"], psi=f.number(item["psi"], 3))
            for item in health["top_drifted_features"]
        ),
    ]
    if health["mature_precision_pct"] is None:
        items.append(health_words["precision_unavailable"])
    else:
        items.append(
            health_words["precision"].format(
                precision=f.pct(health["mature_precision_pct"]),
                alerts=f.count(health["mature_alerts"]),
            )
        )
    if alerts.get("available") and alerts.get("precision_so_far_pct") is not None:
        items.append(
            health_words["precision_so_far"].format(precision=f.pct(alerts["precision_so_far_pct"]))
        )
    return [*blocks, Bullets(items)]


# --- rendering -------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    """Plain text made inert in Markdown: no links, images, HTML or table breaks from data."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def to_markdown(blocks: list[Block], figure_files: Mapping[str, str]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {md_escape(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(f"_{md_escape(block.text)}_" if block.note else md_escape(block.text))
        elif isinstance(block, Prose):
            paragraphs = [
                "\n".join(md_escape(line) for line in part.splitlines() if line.strip())
                for part in re.split(r"\n\s*\n", block.text.strip())
            ]
            out.append("\n\n".join(p for p in paragraphs if p))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {md_escape(item)}" for item in block.items))
        elif isinstance(block, Table):
            lines = [
                "| " + " | ".join(md_escape(cell) for cell in block.header) + " |",
                "|" + "---|" * len(block.header),
                *("| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in block.rows),
            ]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            out.append(f"![{md_escape(block.caption)}]({figure_files[block.name]})")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1d2733; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d8dee4; padding-bottom: .2rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #d8dee4; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f2f5f8; }
.note { color: #57606a; font-style: italic; }
figure { margin: 1rem 0; } figcaption { color: #57606a; font-size: .85rem; }
img { max-width: 100%; }
"""


def _html_inline(text: str) -> str:
    escaped = html.escape(text, quote=True)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)


def to_html(blocks: list[Block], lang: str) -> str:
    """One self-contained page: inline CSS, charts as data: URIs, every text escaped."""
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "banklake")
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = ' class="note"' if block.note else ""
            body.append(f"<p{css}>{html.escape(block.text)}</p>")
        elif isinstance(block, Prose):
            for part in re.split(r"\n\s*\n", block.text.strip()):
                lines = [line.strip() for line in part.splitlines() if line.strip()]
                if lines and all(line[:2] in ("- ", "* ") for line in lines):
                    items = "".join(f"<li>{_html_inline(line[2:])}</li>" for line in lines)
                    body.append(f"<ul>{items}</ul>")
                elif lines:
                    body.append(f"<p>{_html_inline(' '.join(lines))}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            caption = html.escape(block.caption)
            body.append(
                f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return (
        f'<!DOCTYPE html>\n<html lang="{"pt-BR" if lang == "pt" else "en"}">\n<head>\n'
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --- the job -----------------------------------------------------------------------------------


def facts_filename(day: str | date) -> str:
    return f"{day if isinstance(day, str) else day.isoformat()}-facts.json"


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


@dataclass
class MeteredWarehouse:
    """A warehouse that counts what the facts cost: Athena bills each query for the bytes
    it scans (at least 10 MB), and the daily report in production should say what it
    spent, as `banklake summary --target athena` does."""

    warehouse: Warehouse
    queries: int = 0
    bytes_scanned: int = 0
    cost_usd: float = 0.0

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    @property
    def curated_schema(self) -> str:
        return getattr(self.warehouse, "curated_schema", "curated")

    def query(self, sql: str) -> QueryResult:
        result = self.warehouse.query(sql)
        self.queries += 1
        if result.bytes_scanned is not None:
            from python_jobs.aws.athena import query_cost_usd

            self.bytes_scanned += result.bytes_scanned
            self.cost_usd += query_cost_usd(result.bytes_scanned)
        return result


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
