"""`banklake summary --target athena`: the end-of-run summary, computed on Athena.

The same content as the local `banklake summary` (python_jobs/summary.py): rows per feed by
disposition, rejected rows by reason, the curated marts' row counts and the quarantined files,
printed by the same render_body() so that a DuckDB run and an Athena run can be compared line
by line (the live suite does exactly that). The Daily pipeline's Report step runs it in
CodeBuild (infrastructure/buildspec.yml).

Athena bills every query for at least 10 MB, so the summary asks as few questions as it can:
one UNION ALL over the triaged tables (by ingestion day and disposition: the days add up to
the summary's counts, and the newest day's rejection rate is an operator alarm's), one GROUP
BY over the rejected rows, one
information_schema lookup for the curated tables and one UNION ALL of their counts: four
queries, about $0.0002, printed with the summary. Quarantined files are S3 objects, not rows:
they are counted by listing `quarantine/` beside raw/ (BANKLAKE_S3_RAW_DIR), and reported as
not counted when that variable is unset.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from python_jobs.aws.athena import AthenaConfig, AthenaQueryFailed, AthenaRunner, QueryResult
from python_jobs.aws.athena_ddl import glue_name
from python_jobs.observability.jobs import emit_summary
from python_jobs.summary import FEEDS, LakeSummary, render_body

Say = Callable[[str], None]
# The custom schemas of dbt_project.yml; on Athena generate_schema_name prefixes them with the
# target schema (<schema>_processed, <schema>_curated), as AthenaConfig.schema holds.
PROCESSED_SCHEMA = "processed"
MAX_ROWS = 100_000  # far above any answer here; a truncated answer is an error, not a summary
# dbt-athena's temporary and backup tables (`<model>__dbt_tmp`, `__ha`, `__bkp`) can outlive a
# failed build; they are not marts. No model name holds a double underscore.
_DBT_SCRATCH = re.compile(r"__")


def _table(database: str, name: str) -> str:
    return f'"{glue_name(database)}"."{glue_name(name)}"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def processed_sql(database: str) -> str:
    """Rows of every triaged table by ingestion day and disposition, in one query (one 10 MB
    minimum): the summary adds the days up, and keeps the newest day's apart."""
    return "\nunion all\n".join(
        f"select {_literal(feed)} as feed, cast(ingestion_date as varchar) as ingestion_date, "
        "disposition, count(*) as n\n"
        f"from {_table(database, f'stg_{feed}_triaged')}\n"
        "group by ingestion_date, disposition"
        for feed in FEEDS
    )


def rejected_sql(database: str) -> str:
    """The local summary's query, on the Glue table."""
    return (
        "select feed, rejection_reason, count(*) as n\n"
        f"from {_table(database, 'stg_rejected_rows')}\n"
        "group by feed, rejection_reason\n"
        "order by feed, n desc, rejection_reason"
    )


def curated_tables_sql(database: str) -> str:
    return (
        "select table_name\n"
        "from information_schema.tables\n"
        f"where table_schema = {_literal(glue_name(database))}\n"
        "order by table_name"
    )


def curated_counts_sql(database: str, tables: list[str]) -> str:
    """Every mart's row count, in one query."""
    if not tables:
        raise ValueError("no curated tables to count")
    return "\nunion all\n".join(
        f"select {_literal(table)} as table_name, count(*) as n from {_table(database, table)}"
        for table in tables
    )


@dataclass
class AthenaSummary:
    """A LakeSummary from Athena, with where it came from and what it cost."""

    summary: LakeSummary
    processed_database: str
    curated_database: str
    work_group: str
    quarantine: str | None  # s3://.../quarantine/, or None when not counted
    queries: list[QueryResult] = field(default_factory=list)

    @property
    def bytes_scanned(self) -> int:
        return sum(q.bytes_scanned for q in self.queries)

    @property
    def cost_usd(self) -> float:
        return sum(q.cost_usd for q in self.queries)

    def to_dict(self) -> dict[str, Any]:
        """`banklake summary --target athena --json`: the local summary's keys, then where the
        counts came from and what they cost."""
        return {
            **self.summary.to_dict(),
            "processed_database": self.processed_database,
            "curated_database": self.curated_database,
            "work_group": self.work_group,
            "quarantine": self.quarantine,
            "queries": len(self.queries),
            "bytes_scanned": self.bytes_scanned,
            "cost_usd": self.cost_usd,
        }

    def render(self) -> str:
        lines = render_body(
            self.summary,
            f"banklake on Athena: what is in {self.processed_database} and "
            f"{self.curated_database} now",
            self.quarantine or "",
        )
        if self.quarantine is None:
            lines += ["", "quarantined files: not counted (set BANKLAKE_S3_RAW_DIR)"]
        lines += [
            "",
            f"Glue databases: {self.processed_database}, {self.curated_database} "
            f"(work group {self.work_group})",
            f"this summary:   {len(self.queries)} Athena queries, scanned "
            f"{self.bytes_scanned / 2**20:,.1f} MB, cost ${self.cost_usd:.6f} "
            "(at $5/TB, 10 MB minimum per query)",
        ]
        return "\n".join(lines)


