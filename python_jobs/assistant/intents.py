"""Questions the offline assistant answers without a model, in Portuguese or English.

A question is matched to one of four intents by keywords, its parameters are read from fixed
vocabularies (a period, a top-N, a dimension, a metric, a transaction type or channel), and
each intent is a parameterized SQL template. Only typed values — dates, integers, names from
the vocabularies below — ever reach the SQL, so nothing of the question's text is pasted into
a query; the rendered SQL still goes through the guard like any other.

Supported (SUPPORTED_QUESTIONS is what users see when a question is not):

- top_customers: the top N customers by spend (approved outbound) in a period;
- kpi_breakdown: transactions, approved volume, average ticket and fraud rate by transaction
  type, channel, state, region or customer segment — or in total — over a period;
- kpi_trend: one KPI per day, week or month over a period;
- top_alerts: the fraud alert queue of a day (default: the last scored day).

Periods: today/hoje, yesterday/ontem, last N days|weeks|months / últimos N dias|semanas|meses,
this|last week / esta semana|semana passada, this|last month / este mês|mês passado, this
year / este ano, a month by name (in October [2026] / em outubro [de 2026]), YYYY-MM, a year,
a date (2026-11-01 or 01/11/2026, always day/month), and ranges (from A to B / de A a B /
between A and B / entre A e B). Relative periods count back from the as-of date: the day after
the lake's last transaction day (the daily feed delivers yesterday), unless given.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, timedelta

from python_jobs.assistant.guard import Refusal

INTENTS = ("top_customers", "kpi_breakdown", "kpi_trend", "top_alerts")
DEFAULT_TOP_N = 10
DEFAULT_PERIOD_DAYS = 30
MAX_QUESTION_CHARS = 500


class QuestionRefused(Refusal):
    """The question is not answered: not supported offline, or not a question at all."""


SUPPORTED_QUESTIONS = """\
Offline, without a model, the assistant answers these questions (pt-BR or English):
  - top customers by spend in a period
      "top 10 clientes por gasto em outubro" / "top 5 customers by spend last 7 days"
  - volume, average ticket, transactions or fraud rate by type, channel, state, region or
    segment (or in total) over a period
      "taxa de fraude por canal nos últimos 30 dias" / "volume by transaction type this month"
  - the trend of a KPI per day, week or month
      "evolução do ticket médio por semana em novembro" / "fraud rate trend last 14 days"
  - the day's top fraud alerts
      "principais alertas de ontem" / "top 20 alerts on 2026-11-27"
