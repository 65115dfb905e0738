"""Copies the published champion from S3 into a lake's models folder, the layout
`banklake serve` and ml's loader read (ml/layout.py): champion.json and the files of its
version, as `banklake ingest --model` publishes them (s3://<bucket>/models/fraud_xgb/).

Nothing is trusted here: the loader verifies each file's sha256 and the feature list when the
champion is loaded. champion.json is written last, so a copy cut short leaves no pointer to a
version whose files are not all there.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from ml.artifacts import FOREST_FILE, METADATA_FILE, MODEL_FILE
from ml.layout import MlLayout
from python_jobs.aws.clients import error_code

CHAMPION_FILE = "champion.json"
_MISSING = {"404", "NoSuchKey", "NotFound"}


class NoPublishedChampion(RuntimeError):
    """The URI holds no champion.json: nothing was published there."""


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[5:].partition("/")
    prefix = prefix.rstrip("/")
    return bucket, f"{prefix}/" if prefix else ""


def copy_champion(s3: Any, uri: str, layout: MlLayout) -> str:
    """Copies the champion of `uri` (s3://bucket/prefix/, the folder of champion.json) into
    `layout`; returns its version. The forest file is optional (a model without it); the
    booster and the metadata are not."""
    bucket, prefix = _split(uri)
    try:
        champion = s3.get_object(Bucket=bucket, Key=prefix + CHAMPION_FILE)["Body"].read()
    except ClientError as error:
        if error_code(error) in _MISSING:
            raise NoPublishedChampion(
                f"no {CHAMPION_FILE} under {uri}: publish the champion with "
                "'banklake ingest --model' (docs/aws.md)"
            ) from error
        raise
    version = str(json.loads(champion)["version"])
    target = layout.version_dir(version)
    target.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, METADATA_FILE, FOREST_FILE):
        key = f"{prefix}{version}/{name}"
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in _MISSING and name == FOREST_FILE:
                continue
            if error_code(error) in _MISSING:
                raise NoPublishedChampion(
                    f"{CHAMPION_FILE} under {uri} names version {version}, but s3://{bucket}/{key} "
                    "is missing"
                ) from error
            raise
        (target / name).write_bytes(body)
    layout.champion_file.parent.mkdir(parents=True, exist_ok=True)
    layout.champion_file.write_bytes(champion)
    return version
