"""`banklake score --target athena --date D`: the champion scores a day whose features live in
the Athena lake (`<schema>_curated.ml_features`, an Iceberg table dbt writes), not in a local
DuckDB file.

1. The champion is loaded first (ml/artifacts.py refuses a model whose feature list is not
   ml/features.py's FEATURES), so nothing is queried for a model that could not score.
2. If the day's scores are already on S3 (`processed/fraud_scores/score_date=D/`), nothing
   is done: scores on S3 are never replaced by a re-run (python_jobs/ingest/policy.py), which
   also makes a retried Score state of the daily pipeline harmless.
3. The table's columns are checked against the feature contract (Athena GetTableMetadata):
   a missing column is named before any byte is scanned.
4. An Athena `UNLOAD` writes the day's rows, contract columns in contract order and cast as
   ml/dataset.load_features casts them, as Snappy Parquet to a prefix of its own:
   `s3://<lake bucket>/<lake root>unload/ml_features/<D>/<run id>/` (the plumbing, shared with
   `banklake export --target athena`, is python_jobs/aws/athena_unload.py).
5. The files are downloaded and read with pyarrow into load_features' frame (contract order,
   string keys, float32 features, timestamps as naive datetime64[us]: Athena may write
   timestamps as INT96 or INT64 and may mark them UTC-adjusted, all normalized here).
6. The frame is scored by ml.score.score_features, the write path of `banklake score`
   (same file, same schema), then uploaded by python_jobs.ingest's ingest(kind="scores") for
   that day only: SHA-256, skip identical, conditional writes, never replace.
7. After success the unload prefix is deleted; after a failure it is left for inspection
   (the stack's lifecycle rule on unload/ expires it).

Timestamps are unloaded as timestamp(3): Athena writes Parquet through its Hive writer, whose
timestamps are milliseconds; the lake's event and report times have at most millisecond
precision (the generator and the raw contract write seconds).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ml.artifacts import load_champion
from ml.dataset import (
    CONTRACT_COLUMNS,
    FeatureContractError,
    FeaturesUnavailableError,
    check_contract,
    normalize_frame,
    select_expression,
)
from ml.layout import MlLayout
from ml.score import ALERTS, ScoreResult, score_features
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
    unload_statement,
)
from python_jobs.aws.s3 import list_objects
from python_jobs.aws.s3_location import S3Location
from python_jobs.ingest import ingest
from python_jobs.lake.layout import Lake
from python_jobs.observability.jobs import emit_score

Say = Callable[[str], None]
FEATURES_TABLE = "ml_features"
UNLOAD_PREFIX = f"{UNLOAD_ROOT}ml_features/"  # under the lake root, beside raw/


class AthenaScoreError(UnloadError):
    """The day cannot be scored from Athena (no rows, an unload that went wrong)."""


@dataclass(frozen=True)
class AthenaScoreResult:
    day: date
    table: str  # "<database>.ml_features"
    unload: UnloadLocation | None
    query: QueryResult | None
    score: ScoreResult | None  # None: the day's scores were already on S3
    uploaded: int = 0

    def summary(self) -> str:
        if self.score is None:
            return f"{self.day}: scores already on S3, nothing scored"
        cost = (
            f"; UNLOAD scanned {self.query.bytes_scanned:,} bytes, cost ${self.query.cost_usd:.6f}"
            if self.query
            else ""
        )
        return f"{self.score.summary()} (features from Athena {self.table}{cost})"


def unload_location(destination: S3Location, day: date, run_id: str) -> UnloadLocation:
    """`<lake root>unload/ml_features/<D>/<run id>/` in the lake bucket."""
    return UnloadLocation(
        destination.bucket,
        f"{destination.lake_prefix}{UNLOAD_PREFIX}{day.isoformat()}/{check_run_id(run_id)}/",
    )


def select_sql(database: str, day: date) -> str:
    """The day's rows as ml/dataset.load_features reads them from DuckDB: its very
    select_expression, timestamps as timestamp(3)."""
    columns = ",\n    ".join(
        select_expression(c, timestamp="timestamp(3)") for c in CONTRACT_COLUMNS
    )
    return (
        f'select\n    {columns}\nfrom "{database}"."{FEATURES_TABLE}"\n'
        f"where event_date = date '{day.isoformat()}'"
    )


def unload_sql(database: str, day: date, location: UnloadLocation) -> str:
    return unload_statement(select_sql(database, day), location)


def check_table_columns(athena: Any, database: str) -> None:
    """The Athena table's columns against the contract (names), before anything is scanned:
    a missing or unexpected column raises FeatureContractError naming it."""
    described = table_columns(athena, database, FEATURES_TABLE, FeaturesUnavailableError)
    try:
        check_contract([name for name, _ in described])
    except FeatureContractError as error:
        raise FeatureContractError(f"Athena {database}.{FEATURES_TABLE}: {error}") from None


def unload_features(
    runner: AthenaRunner, s3: Any, database: str, day: date, location: UnloadLocation
) -> QueryResult:
    """Runs the UNLOAD into an empty prefix (Athena refuses one that holds data)."""
    return run_unload(runner, s3, select_sql(database, day), location)


def read_unloaded(s3: Any, location: UnloadLocation, workdir: Path) -> pd.DataFrame:
    """Every file under the prefix (Athena's names carry no extension), read with pyarrow
    into load_features' frame: contract columns in contract order, sorted by (event_ts,
    transaction_id). A file without a contract column raises FeatureContractError naming it."""
    import pyarrow as pa

    tables = []
    for key, table in read_tables(s3, location, workdir):
        try:
            check_contract(table.column_names)
        except FeatureContractError as error:
            raise FeatureContractError(
                f"unloaded file s3://{location.bucket}/{key}: {error}"
            ) from None
        tables.append(table.select(list(CONTRACT_COLUMNS)))
    if not tables:
        return normalize_frame(pd.DataFrame({c: [] for c in CONTRACT_COLUMNS}))
    combined = pa.concat_tables(tables, promote_options="permissive")
    frame = normalize_frame(combined.to_pandas())
    return frame.sort_values(["event_ts", "transaction_id"], kind="stable").reset_index(drop=True)


def scores_on_s3(s3: Any, destination: S3Location, day: date) -> list[str]:
    prefix = f"{destination.scores_prefix}score_date={day.isoformat()}/"
    keys = [o["Key"] for o in list_objects(s3, destination.bucket, prefix)]
    return [key for key in keys if key.endswith(".parquet")]


def score_on_athena(
    lake: Lake,
    day: date,
    config: AthenaConfig,
    *,
    runner: AthenaRunner,
    s3: Any,
    run_id: str | None = None,
    upload: bool = True,
    now: datetime | None = None,
    say: Say = print,
    reasons: str = ALERTS,
) -> AthenaScoreResult:
    """Scores `day` from Athena's ml_features with `lake`'s champion, writes
    `<lake>/processed/fraud_scores/score_date=D/scores.parquet` and (with `upload`) uploads
    it beside config.raw_location's raw/. `runner` and `s3` are injectable for tests."""
    if not config.raw_location:
        raise ValueError("set BANKLAKE_S3_RAW_DIR: the lake's raw/ prefix on S3 (README)")
    destination = S3Location.parse(config.raw_location)
    layout = MlLayout(lake)
    # the champion's feature list must be FEATURES (load_champion refuses any other), the
    # list the UNLOAD selects and feature_matrix feeds it, in that order
    model = load_champion(layout)
    database = config.curated_database
    table = f"{database}.{FEATURES_TABLE}"
    if upload and (existing := scores_on_s3(s3, destination, day)):
        say(
            f"scores for {day} are already on S3 ({destination.url(existing[0])}): nothing to "
            "do. To re-score the day, delete them deliberately (aws s3 rm; versioning keeps "
            "them) and run again."
        )
        return AthenaScoreResult(day, table, None, None, None)
    check_table_columns(runner.client, database)
    location = unload_location(destination, day, run_id or new_run_id(now))
    say(f"unload {table} where event_date = {day} -> {location.url}")
    started = time.perf_counter()
    query = unload_features(runner, s3, database, day, location)
    say(
        f"  query {query.query_id}: {query.bytes_scanned:,} bytes scanned, "
        f"cost ${query.cost_usd:.6f}, {time.perf_counter() - started:.1f} s"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="banklake-unload-") as work:
            frame = read_unloaded(s3, location, Path(work))
        if frame.empty:
            raise AthenaScoreError(
                f"no rows in Athena {table} for event_date {day}: is the day built (dbt build "
                "--target athena) and is it a day with transactions?"
            )
        result = score_features(layout, model, day, frame, now=now, reasons=reasons)
        uploaded = 0
        if upload:
            report = ingest(lake, destination, kind="scores", days=[day], s3=s3, say=say)
            uploaded = len(report.uploaded)
    except Exception:
        say(f"  the unloaded files stay in {location.url} for inspection")
        raise
    deleted = delete_unloaded(s3, location)
    say(f"  removed {deleted} unloaded file(s) from {location.url}")
    emit_score(lake.root, result, target="athena")
    return AthenaScoreResult(day, table, location, query, result, uploaded)


def score_on_athena_job(
    lake: Lake, day: date, *, say: Say = print, reasons: str = ALERTS
) -> AthenaScoreResult:
    """The CLI's entry: configuration from the environment (README, 'Run on AWS')."""
    from python_jobs.aws.athena import runner_from_env
    from python_jobs.aws.s3 import make_s3_client

    runner = runner_from_env(need_raw_location=True)
    return score_on_athena(
        lake, day, runner.config, runner=runner, s3=make_s3_client(), say=say, reasons=reasons
    )
