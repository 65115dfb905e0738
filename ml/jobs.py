"""The fraud model's jobs, one function each, for the CLI and for `make demo`.

    train_job(lake)     train, compare with the baselines, promote if better than the champion
                        (backend="sagemaker": the same, trained by a SageMaker job; or
                        collect=JOB: register a job started earlier)
    score_job(lake)     score the last day (or --date) with the champion
    monitor_job(lake)   drift, alert rate and realized performance of a scored day
    demo_job(lake)      train, then score the last day: what `make demo` runs after dbt

Each prints what it did through `say` and returns a result object for callers that want
the numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from ml.layout import MlLayout
from ml.monitor import MonitorConfig, MonitorReport, monitor
from ml.score import ALERTS, ScoreResult, score_day
from ml.train import TrainConfig, TrainOutcome, WindowRequest, train
from python_jobs.lake.layout import Lake
from python_jobs.observability.jobs import emit_monitor, emit_score, emit_train

if TYPE_CHECKING:
    from ml.sagemaker import SageMakerJob

Say = Callable[[str], None]
BACKENDS = ("local", "sagemaker")


def train_job(
    lake: Lake,
    request: WindowRequest | None = None,
    config: TrainConfig | None = None,
    *,
    backend: str = "local",
    wait: bool = True,
    collect: str | None = None,
    say: Say = print,
) -> TrainOutcome | SageMakerJob:
    """Local: trains, saves the version, decides champion/challenger and prints the
    headline. SageMaker: exports the split and starts the training job, then (wait=True)
    waits for it and registers its model through the same gate; wait=False returns the
    started job. collect=JOB: registers an earlier job's model (waiting unless wait=False)."""
    layout = MlLayout(lake)
    request, config = request or WindowRequest(), config or TrainConfig()
    if collect is not None:
        return _collect_sagemaker(layout, collect, config, wait, say)
    if backend == "sagemaker":
        job = _start_sagemaker(layout, request, config, say)
        return _collect_sagemaker(layout, job.name, config, True, say) if wait else job
    if backend != "local":
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    outcome = train(layout, request, config, say=say)
    say(outcome.headline())
    emit_train(lake.root, outcome)
    return outcome


def _start_sagemaker(
    layout: MlLayout, request: WindowRequest, config: TrainConfig, say: Say
) -> SageMakerJob:
    from ml.dataset import date_range, load_features
    from ml.protocol import split
    from ml.sagemaker import SageMakerConfig, clients, start_training_job

    sm_config = SageMakerConfig.from_env()  # fails before any data is read
    if config.folds != 1:
        raise ValueError("--folds is a local evaluation; the SageMaker backend trains one model")
    windows = request.resolve(*date_range(layout.features))
    frame = load_features(layout.features, windows.train_start, windows.train_end)
    sagemaker, s3 = clients(sm_config)
    job = start_training_job(
        split(frame, windows), config.booster, sm_config, sagemaker=sagemaker, s3=s3, say=say
    )
    say(job.summary())
    return job


def _collect_sagemaker(
    layout: MlLayout, name: str, config: TrainConfig, wait: bool, say: Say
) -> TrainOutcome:
    from ml.sagemaker import SageMakerConfig, clients, collect_training_job

    sm_config = SageMakerConfig.from_env()
    sagemaker, s3 = clients(sm_config)
    outcome = collect_training_job(
        layout, name, config, sagemaker=sagemaker, s3=s3, wait=wait, say=say
    )
    say(outcome.headline())
    emit_train(layout.lake.root, outcome)
    return outcome


def score_job(
    lake: Lake, day: date | None = None, *, say: Say = print, reasons: str = ALERTS
) -> ScoreResult:
    result = score_day(MlLayout(lake), day, reasons=reasons)
    say(result.summary())
    emit_score(lake.root, result)
    return result


def monitor_job(
    lake: Lake,
    day: date | None = None,
    config: MonitorConfig | None = None,
    *,
    say: Say = print,
) -> MonitorReport:
    layout = MlLayout(lake)
    report = monitor(layout, day, config or MonitorConfig())
    emit_monitor(lake.root, report)
    say(report.text())
    say(f"report: {layout.monitoring_file(report.day)}")
    return report


def demo_job(lake: Lake, *, say: Say = print) -> tuple[TrainOutcome, ScoreResult]:
    """Trains on the lake's features with the default windows, then scores the last day with
    the champion (the new model, or the old one if it stayed better)."""
    say("==> training the fraud model (XGBoost + forest vs the forest, logistic regression, rules)")
    outcome = train_job(lake, say=say)
    assert isinstance(outcome, TrainOutcome)
    say("==> scoring the last day with the champion")
    return outcome, score_job(lake, say=say)