Periods: ontem/yesterday, hoje/today, últimos N dias/last N days, esta semana/this week,
semana passada/last week, este mês/this month, mês passado/last month, em outubro/in October,
2026-11, 2026-11-01 or 01/11/2026, de 2026-11-01 a 2026-11-07/from ... to ...
Filters: one transaction type (PIX, TED, boleto, débito, crédito) or channel (mobile,
internet banking, ATM, POS, agência). Anything else needs a model: --provider bedrock|openai.
"""


# --- vocabularies (matched on lowercase text without accents) ------------------------------

METRICS = {  # name -> (column in the answer, pt label, en label)
    "fraud_rate": ("fraud_rate", "taxa de fraude", "fraud rate"),
    "average_ticket": ("average_ticket_brl", "ticket médio", "average ticket"),
    "volume": ("approved_volume_brl", "volume aprovado", "approved volume"),
    "transactions": ("transactions", "número de transações", "number of transactions"),
}
_METRIC_WORDS = (
    ("fraud_rate", r"taxas? de fraudes?|fraud rates?|fraudes?|frauds?|fraudulent"),
    ("average_ticket", r"tickets? medios?|ticket|average ticket|valor medio|average amount"),
    (
        "volume",
        r"volume|valor total|montante|movimentad[oa]|amount|total value|spend|gasto",
    ),
    (
        "transactions",
        r"quantidade|numero de transac\w*|quantas|how many|count|transac\w*|transactions?",
    ),
)

DIMENSIONS = {  # name -> (pt label, en label)
    "transaction_type": ("tipo de transação", "transaction type"),
    "channel": ("canal", "channel"),
    "state": ("estado", "state"),
    "region": ("região", "region"),
    "segment": ("segmento", "segment"),
}
_DIMENSION_WORDS = (
    ("transaction_type", r"tipos?( de transac\w*)?|modalidades?|(transaction )?types?"),
    ("channel", r"canal|canais|channels?"),
    ("state", r"estados?|ufs?|states?"),
    ("region", r"regiao|regioes|regions?"),
    ("segment", r"segmentos?|segments?"),
)

TYPE_VALUES = (
    ("PIX", r"pix"),
    ("TED", r"ted"),
    ("BOLETO", r"boletos?"),
    ("DEBIT", r"debito|debit"),
    ("CREDIT", r"credito|credit"),
)
CHANNEL_VALUES = (
    ("mobile", r"mobile|celular|app|aplicativo"),
    ("internet_banking", r"internet banking|internet_banking|internet"),
    ("atm", r"atm|caixa eletronico|caixas eletronicos"),
    ("pos", r"pos|maquininha"),
    ("branch", r"agencias?|branch(es)?"),
)

_GRAINS = (
    ("week", r"por semana|semanal|semanais|weekly|per week|by week|week by week"),
    ("month", r"por mes|mensal|mensais|monthly|per month|by month|month by month"),
    ("day", r"por dia|diari[oa]s?|daily|per day|by day|day by day|dia a dia"),
)
_TREND = r"tendencia|evolucao|trend|over time|ao longo|historico|history|serie"
_ALERTS = r"alertas?|alerts?"
_CUSTOMERS = r"clientes?|customers?"
_TOP = (
    r"top|maiores|maior|principais|melhores|que mais|mais gast\w*|gastaram mais|biggest|largest|"
    r"highest|most|best|spend\w*|gasto|gastos|gastaram"
)

_NUMBER_WORDS = {
    "um": 1, "uma": 1, "one": 1, "dois": 2, "duas": 2, "two": 2, "tres": 3, "three": 3,
    "quatro": 4, "four": 4, "cinco": 5, "five": 5, "seis": 6, "six": 6, "sete": 7,
    "seven": 7, "oito": 8, "eight": 8, "nove": 9, "nine": 9, "dez": 10, "ten": 10,
    "quinze": 15, "fifteen": 15, "vinte": 20, "twenty": 20, "trinta": 30, "thirty": 30,
}  # fmt: skip
_N = r"(\d{1,4}|" + "|".join(_NUMBER_WORDS) + r")"

_MONTHS = {
    "janeiro": 1, "fevereiro": 2, "marco": 3, "abril": 4, "maio": 5, "junho": 6, "julho": 7,
    "agosto": 8, "setembro": 9, "outubro": 10, "novembro": 11, "dezembro": 12,
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}  # fmt: skip
_MONTH = r"(" + "|".join(_MONTHS) + r")"
_DATE = r"(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4})"

_PT_MARKERS = re.compile(
    r"\b(qual|quais|quanto|quantas|quantos|por|nos|nas|dos|das|ultim\w+|ontem|hoje|mes|"
    r"semana|clientes|taxa|maiores|principais|evolucao|tendencia|alertas|fraude|fraudes|de|"
    r"em|do|da|no|na|os|as)\b"
)

# Requests aimed at the assistant rather than the data: refused on every path.
_LEAK_OR_INJECTION = re.compile(
    r"system prompt|prompt do sistema|prompt de sistema|seu prompt|your prompt|"
    r"(suas|your|as) instruc\w*|(your|the) instructions|ignore (all |the |any )?(previous|prior|"
    r"above|earlier)|ignore (as|todas|tudo)|ignor\w+ (as )?instruc\w*|desconsider\w+|disregard|"
    r"repeat (the|everything|all)( text| words)? above|repita (o|tudo)|"
    r"what (were|are) you told|developer mode|modo desenvolvedor|jailbreak|"
    r"you are now|voce agora e|act as|aja como|finja"
)
_SQL_STATEMENT = re.compile(
    r";|--|/\*|\b(drop|delete|insert|update|truncate|attach|detach|copy|pragma|alter|create|"
    r"grant|install|load|unload|export|call)\s+(table|from|into|database|view|schema|"
    r"extension|secret|macro|function|\w+\s+set|'|\")"
)


def normalize(text: str) -> str:
    """Lowercase, accents removed, one space between words: what the patterns match."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.lower().split())


