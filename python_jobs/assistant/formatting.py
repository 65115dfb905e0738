"""Numbers, money and dates as a Brazilian or an English reader writes them.

The same conventions are what grounding.py reads back: pt "R$ 1.234,56", "12,3%",
"24/09/2026"; en "R$ 1,234.56", "12.3%", "September 24, 2026". A test renders every template
and checks it passes the grounding check, so the two cannot drift apart.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent / "templates"
LANGS = ("pt", "en")


@cache
def load_template(name: str, lang: str) -> configparser.ConfigParser:
    """templates/<name>.<lang>.ini: wording lives in versioned text files, not in code.
    Keys are case-sensitive; values are str.format templates."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: choose one of {', '.join(LANGS)}")
    path = TEMPLATES_DIR / f"{name}.{lang}.ini"
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    with path.open(encoding="utf-8") as handle:
        parser.read_file(handle)
    return parser


@dataclass(frozen=True)
class Formatter:
    lang: str

    @property
    def _words(self) -> configparser.ConfigParser:
        return load_template("formats", self.lang)

    def number(self, value: float | int | None, decimals: int = 0) -> str:
        if value is None:
            return "—"
        text = f"{value:,.{decimals}f}"
        if self.lang == "pt":  # 1,234.56 -> 1.234,56
            text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return text

    def count(self, value: int | None) -> str:
        return self.number(value, 0)

    def money(self, value: float | None, decimals: int = 2) -> str:
        return "—" if value is None else f"R$ {self.number(value, decimals)}"

    def pct(self, value: float | None, decimals: int = 1) -> str:
        return "—" if value is None else f"{self.number(value, decimals)}%"

    def signed(self, value: float | None, decimals: int = 1, unit: str = "pct") -> str:
        """A value with its sign: -1.8% (unit "pct"), +0.6 p.p. ("pp", percentage points)
        or +1.381 ("number")."""
        if value is None:
            return "—"
        sign = "+" if value > 0 else "-" if value < 0 else ""
        number = self.number(abs(value), decimals)
        suffix = {"pct": "%", "pp": f" {self.word('pp')}", "number": ""}[unit]
        return f"{sign}{number}{suffix}"

    def word(self, key: str) -> str:
        return self._words["words"][key]

    def day(self, value: date | str) -> str:
        """24/09/2026 (pt) or Sep 24, 2026 (en)."""
        value = date.fromisoformat(value) if isinstance(value, str) else value
        if self.lang == "pt":
            return f"{value:%d/%m/%Y}"
        return f"{self._words['months_short'][str(value.month)]} {value.day}, {value.year}"

    def day_short(self, value: date | str) -> str:
        """24/09 (pt) or Sep 24 (en): chart ticks."""
        value = date.fromisoformat(value) if isinstance(value, str) else value
        if self.lang == "pt":
            return f"{value:%d/%m}"
        return f"{self._words['months_short'][str(value.month)]} {value.day}"

    def day_long(self, value: date | str) -> str:
        """quinta-feira, 24 de setembro de 2026 / Thursday, September 24, 2026."""
        value = date.fromisoformat(value) if isinstance(value, str) else value
        return self._words["formats"]["day_long"].format(
            weekday=self._words["weekdays"][str(value.weekday())],
            day=value.day,
            month=self._words["months"][str(value.month)],
            year=value.year,
        )

    def weekday(self, value: date | str) -> str:
        value = date.fromisoformat(value) if isinstance(value, str) else value
        return self._words["weekdays"][str(value.weekday())]
