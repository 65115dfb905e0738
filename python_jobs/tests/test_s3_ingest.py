"""`banklake ingest` (raw), `--scores` and `--monitoring`: same layout on S3, idempotent,
multipart, never overwrites (moto server)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from python_jobs.aws.s3_location import S3Location
from python_jobs.cli import main
from python_jobs.ingest import IngestConfig, IngestConflict, ingest
from python_jobs.lake.layout import Lake
from python_jobs.tests.moto_s3 import CREDENTIALS, REGION, keys, s3_client
from python_jobs.tests.moto_s3 import versions as object_versions

MiB = 1024 * 1024


def _local_keys(lake: Lake) -> list[str]:
    return sorted(lake.relative(p) for p in lake.raw.rglob("*") if p.is_file())


def _quiet(_: str) -> None:
    return None


def test_uploads_the_raw_layout_with_checksums_and_a_rerun_uploads_nothing(
    small_raw_lake: Lake, s3: Any, bucket: str
) -> None:
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    lines: list[str] = []
    first = ingest(small_raw_lake, dest, s3=s3, say=lines.append)

    assert keys(s3, bucket) == _local_keys(small_raw_lake)
    assert len(first.uploaded) == 4 and first.skipped == [] and first.bytes_uploaded > 0
    for item in first.uploaded:
        head = s3.head_object(Bucket=bucket, Key=item.key, ChecksumMode="ENABLED")
        body = s3.get_object(Bucket=bucket, Key=item.key)["Body"].read()
        assert body == item.path.read_bytes()
        assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
        assert head["ChecksumSHA256"]  # S3 verified its own SHA-256 on arrival
    assert "uploaded 4 files" in lines[-1] and "0 conflicts" in lines[-1]

    lines.clear()
    second = ingest(small_raw_lake, dest, s3=s3, say=lines.append)
    assert second.uploaded == [] and len(second.skipped) == 4
    assert "uploaded 0 files" in lines[-1] and "skipped 4" in lines[-1]
    # nothing was rewritten: one version per key in the versioned bucket
    assert all(len(object_versions(s3, bucket, key)) == 1 for key in keys(s3, bucket))


def test_large_files_go_up_in_parts(small_raw_lake: Lake, s3: Any, bucket: str) -> None:
    big = small_raw_lake.raw / "transactions/year=2026/month=11/day=01/transactions-big.parquet"
    big.write_bytes(os.urandom(6 * MiB))  # ingest does not judge content: the trigger does
    config = IngestConfig(multipart_threshold=1 * MiB, multipart_chunksize=5 * MiB)
    dest = S3Location.parse(f"s3://{bucket}/lake/raw")

    report = ingest(small_raw_lake, dest, s3=s3, config=config, say=_quiet)

    key = "lake/raw/transactions/year=2026/month=11/day=01/transactions-big.parquet"
    assert key in {item.key for item in report.uploaded}
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-2")  # two parts: 5 MiB + 1 MiB
    assert head["Metadata"]["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == big.read_bytes()
    # the re-run compares the stored SHA-256 (a multipart ETag is not a digest) and skips
    again = ingest(small_raw_lake, dest, s3=s3, config=config, say=_quiet)
    assert again.uploaded == [] and key in {item.key for item in again.skipped}


@pytest.mark.parametrize("same_size", [True, False])
def test_a_different_object_is_refused_by_name_and_nothing_is_uploaded(
    small_raw_lake: Lake, s3: Any, bucket: str, same_size: bool
) -> None:
    local = next(small_raw_lake.raw.rglob("customers-20261102-0001.jsonl.gz"))
    key = small_raw_lake.relative(local)
    size = local.stat().st_size if same_size else 10
    s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size, Metadata={"sha256": "0" * 64})

    with pytest.raises(IngestConflict) as raised:
        ingest(small_raw_lake, S3Location.parse(f"s3://{bucket}/raw/"), s3=s3, say=_quiet)

    message = str(raised.value)
    assert f"s3://{bucket}/{key}" in message
    assert "nothing was uploaded" in message and "another batch name" in message
    assert keys(s3, bucket) == [key]  # all or nothing
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * size


def test_an_object_created_during_the_run_is_not_overwritten(
    small_raw_lake: Lake, endpoint: str, bucket: str
) -> None:
    """Between the listing and the upload another writer lands other bytes: the conditional
    PUT (If-None-Match: *) turns the race into a conflict instead of an overwrite."""
    ingest_client, intruder = s3_client(endpoint), s3_client(endpoint)
    target = "raw/customers/year=2026/month=11/day=01/customers-20261101-0001.jsonl.gz"

    def land_first(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == target and not keys(intruder, bucket, target):
            intruder.put_object(Bucket=bucket, Key=target, Body=b"someone else's bytes")

    ingest_client.meta.events.register("before-parameter-build.s3.PutObject", land_first)
    with pytest.raises(IngestConflict, match="created during this run"):
        ingest(small_raw_lake, S3Location.parse(f"s3://{bucket}/raw/"), s3=ingest_client)

    assert intruder.get_object(Bucket=bucket, Key=target)["Body"].read() == b"someone else's bytes"
    assert len(object_versions(intruder, bucket, target)) == 1
    assert len(keys(intruder, bucket)) == 4  # the other three files did go up


def test_a_file_quarantined_on_arrival_is_not_sent_again(
    small_raw_lake: Lake, s3: Any, bucket: str
) -> None:
    local = next(small_raw_lake.raw.rglob("transactions-20261101-0001.parquet"))
    rest = small_raw_lake.relative(local).removeprefix("raw/")
    note = {"sha256": hashlib.sha256(local.read_bytes()).hexdigest(), "reason": "test"}
    s3.put_object(Bucket=bucket, Key=f"quarantine/{rest}", Body=local.read_bytes())
    s3.put_object(Bucket=bucket, Key=f"quarantine/{rest}.reason.json", Body=json.dumps(note))

    report = ingest(small_raw_lake, S3Location.parse(f"s3://{bucket}/raw/"), s3=s3, say=_quiet)

    assert [item.key for item in report.quarantined] == [f"raw/{rest}"]
    assert f"raw/{rest}" not in keys(s3, bucket, "raw/")
    assert len(report.uploaded) == 3


def test_dry_run_uploads_nothing(small_raw_lake: Lake, s3: Any, bucket: str) -> None:
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    lines: list[str] = []
    report = ingest(small_raw_lake, dest, s3=s3, dry_run=True, say=lines.append)
    assert len(report.uploaded) == 4 and "would upload 4 files" in lines[-1]
    assert sum(line.startswith("  would upload raw/") for line in lines) == 4
    assert keys(s3, bucket) == []


@pytest.mark.parametrize(
    ("url", "prefix"),
    [("s3://b/raw/", "raw/"), ("s3://b/raw", "raw/"), ("s3://b/banklake/raw/", "banklake/raw/")],
)
def test_destination_is_the_lake_raw_prefix(url: str, prefix: str) -> None:
    location = S3Location.parse(url)
    assert (location.bucket, location.prefix) == ("b", prefix)
    assert location.key("raw/x/y") == prefix + "x/y"


@pytest.mark.parametrize("url", ["s3://b/", "s3://b/rawdata/", "s3://b/raw/transactions/", "b/raw"])
def test_a_destination_outside_raw_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="--to must"):
        S3Location.parse(url)


def test_cli_ingest_reports_and_refuses(
    small_raw_lake: Lake,
    s3: Any,
    bucket: str,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    args = ["ingest", "--to", f"s3://{bucket}/raw/", "--lake", str(small_raw_lake.root)]

    assert main(args) == 0
    assert "uploaded 4 files" in capsys.readouterr().out
    assert main(args) == 0
    assert "skipped 4" in capsys.readouterr().out

    changed = next(Path(small_raw_lake.raw).rglob("transactions-20261102-0001.parquet"))
    changed.write_bytes(changed.read_bytes() + b"!")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "banklake ingest: refusing" in err and "transactions-20261102-0001.parquet" in err


# --- the fraud scores (`--scores`) ---------------------------------------------------------


def _write_scores(lake: Lake, day: date, transaction_ids: list[str]) -> Path:
    """A day's scores file where, and as, the scoring job writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml.layout import MlLayout
    from ml.score import SCORES_SCHEMA

    n = len(transaction_ids)
    columns = {field.name: pa.nulls(n, field.type) for field in SCORES_SCHEMA}
    columns["transaction_id"] = pa.array(transaction_ids, pa.string())
    columns["score"] = pa.array([0.5] * n, pa.float64())
    path = MlLayout(lake).scores_file(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=SCORES_SCHEMA), path)
    return path