def language_of(question: str) -> str:
    """'pt' or 'en', by accents and common Portuguese words (English otherwise)."""
    if any(c in question for c in "ãõçáéíóúâêôàÃÕÇÁÉÍÓÚÂÊÔ"):
        return "pt"
    return "pt" if len(_PT_MARKERS.findall(normalize(question))) >= 1 else "en"


def screen_question(question: str) -> None:
    """Refuses what is not a question about the data, whatever the provider: prompt-leak
    and instruction-override requests, SQL statements, overlong text. A first layer only:
    the guard still checks every statement a model writes."""
    if not question or not question.strip():
        raise QuestionRefused("empty", "ask a question about the curated data")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionRefused(
            "too_long", f"questions are limited to {MAX_QUESTION_CHARS} characters"
        )
    text = normalize(question)
    if _LEAK_OR_INJECTION.search(text):
        raise QuestionRefused(
            "instruction_in_question",
            "the question talks to the assistant (its prompt or instructions) instead of "
            "asking about the data; the assistant's prompts are in the repository",
        )
    if _SQL_STATEMENT.search(text):
        raise QuestionRefused(
            "sql_in_question",
            "the question contains SQL; ask in words, or run a SELECT with `banklake sql`",
        )


# --- periods -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def phrase(self, lang: str) -> str:
        """ "em 2026-11-03" / "on 2026-11-03", "de A a B" / "from A to B"."""
        if self.start == self.end:
            return f"{'em' if lang == 'pt' else 'on'} {self.start.isoformat()}"
        if lang == "pt":
            return f"de {self.start.isoformat()} a {self.end.isoformat()}"
        return f"from {self.start.isoformat()} to {self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _to_date(text: str) -> date:
    if "-" in text:
        return date.fromisoformat(text)
    day, month, year = (int(part) for part in text.split("/"))
    return date(year, month, day)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBER_WORDS[text]


def _month_period(year: int, month: int) -> Period:
    return Period(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))


