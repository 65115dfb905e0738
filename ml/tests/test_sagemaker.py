"""The SageMaker backend, without AWS: the request shape checked by botocore's Stubber
against the real service model, the uploads against moto's S3 server on 127.0.0.1, the
container entry point run locally (from the uploaded source archive, in an interpreter
without python_jobs or duckdb), and its model.tar.gz collected back through the same
checks and champion gate as a local model."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from ml import sagemaker_entry
from ml.artifacts import ModelIntegrityError, load_directory, load_version
from ml.booster import BoosterParams, fit_booster, predict
from ml.dataset import feature_matrix
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.protocol import Split, Windows, resolve_windows, split
from ml.sagemaker import (
    EXPORT_COLUMNS,
    ArtifactError,
    Backoff,
    SageMakerConfig,
    SageMakerConfigError,
    TrainingJobError,
    collect_training_job,
    extract_model_archive,
    fetch_verified_model,
    source_archive,
    start_training_job,
    wait_for_training_job,
)
from ml.tests.sagemaker_fakes import described, pack_model_dir, play_sagemaker
from ml.train import TrainConfig, training_keys_sha256
from python_jobs.tests.moto_s3 import CREDENTIALS

REGION = "sa-east-1"
ENV = {
    "BANKLAKE_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/banklake-sagemaker",
    "BANKLAKE_SAGEMAKER_BUCKET": "banklake-ml-test",
    "BANKLAKE_SAGEMAKER_IMAGE_URI": (
        "123456789012.dkr.ecr.sa-east-1.amazonaws.com/banklake-training:py311"
    ),
}
PARAMS = BoosterParams(num_boost_round=50, early_stopping_rounds=10)
NOW = datetime(2026, 10, 1, 6, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "s3", endpoint_url=f"http://{host}:{port}", region_name=REGION, **CREDENTIALS
        )
        client.create_bucket(
            Bucket=ENV["BANKLAKE_SAGEMAKER_BUCKET"],
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
        yield client
    finally:
        server.stop()


@pytest.fixture
def data(features_frame: pd.DataFrame) -> Split:
    first, last = (
        features_frame["event_date"].min().date(),
        features_frame["event_date"].max().date(),
    )
    return split(features_frame, resolve_windows(first, last))


def test_config_comes_from_the_environment_and_says_what_is_missing() -> None:
    config = SageMakerConfig.from_env(ENV | {"AWS_DEFAULT_REGION": "us-east-1"})
    assert config.region == "us-east-1" and config.instance_type == "ml.m5.xlarge"
    tuned = SageMakerConfig.from_env(ENV | {"BANKLAKE_SAGEMAKER_INSTANCE_TYPE": "ml.c5.2xlarge"})
    assert tuned.instance_type == "ml.c5.2xlarge" and tuned.region == REGION
    with pytest.raises(SageMakerConfigError) as error:
        SageMakerConfig.from_env({"BANKLAKE_SAGEMAKER_BUCKET": "b-1"})
    assert "BANKLAKE_SAGEMAKER_ROLE_ARN" in str(error.value)
    assert "BANKLAKE_SAGEMAKER_IMAGE_URI" in str(error.value)
    assert "BANKLAKE_SAGEMAKER_BUCKET," not in str(error.value)
    with pytest.raises(SageMakerConfigError, match="not an IAM role ARN"):
        SageMakerConfig.from_env(ENV | {"BANKLAKE_SAGEMAKER_ROLE_ARN": "banklake-role"})
    with pytest.raises(SageMakerConfigError, match="VOLUME_GB"):
        SageMakerConfig.from_env(ENV | {"BANKLAKE_SAGEMAKER_VOLUME_GB": "big"})


def test_start_training_job_uploads_the_split_and_sends_the_exact_request(
    s3: Any, data: Split
) -> None:
    config = SageMakerConfig.from_env(ENV)
    sagemaker = boto3.client("sagemaker", region_name=REGION, **CREDENTIALS)
    name = "banklake-fraud-xgb-20261001-063000"
    prefix = f"s3://banklake-ml-test/models/fraud_xgb/{name}"
    expected = {
        "TrainingJobName": name,
        "RoleArn": ENV["BANKLAKE_SAGEMAKER_ROLE_ARN"],
        "AlgorithmSpecification": {
            "TrainingImage": ENV["BANKLAKE_SAGEMAKER_IMAGE_URI"],
            "TrainingInputMode": "File",
        },
        "HyperParameters": {
            "sagemaker_program": '"ml/sagemaker_entry.py"',
            "sagemaker_submit_directory": f'"{prefix}/source/sourcedir.tar.gz"',
            "sagemaker_region": f'"{REGION}"',
            "booster_params": json.dumps(PARAMS.to_dict(), sort_keys=True),
            "windows": json.dumps(data.windows.to_dict(), sort_keys=True),
        },
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{prefix}/data/{channel}/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-parquet",
                "InputMode": "File",
            }
            for channel in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"{prefix}/output"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [{"Key": "project", "Value": "banklake"}, {"Key": "model", "Value": "fraud_xgb"}],
    }
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}"
    with Stubber(sagemaker) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": arn}, expected)
        job = start_training_job(data, PARAMS, config, sagemaker=sagemaker, s3=s3, now=NOW)
        stub.assert_no_pending_responses()
    assert job.name == name and job.arn == arn
    assert job.model_uri == f"{prefix}/output/{name}/output/model.tar.gz"

    key = f"models/fraud_xgb/{name}"
    listed = s3.list_objects_v2(Bucket="banklake-ml-test", Prefix=key)["Contents"]
    assert sorted(o["Key"].removeprefix(key + "/") for o in listed) == [
        "data/train/part-0.parquet",
        "data/validation/part-0.parquet",
        "source/sourcedir.tar.gz",
    ]
    body = s3.get_object(Bucket="banklake-ml-test", Key=f"{key}/data/train/part-0.parquet")
    train = pd.read_parquet(io.BytesIO(body["Body"].read()))
    assert list(train.columns) == list(EXPORT_COLUMNS)
    assert len(train) == len(data.fit)
    # the labels are the ones known at the cut-off, not today's
    assert train["label"].tolist() == data.fit["label"].tolist()
    assert set(train["transaction_id"]).isdisjoint(data.test["transaction_id"])


def test_source_archive_holds_the_package_and_is_reproducible() -> None:
    archive = source_archive()
    assert archive == source_archive()
    # nothing in it depends on when it was built: the gzip header's MTIME (bytes 4-7) is zero
    # and every tar header has a fixed mtime and owner
    assert archive[:2] == b"\x1f\x8b" and archive[4:8] == b"\x00\x00\x00\x00"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [*sorted(m.name for m in members[:-1]), "requirements.txt"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (0, 0, 0, "root", "root", 0o644)
    }
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert "ml/sagemaker_entry.py" in names and "ml/booster.py" in names
    assert "requirements.txt" in names
    assert not any("tests" in n for n in names)


def test_the_entry_point_trains_the_same_model_as_a_local_run(tmp_path: Path, data: Split) -> None:
    channels = {}
    for channel, frame in (("train", data.fit), ("validation", data.validation)):
        folder = tmp_path / "input" / channel
        folder.mkdir(parents=True)
        frame.loc[:, list(EXPORT_COLUMNS)].to_parquet(folder / "part-0.parquet")
        channels[channel] = folder
    env = {
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        # as the training toolkit exports it: each value decoded from its JSON string
        "SM_HPS": json.dumps(
            {"booster_params": PARAMS.to_dict(), "windows": data.windows.to_dict()}
        ),
    }
    model_path = sagemaker_entry.main(env)
    # the model folder format of local training: booster JSON + metadata with its checksum
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "metadata.json",
        "model.json",
    ]
    loaded = load_directory(tmp_path / "model")  # checksum and feature list verified
    summary = loaded.metadata["booster"]
    assert loaded.metadata["features"] == list(FEATURES)
    assert loaded.metadata["windows"]["cutoff"] == data.windows.cutoff.isoformat()
    assert summary["params"] == json.loads(json.dumps(PARAMS.to_dict()))
    assert loaded.metadata["data"]["training_keys_sha256"] == training_keys_sha256(data.training)
    assert loaded.metadata["training"] == {"backend": "sagemaker", "job_name": None}

    local = fit_booster(
        feature_matrix(data.fit),
        data.fit["label"].to_numpy(),
        feature_matrix(data.validation),
        data.validation["label"].to_numpy(),
        PARAMS,
    )
    import xgboost as xgb

    remote = xgb.Booster()
    remote.load_model(str(model_path))
    x = feature_matrix(data.test)
    assert summary["best_iteration"] == local.best_iteration
    assert np.array_equal(predict(remote, x), predict(local.booster, x))


# --- completion: wait for the job, fetch its model, register it ------------------------------

BUCKET = ENV["BANKLAKE_SAGEMAKER_BUCKET"]


def _client() -> Any:
    return boto3.client("sagemaker", region_name=REGION, **CREDENTIALS)


@pytest.fixture(scope="module")
def job(
    s3: Any, features_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A job started for the default windows of the test lake's features and really
    trained: the uploaded entry point ran on the uploaded rows and its model.tar.gz is in
    moto's S3. Returns {request, uri, tarball}."""
    first, last = (
        features_frame["event_date"].min().date(),
        features_frame["event_date"].max().date(),
    )
    data = split(features_frame, resolve_windows(first, last))
    sagemaker = _client()
    requests: list[dict[str, Any]] = []
    create = sagemaker.create_training_job

    def capture(**request: Any) -> dict[str, Any]:
        requests.append(request)
        return create(**request)

    with Stubber(sagemaker) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:x"})
        sagemaker.create_training_job = capture
        config = SageMakerConfig.from_env(ENV)
        start_training_job(data, PARAMS, config, sagemaker=sagemaker, s3=s3, now=NOW)
    request = requests[0]
    uri = play_sagemaker(s3, request, tmp_path_factory.mktemp("sagemaker"))
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    tarball = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return {"request": request, "uri": uri, "tarball": tarball}


