"""The daily pipeline twice: `banklake run` locally and a Step Functions state machine on AWS.

One table says which local step corresponds to which state of
infrastructure/statemachine/daily_pipeline.asl.json, and why a step exists on one side only.
python_jobs/tests/test_daily_pipeline_asl.py runs the real `daily_run` with its steps
recorded and walks the state machine from StartAt: both must follow this table, in order, so
a step added or reordered on one side fails the suite until the other side (or the table)
follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASL_PATH = (
    Path(__file__).resolve().parents[2]
    / "infrastructure"
    / "statemachine"
    / "daily_pipeline.asl.json"
)


@dataclass(frozen=True)
class PipelineStep:
    """One step of the daily run. `local` names the functions `daily_run` reaches, in order
    (as imported in python_jobs/pipeline.py); `state` the ASL task state; `why` explains a
    missing side."""

    name: str
    local: tuple[str, ...]
    state: str | None
    why: str = ""


DAILY_STEPS: tuple[PipelineStep, ...] = (
    PipelineStep(
        "ingest validated",
        local=("generate", "validate_lake"),
        state="IngestValidated",
        why="locally the generator delivers the day and `banklake validate` checks it; on AWS "
        "the core system (or `banklake ingest`) delivers to S3, the S3 trigger validates on "
        "arrival, and the state sweeps the day with the same per-object code",
    ),
    PipelineStep("dbt build", local=("run_dbt",), state="DbtBuild"),
    PipelineStep(
        "score",
        local=("score_new_days",),
        state="Score",
        why="locally `banklake run` scores the new days with the champion (when there is "
        "one) from the DuckDB file; on AWS the state runs `banklake score --target athena` "
        "(python_jobs/aws/athena_score.py: the day's features UNLOADed from Athena, scored "
        "with the same ml/score.py write path, uploaded with `banklake ingest --scores`' "
        "rules), then rebuilds stg_fraud_scores+ on Athena for the Report",
    ),
    PipelineStep(
        "export curated",
        local=("export_curated",),
        state="LoadOnlineState",
        why="locally the export is what every reader reads, `banklake serve` included (it "
        "warms from it); on Athena the curated marts already are Iceberg tables that readers "
        "query, so the state exports only what the real-time path's online state warms from "
        "(`banklake export --target athena`, python_jobs/aws/athena_export.py) and loads it "
        "into the DynamoDB table with `banklake state load`",
    ),
    PipelineStep(
        "report",
        local=("summarize",),
        state="Report",
        why="the same summary on both sides: `banklake summary` locally, `banklake summary "
        "--target athena` in the Report state (python_jobs/aws/athena_summary.py); the Report "
        "state also writes the grounded daily report (`banklake report --target athena`) to "
        "reports/<day>/, which locally is its own command (`banklake report`, run by `make "
        "demo`) rather than a step of `banklake run`",
    ),
)


def local_sequence() -> list[str]:
    return [name for step in DAILY_STEPS for name in step.local]


def state_sequence() -> list[str]:
    return [step.state for step in DAILY_STEPS if step.state]
