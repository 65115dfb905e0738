"""Offline proof that the dbt project compiles to SQL Athena can run, in `make test`.

There is no AWS here, and dbt-athena asks Glue whether a table exists before it decides what
an incremental model compiles to. So a moto server on 127.0.0.1 stands in for S3, Glue and STS
(the dbt subprocess gets AWS_ENDPOINT_URL and dummy credentials, never the developer's), and
the project is compiled twice for the athena target:

  full-refresh  no table registered: every incremental model compiles its first-build SQL;
  incremental   every incremental model registered in moto's Glue as an Iceberg table:
                the `is_incremental()` SQL.

Every model, snapshot, analysis and data test of the first compile (100%, counted against the
manifest and the files) and the incremental SQL of every incremental model then has to:

- parse with sqlglot's athena dialect;
- hold no DuckDB-only construct (read_parquet, strftime, `::`, QUALIFY, a 4th regexp_replace
  argument, ...): sqlglot parses many of them happily, so parsing alone proves little
  (detectors in athena_sql.py);
- read every source as its Glue table, never as dbt-duckdb's external_location;
- in Iceberg tables, have no output column that is timestamp(3) (date_parse, a plain cast to
  timestamp, now()) rather than timestamp(6): Athena refuses those in Iceberg;
- pass sqlfluff with the athena dialect (models, snapshots, analyses), with the rules that
  mean something for generated SQL (athena_compiled.sqlfluff beside this file).

Run it alone with `python -m python_jobs.aws.athena_check`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_jobs.aws.athena_sql import (
    duckdb_only_constructs,
    empty_typed_literals,
    millisecond_timestamps,
)
from python_jobs.aws.clients import Service
from python_jobs.dbt_runner import PROJECT_DIR

REGION = "sa-east-1"
STAGING_BUCKET = "banklake-check-results"
DATA_BUCKET = "banklake-check-lake"
COUNTED = ("model", "snapshot", "analysis")
PARSED = (*COUNTED, "test")
LINTED = COUNTED
SQLFLUFF_CONFIG = Path(__file__).with_name("athena_compiled.sqlfluff")
TABLE_MATERIALIZATIONS = {"table", "incremental", "snapshot"}
WORK_GROUP = "banklake"  # the profile's default work group
# Every column a compile-time query (query_first_row) may answer: the first ingestion day a
# model re-reads (window_start), the first day an incremental run recomputes, and
# ml_features' window bounds (macros/features/incremental_windows.sql: new_from, late_from
# and, for each, window_<N>d_from and shared_<N>d_from for its windows of N days).
MAX_WINDOW_DAYS = 60
BOUNDS_COLUMNS = (
    "window_start",
    "recompute_from",
    "history_from",
    *(
        f"{tier}_{column}"
        for tier in ("new", "late")
        for column in (
            "from",
            *(f"window_{days}d_from" for days in range(1, MAX_WINDOW_DAYS + 1)),
            *(f"shared_{days}d_from" for days in range(1, MAX_WINDOW_DAYS + 1)),
        )
    ),
)
# moto's Athena accepts queries but runs none. Models that query the warehouse while they
# compile (run_query: the triaged models' first ingestion day, fct_transactions' first day,
# ml_features' bounds) get these answers in the order they ask. Each answer holds every column
# any of them reads, so the order does not matter; a column an answer lacked would render
# empty (`date ''`, a finding). More answers than the project asks (at most 2 per incremental
# model).
COMPILE_TIME_ANSWER = {column: "2026-10-05" for column in BOUNDS_COLUMNS}
COMPILE_TIME_ANSWERS: list[dict[str, str]] = [COMPILE_TIME_ANSWER] * 64


@dataclass(frozen=True)
class Finding:
    node: str
    phase: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.node} [{self.phase}] {self.kind}: {self.detail}"


@dataclass(frozen=True)
class CompiledNode:
    unique_id: str
    name: str
    resource_type: str
    path: str
    materialized: str
    table_type: str
    sql: str
    sources: tuple[str, ...]  # unique ids of the sources it reads


@dataclass
class CheckReport:
    expected: Counter[str] = field(default_factory=Counter)  # manifest nodes per type
    compiled: dict[str, Counter[str]] = field(default_factory=dict)  # phase -> type -> count
    nodes: dict[str, dict[str, CompiledNode]] = field(default_factory=dict)  # phase -> id
    incremental_models: list[str] = field(default_factory=list)
    linted_files: int = 0
    findings: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)  # the full-refresh manifest

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        lines = ["athena compile check"]
        counts = self.compiled.get("full-refresh", Counter())
        listed = ", ".join(f"{counts[t]}/{self.expected[t]} {t}" for t in PARSED)
        lines.append(f"  full-refresh compile (no table in Glue): {listed}")
        lines.append(
            f"  incremental compile ({len(self.incremental_models)} incremental models "
            f"registered in Glue as Iceberg): {len(self.nodes.get('incremental', {}))} compiled"
        )
        lines.append(f"  sqlfluff (athena) linted {self.linted_files} compiled files")
        lines.append("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        lines.append(f"  findings: {len(self.findings)}")
        lines.extend(f"    {finding}" for finding in self.findings)
        return "\n".join(lines)


# --- AWS stand-in -----------------------------------------------------------------------


def clean_environment() -> dict[str, str]:
    """The parent environment without anything that could reach a real AWS account or
    change what the athena target renders to."""
    prefixes = ("AWS_", "BANKLAKE_ATHENA_", "BANKLAKE_S3_", "BANKLAKE_AWS_", "DBT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


@contextmanager
def moto_aws() -> Iterator[dict[str, str]]:
    """A moto server on 127.0.0.1 (a free port) and the environment that sends boto3 to it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto's backends are global to the process: start from an empty account every time
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=10
    ).close()
    try:
        yield {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "BANKLAKE_ATHENA_STAGING_DIR": f"s3://{STAGING_BUCKET}/dbt/",
            "BANKLAKE_S3_DATA_DIR": f"s3://{DATA_BUCKET}/warehouse/",
        }
    finally:
        server.stop()