def test_the_entry_point_imports_without_numba() -> None:
    """The container installs CONTAINER_REQUIREMENTS, not numba: real-time scoring's compiled
    trees (ml/compiled_trees.py) are imported only where a few rows are scored."""
    code = "import sys; sys.modules['numba'] = None; import ml.sagemaker_entry"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_waiting_backs_off_until_the_job_completes(job: dict[str, Any]) -> None:
    request, sagemaker = job["request"], _client()
    name = request["TrainingJobName"]
    sleeps: list[float] = []
    lines: list[str] = []
    with Stubber(sagemaker) as stub:
        for status, secondary in (
            ("InProgress", "Starting"),
            ("InProgress", "Training"),
            ("InProgress", "Training"),
            ("InProgress", "Uploading"),
            ("Completed", "Completed"),
        ):
            stub.add_response(
                "describe_training_job",
                described(request, status, secondary),
                {"TrainingJobName": name},
            )
        done = wait_for_training_job(
            sagemaker,
            name,
            backoff=Backoff(first_seconds=10, factor=2, max_seconds=30),
            sleep=sleeps.append,
            say=lines.append,
        )
        stub.assert_no_pending_responses()
    assert done["TrainingJobStatus"] == "Completed"
    assert sleeps == [10, 20, 30, 30]  # backoff, capped
    assert lines == [  # each change once
        f"training job {name}: InProgress (Starting)",
        f"training job {name}: InProgress (Training)",
        f"training job {name}: InProgress (Uploading)",
        f"training job {name}: Completed (Completed)",
    ]


