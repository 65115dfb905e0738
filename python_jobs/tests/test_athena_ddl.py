"""The raw and scores tables' Athena DDL, parsed back with sqlglot's athena dialect (Hive DDL):
columns from the contract (raw) and from ml/score.py (scores), the right storage per feed, and
partition projection that finds every partition the lake writer and the scoring job create
without MSCK or a crawler."""

from __future__ import annotations

from datetime import date
from typing import TypeVar

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from python_jobs.aws.athena_ddl import (
    JSON_SERDE,
    SCORES_PARTITION,
    SCORES_PREFIX,
    SCORES_TABLE,
    RawTable,
    create_database,
    create_raw_table,
    create_scores_table,
    drop_table,
    feed_location,
    hive_type,
    raw_tables,
    scores_location,
    scores_table,
)
from python_jobs.lake.layout import partition_path
from python_jobs.lake.schemas import FEEDS

RAW = "s3://banklake-lake/raw/"
Node = TypeVar("Node", bound=exp.Expr)


def found(tree: exp.Expr, kind: type[Node]) -> Node:
    node = tree.find(kind)
    assert node is not None, f"no {kind.__name__} in the statement"
    return node


def cast_type(type_text: str) -> exp.DataType:
    """A Hive type as sqlglot reads it in a cast."""
    tree = sqlglot.parse_one(f"cast(x as {type_text})", read="hive")
    assert isinstance(tree, exp.Cast)
    return tree.to


def parsed(feed_name: str) -> exp.Create:
    (table,) = [t for t in raw_tables("banklake_raw", RAW, 2020, 2027) if t.feed.name == feed_name]
    statement = sqlglot.parse_one(create_raw_table(table), read="athena")
    assert isinstance(statement, exp.Create)
    return statement


def table_properties(statement: exp.Create) -> dict[str, str]:
    return {
        p.name: p.args["value"].name
        for p in statement.args["properties"].expressions
        if type(p) is exp.Property
    }


def test_there_is_one_external_table_per_feed_at_the_feeds_prefix() -> None:
    tables = raw_tables("banklake_raw", RAW, 2020, 2027)
    assert [t.feed.name for t in tables] == list(FEEDS)
    for table in tables:
        statement = parsed(table.feed.name)
        assert statement.kind == "TABLE"
        assert statement.find(exp.ExternalProperty) is not None
        assert (statement.this.this.db, statement.this.this.name) == (
            "banklake_raw",
            table.feed.name,
        )
        location = found(statement, exp.LocationProperty)
        assert location.this.name == f"{RAW}{table.feed.name}/"


@pytest.mark.parametrize("feed_name", list(FEEDS))
def test_columns_are_the_contract_in_order_and_partitions_are_strings(feed_name: str) -> None:
    statement = parsed(feed_name)
    columns = [(c.name, c.args["kind"]) for c in statement.this.expressions]
    feed = FEEDS[feed_name]
    assert [name for name, _ in columns] == feed.schema.names
    for (_, kind), field in zip(columns, feed.schema, strict=True):
        expected = cast_type(hive_type(field.type))
        assert kind == expected, field.name
    partitioned = found(statement, exp.PartitionedByProperty)
    partition_columns = [(c.name, c.args["kind"].this) for c in partitioned.this.expressions]
    # text, like DuckDB's hive_types VARCHAR: partition_date() concatenates them
    assert partition_columns == [(n, exp.DataType.Type.TEXT) for n in ("year", "month", "day")]


def test_transactions_are_parquet_and_the_json_feeds_use_the_openx_serde() -> None:
    for feed_name, feed in FEEDS.items():
        statement = parsed(feed_name)
        file_format = statement.find(exp.FileFormatProperty)
        serde = statement.find(exp.RowFormatSerdeProperty)
        if feed.file_format == "parquet":
            assert file_format is not None and file_format.this.name == "PARQUET"
            assert serde is None
        else:
            assert file_format is None
            assert serde is not None and serde.this.name == JSON_SERDE
            malformed = {p.name: p.args["value"].name for p in serde.args["serde_properties"]}
            assert malformed == {"ignore.malformed.json": "false"}


def test_the_customers_address_is_a_struct_of_state_and_city() -> None:
    (address,) = [c for c in parsed("customers").this.expressions if c.name == "address"]
    kind = address.args["kind"]
    assert kind.this == exp.DataType.Type.STRUCT
    assert [(f.name, f.args["kind"].this) for f in kind.expressions] == [
        ("state", exp.DataType.Type.TEXT),
        ("city", exp.DataType.Type.TEXT),
    ]


@pytest.mark.parametrize("feed_name", list(FEEDS))
def test_partition_projection_covers_the_lake_writers_layout(feed_name: str) -> None:
    properties = table_properties(parsed(feed_name))
    assert properties["projection.enabled"] == "true"
    assert properties["projection.year.type"] == "integer"
    assert properties["projection.year.range"] == "2020,2027"
    for part, bounds in (("month", "1,12"), ("day", "1,31")):
        assert properties[f"projection.{part}.type"] == "integer"
        assert properties[f"projection.{part}.range"] == bounds
        assert properties[f"projection.{part}.digits"] == "2"
    template = properties["storage.location.template"]
    assert template == f"{RAW}{feed_name}/year=${{year}}/month=${{month}}/day=${{day}}/"
    # what Athena projects for 2026-03-05 is exactly where the writer puts that day
    day = date(2026, 3, 5)
    projected = template.replace("${year}", "2026").replace("${month}", "03")
    projected = projected.replace("${day}", "05")
    assert projected == f"{RAW}{feed_name}/{partition_path(day)}/"


