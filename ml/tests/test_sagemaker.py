"""The SageMaker backend, without AWS: the request shape checked by botocore's Stubber
against the real service model, the uploads against moto's S3 server on 127.0.0.1, and the
container entry point run locally."""

from __future__ import annotations

import io
import json
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
from ml.booster import BoosterParams, fit_booster, predict
from ml.dataset import feature_matrix
from ml.features import FEATURES
from ml.protocol import Split, resolve_windows, split
from ml.sagemaker import (
    EXPORT_COLUMNS,
    SageMakerConfig,
    SageMakerConfigError,
    source_archive,
    start_training_job,
)

REGION = "sa-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
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
    prefix = f"s3://banklake-ml-test/banklake/fraud_xgb/{name}"
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

    key = f"banklake/fraud_xgb/{name}"
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
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary["features"] == list(FEATURES)
    assert summary["windows"]["cutoff"] == data.windows.cutoff.isoformat()
    assert summary["params"] == json.loads(json.dumps(PARAMS.to_dict()))

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
