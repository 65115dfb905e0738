"""`banklake score --target athena`: features through an Athena UNLOAD, scored with the local
champion, written and uploaded like `banklake score` + `banklake ingest --scores`.

Athena is botocore's Stubber on a real Athena client (request shapes checked against the
service model: GetTableMetadata, StartQueryExecution with the UNLOAD statement, the work group
and the results location, GetQueryExecution's states). S3 is moto's server on 127.0.0.1.

What only the live suite verifies (python_jobs/tests/test_athena_live.py,
test_scoring_on_athena_equals_local_scoring): that Athena accepts this UNLOAD and writes the
files the test places here in its stead. When the stubbed StartQueryExecution "runs", the
test writes what UNLOAD is documented to write: Snappy Parquet files named
`<query id>_<uuid>` with no extension, in no global order, with Athena's types (varchar,
timestamp(3) as INT64 milliseconds or as INT96, date, boolean, double for the amount and real,
float32, for the features).
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber

from ml.dataset import CONTRACT_COLUMNS, FeatureContractError, load_features
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.score import score_day
from ml.tests.conftest import FAST_TRAINING, TRAINED_AT, synthetic_features, write_features
from ml.train import train
from python_jobs.aws.athena import AthenaConfig, AthenaRunner
from python_jobs.aws.athena_score import (
    AthenaScoreError,
    read_unloaded,
    score_on_athena,
    select_sql,
    unload_location,
    unload_sql,
)
from python_jobs.aws.s3_location import S3Location
from python_jobs.cli import main
from python_jobs.ingest import SHA256_METADATA
from python_jobs.lake.layout import Lake
from python_jobs.retry import Polling
from python_jobs.tests.moto_s3 import keys

DAY = date(2026, 9, 20)  # the last day of ml/tests/conftest.py's synthetic features
NOW = datetime(2026, 9, 21, 6, 0, tzinfo=UTC)
RUN_ID = "20260921T060000Z-test0001"
QUERY_ID = "20260921_060000_00042_abcde"
STAGING = "s3://results/dbt/"


# --- fixtures: a trained lake (the local reference) and S3 ----------------------------------


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, features: pd.DataFrame) -> Path:
    """A lake with the features in DuckDB and a champion, trained once for the module."""
    root = tmp_path_factory.mktemp("athena-score") / "lake"
    layout = MlLayout(Lake(root))
    write_features(layout.lake.database, features)
    train(layout, config=FAST_TRAINING, now=TRAINED_AT)
    return root


@pytest.fixture
def local_lake(tmp_path: Path, trained: Path) -> Lake:
    shutil.copytree(trained, tmp_path / "local")
    return Lake(tmp_path / "local")


@pytest.fixture
def athena_lake(tmp_path: Path, trained: Path) -> Lake:
    """The champion only, as CodeBuild has it: no DuckDB file, so nothing can come from it."""
    lake = Lake(tmp_path / "athena")
    shutil.copytree(MlLayout(Lake(trained)).models, MlLayout(lake).models)
    assert not lake.database.exists()
    return lake


@pytest.fixture
def config(bucket: str) -> AthenaConfig:
    return AthenaConfig(
        region="sa-east-1",
        work_group="banklake",
        staging_dir=STAGING,
        schema="banklake",
        raw_location=f"s3://{bucket}/lake/raw/",
    )


def _runner(client: Any, config: AthenaConfig) -> AthenaRunner:
    return AthenaRunner(client, config, backoff=Polling(initial=0.01), sleep=lambda _: None)


# --- what Athena would answer, and what UNLOAD would write ------------------------------------


def _athena_type(column: str) -> str:
    if column in ("event_ts", "label_reported_at"):
        return "timestamp(6)"
    if column == "event_date":
        return "date"
    if column == "label_is_fraud":
        return "boolean"
    if column in ("transaction_id", "customer_id", "account_id", "counterparty_key"):
        return "string"
    if column in ("transaction_type", "channel", "direction", "label_scenario"):
        return "string"
    return "double"


def expect_table(stubber: Stubber, columns: list[str] | None = None) -> None:
    columns = list(CONTRACT_COLUMNS) if columns is None else columns
    partition = [{"Name": "event_date", "Type": "date"}] if "event_date" in columns else []
    stubber.add_response(
        "get_table_metadata",
        {
            "TableMetadata": {
                "Name": "ml_features",
                "TableType": "EXTERNAL_TABLE",
                "Columns": [
                    {"Name": c, "Type": _athena_type(c)} for c in columns if c != "event_date"
                ],
                "PartitionKeys": partition,
            }
        },
        {
            "CatalogName": "AwsDataCatalog",
            "DatabaseName": "banklake_curated",
            "TableName": "ml_features",
        },
    )


def expect_unload(stubber: Stubber, sql: str) -> None:
    """StartQueryExecution with the UNLOAD in the work group, then RUNNING, SUCCEEDED."""
    stubber.add_response(
        "start_query_execution",
        {"QueryExecutionId": QUERY_ID},
        {
            "QueryString": sql,
            "WorkGroup": "banklake",
            "QueryExecutionContext": {"Catalog": "AwsDataCatalog"},
            "ResultConfiguration": {"OutputLocation": STAGING},
        },
    )
    for state in ("QUEUED", "RUNNING"):
        stubber.add_response(
            "get_query_execution",
            {"QueryExecution": {"QueryExecutionId": QUERY_ID, "Status": {"State": state}}},
            {"QueryExecutionId": QUERY_ID},
        )
    stubber.add_response(
        "get_query_execution",
        {
            "QueryExecution": {
                "QueryExecutionId": QUERY_ID,
                "StatementType": "DML",
                "Status": {"State": "SUCCEEDED"},
                "Statistics": {"DataScannedInBytes": 3 * 2**20, "EngineExecutionTimeInMillis": 900},
            }
        },
        {"QueryExecutionId": QUERY_ID},
    )


def athena_parquet(frame: pd.DataFrame) -> pa.Table:
    """The day's rows typed as Athena's UNLOAD writes the SELECT's casts."""
    types = {
        "event_ts": pa.timestamp("ms"),
        "label_reported_at": pa.timestamp("ms"),
        "event_date": pa.date32(),
        "label_is_fraud": pa.bool_(),
    }
    arrays = {}
    for column in CONTRACT_COLUMNS:
        values = frame[column]
        kind = types.get(column)
        if kind is None and _athena_type(column) == "string":
            kind = pa.string()
        if column == "event_date":
            values = pd.to_datetime(values).dt.date
        number = pa.float32() if column in FEATURES else pa.float64()  # real; amount: double
        arrays[column] = pa.array(values, kind or number, from_pandas=True)
    return pa.table(arrays)


