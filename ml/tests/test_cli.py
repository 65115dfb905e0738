"""`banklake train`, `score` and `monitor` as a user meets them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from ml.jobs import demo_job, train_job
from ml.layout import MlLayout
from ml.sagemaker import SageMakerJob
from ml.train import TrainConfig
from python_jobs.cli import main
from python_jobs.tests.emf_spec import lake_records, values


def test_train_score_monitor_from_the_command_line(ml_lake: MlLayout, capsys) -> None:
    lake = str(ml_lake.lake.root)
    train = ["train", "--lake", lake, "--gap-days", "5", "--alert-budget", "20"]
    assert main([*train, "--label-horizon-days", "3", "--max-fit-rows", "500"]) == 0
    out = capsys.readouterr().out
    assert "XGBoost + forest (model)" in out and "logistic regression" in out and "rules" in out
    assert "is the new champion: there was no champion yet" in out
    assert "gap 5 d" in out and "test 2026-09-11..2026-09-17" in out
    assert (
        "test labels: the frauds reported by 2026-09-20 (3-9 days old); the 3 newest days "
        "(2026-09-18..2026-09-20) are left out of the test" in out
    )
    version = json.loads(ml_lake.champion_file.read_text())["version"]
    meta = json.loads((ml_lake.version_dir(version) / "metadata.json").read_text())
    assert meta["threshold"]["alert_budget_per_day"] == 20.0
    assert meta["data"]["labels_as_of"] == "2026-09-20"
    assert meta["booster"]["params"]["max_fit_rows"] == 500
    assert meta["data"]["rows"]["fit"] > meta["booster"]["fit_rows"] == 500
    card = (ml_lake.version_dir(version) / "model_card.md").read_text()
    assert "the 3 newest days (2026-09-18..2026-09-20) are left out of the test" in card

    assert main(["score", "--lake", lake]) == 0
    assert "scored 300 transactions of 2026-09-20" in capsys.readouterr().out
    assert main(["score", "--lake", lake, "--date", "2026-09-19", "--reasons", "all"]) == 0
    assert ml_lake.scores_file(date(2026, 9, 19)).exists()
    assert "forest-paths for every row" in capsys.readouterr().out
    capsys.readouterr()

    assert main(["monitor", "--lake", lake]) == 0
    out = capsys.readouterr().out
    assert out.startswith("monitoring 2026-09-20 (model ")
    assert (Path(lake) / "monitoring" / "2026-09-20.json").exists()

    # each job's figures (EMF, lake/metrics/<job>/): spec-checked, equal to what it reported
    trained = lake_records(Path(lake), "train")
    assert values(trained, "ModelPromoted") == [1]
    assert trained[0]["ModelVersion"] == version
    scored = lake_records(Path(lake), "score")
    assert values(scored, "ScoredRows")[0] == 300
    report = json.loads((Path(lake) / "monitoring" / "2026-09-20.json").read_text())
    monitored = lake_records(Path(lake), "monitor")
    assert values(monitored, "ScorePsi") == [pytest.approx(report["score_psi"])]
    # the score job's PSI of the same day is the monitor's (one function, ml/drift.py)
    assert values(scored, "ScorePsi")[0] == pytest.approx(report["score_psi"])
    assert values(monitored, "AlertRate") == [pytest.approx(100 * report["alert_rate"])]
    not_judged = set(report["warming_up"]) | set(report["config"]["psi_not_judged"])
    judged = {k: v for k, v in report["feature_psi"].items() if k not in not_judged}
    top = sorted(judged, key=lambda k: -judged[k])[:5]
    shown = {r["Feature"]: r["FeaturePsi"] for r in monitored if "FeaturePsi" in r}
    assert set(shown) == set(top) and all(shown[k] == pytest.approx(judged[k]) for k in top)


def test_train_score_monitor_json_for_a_scheduler(ml_lake: MlLayout, capsys) -> None:
    """--json: one document on stdout with the keys of docs/operations.md; the human text
    goes to stderr."""
    lake = str(ml_lake.lake.root)
    train = ["train", "--lake", lake, "--gap-days", "5", "--alert-budget", "20"]
    assert main([*train, "--label-horizon-days", "3", "--max-fit-rows", "500", "--json"]) == 0
    captured = capsys.readouterr()
    assert "XGBoost + forest (model)" in captured.err
    trained = json.loads(captured.out)
    assert list(trained) == [
        "command",
        "status",
        "backend",
        "version",
        "model_dir",
        "promoted",
        "champion",
        "previous_champion",
        "reason",
        "challenger_average_precision",
        "champion_average_precision",
        "threshold",
        "alert_budget_per_day",
        "windows",
        "labels_as_of",
        "metrics",
    ]
    version = json.loads(ml_lake.champion_file.read_text())["version"]
    assert (trained["command"], trained["status"], trained["backend"]) == (
        "train",
        "trained",
        "local",
    )
    assert trained["version"] == trained["champion"] == version and trained["promoted"]
    assert trained["previous_champion"] is None and trained["alert_budget_per_day"] == 20.0
    assert trained["windows"]["test_start"] == "2026-09-11"
    assert trained["labels_as_of"] == "2026-09-20"
    assert set(trained["metrics"]) == {
        "model",
        "xgboost",
        "random_forest",
        "logistic_regression",
        "rules",
    }
    assert 0 < trained["metrics"]["model"]["average_precision"] <= 1

    assert main(["score", "--lake", lake, "--json"]) == 0
    captured = capsys.readouterr()
    scored = json.loads(captured.out)
    assert scored == {
        "command": "score",
        "target": "duckdb",
        "day": "2026-09-20",
        "scored": True,
        "rows": 300,
        "alerts": scored["alerts"],
        "model_version": version,
        "threshold": trained["threshold"],
        "scores_file": str(ml_lake.scores_file(date(2026, 9, 20))),
        "explanation": scored["explanation"],
        "reasons": "alerts",
        "reasons_method": scored["reasons_method"],
    }
    assert "for the others" in scored["reasons_method"]  # exact for the alerts only
    assert "scored 300 transactions" in captured.err

    assert main(["monitor", "--lake", lake, "--json"]) == 0
    captured = capsys.readouterr()
    monitored = json.loads(captured.out)
    assert list(monitored) == [
        "command",
        "day",
        "model_version",
        "verdict",
        "findings",
        "rows",
        "alerts",
        "alert_rate",
        "expected_alert_rate",
        "score_psi",
        "feature_psi",
        "warming_up",
        "realized_mature",
        "report_file",
    ]
    assert (monitored["command"], monitored["day"]) == ("monitor", "2026-09-20")
    assert monitored["rows"] == 300 and monitored["alerts"] == scored["alerts"]
    assert monitored["report_file"] == str(ml_lake.monitoring_file(date(2026, 9, 20)))
    assert captured.err.startswith("monitoring 2026-09-20 (model ")


def test_errors_say_what_to_do(ml_lake: MlLayout, tmp_path: Path, capsys) -> None:
    lake = str(ml_lake.lake.root)
    assert main(["score", "--lake", lake]) == 1
    assert "run `banklake train` first" in capsys.readouterr().err
    assert (
        main(["train", "--lake", lake, "--test-start", "2026-09-10", "--train-end", "2026-09-09"])
        == 1
    )
    assert "overlaps training or the 7-day gap" in capsys.readouterr().err
    assert main(["train", "--lake", str(tmp_path / "nowhere")]) == 1
    assert "banklake build" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--lake", lake, "--max-fit-rows", "0"])
    assert "--max-fit-rows: must be a positive number, got 0" in capsys.readouterr().err
    assert main(["train", "--lake", lake, "--max-fit-rows", "3"]) == 1
    assert "positives do not leave room for any negative" in capsys.readouterr().err


def test_sagemaker_backend_without_settings_refuses_before_reading_data(
    ml_lake: MlLayout, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ROLE_ARN", "BUCKET", "IMAGE_URI"):
        monkeypatch.delenv(f"BANKLAKE_SAGEMAKER_{name}", raising=False)
    code = main(["train", "--lake", str(ml_lake.lake.root), "--backend", "sagemaker"])
    assert code == 1
    err = capsys.readouterr().err
    assert "BANKLAKE_SAGEMAKER_ROLE_ARN" in err and "--backend local" in err


def test_demo_job_trains_then_scores_the_last_day(ml_lake: MlLayout) -> None:
    lines: list[str] = []
    outcome, scored = demo_job(ml_lake.lake, say=lines.append)
    assert outcome.decision.promote and scored.model_version == outcome.version
    assert scored.day == date(2026, 9, 20) and scored.path.exists()
    text = "\n".join(lines)
    assert text.index("XGBoost + forest (model)") < text.index("scored 300 transactions")


def test_sagemaker_backend_starts_a_job_with_the_training_split(
    ml_lake: MlLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.tests.test_sagemaker import CREDENTIALS, ENV, REGION

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BANKLAKE_SAGEMAKER_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION, **CREDENTIALS)
    s3 = boto3.client("s3", region_name=REGION, **CREDENTIALS)
    uploads: list[str] = []
    monkeypatch.setattr(s3, "put_object", lambda **kw: uploads.append(kw["Key"]))
    monkeypatch.setattr("ml.sagemaker.clients", lambda config: (sagemaker, s3))
    lines: list[str] = []
    with Stubber(sagemaker) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:x"})
        job = train_job(ml_lake.lake, backend="sagemaker", wait=False, say=lines.append)
    assert isinstance(job, SageMakerJob)
    assert job.arn == "arn:aws:sagemaker:x"
    assert [key.split("/", 3)[-1] for key in uploads] == [
        "data/train/part-0.parquet",
        "data/validation/part-0.parquet",
        "source/sourcedir.tar.gz",
    ]
    assert "started SageMaker training job banklake-fraud-xgb-" in lines[-1]
    assert f"`banklake train --collect {job.name}`" in lines[-1]
    assert not ml_lake.models.exists()  # nothing trained or promoted locally
    with pytest.raises(ValueError, match="folds"):
        train_job(ml_lake.lake, config=TrainConfig(folds=2), backend="sagemaker")


def test_sagemaker_start_then_collect_from_the_command_line(
    ml_lake: MlLayout, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --backend sagemaker --no-wait` starts the job; SageMaker (played locally: the
    uploaded entry point on the uploaded rows) writes model.tar.gz; `train --collect JOB`
    registers it through the champion gate; `score` then uses it."""
    from ml.tests.sagemaker_fakes import described, play_sagemaker
    from ml.tests.test_sagemaker import CREDENTIALS, ENV, REGION
    from python_jobs.tests.moto_s3 import moto_server, new_bucket, s3_client

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BANKLAKE_SAGEMAKER_REGION", REGION)
    lake = str(ml_lake.lake.root)
    with moto_server() as endpoint:
        s3 = s3_client(endpoint)  # moto's state is per process: a bucket of its own
        monkeypatch.setenv("BANKLAKE_SAGEMAKER_BUCKET", new_bucket(s3, versioned=False))
        sagemaker = boto3.client("sagemaker", region_name=REGION, **CREDENTIALS)
        monkeypatch.setattr("ml.sagemaker.clients", lambda config: (sagemaker, s3))
        requests: list[dict] = []
        create = sagemaker.create_training_job

        def capture(**request: object) -> dict:
            requests.append(request)
            return create(**request)

        monkeypatch.setattr(sagemaker, "create_training_job", capture)
        with Stubber(sagemaker) as stub:
            stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:x"})
            assert main(["train", "--lake", lake, "--backend", "sagemaker", "--no-wait"]) == 0
            name = requests[0]["TrainingJobName"]
            assert f"banklake train --collect {name}" in capsys.readouterr().out
            assert not ml_lake.models.exists()

            stub.add_response(
                "describe_training_job", described(requests[0], "InProgress", "Training")
            )
            assert main(["train", "--lake", lake, "--collect", name, "--no-wait"]) == 1
            assert "is InProgress (Training), not finished" in capsys.readouterr().err

            play_sagemaker(s3, requests[0], tmp_path / "sagemaker")
            stub.add_response(
                "describe_training_job", described(requests[0], "Completed", "Completed")
            )
            assert main(["train", "--lake", lake, "--collect", name, "--alert-budget", "20"]) == 0
            stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert (
        "XGBoost + forest (model)" in out
        and "is the new champion: there was no champion yet" in out
    )
    version = json.loads(ml_lake.champion_file.read_text())["version"]
    meta = json.loads((ml_lake.version_dir(version) / "metadata.json").read_text())
    assert meta["training"]["backend"] == "sagemaker" and meta["training"]["job_name"] == name
    assert meta["threshold"]["alert_budget_per_day"] == 20.0
    assert main(["score", "--lake", lake]) == 0
    assert f"with model {version}" in capsys.readouterr().out
