"""Athena DDL for the files banklake reads in place: the raw feeds, generated from the raw
contract (python_jobs/lake/schemas.py), and the fraud scores, generated from the scoring job's
own schema (ml/score.py SCORES_SCHEMA).

The raw feeds stay where the producers write them, `<raw>/<feed>/year=YYYY/month=MM/day=DD/`,
and Athena reads them through Hive external tables with partition projection: Athena computes
the partition locations from the table properties instead of asking Glue for partitions, so a
new ingestion day is queryable the moment its file lands, with no MSCK REPAIR and no crawler.
The partition columns are strings, exactly as DuckDB reads them locally (`hive_types` VARCHAR),
so `partition_date()` in the dbt project means the same on both engines.

Generating the DDL from the contract keeps one definition of every column: the validator, the
generator, the dbt sources and these tables cannot drift apart.

The scores (`<lake>/processed/fraud_scores/score_date=YYYY-MM-DD/scores.parquet`, uploaded by
`banklake ingest --scores`) get the same treatment: one external table whose columns are
SCORES_SCHEMA, read from ml/score.py when the DDL is generated, and a `date` projection on
score_date, so a day's scores are queryable as soon as its file lands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from python_jobs.lake.schemas import FEEDS, Feed

PARTITION_COLUMNS = ("year", "month", "day")
# The scores: where ml/layout.py puts them under the lake root (the same key on S3), the Hive
# partition folder it writes, and the table dbt's source processed_files.fraud_scores names.
# python_jobs/tests/test_athena_ddl.py checks both against ml/layout.py.
SCORES_PREFIX = "processed/fraud_scores/"
SCORES_PARTITION = "score_date"
SCORES_TABLE = "fraud_scores"
SCORES_DATE_FORMAT = "yyyy-MM-dd"  # Java date format of date.isoformat(), what the folder holds
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


@dataclass(frozen=True)
class ScoresTable:
    """The fraud scores' external table: columns from the scoring job's schema."""

    database: str
    location: str  # s3://bucket/[lake/]processed/fraud_scores/, with the trailing slash
    first_year: int
    last_year: int
    schema: pa.Schema


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


def _columns(schema: pa.Schema) -> str:
    return ",\n".join(f"  `{field.name}` {hive_type(field.type)}" for field in schema)


def _properties(properties: dict[str, str]) -> str:
    return ",\n".join(f"  {_quote(key)}={_quote(value)}" for key, value in properties.items())


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
    partitions = ", ".join(f"`{name}` string" for name in PARTITION_COLUMNS)
    return (
        f"CREATE EXTERNAL TABLE `{glue_name(table.database)}`.`{glue_name(feed.name)}` (\n"
        f"{_columns(feed.schema)}\n"
        ")\n"
        f"COMMENT {_quote(f'banklake raw feed {feed.name} ({feed.file_format}), as delivered')}\n"
        f"PARTITIONED BY ({partitions})\n"
        f"{storage}\n"
        f"LOCATION {_quote(table.location)}\n"
        f"TBLPROPERTIES (\n{_properties(properties)}\n)"
    )


def scores_location(raw_location: str) -> str:
    """s3://bucket/[lake/]raw/ -> s3://bucket/[lake/]processed/fraud_scores/: the scores sit
    beside raw/ under the lake's root on S3, exactly as in the local lake folder (and where
    `banklake ingest --scores` puts them)."""
    if not raw_location.startswith("s3://"):
        raise ValueError(f"raw location must be an s3:// URI, got {raw_location!r}")
    raw = raw_location.rstrip("/") + "/"
    if not (raw.endswith("/raw/") and raw.count("/") >= 4):
        raise ValueError(
            f"the raw location must be the lake's raw/ prefix, like s3://bucket/raw/ "
            f"(got {raw_location!r}): the scores' location is derived from it"
        )
    return raw[: -len("raw/")] + SCORES_PREFIX


def scores_projection_properties(location: str, first_year: int, last_year: int) -> dict[str, str]:
    """A `date` projection over score_date=YYYY-MM-DD, over the same years as the raw tables
    (fixed bounds, so `register` is re-run once a year for both). A day never scored projects
    to a prefix that does not exist, which Athena reads as empty."""
    if not first_year <= last_year:
        raise ValueError(f"projected years {first_year}..{last_year} are empty")
    column = SCORES_PARTITION
    return {
        "projection.enabled": "true",
        f"projection.{column}.type": "date",
        f"projection.{column}.format": SCORES_DATE_FORMAT,
        f"projection.{column}.range": f"{first_year}-01-01,{last_year}-12-31",
        f"projection.{column}.interval": "1",
        f"projection.{column}.interval.unit": "DAYS",
        "storage.location.template": f"{location}{column}=${{{column}}}/",
    }


def create_scores_table(table: ScoresTable) -> str:
    """CREATE EXTERNAL TABLE for the fraud scores: Parquet, the scoring job's columns in its
    order, partitioned by score_date. The partition column is a string holding YYYY-MM-DD
    (what the folder name holds, as AWS's own date-projection examples declare it);
    stg_fraud_scores casts it to date on both engines."""
    if SCORES_PARTITION in table.schema.names:
        raise ValueError(f"{SCORES_PARTITION} is the partition folder, not a column of the file")
    properties = scores_projection_properties(table.location, table.first_year, table.last_year)
    properties["banklake.contract"] = "ml/score.py SCORES_SCHEMA"
    return (
        f"CREATE EXTERNAL TABLE `{glue_name(table.database)}`.`{SCORES_TABLE}` (\n"
        f"{_columns(table.schema)}\n"
        ")\n"
        f"COMMENT {_quote('banklake fraud scores, one Parquet file per score day (ml/score.py)')}\n"
        f"PARTITIONED BY (`{SCORES_PARTITION}` string)\n"
        "STORED AS PARQUET\n"
        f"LOCATION {_quote(table.location)}\n"
        f"TBLPROPERTIES (\n{_properties(properties)}\n)"
    )


def scores_schema() -> pa.Schema:
    """The scores file's schema, read from the scoring job itself (imported here, late:
    ml/score.py pulls xgboost, which only `register` needs to pay for)."""
    from ml.score import SCORES_SCHEMA

    return SCORES_SCHEMA


def scores_table(
    database: str,
    raw_location: str,
    first_year: int,
    last_year: int,
    schema: pa.Schema | None = None,
) -> ScoresTable:
    return ScoresTable(
        database,
        scores_location(raw_location),
        first_year,
        last_year,
        scores_schema() if schema is None else schema,
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
