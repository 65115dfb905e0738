"""`banklake ask` and `banklake sql`: a question (or a statement) in, the SQL, its rows and a
one-paragraph reading out.

Two paths to the SQL, one way to run it:

- offline (no model): the question is matched to an intent (intents.py) whose SQL is a
  template filled with typed parameters;
- a model (Bedrock or an OpenAI-compatible endpoint): the model writes the SQL from the
  question and the curated schema (schema_context.py), prompted from text files in prompts/.
  If the query fails when it runs, the model gets one chance to correct it, with the error.

Whoever wrote it, the statement goes through the guard (guard.py) and then a read-only
warehouse (warehouse.py); a refusal is final (the model is not asked to try its way around
the guard). The reading is computed from the rows (reading.py): the model writes SQL only, so
whatever a model says besides SQL — a leaked prompt, an injected instruction — is never shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from python_jobs.assistant.guard import (
    DEFAULT_MAX_ROWS,
    AllowList,
    GuardedSQL,
    Refusal,
    SQLRefused,
    guard_sql,
)
from python_jobs.assistant.intents import (
    AS_OF_SQL,
    IntentMatch,
    QuestionRefused,
    intent_sql,
    language_of,
    match_question,
    screen_question,
)
from python_jobs.assistant.llm import Completion, Provider
from python_jobs.assistant.prompting import clean_text, data_block, render_prompt
from python_jobs.assistant.reading import fmt_value, read_intent, read_rows
from python_jobs.assistant.schema_context import SchemaContext, load_schema_context
from python_jobs.assistant.warehouse import QueryResult, QueryTimeout, Warehouse, make_warehouse
from python_jobs.aws.athena import AthenaQueryFailed
from python_jobs.lake.layout import Lake

__all__ = [
    "Answer",
    "AskFailed",
    "QuestionRefused",
    "Refusal",
    "SQLRefused",
    "ask",
    "open_assistant",
    "render_answer",
    "run_guarded",
    "sql_answer",
]

MODEL_MAX_TOKENS = 1024
MAX_ERROR_CHARS = 1_000
# Errors of a query that passed the guard and failed in the engine: worth one correction.
EXECUTION_ERRORS: tuple[type[BaseException], ...] = (duckdb.Error, QueryTimeout, AthenaQueryFailed)
_FENCED_SQL = re.compile(r"```(?:sql|SQL)?[ \t]*\n(.*?)```", re.DOTALL)
_BARE_SQL = re.compile(r"^\s*(select|with|\()", re.IGNORECASE)


class AskFailed(RuntimeError):
    """The question could not be answered for a reason that is not a refusal: the model
    failed, or its corrected query failed too."""


@dataclass
class Answer:
    question: str
    source: str  # "offline: <intent>" or the provider's name
    sql: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    reading: str
    language: str
    guarded: GuardedSQL
    notes: list[str] = field(default_factory=list)


def allow_list_for(warehouse: Warehouse, context: SchemaContext) -> AllowList:
    return context.allow_list(getattr(warehouse, "curated_schema", "curated"))


def run_guarded(
    sql: str, warehouse: Warehouse, allow: AllowList, *, max_rows: int = DEFAULT_MAX_ROWS
) -> tuple[GuardedSQL, QueryResult]:
    """The one way the assistant runs SQL: guard, then the read-only warehouse."""
    guarded = guard_sql(sql, dialect=warehouse.dialect, allow=allow, max_rows=max_rows)
    return guarded, warehouse.query(guarded.sql)


def last_data_day(warehouse: Warehouse, allow: AllowList) -> date | None:
    """The lake's last transaction day (fct_daily_kpis), through the guard like any query."""
    _, result = run_guarded(AS_OF_SQL, warehouse, allow, max_rows=1)
    value = result.rows[0][0] if result.rows else None
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return value


def _notes(guarded: GuardedSQL) -> list[str]:
    if guarded.limit_action == "capped":
        return [f"the query's LIMIT was capped at {guarded.limit} by the guard"]
    return []


def sql_answer(
    statement: str,
    warehouse: Warehouse,
    context: SchemaContext,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    language: str = "en",
) -> Answer:
    """`banklake sql`: a hand-written statement through the same guard and warehouse."""
    guarded, result = run_guarded(
        statement, warehouse, allow_list_for(warehouse, context), max_rows=max_rows
    )
    capped = guarded.limit if guarded.limit_action != "kept" else None
    return Answer(
        question="",
        source="sql",
        sql=guarded.sql,
        columns=result.columns,
        rows=result.rows,
        reading=read_rows(result.columns, result.rows, language, capped_at=capped),
        language=language,
        guarded=guarded,
        notes=_notes(guarded),
    )


