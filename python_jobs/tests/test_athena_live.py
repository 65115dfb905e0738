"""The Athena path against a real AWS account: what no offline test can show (Athena's own
parser and planner, partition projection finding real files, Iceberg writes, merge, costs), and
that Athena and DuckDB build the same lake into the same rows.

Skipped unless BANKLAKE_ATHENA_LIVE=1, the variables of docs/aws.md ("Run on AWS") are
set (BANKLAKE_S3_RAW_DIR names the lake bucket) and boto3 finds credentials. Self-contained and
isolated from whatever the account already runs:

1. a small lake is generated locally (10 days, 200 customers), validated and built with dbt on
   DuckDB, then given one day of synthetic fraud scores (ml/score.py's schema, for accepted
   transactions) and the marts that read them rebuilt: the reference summary;
2. its raw files and scores are uploaded (`banklake ingest`, `--scores`) under
   `<lake root>/banklake-live/<run id>/` in the lake bucket (outside raw/, so the S3 trigger
   and the bucket's raw/ delete protection do not apply), and registered in Glue databases of
   a schema of its own, `banklake_live_<run id>_*` (BANKLAKE_ATHENA_RAW_DATABASE is ignored);
3. `dbt build --target athena` runs twice (first build, then incremental merge), and after
   each `banklake summary --target athena` must equal the DuckDB summary: rows per feed and
   disposition, rejections by reason, every curated mart's row count, and the scores;
4. a day is scored from Athena (`banklake score --target athena`: UNLOAD of the curated
   ml_features, scored with a tiny champion, uploaded under the run's prefix) and the scores
   must equal local scoring of the DuckDB mart's same day;
5. the online state's export is made from Athena (`banklake export --target athena`: two
   UNLOADs of the curated marts' warm-up columns) and must warm the same state as the DuckDB
   build's own export;
6. the run's Glue databases and every object version under its S3 prefix are deleted, even
   when a step failed (Athena's query results stay in the work group's results bucket, which
   expires them).

It takes 20 to 40 minutes (two builds of about 350 queries each) and costs about $0.05: every
query is billed at least 10 MB. Needs Glue CreateDatabase/DeleteDatabase/DeleteTable, Athena in
the work group, and S3 put/list/delete (object versions included) in the lake bucket.

    BANKLAKE_ATHENA_LIVE=1 .venv/bin/pytest -m athena python_jobs/tests/test_athena_live.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from python_jobs.aws.athena import (
    AthenaConfig,
    AthenaConfigError,
    AthenaQueryFailed,
    AthenaRunner,
    make_client,
)
from python_jobs.lake.query import one_row
from python_jobs.lake.schemas import FEEDS


def _skip_reason() -> str | None:
    if os.environ.get("BANKLAKE_ATHENA_LIVE") != "1":
        return "live Athena tests: set BANKLAKE_ATHENA_LIVE=1 (and the README's AWS variables)"
    try:
        config = AthenaConfig.from_env(need_raw_location=True)
    except AthenaConfigError as error:
        return f"live Athena tests: {error}"
    import boto3

    session = boto3.Session(profile_name=config.profile, region_name=config.region)
    if session.get_credentials() is None:
        return "live Athena tests: boto3 finds no AWS credentials"
    return None


_REASON = _skip_reason()
pytestmark = [pytest.mark.athena, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

SCORED_TRANSACTIONS = 40


def _live_lake_config() -> Any:
    """Small, but with every feed present: fraud reports arrive days after the fraud, so ten
    days at a high fraud rate (DuckDB cannot read a feed that has no file at all)."""
    from python_jobs.generate import GeneratorConfig

    return GeneratorConfig(seed=7, days=10, customers=200, fraud_rate=0.05)


LIVE_LAKE = _live_lake_config()


@dataclass
class LiveRun:
    """One isolated run: where its files and tables are, and the DuckDB reference."""

    config: AthenaConfig  # the run's own schema and raw location
    env: dict[str, str]  # what dbt and the CLI see for this run
    lake: Any  # python_jobs.lake.layout.Lake, the small local lake
    work: Path
    bucket: str
    prefix: str  # every S3 key of the run starts with it
    local: Any = None  # LakeSummary of the DuckDB build
    local_scores: int = 0


def _session(config: AthenaConfig) -> Any:
    import boto3

    return boto3.Session(profile_name=config.profile, region_name=config.region)


def _dbt(run: LiveRun, target: str, *args: str) -> None:
    """dbt in a subprocess with the run's environment: the two adapters never share a
    process, and nothing of the developer's own environment leaks into the target."""
    from python_jobs.aws.athena_check import _dbt_executable
    from python_jobs.dbt_runner import PROJECT_DIR

    profiles = run.work / "profiles"
    profiles.mkdir(exist_ok=True)
    shutil.copyfile(PROJECT_DIR / "profiles.yml.example", profiles / "profiles.yml")
    command = [
        _dbt_executable(),
        *args,
        "--target",
        target,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(profiles),
        "--target-path",
        str(run.work / f"target-{target}"),
        "--log-path",
        str(run.work / f"logs-{target}"),
    ]
    done = subprocess.run(command, env=run.env, capture_output=True, text=True, check=False)
    output = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, f"dbt {' '.join(args)} --target {target} failed:\n{output}"