@pytest.fixture
def scored_lake(small_raw_lake: Lake) -> Lake:
    for day in (date(2026, 11, 1), date(2026, 11, 2)):
        path = _write_scores(small_raw_lake, day, [f"T{day:%Y%m%d}0000"])
        (path.parent / ".scores.parquet.tmp-123").write_bytes(b"half-written")  # scorer's tmp
    return small_raw_lake


def test_scores_go_beside_raw_where_register_points_the_table_and_a_rerun_uploads_nothing(
    scored_lake: Lake, s3: Any, bucket: str
) -> None:
    from python_jobs.aws.athena_ddl import scores_location

    raw_url = f"s3://{bucket}/banklake/raw/"
    dest = S3Location.parse(raw_url)
    lines: list[str] = []
    first = ingest(scored_lake, dest, kind="scores", s3=s3, say=lines.append)

    expected = [
        f"banklake/processed/fraud_scores/score_date=2026-11-0{d}/scores.parquet" for d in (1, 2)
    ]
    assert keys(s3, bucket) == expected  # no raw file, no temporary file
    assert scores_location(raw_url) == f"s3://{bucket}/" + expected[0].split("score_date=")[0]
    for item in first.uploaded:
        head = s3.head_object(Bucket=bucket, Key=item.key, ChecksumMode="ENABLED")
        assert head["Metadata"]["sha256"] == item.sha256 and head["ChecksumSHA256"]
    assert lines[0].endswith(f"s3://{bucket}/banklake/processed/fraud_scores/: 2 scores files")
    assert "uploaded 2 files" in lines[-1]
    assert lines[-1].endswith(f"-> s3://{bucket}/banklake/processed/fraud_scores/")

    again = ingest(scored_lake, dest, kind="scores", s3=s3, say=_quiet)
    assert again.uploaded == [] and len(again.skipped) == 2
    assert all(len(object_versions(s3, bucket, key)) == 1 for key in expected)
    # the raw upload is a separate run, and does not see the scores as its own
    raw = ingest(scored_lake, dest, s3=s3, say=_quiet)
    assert len(raw.uploaded) == 4 and raw.skipped == []


