"""Read-only execution of SQL over the curated marts.

The guard (`guard.py`) decides what may run; this module makes sure that even a statement
the guard wrongly let through cannot write, read files or reconfigure the engine:

- DuckDB: what the build has published (python_jobs/lake/published.py), never the database
  file dbt writes: one view per curated mart over the Parquet files of the current export,
  resolved once, so a reader works while `banklake run` builds and never sees two exports
  mixed. The views are in a catalog file opened read-only; the engine may read exactly the
  export's files (DuckDB's `allowed_paths`) and nothing else — no other file, no write, no
  URL, no extension —, a memory limit, then the configuration locked; a query that runs
  past the timeout is interrupted; at most `max_rows` rows are fetched. What this engine
  still allows — temporary tables in memory, session settings such as `search_path`, PRAGMA
  profiling — the guard refuses.
- Athena: the assistant's own work group, whose bytes-scanned cutoff cancels a runaway scan
  and whose role reads the curated database only (infrastructure/banklake.yaml).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from python_jobs.lake.layout import Lake
from python_jobs.lake.published import (
    PublishedMart,
    PublishedVersion,
    current_version_name,
)
from python_jobs.lake.published import (
    current as current_version,
)

if TYPE_CHECKING:  # boto3 and the Athena runner load only for the athena target
    from python_jobs.aws.athena import AthenaRunner

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_FETCH_ROWS = 10_000
DEFAULT_MEMORY_LIMIT = "2GB"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False  # more rows existed than the warehouse fetches
    bytes_scanned: int | None = None  # Athena only


class QueryTimeout(RuntimeError):
    """The engine was interrupted because the query ran past the warehouse's timeout."""


class Warehouse(Protocol):
    @property
    def dialect(self) -> str:  # sqlglot dialect name: "duckdb" or "athena"
        ...

    def query(self, sql: str) -> QueryResult: ...


@dataclass
class MeteredWarehouse:
    """A warehouse that counts what the facts cost: Athena bills each query for the bytes
    it scans (at least 10 MB), and the daily report in production should say what it
    spent, as `banklake summary --target athena` does."""

    warehouse: Warehouse
    queries: int = 0
    bytes_scanned: int = 0
    cost_usd: float = 0.0

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    @property
    def curated_schema(self) -> str:
        return getattr(self.warehouse, "curated_schema", "curated")

    def query(self, sql: str) -> QueryResult:
        result = self.warehouse.query(sql)
        self.queries += 1
        if result.bytes_scanned is not None:
            from python_jobs.aws.athena import query_cost_usd

            self.bytes_scanned += result.bytes_scanned
            self.cost_usd += query_cost_usd(result.bytes_scanned)
        return result


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(version: PublishedVersion, mart: PublishedMart) -> str:
    """`curated.<mart>` over the export's Parquet files (the manifest's list), columns in the
    mart's own order (a partition column is read back from the folder names, typed as the
    mart declared it)."""
    columns = ", ".join(
        f"cast({_identifier(name)} as {kind}) as {_identifier(name)}"
        if name == mart.partitioned_by
        else _identifier(name)
        for name, kind in mart.columns
    )
    files = ", ".join(_literal(path) for path in version.mart_files(mart.name))
    hive = "true" if mart.partitioned_by else "false"
    return (
        f"create view curated.{_identifier(mart.name)} as select {columns} "
        f"from read_parquet([{files}], hive_partitioning = {hive})"
    )