def _shift_months(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def parse_period(text: str, as_of: date) -> tuple[Period | None, str]:
    """The period a normalized question names, and the text with it removed (so that its
    numbers are not read as a top-N). `as_of` is "today"."""
    yesterday = as_of - timedelta(days=1)
    rules: list[tuple[str, object]] = [
        (
            rf"\b(de|from|between|entre|desde)\s+{_DATE}\s+(a|ate|to|and|e|until|-)\s+{_DATE}",
            lambda m: Period(_to_date(m.group(2)), _to_date(m.group(4))),
        ),
        (
            rf"\b(nos|nas|in the|over the|for the|durante os|durante as)?\s*"
            rf"(ultim[oa]s|last|past|previous)\s+{_N}\s+"
            r"(dias?|days?|semanas?|weeks?|mes(es)?|months?)\b",
            lambda m: _last_n(_number(m.group(3)), m.group(4), as_of),
        ),
        (
            r"\b(ultim[oa]|last|past)\s+(dia|day)\b|\b(ontem|yesterday)\b",
            lambda m: Period(yesterday, yesterday),
        ),
        (r"\b(hoje|today)\b", lambda m: Period(as_of, as_of)),
        (
            r"\b(semana passada|last week|previous week|ultima semana)\b",
            lambda m: _week(as_of - timedelta(days=7)),
        ),
        (
            r"\b(esta semana|nesta semana|essa semana|this week|semana atual|current week)\b",
            lambda m: Period(_week(as_of).start, as_of),
        ),
        (
            r"\b(mes passado|ultimo mes|last month|previous month)\b",
            lambda m: _month_period(*_ym(_shift_months(as_of, 1))),
        ),
        (
            r"\b(este mes|neste mes|esse mes|this month|mes atual|current month)\b",
            lambda m: Period(as_of.replace(day=1), as_of),
        ),
        (
            r"\b(este ano|neste ano|this year|ano atual|current year)\b",
            lambda m: Period(date(as_of.year, 1, 1), as_of),
        ),
        (
            rf"\b(em|in|de|no mes de|during|for)?\s*{_MONTH}(\s+(de|of)?\s*(\d{{4}}))?\b",
            lambda m: _named_month(_MONTHS[m.group(2)], m.group(5), as_of),
        ),
        (r"\b(\d{4})-(\d{2})\b(?!-)", lambda m: _month_period(int(m.group(1)), int(m.group(2)))),
        (
            rf"\b(em|on|in|no dia|on the|dia|de|for)?\s*{_DATE}",
            lambda m: Period(_to_date(m.group(2)), _to_date(m.group(2))),
        ),
        (
            r"\b(em|in|de|during)\s+(20\d\d)\b",
            lambda m: Period(date(int(m.group(2)), 1, 1), date(int(m.group(2)), 12, 31)),
        ),
    ]
    for pattern, build in rules:
        match = re.search(pattern, text)
        if match:
            try:
                period = build(match)  # type: ignore[operator]
            except ValueError as error:
                raise QuestionRefused(
                    "bad_period", f"{match.group(0).strip()!r}: {error}"
                ) from None
            if period.end < period.start:
                raise QuestionRefused(
                    "bad_period", f"{match.group(0).strip()!r} ends before it starts"
                )
            return period, (text[: match.start()] + " " + text[match.end() :])
    return None, text


def _ym(day: date) -> tuple[int, int]:
    return day.year, day.month


def _week(day: date) -> Period:
    monday = day - timedelta(days=day.weekday())
    return Period(monday, monday + timedelta(days=6))


def _last_n(n: int, unit: str, as_of: date) -> Period:
    if n < 1:
        raise ValueError("the number of days must be at least 1")
    end = as_of - timedelta(days=1)
    if unit.startswith(("dia", "day")):
        return Period(as_of - timedelta(days=n), end)
    if unit.startswith(("semana", "week")):
        return Period(as_of - timedelta(days=7 * n), end)
    return Period(_shift_months(as_of, n), end)


def _named_month(month: int, year: str | None, as_of: date) -> Period:
    if year:
        return _month_period(int(year), month)
    # the latest such month that has started by the as-of date
    latest = as_of.year if month <= as_of.month else as_of.year - 1
    return _month_period(latest, month)


# --- matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentMatch:
    intent: str
    language: str
    period: Period | None = None  # None for top_alerts means the last scored day
    top_n: int | None = None
    dimension: str | None = None
    metric: str | None = None
    grain: str | None = None
    transaction_type: str | None = None
    channel: str | None = None


def _first(vocabulary: tuple[tuple[str, str], ...], text: str) -> str | None:
    best: tuple[int, str] | None = None
    for name, pattern in vocabulary:
        match = re.search(rf"\b({pattern})\b", text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), name)
    return best[1] if best else None


def _top_n(text: str) -> int | None:
    for pattern in (
        rf"\btop\s*{_N}\b",
        rf"\b{_N}\s+(maiores|principais|melhores|primeir[oa]s|biggest|largest|top|highest|"
        r"clientes|customers|alertas|alerts)\b",
        rf"\b(os|as|the|first)\s+{_N}\b",
    ):
        match = re.search(pattern, text)
        if match:
            word = next(g for g in match.groups() if g and (g.isdigit() or g in _NUMBER_WORDS))
            return _number(word)
    return None


def _filters(text: str, dimension: str | None) -> tuple[str | None, str | None]:
    transaction_type = _first(TYPE_VALUES, text)
    channel = _first(CHANNEL_VALUES, text)
    # "por canal" names the dimension, not a channel value; "pos" is also a word in pt
    if dimension == "channel":
        channel = None
    if dimension == "transaction_type":
        transaction_type = None
    return transaction_type, channel