def test_a_rescored_day_is_refused_and_the_message_says_how_to_replace_it(
    scored_lake: Lake, s3: Any, bucket: str
) -> None:
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    ingest(scored_lake, dest, kind="scores", s3=s3, say=_quiet)
    _write_scores(scored_lake, date(2026, 11, 2), ["T202611020000", "T202611020001"])

    with pytest.raises(IngestConflict) as raised:
        ingest(scored_lake, dest, kind="scores", s3=s3, say=_quiet)

    message = str(raised.value)
    assert "refusing to replace 1 scores object(s)" in message
    assert "score_date=2026-11-02/scores.parquet" in message
    assert "banklake ingest --scores" in message and "stg_fraud_scores+" in message
    key = "processed/fraud_scores/score_date=2026-11-02/scores.parquet"
    assert len(object_versions(s3, bucket, key)) == 1  # the first scores stay


def test_scores_outside_a_date_partition_are_refused(scored_lake: Lake, s3: Any, bucket: str):
    stray = scored_lake.root / "processed/fraud_scores/score_date=latest/scores.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    with pytest.raises(ValueError, match="score_date=YYYY-MM-DD"):
        ingest(scored_lake, S3Location.parse(f"s3://{bucket}/raw/"), kind="scores", s3=s3)
    assert keys(s3, bucket) == []