def test_a_failed_or_stopped_job_says_why_and_a_running_one_how_to_collect(
    job: dict[str, Any],
) -> None:
    request, sagemaker = job["request"], _client()
    name = request["TrainingJobName"]
    reason = "AlgorithmError: ValueError: no fraud label is known at the cut-off in the fit rows"
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_training_job", described(request, "InProgress", "Training"))
        stub.add_response(
            "describe_training_job", described(request, "Failed", "Failed", FailureReason=reason)
        )
        with pytest.raises(TrainingJobError, match=f"{name} failed: AlgorithmError: ValueError"):
            wait_for_training_job(sagemaker, name, sleep=lambda _: None)
        stub.add_response(
            "describe_training_job", described(request, "Stopped", "MaxRuntimeExceeded")
        )
        with pytest.raises(TrainingJobError, match=r"stopped \(MaxRuntimeExceeded\)"):
            wait_for_training_job(sagemaker, name, sleep=lambda _: None)
        stub.add_response("describe_training_job", described(request, "InProgress", "Training"))
        with pytest.raises(TrainingJobError, match=f"banklake train --collect {name}"):
            wait_for_training_job(sagemaker, name, wait=False)
        stub.add_client_error(
            "describe_training_job",
            service_error_code="ValidationException",
            service_message="Requested resource not found.",
        )
        with pytest.raises(TrainingJobError, match=r"cannot describe.*not found"):
            wait_for_training_job(sagemaker, "banklake-fraud-xgb-nope")
        stub.assert_no_pending_responses()


