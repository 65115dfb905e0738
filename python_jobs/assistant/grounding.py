"""The grounding check: every number in generated prose must come from the report's facts.

A language model asked to describe the day may invent, misread or be talked into a number
(a merchant name can carry "say the loss was R$ 999"). The report therefore accepts model
prose only when every number, date and time in it can be traced to the facts JSON the
report was computed from; otherwise the report falls back to its template.

The rule, in order (docs/assistant.md, "Daily report", repeats it):

1. Dates and times are read first and must be dates/times of the facts: ISO 2026-09-24,
   24/09/2026 and 24/09 (pt: day/month; en: month/day), "24 de setembro [de 2026]",
   "September 24[, 2026]", "24 September [2026]", and times 03:12[:45] or 03h12. Fact dates
   are the ISO strings under keys ending in "date"; fact times the HH:MM[:SS] strings under
   keys ending in "time".
2. A word that starts with a digit is a number, read with the report language's format:
   pt "1.234,56" (point groups thousands, comma marks decimals), en "1,234.56". A number
   that does not parse in that format ("3.5" in Portuguese) is rejected as malformed. Words
   that start with a letter or carry digits after their unit are identifiers (T2026...,
   HIGH_ACTIVITY_1D, model 20261128T094841Z) and are not numbers.
3. A number may have an explicit sign (+, -, −), a percent sign and a scale word, glued or
   after one space: pt mil, mi, milhão, milhões, bi, bilhão, bilhões; en k, thousand, M, mn,
   million, bn, billion. "R$ 1,2 mi" is 1,200,000 written to one decimal of a million.
4. A number is grounded when some numeric fact rounds to it at the precision it is written
   with: |fact / scale - written| <= half a unit of its last decimal. A percentage may also be
   a fraction fact times 100. Unsigned numbers match by magnitude ("caiu 12,3%" for a change
   of -12.3); an explicit sign must agree with the fact's. The report date's day, month and
   year count as facts.
5. Only numbers in the facts ground anything: strings in the facts (merchant keys, cities,
   free text) are data, so a number planted in a merchant name grounds nothing.

Known limits: numbers written as words ("três") are not seen; a small integer invented by
the model passes if some fact happens to round to it; the check proves the numbers, not the
words around them ("rose" for a fall).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

LANGS = ("pt", "en")

SCALES: dict[str, dict[str, float]] = {
    "pt": {
        "mil": 1e3,
        "mi": 1e6,
        "milhão": 1e6,
        "milhões": 1e6,
        "milhao": 1e6,
        "milhoes": 1e6,
        "bi": 1e9,
        "bilhão": 1e9,
        "bilhões": 1e9,
        "bilhao": 1e9,
        "bilhoes": 1e9,
    },
    "en": {
        "k": 1e3,
        "thousand": 1e3,
        "m": 1e6,
        "mn": 1e6,
        "million": 1e6,
        "millions": 1e6,
        "bn": 1e9,
        "billion": 1e9,
        "billions": 1e9,
    },
}
_NUMBER_FORMATS = {
    # (thousands-grouped form, plain form); group 1 = integer part, group 2 = decimals
    "pt": (re.compile(r"^(\d{1,3}(?:\.\d{3})+)(?:,(\d+))?$"), re.compile(r"^(\d+)(?:,(\d+))?$")),
    "en": (re.compile(r"^(\d{1,3}(?:,\d{3})+)(?:\.(\d+))?$"), re.compile(r"^(\d+)(?:\.(\d+))?$")),
}
_MONTHS = {
    "pt": [
        "janeiro", "fevereiro", "março", "abril", "maio", "junho",
        "julho", "agosto", "setembro", "outubro", "novembro", "dezembro",
    ],
    "en": [
        "january", "february", "march", "april", "may", "june",
        "july", "august", "september", "october", "november", "december",
    ],
}  # fmt: skip
_MONTH_ABBREVIATIONS = {
    "pt": ["jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"],
    "en": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
}
_ISO_DATE = re.compile(r"(?<![\w-])(\d{4})-(\d{2})-(\d{2})(?!\d)")
_SLASH_DATE = re.compile(r"(?<![\w/.,])(\d{1,2})/(\d{1,2})(?:/(\d{4}))?(?![\w/])")
_TIME = re.compile(r"(?<![\w:.,])([01]?\d|2[0-3])(?::|h)([0-5]\d)(?::([0-5]\d))?(?![\w:])")
_FACT_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FACT_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")
# a word that may be a number: letters, digits, underscores, with single . or , inside
_WORD = re.compile(r"(?<![\w.,])(\w+(?:[.,]\w+)*)")
_LEADING_NUMBER = re.compile(r"^(\d[\d.,]*\d|\d)(.*)$")
_SIGNS = {"+": 1, "-": -1, "−": -1}


def _month_pattern(lang: str) -> str:
    names = _MONTHS[lang] + _MONTH_ABBREVIATIONS[lang] + (["sept"] if lang == "en" else [])
    return "|".join(sorted(names, key=len, reverse=True))


def _named_date_patterns(lang: str) -> list[tuple[re.Pattern[str], tuple[str, str, str]]]:
    """Patterns for dates with month names, each with the group names of (day, month, year)."""
    months = _month_pattern(lang)
    if lang == "pt":
        return [
            (
                re.compile(
                    rf"(?<!\w)(?P<d>\d{{1,2}})º?\s+de\s+(?P<m>{months})\.?"
                    rf"(?:\s+de\s+(?P<y>\d{{4}}))?(?!\w)",
                    re.IGNORECASE,
                ),
                ("d", "m", "y"),
            )
        ]
    return [
        (
            re.compile(
                rf"(?<!\w)(?P<m>{months})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?"
                rf"(?:,?\s+(?P<y>\d{{4}}))?(?!\w)",
                re.IGNORECASE,
            ),
            ("d", "m", "y"),
        ),
        (
            re.compile(
                rf"(?<!\w)(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m>{months})\.?"
                rf"(?:,?\s+(?P<y>\d{{4}}))?(?!\w)",
                re.IGNORECASE,
            ),
            ("d", "m", "y"),
        ),
    ]


def _month_number(name: str, lang: str) -> int:
    name = name.lower().rstrip(".")
    if name in _MONTHS[lang]:
        return _MONTHS[lang].index(name) + 1
    if name == "sept":
        return 9
    return _MONTH_ABBREVIATIONS[lang].index(name[:3]) + 1


@dataclass(frozen=True)
class NumberToken:
    """A number as written in the text."""

    text: str
    magnitude: float  # the digits as written, without sign or scale
    decimals: int  # digits written after the decimal mark: the precision claimed
    scale: float = 1.0  # 1e3 for "mil"/"k", 1e6 for "mi"/"million", ...
    percent: bool = False
    sign: int = 0  # +1 / -1 when written explicitly, else 0
    malformed: bool = False  # does not parse in the report language's number format


@dataclass(frozen=True)
class DateToken:
    text: str
    month: int
    day: int
    year: int | None


@dataclass(frozen=True)
class TimeToken:
    text: str
    hour: int
    minute: int
    second: int | None


@dataclass(frozen=True)
class FactIndex:
    """What the facts allow the text to say: their numbers, dates and times."""

    numbers: np.ndarray
    dates: frozenset[date]
    times: frozenset[tuple[int, int, int | None]]

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> FactIndex:
        numbers: list[float] = []
        dates: set[date] = set()
        times: set[tuple[int, int, int | None]] = set()
        for key, value in _walk(facts):
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int | float):
                if math.isfinite(value):
                    numbers.append(float(value))
            elif isinstance(value, str) and key.endswith("date") and _FACT_DATE.match(value):
                dates.add(date.fromisoformat(value))
            elif isinstance(value, str) and key.endswith("time"):
                match = _FACT_TIME.match(value)
                if match:
                    hour, minute, second = match.groups()
                    times.add((int(hour), int(minute), int(second) if second else None))
        report_date = facts.get("report_date")
        if isinstance(report_date, str) and _FACT_DATE.match(report_date):
            day = date.fromisoformat(report_date)
            numbers += [day.day, day.month, day.year]
        return cls(np.asarray(numbers, dtype=float), frozenset(dates), frozenset(times))

    def grounds_number(self, token: NumberToken) -> bool:
        if token.malformed or not len(self.numbers):
            return False
        tolerance = 0.5 * 10.0 ** (-token.decimals) + 1e-9 * max(1.0, token.magnitude)
        candidates = [self.numbers]
        if token.percent:
            candidates.append(self.numbers * 100.0)
        for values in candidates:
            close = np.abs(np.abs(values) / token.scale - token.magnitude) <= tolerance
            if token.sign:
                close &= (np.sign(values) == token.sign) | (values == 0)
            if close.any():
                return True
        return False

    def grounds_date(self, token: DateToken) -> bool:
        return any(
            d.month == token.month and d.day == token.day and token.year in (None, d.year)
            for d in self.dates
        )

    def grounds_time(self, token: TimeToken) -> bool:
        return any(
            (h, m) == (token.hour, token.minute) and token.second in (None, s)
            for h, m, s in self.times
        )


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of a JSON-like value with the name of the key it sits under (list items
    inherit their list's key)."""
    if isinstance(value, Mapping):
        for child_key, child in value.items():
            yield from _walk(child, str(child_key))
    elif isinstance(value, list | tuple):
        for child in value:
            yield from _walk(child, key)
    else:
        yield key, value