def _write_scores(lake: Any) -> int:
    """One day of scores in the scoring job's schema and place (ml/score.py, ml/layout.py)
    for transactions of the last event day that the DuckDB build accepted: enough to exercise
    the scores table, its projection and the marts that read it, without training a model
    on three days of data."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml.layout import MlLayout
    from ml.score import SCORES_SCHEMA

    con = duckdb.connect(str(lake.database), read_only=True)
    try:
        rows = con.execute(
            "select transaction_id, customer_id, event_ts, event_date "
            "from curated.fct_transactions "
            "where event_date = (select max(event_date) from curated.fct_transactions) "
            f"order by transaction_id limit {SCORED_TRANSACTIONS}"
        ).fetchall()
    finally:
        con.close()
    assert rows, "the DuckDB build has no transactions to score"
    n = len(rows)
    scores = [round((i + 1) / (n + 1), 6) for i in range(n)]
    columns = {field.name: pa.nulls(n, field.type) for field in SCORES_SCHEMA}
    columns.update(
        transaction_id=pa.array([r[0] for r in rows], pa.string()),
        customer_id=pa.array([r[1] for r in rows], pa.string()),
        event_ts=pa.array([r[2] for r in rows], pa.timestamp("us")),
        model_version=pa.array(["live-test"] * n, pa.string()),
        score=pa.array(scores, pa.float64()),
        threshold=pa.array([0.9] * n, pa.float64()),
        decision=pa.array(["alert" if s >= 0.9 else "pass" for s in scores], pa.string()),
        scored_at=pa.array([datetime.now(UTC).replace(tzinfo=None)] * n, pa.timestamp("us")),
    )
    path = MlLayout(lake).scores_file(rows[0][3])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=SCORES_SCHEMA), path)
    return n


def _scores_rows(run: LiveRun, runner: AthenaRunner | None = None) -> int:
    """Rows of stg_fraud_scores, on DuckDB (runner None) or Athena."""
    if runner is None:
        import duckdb

        con = duckdb.connect(str(run.lake.database), read_only=True)
        try:
            return one_row(con, "select count(*) from processed.stg_fraud_scores")[0]
        finally:
            con.close()
    database = f"{run.config.schema}_processed"
    result = runner.run(f'select count(*) as n from "{database}"."stg_fraud_scores"')
    (count,) = result.rows[0]
    assert count is not None
    return int(count)


def _delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    """Every version and delete marker under prefix (the lake bucket is versioned)."""
    assert "/banklake-live/" in "/" + prefix, prefix  # never anything but a live run's own
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(objects), 1000):
            s3.delete_objects(
                Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True}
            )


def _drop_databases(glue: Any, schema: str) -> list[str]:
    """The run's Glue databases (`<schema>_*`), tables included; data lives under the run's
    S3 prefix and is deleted there."""
    assert schema.startswith("banklake_live_"), schema
    dropped = []
    for page in glue.get_paginator("get_databases").paginate():
        for database in page["DatabaseList"]:
            if database["Name"].startswith(schema + "_"):
                glue.delete_database(Name=database["Name"])
                dropped.append(database["Name"])
    return dropped


def _summaries_differ(local: Any, athena: Any) -> list[str]:
    return [
        f"{part}: DuckDB {getattr(local, part)!r} != Athena {getattr(athena, part)!r}"
        for part in ("processed", "rejected", "curated")
        if getattr(local, part) != getattr(athena, part)
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    from python_jobs.aws.s3_location import S3Location
    from python_jobs.generate import generate
    from python_jobs.lake.layout import Lake
    from python_jobs.lake.validate import validate_lake
    from python_jobs.summary import summarize

    base = AthenaConfig.from_env(need_raw_location=True)
    run_id = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_{uuid.uuid4().hex[:6]}"
    schema = f"banklake_live_{run_id}"
    home = S3Location.parse(base.raw_location or "")
    prefix = f"{home.lake_prefix}banklake-live/{run_id}/"
    root = f"s3://{home.bucket}/{prefix}"
    work = tmp_path_factory.mktemp("athena-live")
    lake = Lake(work / "lake")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"BANKLAKE_ATHENA_RAW_DATABASE", "BANKLAKE_TARGET", "DBT_PROFILES_DIR"}
    }
    env.update(
        BANKLAKE_ATHENA_SCHEMA=schema,
        BANKLAKE_S3_RAW_DIR=root + "raw/",
        BANKLAKE_S3_DATA_DIR=root + "warehouse/",
        BANKLAKE_LAKE_DIR=str(lake.root),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    config = replace(base, schema=schema, raw_database=f"{schema}_raw", raw_location=root + "raw/")
    live = LiveRun(config, env, lake, work, home.bucket, prefix)
    session = _session(config)
    try:
        # the local flow of `banklake demo`: generate, validate, build, score, rebuild the
        # marts that read the scores
        generate(lake, LIVE_LAKE)
        validate_lake(lake)
        _dbt(live, "duckdb", "build")
        live.local_scores = _write_scores(lake)
        _dbt(live, "duckdb", "build", "--select", "stg_fraud_scores+")
        live.local = summarize(lake)
        yield live
    finally:
        print("dropped", _drop_databases(session.client("glue"), schema))
        _delete_prefix(session.client("s3"), home.bucket, prefix)


@pytest.fixture(scope="module")
def runner(run: LiveRun) -> AthenaRunner:
    return AthenaRunner(make_client(run.config), run.config)


@pytest.fixture(scope="module")
def registered(run: LiveRun, runner: AthenaRunner) -> LiveRun:
    from python_jobs.aws.athena_jobs import register
    from python_jobs.aws.s3 import make_s3_client
    from python_jobs.aws.s3_location import S3Location
    from python_jobs.ingest import ingest

    s3 = make_s3_client(run.env)
    destination = S3Location.parse(run.env["BANKLAKE_S3_RAW_DIR"])
    assert ingest(run.lake, destination, s3=s3).uploaded
    assert ingest(run.lake, destination, kind="scores", s3=s3).uploaded
    assert ingest(run.lake, destination, s3=s3).uploaded == []  # idempotent for real
    # register parses the project with dbt in-process, which reads the schema from os.environ
    with pytest.MonkeyPatch.context() as patch:
        for name in ("BANKLAKE_ATHENA_SCHEMA", "BANKLAKE_S3_RAW_DIR", "BANKLAKE_S3_DATA_DIR"):
            patch.setenv(name, run.env[name])
        patch.delenv("BANKLAKE_ATHENA_RAW_DATABASE", raising=False)
        register(run.config, runner, say=print)
    return run


@pytest.fixture(scope="module")
def built(registered: LiveRun) -> LiveRun:
    _dbt(registered, "athena", "build")
    return registered


def test_register_creates_projected_tables_that_find_the_files(registered, runner) -> None:
    glue = _session(registered.config).client("glue")
    config = registered.config
    tables = [
        *((config.raw_database, feed, ["year", "month", "day"]) for feed in FEEDS),
        (config.scores_database, "fraud_scores", ["score_date"]),
    ]
    for database, name, keys in tables:
        table = glue.get_table(DatabaseName=database, Name=name)["Table"]
        assert table["Parameters"]["projection.enabled"] == "true"
        assert [k["Name"] for k in table["PartitionKeys"]] == keys
        # projection, not catalog partitions
        assert glue.get_partitions(DatabaseName=database, TableName=name)["Partitions"] == []
    result = runner.run(
        f'select count(*) as n, count(distinct "day") as days '
        f'from "{config.raw_database}"."transactions"',
    )
    assert int(result.rows[0][0]) > 0 and int(result.rows[0][1]) == LIVE_LAKE.days
    assert result.bytes_scanned > 0 and result.cost_usd >= 10 * 2**20 / 2**40 * 5
    scores = runner.run(f'select count(*) from "{config.scores_database}"."fraud_scores"')
    assert int(scores.rows[0][0]) == registered.local_scores


def test_a_failing_query_reports_athenas_reason(registered, runner) -> None:
    with pytest.raises(AthenaQueryFailed, match=r"COLUMN_NOT_FOUND|cannot be resolved"):
        runner.run(f'select no_such_column from "{registered.config.raw_database}"."transactions"')


def test_athena_builds_the_same_rows_as_duckdb(built, runner) -> None:
    """Full build (Iceberg CTAS, contracts, every data test), summarized on Athena."""
    from python_jobs.aws.athena_summary import summarize_athena
    from python_jobs.aws.s3 import make_s3_client

    athena = summarize_athena(built.config, runner, s3=make_s3_client(built.env))
    print(athena.render())
    assert _summaries_differ(built.local, athena.summary) == []
    assert athena.summary.curated, "no curated mart on Athena"
    assert _scores_rows(built, runner) == _scores_rows(built) == built.local_scores


def test_an_incremental_build_changes_nothing(built, runner) -> None:
    """Second build: the triaged models merge (is_incremental()), and the rows stay the same."""
    from python_jobs.aws.athena_summary import summarize_athena
    from python_jobs.aws.s3 import make_s3_client

    _dbt(built, "athena", "build")
    again = summarize_athena(built.config, runner, s3=make_s3_client(built.env))
    assert _summaries_differ(built.local, again.summary) == []
    assert _scores_rows(built, runner) == built.local_scores


def test_an_analysis_reports_its_cost(built, runner, capsys) -> None:
    from python_jobs.aws.athena_jobs import query

    with pytest.MonkeyPatch.context() as patch:  # compile_analysis runs dbt in-process
        patch.setenv("BANKLAKE_ATHENA_SCHEMA", built.config.schema)
        outcome = query(built.config, runner, Path("analyses/daily_kpis.sql"), max_rows=20)
    assert outcome.rows and "cost $" in capsys.readouterr().out


def test_scoring_on_athena_equals_local_scoring(built, runner, tmp_path: Path) -> None:
    """`banklake score --target athena` for real: Athena accepts the UNLOAD, writes the files
    python_jobs/tests/test_athena_score.py only places, the scorer reads them back, scores,
    uploads the day under the run's processed/fraud_scores/ and removes the unload prefix.
    The scores equal local scoring of the DuckDB mart's same day with the same champion (a
    tiny model trained on ml/tests' synthetic features: the path is compared, not the model);
    scores to 1e-6, since the two engines may round a feature's last bit differently."""
    import numpy as np
    import pyarrow.parquet as pq

    from ml.layout import MlLayout
    from ml.score import score_day
    from ml.tests.conftest import FAST_TRAINING, TRAINED_AT, synthetic_features, write_features
    from ml.train import train
    from python_jobs.aws.athena_score import UNLOAD_PREFIX, score_on_athena
    from python_jobs.aws.s3 import make_s3_client
    from python_jobs.aws.s3_location import S3Location
    from python_jobs.lake.layout import Lake

    trained = MlLayout(Lake(tmp_path / "trained"))
    write_features(trained.lake.database, synthetic_features())
    train(trained, config=FAST_TRAINING, now=TRAINED_AT)
    local, remote = MlLayout(Lake(tmp_path / "local")), MlLayout(Lake(tmp_path / "athena"))
    for layout in (local, remote):
        shutil.copytree(trained.models, layout.models)
    shutil.copyfile(built.lake.database, local.lake.database)

    import duckdb

    con = duckdb.connect(str(local.lake.database), read_only=True)
    try:  # not the day the synthetic scores were uploaded for (the last), so no conflict
        (day,) = one_row(con, "select max(event_date) - interval 1 day from curated.ml_features")
    finally:
        con.close()
    day = day.date() if hasattr(day, "date") else day
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expected = pq.read_table(score_day(local, day, now=now).path).to_pandas()

    s3 = make_s3_client(built.env)
    result = score_on_athena(remote.lake, day, built.config, runner=runner, s3=s3, now=now)
    assert result.score is not None and result.uploaded == 1
    assert result.query is not None and result.query.bytes_scanned > 0
    actual = pq.read_table(result.score.path).to_pandas()

    assert list(actual.columns) == list(expected.columns)
    exact = ["transaction_id", "customer_id", "event_ts", "model_version", "threshold"]
    assert actual[exact].equals(expected[exact])
    np.testing.assert_allclose(actual["score"], expected["score"], rtol=0, atol=1e-6)
    near = (expected["score"] - expected["threshold"]).abs() < 1e-6
    assert (actual["decision"] == expected["decision"])[~near].all()
    same_reason = (actual["reason_1"] == expected["reason_1"]) | actual["reason_1"].isna()
    assert same_reason.mean() >= 0.99
    home = S3Location.parse(built.config.raw_location or "")
    key = f"{home.scores_prefix}score_date={day.isoformat()}/scores.parquet"
    assert s3.head_object(Bucket=home.bucket, Key=key)["ContentLength"] > 0
    listed = s3.list_objects_v2(Bucket=home.bucket, Prefix=home.lake_prefix + UNLOAD_PREFIX)
    assert listed.get("KeyCount", 0) == 0  # the unload prefix was removed after success


