"""`banklake export --target athena`: what the online state warms from, published from Athena.

On AWS the marts are Iceberg tables that Athena writes; no step writes the Parquet export
that `banklake serve` and `banklake state load` warm from (python_jobs/serve/warmup.py). This
job makes one in a local lake, from Athena:

1. the two marts the warm-up reads (`fct_transactions`, `ml_features` in `<schema>_curated`)
   are checked in the Glue catalog: a missing mart or column is named before a byte is
   scanned;
2. one `UNLOAD` per mart of exactly the columns the warm-up reads (warmup.WARMUP_COLUMNS),
   cast to the types the marts have in DuckDB (timestamps as timestamp(3): the lake's times
   have at most millisecond precision), into
   `s3://<lake bucket>/<lake root>unload/online_state/<run id>/<mart>/`. `fct_transactions`
   whole: the first-seen pairs reach back over the whole history, as they do locally;
   `ml_features` only from RETENTION_DAYS + 1 days before the latest event date, the rows the
   warm-up joins (its flags for the rows its windows can still reach);
3. the files are read back (python_jobs/aws/athena_unload.py) into an in-memory DuckDB as
   `curated.<mart>` with those types, and published into the lake as `banklake export` publishes
   (python_jobs/export.py publish_marts: a new version folder, a manifest, an atomic switch);
4. the unload prefixes are deleted after success, left for inspection after a failure (the
   stack's lifecycle rule on unload/ expires them).

The lake must be one of its own (CodeBuild's scratch lake, or an empty folder): its export holds
only those columns, which `banklake serve` and `banklake state load` need and the dashboard does
not, so a lake built locally (it has banklake.duckdb) is refused rather than re-pointed.

The daily pipeline's LoadOnlineState step runs it, then `banklake state load` into the DynamoDB
table (infrastructure/buildspec.yml).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from python_jobs.aws.athena import AthenaConfig, AthenaRunner, QueryResult
from python_jobs.aws.athena_unload import (
    UNLOAD_ROOT,
    UnloadError,
    UnloadLocation,
    check_run_id,
    delete_unloaded,
    new_run_id,
    read_tables,
    run_unload,
    table_columns,
)
from python_jobs.aws.s3_location import S3Location
from python_jobs.export import ExportedTable, publish_marts
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import current_version_name
from python_jobs.serve.state import RETENTION_DAYS
from python_jobs.serve.warmup import WARMUP_COLUMNS

Say = Callable[[str], None]
UNLOAD_PREFIX = f"{UNLOAD_ROOT}online_state/"  # under the lake root, beside raw/
# the DuckDB types of WARMUP_COLUMNS, as Athena spells the cast that gives them
ATHENA_TYPES = {
    "VARCHAR": "varchar",
    "TIMESTAMP": "timestamp(3)",
    "DATE": "date",
    "BOOLEAN": "boolean",
    "DOUBLE": "double",
    "DECIMAL(18,2)": "decimal(18, 2)",
}
# ml_features rows older than this many days before the latest event date are not joined by
# the warm-up (its windows reach back RETENTION_DAYS from the latest event)
FEATURE_DAYS = RETENTION_DAYS + 1


class AthenaExportError(UnloadError):
    """The online state's export cannot be made from Athena."""


@dataclass(frozen=True)
class UnloadedMart:
    name: str
    location: UnloadLocation
    query: QueryResult
    rows: int


@dataclass(frozen=True)
class AthenaExportResult:
    version: str
    marts: list[UnloadedMart]
    exported: list[ExportedTable]

    @property
    def bytes_scanned(self) -> int:
        return sum(m.query.bytes_scanned for m in self.marts)

    @property
    def cost_usd(self) -> float:
        return sum(m.query.cost_usd for m in self.marts)

    def summary(self) -> str:
        rows = ", ".join(f"{m.name} {m.rows:,} rows" for m in self.marts)
        return (
            f"export {self.version} published from Athena ({rows}; "
            f"{self.bytes_scanned:,} bytes scanned, cost ${self.cost_usd:.6f})"
        )


def unload_locations(destination: S3Location, run_id: str) -> dict[str, UnloadLocation]:
    """`<lake root>unload/online_state/<run id>/<mart>/` in the lake bucket, per mart."""
    base = f"{destination.lake_prefix}{UNLOAD_PREFIX}{check_run_id(run_id)}/"
    return {mart: UnloadLocation(destination.bucket, f"{base}{mart}/") for mart in WARMUP_COLUMNS}


def select_sql(database: str, mart: str) -> str:
    """The warm-up's columns of `mart`, cast to the types they have in DuckDB."""
    columns = ",\n    ".join(
        f"cast({name} as {ATHENA_TYPES[kind]}) as {name}" for name, kind in WARMUP_COLUMNS[mart]
    )
    sql = f'select\n    {columns}\nfrom "{database}"."{mart}"'
    if mart == "ml_features":
        sql += (
            "\nwhere event_date >= (\n"
            f"    select date_add('day', -{FEATURE_DAYS}, max(event_date))\n"
            f'    from "{database}"."fct_transactions"\n)'
        )
    return sql


