"""What SageMaker would do with a started job, done locally: fetch what the job request
points at from S3 (moto), run the uploaded entry point from the uploaded source archive in
a fresh interpreter that cannot import python_jobs or duckdb (the container has neither),
and pack SM_MODEL_DIR into model.tar.gz the way the platform does."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.sagemaker import parse_s3_uri

CREATED = datetime(2026, 10, 1, 6, 30, tzinfo=UTC)

_RUN_ENTRY = """
import runpy, sys
for blocked in ("python_jobs", "duckdb"):
    sys.modules[blocked] = None  # import fails, as in the training container
sys.argv = ["ml/sagemaker_entry.py"]
runpy.run_path("ml/sagemaker_entry.py", run_name="__main__")
print("ml package:", sys.modules["ml"].__file__)
"""


def run_entry_point(source_dir: Path, channels: dict[str, Path], model_dir: Path, request: dict):
    """Runs source_dir/ml/sagemaker_entry.py as the training toolkit would, with the
    request's hyperparameters decoded into SM_HPS."""
    hps = {k: json.loads(v) for k, v in request["HyperParameters"].items()}
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
        "SM_MODEL_DIR": str(model_dir),
        "SM_HPS": json.dumps(hps),
        "TRAINING_JOB_NAME": request["TrainingJobName"],
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUN_ENTRY],
        cwd=source_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"ml package: {source_dir}" in done.stdout, done.stdout  # the uploaded sources ran


def pack_model_dir(model_dir: Path, prefix: str = "") -> bytes:
    """model.tar.gz of SM_MODEL_DIR's files (SageMaker packs the folder's contents)."""
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=prefix + path.name)
    return sink.getvalue()


def play_sagemaker(s3: Any, request: dict, workdir: Path) -> str:
    """Runs a created training job's work and uploads its model.tar.gz; returns its URI."""
    source_bucket, source_key = parse_s3_uri(
        json.loads(request["HyperParameters"]["sagemaker_submit_directory"])
    )
    source_dir = workdir / "code"
    source_dir.mkdir(parents=True)
    archive = s3.get_object(Bucket=source_bucket, Key=source_key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(source_dir, filter="data")
    channels = {}
    for channel in request["InputDataConfig"]:
        bucket, prefix = parse_s3_uri(channel["DataSource"]["S3DataSource"]["S3Uri"])
        folder = workdir / "input" / channel["ChannelName"]
        folder.mkdir(parents=True)
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            (folder / item["Key"].rsplit("/", 1)[-1]).write_bytes(body)
        channels[channel["ChannelName"]] = folder
    model_dir = workdir / "model"
    run_entry_point(source_dir, channels, model_dir, request)
    name = request["TrainingJobName"]
    uri = f"{request['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"
    bucket, key = parse_s3_uri(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=pack_model_dir(model_dir))
    return uri


def described(request: dict, status: str, secondary: str, **extra: Any) -> dict[str, Any]:
    """A describe_training_job response for a job created with `request`."""
    name = request["TrainingJobName"]
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:sa-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {
            "S3ModelArtifacts": (
                f"{request['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"
            )
        },
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "HyperParameters": request["HyperParameters"],
        "StoppingCondition": request["StoppingCondition"],
        "CreationTime": CREATED,
        **extra,
    }
