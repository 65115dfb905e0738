"""The Step Functions definition of the daily pipeline against the local `banklake run`."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from python_jobs import pipeline
from python_jobs.aws.daily_pipeline import ASL_PATH, DAILY_STEPS, local_sequence, state_sequence
from python_jobs.lake.layout import Lake
from python_jobs.lake.validate import ValidationReport
from python_jobs.summary import LakeSummary

BUILDSPEC = ASL_PATH.parents[1] / "buildspec.yml"


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(ASL_PATH.read_text())


def _targets(state: dict[str, Any]) -> list[str]:
    nexts = [state["Next"]] if "Next" in state else []
    return nexts + [c["Next"] for c in state.get("Catch", [])]


def test_the_definition_is_well_formed(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert asl["StartAt"] in states
    for name, state in states.items():
        assert state["Type"] in {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel"}
        for target in _targets(state):
            assert target in states, f"{name} -> {target}: no such state"
        if state["Type"] in {"Succeed", "Fail"}:
            assert "Next" not in state and "End" not in state, name
        else:
            assert ("Next" in state) != bool(state.get("End")), f"{name}: exactly one of Next/End"
    # every state is reachable from StartAt
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _targets(states[name])
    assert seen == set(states)


def test_every_task_retries_and_catches(asl: dict[str, Any]) -> None:
    tasks = {n: s for n, s in asl["States"].items() if s["Type"] == "Task"}
    assert tasks
    for name, state in tasks.items():
        assert state.get("Retry"), f"{name} has no Retry"
        for retry in state["Retry"]:
            assert retry["ErrorEquals"] and retry["MaxAttempts"] >= 1, name
        catch_all = [c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
        assert catch_all, f"{name} has no Catch for States.ALL"
        assert catch_all[0]["ResultPath"] not in (None, "$"), f"{name} would lose its input"


def _happy_path(asl: dict[str, Any]) -> list[str]:
    path, name = [], asl["StartAt"]
    while asl["States"][name]["Type"] == "Task":
        path.append(name)
        name = asl["States"][name]["Next"]
    assert asl["States"][name]["Type"] == "Succeed", f"the main path ends in {name}"
    return path


def test_the_states_follow_the_steps_in_order(asl: dict[str, Any]) -> None:
    assert (
        _happy_path(asl)
        == state_sequence()
        == [
            "IngestValidated",
            "DbtBuild",
            "Score",
            "LoadOnlineState",
            "Report",
        ]
    )
    # a failure anywhere alerts and fails the execution; the alert itself ends in Fail too
    failure = {c["Next"] for s in asl["States"].values() for c in s.get("Catch", [])}
    assert failure == {"NotifyFailure", "Failed"}
    assert asl["States"]["NotifyFailure"]["Next"] == "Failed"


def test_steps_missing_on_one_side_say_why() -> None:
    for step in DAILY_STEPS:
        if not step.local or not step.state:
            assert step.why, step.name


def test_the_local_run_takes_the_same_steps_in_the_same_order(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs the real `daily_run` with each step's work replaced by a recorder."""
    calls: list[str] = []

    def record(name: str, result: Any) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if name == "run_dbt":
                assert args[0][0] == "build"  # DbtBuild is `dbt build`
            return result

        return step

    generated = SimpleNamespace(
        rows={},
        first_day=date(2026, 11, 2),
        last_day=date(2026, 11, 2),
        fraud_transactions=0,
        transactions_per_second=0.0,
        notes=[],
    )
    dbt = SimpleNamespace(
        tests_passed=1, tests_total=1, tests_warned=0, success=True, failures=[], statuses={}
    )
    monkeypatch.setattr(pipeline, "generate", record("generate", generated))
    monkeypatch.setattr(pipeline, "validate_lake", record("validate_lake", ValidationReport()))
    monkeypatch.setattr(pipeline, "run_dbt", record("run_dbt", dbt))
    monkeypatch.setattr(pipeline, "score_new_days", record("score_new_days", None))
    monkeypatch.setattr(pipeline, "require_success", lambda outcome: outcome)
    monkeypatch.setattr(pipeline, "export_curated", record("export_curated", []))
    monkeypatch.setattr(pipeline, "summarize", record("summarize", LakeSummary()))
    monkeypatch.setattr(pipeline, "render", lambda *args, **kwargs: "")
    (lake.generator_state).mkdir(parents=True)
    (lake.generator_state / "state.json").write_text("{}")

    pipeline.daily_run(lake, 1, say=lambda _: None)

    assert calls == local_sequence()