def test_no_scores_yet_says_to_score_first(small_raw_lake: Lake, s3: Any, bucket: str) -> None:
    with pytest.raises(FileNotFoundError, match="banklake score"):
        ingest(small_raw_lake, S3Location.parse(f"s3://{bucket}/raw/"), kind="scores", s3=s3)


def test_cli_ingest_scores(
    scored_lake: Lake,
    s3: Any,
    bucket: str,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("BANKLAKE_AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    args = ["ingest", "--to", f"s3://{bucket}/raw/", "--lake", str(scored_lake.root), "--scores"]

    assert main([*args, "--dry-run"]) == 0
    assert "would upload 2 files" in capsys.readouterr().out
    assert main(args) == 0
    assert "uploaded 2 files" in capsys.readouterr().out
    assert keys(s3, bucket, "raw/") == []
    assert len(keys(s3, bucket, "processed/fraud_scores/")) == 2


def test_the_s3_client_uses_the_athena_profile_and_region() -> None:
    from python_jobs.aws.s3 import make_s3_client

    client = make_s3_client({"AWS_REGION": "sa-east-1", "AWS_DEFAULT_REGION": "us-east-1"})
    assert client.meta.region_name == "sa-east-1"  # the same precedence as AthenaConfig


def test_scores_of_given_days_only(scored_lake: Lake, s3: Any, bucket: str) -> None:
    """What the Athena scorer uploads: the day it scored, not every local day."""
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    report = ingest(scored_lake, dest, kind="scores", days=[date(2026, 11, 2)], s3=s3, say=_quiet)
    assert [f.key for f in report.uploaded] == [
        "processed/fraud_scores/score_date=2026-11-02/scores.parquet"
    ]
    with pytest.raises(ValueError, match="not raw files"):
        ingest(scored_lake, dest, days=[date(2026, 11, 2)], s3=s3, say=_quiet)


def test_one_known_kind_a_run_and_its_own_options_only(tmp_path: Path) -> None:
    """Refused before any file is read or any S3 call is made (no client is needed)."""
    lake, dest = Lake(tmp_path / "lake"), S3Location.parse("s3://bucket/raw/")
    with pytest.raises(ValueError, match="one kind of file a run"):
        ingest(lake, dest, kind="everything", s3=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not raw files"):
        ingest(lake, dest, kind="model", days=[date(2026, 11, 2)], s3=object())
    with pytest.raises(ValueError, match="model upload only"):
        ingest(lake, dest, kind="scores", force_champion=True, s3=object())


# --- the monitoring reports (`--monitoring`) ---------------------------------------------------


def _write_report(lake: Lake, day: date, alert_rate: float) -> Path:
    from ml.layout import MlLayout

    path = MlLayout(lake).monitoring_file(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"day": day.isoformat(), "alert_rate": alert_rate}))
    return path


@pytest.fixture
def monitored_lake(small_raw_lake: Lake) -> Lake:
    for day in (date(2026, 11, 1), date(2026, 11, 2)):
        _write_report(small_raw_lake, day, 0.01)
    folder = small_raw_lake.root / "monitoring"
    (folder / ".2026-11-03.json.tmp-9").write_text("{")  # a writer's temporary file
    (folder / "notes.json").write_text("{}")  # not a day's report
    return small_raw_lake


def test_monitoring_goes_where_the_athena_report_reads_model_health(
    monitored_lake: Lake, s3: Any, bucket: str
) -> None:
    from python_jobs.assistant.report_facts import S3Monitoring, monitoring_for

    raw_url = f"s3://{bucket}/banklake/raw/"
    dest = S3Location.parse(raw_url)
    lines: list[str] = []
    first = ingest(monitored_lake, dest, kind="monitoring", s3=s3, say=lines.append)
    expected = [f"banklake/monitoring/2026-11-0{d}.json" for d in (1, 2)]
    assert sorted(f.key for f in first.uploaded) == expected == keys(s3, bucket)
    head = s3.head_object(Bucket=bucket, Key=expected[0])
    assert head["ContentType"] == "application/json"
    local = (monitored_lake.root / "monitoring/2026-11-01.json").read_bytes()
    assert head["Metadata"]["sha256"] == hashlib.sha256(local).hexdigest()
    assert lines[-1].endswith(f"-> s3://{bucket}/banklake/monitoring/")
    # the Athena report's reader finds them at the same place
    reports = monitoring_for("athena", monitored_lake, {"BANKLAKE_S3_RAW_DIR": raw_url}, s3=s3)
    assert isinstance(reports, S3Monitoring)
    assert sorted(reports.days()) == ["2026-11-01", "2026-11-02"]
    assert reports.read("2026-11-02") == {"day": "2026-11-02", "alert_rate": 0.01}

    again = ingest(monitored_lake, dest, kind="monitoring", s3=s3, say=_quiet)
    assert again.uploaded == [] and len(again.skipped) == 2


def test_a_remonitored_day_is_replaced_and_a_rerun_replaces_nothing(
    monitored_lake: Lake, s3: Any, bucket: str
) -> None:
    """Monitoring is derived and re-made as labels mature: the new report replaces the old
    one (If-Match on the ETag read), the old one stays as a bucket version."""
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    ingest(monitored_lake, dest, kind="monitoring", s3=s3, say=_quiet)
    key = "monitoring/2026-11-02.json"
    before = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    _write_report(monitored_lake, date(2026, 11, 2), 0.02)
    lines: list[str] = []

    report = ingest(monitored_lake, dest, kind="monitoring", s3=s3, say=lines.append)

    assert [f.key for f in report.replaced] == [key] and report.uploaded == []
    assert [f.key for f in report.skipped] == ["monitoring/2026-11-01.json"]
    assert "replaced 1 (changed since their upload)" in lines[-1]
    assert any(line.startswith(f"  replaced {key}") for line in lines)
    body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert body["alert_rate"] == 0.02
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] != before
    assert len(object_versions(s3, bucket, key)) == 2  # versioning keeps the first report
    again = ingest(monitored_lake, dest, kind="monitoring", s3=s3, say=_quiet)
    assert again.replaced == [] and len(again.skipped) == 2