def moto_client(service: Service, aws: Mapping[str, str]) -> Any:
    """A boto3 client of the moto server moto_aws() started."""
    import boto3

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=aws["AWS_SESSION_TOKEN"],
    )


def create_buckets(aws: Mapping[str, str]) -> None:
    """The buckets and the work group the athena target points at."""
    s3 = moto_client("s3", aws)
    for bucket in (STAGING_BUCKET, DATA_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    moto_client("athena", aws).create_work_group(
        Name=WORK_GROUP,
        Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{STAGING_BUCKET}/dbt/"}},
    )


def queue_compile_time_answers(
    aws: Mapping[str, str], answers: Sequence[Mapping[str, str]] = COMPILE_TIME_ANSWERS
) -> None:
    """Queues `answers` in moto's Athena (its /moto-api endpoint): the n-th query run gets
    the n-th answer, one row of those columns."""
    results = [
        {
            "rows": [
                {"Data": [{"VarCharValue": name} for name in answer]},
                {"Data": [{"VarCharValue": value} for value in answer.values()]},
            ],
            "column_info": [{"Name": name, "Type": "varchar"} for name in answer],
        }
        for answer in answers
    ]
    body = json.dumps({"region": REGION, "results": results}).encode()
    request = urllib.request.Request(
        f"{aws['AWS_ENDPOINT_URL']}/moto-api/static/athena/query-results",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 201:
            raise RuntimeError(f"moto refused the Athena answers: {response.status}")


def register_incremental_tables(manifest: Mapping[str, Any], aws: Mapping[str, str]) -> list[str]:
    """Every incremental model as an existing Iceberg table in moto's Glue, as dbt-athena
    would find it after a first build; returns their unique ids."""
    glue = moto_client("glue", aws)
    registered = []
    databases: set[str] = set()
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["config"]["materialized"] != "incremental":
            continue
        schema, name = node["schema"], node["alias"]
        if schema not in databases:
            glue.create_database(DatabaseInput={"Name": schema})
            databases.add(schema)
        columns = [
            {"Name": column, "Type": (spec.get("data_type") or "string").replace(" ", "")}
            for column, spec in node["columns"].items()
        ] or [{"Name": "id", "Type": "string"}]
        glue.create_table(
            DatabaseName=schema,
            TableInput={
                "Name": name,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"table_type": "ICEBERG"},
                "StorageDescriptor": {
                    "Columns": columns,
                    "Location": f"s3://{DATA_BUCKET}/warehouse/{schema}/{name}/",
                },
            },
        )
        registered.append(node["unique_id"])
    return sorted(registered)


# --- dbt --------------------------------------------------------------------------------


def _dbt_executable() -> str:
    beside = Path(sys.executable).with_name("dbt")
    found = str(beside) if beside.exists() else shutil.which("dbt")
    if not found:
        raise RuntimeError("dbt is not installed in this environment")
    return found


def dbt_compile(env: Mapping[str, str], work: Path, select: str | None = None) -> dict[str, Any]:
    """`dbt compile --target athena` with the committed profile example; the manifest."""
    profiles = work / "profiles"
    profiles.mkdir(exist_ok=True)
    shutil.copyfile(PROJECT_DIR / "profiles.yml.example", profiles / "profiles.yml")
    command = [
        _dbt_executable(),
        "compile",
        "--target",
        "athena",
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(profiles),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        *(["--select", select] if select else []),
    ]
    done = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"dbt compile --target athena failed ({done.returncode}):\n"
            + (done.stdout[-4000:] + done.stderr[-2000:])
        )
    return json.loads((work / "target" / "manifest.json").read_text())