def test_every_compute_step_is_known_to_the_runner(asl: dict[str, Any]) -> None:
    buildspec = BUILDSPEC.read_text()
    steps = {
        env["Value"]
        for state in asl["States"].values()
        for env in state.get("Parameters", {}).get("EnvironmentVariablesOverride", [])
        if env["Name"] == "BANKLAKE_STEP"
    }
    assert steps == {"build", "score", "online-state", "report"}
    for step in steps:
        assert re.search(rf"^\s+{step}\)$", buildspec, re.MULTILINE), step


def test_placeholders_are_the_template_substitutions(asl: dict[str, Any]) -> None:
    from python_jobs.tests.cfn_yaml import load_template

    template = load_template(Path(ASL_PATH.parents[1] / "banklake.yaml"))
    machine = template["Resources"]["DailyPipeline"]["Properties"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL_PATH.read_text()))
    assert placeholders == set(machine["DefinitionSubstitutions"])


def test_every_banklake_command_of_the_runner_exists_with_its_flags() -> None:
    """The buildspec calls the CLI (and tells the operator what to run): each command line
    must parse with the real parser, so a renamed flag fails here, not at 4 a.m. in CodeBuild."""
    import shlex

    from python_jobs.cli import build_parser

    buildspec = BUILDSPEC.read_text().replace("${BANKLAKE_DAY}", "2026-11-02")
    run = re.findall(r"\.venv/bin/banklake ([^>|;\n]+)", buildspec)
    told = re.findall(r"'banklake ([a-z]+ [^']+)'", buildspec)
    assert any(line.startswith("summary --target athena") for line in run), run
    assert any(line.startswith("report --target athena") for line in run), run
    assert any(line.startswith("score --target athena") for line in run), run
    parser = build_parser()
    for line in [*run, *told]:
        args = parser.parse_args(shlex.split(line))
        assert args.handler, line


def _score_branch() -> str:
    buildspec = BUILDSPEC.read_text()
    return buildspec[buildspec.index("          score)") : buildspec.index("          report)")]


def test_the_score_state_scores_the_day_on_athena_then_rebuilds_what_reads_the_scores(
    asl: dict[str, Any],
) -> None:
    """build -> score --target athena (which uploads with ingest --scores' rules) -> the
    marts that read the scores -> report: the Report state sees the day's alerts."""
    import shlex

    from python_jobs.cli import build_parser

    score = _score_branch()
    lines = [line.strip() for line in score.splitlines() if line.strip()]
    command = next(line for line in lines if line.startswith(".venv/bin/banklake score"))
    line = command.removeprefix(".venv/bin/banklake ").replace("${BANKLAKE_DAY}", "2026-11-02")
    args = build_parser().parse_args(shlex.split(line))
    assert (args.target, str(args.date), args.lake) == ("athena", "2026-11-02", "lake")
    rebuild = ".venv/bin/dbt build --target athena --select stg_fraud_scores+"
    assert lines.index(command) < lines.index(rebuild)
    # the champion comes from the lake bucket's models/ before anything is scored
    champion = next(i for i, line in enumerate(lines) if "champion.json" in line and "cp" in line)
    assert champion < lines.index(command)
    assert "banklake score --target athena" in asl["States"]["Score"]["Comment"]


def test_the_report_state_runs_the_summary_on_athena(asl: dict[str, Any]) -> None:
    buildspec = BUILDSPEC.read_text()
    report = buildspec[buildspec.index("          report)") : buildspec.index("          *)")]
    assert ".venv/bin/banklake summary --target athena" in report
    assert "target/summary.txt" in report.split("for f in", 1)[1]  # copied to reports/DAY/
    assert "summary --target athena" in asl["States"]["Report"]["Comment"]


