"""Athena DDL for the raw layer, generated from the raw contract (python_jobs/lake/schemas.py).

The raw feeds stay where the producers write them, `<raw>/<feed>/year=YYYY/month=MM/day=DD/`,
and Athena reads them through Hive external tables with partition projection: Athena computes
the partition locations from the table properties instead of asking Glue for partitions, so a
new ingestion day is queryable the moment its file lands, with no MSCK REPAIR and no crawler.
The partition columns are strings, exactly as DuckDB reads them locally (`hive_types` VARCHAR),
so `partition_date()` in the dbt project means the same on both engines.

Generating the DDL from the contract keeps one definition of every column: the validator, the
generator, the dbt sources and these tables cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from python_jobs.lake.schemas import FEEDS, Feed

PARTITION_COLUMNS = ("year", "month", "day")
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
# Glue database and table names: lower case letters, digits and underscores.
_GLUE_NAME = re.compile(r"^[a-z0-9_]{1,255}$")


@dataclass(frozen=True)
class RawTable:
    """Where one feed's external table lives and which ingestion years it projects."""

    feed: Feed
    database: str
    location: str  # s3://bucket/prefix/<feed>/, with the trailing slash
    first_year: int
    last_year: int


def glue_name(name: str) -> str:
    """Refuses names Glue would silently lower-case or reject, so DDL and dbt agree."""
    if not _GLUE_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a valid Glue name: use lower-case letters, digits and underscores"
        )
    return name


def hive_type(data_type: pa.DataType) -> str:
    """The Hive DDL type Athena reads a contract column as."""
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_int64(data_type):
        return "bigint"
    if pa.types.is_int32(data_type):
        return "int"
    if pa.types.is_float64(data_type):
        return "double"
    if pa.types.is_float32(data_type):
        return "float"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_date32(data_type):
        return "date"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    if pa.types.is_decimal(data_type):
        return f"decimal({data_type.precision},{data_type.scale})"
    if pa.types.is_struct(data_type):
        fields = ",".join(
            f"{data_type.field(i).name}:{hive_type(data_type.field(i).type)}"
            for i in range(data_type.num_fields)
        )
        return f"struct<{fields}>"
    if pa.types.is_list(data_type):
        return f"array<{hive_type(data_type.value_type)}>"
    raise ValueError(f"no Athena type for {data_type}")


def feed_location(raw_location: str, feed: Feed) -> str:
    """s3://bucket/raw/ + transactions -> s3://bucket/raw/transactions/."""
    if not raw_location.startswith("s3://"):
        raise ValueError(f"raw location must be an s3:// URI, got {raw_location!r}")
    return f"{raw_location.rstrip('/')}/{feed.name}/"


def projection_properties(location: str, first_year: int, last_year: int) -> dict[str, str]:
    """Partition projection over year=/month=/day=. Integer ranges, month and day zero-padded
    to the two digits the lake writer uses. Days 29-31 of short months project to prefixes
    that never exist, which Athena reads as empty."""
    if not first_year <= last_year:
        raise ValueError(f"projected years {first_year}..{last_year} are empty")
    return {
        "projection.enabled": "true",
        "projection.year.type": "integer",
        "projection.year.range": f"{first_year},{last_year}",
        "projection.month.type": "integer",
        "projection.month.range": "1,12",
        "projection.month.digits": "2",
        "projection.day.type": "integer",
        "projection.day.range": "1,31",
        "projection.day.digits": "2",
        "storage.location.template": f"{location}year=${{year}}/month=${{month}}/day=${{day}}/",
    }


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _columns(feed: Feed) -> str:
    return ",\n".join(f"  `{field.name}` {hive_type(field.type)}" for field in feed.schema)


def create_raw_table(table: RawTable) -> str:
    """CREATE EXTERNAL TABLE for one feed: Parquet, or gzip JSON lines through the OpenX SerDe
    (Athena decompresses .gz by extension). A malformed JSON line fails the query rather than
    vanishing: the processed layer must account for every raw row."""
    feed = table.feed
    if feed.file_format == "parquet":
        storage = "STORED AS PARQUET"
    elif feed.file_format == "jsonl.gz":
        storage = (
            f"ROW FORMAT SERDE {_quote(JSON_SERDE)}\n"
            "WITH SERDEPROPERTIES ('ignore.malformed.json'='false')"
        )
    else:
        raise ValueError(f"{feed.name}: no Athena storage for {feed.file_format!r}")
    properties = projection_properties(table.location, table.first_year, table.last_year)
    properties["banklake.contract"] = "python_jobs/lake/schemas.py"
    listed = ",\n".join(f"  {_quote(key)}={_quote(value)}" for key, value in properties.items())
    partitions = ", ".join(f"`{name}` string" for name in PARTITION_COLUMNS)
    return (
        f"CREATE EXTERNAL TABLE `{glue_name(table.database)}`.`{glue_name(feed.name)}` (\n"
        f"{_columns(feed)}\n"
        ")\n"
        f"COMMENT {_quote(f'banklake raw feed {feed.name} ({feed.file_format}), as delivered')}\n"
        f"PARTITIONED BY ({partitions})\n"
        f"{storage}\n"
        f"LOCATION {_quote(table.location)}\n"
        f"TBLPROPERTIES (\n{listed}\n)"
    )


def drop_table(database: str, name: str) -> str:
    """External tables only: dropping one never touches the files under its location."""
    return f"DROP TABLE IF EXISTS `{glue_name(database)}`.`{glue_name(name)}`"


def create_database(database: str, comment: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS `{glue_name(database)}` COMMENT {_quote(comment)}"


def raw_tables(database: str, raw_location: str, first_year: int, last_year: int) -> list[RawTable]:
    """One external table per raw feed of the contract, in contract order."""
    return [
        RawTable(feed, database, feed_location(raw_location, feed), first_year, last_year)
        for feed in FEEDS.values()
    ]
