"""`banklake export --target athena`: the export the online state warms from, made from the
Athena marts (python_jobs/aws/athena_export.py), then loaded into DynamoDB as the daily
pipeline's LoadOnlineState step does.

Athena is botocore's Stubber on a real Athena client (GetTableMetadata, StartQueryExecution
with each UNLOAD statement in the work group, GetQueryExecution). What the stubbed UNLOAD
writes is not made up by the test: the statement the job sent is taken apart, its SELECT is
rewritten from Athena's dialect to DuckDB's (python_jobs/aws/athena_transpile.py, the check of
issue 21 section 3) and run over the local lake's marts, and the rows are written where the
statement says, as Athena's UNLOAD writes them (extensionless Snappy Parquet, timestamps as
INT64 milliseconds or INT96, in no order). So a SELECT that reads the wrong columns or rows
fails here. S3 and DynamoDB are moto's server on 127.0.0.1.

The reference is always the local lake's own export, warmed by the same code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber

from python_jobs.aws.athena import AthenaConfig, AthenaRunner
from python_jobs.aws.athena_export import (
    AthenaExportError,
    export_from_athena,
    select_sql,
    unload_locations,
)
from python_jobs.aws.athena_transpile import catalog_schema, install_macros, to_duckdb
from python_jobs.aws.athena_unload import unload_statement
from python_jobs.aws.s3_location import S3Location
from python_jobs.cli import main
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import current
from python_jobs.retry import Polling
from python_jobs.serve.dynamodb_generations import GenerationalState, load_state
from python_jobs.serve.state import RETENTION_DAYS, OnlineState
from python_jobs.serve.warmup import WARMUP_COLUMNS, warm
from python_jobs.tests.exports import publish
from python_jobs.tests.moto_s3 import dynamodb_client, keys
from python_jobs.tests.state_scenarios import T0, features, play, probes, records

RUN_ID = "20260302T060000Z-test0001"
STAGING = "s3://results/dbt/"
DATABASE = "banklake_curated"
# ~70 days of history: longer than the warm-up's window, so the ml_features cut matters
HISTORY = records(1, 700, T0 - timedelta(days=100))
STREAMED = records(1000, 40, HISTORY[-1].event_ts)
UNLOAD = re.compile(r"\Aunload \(\n(?P<select>.*)\n\)\nto '(?P<url>s3://[^']+)'\nwith", re.S)


@pytest.fixture
def config(bucket: str) -> AthenaConfig:
    return AthenaConfig(
        region="sa-east-1",
        work_group="banklake",
        staging_dir=STAGING,
        schema="banklake",
        raw_location=f"s3://{bucket}/lake/raw/",
    )


@pytest.fixture
def local_lake(tmp_path: Path) -> Lake:
    lake = Lake(tmp_path / "local")
    publish(lake, HISTORY)
    return lake


@pytest.fixture
def athena_engine(local_lake: Lake) -> Iterator[duckdb.DuckDBPyConnection]:
    """Athena's stand-in for the UNLOADs' SELECTs: the local marts as `banklake_curated`."""
    con = duckdb.connect(":memory:")
    con.execute(f"attach '{local_lake.database}' as built (read_only)")
    con.execute(f"create schema {DATABASE}")
    for mart in WARMUP_COLUMNS:
        con.execute(f"create view {DATABASE}.{mart} as select * from built.curated.{mart}")
    install_macros(con)
    yield con
    con.close()


def _runner(client: Any, config: AthenaConfig) -> AthenaRunner:
    return AthenaRunner(client, config, backoff=Polling(initial=0.01), sleep=lambda _: None)


def expect_tables(stubber: Stubber, engine: duckdb.DuckDBPyConnection, drop: str = "") -> None:
    """GetTableMetadata of each mart, its columns as the local mart has them (event_date a
    partition key, as dbt-athena's Iceberg marts are partitioned)."""
    for mart in WARMUP_COLUMNS:
        described = engine.execute(f"describe {DATABASE}.{mart}").fetchall()
        columns = [
            {"Name": name, "Type": str(kind).lower()}
            for name, kind, *_ in described
            if name not in ("event_date", drop)
        ]
        stubber.add_response(
            "get_table_metadata",
            {
                "TableMetadata": {
                    "Name": mart,
                    "Columns": columns,
                    "PartitionKeys": [{"Name": "event_date", "Type": "date"}],
                }
            },
            {"CatalogName": "AwsDataCatalog", "DatabaseName": DATABASE, "TableName": mart},
        )


def expect_unloads(stubber: Stubber, bucket: str) -> list[str]:
    """Each UNLOAD in the work group, QUEUED then SUCCEEDED; returns the query ids."""
    locations = unload_locations(S3Location.parse(f"s3://{bucket}/lake/raw/"), RUN_ID)
    ids = []
    for index, (mart, location) in enumerate(locations.items()):
        query_id = f"20260302_060000_0004{index}_abcde"
        ids.append(query_id)
        stubber.add_response(
            "start_query_execution",
            {"QueryExecutionId": query_id},
            {
                "QueryString": unload_statement(select_sql(DATABASE, mart), location),
                "WorkGroup": "banklake",
                "QueryExecutionContext": {"Catalog": "AwsDataCatalog"},
                "ResultConfiguration": {"OutputLocation": STAGING},
            },
        )
        for state in ("QUEUED", "SUCCEEDED"):
            stubber.add_response(
                "get_query_execution",
                {
                    "QueryExecution": {
                        "QueryExecutionId": query_id,
                        "StatementType": "DML",
                        "Status": {"State": state},
                        "Statistics": {"DataScannedInBytes": 2**20 * (index + 1)},
                    }
                },
                {"QueryExecutionId": query_id},
            )
    return ids


def athena_file(table: pa.Table, int96: bool) -> bytes:
    """Parquet as Athena's Hive writer writes the SELECT's types: timestamp(3) as INT64
    milliseconds or INT96, Snappy."""
    fields = [
        pa.field(f.name, pa.timestamp("ms")) if pa.types.is_timestamp(f.type) else f
        for f in table.schema
    ]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table.cast(pa.schema(fields)),
        sink,
        compression="snappy",
        use_deprecated_int96_timestamps=int96,
    )
    return sink.getvalue().to_pybytes()