def test_the_runner_project_sets_what_its_steps_read() -> None:
    """`banklake summary --target athena` needs AthenaConfig's variables (CodeBuild itself
    sets AWS_REGION); the quarantine count needs the raw prefix; the buildspec needs the
    bucket. A variable dropped from the project would only show in CodeBuild."""
    from python_jobs.assistant.providers import PROVIDER_ENV
    from python_jobs.assistant.warehouse import ASSISTANT_STAGING_ENV, ASSISTANT_WORKGROUP_ENV
    from python_jobs.aws.athena import _REQUIRED
    from python_jobs.tests.cfn_yaml import load_template

    template = load_template(Path(ASL_PATH.parents[1] / "banklake.yaml"))
    project = template["Resources"]["RunnerProject"]["Properties"]
    variables = project["Environment"]["EnvironmentVariables"]
    # always set (a conditional one, Fn::If, may be absent: the buildspec must not need it)
    names = {v["Name"] for v in variables if "Name" in v}
    assert {*_REQUIRED, "BANKLAKE_S3_RAW_DIR", "BANKLAKE_LAKE_BUCKET"} <= names
    # `banklake report --target athena`: the assistant's work group, the provider to use
    assert {ASSISTANT_WORKGROUP_ENV, ASSISTANT_STAGING_ENV, PROVIDER_ENV} <= names
    used = set(re.findall(r"\$\{(BANKLAKE_\w+)\}", BUILDSPEC.read_text()))
    assert used - {"BANKLAKE_STEP", "BANKLAKE_DAY"} <= names  # the state machine sets those two


def _report_branch() -> str:
    buildspec = BUILDSPEC.read_text()
    return buildspec[buildspec.index("          report)") : buildspec.index("          *)")]


def test_the_report_state_writes_the_daily_report_beside_the_summary(asl: dict[str, Any]) -> None:
    """The grounded daily report of the run day goes to reports/<day>/ with the summary; the
    provider comes from the project (BANKLAKE_ASSISTANT_PROVIDER: bedrock when the stack names
    a model, else offline), never from a flag that could drift from the stack."""
    report = _report_branch()
    command = (
        '.venv/bin/banklake report --target athena --date "${BANKLAKE_DAY}" --out target/report'
    )
    assert command in report and "--provider" not in report
    upload = 'aws s3 cp target/report/ "s3://${BANKLAKE_LAKE_BUCKET}/reports/${BANKLAKE_DAY}/"'
    assert upload + " --recursive" in report
    # after the summary and the docs are uploaded: a failing report leaves them in place
    assert report.index("for f in") < report.index(command) < report.index(upload)
    assert "banklake report --target athena" in asl["States"]["Report"]["Comment"]


def test_the_report_state_uploads_nothing_that_holds_the_pii_salt() -> None:
    """The runner has BANKLAKE_PII_SALT (Secrets Manager). dbt writes it into compiled SQL
    (run_results.json, the docs' manifest) and partial_parse.msgpack: the report step, whose
    target/ is uploaded, drops it first and generates the docs without compiled SQL."""
    report = _report_branch()
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    commands = [i for i, line in enumerate(lines) if line.startswith((".venv/bin/", "aws "))]
    assert lines.index("unset BANKLAKE_PII_SALT") < commands[0]
    docs = next(line for line in lines if "dbt docs generate" in line)
    assert "--no-compile" in docs and "--static" in docs
    # --static needs a manifest, which --no-compile does not write: dbt parse first
    assert lines.index(".venv/bin/dbt parse --target athena") < lines.index(docs)
    build = BUILDSPEC.read_text().split("          build)", 1)[1].split(";;", 1)[0]
    assert "aws s3" not in build  # the build step's target/ (compiled with the salt) stays put


def test_the_online_state_step_loads_the_table_from_an_export_of_athena_s_marts(
    asl: dict[str, Any],
) -> None:
    """LoadOnlineState -> the runner's online-state branch: `export --target athena` into a
    scratch lake, then `state load` from that very lake into the table the project names
    (BANKLAKE_STATE, dynamodb://<the stack's OnlineStateTable>: test_infrastructure.py)."""
    import shlex

    from python_jobs.cli import build_parser

    state = asl["States"]["LoadOnlineState"]
    (step,) = [
        e["Value"]
        for e in state["Parameters"]["EnvironmentVariablesOverride"]
        if e["Name"] == "BANKLAKE_STEP"
    ]
    buildspec = BUILDSPEC.read_text()
    branch = buildspec[buildspec.index(f"          {step})") : buildspec.index("          report)")]
    commands = [
        line.strip().removeprefix(".venv/bin/banklake ")
        for line in branch.splitlines()
        if line.strip().startswith(".venv/bin/banklake ")
    ]
    parser = build_parser()
    export, load = (parser.parse_args(shlex.split(line)) for line in commands)
    assert (export.handler.__name__, export.target) == ("cmd_export", "athena")
    assert load.handler.__name__ == "cmd_state_load"
    assert load.lake == export.lake != "lake"  # a lake of its own, the one just exported
    assert load.state == "${BANKLAKE_STATE}" and not load.force