def match_question(question: str, as_of: date) -> IntentMatch:
    """The intent and parameters of `question`, or QuestionRefused listing what is supported."""
    screen_question(question)
    language = language_of(question)
    text = normalize(question)
    period, rest = parse_period(text, as_of)
    top_n = _top_n(rest)
    dimension = _first(_DIMENSION_WORDS, rest)
    metric = _first(_METRIC_WORDS, rest)
    grain = _first(_GRAINS, rest)
    transaction_type, channel = _filters(rest, dimension)
    base = IntentMatch(
        intent="",
        language=language,
        period=period,
        top_n=top_n,
        transaction_type=transaction_type,
        channel=channel,
    )
    if re.search(rf"\b({_ALERTS})\b", rest):
        if period == Period(as_of, as_of):
            base = replace(base, period=None)  # "today's alerts": the last scored day
        return replace(base, intent="top_alerts", top_n=top_n or DEFAULT_TOP_N)
    default_period = period or Period(
        as_of - timedelta(days=DEFAULT_PERIOD_DAYS), as_of - timedelta(days=1)
    )
    if re.search(rf"\b({_CUSTOMERS})\b", rest):
        # about customers: only the top by spend is answered, never a KPI read as one
        if not re.search(rf"\b({_TOP})", rest) or metric not in {None, "volume"}:
            raise QuestionRefused(
                "not_supported_offline",
                "offline, top customers are ranked by spend only\n\n" + SUPPORTED_QUESTIONS,
            )
        return replace(
            base, intent="top_customers", period=default_period, top_n=top_n or DEFAULT_TOP_N
        )
    if metric and (grain or re.search(rf"\b({_TREND})\b", rest)):
        if dimension:
            raise QuestionRefused(
                "not_supported_offline",
                "a trend split by a dimension is not supported offline; ask for the trend "
                "or for the breakdown\n\n" + SUPPORTED_QUESTIONS,
            )
        return replace(base, intent="kpi_trend", period=default_period, metric=metric, grain=grain)
    if metric or dimension:
        return replace(
            base,
            intent="kpi_breakdown",
            period=default_period,
            metric=metric or "volume",
            dimension=dimension,
            transaction_type=transaction_type,
            channel=channel,
        )
    raise QuestionRefused(
        "not_supported_offline",
        "this question is not supported offline\n\n" + SUPPORTED_QUESTIONS,
    )


# --- SQL -----------------------------------------------------------------------------------


def _lit(day: date) -> str:
    return f"date '{day.isoformat()}'"


def _filter_conditions(match: IntentMatch, prefix: str = "") -> list[str]:
    """Filters from closed vocabularies only: the values are our constants, not user text."""
    conditions = []
    if match.transaction_type:
        assert match.transaction_type in {name for name, _ in TYPE_VALUES}
        conditions.append(f"{prefix}transaction_type = '{match.transaction_type}'")
    if match.channel:
        assert match.channel in {name for name, _ in CHANNEL_VALUES}
        conditions.append(f"{prefix}channel = '{match.channel}'")
    return conditions


def _filter_sql(match: IntentMatch, prefix: str = "") -> str:
    """The filters as `and ...` lines to follow an existing where clause."""
    return "".join(f"\n        and {c}" for c in _filter_conditions(match, prefix))


_KPI_COLUMNS = """\
    transactions,
    approved_transactions,
    approved_volume_brl,
    cast(approved_volume_brl / nullif(approved_transactions, 0) as decimal(18, 2))
        as average_ticket_brl,
    fraud_transactions,
    cast(fraud_transactions as double) / nullif(transactions, 0) as fraud_rate"""


def intent_sql(match: IntentMatch, *, max_rows: int = 100) -> str:
    """The parameterized SQL of an intent (lowercase; the guard qualifies and limits it).
    A trend is coarsened (day -> week -> month) to fit in `max_rows` rows."""
    if match.intent == "top_customers":
        return _top_customers_sql(match)
    if match.intent == "kpi_breakdown":
        return _breakdown_sql(match)
    if match.intent == "kpi_trend":
        return _trend_sql(match, max_rows)
    if match.intent == "top_alerts":
        return _alerts_sql(match)
    raise ValueError(f"unknown intent {match.intent!r}")


def _top_customers_sql(match: IntentMatch) -> str:
    assert match.period and match.top_n
    return f"""\
with spend as (
    select
        customer_id,
        count(*) as transactions,
        sum(amount_brl) as spend_brl
    from curated.fct_transactions
    where
        is_approved
        and direction = 'outbound'
        and event_date between {_lit(match.period.start)} and {_lit(match.period.end)}\
{_filter_sql(match)}
    group by customer_id
)
select
    spend.customer_id,
    customers.segment,
    spend.transactions,
    spend.spend_brl
from spend
left join curated.dim_customers as customers
    on spend.customer_id = customers.customer_id
order by spend.spend_brl desc, spend.customer_id
limit {int(match.top_n)}
"""