def place_unload_output(s3: Any, bucket: str, prefix: str, table: pa.Table) -> list[str]:
    """Two extensionless Snappy Parquet files in reverse row order (no global order), one
    with INT64 millisecond timestamps and one with INT96 ones: both occur in the wild."""
    table = table.take(list(range(table.num_rows - 1, -1, -1)))
    half = table.num_rows // 2
    written = []
    for part, int96 in ((table.slice(0, half), False), (table.slice(half), True)):
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, compression="snappy", use_deprecated_int96_timestamps=int96)
        key = f"{prefix}{QUERY_ID}_{uuid.uuid4()}"
        s3.put_object(Bucket=bucket, Key=key, Body=sink.getvalue().to_pybytes())
        written.append(key)
    return written


def unload_writes(client: Any, s3: Any, bucket: str, prefix: str, table: pa.Table | None) -> None:
    """When the stubbed StartQueryExecution answers, the files appear (the prefix is checked
    empty before the query starts, so they must not be there earlier)."""

    def write(**_: Any) -> None:
        if table is not None:
            place_unload_output(s3, bucket, prefix, table)

    client.meta.events.register("after-call.athena.StartQueryExecution", write)


def day_rows(features: pd.DataFrame, day: date = DAY) -> pd.DataFrame:
    return features[features["event_date"] == pd.Timestamp(day)].reset_index(drop=True)


# --- the statement ------------------------------------------------------------------------------


def test_the_unload_selects_the_contract_columns_in_order_for_one_day(bucket: str) -> None:
    import sqlglot

    from python_jobs.aws.athena_sql import duckdb_only_constructs

    location = unload_location(S3Location.parse(f"s3://{bucket}/lake/raw/"), DAY, RUN_ID)
    assert location.url == f"s3://{bucket}/lake/unload/ml_features/2026-09-20/{RUN_ID}/"
    sql = unload_sql("banklake_curated", DAY, location)
    assert sql.startswith("unload (\nselect")
    assert sql.endswith(f"to '{location.url}'\nwith (format = 'PARQUET', compression = 'SNAPPY')")
    select = select_sql("banklake_curated", DAY)
    assert select in sql and "where event_date = date '2026-09-20'" in select
    parsed = sqlglot.parse_one(select, read="athena")
    assert [e.alias_or_name for e in parsed.expressions] == list(CONTRACT_COLUMNS)
    # the types of ml/dataset.py's one definition, the local loader's: features real
    casts = {e.alias_or_name: e.find(sqlglot.exp.Cast) for e in parsed.expressions}
    assert {casts[f].to.sql("athena") for f in FEATURES} == {"REAL"}
    assert casts["amount_brl"].to.sql("athena") == "DOUBLE"
    assert casts["event_ts"].to.sql("athena") == "TIMESTAMP(3)"
    assert duckdb_only_constructs(select) == []
    with pytest.raises(ValueError, match="one path segment"):
        unload_location(S3Location.parse(f"s3://{bucket}/raw/"), DAY, "a/b")


