"""A one-paragraph reading of a query's rows, written by code, never by a model.

Every figure in the paragraph is computed here from the rows, so it cannot be invented, and
text values from the data (customer ids, states, reason wording) are shown as data: control
characters removed, length capped. Used for the offline intents and for the model path alike:
the model writes SQL, never the prose around the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from python_jobs.assistant.intents import DIMENSIONS, METRICS, IntentMatch
from python_jobs.assistant.prompting import clean_text

Row = dict[str, Any]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def fmt_int(value: Any, lang: str) -> str:
    text = f"{round(float(value)):,}"
    return text.replace(",", ".") if lang == "pt" else text


def fmt_number(value: Any, lang: str, decimals: int = 2) -> str:
    text = f"{float(value):,.{decimals}f}"
    if lang == "pt":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def fmt_money(value: Any, lang: str) -> str:
    number = _number(value)
    if number is None:
        return "n/d" if lang == "pt" else "n/a"
    return f"R$ {fmt_number(number, lang)}" if lang == "pt" else f"R${fmt_number(number, lang)}"


def fmt_rate(value: Any, lang: str) -> str:
    number = _number(value)
    if number is None:
        return "n/d" if lang == "pt" else "n/a"
    return f"{fmt_number(number * 100, lang)}%"


def fmt_value(value: Any, lang: str, column: str = "") -> str:
    """Any cell as text for a reading or a table: money, rates, counts, dates, data text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return ("sim" if value else "não") if lang == "pt" else ("yes" if value else "no")
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    number = _number(value)
    if number is not None:
        if column.endswith("_brl"):
            return fmt_money(number, lang)
        if column.endswith("rate") or column.endswith("_so_far"):
            return fmt_rate(number, lang)
        if isinstance(value, int) or number.is_integer():
            return fmt_int(number, lang)
        return fmt_number(number, lang, 2 if abs(number) >= 1 else 4)
    return clean_text(value, max_chars=60)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Row]:
    return [dict(zip(columns, row, strict=False)) for row in rows]


def _metric_text(metric: str, value: Any, lang: str) -> str:
    column = METRICS[metric][0]
    return fmt_value(value, lang, column)


def _metric_label(metric: str, lang: str) -> str:
    return METRICS[metric][1 if lang == "pt" else 2]


def _totals(rows: list[Row]) -> Row:
    total: Row = {
        key: sum(_number(row.get(key)) or 0.0 for row in rows)
        for key in (
            "transactions",
            "approved_transactions",
            "approved_volume_brl",
            "fraud_transactions",
        )
    }
    total["average_ticket_brl"] = (
        total["approved_volume_brl"] / total["approved_transactions"]
        if total["approved_transactions"]
        else None
    )
    total["fraud_rate"] = (
        total["fraud_transactions"] / total["transactions"] if total["transactions"] else None
    )
    return total


def _kpi_sentence(total: Row, lang: str) -> str:
    if lang == "pt":
        return (
            f"{fmt_int(total['transactions'], 'pt')} transações, volume aprovado de "
            f"{fmt_money(total['approved_volume_brl'], 'pt')}, ticket médio de "
            f"{fmt_money(total['average_ticket_brl'], 'pt')} e taxa de fraude de "
            f"{fmt_rate(total['fraud_rate'], 'pt')} (fraudes reportadas até agora)"
        )
    return (
        f"{fmt_int(total['transactions'], 'en')} transactions, "
        f"{fmt_money(total['approved_volume_brl'], 'en')} approved volume, an average ticket of "
        f"{fmt_money(total['average_ticket_brl'], 'en')} and a fraud rate of "
        f"{fmt_rate(total['fraud_rate'], 'en')} (frauds reported so far)"
    )