def ask(
    question: str,
    *,
    provider: Provider,
    warehouse: Warehouse,
    context: SchemaContext,
    max_rows: int = DEFAULT_MAX_ROWS,
    as_of: date | None = None,
) -> Answer:
    """Answers `question` (see the module docstring). Raises Refusal (QuestionRefused or
    SQLRefused) for what it will not do, AskFailed for what it could not do."""
    screen_question(question)
    allow = allow_list_for(warehouse, context)
    last_day = last_data_day(warehouse, allow)
    if as_of is None:
        as_of = last_day + timedelta(days=1) if last_day else date.today()
    if provider.offline:
        return _ask_offline(question, warehouse, allow, max_rows, as_of)
    return _ask_model(question, provider, warehouse, context, allow, max_rows, as_of, last_day)


def _ask_offline(
    question: str, warehouse: Warehouse, allow: AllowList, max_rows: int, as_of: date
) -> Answer:
    match: IntentMatch = match_question(question, as_of)
    notes = []
    if match.top_n is not None and match.top_n > max_rows:
        notes.append(f"top {match.top_n} reduced to {max_rows} (--max-rows)")
        match = replace(match, top_n=max_rows)
    guarded, result = run_guarded(
        intent_sql(match, max_rows=max_rows), warehouse, allow, max_rows=max_rows
    )
    return Answer(
        question=question,
        source=f"offline: {match.intent}",
        sql=guarded.sql,
        columns=result.columns,
        rows=result.rows,
        reading=read_intent(match, result.columns, result.rows),
        language=match.language,
        guarded=guarded,
        notes=notes,
    )


def sql_from_completion(completion: Completion) -> str:
    """The SQL in a model's answer. Anything else the model wrote is dropped unseen: a
    guardrail block, a cut-off answer, a refusal or prose are reported with fixed words."""
    if completion.stop_reason in {"guardrail_intervened", "content_filtered"}:
        raise QuestionRefused(
            "guardrail", "the model provider's guardrail blocked this question or its answer"
        )
    if completion.stop_reason == "max_tokens":
        raise AskFailed("the model's answer was cut off (max_tokens) before the query was complete")
    text = completion.text or ""
    fenced = _FENCED_SQL.findall(text)
    if len(fenced) > 1:
        raise QuestionRefused("no_sql", "the model returned more than one query")
    if fenced:
        return fenced[0].strip()
    if text.strip().upper().startswith("CANNOT_ANSWER"):
        raise QuestionRefused(
            "model_declined", "the model found no way to answer this from the curated marts"
        )
    if _BARE_SQL.match(text):
        return text.strip()
    raise QuestionRefused("no_sql", "the model's answer contained no SQL query")


def _ask_model(
    question: str,
    provider: Provider,
    warehouse: Warehouse,
    context: SchemaContext,
    allow: AllowList,
    max_rows: int,
    as_of: date,
    last_day: date | None,
) -> Answer:
    schema = allow.schema
    system = render_prompt(
        "text_to_sql_system",
        dialect=warehouse.dialect,
        schema=schema,
        max_rows=str(max_rows),
        dialect_notes=render_prompt(f"text_to_sql_dialect_{warehouse.dialect}"),
        schema_context=data_block("schema", context.render(schema)),
    )
    dates = {
        "last_day": last_day.isoformat() if last_day else "unknown",
        "as_of": as_of.isoformat(),
    }
    user = render_prompt("text_to_sql_user", question=data_block("question", question), **dates)
    completions = [provider.complete(system, user, max_tokens=MODEL_MAX_TOKENS, temperature=0.0)]
    guarded = guard_sql(
        sql_from_completion(completions[-1]),
        dialect=warehouse.dialect,
        allow=allow,
        max_rows=max_rows,
    )
    notes: list[str] = []
    try:
        result = warehouse.query(guarded.sql)
    except EXECUTION_ERRORS as error:
        message = clean_text(error, max_chars=MAX_ERROR_CHARS)
        notes.append(f"the first query failed ({message.splitlines()[0][:120]}); corrected once")
        retry = render_prompt(
            "text_to_sql_retry",
            question=data_block("question", question),
            previous_sql=data_block("previous_sql", guarded.sql),
            error=data_block("error", message),
            **dates,
        )
        completions.append(
            provider.complete(system, retry, max_tokens=MODEL_MAX_TOKENS, temperature=0.0)
        )
        guarded = guard_sql(
            sql_from_completion(completions[-1]),
            dialect=warehouse.dialect,
            allow=allow,
            max_rows=max_rows,
        )
        try:
            result = warehouse.query(guarded.sql)
        except EXECUTION_ERRORS as second:
            raise AskFailed(
                f"the corrected query failed too: {clean_text(second, max_chars=300)}"
            ) from second
    language = language_of(question)
    tokens_in = sum(c.input_tokens for c in completions)
    tokens_out = sum(c.output_tokens for c in completions)
    notes += _notes(guarded)
    notes.append(
        f"model: {provider.name}, {len(completions)} call(s), "
        f"{tokens_in} input + {tokens_out} output tokens"
    )
    capped = guarded.limit if guarded.limit_action != "kept" else None
    return Answer(
        question=question,
        source=provider.name,
        sql=guarded.sql,
        columns=result.columns,
        rows=result.rows,
        reading=read_rows(result.columns, result.rows, language, capped_at=capped),
        language=language,
        guarded=guarded,
        notes=notes,
    )