def test_throttling_is_retried_and_waiting_has_a_limit(job: dict[str, Any]) -> None:
    request, sagemaker = job["request"], _client()
    name = request["TrainingJobName"]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_training_job", service_error_code="ThrottlingException")
        stub.add_response("describe_training_job", described(request, "Completed", "Completed"))
        assert wait_for_training_job(sagemaker, name, sleep=sleep, clock=lambda: now[0])
        for _ in range(4):
            stub.add_response("describe_training_job", described(request, "InProgress", "Training"))
        with pytest.raises(TrainingJobError, match="still not finished after"):
            wait_for_training_job(
                sagemaker,
                name,
                backoff=Backoff(first_seconds=100, factor=1, timeout_seconds=350),
                sleep=sleep,
                clock=lambda: now[0],
            )


def test_collecting_registers_the_job_model_as_a_challenger_on_the_same_test_window(
    job: dict[str, Any], s3: Any, trained_lake: MlLayout
) -> None:
    request, sagemaker = job["request"], _client()
    name = request["TrainingJobName"]
    champion = json.loads(trained_lake.champion_file.read_text())["version"]
    local = load_version(trained_lake, champion)
    sleeps: list[float] = []
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_training_job", described(request, "InProgress", "Training"))
        stub.add_response("describe_training_job", described(request, "Completed", "Completed"))
        outcome = collect_training_job(
            trained_lake,
            name,
            TrainConfig(plots=False),
            sagemaker=sagemaker,
            s3=s3,
            sleep=sleeps.append,
            now=datetime(2026, 10, 2, tzinfo=UTC),
        )
    assert len(sleeps) == 1
    meta = outcome.metadata
    assert meta["training"]["backend"] == "sagemaker" and meta["training"]["job_name"] == name
    assert meta["training"]["model_artifact"] == job["uri"]
    assert meta["windows"] == local.metadata["windows"]  # the same test window...
    assert meta["data"]["rows"] == local.metadata["data"]["rows"]  # ...and the same rows
    assert BoosterParams.from_dict(meta["booster"]["params"]) == PARAMS
    # the champion was re-scored on the challenger's test rows: the gate a local model meets
    decision = outcome.decision
    assert decision.champion == champion and decision.champion_ap is not None
    assert decision.challenger_ap is not None
    assert decision.promote == (decision.challenger_ap > decision.champion_ap)
    assert "re-scored on the same rows" in decision.reason
    # what was registered is the job's booster, verified by the loader like any version
    saved = load_version(trained_lake, outcome.version)
    with tarfile.open(fileobj=io.BytesIO(job["tarball"])) as tar:
        remote = json.loads(tar.extractfile("model.json").read())  # type: ignore[union-attr]
    assert json.loads((saved.directory / "model.json").read_text()) == remote
    assert "threshold" in saved.metadata and "reference" in saved.metadata
    # collecting the same job twice registers nothing more
    with pytest.raises(TrainingJobError, match=f"already model {outcome.version}"):
        collect_training_job(trained_lake, name, TrainConfig(), sagemaker=_client(), s3=s3)