def open_published(
    lake: Lake, *, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> tuple[duckdb.DuckDBPyConnection, PublishedVersion, Path]:
    """The lake's published marts as views `curated.<mart>`, read-only.

    The views live in a small catalog file of this reader's own (a temporary folder, returned
    to be removed on close), opened read-only: nothing can be created or dropped in
    `curated`. The engine may read exactly the export's Parquet files (`allowed_paths`) and
    nothing else: no other file, no write (a COPY writes a temporary file first, refused), no
    URL, no extension; then the configuration is locked."""
    version = current_version(lake)
    scratch = Path(tempfile.mkdtemp(prefix="banklake-published-"))
    catalog = scratch / "catalog.duckdb"
    try:
        with duckdb.connect(str(catalog)) as writer:
            writer.execute("create schema curated")
            for mart in version.marts.values():
                writer.execute(view_sql(version, mart))
        connection = duckdb.connect(
            str(catalog),
            read_only=True,
            config={
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "memory_limit": memory_limit,
            },
        )
        try:
            allowed = ", ".join(_literal(path) for path in version.all_files())
            connection.execute(f"set allowed_paths = [{allowed}]")
            connection.execute("set enable_external_access = false")
            connection.execute("set lock_configuration = true")
        except BaseException:
            connection.close()
            raise
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return connection, version, scratch


def _release(connection: duckdb.DuckDBPyConnection, scratch: Path) -> None:
    connection.close()
    shutil.rmtree(scratch, ignore_errors=True)


class DuckDBWarehouse:
    dialect = "duckdb"
    curated_schema = "curated"

    def __init__(
        self,
        lake: Lake,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_rows: int = DEFAULT_FETCH_ROWS,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.lake = lake
        self._connection, self.published, scratch = open_published(lake, memory_limit=memory_limit)
        # a reader dropped without close() (a dashboard session that ends) still cleans up
        self._finalizer = weakref.finalize(self, _release, self._connection, scratch)
        self.timeout_seconds = timeout_seconds
        self.max_rows = max_rows

    def query(self, sql: str) -> QueryResult:
        """Runs `sql`; interrupts it after `timeout_seconds` (DuckDB has no statement timeout
        of its own, but a connection can be interrupted from another thread)."""
        interrupted = threading.Event()

        def interrupt() -> None:
            interrupted.set()
            self._connection.interrupt()

        timer = threading.Timer(self.timeout_seconds, interrupt)
        timer.daemon = True
        timer.start()
        try:
            cursor = self._connection.execute(sql)
            columns = [column[0] for column in cursor.description or []]
            rows = cursor.fetchmany(self.max_rows + 1)
        except duckdb.Error as error:
            if interrupted.is_set():
                raise QueryTimeout(
                    f"the query was stopped after {self.timeout_seconds:g} s"
                ) from error
            raise
        finally:
            timer.cancel()
        truncated = len(rows) > self.max_rows
        return QueryResult(columns, rows[: self.max_rows], truncated=truncated)

    def is_current(self) -> bool:
        """Whether the export it reads is still the published one (a newer export means a
        reader that wants the latest figures should open a new warehouse)."""
        return current_version_name(self.lake) == self.published.version

    def close(self) -> None:
        self._finalizer()


# --- Athena ------------------------------------------------------------------------------

ASSISTANT_WORKGROUP_ENV = "BANKLAKE_ASSISTANT_ATHENA_WORKGROUP"
ASSISTANT_STAGING_ENV = "BANKLAKE_ASSISTANT_ATHENA_STAGING_DIR"


def _athena_value(text: str | None, athena_type: str) -> Any:
    """Athena returns every value as text; its column type says what it was."""
    if text is None:
        return None
    kind = athena_type.lower().split("(")[0].strip()
    try:
        if kind in {"tinyint", "smallint", "integer", "int", "bigint"}:
            return int(text)
        if kind in {"double", "float", "real"}:
            return float(text)
        if kind == "decimal":
            return Decimal(text)
        if kind == "boolean":
            return text.lower() == "true"
        if kind == "date":
            return date.fromisoformat(text)
        if kind.startswith("timestamp"):
            return datetime.fromisoformat(text.split(" UTC")[0])
    except ValueError:
        return text
    return text


class AthenaWarehouse:
    """The curated database on Athena, through the assistant's own work group."""

    dialect = "athena"

    def __init__(
        self,
        runner: AthenaRunner,
        curated_database: str,
        *,
        max_rows: int = DEFAULT_FETCH_ROWS,
    ) -> None:
        self.runner = runner
        self.curated_schema = curated_database
        self.max_rows = max_rows

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        client_factory: Callable[[Any], Any] | None = None,
    ) -> AthenaWarehouse:
        """The assistant's work group must be named on its own
        ($BANKLAKE_ASSISTANT_ATHENA_WORKGROUP): falling back to dbt's work group would trade
        the 1 GiB scan cutoff and the read-only role for dbt's."""
        from python_jobs.aws.athena import (
            AthenaConfig,
            AthenaConfigError,
            AthenaRunner,
            make_client,
        )

        env = dict(os.environ if env is None else env)
        work_group = env.get(ASSISTANT_WORKGROUP_ENV)
        if not work_group:
            raise AthenaConfigError(
                f"set {ASSISTANT_WORKGROUP_ENV} to the assistant's Athena work group "
                "(its own scan cutoff and read-only role; not dbt's)"
            )
        env["BANKLAKE_ATHENA_WORKGROUP"] = work_group
        if env.get(ASSISTANT_STAGING_ENV):
            env["BANKLAKE_ATHENA_STAGING_DIR"] = env[ASSISTANT_STAGING_ENV]
        config = AthenaConfig.from_env(env)
        client = (client_factory or make_client)(config)
        return cls(AthenaRunner(client, config), f"{config.schema}_curated")

    def query(self, sql: str) -> QueryResult:
        """Runs `sql` in the curated database (the runner starts, polls and pages it, and
        stops it when interrupted); values typed by their Athena column types."""
        result = self.runner.run(sql, database=self.curated_schema, max_rows=self.max_rows)
        rows = [
            tuple(
                _athena_value(value, kind) for value, kind in zip(row, result.types, strict=False)
            )
            for row in result.rows
        ]
        return QueryResult(result.columns, rows, result.truncated, result.bytes_scanned)


def make_warehouse(
    target: str,
    lake: Lake,
    *,
    athena_client_factory: Callable[[Any], Any] | None = None,
) -> DuckDBWarehouse | AthenaWarehouse:
    """`duckdb`: the lake's published export; `athena`: the assistant's work group (env),
    its boto3 client from `athena_client_factory(config)` when given (a client under
    botocore's Stubber in tests), else one for the configured profile and region."""
    if target == "duckdb":
        return DuckDBWarehouse(lake)
    if target == "athena":
        return AthenaWarehouse.from_env(client_factory=athena_client_factory)
    raise ValueError(f"unknown target {target!r}; choose duckdb or athena")