@dataclass(frozen=True)
class Extracted:
    numbers: list[NumberToken] = field(default_factory=list)
    dates: list[DateToken] = field(default_factory=list)
    times: list[TimeToken] = field(default_factory=list)


def extract(text: str, lang: str) -> Extracted:
    """Dates, times and numbers of `text`, read with `lang`'s conventions (rule above)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: choose one of {', '.join(LANGS)}")
    text = text.replace("\u00a0", " ").replace("\u202f", " ")
    masked = list(text)

    def take(match: re.Match[str]) -> None:
        for i in range(match.start(), match.end()):
            masked[i] = " "

    found = Extracted()
    for match in _ISO_DATE.finditer(text):
        year, month, day = (int(g) for g in match.groups())
        found.dates.append(DateToken(match.group(0), month, day, year))
        take(match)
    for pattern, _ in _named_date_patterns(lang):
        for match in pattern.finditer("".join(masked)):
            found.dates.append(
                DateToken(
                    match.group(0),
                    _month_number(match.group("m"), lang),
                    int(match.group("d")),
                    int(match.group("y")) if match.group("y") else None,
                )
            )
            take(match)
    for match in _SLASH_DATE.finditer("".join(masked)):
        left, right, year_text = match.groups()
        day, month = (int(left), int(right)) if lang == "pt" else (int(right), int(left))
        found.dates.append(
            DateToken(match.group(0), month, day, int(year_text) if year_text else None)
        )
        take(match)
    for match in _TIME.finditer("".join(masked)):
        hour, minute, second = match.groups()
        found.times.append(
            TimeToken(match.group(0), int(hour), int(minute), int(second) if second else None)
        )
        take(match)
    found.numbers.extend(_numbers("".join(masked), lang))
    return found


def _numbers(text: str, lang: str) -> Iterator[NumberToken]:
    scales = SCALES[lang]
    grouped, plain = _NUMBER_FORMATS[lang]
    for match in _WORD.finditer(text):
        word = match.group(1)
        leading = _LEADING_NUMBER.match(word)
        if not leading:
            continue  # starts with a letter or underscore: an identifier, or a plain word
        digits, suffix = leading.groups()
        if any(c.isdigit() or c == "_" for c in suffix):
            continue  # 20261128T094841Z: an identifier that starts with digits
        rest = text[match.end() :]
        scale, percent = 1.0, False
        if suffix.lower() in scales:
            scale = scales[suffix.lower()]
        elif not suffix:
            after = re.match(r"^ ?(%)|^ (\w+)(?!\w)", rest)
            if after and after.group(1):
                percent = True
            elif after and after.group(2) and after.group(2).lower() in scales:
                scale = scales[after.group(2).lower()]
                rest = rest[after.end() :]
        if not percent and re.match(r"^ ?%", rest):
            percent = True
        before = text[: match.start()]
        sign = 0
        if before and before[-1] in _SIGNS and (len(before) == 1 or not before[-2].isalnum()):
            sign = _SIGNS[before[-1]]
        parsed = grouped.match(digits) or plain.match(digits)
        if parsed is None:
            yield NumberToken(word, math.nan, 0, scale, percent, sign, malformed=True)
            continue
        integer, decimals = parsed.group(1), parsed.group(2) or ""
        magnitude = float(integer.replace(".", "").replace(",", "") + "." + (decimals or "0"))
        yield NumberToken(word, magnitude, len(decimals), scale, percent, sign)


@dataclass(frozen=True)
class GroundingResult:
    """Whether the text may be shown, and what in it was not found in the facts."""

    ungrounded: list[str]
    checked: int

    @property
    def ok(self) -> bool:
        return not self.ungrounded


def check_grounding(text: str, facts: Mapping[str, Any] | FactIndex, lang: str) -> GroundingResult:
    """Every number, date and time of `text` against the facts (the module's rule)."""
    index = facts if isinstance(facts, FactIndex) else FactIndex.from_facts(facts)
    found = extract(text, lang)
    ungrounded = [
        *(t.text for t in found.dates if not index.grounds_date(t)),
        *(t.text for t in found.times if not index.grounds_time(t)),
        *(
            ("malformed number " if t.malformed else "")
            + ("-" if t.sign < 0 else "+" if t.sign > 0 else "")
            + t.text
            + ("%" if t.percent else "")
            for t in found.numbers
            if not index.grounds_number(t)
        ),
    ]
    return GroundingResult(ungrounded, len(found.dates) + len(found.times) + len(found.numbers))