# --- scoring ------------------------------------------------------------------------------------


def test_scores_from_athena_equal_local_scoring_and_go_to_s3(
    local_lake: Lake,
    athena_lake: Lake,
    features: pd.DataFrame,
    athena: tuple[Any, Stubber],
    s3: Any,
    bucket: str,
    config: AthenaConfig,
) -> None:
    reference = score_day(MlLayout(local_lake), DAY, now=NOW)

    client, stubber = athena
    location = unload_location(S3Location.parse(config.raw_location or ""), DAY, RUN_ID)
    expect_table(stubber)
    expect_unload(stubber, unload_sql("banklake_curated", DAY, location))
    unload_writes(client, s3, bucket, location.prefix, athena_parquet(day_rows(features)))
    lines: list[str] = []

    result = score_on_athena(
        athena_lake,
        DAY,
        config,
        runner=_runner(client, config),
        s3=s3,
        run_id=RUN_ID,
        now=NOW,
        say=lines.append,
    )

    assert result.score is not None and result.uploaded == 1
    path = MlLayout(athena_lake).scores_file(DAY)
    assert path == result.score.path
    local, remote = pq.read_table(reference.path), pq.read_table(path)
    assert remote.schema == local.schema
    assert remote.equals(local)  # same rows, scores, reasons, model, scored_at
    assert path.read_bytes() == reference.path.read_bytes()
    assert (result.score.rows, result.score.alerts) == (reference.rows, reference.alerts)
    # uploaded with the ingest rules, where `athena register` points the scores table
    key = "lake/processed/fraud_scores/score_date=2026-09-20/scores.parquet"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the unload prefix is cleaned up after success
    assert keys(s3, bucket, "lake/unload/") == []
    assert result.query is not None and result.query.bytes_scanned == 3 * 2**20
    assert any("cost $" in line for line in lines)
    assert "banklake_curated.ml_features" in result.summary()


def test_a_day_already_on_s3_is_not_scored_again(
    athena_lake: Lake,
    features: pd.DataFrame,
    athena: tuple[Any, Stubber],
    s3: Any,
    bucket: str,
    config: AthenaConfig,
) -> None:
    """A retried Score state: the scores on S3 are kept, and Athena is not asked anything
    (the Stubber fails the test on any call it was not given)."""
    client, _ = athena
    key = "lake/processed/fraud_scores/score_date=2026-09-20/scores.parquet"
    s3.put_object(Bucket=bucket, Key=key, Body=b"scored before")
    lines: list[str] = []
    result = score_on_athena(
        athena_lake, DAY, config, runner=_runner(client, config), s3=s3, say=lines.append
    )
    assert result.score is None and "already on S3" in lines[0]
    assert not MlLayout(athena_lake).scores_file(DAY).exists()


def test_a_day_without_rows_names_the_day_and_the_table(
    athena_lake: Lake, athena: tuple[Any, Stubber], s3: Any, bucket: str, config: AthenaConfig
) -> None:
    client, stubber = athena
    day = date(2026, 12, 25)
    location = unload_location(S3Location.parse(config.raw_location or ""), day, RUN_ID)
    expect_table(stubber)
    expect_unload(stubber, unload_sql("banklake_curated", day, location))
    unload_writes(client, s3, bucket, location.prefix, None)  # UNLOAD of nothing: no file
    with pytest.raises(AthenaScoreError) as caught:
        score_on_athena(
            athena_lake,
            day,
            config,
            runner=_runner(client, config),
            s3=s3,
            run_id=RUN_ID,
            say=lambda _: None,
        )
    assert "no rows in Athena banklake_curated.ml_features for event_date 2026-12-25" in str(
        caught.value
    )
    assert keys(s3, bucket, "lake/processed/") == []


def test_a_missing_contract_column_is_named_before_anything_is_scanned(
    athena_lake: Lake, athena: tuple[Any, Stubber], s3: Any, config: AthenaConfig
) -> None:
    client, stubber = athena
    expect_table(stubber, [c for c in CONTRACT_COLUMNS if c != "cust_tx_count_7d"])
    with pytest.raises(FeatureContractError, match=r"missing \['cust_tx_count_7d'\]") as caught:
        score_on_athena(
            athena_lake, DAY, config, runner=_runner(client, config), s3=s3, say=lambda _: None
        )
    assert "banklake_curated.ml_features" in str(caught.value)