def test_a_report_changed_by_someone_else_during_the_run_is_not_replaced(
    monitored_lake: Lake, endpoint: str, bucket: str
) -> None:
    """Between the plan (which read the ETag) and the PUT another writer replaces the day's
    report: If-Match fails, their report stays, the run refuses naming it."""
    ingest_client, intruder = s3_client(endpoint), s3_client(endpoint)
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    ingest(monitored_lake, dest, kind="monitoring", s3=s3_client(endpoint), say=_quiet)
    _write_report(monitored_lake, date(2026, 11, 2), 0.02)
    key = "monitoring/2026-11-02.json"

    def replace_first(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == key and len(object_versions(intruder, bucket, key)) == 1:
            intruder.put_object(Bucket=bucket, Key=key, Body=b'{"theirs": true}')

    ingest_client.meta.events.register("before-parameter-build.s3.PutObject", replace_first)
    with pytest.raises(IngestConflict) as caught:
        ingest(monitored_lake, dest, kind="monitoring", s3=ingest_client, say=_quiet)

    message = str(caught.value)
    assert "another writer changed during this run" in message and key in message
    assert "run the same command again" in message
    assert intruder.get_object(Bucket=bucket, Key=key)["Body"].read() == b'{"theirs": true}'


def test_no_monitoring_yet_says_to_monitor_first(
    small_raw_lake: Lake, s3: Any, bucket: str
) -> None:
    with pytest.raises(FileNotFoundError, match="banklake monitor"):
        ingest(small_raw_lake, S3Location.parse(f"s3://{bucket}/raw/"), kind="monitoring", s3=s3)


def test_cli_ingest_scores_and_monitoring_together(
    scored_lake: Lake,
    s3: Any,
    bucket: str,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write_report(scored_lake, date(2026, 11, 2), 0.01)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("BANKLAKE_AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    args = ["ingest", "--to", f"s3://{bucket}/raw/", "--lake", str(scored_lake.root)]

    assert main([*args, "--scores", "--monitoring"]) == 0
    out = capsys.readouterr().out
    assert "uploaded 2 files" in out and "uploaded 1 files" in out
    assert keys(s3, bucket, "raw/") == []
    assert len(keys(s3, bucket, "processed/fraud_scores/")) == 2
    assert keys(s3, bucket, "monitoring/") == ["monitoring/2026-11-02.json"]


# --- the champion (`--model`) ----------------------------------------------------------------
# A real model, trained twice (a day apart) as ml/tests/conftest.py trains, on a small frame.

MODELS = "models/fraud_xgb/"
POINTER = MODELS + "champion.json"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A lake with two trained versions (older, newer); the champion is the older one."""
    from datetime import timedelta

    from ml.artifacts import champion_version, promote
    from ml.layout import MlLayout
    from ml.tests.conftest import FAST_TRAINING, TRAINED_AT, synthetic_features, write_features
    from ml.train import train

    root = tmp_path_factory.mktemp("models") / "lake"
    layout = MlLayout(Lake(root))
    write_features(layout.lake.database, synthetic_features(rows_per_day=100))
    train(layout, config=FAST_TRAINING, now=TRAINED_AT)
    older = champion_version(layout)
    train(layout, config=FAST_TRAINING, now=TRAINED_AT + timedelta(days=1))
    newer = max(p.name for p in layout.models.iterdir() if p.is_dir())
    assert older is not None and newer > older
    promote(layout, older, "the test's starting champion", now=TRAINED_AT)
    return root, older, newer


@pytest.fixture
def model_lake(tmp_path: Path, two_models: tuple[Path, str, str]) -> Lake:
    import shutil

    shutil.copytree(two_models[0], tmp_path / "lake")
    return Lake(tmp_path / "lake")


def _promote(lake: Lake, version: str) -> None:
    from ml.artifacts import promote
    from ml.layout import MlLayout

    promote(MlLayout(lake), version, "test")


def _pointer(s3: Any, bucket: str, prefix: str = "") -> str:
    return json.loads(s3.get_object(Bucket=bucket, Key=prefix + POINTER)["Body"].read())["version"]


def test_the_champion_goes_where_the_score_step_reads_it_and_a_rerun_uploads_nothing(
    model_lake: Lake, two_models: tuple[Path, str, str], s3: Any, bucket: str, tmp_path: Path
) -> None:
    from ml.artifacts import load_directory

    _, older, newer = two_models
    dest = S3Location.parse(f"s3://{bucket}/banklake/raw/")
    lines: list[str] = []
    report = ingest(model_lake, dest, kind="model", s3=s3, say=lines.append)

    folder = f"banklake/{MODELS}{older}/"
    names = ["forest.json", "metadata.json", "model.json", "model_card.md"]
    assert keys(s3, bucket) == sorted([f"banklake/{POINTER}", *(folder + n for n in names)])
    assert sorted(f.key for f in report.uploaded) == [folder + n for n in names]
    assert report.pointer == f"created (none) -> {older}" and "champion pointer" in lines[-1]
    local_pointer = model_lake.root / POINTER
    assert s3.get_object(Bucket=bucket, Key=f"banklake/{POINTER}")["Body"].read() == (
        local_pointer.read_bytes()
    )
    for item in report.uploaded:
        head = s3.head_object(Bucket=bucket, Key=item.key)
        assert head["Metadata"]["sha256"] == hashlib.sha256(item.path.read_bytes()).hexdigest()
    # what the Score step does: the pointer's version, its model files + metadata.json, loaded
    download = tmp_path / "downloaded" / _pointer(s3, bucket, "banklake/")
    download.mkdir(parents=True)
    for name in ("model.json", "forest.json", "metadata.json"):
        s3.download_file(bucket, folder + name, str(download / name))
    assert load_directory(download).version == older
    assert newer not in " ".join(keys(s3, bucket))  # only the champion goes up

    lines.clear()
    again = ingest(model_lake, dest, kind="model", s3=s3, say=lines.append)
    assert again.uploaded == [] and len(again.skipped) == 4
    assert again.pointer == f"already {older}"
    assert all(len(object_versions(s3, bucket, key)) == 1 for key in keys(s3, bucket))


def test_the_pointer_moves_to_a_newer_champion(
    model_lake: Lake, two_models: tuple[Path, str, str], s3: Any, bucket: str
) -> None:
    _, older, newer = two_models
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)
    _promote(model_lake, newer)

    report = ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)

    assert report.pointer == f"moved {older} -> {newer}"
    assert _pointer(s3, bucket) == newer
    assert len(object_versions(s3, bucket, POINTER)) == 2  # the old pointer is a version
    # model.json, forest.json, metadata.json, model_card.md; the old model stays
    assert len(keys(s3, bucket, f"{MODELS}{older}/")) == 4
    assert len(keys(s3, bucket, f"{MODELS}{newer}/")) == 4


def test_an_older_champion_is_refused_unless_forced(
    model_lake: Lake,
    two_models: tuple[Path, str, str],
    s3: Any,
    bucket: str,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, older, newer = two_models
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    _promote(model_lake, newer)
    ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)
    _promote(model_lake, older)  # a local rollback

    from python_jobs.ingest import ChampionRegression

    with pytest.raises(ChampionRegression) as caught:
        ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)
    message = str(caught.value)
    assert f"names {newer}" in message and "not older than the local champion" in message
    assert "--force-champion" in message
    assert _pointer(s3, bucket) == newer and keys(s3, bucket, f"{MODELS}{older}/") == []

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("BANKLAKE_AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    args = ["ingest", "--to", f"s3://{bucket}/raw/", "--lake", str(model_lake.root), "--model"]
    assert main(args) == 1
    assert "refusing to move the champion pointer" in capsys.readouterr().err
    assert main([*args, "--force-champion"]) == 0
    assert f"moved {newer} -> {older}" in capsys.readouterr().out
    assert _pointer(s3, bucket) == older
    assert main(["ingest", "--to", f"s3://{bucket}/raw/", "--force-champion"]) == 1


def test_a_tampered_remote_version_is_refused_by_name_and_the_pointer_stays(
    model_lake: Lake, two_models: tuple[Path, str, str], s3: Any, bucket: str
) -> None:
    _, older, newer = two_models
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)
    card = f"{MODELS}{newer}/model_card.md"
    s3.put_object(Bucket=bucket, Key=card, Body=b"# edited", Metadata={"sha256": "0" * 64})
    _promote(model_lake, newer)

    with pytest.raises(IngestConflict) as caught:
        ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)

    message = str(caught.value)
    assert "refusing to replace 1 model object(s)" in message and f"s3://{bucket}/{card}" in message
    assert "a model version never changes" in message and "nothing was uploaded" in message
    assert keys(s3, bucket, f"{MODELS}{newer}/") == [card]
    assert _pointer(s3, bucket) == older


def test_a_remote_model_that_lies_about_its_checksum_fails_verification(
    model_lake: Lake, two_models: tuple[Path, str, str], s3: Any, bucket: str
) -> None:
    """model.json replaced on S3 by other bytes that still claim the local SHA-256 (so the
    plan skips it): the download-and-load check, the scorer's own, refuses the pointer."""
    from ml.artifacts import ModelIntegrityError

    _, older, newer = two_models
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)
    local = model_lake.root / MODELS / newer / "model.json"
    forged = local.read_bytes().replace(b'"', b" ", 1)[: local.stat().st_size]
    assert len(forged) == local.stat().st_size and forged != local.read_bytes()
    s3.put_object(
        Bucket=bucket,
        Key=f"{MODELS}{newer}/model.json",
        Body=forged,
        Metadata={"sha256": hashlib.sha256(local.read_bytes()).hexdigest()},
    )
    _promote(model_lake, newer)

    with pytest.raises(ModelIntegrityError, match="pointer was not moved"):
        ingest(model_lake, dest, kind="model", s3=s3, say=_quiet)
    assert _pointer(s3, bucket) == older


def test_the_pointer_is_never_written_when_a_file_of_the_version_fails(
    model_lake: Lake, two_models: tuple[Path, str, str], endpoint: str, bucket: str
) -> None:
    """Another writer lands other bytes under the version's metadata.json during the upload:
    the conditional PUT refuses, and champion.json is never created."""
    _, older, _ = two_models
    ingest_client, intruder = s3_client(endpoint), s3_client(endpoint)
    target = f"{MODELS}{older}/metadata.json"

    def land_first(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == target and not keys(intruder, bucket, target):
            intruder.put_object(Bucket=bucket, Key=target, Body=b"{}")

    ingest_client.meta.events.register("before-parameter-build.s3.PutObject", land_first)
    with pytest.raises(IngestConflict, match="created during this run"):
        ingest(model_lake, S3Location.parse(f"s3://{bucket}/raw/"), kind="model", s3=ingest_client)

    assert POINTER not in keys(intruder, bucket)
    assert intruder.get_object(Bucket=bucket, Key=target)["Body"].read() == b"{}"


def test_a_pointer_moved_by_someone_else_during_the_run_is_not_overwritten(
    model_lake: Lake, two_models: tuple[Path, str, str], endpoint: str, bucket: str
) -> None:
    _, older, newer = two_models
    dest = S3Location.parse(f"s3://{bucket}/raw/")
    ingest(model_lake, dest, kind="model", s3=s3_client(endpoint), say=_quiet)
    _promote(model_lake, newer)
    ingest_client, intruder = s3_client(endpoint), s3_client(endpoint)
    theirs = json.dumps({"version": older, "note": "theirs"}).encode()

    def move_first(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == POINTER:
            intruder.put_object(Bucket=bucket, Key=POINTER, Body=theirs)

    ingest_client.meta.events.register("before-parameter-build.s3.PutObject", move_first)
    with pytest.raises(IngestConflict) as caught:
        ingest(model_lake, dest, kind="model", s3=ingest_client, say=_quiet)

    assert "champion object(s)" in str(caught.value) and POINTER in str(caught.value)
    assert intruder.get_object(Bucket=bucket, Key=POINTER)["Body"].read() == theirs


def test_a_version_copied_by_hand_is_hashed_and_skipped(
    model_lake: Lake, two_models: tuple[Path, str, str], s3: Any, bucket: str
) -> None:
    """What the README used to say (`aws s3 cp` the folder, then the pointer): objects with
    no SHA-256 recorded, compared by their bytes; the pointer already names the version."""
    _, older, _ = two_models
    folder = model_lake.root / MODELS / older
    for path in [*folder.iterdir(), model_lake.root / POINTER]:
        s3.put_object(Bucket=bucket, Key=model_lake.relative(path), Body=path.read_bytes())

    report = ingest(model_lake, S3Location.parse(f"s3://{bucket}/raw/"), kind="model", s3=s3)

    assert report.uploaded == [] and len(report.skipped) == 4
    assert report.pointer == f"already {older}"


def test_dry_run_model_uploads_nothing(
    model_lake: Lake, two_models: tuple[Path, str, str], s3: Any, bucket: str
) -> None:
    lines: list[str] = []
    report = ingest(
        model_lake,
        S3Location.parse(f"s3://{bucket}/raw/"),
        kind="model",
        dry_run=True,
        s3=s3,
        say=lines.append,
    )
    assert len(report.uploaded) == 4 and report.pointer == f"would create (none) -> {two_models[1]}"
    assert keys(s3, bucket) == []


def test_no_champion_says_to_train_first(small_raw_lake: Lake, s3: Any, bucket: str) -> None:
    from ml.artifacts import NoChampionError

    with pytest.raises(NoChampionError, match="banklake train"):
        ingest(small_raw_lake, S3Location.parse(f"s3://{bucket}/raw/"), kind="model", s3=s3)
