"""`banklake train --backend sagemaker`: the same training, run as a SageMaker training job.

The split is made here, with the same protocol as a local run (ml/protocol.py): the fit and
validation rows, with their labels as known at the cut-off, go to S3 as Parquet, and so do
the ml/ sources. The job runs ml/sagemaker_entry.py in script mode inside the image you
choose (an XGBoost or scikit-learn framework image with Python 3.11), which calls the very
fit_booster() a local run calls and writes model.json to SM_MODEL_DIR.

Layout under s3://<bucket>/<prefix>/<job name>/:
    data/train/part-0.parquet        fit rows: FEATURES + label (+ keys, for audit)
    data/validation/part-0.parquet   validation slice, same columns
    source/sourcedir.tar.gz          ml/*.py and requirements.txt
    output/                          SageMaker writes <job name>/output/model.tar.gz here

Nothing here reads credentials: boto3 finds them as usual (role, profile, env).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.booster import BoosterParams
from ml.features import FEATURES
from ml.protocol import Split

ENV_PREFIX = "BANKLAKE_SAGEMAKER_"
ENTRY_POINT = "ml/sagemaker_entry.py"
CHANNELS = ("train", "validation")
EXPORT_COLUMNS: tuple[str, ...] = ("transaction_id", "event_date", *FEATURES, "label")
ML_DIR = Path(__file__).resolve().parent
# What the container must install: the versions a local run uses, so models are identical.
CONTAINER_REQUIREMENTS = "xgboost-cpu==3.2.0\nnumpy==2.4.6\npandas==3.1.1\npyarrow==26.0.1\n"
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SageMakerConfigError(ValueError):
    """The SageMaker settings are missing or malformed."""


@dataclass(frozen=True)
class SageMakerConfig:
    role_arn: str  # BANKLAKE_SAGEMAKER_ROLE_ARN: the execution role the job assumes
    bucket: str  # BANKLAKE_SAGEMAKER_BUCKET
    image_uri: str  # BANKLAKE_SAGEMAKER_IMAGE_URI: training image (ECR URI)
    prefix: str = "banklake/fraud_xgb"  # BANKLAKE_SAGEMAKER_PREFIX
    instance_type: str = "ml.m5.xlarge"  # BANKLAKE_SAGEMAKER_INSTANCE_TYPE
    volume_gb: int = 30  # BANKLAKE_SAGEMAKER_VOLUME_GB
    max_runtime_seconds: int = 3600  # BANKLAKE_SAGEMAKER_MAX_RUNTIME_SECONDS
    region: str = "sa-east-1"  # BANKLAKE_SAGEMAKER_REGION, else AWS_DEFAULT_REGION

    REQUIRED = ("ROLE_ARN", "BUCKET", "IMAGE_URI")

    def __post_init__(self) -> None:
        if not _ROLE_ARN.match(self.role_arn):
            raise SageMakerConfigError(
                f"{ENV_PREFIX}ROLE_ARN={self.role_arn!r} is not an IAM role ARN "
                "(arn:aws:iam::123456789012:role/NAME)"
            )
        if not _BUCKET.match(self.bucket):
            raise SageMakerConfigError(f"{ENV_PREFIX}BUCKET={self.bucket!r} is not a bucket name")
        if self.volume_gb < 1 or self.max_runtime_seconds < 60:
            raise SageMakerConfigError("volume_gb must be >= 1 and max_runtime_seconds >= 60")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SageMakerConfig:
        env = os.environ if env is None else env
        missing = [f"{ENV_PREFIX}{name}" for name in cls.REQUIRED if not env.get(ENV_PREFIX + name)]
        if missing:
            raise SageMakerConfigError(
                "the SageMaker backend needs " + ", ".join(missing) + " (the execution role "
                "ARN, the S3 bucket for data and models, and the training image URI); "
                "set them in the environment, or use --backend local"
            )
        optional: dict[str, Any] = {}
        for name, key, cast in (
            ("prefix", "PREFIX", str),
            ("instance_type", "INSTANCE_TYPE", str),
            ("volume_gb", "VOLUME_GB", int),
            ("max_runtime_seconds", "MAX_RUNTIME_SECONDS", int),
            ("region", "REGION", str),
        ):
            if env.get(ENV_PREFIX + key):
                try:
                    optional[name] = cast(env[ENV_PREFIX + key])
                except ValueError as error:
                    raise SageMakerConfigError(f"{ENV_PREFIX}{key}: {error}") from error
        if "region" not in optional and env.get("AWS_DEFAULT_REGION"):
            optional["region"] = env["AWS_DEFAULT_REGION"]
        return cls(
            role_arn=env[ENV_PREFIX + "ROLE_ARN"],
            bucket=env[ENV_PREFIX + "BUCKET"],
            image_uri=env[ENV_PREFIX + "IMAGE_URI"],
            **optional,
        )

    def key(self, job_name: str, *parts: str) -> str:
        return "/".join([self.prefix.strip("/"), job_name, *parts])

    def uri(self, job_name: str, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(job_name, *parts)}"


def job_name(now: datetime | None = None) -> str:
    """SageMaker job names: 63 characters of [a-zA-Z0-9-], unique per account and region."""
    return f"banklake-fraud-xgb-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame.loc[:, list(EXPORT_COLUMNS)], preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def export_split(s3: Any, config: SageMakerConfig, name: str, data: Split) -> dict[str, str]:
    """Uploads the fit and validation rows (labels as known at the cut-off); returns the S3
    prefix of each channel."""
    channels = {}
    for channel, frame in zip(CHANNELS, (data.fit, data.validation), strict=True):
        s3.put_object(
            Bucket=config.bucket,
            Key=config.key(name, "data", channel, "part-0.parquet"),
            Body=_parquet_bytes(frame),
        )
        channels[channel] = config.uri(name, "data", channel) + "/"
    return channels


def source_archive() -> bytes:
    """ml/*.py (no tests) and requirements.txt as sourcedir.tar.gz, byte-for-byte the same
    for the same sources (fixed mtimes and owners, sorted names)."""
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))

        for path in sorted(ML_DIR.glob("*.py")):
            add(f"ml/{path.name}", path.read_bytes())
        add("requirements.txt", CONTAINER_REQUIREMENTS.encode())
    return sink.getvalue()


def upload_source(s3: Any, config: SageMakerConfig, name: str) -> str:
    key = config.key(name, "source", "sourcedir.tar.gz")
    s3.put_object(Bucket=config.bucket, Key=key, Body=source_archive())
    return f"s3://{config.bucket}/{key}"


def training_job_request(
    config: SageMakerConfig,
    name: str,
    channels: Mapping[str, str],
    source_uri: str,
    params: BoosterParams,
    windows: Mapping[str, object],
) -> dict[str, Any]:
    """The create_training_job request (script mode: the sagemaker_* hyperparameters tell
    the container's training toolkit what to download and run)."""
    return {
        "TrainingJobName": name,
        "RoleArn": config.role_arn,
        "AlgorithmSpecification": {"TrainingImage": config.image_uri, "TrainingInputMode": "File"},
        # JSON-encoded values, as the SageMaker SDK sends them (the training toolkit decodes
        # each one before exporting SM_HPS)
        "HyperParameters": {
            key: json.dumps(value, sort_keys=True)
            for key, value in {
                "sagemaker_program": ENTRY_POINT,
                "sagemaker_submit_directory": source_uri,
                "sagemaker_region": config.region,
                "booster_params": params.to_dict(),
                "windows": dict(windows),
            }.items()
        },
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": channels[channel],
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-parquet",
                "InputMode": "File",
            }
            for channel in CHANNELS
        ],
        "OutputDataConfig": {"S3OutputPath": config.uri(name, "output")},
        "ResourceConfig": {
            "InstanceType": config.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": config.volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.max_runtime_seconds},
        "Tags": [{"Key": "project", "Value": "banklake"}, {"Key": "model", "Value": "fraud_xgb"}],
    }


@dataclass(frozen=True)
class SageMakerJob:
    name: str
    arn: str
    model_uri: str  # where model.tar.gz (model.json inside) lands when the job completes

    def summary(self) -> str:
        return (
            f"started SageMaker training job {self.name} ({self.arn}); when it completes, "
            f"the model is at {self.model_uri}. Follow it with `aws sagemaker "
            f"describe-training-job --training-job-name {self.name}`."
        )


def start_training_job(
    data: Split,
    params: BoosterParams,
    config: SageMakerConfig,
    *,
    sagemaker: Any,
    s3: Any,
    now: datetime | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> SageMakerJob:
    """Exports the split and the sources, then starts the job (does not wait for it)."""
    name = job_name(now)
    say(
        f"exporting {len(data.fit):,} fit and {len(data.validation):,} validation rows to "
        f"{config.uri(name, 'data')}/"
    )
    channels = export_split(s3, config, name, data)
    source_uri = upload_source(s3, config, name)
    request = training_job_request(
        config, name, channels, source_uri, params, data.windows.to_dict()
    )
    response = sagemaker.create_training_job(**request)
    return SageMakerJob(
        name, response["TrainingJobArn"], config.uri(name, "output", name, "output", "model.tar.gz")
    )


def clients(config: SageMakerConfig) -> tuple[Any, Any]:
    """boto3 SageMaker and S3 clients for the configured region."""
    import boto3

    return (
        boto3.client("sagemaker", region_name=config.region),
        boto3.client("s3", region_name=config.region),
    )