def unload_runs_on(
    client: Any, s3: Any, engine: duckdb.DuckDBPyConnection, sent: list[str]
) -> None:
    """When the stubbed StartQueryExecution answers, the UNLOAD the job sent is run: its SELECT
    on DuckDB (as Athena's dialect means it), its rows written to its TO location in two
    extensionless files in reverse order; an UNLOAD of no rows writes no file."""

    def remember(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["QueryString"])

    def run(**_: Any) -> None:
        statement = UNLOAD.match(sent[-1])
        assert statement, sent[-1]
        select = to_duckdb(statement["select"], catalog_schema(engine, "memory"))
        table = engine.execute(select).fetch_arrow_table()
        table = table.take(list(range(table.num_rows - 1, -1, -1)))
        bucket, prefix = statement["url"].removeprefix("s3://").split("/", 1)
        half = table.num_rows // 2
        for part, int96 in ((table.slice(0, half), False), (table.slice(half), True)):
            if part.num_rows:
                s3.put_object(
                    Bucket=bucket,
                    Key=f"{prefix}{len(sent):05d}_{uuid.uuid4()}",
                    Body=athena_file(part, int96),
                )

    client.meta.events.register("before-parameter-build.athena.StartQueryExecution", remember)
    client.meta.events.register("after-call.athena.StartQueryExecution", run)


def test_the_selects_read_exactly_the_warm_up_columns_with_their_types() -> None:
    import sqlglot

    from python_jobs.aws.athena_sql import duckdb_only_constructs

    for mart, wanted in WARMUP_COLUMNS.items():
        sql = select_sql(DATABASE, mart)
        parsed = sqlglot.parse_one(sql, read="athena")
        assert [e.alias_or_name for e in parsed.expressions] == [name for name, _ in wanted]
        assert duckdb_only_constructs(sql) == []
        assert f'from "{DATABASE}"."{mart}"' in sql
    assert "timestamp(3)" in select_sql(DATABASE, "fct_transactions")
    assert "where event_date >=" not in select_sql(DATABASE, "fct_transactions")
    cut = f"date_add('day', -{RETENTION_DAYS + 1}, max(event_date))"
    assert cut in select_sql(DATABASE, "ml_features")