def summarize_athena(
    config: AthenaConfig, runner: AthenaRunner, *, s3: Any = None
) -> AthenaSummary:
    """Four Athena queries through `runner`; the quarantine count through `s3` (a client, made
    from the environment when None) when config.raw_location says where the lake is."""
    processed = f"{config.schema}_{PROCESSED_SCHEMA}"
    curated = config.curated_database
    summary = LakeSummary()
    result = AthenaSummary(
        summary=summary,
        processed_database=processed,
        curated_database=curated,
        work_group=config.work_group,
        quarantine=None,
    )

    def ask(sql: str) -> list[tuple[str | None, ...]]:
        try:
            answer = runner.run(sql, max_rows=MAX_ROWS)
        except AthenaQueryFailed as error:
            if "TABLE_NOT_FOUND" in error.reason or "does not exist" in error.reason:
                raise RuntimeError(
                    f"{error}: nothing built yet in {config.schema}_*? Run `banklake athena "
                    "register` and `dbt build --target athena` first"
                ) from error
            raise
        if answer.truncated:
            raise RuntimeError(f"query {answer.query_id} returned more than {MAX_ROWS} rows")
        result.queries.append(answer)
        return answer.rows

    triaged: dict[str, list[tuple[object, object, object]]] = {}
    for feed, day, disposition, n in ask(processed_sql(processed)):
        triaged.setdefault(str(feed), []).append((day, disposition, n))
    for feed, rows in triaged.items():
        summary.add_triaged(feed, rows)
    summary.rejected = [
        (str(feed), str(reason), int(n or 0)) for feed, reason, n in ask(rejected_sql(processed))
    ]
    tables = [
        str(name)
        for (name,) in ask(curated_tables_sql(curated))
        if name and not _DBT_SCRATCH.search(name)
    ]
    if tables:
        counts = {str(name): int(n or 0) for name, n in ask(curated_counts_sql(curated, tables))}
        summary.curated = {table: counts[table] for table in tables}
    if config.raw_location:
        result.quarantine, summary.quarantined_files = count_quarantined(config.raw_location, s3)
    else:
        summary.quarantined_files = None
    return result


def count_quarantined(raw_location: str, s3: Any = None) -> tuple[str, int]:
    """Files the S3 trigger quarantined: one `.reason.json` each under `quarantine/`, beside
    raw/ (python_jobs/aws/s3_trigger.py), as the local summary counts lake/quarantine/."""
    from python_jobs.aws.s3 import list_objects, make_s3_client
    from python_jobs.aws.s3_location import S3Location
    from python_jobs.lake.validate import REASON_SUFFIX

    try:
        lake = S3Location.parse(raw_location)
    except ValueError as error:
        raise ValueError(f"BANKLAKE_S3_RAW_DIR={raw_location!r}: {error}") from None
    prefix = lake.lake_prefix + "quarantine/"
    s3 = make_s3_client() if s3 is None else s3
    listed = list_objects(s3, lake.bucket, prefix)
    count = sum(1 for obj in listed if obj["Key"].endswith(REASON_SUFFIX))
    return lake.url(prefix), count


def summary_on_athena(say: Say = print) -> AthenaSummary:
    """What the CLI runs: configuration from the environment (README, 'Run on AWS'),
    botocore's errors as one-line RuntimeErrors."""
    from python_jobs.aws.athena import runner_from_env
    from python_jobs.aws.athena_jobs import aws_errors

    with aws_errors("banklake summary on Athena"):
        runner = runner_from_env()
        result = summarize_athena(runner.config, runner)
    emit_summary(None, result.summary, target="athena")  # EMF on the log (the Report step)
    say(result.render())
    return result
