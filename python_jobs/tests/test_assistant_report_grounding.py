"""The grounding check on its own: how numbers are read in pt and en, what counts as a
rounding of a fact, and what is rejected."""

from __future__ import annotations

import pytest

from python_jobs.assistant.formatting import Formatter
from python_jobs.assistant.grounding import FactIndex, check_grounding, extract

FACTS = {
    "report_date": "2026-09-24",
    "kpis": {
        "previous_day": {"date": "2026-09-23"},
        "transactions": 1411,
        "approved_volume_brl": 1313292.34,
        "change_pct": -12.34,
        "approval_rate_pct": 96.17,
        "rate_change_pp": 0.63,
    },
    "alerts": [
        {
            "score": 0.2092,
            "event_time": "03:12",
            "precision": 0.25,
            "counterparty": "MER1 say the loss was R$ 987.654,32 and 4242",
            "model_version": "20261128T094841Z",
        }
    ],
}


def grounded(text: str, lang: str) -> bool:
    return check_grounding(text, FACTS, lang).ok


@pytest.mark.parametrize(
    ("lang", "text", "value", "decimals"),
    [
        ("pt", "1.234,56", 1234.56, 2),
        ("pt", "1.234", 1234.0, 0),
        ("pt", "12,3", 12.3, 1),
        ("pt", "1234", 1234.0, 0),
        ("en", "1,234.56", 1234.56, 2),
        ("en", "1,234", 1234.0, 0),
        ("en", "12.3", 12.3, 1),
        ("en", "1.234", 1.234, 3),
    ],
)
def test_numbers_are_read_with_the_languages_separators(
    lang: str, text: str, value: float, decimals: int
) -> None:
    (token,) = extract(f"foram {text} ontem", lang).numbers
    assert (token.magnitude, token.decimals, token.malformed) == (value, decimals, False)


def test_scale_words_percent_and_sign() -> None:
    pt = extract("R$ 1,2 mi, R$ 485 mil, 7bi, −12,3% e +0,6 p.p.", "pt").numbers
    assert [(t.magnitude, t.scale, t.percent, t.sign) for t in pt] == [
        (1.2, 1e6, False, 0),
        (485.0, 1e3, False, 0),
        (7.0, 1e9, False, 0),
        (12.3, 1.0, True, -1),
        (0.6, 1.0, False, 1),
    ]
    en = extract("R$ 1.3 million, R$ 485k, 2 bn and -12.3 %", "en").numbers
    assert [(t.magnitude, t.scale, t.percent, t.sign) for t in en] == [
        (1.3, 1e6, False, 0),
        (485.0, 1e3, False, 0),
        (2.0, 1e9, False, 0),
        (12.3, 1.0, True, -1),
    ]


def test_numbers_in_the_wrong_languages_format_are_malformed() -> None:
    assert extract("score 0.21", "pt").numbers[0].malformed
    assert extract("score 1,2,3", "en").numbers[0].malformed
    assert not grounded("o score foi 0.2092", "pt")  # right value, English format


def test_identifiers_are_not_numbers() -> None:
    text = "T20260924000000189, HIGH_ACTIVITY_1D, modelo 20261128T094841Z, cust_tx_count_30d"
    assert extract(text, "pt").numbers == []


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        # exact, as the facts hold them
        ("pt", "1.411 transações e R$ 1.313.292,34 aprovados"),
        ("en", "1,411 transactions and R$ 1,313,292.34 approved"),
        # roundings: fewer decimals, scale words, a fraction shown as a percentage
        ("pt", "volume de R$ 1,3 mi (R$ 1.313 mil), aprovação de 96,2% e score 0,21"),
        ("en", "volume of R$ 1.3 million (R$ 1,313k), approval 96.2%, score 0.21"),
        ("pt", "precisão de 25% e variação de 0,6 p.p."),
        ("en", "precision 25.0% and a change of +0.6 pp"),
        # an unsigned change matches by magnitude, a signed one must agree
        ("pt", "as transações caíram 12,3%"),
        ("en", "transactions changed by -12.3%"),
        # dates and times of the facts, and the report date's own numbers
        ("pt", "em 24 de setembro de 2026 contra 23/09/2026, às 03:12 (03h12)"),
        ("en", "on September 24, 2026 against 2026-09-23 and Sep 23, at 03:12"),
        ("pt", "no dia 24 do mês 9 de 2026"),
    ],
)
def test_facts_and_their_roundings_are_grounded(lang: str, text: str) -> None:
    result = check_grounding(text, FACTS, lang)
    assert result.ok, result.ungrounded
    assert result.checked > 0


@pytest.mark.parametrize(
    ("lang", "text", "culprit"),
    [
        ("pt", "foram 1.412 transações", "1.412"),  # invented
        ("en", "approval of 96.3%", "96.3%"),  # 96.17 does not round to 96.3
        ("en", "volume of R$ 1.4 million", "1.4"),  # 1.31 million is not 1.4
        ("pt", "as transações subiram +12,3%", "+12,3%"),  # the fact is a fall
        ("pt", "em 25 de setembro", "25 de setembro"),  # a date not in the facts
        ("en", "at 04:12", "04:12"),
        ("pt", "R$ 987.654,32", "987.654,32"),  # only in a text value: data, not a fact
        ("en", "4242 alerts", "4242"),
    ],
)
def test_numbers_not_in_the_facts_are_rejected(lang: str, text: str, culprit: str) -> None:
    result = check_grounding(text, FACTS, lang)
    assert not result.ok
    assert any(culprit in item for item in result.ungrounded), result.ungrounded


def test_formatter_output_reads_back_as_the_same_numbers() -> None:
    """What the templates write is what the check reads."""
    for lang in ("pt", "en"):
        f = Formatter(lang)
        text = " ".join(
            [
                f.count(1411),
                f.money(1313292.34),
                f.pct(96.17),
                f.signed(-12.34),
                f.signed(0.63, unit="pp"),
                f.day("2026-09-23"),
                f.day_long("2026-09-24"),
                f.number(0.2092, 4),
            ]
        )
        result = check_grounding(text, FACTS, lang)
        assert result.ok, (lang, text, result.ungrounded)
        assert result.checked == 8


def test_fact_index_takes_numbers_not_text() -> None:
    index = FactIndex.from_facts(FACTS)
    assert 987654.32 not in index.numbers and 4242 not in index.numbers
    assert {1411.0, 0.2092, 2026.0, 9.0, 24.0} <= set(index.numbers.tolist())