def test_a_missing_table_says_to_build_it(
    athena_lake: Lake, athena: tuple[Any, Stubber], s3: Any, config: AthenaConfig
) -> None:
    from ml.dataset import FeaturesUnavailableError

    client, stubber = athena
    stubber.add_client_error(
        "get_table_metadata", service_error_code="MetadataException", service_message="not found"
    )
    with pytest.raises(FeaturesUnavailableError, match="dbt build --target athena"):
        score_on_athena(
            athena_lake, DAY, config, runner=_runner(client, config), s3=s3, say=lambda _: None
        )


def test_a_model_trained_on_other_features_is_refused_before_any_query(
    athena_lake: Lake, athena: tuple[Any, Stubber], s3: Any, config: AthenaConfig
) -> None:
    import json

    from ml.artifacts import ModelIntegrityError, champion_version

    layout = MlLayout(athena_lake)
    metadata_file = layout.version_dir(champion_version(layout) or "") / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["features"] = metadata["features"][:-1]
    metadata_file.write_text(json.dumps(metadata))
    client, _ = athena
    with pytest.raises(ModelIntegrityError, match="different feature list"):
        score_on_athena(
            athena_lake, DAY, config, runner=_runner(client, config), s3=s3, say=lambda _: None
        )


# --- reading what UNLOAD wrote ------------------------------------------------------------------


def test_unloaded_files_read_into_load_features_frame(
    tmp_path: Path, features: pd.DataFrame, s3: Any, bucket: str
) -> None:
    """INT96, INT64 milliseconds and UTC-adjusted timestamps, date32, booleans, floats: the
    frame equals what load_features reads from DuckDB for the same rows."""
    rows = day_rows(features)
    database = tmp_path / "ref.duckdb"
    write_features(database, rows)
    from ml.dataset import FeatureSource

    expected = load_features(FeatureSource(database), DAY, DAY)

    prefix = "unload/ml_features/2026-09-20/x/"
    table = athena_parquet(rows)
    place_unload_output(s3, bucket, prefix, table)
    # a third writer: timestamps marked as adjusted to UTC
    utc = table.slice(0, 5)
    utc = utc.set_column(
        utc.schema.get_field_index("event_ts"),
        "event_ts",
        utc["event_ts"].cast(pa.timestamp("ms", tz="UTC")),
    )
    sink = pa.BufferOutputStream()
    pq.write_table(utc, sink)
    s3.put_object(Bucket=bucket, Key=prefix + "utc_part", Body=sink.getvalue().to_pybytes())
    s3.put_object(Bucket=bucket, Key=prefix + "folder/", Body=b"")  # a marker, not a file

    from python_jobs.aws.athena_score import UnloadLocation

    work = tmp_path / "work"
    work.mkdir()
    frame = read_unloaded(s3, UnloadLocation(bucket, prefix), work)
    first_five = set(table.slice(0, 5)["transaction_id"].to_pylist())
    deduplicated = frame.drop_duplicates().reset_index(drop=True)
    assert len(frame) == len(expected) + 5
    assert set(frame["transaction_id"]) == set(expected["transaction_id"]) | first_five
    pd.testing.assert_frame_equal(deduplicated, expected)


def test_an_unloaded_file_without_a_contract_column_is_named(
    tmp_path: Path, features: pd.DataFrame, s3: Any, bucket: str
) -> None:
    from python_jobs.aws.athena_score import UnloadLocation

    table = athena_parquet(day_rows(features)).drop_columns(["is_pix"])
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    s3.put_object(Bucket=bucket, Key="u/part", Body=sink.getvalue().to_pybytes())
    with pytest.raises(FeatureContractError, match=r"u/part: .*missing \['is_pix'\]"):
        read_unloaded(s3, UnloadLocation(bucket, "u/"), tmp_path)


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_score_on_athena_needs_a_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["score", "--target", "athena", "--lake", str(tmp_path)]) == 1
    assert "--target athena needs --date" in capsys.readouterr().err


def test_cli_score_on_athena_says_which_variables_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "BANKLAKE_ATHENA_WORKGROUP",
        "BANKLAKE_ATHENA_STAGING_DIR",
        "BANKLAKE_S3_RAW_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    args = ["score", "--target", "athena", "--date", "2026-09-20", "--lake", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "BANKLAKE_S3_RAW_DIR" in err and "BANKLAKE_ATHENA_WORKGROUP" in err
