"""`banklake athena register` and `banklake athena query`: the two things a person does on
Athena outside `dbt build --target athena`.

register: the Glue databases (raw, processed_files and every schema dbt writes to), the raw
external tables and the fraud scores' external table, through Athena DDL so that it runs with
the same work group and permissions as the queries. Re-running it is safe: databases are
created if missing and the tables are dropped and created again from the current contract and
scores schema (external tables: no data is touched).

query: an analysis (analyses/<name>.sql) compiled by dbt for the athena target, run, and
its rows, bytes scanned and cost printed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_jobs.aws.athena import AthenaConfig, AthenaRunner, QueryResult
from python_jobs.aws.athena_ddl import (
    SCORES_TABLE,
    create_database,
    create_raw_table,
    create_scores_table,
    drop_table,
    raw_tables,
    scores_table,
)
from python_jobs.dbt_runner import PROJECT_DIR, ensure_profile

Say = Callable[[str], None]
DBT_WRITES = ("model", "seed", "snapshot")


@dataclass
class RegisterReport:
    databases: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)


def _invoke_dbt(args: list[str], target_path: Path) -> Any:
    """dbt for the athena target, in-process, with its output kept out of the project."""
    from dbt.cli.main import dbtRunner

    ensure_profile(PROJECT_DIR)
    result = dbtRunner().invoke(
        [
            *args,
            "--target",
            "athena",
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(PROJECT_DIR),
            "--target-path",
            str(target_path),
            "--log-path",
            str(target_path / "logs"),
            "--log-level",
            "none",  # the terminal gets the query's rows, not dbt's log or compiled SQL
        ]
    )
    if not result.success:
        messages = [
            str(node_result.message)
            for node_result in getattr(result.result, "results", None) or []
            if getattr(node_result, "message", None)
        ]
        detail = result.exception or "; ".join(messages) or "see the dbt log"
        raise RuntimeError(f"dbt {args[0]} --target athena failed: {detail}")
    return result.result


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """botocore's errors as the RuntimeError the CLI reports in one line (no credentials,
    access denied, unknown work group...)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise RuntimeError(f"{action}: {error}") from error


def dbt_schemas(nodes: Iterable[Any]) -> list[str]:
    """Every schema the athena target writes to (one Glue database each), from the nodes of
    a parsed manifest, so custom schemas and generate_schema_name are taken into account."""
    return sorted({node.schema for node in nodes if node.resource_type in DBT_WRITES})


def register(config: AthenaConfig, runner: AthenaRunner, say: Say = print) -> RegisterReport:
    if not config.raw_location:
        raise RuntimeError("register needs BANKLAKE_S3_RAW_DIR (where the raw feeds land)")
    # the tables first: a raw location the scores cannot be derived from fails before dbt
    tables = raw_tables(
        config.raw_database, config.raw_location, config.first_raw_year, config.last_raw_year
    )
    scores = scores_table(
        config.scores_database,
        config.raw_location,
        config.first_raw_year,
        config.last_raw_year,
    )
    with tempfile.TemporaryDirectory(prefix="banklake-athena-") as work:
        manifest = _invoke_dbt(["parse"], Path(work))
    report = RegisterReport()
    comments = {
        config.raw_database: "banklake raw layer: external tables over the feeds",
        config.scores_database: "banklake: files other jobs write under processed/ (scores)",
    }
    for schema in dbt_schemas(manifest.nodes.values()):
        comments.setdefault(schema, "banklake: tables and views written by dbt")
    for database, comment in comments.items():
        with aws_errors(f"creating database {database}"):
            runner.run(create_database(database, comment), max_rows=None)
        report.databases.append(database)
        say(f"database {database}")
    for table in tables:
        with aws_errors(f"creating table {table.database}.{table.feed.name}"):
            runner.run(drop_table(table.database, table.feed.name), max_rows=None)
            runner.run(create_raw_table(table), max_rows=None)
        report.tables.append(f"{table.database}.{table.feed.name}")
        say(
            f"table {table.database}.{table.feed.name} -> {table.location} "
            f"({table.feed.file_format}, years {table.first_year}-{table.last_year})"
        )
    with aws_errors(f"creating table {scores.database}.{SCORES_TABLE}"):
        runner.run(drop_table(scores.database, SCORES_TABLE), max_rows=None)
        runner.run(create_scores_table(scores), max_rows=None)
    report.tables.append(f"{scores.database}.{SCORES_TABLE}")
    say(
        f"table {scores.database}.{SCORES_TABLE} -> {scores.location} "
        f"(parquet, score days {scores.first_year}-{scores.last_year})"
    )
    return report


def compile_analysis(path: Path, target_path: Path) -> str:
    """The Athena SQL of one analysis, compiled by dbt (refs become Glue tables)."""
    analyses = (PROJECT_DIR / "analyses").resolve()
    resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not resolved.is_file():
        resolved = (analyses / path.name).resolve()
    if resolved.parent != analyses or resolved.suffix != ".sql" or not resolved.is_file():
        raise FileNotFoundError(f"{path}: not an analysis (expected analyses/<name>.sql)")
    results = _invoke_dbt(
        ["compile", "--no-populate-cache", "--select", f"path:analyses/{resolved.name}"],
        target_path,
    )
    compiled = [r.node.compiled_code for r in results.results if r.node.resource_type == "analysis"]
    if len(compiled) != 1:
        raise RuntimeError(f"dbt compiled {len(compiled)} analyses for {resolved.name}")
    return compiled[0]


def format_rows(result: QueryResult, max_width: int = 40) -> str:
    """A plain aligned table: the terminal is the interface."""

    def cell(value: str | None) -> str:
        text = "null" if value is None else value
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    table = [list(result.columns), *[[cell(v) for v in row] for row in result.rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(result.columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def describe_cost(result: QueryResult) -> str:
    scanned_mb = result.bytes_scanned / 2**20
    return (
        f"{len(result.rows)} rows{' (truncated)' if result.truncated else ''}; "
        f"scanned {scanned_mb:,.1f} MB in {result.engine_ms / 1000:.1f} s; "
        f"cost ${result.cost_usd:.6f} (at $5/TB, 10 MB minimum); query {result.query_id}"
    )


def query(
    config: AthenaConfig, runner: AthenaRunner, analysis: Path, max_rows: int, say: Say = print
) -> QueryResult:
    with tempfile.TemporaryDirectory(prefix="banklake-athena-") as work:
        sql = compile_analysis(analysis, Path(work))
    with aws_errors(f"running {analysis}"):
        result = runner.run(sql, max_rows=max_rows)
    say(format_rows(result))
    say(describe_cost(result))
    return result