def test_the_athena_export_warms_the_state_the_local_export_warms_and_loads_dynamodb(
    tmp_path: Path,
    local_lake: Lake,
    athena_engine: duckdb.DuckDBPyConnection,
    athena: tuple[Any, Stubber],
    s3: Any,
    bucket: str,
    config: AthenaConfig,
    dynamodb_url: str,
    endpoint: str,
) -> None:
    client, stubber = athena
    expect_tables(stubber, athena_engine)
    expect_unloads(stubber, bucket)
    sent: list[str] = []
    unload_runs_on(client, s3, athena_engine, sent)
    lines: list[str] = []
    lake = Lake(tmp_path / "from-athena")

    result = export_from_athena(
        lake, config, runner=_runner(client, config), s3=s3, run_id=RUN_ID, say=lines.append
    )

    stubber.assert_no_pending_responses()
    assert len(sent) == 2
    # published in the export layout, only the warm-up's columns, with the marts' types
    version = current(lake)
    assert version.version == result.version
    for mart, wanted in WARMUP_COLUMNS.items():
        assert [(n, k.replace(" ", "")) for n, k in version.marts[mart].columns] == list(wanted)
        assert version.marts[mart].partitioned_by == "event_date"
    rows = {m.name: m.rows for m in result.marts}
    assert rows["fct_transactions"] == len(HISTORY)
    # ml_features cut at the warm-up's reach, not the whole history
    newest = max(r.event_ts for r in HISTORY).date()
    recent = [
        r for r in HISTORY if r.event_ts.date() >= newest - timedelta(days=RETENTION_DAYS + 1)
    ]
    assert rows["ml_features"] == len(recent) < len(HISTORY)
    assert result.bytes_scanned == 3 * 2**20
    assert keys(s3, bucket, "lake/unload/") == []  # cleaned up after success
    assert any("cost $" in line for line in lines)

    # the same state as the local export's, on the probes and on what streams in after it
    reference, restored = OnlineState(), OnlineState()
    expected = warm(reference, local_lake)
    got = warm(restored, lake)
    assert got.rows == expected.rows > 0 and got.newest_event == expected.newest_event
    assert features(restored, probes(T0)) == features(reference, probes(T0))
    assert play(restored, STREAMED) == play(reference, STREAMED)

    # the pipeline's next command: `banklake state load` from this lake into DynamoDB
    loaded = load_state(lake, dynamodb_url, grace_seconds=0)
    assert loaded.version == result.version and not loaded.reused
    table = dynamodb_url.removeprefix("dynamodb://")
    online = GenerationalState(dynamodb_client(endpoint), table)
    try:
        check = OnlineState()
        warm(check, local_lake)
        assert features(online, probes(T0)) == features(check, probes(T0))
        assert play(online, STREAMED) == play(check, STREAMED)
    finally:
        online.close()


def test_a_missing_column_is_named_before_anything_is_scanned(
    tmp_path: Path,
    athena_engine: duckdb.DuckDBPyConnection,
    athena: tuple[Any, Stubber],
    s3: Any,
    config: AthenaConfig,
) -> None:
    client, stubber = athena
    expect_tables(stubber, athena_engine, drop="device_id")  # no StartQueryExecution queued
    with pytest.raises(AthenaExportError, match=r"banklake_curated\.fct_transactions has no "):
        export_from_athena(
            Lake(tmp_path / "x"), config, runner=_runner(client, config), s3=s3, say=print
        )
    stubber.assert_no_pending_responses()
    assert not (tmp_path / "x").exists()


def test_a_missing_mart_says_to_build_it(
    tmp_path: Path, athena: tuple[Any, Stubber], s3: Any, config: AthenaConfig
) -> None:
    client, stubber = athena
    stubber.add_client_error(
        "get_table_metadata", service_error_code="MetadataException", service_message="not found"
    )
    with pytest.raises(AthenaExportError, match="dbt build --target athena"):
        export_from_athena(
            Lake(tmp_path / "x"), config, runner=_runner(client, config), s3=s3, say=print
        )


def test_a_lake_built_locally_is_refused_before_any_query(
    local_lake: Lake, athena: tuple[Any, Stubber], s3: Any, config: AthenaConfig
) -> None:
    client, _ = athena  # the Stubber fails any call it was not given
    before = current(local_lake).version
    with pytest.raises(AthenaExportError, match="holds a local build"):
        export_from_athena(local_lake, config, runner=_runner(client, config), s3=s3, say=print)
    assert current(local_lake).version == before


def test_cli_export_on_athena_says_which_variables_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("BANKLAKE_ATHENA_WORKGROUP", "BANKLAKE_ATHENA_STAGING_DIR", "BANKLAKE_S3_RAW_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert main(["export", "--target", "athena", "--lake", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "BANKLAKE_S3_RAW_DIR" in err and "BANKLAKE_ATHENA_WORKGROUP" in err
