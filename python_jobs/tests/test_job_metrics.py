"""The jobs' figures as CloudWatch EMF (python_jobs/observability/, ADR 0024): every line is
EMF by the specification's rules and carries the catalog's dimensions, the local files take
concurrent appends whole, the log sink is chosen as documented, no PII reaches a metric, and
every operator alarm in infrastructure/banklake.yaml watches a metric a job really emits.

Jobs that need a dbt build or a trained model are checked where those lakes are already made:
test_dbt_pipeline.py (generate, validate, build, summary), ml/tests/test_cli.py (train, score,
monitor), test_serve_api.py (serve), test_s3_trigger.py (the Lambda's validation)."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ml.score import ScoreResult
from python_jobs.generate import GeneratorConfig, generate
from python_jobs.importer import import_file, load_mapping
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import CUSTOMERS, TRANSACTIONS
from python_jobs.lake.validate import validate_lake
from python_jobs.observability import dbt_results, emf
from python_jobs.observability.catalog import CATALOG, DIMENSIONS, JOBS, UNITS
from python_jobs.observability.emf import Figure, emit, records
from python_jobs.observability.jobs import (
    emit_consumer,
    emit_score,
    emit_serve,
    emit_summary,
    latency_percentiles,
)
from python_jobs.observability.reading import latest_per_job, read_points
from python_jobs.summary import LakeSummary
from python_jobs.tests.cfn_yaml import load_template
from python_jobs.tests.emf_spec import (
    SPEC_UNITS,
    documented,
    lake_records,
    problems,
    read_lines,
    values,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infrastructure" / "banklake.yaml"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def local_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local default, whatever the machine running the tests says."""
    for marker in (*emf.AWS_RUNTIME_MARKERS, emf.SINK_ENV, emf.ENVIRONMENT_ENV):
        monkeypatch.delenv(marker, raising=False)


def a_summary() -> LakeSummary:
    summary = LakeSummary(
        rejected=[("transactions", "missing_amount", 30), ("transactions", "bad_ts", 20)],
        curated={"fct_transactions": 940, "dim_customers": 100},
        quarantined_files=2,
    )
    summary.add_triaged(
        "transactions",
        [
            ("2026-12-04", "accepted", 500),
            ("2026-12-05", "accepted", 440),
            ("2026-12-04", "duplicate", 10),
            ("2026-12-04", "rejected", 10),
            ("2026-12-05", "rejected", 40),
        ],
    )
    summary.add_triaged("customers", [("2026-12-05", "accepted", 100)])
    return summary


def a_score(path: Path) -> ScoreResult:
    return ScoreResult(
        date(2026, 12, 5),
        path,
        rows=2_000,
        alerts=50,
        model_version="v20261201",
        threshold=0.8,
        score_psi=0.31,
        expected_alert_rate=0.02,
    )


# --- the specification and the catalog ---------------------------------------------------------


def test_summary_figures_are_emf_with_the_documented_dimensions(tmp_path: Path) -> None:
    emit_summary(tmp_path, a_summary(), target="duckdb")
    lines = lake_records(tmp_path, "summary")  # spec and catalog checked for every line
    assert values(lines, "RejectionRate") == [pytest.approx(100 * 50 / 1100)]
    # the newest day: 440 + 40 transactions and 100 customers, 40 rejected
    assert values(lines, "NewestDayRejectionRate") == [pytest.approx(100 * 40 / 580)]
    assert {r["Day"] for r in lines} == {"2026-12-05"}
    assert values(lines, "LayerRows", Layer="raw") == [1100]
    assert values(lines, "LayerRows", Layer="processed") == [1040]
    assert values(lines, "LayerRows", Layer="curated") == [1040]
    assert values(lines, "RejectedRows", Feed="transactions", Reason="missing_amount") == [30]
    assert values(lines, "FeedRows", Feed="transactions", Disposition="duplicate") == [10]
    assert values(lines, "LakeQuarantinedFiles") == [2]
    assert {r["Environment"] for r in lines} == {"local"}
    # one record per dimension set: RejectedRows of each reason apart
    assert len([r for r in lines if "RejectedRows" in r]) == 2