def test_database_and_drop_statements_parse_and_names_are_checked() -> None:
    database = sqlglot.parse_one(create_database("banklake_raw", "it's raw"), read="athena")
    assert isinstance(database, exp.Create)
    assert database.kind == "DATABASE" and database.args["exists"]
    drop = sqlglot.parse_one(drop_table("banklake_raw", "transactions"), read="athena")
    assert isinstance(drop, exp.Drop) and drop.args["exists"]
    for bad in ("Banklake", "bank-lake", "raw;drop", ""):
        with pytest.raises(ValueError, match="Glue name"):
            create_database(bad, "x")
    with pytest.raises(ValueError, match="s3://"):
        feed_location("/local/raw/", FEEDS["transactions"])
    with pytest.raises(ValueError, match="empty"):
        create_raw_table(RawTable(FEEDS["transactions"], "banklake_raw", RAW, 2027, 2020))


def test_every_arrow_type_of_the_contract_has_an_athena_type() -> None:
    assert hive_type(pa.timestamp("us")) == "timestamp"
    assert hive_type(pa.decimal128(18, 2)) == "decimal(18,2)"
    assert hive_type(pa.list_(pa.int32())) == "array<int>"
    with pytest.raises(ValueError, match="no Athena type"):
        hive_type(pa.duration("s"))


# --- the fraud scores' table ---------------------------------------------------------------


def scores_statement(raw: str = RAW) -> exp.Create:
    table = scores_table("banklake_processed_files", raw, 2020, 2027)
    statement = sqlglot.parse_one(create_scores_table(table), read="athena")
    assert isinstance(statement, exp.Create)
    return statement


def test_the_scores_table_has_the_scoring_jobs_columns_in_its_order() -> None:
    """Generated from ml/score.py's SCORES_SCHEMA itself, not a copy of it."""
    from ml.score import SCORES_SCHEMA

    statement = scores_statement()
    assert statement.kind == "TABLE" and statement.find(exp.ExternalProperty) is not None
    assert (statement.this.this.db, statement.this.this.name) == (
        "banklake_processed_files",
        SCORES_TABLE,
    )
    columns = [(c.name, c.args["kind"]) for c in statement.this.expressions]
    assert [name for name, _ in columns] == SCORES_SCHEMA.names
    for (_, kind), field in zip(columns, SCORES_SCHEMA, strict=True):
        expected = cast_type(hive_type(field.type))
        assert kind == expected, field.name
    assert found(statement, exp.FileFormatProperty).this.name == "PARQUET"
    partitioned = found(statement, exp.PartitionedByProperty)
    assert [(c.name, c.args["kind"].this) for c in partitioned.this.expressions] == [
        (SCORES_PARTITION, exp.DataType.Type.TEXT)
    ]


def test_the_dbt_source_declares_the_same_columns_as_the_table() -> None:
    """models/processed/_scores_sources.yml documents the file's columns plus the partition."""
    import yaml

    from ml.score import SCORES_SCHEMA
    from python_jobs.dbt_runner import PROJECT_DIR

    sources = yaml.safe_load((PROJECT_DIR / "models/processed/_scores_sources.yml").read_text())
    (source,) = sources["sources"]
    (table,) = source["tables"]
    assert table["name"] == SCORES_TABLE
    assert [c["name"] for c in table["columns"]] == [*SCORES_SCHEMA.names, SCORES_PARTITION]


def test_the_scores_projection_finds_exactly_where_the_scoring_job_writes(tmp_path) -> None:
    from ml.layout import MlLayout
    from python_jobs.lake.layout import Lake

    statement = scores_statement("s3://banklake-lake/banklake/raw")
    location = found(statement, exp.LocationProperty).this.name
    assert location == "s3://banklake-lake/banklake/" + SCORES_PREFIX
    properties = table_properties(statement)
    assert properties["projection.enabled"] == "true"
    assert properties[f"projection.{SCORES_PARTITION}.type"] == "date"
    assert properties[f"projection.{SCORES_PARTITION}.format"] == "yyyy-MM-dd"
    assert properties[f"projection.{SCORES_PARTITION}.range"] == "2020-01-01,2027-12-31"
    assert properties[f"projection.{SCORES_PARTITION}.interval.unit"] == "DAYS"
    # the projected folder of 2026-03-05 is the scoring job's folder for that day, under the
    # same lake-relative path (ml/layout.py) that `banklake ingest --scores` uploads to
    lake = Lake(tmp_path / "lake")
    written = lake.relative(MlLayout(lake).scores_file(date(2026, 3, 5)).parent) + "/"
    template = properties["storage.location.template"]
    projected = template.replace(f"${{{SCORES_PARTITION}}}", "2026-03-05")  # yyyy-MM-dd
    assert projected == "s3://banklake-lake/banklake/" + written


def test_the_scores_location_needs_the_lakes_raw_prefix() -> None:
    assert scores_location("s3://b/raw/") == "s3://b/processed/fraud_scores/"
    assert scores_location("s3://b/lake/raw") == "s3://b/lake/processed/fraud_scores/"
    for bad in ("s3://b/landing/", "s3://raw/", "/local/raw/", "s3://b/rawdata/"):
        with pytest.raises(ValueError, match="raw"):
            scores_location(bad)


def test_a_partition_column_inside_the_file_is_refused() -> None:
    schema = pa.schema([("score", pa.float64()), (SCORES_PARTITION, pa.string())])
    with pytest.raises(ValueError, match="partition folder"):
        create_scores_table(scores_table("db", RAW, 2020, 2027, schema))
    with pytest.raises(ValueError, match="empty"):
        create_scores_table(scores_table("db", RAW, 2027, 2020, pa.schema([("a", pa.string())])))