def compiled_nodes(manifest: Mapping[str, Any]) -> dict[str, CompiledNode]:
    nodes = {}
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] not in PARSED or not node.get("compiled_code"):
            continue
        config = node.get("config", {})
        nodes[unique_id] = CompiledNode(
            unique_id=unique_id,
            name=node["name"],
            resource_type=node["resource_type"],
            path=node["original_file_path"],
            materialized=config.get("materialized", ""),
            table_type=(config.get("table_type") or "hive").lower(),
            sql=node["compiled_code"],
            sources=tuple(
                n for n in node.get("depends_on", {}).get("nodes", []) if n.startswith("source.")
            ),
        )
    return nodes


def source_relations(manifest: Mapping[str, Any]) -> dict[str, str]:
    """source unique id -> how the athena target must render it: the Glue table."""
    return {
        unique_id: f'"{source["database"]}"."{source["schema"]}"."{source["identifier"]}"'
        for unique_id, source in manifest["sources"].items()
    }


def check_node(node: CompiledNode, phase: str, sources: Mapping[str, str]) -> list[Finding]:
    """Everything but sqlfluff, for one compiled node."""
    import sqlglot
    from sqlglot.errors import ParseError

    def finding(kind: str, detail: str) -> Finding:
        return Finding(f"{node.resource_type} {node.name} ({node.path})", phase, kind, detail)

    findings = []
    try:
        sqlglot.parse(node.sql, read="athena")
    except ParseError as error:
        return [finding("sqlglot athena parse", str(error).splitlines()[0][:300])]
    for construct in duckdb_only_constructs(node.sql):
        findings.append(finding("DuckDB-only SQL", construct))
    for literal in empty_typed_literals(node.sql):
        findings.append(finding("empty typed literal", f"{literal} (a value rendered empty)"))
    for source in node.sources:
        if sources[source] not in node.sql:
            findings.append(finding("source", f"{source} is not read as {sources[source]}"))
    iceberg_table = node.table_type == "iceberg" and node.materialized in TABLE_MATERIALIZATIONS
    if node.resource_type == "model" and iceberg_table:
        for expression in millisecond_timestamps(node.sql):
            findings.append(
                finding(
                    "timestamp(3) in an Iceberg table",
                    f"{expression} (wrap it in cast_table_timestamp())",
                )
            )
    return findings


# --- sqlfluff ---------------------------------------------------------------------------


class Lint:
    """sqlfluff (athena dialect, athena_compiled.sqlfluff) over compiled files, in its own
    process so that it runs while dbt compiles the next phase."""

    def __init__(self, files: dict[Path, str], processes: int = 1) -> None:
        self.files = files  # path -> node label
        self._process: subprocess.Popen[str] | None = None
        if files:
            sqlfluff = Path(sys.executable).with_name("sqlfluff")
            command = [
                str(sqlfluff) if sqlfluff.exists() else "sqlfluff",
                "lint",
                "--config",
                str(SQLFLUFF_CONFIG),
                "--ignore-local-config",
                "--format",
                "json",
                "--processes",
                str(processes),
                "--nofail",
                *(str(path) for path in files),
            ]
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

    def stop(self) -> None:
        """Ends a lint still running (the check failed before reading it)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def problems(self) -> list[tuple[str, str]]:
        """(node label, "CODE line N: description") for every violation, parse errors
        included."""
        if self._process is None:
            return []
        out, err = self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f"sqlfluff failed ({self._process.returncode}): {err[-2000:]}")
        labels = {path.resolve(): label for path, label in self.files.items()}
        found = []
        for record in json.loads(out):
            label = labels[Path(record["filepath"]).resolve()]
            for violation in record["violations"]:
                found.append(
                    (
                        label,
                        f"{violation['code']} line {violation['start_line_no']}: "
                        f"{violation['description']}",
                    )
                )
        return found


def _write_for_lint(nodes: list[CompiledNode], folder: Path, phase: str) -> dict[Path, str]:
    """Compiled SQL as files, one per node; path -> the node's label for findings."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for node in nodes:
        if node.resource_type not in LINTED:
            continue
        path = folder / f"{node.resource_type}__{node.name}.sql"
        path.write_text(node.sql.strip() + "\n")
        written[path] = f"{node.resource_type} {node.name} ({node.path})|{phase}"
    return written


# --- the check --------------------------------------------------------------------------


