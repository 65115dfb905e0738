"""The scoring API's entry point in its image (python_jobs/aws/serve_task.py): the champion
published on S3 (moto's server) is copied into the task's empty lake folder, where `banklake
serve` reads it, before the CLI runs; nothing is copied for a local model or another command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml.artifacts import FOREST_FILE, METADATA_FILE, MODEL_FILE
from ml.layout import MlLayout
from python_jobs.aws import serve_task
from python_jobs.aws.champion_copy import NoPublishedChampion, copy_champion
from python_jobs.lake.layout import Lake
from python_jobs.tests.moto_s3 import moto_server, new_bucket, s3_client

PREFIX = "models/fraud_xgb/"
VERSION = "20261206T010203Z"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with moto_server() as endpoint:
        yield s3_client(endpoint)


def publish(s3: Any, *, forest: bool = True, metadata: bool = True) -> tuple[str, dict[str, bytes]]:
    """A bucket holding a published champion (the bytes are what is compared, the loader
    verifies real ones); returns the bucket and the files by key."""
    bucket = new_bucket(s3)
    files = {
        f"{PREFIX}champion.json": json.dumps({"version": VERSION}).encode(),
        f"{PREFIX}{VERSION}/{MODEL_FILE}": b'{"booster": "..."}',
        f"{PREFIX}{VERSION}/{METADATA_FILE}": b'{"features": []}',
        f"{PREFIX}{VERSION}/{FOREST_FILE}": b"forest bytes",
        f"{PREFIX}20261101T000000Z/{MODEL_FILE}": b"an older version, not the champion",
    }
    if not forest:
        del files[f"{PREFIX}{VERSION}/{FOREST_FILE}"]
    if not metadata:
        del files[f"{PREFIX}{VERSION}/{METADATA_FILE}"]
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket, files


def test_the_champion_and_its_version_land_where_serve_reads_them(s3: Any, tmp_path: Path) -> None:
    bucket, files = publish(s3)
    layout = MlLayout(Lake(tmp_path / "lake"))
    assert copy_champion(s3, f"s3://{bucket}/{PREFIX}", layout) == VERSION
    assert layout.champion_file.read_bytes() == files[f"{PREFIX}champion.json"]
    for name in (MODEL_FILE, METADATA_FILE, FOREST_FILE):
        assert (layout.version_dir(VERSION) / name).read_bytes() == files[
            f"{PREFIX}{VERSION}/{name}"
        ]
    # only the champion's version
    assert sorted(p.name for p in layout.models.iterdir()) == sorted(["champion.json", VERSION])


def test_a_model_without_the_forest_is_copied_but_not_one_without_metadata(
    s3: Any, tmp_path: Path
) -> None:
    bucket, _ = publish(s3, forest=False)
    layout = MlLayout(Lake(tmp_path / "a"))
    copy_champion(s3, f"s3://{bucket}/{PREFIX.rstrip('/')}", layout)  # no trailing slash
    assert not (layout.version_dir(VERSION) / FOREST_FILE).exists()
    bucket, _ = publish(s3, metadata=False)
    layout = MlLayout(Lake(tmp_path / "b"))
    with pytest.raises(NoPublishedChampion, match=f"{VERSION}/{METADATA_FILE} is missing"):
        copy_champion(s3, f"s3://{bucket}/{PREFIX}", layout)
    assert not layout.champion_file.exists()  # no pointer to an incomplete version


def test_serve_starts_only_after_the_copy_and_with_the_same_arguments(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, _ = publish(s3)
    lake = tmp_path / "lake"
    argv = ["serve", "--host", "0.0.0.0", "--port", "8000", "--lake", str(lake)]
    seen: list[tuple[list[str], bool]] = []

    def banklake(args: list[str]) -> int:  # the CLI itself would start the server
        seen.append((args, MlLayout(Lake(lake)).champion_file.exists()))
        return 0

    monkeypatch.setattr(serve_task, "banklake", banklake)
    env = {"BANKLAKE_MODEL_URI": f"s3://{bucket}/{PREFIX}"}
    assert serve_task.main(argv, env, lambda: s3) == 0
    assert seen == [(argv, True)]


def test_no_copy_for_a_local_model_or_another_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def banklake(args: list[str]) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(serve_task, "banklake", banklake)

    def no_s3() -> Any:
        raise AssertionError("S3 asked for nothing to copy")

    serve = ["serve", "--lake", str(tmp_path)]
    assert serve_task.main(serve, {"BANKLAKE_MODEL_URI": str(tmp_path)}, no_s3) == 0
    assert serve_task.main(serve, {}, no_s3) == 0
    assert serve_task.main(["summary", "--lake", str(tmp_path)], {}, no_s3) == 0
    assert len(calls) == 3 and not (tmp_path / "models").exists()


def test_nothing_published_is_a_clear_refusal_and_serve_does_not_start(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = new_bucket(s3)
    monkeypatch.setattr(serve_task, "banklake", lambda args: pytest.fail("serve started"))
    env = {"BANKLAKE_MODEL_URI": f"s3://{bucket}/{PREFIX}"}
    assert serve_task.main(["serve", "--lake", str(tmp_path)], env, lambda: s3) == 1
    error = capsys.readouterr().err
    assert f"no champion.json under s3://{bucket}/{PREFIX}" in error
    assert "banklake ingest --model" in error
