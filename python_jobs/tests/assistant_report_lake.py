"""One small, really built and really scored lake for the report and explain tests.

The real generator, the real dbt project (models only, into a private target folder so
that parallel runs do not share dbt's state), the real training, scoring of the last three
days, the marts that read the scores back and monitoring of the last day. Built once per
test session and shared by test_assistant_report*.py and test_assistant_explain*.py
(memoized here: a fixture in two modules would build it twice). About 80 s on 2 cores.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ml.layout import MlLayout
from ml.monitor import monitor
from ml.score import score_day
from ml.tests.conftest import FAST_TRAINING
from ml.train import train
from python_jobs.dbt_runner import require_success, run_dbt
from python_jobs.export import export_curated
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.lake.layout import Lake

# 24 days: enough history for the anomaly window, a training split and three scored days;
# the 20th pay day moves to Monday the 21st, a real shift in the day's mix
FIRST_DAY = date(2026, 9, 1)
CONFIG = GeneratorConfig(seed=11, start_date=FIRST_DAY, days=24, customers=300)
LAST_DAY = FIRST_DAY + timedelta(days=CONFIG.days - 1)
SCORED_DAYS = [LAST_DAY - timedelta(days=k) for k in (2, 1, 0)]

_built: dict[str, Lake] = {}


def scored_lake(factory: pytest.TempPathFactory) -> Lake:
    if "lake" in _built:
        return _built["lake"]
    root = factory.mktemp("assistant-report")
    lake = Lake(root / "lake")
    generate(lake, CONFIG)
    models_only = [
        "--exclude-resource-type",
        "test",
        "unit_test",
        "--log-path",
        str(root / "logs"),
    ]
    target = root / "target"
    require_success(run_dbt(["build", *models_only], lake, target_path=target, quiet=True))
    layout = MlLayout(lake)
    train(layout, config=FAST_TRAINING)
    for day in SCORED_DAYS:
        score_day(layout, day)
    require_success(
        run_dbt(
            ["build", "--select", "stg_fraud_scores+", *models_only],
            lake,
            target_path=target,
            quiet=True,
        )
    )
    monitor(layout, LAST_DAY)
    export_curated(lake)  # what the report and explain read: the published export
    _built["lake"] = lake
    return lake