def test_the_spec_checks_catch_what_they_are_for() -> None:
    """The checker itself: each rule fails on a record that breaks it."""
    good = records("score", [Figure("ScoredRows", 5)], now=NOW)[0]
    assert problems(good) == [] and documented(good) == []
    no_root_dimension = {k: v for k, v in good.items() if k != "Job"}
    assert problems(no_root_dimension)
    text_value = {**good, "ScoredRows": "5"}
    assert problems(text_value)
    bad_unit = json.loads(json.dumps(good))
    bad_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Rows"
    assert problems(bad_unit)
    seconds = {**good, "_aws": {**good["_aws"], "Timestamp": "2026-12-06"}}
    assert problems(seconds)


def test_the_catalog_uses_cloudwatch_units_and_documented_dimensions() -> None:
    assert UNITS == SPEC_UNITS
    for metric in CATALOG.values():
        assert metric.unit in SPEC_UNITS, metric.name
        assert set(metric.jobs) <= set(JOBS), metric.name
        assert set(metric.dimension_set) <= set(DIMENSIONS), metric.name
        assert len(metric.dimension_set) <= 30
    assert {job for metric in CATALOG.values() for job in metric.jobs} == set(JOBS)


def test_the_writer_refuses_what_the_catalog_does_not_declare() -> None:
    with pytest.raises(ValueError, match="not in the metrics catalog"):
        records("score", [Figure("RowsScored", 1)])
    with pytest.raises(ValueError, match="not declared for job"):
        records("generate", [Figure("ScoredRows", 1)])
    with pytest.raises(ValueError, match="dimensions"):
        records("summary", [Figure("LayerRows", 1)])
    with pytest.raises(ValueError, match="finite number"):
        records("score", [Figure("ScorePsi", float("nan"))])
    with pytest.raises(ValueError, match="finite number"):
        records("train", [Figure("ModelPromoted", True)])
    with pytest.raises(ValueError, match="unknown job"):
        records("backfill", [Figure("ScoredRows", 1)])
    # a dimension value is a short code: a name, a CPF, an e-mail or a phone never passes
    for value in ("Maria da Silva", "529.982.247-25", "maria@example.com", "+5511987654321"):
        with pytest.raises(ValueError, match="short code"):
            records("import", [Figure("ImportFlaggedRows", 1, {"Reason": value})])
    assert records("score", [Figure("ScorePsi", None)]) == []  # not measurable: not emitted


def test_more_than_a_record_s_limit_of_metrics_is_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emf, "MAX_METRICS_PER_RECORD", 2)
    emit_score(tmp_path, a_score(tmp_path / "scores.parquet"))
    lines = lake_records(tmp_path, "score")
    assert len(lines) == 3
    assert all(len(r["_aws"]["CloudWatchMetrics"][0]["Metrics"]) <= 2 for r in lines)
    assert values(lines, "AlertRate") == [pytest.approx(2.5)]
    assert values(lines, "AlertRateRatio") == [pytest.approx(1.25)]
    assert values(lines, "ScorePsi") == [pytest.approx(0.31)]


# --- where the records go ----------------------------------------------------------------------


def test_the_log_sink_on_aws_and_the_lake_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emit_consumer(10, 9, 1, 2, 1500.0, lake=tmp_path)
    assert capsys.readouterr().err == ""
    assert len(lake_records(tmp_path, "consumer")) == 1

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "banklake-stream-consumer")
    monkeypatch.setenv(emf.ENVIRONMENT_ENV, "banklake")
    emit_consumer(10, 9, 1, 2, 1500.0, lake=tmp_path)
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is the command's own
    (line,) = captured.err.splitlines()
    record = json.loads(line)
    assert problems(record) == [] and documented(record) == []
    assert (record["Environment"], record["Job"], record["StreamLag"]) == (
        "banklake",
        "consumer",
        1500.0,
    )
    assert (record["StreamRecords"], record["StreamRefused"], record["Alerts"]) == (10, 1, 2)
    assert len(lake_records(tmp_path, "consumer")) == 1  # in Lambda: the log only

    monkeypatch.setenv(emf.SINK_ENV, "both")
    emit_consumer(1, 1, 0, 0, None, lake=tmp_path)
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert len(lake_records(tmp_path, "consumer")) == 2
    monkeypatch.setenv(emf.SINK_ENV, "off")
    emit_consumer(1, 1, 0, 0, None, lake=tmp_path)
    assert capsys.readouterr().err == "" and len(lake_records(tmp_path, "consumer")) == 2
    monkeypatch.setenv(emf.SINK_ENV, "cloudwatch")
    with pytest.raises(ValueError, match="BANKLAKE_METRICS"):
        emit_consumer(1, 1, 0, 0, None, lake=tmp_path)


