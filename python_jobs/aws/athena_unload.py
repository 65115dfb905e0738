"""Reading Athena tables back as Parquet through `UNLOAD`: the plumbing every such job shares.

`banklake score --target athena` (athena_score.py) unloads a day of ml_features and
`banklake export --target athena` (athena_export.py) the columns of the marts the online state
warms from; both go through here:

- a table's columns from the Glue catalog (GetTableMetadata), checked before a byte is scanned;
- an `UNLOAD` into a prefix of its own under `<lake root>unload/` in the lake bucket (the
  stack's lifecycle rule expires what a failed run leaves there). UNLOAD refuses a target that
  holds data, so every run gets a new run id and the prefix is checked empty first;
- the files downloaded: Athena names them `<query id>_<uuid>` with no extension and writes its
  manifest to the work group's results location, so every object under the prefix is a data
  file; timestamps normalized (Athena writes them as INT96 or INT64 milliseconds, sometimes
  marked adjusted to UTC: all read back as naive microseconds, the instant kept, since the
  lake's times are UTC wall-clock times);
- the prefix deleted after success.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_jobs.aws.athena import DATA_CATALOG, AthenaRunner, QueryResult
from python_jobs.aws.clients import error_code
from python_jobs.aws.s3 import list_objects

UNLOAD_ROOT = "unload/"  # under the lake root, beside raw/


class UnloadError(RuntimeError):
    """An unload that cannot run or whose output cannot be read."""


@dataclass(frozen=True)
class UnloadLocation:
    bucket: str
    prefix: str  # ends with "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def check_run_id(run_id: str) -> str:
    if not run_id or "/" in run_id:
        raise ValueError(f"run id must be one path segment, got {run_id!r}")
    return run_id


def table_columns(
    athena: Any, database: str, table: str, missing: Callable[[str], Exception]
) -> list[tuple[str, str]]:
    """(name, Athena type) of every column of `database.table`, partition keys included, from
    the catalog; a table the catalog does not hold raises `missing(<why>)`."""
    from botocore.exceptions import ClientError

    try:
        metadata = athena.get_table_metadata(
            CatalogName=DATA_CATALOG, DatabaseName=database, TableName=table
        )["TableMetadata"]
    except ClientError as error:
        if error_code(error) == "MetadataException":
            raise missing(
                f"{database}.{table} is not in the Glue catalog ({error}): build it with "
                "`dbt build --target athena` first"
            ) from error
        raise
    described = [*metadata.get("Columns", []), *metadata.get("PartitionKeys", [])]
    return [(column["Name"], column.get("Type", "")) for column in described]


def unload_statement(select: str, location: UnloadLocation) -> str:
    return (
        f"unload (\n{select}\n)\nto '{location.url}'\n"
        "with (format = 'PARQUET', compression = 'SNAPPY')"
    )


def list_keys(s3: Any, location: UnloadLocation) -> list[tuple[str, int]]:
    return sorted((o["Key"], o["Size"]) for o in list_objects(s3, location.bucket, location.prefix))


def run_unload(runner: AthenaRunner, s3: Any, select: str, location: UnloadLocation) -> QueryResult:
    """Runs `unload (select)` into an empty prefix (Athena refuses one that holds data)."""
    if list_keys(s3, location):
        raise UnloadError(
            f"{location.url} already holds objects: UNLOAD needs an empty prefix (another run "
            "with the same run id?)"
        )
    return runner.run(unload_statement(select, location), max_rows=None)


def microsecond_timestamps(table: Any) -> Any:
    """Every timestamp column as naive timestamp[us]: INT96 files read as [ns], INT64 ones as
    [ms] or [us], and a writer that marks them adjusted to UTC gives tz=UTC (the instant is
    kept: Athena's timestamps are UTC wall-clock times, as the lake's are)."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type != pa.timestamp("us"):
            column = table.column(index).cast(pa.timestamp("us", tz=field.type.tz))
            if field.type.tz is not None:
                column = column.cast(pa.timestamp("us"))
            table = table.set_column(index, field.name, column)
    return table


def read_tables(s3: Any, location: UnloadLocation, workdir: Path) -> list[tuple[str, Any]]:
    """(key, pyarrow table with microsecond timestamps) of every data file under the prefix,
    in key order; folder markers and empty objects are skipped."""
    import pyarrow.parquet as pq

    tables = []
    for index, (key, size) in enumerate(list_keys(s3, location)):
        if key.endswith("/") or size == 0:
            continue
        path = workdir / f"part-{index:05d}.parquet"
        s3.download_file(location.bucket, key, str(path))
        tables.append((key, microsecond_timestamps(pq.read_table(path))))
    return tables


def delete_unloaded(s3: Any, location: UnloadLocation) -> int:
    keys = [key for key, _ in list_keys(s3, location)]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(
            Bucket=location.bucket,
            Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
        )
    return len(keys)
