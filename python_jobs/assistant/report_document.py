"""The daily report as a list of blocks (headings, paragraphs, the summary, bullets, tables,
figures), every one from the facts and the summary; report_render.py turns them into Markdown
and HTML."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from python_jobs.assistant import charts
from python_jobs.assistant.formatting import Formatter, load_template
from python_jobs.assistant.report_narrative import Narrative
from python_jobs.assistant.vocabulary import reason_words


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

    formats: dict[str, Callable[[Any], str]] = {"count": f.count, "brl": f.money, "pct": f.pct}

    def show(value: Any, unit: str) -> str:
        return formats[unit](value)

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
                f"{reason['code']}: {reason_words(reason, lang)}" for reason in item["reasons"]
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


def facts_filename(day: str | date) -> str:
    return f"{day if isinstance(day, str) else day.isoformat()}-facts.json"