def test_the_online_state_s_export_from_athena_warms_as_the_local_export(
    built, runner, tmp_path: Path
) -> None:
    """`banklake export --target athena` (the daily pipeline's LoadOnlineState step) against
    the live build: Athena accepts both UNLOADs, the export publishes, and the state it warms
    gives the same features as the state warmed from the DuckDB build's own export."""
    from python_jobs.aws.athena_export import UNLOAD_PREFIX, export_from_athena
    from python_jobs.aws.s3 import make_s3_client
    from python_jobs.aws.s3_location import S3Location
    from python_jobs.export import export_curated
    from python_jobs.lake.layout import Lake
    from python_jobs.serve.contract import Transaction
    from python_jobs.serve.state import OnlineState
    from python_jobs.serve.warmup import warm

    local = Lake(tmp_path / "local")
    local.root.mkdir()
    shutil.copyfile(built.lake.database, local.database)
    export_curated(local)
    s3 = make_s3_client(built.env)
    result = export_from_athena(Lake(tmp_path / "athena"), built.config, runner=runner, s3=s3)
    assert result.bytes_scanned > 0
    whole, remote = OnlineState(), OnlineState()
    expected = warm(whole, local)
    assert warm(remote, Lake(tmp_path / "athena")).rows == expected.rows > 0
    assert (remote.size(), remote.newest) == (whole.size(), whole.newest)
    import duckdb

    con = duckdb.connect(str(local.database), read_only=True)
    try:
        rows = con.execute(
            "select transaction_id, account_id, customer_id, event_ts, transaction_type, "
            "channel, direction, cast(round(amount_brl * 100) as bigint), counterparty_key, "
            "device_id, state, status from curated.fct_transactions "
            "order by event_ts desc, transaction_id limit 200"
        ).fetchall()
    finally:
        con.close()
    for i, row in enumerate(rows):
        probe = replace(Transaction(*row), transaction_id=f"PROBE-{i}")
        assert repr(remote.featurize(probe).features) == repr(whole.featurize(probe).features)
    home = S3Location.parse(built.config.raw_location or "")
    listed = s3.list_objects_v2(Bucket=home.bucket, Prefix=home.lake_prefix + UNLOAD_PREFIX)
    assert listed.get("KeyCount", 0) == 0  # the unload prefixes were removed after success
