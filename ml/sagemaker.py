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

Completion (`collect_training_job`): describe_training_job with backoff until Completed
(Failed and Stopped are errors, with SageMaker's FailureReason); the job's model.tar.gz is
downloaded and unpacked defensively (only model.json and metadata.json, regular files, no
paths); load_directory checks the checksum and the feature list as for any local model;
the lake's own split for the job's windows must be the rows the job trained on (same
fingerprint); then the booster is evaluated on that split's test window exactly like a
local one and goes through the same champion/challenger gate (ml/train.register).

Nothing here reads credentials: boto3 finds them as usual (role, profile, env).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.artifacts import (
    METADATA_FILE,
    MODEL_FILE,
    LoadedModel,
    keys_sha256,
    load_directory,
    sha256_file,
)
from ml.booster import BoosterParams, FittedBooster
from ml.features import FEATURES
from ml.protocol import Split, Windows

if TYPE_CHECKING:
    from ml.layout import MlLayout
    from ml.train import TrainConfig, TrainOutcome

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
    prefix: str = "models/fraud_xgb"  # BANKLAKE_SAGEMAKER_PREFIX; the stack's role owns models/*
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
    for the same sources, whenever and by whom it is built: sorted names, fixed mtime, mode and
    owner in every tar header, and a gzip header with mtime 0 and no file name (tarfile's own
    "w:gz" stamps the current time there)."""
    sink = io.BytesIO()
    with (
        gzip.GzipFile(filename="", fileobj=sink, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
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
            f"the model is at {self.model_uri}. Register it as a challenger with "
            f"`banklake train --collect {self.name}`."
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


# --- completion: wait, download, verify, register ------------------------------------------

TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
ARCHIVE_MEMBERS = (MODEL_FILE, METADATA_FILE)  # exactly what sagemaker_entry.py writes
MAX_ARTIFACT_BYTES = 1 << 30  # a booster of 1,000 depth-6 trees is a few MB
_RETRYABLE = {"ThrottlingException", "ServiceUnavailable", "InternalFailure"}


class TrainingJobError(RuntimeError):
    """The training job failed, was stopped, or is not finished."""


class ArtifactError(RuntimeError):
    """The job's model.tar.gz is not a model folder we accept."""


@dataclass(frozen=True)
class Backoff:
    """How describe_training_job is polled: first_seconds, then x factor up to max_seconds;
    give up after timeout_seconds (None: the job's MaxRuntimeInSeconds plus one hour, as
    SageMaker stops a job at its max runtime anyway)."""

    first_seconds: float = 15.0
    factor: float = 1.5
    max_seconds: float = 120.0
    timeout_seconds: float | None = None


def wait_for_training_job(
    sagemaker: Any,
    name: str,
    *,
    backoff: Backoff = Backoff(),
    wait: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The job's description once Completed. Failed or Stopped: TrainingJobError with
    SageMaker's FailureReason. wait=False: one look; not finished is a TrainingJobError."""
    from botocore.exceptions import ClientError

    delay, started, shown = backoff.first_seconds, clock(), None
    timeout = backoff.timeout_seconds  # None: set from the job's max runtime once described
    while True:
        try:
            job = sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code not in _RETRYABLE:
                raise TrainingJobError(
                    f"cannot describe SageMaker training job {name}: {error}"
                ) from error
            job = None
        if job is not None:
            status, secondary = job["TrainingJobStatus"], job.get("SecondaryStatus", "")
            if (status, secondary) != shown:
                say(f"training job {name}: {status} ({secondary})")
                shown = (status, secondary)
            if status == "Completed":
                return job
            if status == "Failed":
                raise TrainingJobError(
                    f"SageMaker training job {name} failed: "
                    f"{job.get('FailureReason') or 'SageMaker gave no FailureReason'}"
                )
            if status == "Stopped":
                raise TrainingJobError(
                    f"SageMaker training job {name} was stopped ({secondary}"
                    + (f": {job['FailureReason']}" if job.get("FailureReason") else "")
                    + "); nothing to collect: start a new one"
                )
            if not wait:
                raise TrainingJobError(
                    f"SageMaker training job {name} is {status} ({secondary}), not finished: "
                    f"collect it later with `banklake train --collect {name}`"
                )
            if timeout is None:
                runtime = job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86_400)
                timeout = float(runtime) + 3600.0
        if clock() - started + delay > (timeout if timeout is not None else 90_000.0):
            raise TrainingJobError(
                f"SageMaker training job {name} is still not finished after "
                f"{clock() - started:,.0f} s; collect it later with "
                f"`banklake train --collect {name}`"
            )
        sleep(delay)
        delay = min(delay * backoff.factor, backoff.max_seconds)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        raise ArtifactError(f"{uri!r} is not an s3://bucket/key URI")
    return match.group(1), match.group(2)


def download_artifact(s3: Any, uri: str, destination: Path) -> Path:
    """Streams s3://... to destination, refusing anything over MAX_ARTIFACT_BYTES."""
    from botocore.exceptions import ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        raise ArtifactError(f"cannot download the job's model {uri}: {error}") from error
    written = 0
    with destination.open("wb") as handle:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            written += len(chunk)
            if written > MAX_ARTIFACT_BYTES:
                raise ArtifactError(f"{uri} is larger than {MAX_ARTIFACT_BYTES:,} bytes")
            handle.write(chunk)
    return destination


def extract_model_archive(archive: Path, destination: Path) -> Path:
    """Unpacks model.tar.gz into destination, accepting only what sagemaker_entry.py
    writes: the regular files model.json and metadata.json at the top (as "name" or
    "./name"), once each, within MAX_ARTIFACT_BYTES. Absolute paths, ".." anywhere,
    symlinks, hard links, devices, other files and folders are refused, the whole
    archive with them. Members are copied by name into files we open ourselves; tarfile
    never writes to disk here."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            chosen = _accepted_members(tar.getmembers(), archive.name)
            destination.mkdir(parents=True, exist_ok=True)
            for filename, member in chosen.items():
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                with source, (destination / filename).open("wb") as target:
                    for chunk in iter(partial(source.read, 1 << 20), b""):
                        target.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArtifactError(f"cannot unpack {archive.name} (a gzipped tar): {error}") from error
    return destination


def _accepted_members(members: list[tarfile.TarInfo], archive: str) -> dict[str, tarfile.TarInfo]:
    """The archive's model files by name; ArtifactError at the first member not accepted."""
    chosen: dict[str, tarfile.TarInfo] = {}
    for member in members:
        name = member.name
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or "\\" in name or "\x00" in name:
            raise ArtifactError(f"refusing {archive}: member {name!r} is not a plain name")
        parts = [part for part in path.parts if part != "."]
        if member.isdir() and not parts:
            continue  # the archive's own "." entry
        if not member.isreg():
            kind = "link" if member.issym() or member.islnk() else "special file or folder"
            raise ArtifactError(f"refusing {archive}: member {name!r} is a {kind}")
        if len(parts) != 1 or parts[0] not in ARCHIVE_MEMBERS:
            raise ArtifactError(
                f"refusing {archive}: unexpected member {name!r} (a model archive holds "
                f"exactly {', '.join(ARCHIVE_MEMBERS)}, as ml/sagemaker_entry.py writes them)"
            )
        if parts[0] in chosen:
            raise ArtifactError(f"refusing {archive}: {parts[0]} appears twice")
        if member.size > MAX_ARTIFACT_BYTES:
            raise ArtifactError(f"refusing {archive}: {name!r} is too large")
        chosen[parts[0]] = member
    missing = [m for m in ARCHIVE_MEMBERS if m not in chosen]
    if missing:
        raise ArtifactError(
            f"refusing {archive}: it lacks {missing} (not written by this version of "
            "ml/sagemaker_entry.py?)"
        )
    return chosen


@dataclass(frozen=True)
class CollectedArtifact:
    model: LoadedModel  # verified: checksum and feature list
    uri: str
    archive_sha256: str
    windows: Windows


def fetch_verified_model(s3: Any, job: Mapping[str, Any], workdir: Path) -> CollectedArtifact:
    """Downloads the completed job's model.tar.gz, unpacks it safely, verifies it with the
    loader every model goes through, and checks that its windows are the job's."""
    uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    archive = download_artifact(s3, uri, workdir / "model.tar.gz")
    model = load_directory(extract_model_archive(archive, workdir / "model"))
    try:
        windows = Windows.from_dict(model.metadata["windows"])
        recorded = Windows.from_dict(json.loads(job["HyperParameters"]["windows"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(
            f"the job or its model does not record its windows ({error})"
        ) from error
    if windows != recorded:
        raise ArtifactError(
            f"the model's windows ({windows.describe()}) are not the job's "
            f"({recorded.describe()}): refusing it"
        )
    return CollectedArtifact(model, uri, sha256_file(archive), windows)


def collect_training_job(
    layout: MlLayout,
    name: str,
    config: TrainConfig,
    *,
    sagemaker: Any,
    s3: Any,
    wait: bool = True,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] | None = None,
    say: Callable[[str], None] = lambda _: None,
    now: datetime | None = None,
) -> TrainOutcome:
    """Waits for the job, fetches and verifies its model, rebuilds the same split from the
    lake and registers the model like a local one: thresholds from the validation days,
    baselines, test metrics, and the champion/challenger gate on the same test window.
    The alert budget and plots come from `config`; the booster parameters from the job."""
    from ml.dataset import date_range, load_features
    from ml.protocol import split
    from ml.train import TrainConfig, fit_fold, register

    already = _registered_version(layout, name)
    if already:
        raise TrainingJobError(f"SageMaker training job {name} is already model {already}")
    job = wait_for_training_job(
        sagemaker, name, backoff=backoff, wait=wait, sleep=sleep or time.sleep, say=say
    )
    with tempfile.TemporaryDirectory(prefix="banklake-collect-") as workdir:
        artifact = fetch_verified_model(s3, job, Path(workdir))
    metadata = artifact.model.metadata
    windows = artifact.windows
    first, last = date_range(layout.features)
    if windows.test_end > last or windows.train_start < first:
        raise TrainingJobError(
            f"the job's windows ({windows.describe()}) are not inside the lake's features "
            f"({first}..{last})"
        )
    say(f"evaluating {name}'s model on {windows.describe()}")
    data = split(load_features(layout.features, windows.train_start, windows.test_end), windows)
    expected = metadata.get("data", {}).get("training_keys_sha256")
    actual = keys_sha256(data.training["transaction_id"])
    if expected != actual:
        raise ArtifactError(
            f"the lake's training rows for these windows are not the ones job {name} trained "
            "on (their fingerprints differ: the features were rebuilt or the lake changed "
            "since the export); retrain instead of collecting it"
        )
    booster_meta = metadata["booster"]
    fitted = FittedBooster(
        artifact.model.booster,
        int(booster_meta["best_iteration"]),
        float(booster_meta["scale_pos_weight"]),
        str(booster_meta["stopping_metric"]),
        float(booster_meta["validation_score"]),
        fit_rows=booster_meta.get("fit_rows"),
        negative_weight=float(booster_meta.get("negative_weight", 1.0)),
        stopping_rows=booster_meta.get("stopping_rows"),
    )
    evaluation = TrainConfig(
        alert_budget=config.alert_budget,
        k=config.k,
        booster=BoosterParams.from_dict(booster_meta["params"]),
        plots=config.plots,
    )
    result = fit_fold(data, evaluation, fitted=fitted)
    return register(
        layout,
        [result],
        evaluation,
        history_start=first,
        labels_as_of=last,
        created_at=now or datetime.now(UTC),
        training={
            "backend": "sagemaker",
            "job_name": name,
            "job_arn": job.get("TrainingJobArn"),
            "model_artifact": artifact.uri,
            "model_artifact_sha256": artifact.archive_sha256,
            "libraries": metadata.get("libraries", {}),
        },
    )


def _registered_version(layout: MlLayout, name: str) -> str | None:
    """The version a job was already registered as, so collecting twice adds nothing."""
    for path in sorted(layout.models.glob(f"*/{METADATA_FILE}")):
        try:
            training = json.loads(path.read_text()).get("training", {})
        except (OSError, json.JSONDecodeError):
            continue
        if training.get("backend") == "sagemaker" and training.get("job_name") == name:
            return path.parent.name
    return None