def _append_many(root: str, worker: int, count: int) -> None:
    for i in range(count):
        emit("consumer", [Figure("StreamRecords", worker * 1000 + i)], lake=Path(root), now=NOW)


def test_concurrent_appends_from_processes_stay_whole_lines(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w, 200)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    (path,) = (tmp_path / "metrics" / "consumer").glob("*.jsonl")
    lines = read_lines(path)
    assert sorted(r["StreamRecords"] for r in lines) == sorted(
        w * 1000 + i for w in range(4) for i in range(200)
    )


def test_the_reader_skips_a_line_still_being_written(tmp_path: Path) -> None:
    emit_summary(
        tmp_path,
        a_summary(),
        target="duckdb",
    )
    (path,) = (tmp_path / "metrics" / "summary").glob("*.jsonl")
    whole = len(read_lines(path))
    with path.open("a") as handle:
        handle.write('{"_aws": {"Timestamp": 17')  # a writer mid-line
    found = read_points(tmp_path)
    assert found.skipped_lines == 1
    assert len({(p.metric, tuple(p.dimensions.items())) for p in found.points}) >= whole
    latest = latest_per_job(found.points)
    assert {p.job for p in latest} == {"summary"}
    assert [p.value for p in latest if p.label() == "LayerRows (Layer=raw)"] == [1100]


def test_latency_percentiles_are_latencies_requests_had() -> None:
    assert latency_percentiles([]) is None
    percentiles = latency_percentiles([i / 1000 for i in range(100, 0, -1)])  # 1..100 ms
    assert percentiles == pytest.approx((50.0, 99.0))
    assert latency_percentiles([0.004]) == pytest.approx((4.0, 4.0))