def run_check(work: Path | None = None) -> CheckReport:
    """Both compiles, every check; SQL problems are findings in the report (dbt failing to
    compile at all raises)."""
    report = CheckReport()
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="banklake-athena-check-")) if work is None else work
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    lints: list[Lint] = []
    try:
        with moto_aws() as aws:
            env = {**clean_environment(), **aws}
            create_buckets(aws)
            tick = time.perf_counter()
            manifest = dbt_compile(env, work)
            report.timings["compile full-refresh"] = time.perf_counter() - tick
            report.manifest = manifest
            report.nodes["full-refresh"] = compiled_nodes(manifest)
            first_lint = Lint(
                _write_for_lint(
                    list(report.nodes["full-refresh"].values()),
                    work / "lint" / "full-refresh",
                    "full-refresh",
                )
            )
            lints.append(first_lint)
            report.incremental_models = register_incremental_tables(manifest, aws)
            queue_compile_time_answers(aws)
            tick = time.perf_counter()
            # only incremental models compile differently once their table exists
            second = dbt_compile(env, work, select="config.materialized:incremental")
            report.nodes["incremental"] = {
                unique_id: node
                for unique_id, node in compiled_nodes(second).items()
                if node.resource_type == "model" and node.materialized == "incremental"
            }
            report.timings["compile incremental"] = time.perf_counter() - tick
        tick = time.perf_counter()
        changed = [
            node
            for node in report.nodes["incremental"].values()
            if node.sql != _full_refresh_sql(report, node)
        ]
        second_lint = Lint(_write_for_lint(changed, work / "lint" / "incremental", "incremental"))
        lints.append(second_lint)
        report.linted_files = len(first_lint.files) + len(second_lint.files)
        report.expected = Counter(
            node["resource_type"]
            for node in manifest["nodes"].values()
            if node["resource_type"] in PARSED
        )
        sources = source_relations(manifest)
        for phase, nodes in report.nodes.items():
            report.compiled[phase] = Counter(node.resource_type for node in nodes.values())
            checked = nodes.values() if phase == "full-refresh" else changed
            for node in checked:
                report.findings.extend(check_node(node, phase, sources))
        _check_counts(report)
        report.timings["sqlglot checks"] = time.perf_counter() - tick
        tick = time.perf_counter()
        for lint in (first_lint, second_lint):
            for label, problem in lint.problems():
                node_label, phase = label.rsplit("|", 1)
                report.findings.append(Finding(node_label, phase, "sqlfluff", problem))
        report.timings["sqlfluff (left after the compiles)"] = time.perf_counter() - tick
    finally:
        for lint in lints:
            lint.stop()
        report.timings["total"] = time.perf_counter() - started
        report.timings["cpu (this process and its children)"] = _cpu_seconds() - cpu_started
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children: on a busy machine the
    wall time says more about the neighbours than about the check."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _full_refresh_sql(report: CheckReport, node: CompiledNode) -> str | None:
    first = report.nodes["full-refresh"].get(node.unique_id)
    return first.sql if first else None


def _check_counts(report: CheckReport) -> None:
    """100% of the manifest compiled in both phases, and the manifest holds every model and
    analysis file of the project (a disabled or unparsed file would otherwise go unchecked)."""
    on_disk = {
        "model": len(list((PROJECT_DIR / "models").rglob("*.sql"))),
        "analysis": len(list((PROJECT_DIR / "analyses").rglob("*.sql"))),
    }
    for resource_type, files in on_disk.items():
        if report.expected[resource_type] != files:
            report.findings.append(
                Finding(
                    "project",
                    "manifest",
                    "count",
                    f"{files} {resource_type} files but {report.expected[resource_type]} "
                    f"{resource_type}s in the manifest",
                )
            )
    counts = report.compiled["full-refresh"]
    for resource_type in PARSED:
        if counts[resource_type] != report.expected[resource_type]:
            report.findings.append(
                Finding(
                    "project",
                    "full-refresh",
                    "count",
                    f"{counts[resource_type]} of {report.expected[resource_type]} "
                    f"{resource_type}s compiled",
                )
            )
    incremental = report.nodes["incremental"]
    if sorted(incremental) != report.incremental_models:
        report.findings.append(
            Finding(
                "project",
                "incremental",
                "count",
                f"{len(incremental)} of {len(report.incremental_models)} incremental models "
                "compiled",
            )
        )
    for node in incremental.values():
        if node.sql == _full_refresh_sql(report, node):
            report.findings.append(
                Finding(
                    f"model {node.name} ({node.path})",
                    "incremental",
                    "is_incremental()",
                    "same SQL with its table registered: the incremental branch never compiled",
                )
            )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--work", type=Path, help="keep the compiled SQL here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    report = run_check(args.work)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
