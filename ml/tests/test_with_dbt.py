"""The ml package on the real thing: a generated lake, the dbt ml_features mart, training,
scoring, monitoring, and the dbt models that read the scores back."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ml.artifacts import load_champion
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.monitor import monitor
from ml.score import SCORES_SCHEMA, score_day
from ml.tests.conftest import FAST_TRAINING
from ml.train import train
from python_jobs.dbt_runner import run_dbt
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.lake.layout import Lake
from python_jobs.lake.query import one_row

pytestmark = pytest.mark.dbt

CONFIG = GeneratorConfig(seed=5, start_date=date(2026, 9, 1), days=24, customers=300)


def test_train_score_monitor_on_the_dbt_mart_and_read_back_by_dbt(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    generate(lake, CONFIG)
    target = tmp_path / "target"
    # the models only: dbt's own data tests belong to the dbt suite, and some of them read
    # marts outside this selection
    no_tests = [
        "--exclude-resource-type",
        "test",
        "unit_test",
        "--log-path",
        str(tmp_path / "logs"),
    ]
    # the feature mart, and every parent of the marts that read the scores back (below)
    marts = ["+ml_features", "+fct_fraud_alerts", "+fct_model_performance_daily"]
    marts.append("+fct_score_distribution_daily")
    built = run_dbt(["build", "--select", *marts, *no_tests], lake, target_path=target, quiet=True)
    assert built.success, built.failures
    layout = MlLayout(lake)

    outcome = train(layout, config=FAST_TRAINING)
    assert outcome.decision.promote
    assert outcome.metadata["data"]["frauds"]["fit"] > 0

    last = date(2026, 9, 24)
    result = score_day(layout)
    assert result.day == last
    with duckdb.connect(str(lake.database), read_only=True) as con:
        (mart_rows,) = one_row(
            con, "select count(*) from curated.ml_features where event_date = ?", [last]
        )
    table = pq.read_table(result.path)
    assert table.schema.equals(SCORES_SCHEMA) and table.num_rows == mart_rows > 0
    assert set(table["model_version"].to_pylist()) == {load_champion(layout).version}

    report = monitor(layout)
    assert report.day == last and len(report.feature_psi) == len(FEATURES)

    # dbt reads the scores file back through its source: the file contract holds
    read_back = run_dbt(
        ["build", "--select", "stg_fraud_scores+", "feature_reason_codes", *no_tests],
        lake,
        target_path=target,
        quiet=True,
    )
    assert read_back.success, read_back.failures
    with duckdb.connect(str(lake.database), read_only=True) as con:
        (alerts,) = one_row(con, "select count(*) from curated.fct_fraud_alerts")
    assert alerts == result.alerts

    # the alert queue is the same, reasons bit for bit, when every row is explained exactly
    # (`--reasons all`, the behaviour before the default explained only the alerts)
    queue = (
        "select score_date, model_version, alert_rank, transaction_id, score, threshold, "
        + ", ".join(
            f"reason_{i}_{part}"
            for i in (1, 2, 3)
            for part in ("feature", "code", "description", "contribution")
        )
        + " from curated.fct_fraud_alerts order by alert_rank"
    )
    with duckdb.connect(str(lake.database), read_only=True) as con:
        default_queue = con.execute(queue).fetchall()
    assert result.reasons == "alerts" and default_queue
    assert score_day(layout, reasons="all").alerts == result.alerts
    again = run_dbt(
        ["build", "--select", "stg_fraud_scores+", *no_tests],
        lake,
        target_path=target,
        quiet=True,
    )
    assert again.success, again.failures
    with duckdb.connect(str(lake.database), read_only=True) as con:
        assert con.execute(queue).fetchall() == default_queue