def check_marts(athena: Any, database: str) -> None:
    """Every mart and column the warm-up reads is in the catalog, else AthenaExportError
    naming what is missing (nothing scanned yet)."""
    problems = []
    for mart, wanted in WARMUP_COLUMNS.items():
        present = {name for name, _ in table_columns(athena, database, mart, AthenaExportError)}
        missing = [name for name, _ in wanted if name not in present]
        if missing:
            problems.append(f"{database}.{mart} has no {', '.join(missing)}")
    if problems:
        raise AthenaExportError(
            "; ".join(problems) + ": the online state warms from these columns "
            "(python_jobs/serve/warmup.py); rebuild the marts with this version's models"
        )


def _load_mart(
    con: duckdb.DuckDBPyConnection, s3: Any, mart: str, location: UnloadLocation, work: Path
) -> int:
    """The unloaded files of `mart` as `curated.<mart>` with the warm-up's types."""
    import pyarrow as pa

    wanted = WARMUP_COLUMNS[mart]
    names = [name for name, _ in wanted]
    tables = []
    for key, table in read_tables(s3, location, work):
        missing = [name for name in names if name not in table.column_names]
        if missing:
            raise AthenaExportError(
                f"unloaded file s3://{location.bucket}/{key} has no {', '.join(missing)}"
            )
        tables.append(table.select(names))
    columns = ", ".join(f'cast("{name}" as {kind}) as "{name}"' for name, kind in wanted)
    if tables:
        con.register("unloaded", pa.concat_tables(tables, promote_options="permissive"))
        con.execute(f'create table curated."{mart}" as select {columns} from unloaded')
        con.unregister("unloaded")
    else:  # an UNLOAD of no rows writes no file
        typed = ", ".join(f'"{name}" {kind}' for name, kind in wanted)
        con.execute(f'create table curated."{mart}" ({typed})')
    count = con.execute(f'select count(*) from curated."{mart}"').fetchone()
    return int(count[0]) if count else 0


def export_from_athena(
    lake: Lake,
    config: AthenaConfig,
    *,
    runner: AthenaRunner,
    s3: Any,
    run_id: str | None = None,
    now: datetime | None = None,
    say: Say = print,
) -> AthenaExportResult:
    """Publishes into `lake` the warm-up's columns of the Athena marts (the module's
    docstring). `runner` and `s3` are injectable for tests."""
    if not config.raw_location:
        raise ValueError("set BANKLAKE_S3_RAW_DIR: the lake's raw/ prefix on S3 (README)")
    if lake.database.exists():
        raise AthenaExportError(
            f"{lake.root} holds a local build ({lake.database.name}): `export --target athena` "
            "publishes only the columns the online state warms from, which would replace that "
            "lake's export. Give it a lake of its own (an empty folder)."
        )
    destination = S3Location.parse(config.raw_location)
    database = config.curated_database
    check_marts(runner.client, database)
    locations = unload_locations(destination, run_id or new_run_id(now))
    unloaded: list[tuple[str, UnloadLocation, QueryResult]] = []
    for mart, location in locations.items():
        say(f"unload {database}.{mart} (the warm-up's columns) -> {location.url}")
        started = time.perf_counter()
        query = run_unload(runner, s3, select_sql(database, mart), location)
        say(
            f"  query {query.query_id}: {query.bytes_scanned:,} bytes scanned, "
            f"cost ${query.cost_usd:.6f}, {time.perf_counter() - started:.1f} s"
        )
        unloaded.append((mart, location, query))
    try:
        marts = []
        con = duckdb.connect(":memory:")
        try:
            con.execute("set TimeZone = 'UTC'")
            con.execute("create schema curated")
            with tempfile.TemporaryDirectory(prefix="banklake-unload-") as work:
                for mart, location, query in unloaded:
                    rows = _load_mart(con, s3, mart, location, Path(work))
                    marts.append(UnloadedMart(mart, location, query, rows))
            lake.root.mkdir(parents=True, exist_ok=True)
            exported = publish_marts(con, lake, list(WARMUP_COLUMNS))
        finally:
            con.close()
    except Exception:
        for _, location, _ in unloaded:
            say(f"  the unloaded files stay in {location.url} for inspection")
        raise
    for _, location, _ in unloaded:
        delete_unloaded(s3, location)
    result = AthenaExportResult(current_version_name(lake) or "", marts, exported)
    say(result.summary())
    return result


def export_from_athena_job(lake: Lake, *, say: Say = print) -> AthenaExportResult:
    """The CLI's entry: configuration from the environment (README, 'Run on AWS')."""
    from python_jobs.aws.athena import runner_from_env
    from python_jobs.aws.s3 import make_s3_client

    runner = runner_from_env(need_raw_location=True)
    return export_from_athena(lake, runner.config, runner=runner, s3=make_s3_client(), say=say)