def _breakdown_sql(match: IntentMatch) -> str:
    assert match.period and match.metric
    period = f"{_lit(match.period.start)} and {_lit(match.period.end)}"
    order_column = METRICS[match.metric][0]
    dimension = match.dimension
    if dimension in {"segment", "region"}:
        # not in fct_daily_kpis: from the transactions (segment through dim_customers)
        key = (
            "coalesce(customers.segment, 'unknown')"
            if dimension == "segment"
            else ("coalesce(fct.region, 'unknown')")
        )
        join = (
            "\n    left join curated.dim_customers as customers"
            "\n        on fct.customer_id = customers.customer_id"
            if dimension == "segment"
            else ""
        )
        aggregated = f"""\
    select
        {key} as {dimension},
        count(*) as transactions,
        sum(case when fct.is_approved then 1 else 0 end) as approved_transactions,
        sum(case when fct.is_approved then fct.amount_brl else 0 end)
            as approved_volume_brl,
        sum(case when fct.is_fraud_reported then 1 else 0 end) as fraud_transactions
    from curated.fct_transactions as fct{join}
    where
        fct.event_date between {period}{_filter_sql(match, "fct.")}
    group by {key}"""
    else:
        key = dimension or "'total'"
        name = dimension or "scope"
        aggregated = f"""\
    select
        {key} as {name},
        sum(transactions) as transactions,
        sum(approved_transactions) as approved_transactions,
        sum(approved_volume_brl) as approved_volume_brl,
        sum(fraud_transactions) as fraud_transactions
    from curated.fct_daily_kpis
    where
        event_date between {period}{_filter_sql(match)}
    {"group by " + key if dimension else ""}"""
        dimension = name
    return f"""\
with aggregated as (
{aggregated}
)
select
    {dimension},
{_KPI_COLUMNS}
from aggregated
where transactions > 0
order by {order_column} desc, {dimension}
"""


def trend_grain(match: IntentMatch, max_buckets: int) -> str:
    """The grain asked for, coarsened when the period has more buckets than rows allowed."""
    assert match.period
    grain = match.grain or "day"
    if grain == "day" and match.period.days > max_buckets:
        grain = "week"
    if grain == "week" and match.period.days / 7 > max_buckets:
        grain = "month"
    return grain


def _trend_sql(match: IntentMatch, max_buckets: int) -> str:
    assert match.period and match.metric
    grain = trend_grain(match, max_buckets)
    start = _lit(match.period.start)
    bucket = (
        "event_date"
        if grain == "day"
        else f"greatest(cast(date_trunc('{grain}', event_date) as date), {start})"
    )
    return f"""\
with aggregated as (
    select
        {bucket} as period_start,
        count(distinct event_date) as days,
        sum(transactions) as transactions,
        sum(approved_transactions) as approved_transactions,
        sum(approved_volume_brl) as approved_volume_brl,
        sum(fraud_transactions) as fraud_transactions
    from curated.fct_daily_kpis
    where
        event_date between {start} and {_lit(match.period.end)}\
{_filter_sql(match)}
    group by {bucket}
)
select
    period_start,
    days,
{_KPI_COLUMNS}
from aggregated
order by period_start
"""


def _alerts_sql(match: IntentMatch) -> str:
    assert match.top_n
    day_filter = f"where score_date = {_lit(match.period.end)}" if match.period else ""
    conditions = _filter_conditions(match, "alerts.")
    where = "where " + "\n    and ".join(conditions) if conditions else ""
    return f"""\
with latest as (
    select
        score_date,
        model_version
    from curated.fct_fraud_alerts
    {day_filter}
    order by score_date desc, scored_at desc, model_version desc
    limit 1
)
select
    alerts.score_date,
    alerts.model_version,
    alerts.alert_rank,
    alerts.transaction_id,
    alerts.customer_id,
    alerts.score,
    alerts.amount_brl,
    alerts.transaction_type,
    alerts.channel,
    alerts.state,
    alerts.reason_1_description,
    alerts.reason_2_description,
    alerts.reason_3_description,
    alerts.is_fraud_reported
from curated.fct_fraud_alerts as alerts
inner join latest
    on alerts.score_date = latest.score_date
    and alerts.model_version = latest.model_version
{where}
order by alerts.alert_rank
limit {int(match.top_n)}
"""


AS_OF_SQL = "select max(event_date) as last_day from curated.fct_daily_kpis"