def test_a_build_dbt_ran_itself_emits_from_its_run_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The AWS Build step (dbt in CodeBuild): the tallies of dbt's run_results.json."""
    monkeypatch.setenv("CODEBUILD_BUILD_ID", "banklake-runner:1")
    results = [
        ("model.banklake.stg_transactions", "success"),
        ("model.banklake.fct_transactions", "error"),
        ("test.banklake.not_null_x.1", "pass"),
        ("test.banklake.unique_y.2", "fail"),
        ("test.banklake.freshness_z.3", "warn"),
        ("unit_test.banklake.fct_transactions.u", "pass"),
    ]
    path = tmp_path / "run_results.json"
    path.write_text(
        json.dumps(
            {
                "metadata": {"generated_at": "2026-12-06T03:10:00Z", "invocation_id": "i"},
                "elapsed_time": 12.5,
                "results": [{"unique_id": u, "status": s} for u, s in results],
            }
        )
    )
    assert dbt_results.main([str(path)]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert problems(record) == [] and documented(record) == []
    assert (record["DbtTestsRun"], record["DbtTestFailures"], record["DbtTestWarnings"]) == (
        4,
        1,
        1,
    )
    assert record["DbtNodeErrors"] == 1 and record["Job"] == "build"
    assert dbt_results.main([str(tmp_path / "missing.json")]) == 1


# --- jobs on small lakes -----------------------------------------------------------------------


def test_generate_import_and_validate_emit_without_pii(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    result = generate(
        lake, GeneratorConfig(seed=3, start_date=date(2026, 11, 1), days=2, customers=80)
    )
    bad = lake.partition_dir(TRANSACTIONS, date(2026, 11, 2)) / "transactions-20261102-9999.parquet"
    bad.write_bytes(b"not parquet")
    report = validate_lake(lake)
    imported = import_file(
        lake,
        REPO / "examples" / "transactions.example.csv",
        load_mapping(REPO / "examples" / "mapping.example.yml"),
    )

    generated = lake_records(lake.root, "generate")
    assert values(generated, "GeneratedRows", Feed="transactions") == [result.rows["transactions"]]
    assert values(generated, "GeneratedFraudTransactions") == [result.fraud_transactions]
    validated = lake_records(lake.root, "validate")
    assert values(validated, "QuarantinedFiles") == [len(report.quarantined)] == [1]
    assert values(validated, "ValidatedFiles") == [report.valid]
    imports = lake_records(lake.root, "import")
    assert sum(values(imports, "ImportedRows")) == sum(f.rows for f in imported.files) > 0
    assert sum(values(imports, "ImportFlaggedRows")) == sum(imported.flags.values()) > 0

    with duckdb.connect() as con:
        people = con.execute(
            "select distinct full_name, cpf from read_json(?, format = 'newline_delimited')",
            [str(lake.raw / CUSTOMERS.name / "*" / "*" / "*" / "*.jsonl.gz")],
        ).fetchall()
    text = "\n".join(p.read_text() for p in (lake.root / "metrics").rglob("*.jsonl"))
    names = {name for name, _ in people if name}
    cpfs = {cpf for _, cpf in people if cpf} | {
        c.replace(".", "").replace("-", "") for _, c in people if c
    }
    assert names and cpfs
    assert not [n for n in names if n in text] and not [c for c in cpfs if c in text]


# --- the alarms against the emitters -----------------------------------------------------------


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters[value["Ref"]]["Default"]
    return value


def _alarm_metrics(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """An alarm's watched metrics: its own, or its metric-math inputs."""
    if "MetricName" in properties:
        return [properties]
    return [q["MetricStat"]["Metric"] for q in properties.get("Metrics", []) if "MetricStat" in q]


def test_every_operator_alarm_watches_a_metric_a_job_emits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = load_template(TEMPLATE)
    parameters = template["Parameters"]
    environment = parameters["NamePrefix"]["Default"]
    # what the jobs emit on AWS: Environment is the stack's NamePrefix (set below)
    monkeypatch.setenv(emf.ENVIRONMENT_ENV, environment)
    emitted = [
        *emit_summary(tmp_path, a_summary(), target="athena"),
        *emit_score(tmp_path, a_score(tmp_path / "s.parquet"), target="athena"),
        *emit_serve(
            tmp_path,
            interval_seconds=60.0,
            requests=3,
            latencies_seconds=[0.002, 0.003, 0.060],
            decisions={"approve": 2, "review": 1},
            refusals={"missing_amount": 1},
            alerts=1,
            alert_failures=0,
            flush_lag_seconds=1.5,
            flush_pending=3,
        ),
        *emit_consumer(5, 5, 0, 1, 800.0, lake=tmp_path),
    ]
    alarms = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and any(m.get("Namespace") == "banklake" for m in _alarm_metrics(resource["Properties"]))
    }
    watched = set()
    for name, properties in alarms.items():
        for metric in _alarm_metrics(properties):
            dimensions = {d["Name"]: _resolve(d["Value"], parameters) for d in metric["Dimensions"]}
            entry = CATALOG[metric["MetricName"]]
            assert set(dimensions) == set(entry.dimension_set), name
            assert dimensions["Job"] in entry.jobs, name
            matching = [
                r
                for r in emitted
                for d in r["_aws"]["CloudWatchMetrics"]
                if d["Namespace"] == metric["Namespace"]
                and metric["MetricName"] in {m["Name"] for m in d["Metrics"]}
                and set(d["Dimensions"][0]) == set(dimensions)
                and all(r[k] == v for k, v in dimensions.items())
            ]
            assert matching, f"{name}: no job emits {metric['MetricName']} {dimensions}"
            watched.add(metric["MetricName"])
        topic = [{"Ref": "AlertTopic"}]
        assert properties["AlarmActions"] == topic and properties["OKActions"] == topic, name
        assert properties["TreatMissingData"] in {"notBreaching", "breaching", "missing"}, name
    assert {"NewestDayRejectionRate", "ScorePsi", "AlertRateRatio", "ApiLatencyP99"} <= watched
    # the jobs on AWS set the Environment the alarms name
    runner = template["Resources"]["RunnerProject"]["Properties"]["Environment"]
    assert {"Name": emf.ENVIRONMENT_ENV, "Value": {"Ref": "NamePrefix"}} in runner[
        "EnvironmentVariables"
    ]
    for function in ("TriggerFunction", "SweepFunction"):
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables[emf.ENVIRONMENT_ENV] == {"Ref": "NamePrefix"}


def test_the_operations_doc_lists_the_catalog() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    for metric in CATALOG.values():
        dims = ", ".join(metric.dimensions) or "–"
        row = f"| `{metric.name}` | {metric.unit} | {', '.join(metric.jobs)} | {dims} |"
        assert row in text, metric.name