@contextmanager
def open_assistant(
    target: str, lake: Lake, *, dbt_target_dir: Path | None = None
) -> Iterator[tuple[Warehouse, SchemaContext]]:
    """The warehouse of `target` and the curated schema context, closed afterwards."""
    context = load_schema_context(dbt_target_dir)
    warehouse = make_warehouse(target, lake)
    try:
        yield warehouse, context
    finally:
        close = getattr(warehouse, "close", None)
        if close is not None:
            close()


# --- rendering ---------------------------------------------------------------------------

MAX_SHOWN_ROWS = 50
MAX_CELL_CHARS = 40


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], language: str) -> list[str]:
    """Rows as an aligned text table; cells are data, cleaned of control characters."""
    header = [clean_text(c, max_chars=MAX_CELL_CHARS) for c in columns]
    body = [
        [
            clean_text(fmt_value(value, language, column), max_chars=MAX_CELL_CHARS)
            for value, column in zip(row, columns, strict=False)
        ]
        for row in rows[:MAX_SHOWN_ROWS]
    ]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in body]
    if len(rows) > MAX_SHOWN_ROWS:
        lines.append(f"... {len(rows) - MAX_SHOWN_ROWS} more rows")
    return lines


def render_answer(answer: Answer) -> str:
    lines = ["SQL:"]
    lines += [f"  {line}" for line in answer.sql.splitlines()]
    lines.append("")
    if answer.columns:
        lines += render_table(answer.columns, answer.rows, answer.language)
        lines.append("")
    lines.append(answer.reading)
    for note in answer.notes:
        lines.append(f"note: {note}")
    lines.append(f"({answer.source})" if answer.source != "sql" else "")
    return "\n".join(lines).rstrip() + "\n"


# --- commands (the CLI calls these; exit codes: 0 answered, 2 refused, 1 failed) ----------

EXIT_REFUSED = 2
EXIT_FAILED = 1


def _say_error(command: str, error: BaseException | str, stderr: Any) -> None:
    print(f"banklake {command}: {error}", file=stderr)


def sql_command(
    statement: str,
    *,
    lake: Lake,
    target: str = "duckdb",
    max_rows: int = DEFAULT_MAX_ROWS,
    stdout: Any = None,
    stderr: Any = None,
) -> int:
    """`banklake sql "<statement>"`: the statement through the guard and the read-only
    warehouse; a refusal prints its reason on stderr and exits 2."""
    import sys

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        with open_assistant(target, lake) as (warehouse, context):
            answer = sql_answer(statement, warehouse, context, max_rows=max_rows)
    except Refusal as refusal:
        _say_error("sql", refusal, stderr)
        return EXIT_REFUSED
    except EXECUTION_ERRORS as error:
        _say_error("sql", f"the query failed: {clean_text(error, max_chars=500)}", stderr)
        return EXIT_FAILED
    print(render_answer(answer), end="", file=stdout)
    return 0


def ask_command(
    question: str,
    *,
    lake: Lake,
    provider: Provider,
    target: str = "duckdb",
    max_rows: int = DEFAULT_MAX_ROWS,
    as_of: date | None = None,
    stdout: Any = None,
    stderr: Any = None,
) -> int:
    """`banklake ask "<question>"`: SQL, rows and reading on stdout; a refusal (unsupported
    offline, guard, guardrail) on stderr with exit 2; a failure with exit 1."""
    import sys

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        with open_assistant(target, lake) as (warehouse, context):
            answer = ask(
                question,
                provider=provider,
                warehouse=warehouse,
                context=context,
                max_rows=max_rows,
                as_of=as_of,
            )
    except Refusal as refusal:
        _say_error("ask", refusal, stderr)
        return EXIT_REFUSED
    except EXECUTION_ERRORS as error:
        _say_error("ask", f"the query failed: {clean_text(error, max_chars=500)}", stderr)
        return EXIT_FAILED
    print(render_answer(answer), end="", file=stdout)
    return 0