def read_intent(match: IntentMatch, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The paragraph for an offline intent's rows."""
    records = _rows(columns, rows)
    lang = match.language
    pt = lang == "pt"
    period = match.period.phrase(lang) if match.period else ""  # "de A a B" / "on D"
    filters = " ".join(value for value in (match.transaction_type, match.channel) if value)
    scope = f" ({filters})" if filters else ""
    if match.intent == "top_alerts":
        return _read_alerts(records, lang)
    if not records:
        return f"Nenhum dado {period}{scope}." if pt else f"No data {period}{scope}."
    if match.intent == "top_customers":
        first = records[0]
        spent = sum(_number(r["spend_brl"]) or 0.0 for r in records)
        who = clean_text(first["customer_id"], max_chars=40)
        segment = clean_text(first.get("segment") or "?", max_chars=40)
        if pt:
            return (
                f"{_cap(period)}{scope}, os {len(records)} clientes que mais gastaram (débitos "
                f"aprovados) somam {fmt_money(spent, lang)}; lidera {who} ({segment}), com "
                f"{fmt_money(first['spend_brl'], lang)} em {fmt_int(first['transactions'], lang)} "
                f"transações."
            )
        return (
            f"{_cap(period)}{scope}, the top {len(records)} customers by spend (approved "
            f"outbound) spent {fmt_money(spent, lang)} together; {who} ({segment}) leads with "
            f"{fmt_money(first['spend_brl'], lang)} in {fmt_int(first['transactions'], lang)} "
            f"transactions."
        )
    if match.intent == "kpi_breakdown":
        return _read_breakdown(match, records, period, scope)
    if match.intent == "kpi_trend":
        return _read_trend(match, records, period, scope)
    return read_rows(columns, rows, lang)


def _read_breakdown(match: IntentMatch, records: list[Row], period: str, scope: str) -> str:
    lang = match.language
    pt = lang == "pt"
    total = _totals(records)
    if not match.dimension:
        return f"{_cap(period)}{scope}: {_kpi_sentence(total, lang)}."
    metric = match.metric or "volume"
    column = METRICS[metric][0]
    label = _metric_label(metric, lang)
    dimension_label = DIMENSIONS[match.dimension][0 if pt else 1]
    first, last = records[0], records[-1]

    def name(row: Row) -> str:
        return clean_text(row[match.dimension or ""], max_chars=40)

    ranking = f"{name(first)} ({_metric_text(metric, first[column], lang)})"
    if len(records) > 1:
        lowest = f"{name(last)} ({_metric_text(metric, last[column], lang)})"
        ranking += f", e o menor é {lowest}" if pt else f", and the lowest is {lowest}"
    if pt:
        return (
            f"{_cap(period)}{scope}, por {dimension_label}, {label}: o maior é {ranking}, entre "
            f"{len(records)} valores. No total, {_kpi_sentence(total, lang)}."
        )
    return (
        f"{_cap(period)}{scope}, by {dimension_label}, {label}: the highest is {ranking}, among "
        f"{len(records)} values. In total, {_kpi_sentence(total, lang)}."
    )


def _read_trend(match: IntentMatch, records: list[Row], period: str, scope: str) -> str:
    """First and last value, change, peak and low. For additive KPIs (volume, counts) a
    bucket with fewer days than the fullest one (a period cut mid-week or mid-month, or days
    not loaded yet) is left out of the comparison and named, so a short week is not read as
    a fall; ratios (ticket, fraud rate) compare across buckets of any length."""
    lang = match.language
    pt = lang == "pt"
    metric = match.metric or "volume"
    column = METRICS[metric][0]
    label = _metric_label(metric, lang)
    read = [
        (r["period_start"], _number(r[column]), int(_number(r.get("days")) or 1)) for r in records
    ]
    points: list[tuple[Any, float, int]] = [
        (when, value, days) for when, value, days in read if value is not None
    ]
    if not points:
        return f"Sem valores de {label} {period}." if pt else f"No {label} values {period}."
    partial: list[Any] = []
    if metric in {"volume", "transactions"}:
        full_days = max(days for _, _, days in points)
        partial = [when for when, _, days in points if days < full_days]
        complete = [p for p in points if p[2] == full_days]
        points = complete or points
    (first_day, first_value, _), (last_day, last_value, _) = points[0], points[-1]
    peak = max(points, key=lambda p: p[1])
    low = min(points, key=lambda p: p[1])
    change_text = ""
    if first_value:
        change = (last_value - first_value) / abs(first_value)
        change_text = f" ({'+' if change >= 0 else '-'}{fmt_rate(abs(change), lang)})"

    def show(value: float) -> str:
        return _metric_text(metric, value, lang)

    def when(day: Any) -> str:
        return fmt_value(day, lang)

    left_out = ""
    if partial:
        days = ", ".join(when(day) for day in partial)
        left_out = (
            f" Períodos incompletos fora da comparação: {days}."
            if pt
            else f" Incomplete periods left out of the comparison: {days}."
        )
    if pt:
        return (
            f"{label.capitalize()} {period}{scope}, em {len(points)} "
            f"{'período' if len(points) == 1 else 'períodos'}: de "
            f"{show(first_value)} em {when(first_day)} para {show(last_value)} em "
            f"{when(last_day)}{change_text}; máximo de {show(peak[1])} em {when(peak[0])}, "
            f"mínimo de {show(low[1])} em {when(low[0])}.{left_out}"
        )
    return (
        f"{label.capitalize()} {period}{scope}, over {len(points)} "
        f"{'period' if len(points) == 1 else 'periods'}: from "
        f"{show(first_value)} on {when(first_day)} to {show(last_value)} on "
        f"{when(last_day)}{change_text}; peak {show(peak[1])} on {when(peak[0])}, low "
        f"{show(low[1])} on {when(low[0])}.{left_out}"
    )


def _read_alerts(records: list[Row], lang: str) -> str:
    pt = lang == "pt"
    if not records:
        return (
            "Nenhum alerta de fraude para esse dia (o modelo ainda não pontuou ou não alertou)."
            if pt
            else "No fraud alerts for that day (the model has not scored it or raised none)."
        )
    first = records[0]
    reported = sum(1 for r in records if r.get("is_fraud_reported"))
    day = fmt_value(first["score_date"], lang)
    version = clean_text(first["model_version"], max_chars=40)
    reason = clean_text(first.get("reason_1_description") or "—", max_chars=80)
    tx = clean_text(first["transaction_id"], max_chars=40)
    kind = ", ".join(
        clean_text(first[key], max_chars=20) for key in ("transaction_type", "channel")
    )
    if pt:
        return (
            f"Alertas de {day} (modelo {version}): {len(records)} mostrados; o primeiro, "
            f"{tx}, tem score {fmt_number(first['score'], lang, 3)} e "
            f"{fmt_money(first['amount_brl'], lang)} ({kind}), motivo principal: {reason}. "
            f"{fmt_int(reported, lang)} deles já reportados como fraude."
        )
    return (
        f"Alerts of {day} (model {version}): {len(records)} shown; the first, {tx}, scores "
        f"{fmt_number(first['score'], lang, 3)} for {fmt_money(first['amount_brl'], lang)} "
        f"({kind}), main reason: {reason}. {fmt_int(reported, lang)} of them already reported "
        f"as fraud."
    )


def read_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    lang: str,
    *,
    capped_at: int | None = None,
) -> str:
    """A generic paragraph for any rows (the model path): how many, and for each numeric
    column its total, lowest and highest; a single row is read out column by column."""
    pt = lang == "pt"
    records = _rows(columns, rows)
    if not records:
        return "A consulta não retornou linhas." if pt else "The query returned no rows."
    cap = ""
    if capped_at is not None and len(records) >= capped_at:
        cap = (
            f" (limitado a {capped_at}; pode haver mais)"
            if pt
            else f" (capped at {capped_at}; there may be more)"
        )
    if len(records) == 1:
        values = "; ".join(
            f"{clean_text(column, max_chars=40)} = {fmt_value(records[0][column], lang, column)}"
            for column in columns[:12]
        )
        return f"Uma linha: {values}." if pt else f"One row: {values}."
    parts = []
    for column in columns:
        numbers = [_number(r[column]) for r in records]
        present = [n for n in numbers if n is not None]
        if not present or len(present) < len(records) / 2 or column.endswith("_id"):
            continue
        low, high = min(present), max(present)
        shown = clean_text(column, max_chars=40)
        low_text = fmt_value(low, lang, column)
        high_text = fmt_value(high, lang, column)
        additive = not (column.endswith("rate") or "average" in column or "ticket" in column)
        total = (
            (
                f"soma {fmt_value(sum(present), lang, column)}, "
                if pt
                else f"sum {fmt_value(sum(present), lang, column)}, "
            )
            if additive
            else ""
        )
        parts.append(
            f"{shown}: {total}de {low_text} a {high_text}"
            if pt
            else f"{shown}: {total}from {low_text} to {high_text}"
        )
        if len(parts) == 4:
            break
    summary = "; ".join(parts)
    if pt:
        return f"{len(records)} linhas{cap}." + (f" {summary}." if summary else "")
    return f"{len(records)} rows{cap}." + (f" {summary}." if summary else "")
