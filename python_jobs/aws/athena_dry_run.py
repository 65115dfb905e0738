"""The dbt project's Athena SQL executed on a real engine, and compared with the DuckDB target.

athena_check.py proves that every node compiles for Athena, parses and holds no DuckDB-only
SQL; nothing there proves that the Athena SQL computes what the DuckDB SQL computes (an
`athena__` macro body that differs from its `duckdb__` twin, Trino's integer division in
shared SQL...). Here the Athena-compiled SQL of every model, snapshot and data test runs on
DuckDB, over the same lake the DuckDB target built, and each result is compared with the
DuckDB target's:

1. Compile (compile_for_execution): `dbt compile --target athena` against moto, as
   athena_check does, twice: the first-build SQL of everything, then, with every incremental
   model registered in moto's Glue, the `is_incremental()` SQL. The values an incremental
   model asks the warehouse for while it compiles (query_first_row: the days to recompute)
   are answered with sentinel dates, one per answer column; the queries themselves are read
   back from moto's Athena history, run here when the model runs, and their real answers
   replace the sentinels. So the incremental SQL is the one dbt-athena would run, with the
   answers Athena would give at that point of the run.
2. Catalog (AthenaOnDuckDB): an in-memory DuckDB database named `awsdatacatalog`, with one
   schema per Glue database, so the compiled three-part names resolve unchanged. The raw
   feeds and the fraud scores are views over the lake's own files, typed as `athena register`
   declares the external tables (athena_ddl.py: the contract's Hive types, partition columns
   as strings, timestamps to Athena's millisecond). The seeds are the DuckDB target's tables:
   dbt loads them from the CSVs with the declared column_types, no compiled SQL.
3. First build (first_build): every model and the snapshot in DAG order, each Athena SELECT
   rewritten by athena_transpile.py into DuckDB SQL that computes what Athena computes, and
   created as a table or view; then every data test, its failing rows counted. Each relation
   is compared with the DuckDB target's: row count, the same columns, and per column an
   order-independent checksum: the sum of 64-bit hashes of its values, with integers and
   decimals as decimal(38, 10) (the engines widen sums differently: HUGEINT against bigint,
   decimal(38, s) against the contract's type), temporals as timestamp (Athena's date_add on
   a date is a date, timestamp(3) and (6) are one type here); doubles are compared as sorted
   multisets within a relative 1e-9, since a sum over a window in another order may differ
   in its last bits. Each data test must fail with as many rows as in the DuckDB target's
   build (its recorded run).
4. Increment (replay_increment): after the DuckDB target's daily run on new days, the same
   run replayed here as dbt-athena runs it: views unchanged, tables rebuilt, incremental
   models through their `is_incremental()` SQL (the bounds queries answered here first), then
   merged as Iceberg's MERGE does on the unique key (a key matched is replaced, a new one
   inserted; a batch with a repeated key is refused, as MERGE refuses it); then every
   relation compared again.

What is not executed, and where it is covered instead:
- dbt-athena's own statements around the SELECTs: CREATE TABLE ... WITH (table_type='ICEBERG',
  partitioning=...), the MERGE statement (emulated above by its effect), the snapshot's
  staging and merge (NOT_REPLAYED: the replay takes the DuckDB target's snapshot), contract
  casts. They are adapter SQL rendered at run time, not in the manifest, and have no DuckDB
  counterpart: the compiled configs are checked by test_athena_compile.py, the whole of it
  by the live tests (BANKLAKE_ATHENA_LIVE=1).
- The external tables' DDL, partition projection and the JSON SerDe (the views above read
  the same files with the same column types): test_athena_ddl.py.
- UNLOAD (`banklake score --target athena`): test_athena_score.py, against the Stubber.
- Built-in functions' corner cases and what athena_transpile.py refuses (its docstring).
- Columns the adapter fills (COLUMNS_NOT_COMPARED), seeds (loaded from the CSVs by each
  adapter), unit tests (compiled only by `dbt test`) and analyses (not built).
NOT_EXECUTED lists the nodes not executed, with why; it is empty: every model, snapshot and
data test runs. A node neither executed nor listed fails the check (unaccounted).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot.schema import MappingSchema

from python_jobs.aws.athena_check import (
    BOUNDS_COLUMNS,
    CompiledNode,
    Finding,
    clean_environment,
    compiled_nodes,
    create_buckets,
    dbt_compile,
    moto_aws,
    moto_client,
    queue_compile_time_answers,
    register_incremental_tables,
)
from python_jobs.aws.athena_ddl import (
    PARTITION_COLUMNS,
    SCORES_PARTITION,
    SCORES_PREFIX,
    SCORES_TABLE,
    hive_type,
    scores_schema,
)
from python_jobs.aws.athena_transpile import (
    AthenaRefuses,
    NotEmulated,
    catalog_schema,
    install_macros,
    to_duckdb,
)
from python_jobs.lake.layout import Lake
from python_jobs.lake.query import one_row
from python_jobs.lake.schemas import FEEDS

CATALOG = "awsdatacatalog"  # the database every Athena relation names
# the DuckDB target's database file, attached read-only under its own name (its views name it)
TARGET = "banklake"
EXECUTED = ("model", "snapshot", "test")
FLOAT_TOLERANCE = 1e-9  # relative: a double computed in another order differs in its last bits

# Each answer column of a compile-time query (athena_check.BOUNDS_COLUMNS) gets a sentinel
# date; a column outside that list fails the compile step, naming it (extend the list).
SENTINELS = {
    column: (date(2900, 1, 1) + timedelta(days=i)).isoformat()
    for i, column in enumerate(BOUNDS_COLUMNS)
}
_NODE_ID = re.compile(r'"node_id":\s*"([^"]+)"')

# Nodes the check does not execute, each with why and where else it is covered. The check
# fails for a node neither executed nor listed here, and for an entry naming no node.
NOT_EXECUTED: dict[str, str] = {}

# Columns whose values come from the adapter, not the project's SQL, and legitimately differ.
COLUMNS_NOT_COMPARED: dict[tuple[str, str], str] = {
    ("customers_snapshot", "dbt_scd_id"): (
        "dbt's own hash of the key and updated_at: dbt-athena's is to_hex(md5(...)), upper "
        "case, over Trino's text of a timestamp(6); dbt-duckdb's is lower-case md5 over DuckDB's "
        "text. Its unique and not_null tests run on both targets."
    ),
}

# Nodes whose incremental run is replayed from the DuckDB target instead of executed.
NOT_REPLAYED: dict[str, str] = {
    "snapshot.banklake.customers_snapshot": (
        "a snapshot's later runs are dbt's snapshot_staging_table and dbt-athena's Iceberg "
        "MERGE (iceberg_snapshot_merge_sql), adapter SQL rendered at run time, not project "
        "SQL: its SELECT and first build are executed and compared; the replay reads the "
        "DuckDB target's snapshot after the daily run. The snapshot's merge on Athena is "
        "exercised by the live tests (BANKLAKE_ATHENA_LIVE=1)."
    ),
}


@dataclass(frozen=True)
class BoundsQuery:
    """A query an incremental model runs while it compiles, and the sentinel each answer
    column got in the compiled SQL."""

    node_id: str
    sql: str
    columns: tuple[str, ...]


@dataclass
class AthenaCompile:
    first: dict[str, CompiledNode]  # every model, snapshot and test: the first-build SQL
    incremental: dict[str, CompiledNode]  # every incremental model: the is_incremental() SQL
    bounds: dict[str, BoundsQuery]  # node id -> its compile-time query
    manifest: dict[str, Any]  # the first compile's manifest
    timings: dict[str, float] = field(default_factory=dict)

    def dag_order(self) -> list[str]:
        """Models and snapshots, every node after the nodes it reads."""
        built = {
            uid: node
            for uid, node in self.manifest["nodes"].items()
            if node["resource_type"] in {"model", "snapshot"}
        }
        graph = {
            uid: [parent for parent in node["depends_on"]["nodes"] if parent in built]
            for uid, node in built.items()
        }
        return list(TopologicalSorter(graph).static_order())


@dataclass
class DryRunReport:
    phase: str
    executed: dict[str, str] = field(default_factory=dict)  # unique id -> resource type
    compared: list[str] = field(default_factory=list)  # relations compared with the target
    test_failures: dict[str, int] = field(default_factory=dict)  # test -> failing rows
    increment_rows: dict[str, int] = field(default_factory=dict)  # model -> rows merged
    findings: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        return Counter(self.executed.values())

    def summary(self) -> str:
        executed = ", ".join(f"{n} {kind}s" for kind, n in sorted(self.counts().items()))
        lines = [
            f"athena dry run, {self.phase}: executed {executed}; "
            f"{len(self.compared)} relations compared with the DuckDB target",
        ]
        if self.increment_rows:
            merged = ", ".join(f"{name} {rows}" for name, rows in self.increment_rows.items())
            lines.append(f"  rows merged: {merged}")
        lines.append("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        lines.append(f"  findings: {len(self.findings)}")
        lines.extend(f"    {finding}" for finding in self.findings)
        return "\n".join(lines)


def unaccounted(compiled: AthenaCompile, report: DryRunReport) -> list[str]:
    """Models, snapshots and data tests the first build neither executed nor allow-listed
    (NOT_EXECUTED), and allow-list entries that name no node: both fail the check, so a new
    model cannot skip it silently and a stale entry cannot hide one."""
    nodes = set(compiled.first)
    missing = sorted(nodes - set(report.executed) - set(NOT_EXECUTED))
    stale = sorted(set(NOT_EXECUTED) - nodes)
    return [f"not executed: {uid}" for uid in missing] + [
        f"NOT_EXECUTED names no node: {uid}" for uid in stale
    ]


# --- compile ----------------------------------------------------------------------------


def compile_for_execution(work: Path) -> AthenaCompile:
    """Both Athena compiles (first build, then `is_incremental()` with sentinel answers) and
    the compile-time queries, from one moto server (athena_check.moto_aws)."""
    timings: dict[str, float] = {}
    with moto_aws() as aws:
        env = {**clean_environment(), **aws}
        create_buckets(aws)
        tick = time.perf_counter()
        manifest = dbt_compile(env, work)
        timings["compile first build"] = time.perf_counter() - tick
        registered = register_incremental_tables(manifest, aws)
        # one sentinel answer per query an incremental model may run while compiling
        queue_compile_time_answers(aws, [SENTINELS] * (2 * len(registered)))
        tick = time.perf_counter()
        second = dbt_compile(env, work, select="config.materialized:incremental")
        timings["compile incremental"] = time.perf_counter() - tick
        bounds = _compile_time_queries(aws)
    first = {
        uid: node
        for uid, node in compiled_nodes(manifest).items()
        if node.resource_type in EXECUTED
    }
    incremental = {
        uid: node
        for uid, node in compiled_nodes(second).items()
        if node.resource_type == "model" and node.materialized == "incremental"
    }
    return AthenaCompile(first, incremental, bounds, manifest, timings)


def _compile_time_queries(aws: Mapping[str, str]) -> dict[str, BoundsQuery]:
    """The Athena queries dbt ran while compiling (moto records them), by the node whose
    compile ran them (dbt's query comment names it)."""
    athena = moto_client("athena", aws)
    ids = athena.list_query_executions()["QueryExecutionIds"]
    queries: dict[str, BoundsQuery] = {}
    for query_id in ids:  # moto has no batch_get_query_execution
        sql = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Query"]
        found = _NODE_ID.search(sql)
        if found is None:
            raise RuntimeError(f"a compile-time query names no dbt node: {sql[:300]}")
        node_id = found.group(1)
        statement = sqlglot.parse_one(sql, read="athena")
        if not isinstance(statement, sqlglot.exp.Query):
            raise RuntimeError(f"{node_id} ran a statement that is no query while compiling")
        columns = tuple(column.alias_or_name for column in statement.selects)
        unknown = [column for column in columns if column not in SENTINELS]
        if unknown:
            raise RuntimeError(
                f"{node_id} asks Athena for {unknown} while compiling: add them to "
                "athena_check.BOUNDS_COLUMNS"
            )
        if node_id in queries:
            raise RuntimeError(f"{node_id} ran two queries while compiling")
        queries[node_id] = BoundsQuery(node_id, sql, columns)
    return queries


# --- the catalog --------------------------------------------------------------------------


def duckdb_type(athena_type: str) -> str:
    """DuckDB's spelling of a Hive DDL type (athena_ddl.hive_type's output)."""
    simple = {
        "string": "VARCHAR",
        "bigint": "BIGINT",
        "int": "INTEGER",
        "double": "DOUBLE",
        "float": "FLOAT",
        "boolean": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
    }
    if athena_type in simple:
        return simple[athena_type]
    if athena_type.startswith("decimal("):
        return athena_type.upper()
    if athena_type.startswith("struct<") and athena_type.endswith(">"):
        fields = []
        for part in _split_top_level(athena_type[len("struct<") : -1]):
            name, inner = part.split(":", 1)
            fields.append(f"{name} {duckdb_type(inner)}")
        return f"STRUCT({', '.join(fields)})"
    if athena_type.startswith("array<") and athena_type.endswith(">"):
        return f"{duckdb_type(athena_type[len('array<') : -1])}[]"
    raise ValueError(f"no DuckDB type for {athena_type}")


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "<"
        depth -= char == ">"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _literal(text: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def external_table_view(
    files: list[Path], glob: str, schema: pa.Schema, partitions: tuple[str, ...]
) -> str:
    """The SELECT an external table's view runs: the files under `glob` read as Athena's
    external table declares them (athena_ddl.hive_type of each contract column, the Hive
    partition columns as strings), or no rows with those columns when no file exists yet
    (the Glue table of a feed nothing delivered is empty, not missing)."""
    columns = [(f.name, duckdb_type(hive_type(f.type))) for f in schema]
    columns += [(name, "VARCHAR") for name in partitions]

    def typed(name: str, data_type: str) -> str:
        # Athena reads a Hive table's timestamp as timestamp(3): milliseconds
        if data_type == "TIMESTAMP":
            return f"cast(date_trunc('millisecond', {name}) as timestamp) as {name}"
        return f"cast({name} as {data_type}) as {name}"

    selected = ", ".join(typed(name, data_type) for name, data_type in columns)
    if not files:
        nulls = ", ".join(f"cast(null as {data_type}) as {name}" for name, data_type in columns)
        return f"select {nulls} where false"
    hive = ", ".join(f"'{name}': 'VARCHAR'" for name in partitions)
    options = f"hive_partitioning = true, hive_types = {{{hive}}}"
    if glob.endswith(".parquet"):
        reader = f"read_parquet({_literal(glob)}, {options}, union_by_name = true)"
    else:
        declared = ", ".join(f"'{f.name}': '{duckdb_type(hive_type(f.type))}'" for f in schema)
        reader = (
            f"read_json({_literal(glob)}, format = 'newline_delimited', {options}, "
            f"columns = {{{declared}}})"
        )
    return f"select {selected} from {reader}"


class AthenaOnDuckDB:
    """The Athena catalog on an in-memory DuckDB database (the module docstring, steps 2-4).
    Holds no lock on the lake's database file between calls: the target is attached
    read-only for a copy or a comparison, then detached."""

    def __init__(self, compiled: AthenaCompile, lake: Lake) -> None:
        self.compiled = compiled
        self.lake = lake
        self.con = duckdb.connect()
        self.con.execute(f"attach ':memory:' as {CATALOG}")
        install_macros(self.con)
        manifest = compiled.manifest
        self.raw_schema = _source_schema(manifest, "raw")
        self.scores_schema = _source_schema(manifest, "processed_files")
        schemas = {self.raw_schema, self.scores_schema}
        schemas |= {
            node["schema"]
            for node in manifest["nodes"].values()
            if node["resource_type"] in {"model", "snapshot", "seed"}
        }
        for schema in sorted(schemas):
            self.con.execute(f'create schema "{CATALOG}"."{schema}"')
        self.create_sources()
        self.copy_seeds()

    def close(self) -> None:
        self.con.close()

    # --- setup ----------------------------------------------------------------------

    def create_sources(self) -> None:
        """The raw feeds and the scores as views over the lake's files (external_table_view);
        recreated before each phase, so that files landed since are read."""
        for feed in FEEDS.values():
            files = self.lake.raw_files(feed)
            glob = f"{self.lake.raw}/{feed.name}/*/*/*/*{feed.file_suffix}"
            sql = external_table_view(files, glob, feed.schema, PARTITION_COLUMNS)
            self.con.execute(
                f'create or replace view "{CATALOG}"."{self.raw_schema}"."{feed.name}" as {sql}'
            )
        scores_root = self.lake.root / SCORES_PREFIX
        files = sorted(scores_root.glob(f"{SCORES_PARTITION}=*/*.parquet"))
        sql = external_table_view(
            files, f"{scores_root}/*/*.parquet", scores_schema(), (SCORES_PARTITION,)
        )
        self.con.execute(
            f'create or replace view "{CATALOG}"."{self.scores_schema}"."{SCORES_TABLE}" as {sql}'
        )

    @contextmanager
    def target(self) -> Iterator[str]:
        """The DuckDB target's database attached read-only (its catalog name)."""
        self.con.execute(f"attach {_literal(self.lake.database)} as {TARGET} (read_only)")
        try:
            yield TARGET
        finally:
            self.con.execute(f"detach {TARGET}")

    def target_relation(self, unique_id: str) -> str:
        """The DuckDB target's relation of a node: generate_schema_name gives the custom schema
        on DuckDB and <target schema>_<custom schema> on Athena."""
        node = self.compiled.manifest["nodes"][unique_id]
        return f'"{TARGET}"."{node["config"]["schema"]}"."{node["alias"]}"'

    def copy_seeds(self) -> None:
        with self.target():
            for unique_id, node in self.compiled.manifest["nodes"].items():
                if node["resource_type"] == "seed":
                    self.con.execute(
                        f"create or replace table {node['relation_name']} as "
                        f"select * from {self.target_relation(unique_id)}"
                    )

    def schema(self) -> MappingSchema:
        return MappingSchema(catalog_schema(self.con, CATALOG), dialect="athena")

    # --- building ---------------------------------------------------------------------

    def run_select(self, sql: str, schema: MappingSchema) -> str:
        """An Athena SELECT as DuckDB SQL (athena_transpile.to_duckdb)."""
        return to_duckdb(sql, schema)

    def build(self, node: CompiledNode, sql: str, schema: MappingSchema) -> None:
        """A model or the snapshot created from its Athena SELECT, as its materialization
        makes it: a view, or a table (an incremental model's first build is a table)."""
        select = self.run_select(sql, schema)
        manifest_node = self.compiled.manifest["nodes"][node.unique_id]
        relation = manifest_node["relation_name"]
        if node.resource_type == "snapshot":
            select = _snapshot_first_build(select, manifest_node["config"])
        kind = "view" if node.materialized == "view" else "table"
        self._drop(manifest_node)
        self.con.execute(f"create {kind} {relation} as {select}")

    def _drop(self, node: Mapping[str, Any]) -> None:
        found = self.con.execute(
            "select table_type from information_schema.tables "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [CATALOG, node["schema"], node["alias"]],
        ).fetchone()
        if found is not None:
            kind = "view" if found[0] == "VIEW" else "table"
            self.con.execute(f"drop {kind} {node['relation_name']}")

    def first_build(self, expected_test_failures: Mapping[str, int]) -> DryRunReport:
        """Every model and the snapshot, then every data test, from the first-build SQL;
        every relation compared with the DuckDB target's, every test's failing rows with
        `expected_test_failures` (test name -> failing rows in the target's build)."""
        report = DryRunReport("first build")
        started = time.perf_counter()
        for unique_id in self.compiled.dag_order():
            node = self.compiled.first[unique_id]
            if unique_id in NOT_EXECUTED:
                continue
            try:
                self.build(node, node.sql, self.schema())
                report.executed[unique_id] = node.resource_type
            except (NotEmulated, AthenaRefuses, duckdb.Error, sqlglot.errors.SqlglotError) as e:
                report.findings.append(_finding(node, report.phase, e))
        report.timings["build"] = time.perf_counter() - started
        tick = time.perf_counter()
        self._run_tests(report, expected_test_failures)
        report.timings["data tests"] = time.perf_counter() - tick
        tick = time.perf_counter()
        self._compare_all(report)
        report.timings["compare"] = time.perf_counter() - tick
        return report

    def _run_tests(self, report: DryRunReport, expected: Mapping[str, int]) -> None:
        schema = self.schema()
        for unique_id, node in sorted(self.compiled.first.items()):
            if node.resource_type != "test" or unique_id in NOT_EXECUTED:
                continue
            try:
                select = self.run_select(node.sql, schema)
                (failures,) = one_row(
                    self.con, f"select count(*) from ({select}) as dbt_internal_test"
                )
                report.executed[unique_id] = "test"
            except (NotEmulated, AthenaRefuses, duckdb.Error, sqlglot.errors.SqlglotError) as e:
                report.findings.append(_finding(node, report.phase, e))
                continue
            report.test_failures[node.name] = int(failures)
            if node.name not in expected:
                report.findings.append(
                    Finding(node.name, report.phase, "test", "no result in the target's build")
                )
            elif expected[node.name] != failures:
                report.findings.append(
                    Finding(
                        node.name,
                        report.phase,
                        "test",
                        f"{failures} failing rows on Athena's SQL, {expected[node.name]} on "
                        "the DuckDB target",
                    )
                )

    def _compare_all(self, report: DryRunReport, skip: frozenset[str] = frozenset()) -> None:
        with self.target():
            for unique_id in self.compiled.dag_order():
                if unique_id in NOT_EXECUTED or unique_id in skip:
                    continue
                node = self.compiled.manifest["nodes"][unique_id]
                excluded = {
                    column for (name, column) in COLUMNS_NOT_COMPARED if name == node["name"]
                }
                try:
                    differences = compare_relations(
                        self.con,
                        node["relation_name"],
                        self.target_relation(unique_id),
                        excluded,
                    )
                except duckdb.Error as error:
                    differences = [f"could not compare: {str(error).splitlines()[0]}"]
                report.compared.append(node["name"])
                report.findings.extend(
                    Finding(node["name"], report.phase, "differs", difference)
                    for difference in differences
                )

    # --- the increment ------------------------------------------------------------------

    def replay_increment(self) -> DryRunReport:
        """The run the DuckDB target just made on new days, replayed from the Athena SQL
        (the module docstring, step 4), then every relation compared with the target's."""
        report = DryRunReport("increment")
        started = time.perf_counter()
        self.create_sources()
        for unique_id in self.compiled.dag_order():
            if unique_id in NOT_EXECUTED:
                continue
            first = self.compiled.first[unique_id]
            try:
                if unique_id in NOT_REPLAYED:
                    with self.target():
                        relation = self.compiled.manifest["nodes"][unique_id]["relation_name"]
                        self.con.execute(
                            f"create or replace table {relation} as "
                            f"select * from {self.target_relation(unique_id)}"
                        )
                elif first.materialized == "incremental":
                    report.increment_rows[first.name] = self._merge_increment(unique_id)
                    report.executed[unique_id] = "incremental model"
                elif first.materialized != "view":  # a view reads the new rows as it is
                    self.build(first, first.sql, self.schema())
                    report.executed[unique_id] = f"{first.materialized} {first.resource_type}"
            except (NotEmulated, AthenaRefuses, duckdb.Error, sqlglot.errors.SqlglotError) as e:
                report.findings.append(_finding(first, report.phase, e))
            except IncrementError as error:
                report.findings.append(Finding(first.name, report.phase, "incremental", str(error)))
        report.timings["replay"] = time.perf_counter() - started
        tick = time.perf_counter()
        self._compare_all(report, skip=frozenset(NOT_REPLAYED))
        report.timings["compare"] = time.perf_counter() - tick
        return report

    def incremental_sql(self, unique_id: str, schema: MappingSchema) -> str:
        """The model's `is_incremental()` SQL with its compile-time answers as Athena gives
        them now: its bounds query run on the catalog, each sentinel replaced."""
        sql = self.compiled.incremental[unique_id].sql
        bounds = self.compiled.bounds.get(unique_id)
        if bounds is not None:
            row = self.con.execute(self.run_select(bounds.sql, schema)).fetchone()
            if row is None:
                raise IncrementError("its compile-time query returned no row")
            for column, value in zip(bounds.columns, row, strict=True):
                sql = sql.replace(f"'{SENTINELS[column]}'", f"'{value}'")
        left = [column for column, sentinel in SENTINELS.items() if sentinel in sql]
        if left:
            raise IncrementError(f"compile-time answers {left} not from its own query")
        return sql

    def _merge_increment(self, unique_id: str) -> int:
        """The incremental SQL's rows merged into the table on the unique key, as dbt-athena's
        Iceberg MERGE does: matched keys updated (every column), new keys inserted. Returns
        the rows the incremental SQL gave."""
        node = self.compiled.manifest["nodes"][unique_id]
        relation = node["relation_name"]
        key = node["config"]["unique_key"]
        keys = [key] if isinstance(key, str) else list(key)
        schema = self.schema()
        select = self.run_select(self.incremental_sql(unique_id, schema), schema)
        self.con.execute("create or replace temp table dbt_increment as " + select)
        joined = ", ".join(keys)
        (rows,) = one_row(self.con, "select count(*) from dbt_increment")
        (repeated,) = one_row(
            self.con,
            f"select count(*) from (select {joined} from dbt_increment "
            f"group by all having count(*) > 1)",
        )
        if repeated:
            raise IncrementError(
                f"{repeated} keys ({joined}) repeat in the increment: Iceberg's MERGE "
                "refuses a target row matched by several source rows"
            )
        matched = " and ".join(f"target.{k} = increment.{k}" for k in keys)
        self.con.execute(
            f"delete from {relation} as target where exists "
            f"(select 1 from dbt_increment as increment where {matched})"
        )
        self.con.execute(f"insert into {relation} by name select * from dbt_increment")
        self.con.execute("drop table dbt_increment")
        return int(rows)


class IncrementError(RuntimeError):
    """An incremental run Athena would not make as the DuckDB target made it."""


def _source_schema(manifest: Mapping[str, Any], source_name: str) -> str:
    schemas = {
        source["schema"]
        for source in manifest["sources"].values()
        if source["source_name"] == source_name
    }
    (schema,) = schemas
    return str(schema)


def _snapshot_first_build(select: str, config: Mapping[str, Any]) -> str:
    """A snapshot's first build around its SELECT: dbt's build_snapshot_table (dbt-athena
    uses dbt-core's), the columns of the timestamp strategy. Adapter SQL, not the project's:
    written here in DuckDB. dbt_scd_id is a stand-in with the same uniqueness (the key and
    updated_at), not compared (COLUMNS_NOT_COMPARED)."""
    if config.get("strategy") != "timestamp":
        raise NotEmulated(f"snapshot strategy {config.get('strategy')}")
    key, updated_at = config["unique_key"], config["updated_at"]
    return (
        f"select *, upper(md5(coalesce(cast({key} as varchar), '') || '|' || "
        f"coalesce(cast({updated_at} as varchar), ''))) as dbt_scd_id, "
        f"{updated_at} as dbt_updated_at, {updated_at} as dbt_valid_from, "
        f"nullif({updated_at}, {updated_at}) as dbt_valid_to "
        f"from ({select}) as sbq"
    )


def _finding(node: CompiledNode, phase: str, error: Exception) -> Finding:
    if isinstance(error, NotEmulated):
        kind = "not emulated"
    elif isinstance(error, AthenaRefuses):
        kind = "Athena refuses"
    else:
        kind = "does not run"
    detail = str(error).strip().splitlines()[0][:400] if str(error).strip() else repr(error)
    return Finding(f"{node.resource_type} {node.name}", phase, kind, detail)


# --- comparison -----------------------------------------------------------------------------

_EXACT = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "DECIMAL")
_TEMPORAL = ("DATE", "TIMESTAMP")
_FLOAT = ("FLOAT", "DOUBLE", "REAL")


def _category(data_type: str) -> str:
    name = data_type.upper()
    if name.startswith(_FLOAT):
        return "float"
    if name.startswith(_EXACT):
        return "exact"
    if name.startswith(_TEMPORAL):
        return "temporal"
    if name in {"BOOLEAN", "VARCHAR"}:
        return name.lower()
    return "other"


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {
        str(name).lower(): str(data_type)
        for name, data_type, *_ in con.execute(f"describe select * from {relation}").fetchall()
    }


def _normalized(column: str, category: str) -> str:
    quoted = f'"{column}"'
    if category == "exact":
        return f"cast({quoted} as decimal(38, 10))"
    if category == "temporal":
        return f"cast({quoted} as timestamp)"
    if category == "other":
        return f"cast({quoted} as varchar)"
    return quoted


def compare_relations(
    con: duckdb.DuckDBPyConnection,
    athena: str,
    target: str,
    excluded: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """How the relation built from Athena's SQL differs from the DuckDB target's: columns,
    row count, and per column an order-independent checksum (the module docstring, step 3).
    Empty when they hold the same rows."""
    ours, theirs = _columns(con, athena), _columns(con, target)
    differences = []
    if set(ours) != set(theirs):
        differences.append(
            f"columns: only in Athena's {sorted(set(ours) - set(theirs))}, "
            f"only in the target's {sorted(set(theirs) - set(ours))}"
        )
    (ours_rows,) = one_row(con, f"select count(*) from {athena}")
    (theirs_rows,) = one_row(con, f"select count(*) from {target}")
    if ours_rows != theirs_rows:
        differences.append(f"{ours_rows} rows from Athena's SQL, {theirs_rows} in the target")
        return differences
    exact: list[tuple[str, str]] = []
    for column in sorted((set(ours) & set(theirs)) - excluded):
        kinds = {_category(ours[column]), _category(theirs[column])}
        if "float" in kinds and kinds <= {"float", "exact"}:
            mismatched = _float_mismatches(con, athena, target, column)
            if mismatched:
                differences.append(
                    f"{column}: {mismatched} of {ours_rows} sorted values differ by more than "
                    f"{FLOAT_TOLERANCE:g} (relative)"
                )
        elif len(kinds) == 1:
            exact.append((column, kinds.pop()))
        else:
            differences.append(
                f"{column}: {ours[column]} from Athena's SQL, {theirs[column]} in the target"
            )
    if exact:
        normalized = [_normalized(column, kind) for column, kind in exact]
        # one checksum per column, and one over whole rows of those columns: the columns'
        # values paired in other rows would leave every column's checksum unchanged
        sums = ", ".join(f"sum(hash({value})::hugeint)" for value in normalized)
        sums += f", sum(hash({', '.join(normalized)})::hugeint)"
        ours_sums = one_row(con, f"select {sums} from {athena}")
        theirs_sums = one_row(con, f"select {sums} from {target}")
        for (column, _), mine, other in zip(exact, ours_sums[:-1], theirs_sums[:-1], strict=True):
            if mine != other:
                differences.append(f"{column}: different values (checksum)")
        if not differences and ours_sums[-1] != theirs_sums[-1]:
            differences.append("rows pair their values differently (row checksum)")
    return differences


def _float_mismatches(con: duckdb.DuckDBPyConnection, athena: str, target: str, column: str) -> int:
    """Values of a double column that differ beyond FLOAT_TOLERANCE once both sides are
    sorted: a multiset comparison that forgives the last bits (a near-tie may swap places in
    the sort, and its values are then within the tolerance of each other)."""
    quoted = f'"{column}"'
    (mismatched,) = one_row(
        con,
        f"""
        with ours as (
            select cast({quoted} as double) as v,
                row_number() over (order by cast({quoted} as double) nulls last) as n
            from {athena}
        ),
        theirs as (
            select cast({quoted} as double) as v,
                row_number() over (order by cast({quoted} as double) nulls last) as n
            from {target}
        )
        select count(*) from ours full join theirs using (n)
        where not (
            ours.v is not distinct from theirs.v
            or abs(ours.v - theirs.v)
                <= {FLOAT_TOLERANCE} * greatest(1, abs(ours.v), abs(theirs.v))
        )
        """,
    )
    return int(mismatched)


def recorded_test_failures(runs: list[Any]) -> dict[str, int]:
    """Test name -> failing rows of the newest recorded `dbt build` (python_jobs.dbt_runs)."""
    for run in runs:
        if run.command.startswith("dbt build"):
            return {
                test["name"]: int(test["failures"] or 0)
                for test in run.tests
                if test["kind"] == "test"
            }
    raise LookupError("no recorded dbt build")
