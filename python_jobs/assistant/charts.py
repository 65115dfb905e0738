"""The daily report's charts, drawn from the facts (never from a second query) as PNG bytes.

PNG rather than SVG: the HTML report embeds them as data: URIs and stays one file with no
external reference; the Markdown report links the same bytes written beside it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # headless: reports are written by jobs, never shown

import matplotlib.pyplot as plt

from python_jobs.assistant.formatting import Formatter, load_template

_BLUE, _ORANGE, _GREY = "#1f5fa8", "#e07b00", "#9aa5b1"


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # no timestamp or software metadata: the same facts give the same bytes
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def trend_chart(facts: Mapping[str, Any], lang: str) -> bytes | None:
    """Transactions (bars) and approved volume (line) over the trailing days, the report day
    highlighted."""
    series = facts.get("trend") or []
    if not series:
        return None
    words = load_template("report", lang)["charts"]
    formatter = Formatter(lang)
    days = [date.fromisoformat(point["date"]) for point in series]
    x = np.array(days, dtype="datetime64[D]")  # matplotlib's date axis, as its types expect
    report_day = date.fromisoformat(facts["report_date"])
    figure, bars = plt.subplots(figsize=(8, 3.2))
    colors = [_BLUE if day == report_day else _GREY for day in days]
    bars.bar(x, [point["transactions"] for point in series], color=colors, width=0.8)
    bars.set_ylabel(words["trend_transactions"])
    line = bars.twinx()
    line.plot(
        x,
        [point["approved_volume_brl"] / 1000 for point in series],
        color=_ORANGE,
        marker="o",
        markersize=3,
    )
    line.set_ylabel(words["trend_volume"], color=_ORANGE)
    bars.set_title(f"{words['trend_title']} ({words['trend_day']}: {formatter.day(report_day)})")
    step = max(1, len(days) // 7)
    bars.set_xticks(x[::step])
    bars.set_xticklabels([formatter.day_short(day) for day in days[::step]])
    for axis in (bars, line):
        axis.spines["top"].set_visible(False)
    figure.tight_layout()
    return _png(figure)


def reasons_chart(facts: Mapping[str, Any], lang: str) -> bytes | None:
    """How many of the day's alerts each reason code led."""
    counts = (facts.get("alerts") or {}).get("top_reason_counts") or []
    if not counts:
        return None
    words = load_template("report", lang)["charts"]
    figure, axis = plt.subplots(figsize=(8, 0.4 * len(counts) + 1.2))
    labels = [item["code"] for item in counts][::-1]
    axis.barh(labels, [item["alerts"] for item in counts][::-1], color=_BLUE)
    axis.set_xlabel(words["reasons_axis"])
    axis.set_title(words["reasons_title"])
    for side in ("top", "right"):
        axis.spines[side].set_visible(False)
    figure.tight_layout()
    return _png(figure)