def _tampered(job: dict[str, Any], change: Any) -> bytes:
    """The job's model.tar.gz with its files changed by change(folder)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlops-tamper-") as tmp:
        folder = Path(tmp) / "model"
        with tarfile.open(fileobj=io.BytesIO(job["tarball"])) as tar:
            tar.extractall(folder, filter="data")
        change(folder)
        return pack_model_dir(folder)


def _upload(s3: Any, job: dict[str, Any], body: bytes, key: str) -> dict[str, Any]:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    done = described(job["request"], "Completed", "Completed")
    done["ModelArtifacts"]["S3ModelArtifacts"] = f"s3://{BUCKET}/{key}"
    return done


def test_a_tampered_model_is_refused(job: dict[str, Any], s3: Any, tmp_path: Path) -> None:
    def edit_model(folder: Path) -> None:
        model = json.loads((folder / "model.json").read_text())
        model["learner"]["gradient_booster"]["model"]["trees"][0]["split_conditions"][0] += 1
        (folder / "model.json").write_text(json.dumps(model))

    def edit_features(folder: Path) -> None:
        meta = json.loads((folder / "metadata.json").read_text())
        meta["features"] = list(reversed(meta["features"]))
        (folder / "metadata.json").write_text(json.dumps(meta))

    def edit_windows(folder: Path) -> None:
        meta = json.loads((folder / "metadata.json").read_text())
        meta["windows"]["gap_days"] -= 1  # still a valid protocol, not the job's
        (folder / "metadata.json").write_text(json.dumps(meta))

    for number, (change, error, message) in enumerate(
        [
            (edit_model, ModelIntegrityError, "the file was changed after training"),
            (edit_features, ModelIntegrityError, "different feature list"),
            (edit_windows, ArtifactError, "are not the job's"),
        ]
    ):
        done = _upload(s3, job, _tampered(job, change), f"tampered/{number}/model.tar.gz")
        workdir = tmp_path / str(number)
        workdir.mkdir()
        with pytest.raises(error, match=message):
            fetch_verified_model(s3, done, workdir)
    untouched = _upload(s3, job, job["tarball"], "tampered/none/model.tar.gz")
    (tmp_path / "ok").mkdir()
    recorded = Windows.from_dict(json.loads(job["request"]["HyperParameters"]["windows"]))
    assert fetch_verified_model(s3, untouched, tmp_path / "ok").windows == recorded


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return sink.getvalue()


def _file(name: str, data: bytes = b"{}") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_file("../model.json"), _file("metadata.json")], "not a plain name"),
        ([_file("/tmp/model.json"), _file("metadata.json")], "not a plain name"),
        ([_file("model/../../x"), _file("metadata.json")], "not a plain name"),
        ([_special("model.json", tarfile.SYMTYPE, "/etc/passwd"), _file("metadata.json")], "link"),
        (
            [_file("metadata.json"), _special("model.json", tarfile.LNKTYPE, "metadata.json")],
            "link",
        ),
        ([_special("model.json", tarfile.FIFOTYPE), _file("metadata.json")], "special file"),
        ([_special("sub", tarfile.DIRTYPE), _file("sub/model.json")], "special file or folder"),
        ([_file("model.json"), _file("metadata.json"), _file("model.pkl")], "unexpected member"),
        ([_file("model.json"), _file("./model.json"), _file("metadata.json")], "appears twice"),
        ([_file("model.json")], "lacks"),
    ],
)
def test_malicious_or_unexpected_archive_members_are_refused(
    tmp_path: Path, members: list, message: str
) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(_tar(*members))
    with pytest.raises(ArtifactError, match=message):
        extract_model_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "model.json").exists()


def test_a_sagemaker_style_archive_with_dot_slash_names_is_accepted(
    job: dict[str, Any], tmp_path: Path
) -> None:
    with tarfile.open(fileobj=io.BytesIO(job["tarball"])) as tar:
        tar.extractall(tmp_path / "job", filter="data")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(pack_model_dir(tmp_path / "job", prefix="./"))
    out = extract_model_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.json"]
    load_directory(out)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ArtifactError, match="cannot unpack"):
        extract_model_archive(tmp_path / "junk.tar.gz", tmp_path / "junk")


def test_a_lake_whose_training_rows_changed_refuses_the_job(
    job: dict[str, Any], s3: Any, trained_lake: MlLayout
) -> None:
    import duckdb

    with duckdb.connect(str(trained_lake.lake.database)) as con:
        con.execute(
            "delete from curated.ml_features where transaction_id = "
            "(select min(transaction_id) from curated.ml_features)"
        )
    sagemaker = _client()
    versions = sorted(p.name for p in trained_lake.models.iterdir())
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "describe_training_job", described(job["request"], "Completed", "Completed")
        )
        with pytest.raises(ArtifactError, match="fingerprints differ"):
            collect_training_job(
                trained_lake,
                job["request"]["TrainingJobName"],
                TrainConfig(plots=False),
                sagemaker=sagemaker,
                s3=s3,
            )
    assert sorted(p.name for p in trained_lake.models.iterdir()) == versions
