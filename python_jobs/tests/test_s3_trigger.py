"""The S3 trigger (Lambda): same validator as the local quarantine, safe under re-delivery.

Events are real S3 notification payloads (URL-encoded keys); S3 is moto's server, with a
versioned bucket like production, so "nothing duplicated" is checked version by version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pyarrow.parquet as pq
import pytest

from python_jobs.aws import s3_trigger
from python_jobs.aws.lambda_package import build_zip
from python_jobs.aws.s3_trigger import (
    NoDataYet,
    TriggerConfig,
    handle_event,
    handler,
    run_day,
    sweep_handler,
)
from python_jobs.lake import validate
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import CUSTOMERS, TRANSACTIONS
from python_jobs.lake.validate import ValidatorUnavailable, check_raw_file
from python_jobs.lake.writer import write_raw
from python_jobs.tests.conftest import transaction_rows
from python_jobs.tests.emf_spec import documented, problems
from python_jobs.tests.moto_s3 import CREDENTIALS, REGION, keys, moto_server, new_bucket, s3_client
from python_jobs.tests.moto_s3 import versions as object_versions

DAY = date(2026, 11, 1)
GOOD = "raw/transactions/year=2026/month=11/day=01/transactions-20261101-0001.parquet"
GOOD_JSON = "raw/customers/year=2026/month=11/day=01/customers-20261101-0001.jsonl.gz"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A client for the test, and the environment the handler's own client is built from."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.delenv(s3_trigger.LAKE_PREFIX_ENV, raising=False)
    s3_trigger._s3.cache_clear()
    yield s3_client(endpoint)
    s3_trigger._s3.cache_clear()


@pytest.fixture
def bucket(s3: Any) -> str:
    return new_bucket(s3)


def s3_event(s3: Any, bucket: str, key: str, event_name: str = "ObjectCreated:Put") -> dict:
    """The notification S3 sends to Lambda for `key`, field for field."""
    head = s3.head_object(Bucket=bucket, Key=key)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2026-11-01T23:55:03.412Z",
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjp",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "banklake-raw-arrival",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),  # S3 URL-encodes keys in events
                        "size": head["ContentLength"],
                        "eTag": head["ETag"].strip('"'),
                        "versionId": head.get("VersionId"),
                        "sequencer": "0055AED6DCD90281E5",
                    },
                },
            }
        ]
    }


def land(s3: Any, bucket: str, lake: Lake, relative: str, key: str | None = None) -> str:
    """Uploads a local raw file (lake-relative path) to `key` (default: the same path)."""
    key = key or relative
    s3.put_object(Bucket=bucket, Key=key, Body=(lake.root / relative).read_bytes())
    return key


def tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def count_calls(s3: Any, operation: str) -> list[str]:
    calls: list[str] = []
    s3.meta.events.register(f"before-call.s3.{operation}", lambda **_: calls.append(operation))
    return calls


def test_a_good_file_is_tagged_and_a_redelivery_changes_nothing(
    small_raw_lake: Lake, s3: Any, bucket: str
) -> None:
    land(s3, bucket, small_raw_lake, GOOD)
    land(s3, bucket, small_raw_lake, GOOD_JSON)
    event = s3_event(s3, bucket, GOOD)
    event["Records"] += s3_event(s3, bucket, GOOD_JSON)["Records"]

    result = handler(event, None)

    assert [(o["action"], o["rows"]) for o in result["outcomes"]] == [
        ("validated", 5),
        ("validated", 1),
    ]
    body = (small_raw_lake.root / GOOD).read_bytes()
    assert tags(s3, bucket, GOOD) == {
        "banklake-validated": "true",
        "banklake-rows": "5",
        "banklake-sha256": hashlib.sha256(body).hexdigest(),
    }
    # S3 delivers at least once: the same event again downloads nothing and changes nothing
    gets = count_calls(s3_trigger._s3(), "GetObject")
    again = handler(event, None)
    assert [o["action"] for o in again["outcomes"]] == ["already-validated"] * 2
    assert gets == []
    assert keys(s3, bucket) == [GOOD_JSON, GOOD]
    assert len(object_versions(s3, bucket, GOOD)) == 1
    assert s3.get_object(Bucket=bucket, Key=GOOD)["Body"].read() == body


def test_a_bad_file_moves_to_quarantine_with_its_reason_once(
    small_raw_lake: Lake, s3: Any, bucket: str
) -> None:
    bad = "raw/transactions/year=2026/month=11/day=01/transactions-20261101-0002.parquet"
    payload = b"PAR1 this is not parquet at all"
    s3.put_object(Bucket=bucket, Key=bad, Body=payload)
    event = s3_event(s3, bucket, bad)

    first = handler(event, None)["outcomes"][0]

    assert first["action"] == "quarantined" and first["detail"].startswith("unreadable")
    q_key = "quarantine/" + bad.removeprefix("raw/")
    assert keys(s3, bucket) == [q_key, q_key + ".reason.json"]
    assert object_versions(s3, bucket, bad) == []  # the checked version is gone from raw/
    assert s3.get_object(Bucket=bucket, Key=q_key)["Body"].read() == payload  # nothing lost
    note = json.loads(s3.get_object(Bucket=bucket, Key=q_key + ".reason.json")["Body"].read())
    assert note["file"] == bad and note["feed"] == "transactions"
    assert note["reason"] == first["detail"] and note["size_bytes"] == len(payload)
    assert note["sha256"] == hashlib.sha256(payload).hexdigest()
    assert note["source_key"] == bad and "what_next" in note

    # re-delivery of the same event: no error, nothing copied or written twice
    second = handler(event, None)["outcomes"][0]
    assert second["action"] == "already-quarantined"
    assert len(object_versions(s3, bucket, q_key)) == 1
    assert len(object_versions(s3, bucket, q_key + ".reason.json")) == 1


def test_the_trigger_logs_its_validation_figures_as_emf(
    small_raw_lake: Lake,
    s3: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In Lambda the figures go to the function's log (EMF), where CloudWatch extracts them:
    a file judged now counts, a redelivery finding it done does not."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "banklake-raw-trigger")
    monkeypatch.delenv("BANKLAKE_METRICS", raising=False)
    bad = "raw/transactions/year=2026/month=11/day=01/transactions-20261101-0003.parquet"
    s3.put_object(Bucket=bucket, Key=bad, Body=b"not parquet")
    good = land(s3, bucket, small_raw_lake, GOOD)
    capsys.readouterr()
    handler(s3_event(s3, bucket, good), None)
    handler(s3_event(s3, bucket, bad), None)
    handler(s3_event(s3, bucket, good), None)  # redelivered: already validated
    err = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in err if '"_aws":' in line]
    for record in records:
        assert problems(record) == [] and documented(record) == []
    counted = [(r["ValidatedFiles"], r["QuarantinedFiles"]) for r in records]
    assert counted == [(1, 0), (0, 1), (0, 0)]
    assert {r["Job"] for r in records} == {"validate"}


def test_an_event_for_a_key_already_quarantined_is_a_no_op(s3: Any, bucket: str) -> None:
    """E.g. a late duplicate of an event whose file an earlier invocation quarantined."""
    rest = "transactions/year=2026/month=11/day=01/transactions-20261101-0007.parquet"
    s3.put_object(Bucket=bucket, Key=f"quarantine/{rest}", Body=b"bad bytes")
    s3.put_object(Bucket=bucket, Key=f"quarantine/{rest}.reason.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key=f"raw/{rest}", Body=b"bad bytes")
    event = s3_event(s3, bucket, f"raw/{rest}")
    s3.delete_object(Bucket=bucket, Key=f"raw/{rest}")

    outcome = handler(event, None)["outcomes"][0]

    assert outcome["action"] == "already-quarantined"
    assert keys(s3, bucket) == [f"quarantine/{rest}", f"quarantine/{rest}.reason.json"]


def test_a_crash_between_copy_and_delete_is_finished_by_the_redelivery(
    s3: Any, bucket: str
) -> None:
    bad = "raw/customers/year=2026/month=11/day=01/customers-20261101-0009.jsonl.gz"
    s3.put_object(Bucket=bucket, Key=bad, Body=b"\x1f\x8b truncated gzip")
    event = s3_event(s3, bucket, bad)

    def crash(**_: Any) -> None:
        raise RuntimeError("Lambda timed out")

    client = s3_trigger._s3()
    client.meta.events.register("before-call.s3.DeleteObject", crash, unique_id="crash")
    with pytest.raises(RuntimeError, match="timed out"):
        handler(event, None)
    client.meta.events.unregister("before-call.s3.DeleteObject", unique_id="crash")
    q_key = "quarantine/" + bad.removeprefix("raw/")
    assert bad in keys(s3, bucket)  # copied and explained, not yet deleted

    assert handler(event, None)["outcomes"][0]["action"] == "quarantined"
    assert keys(s3, bucket) == [q_key, q_key + ".reason.json"]
    assert len(object_versions(s3, bucket, q_key)) == 1  # not copied a second time
    assert len(object_versions(s3, bucket, q_key + ".reason.json")) == 1


def test_the_same_checks_as_the_local_validator_including_where_rows_landed(
    small_raw_lake: Lake, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid file delivered under another day's key would count twice: refused, with the
    same reason `banklake validate` gives for the same misplaced file locally."""
    misplaced = "raw/transactions/year=2026/month=11/day=03/transactions-20261103-0001.parquet"
    monkeypatch.setenv(s3_trigger.LAKE_PREFIX_ENV, "banklake/")
    key = land(s3, bucket, small_raw_lake, GOOD, key="banklake/" + misplaced)
    good = land(s3, bucket, small_raw_lake, GOOD, key="banklake/" + GOOD)
    event = s3_event(s3, bucket, key)
    event["Records"] += s3_event(s3, bucket, good)["Records"]

    outcomes = handler(event, None)["outcomes"]

    local_copy = small_raw_lake.root / misplaced
    local_copy.parent.mkdir(parents=True)
    shutil.copy(small_raw_lake.root / GOOD, local_copy)
    local_reason = validate.problem_with(local_copy, TRANSACTIONS, small_raw_lake)
    assert outcomes[0]["action"] == "quarantined" and "landed in" in outcomes[0]["detail"]
    assert outcomes[0]["detail"] == local_reason
    assert outcomes[1]["action"] == "validated"
    assert "banklake/quarantine/transactions/year=2026/month=11/day=03/" + (
        "transactions-20261103-0001.parquet"
    ) in keys(s3, bucket)


def test_url_encoded_keys_with_spaces_and_accents_are_decoded(
    lake: Lake, s3: Any, bucket: str
) -> None:
    path = write_raw(
        lake,
        TRANSACTIONS,
        DAY,
        transaction_rows(DAY, 3),
        batch="lote São 1",
        ingested_at=datetime(2026, 11, 1, 2),
    )
    key = land(s3, bucket, lake, lake.relative(path))
    event = s3_event(s3, bucket, key)
    assert "S%C3%A3o+1" in event["Records"][0]["s3"]["object"]["key"]

    outcome = handler(event, None)["outcomes"][0]

    assert (outcome["action"], outcome["rows"]) == ("validated", 3)
    assert tags(s3, bucket, key)["banklake-validated"] == "true"


def test_other_prefixes_and_other_events_are_ignored(
    small_raw_lake: Lake, s3: Any, bucket: str
) -> None:
    land(s3, bucket, small_raw_lake, GOOD, key="curated/fct/x.parquet")
    curated = s3_event(s3, bucket, "curated/fct/x.parquet")
    land(s3, bucket, small_raw_lake, GOOD)
    removed = s3_event(s3, bucket, GOOD, event_name="ObjectRemoved:Delete")

    assert handler(curated, None)["outcomes"][0]["action"] == "ignored"
    assert handler(removed, None)["outcomes"] == []
    assert tags(s3, bucket, GOOD) == {} and tags(s3, bucket, "curated/fct/x.parquet") == {}


def test_an_unknown_feed_is_quarantined(small_raw_lake: Lake, s3: Any, bucket: str) -> None:
    key = land(s3, bucket, small_raw_lake, GOOD, key="raw/transacoes/year=2026/month=11/day=01/t.p")
    outcome = handler(s3_event(s3, bucket, key), None)["outcomes"][0]
    assert outcome["action"] == "quarantined" and "unknown feed" in outcome["detail"]


def test_a_runtime_without_the_codec_fails_loudly_and_quarantines_nothing(
    small_raw_lake: Lake, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS SDK for pandas layer's pyarrow has no zstd: that must never look like a bad file."""
    monkeypatch.setattr(validate, "codec_available", lambda name: name != "zstd")
    land(s3, bucket, small_raw_lake, GOOD)

    with pytest.raises(ValidatorUnavailable, match="zstd"):
        handler(s3_event(s3, bucket, GOOD), None)

    assert keys(s3, bucket) == [GOOD] and tags(s3, bucket, GOOD) == {}


def test_the_sweep_validates_the_run_day_and_waits_for_transactions(
    small_raw_lake: Lake, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(s3_trigger.LAKE_BUCKET_ENV, bucket)
    with pytest.raises(NoDataYet, match="2026-11-01"):
        sweep_handler({"day": "2026-11-01"}, None)

    for path in sorted(small_raw_lake.raw.rglob("*")):
        if path.is_file():
            land(s3, bucket, small_raw_lake, small_raw_lake.relative(path))
    bad = "raw/customers/year=2026/month=11/day=01/customers-20261101-0002.jsonl.gz"
    s3.put_object(Bucket=bucket, Key=bad, Body=b"not gzip")
    handle_event(s3_event(s3, bucket, GOOD), s3, TriggerConfig())  # one event did arrive

    result = sweep_handler({"day": "2026-11-01"}, None)

    assert result["day"] == "2026-11-01" and result["files"] == 3
    assert result["counts"] == {"already-validated": 1, "quarantined": 1, "validated": 1}
    assert tags(s3, bucket, GOOD_JSON)["banklake-validated"] == "true"
    day2 = "raw/transactions/year=2026/month=11/day=02/transactions-20261102-0001.parquet"
    assert tags(s3, bucket, day2) == {}  # another day: not this run's business


def test_run_day_is_the_day_before_the_schedule_in_sao_paulo() -> None:
    assert run_day({"day": "2026-11-01"}) == date(2026, 11, 1)
    # 02:30 UTC on the 3rd is still the 2nd in São Paulo: the run covers the 1st
    assert run_day({"scheduled_time": "2026-11-03T02:30:00Z"}) == date(2026, 11, 1)
    assert run_day({"scheduled_time": "2026-11-03T09:00:00Z"}) == date(2026, 11, 2)


def test_check_raw_file_reads_bytes_like_a_file(small_raw_lake: Lake) -> None:
    for relative, feed in ((GOOD, TRANSACTIONS), (GOOD_JSON, CUSTOMERS)):
        path = small_raw_lake.root / relative
        from_file = check_raw_file(path, feed, key=relative)
        from_bytes = check_raw_file(path.read_bytes(), feed, key=relative)
        assert from_file == from_bytes and from_file.ok and from_file.rows in (5, 1)
    wrong = check_raw_file((small_raw_lake.root / GOOD).read_bytes(), TRANSACTIONS, key=GOOD_JSON)
    assert not wrong.ok and "expected a .parquet file" in (wrong.reason or "")


def test_rows_lost_or_repeated_are_a_row_count_problem(lake: Lake) -> None:
    path = write_raw(
        lake, TRANSACTIONS, DAY, transaction_rows(DAY, 4), batch="0001", ingested_at=datetime.now()
    )
    table = pq.read_table(path)
    pq.write_table(table.take([0, 1, 1, 3]), path)  # row 2 lost, row 1 repeated
    reason = check_raw_file(path, TRANSACTIONS, key=lake.relative(path)).reason or ""
    assert reason.startswith("row count") and "first wrong at row 2" in reason


_LAMBDA_SANDBOX = """
import importlib.abc, json, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])  # the deployment zip, ahead of everything else

RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
LAYER = {"pyarrow"}  # numpy is optional for pyarrow and unused here

class OnlyTheLambdaPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top.startswith("_") or top in sys.stdlib_module_names:
            return None
        if top in RUNTIME | LAYER | {"python_jobs"}:
            return None
        raise ModuleNotFoundError(f"{name} is not in the Lambda runtime or layer")

sys.meta_path.insert(0, OnlyTheLambdaPackages())
from python_jobs.aws import s3_trigger
from python_jobs.lake.schemas import FEEDS
from python_jobs.lake.validate import check_raw_file, feed_of

assert s3_trigger.__file__.startswith(sys.argv[1]), s3_trigger.__file__
verdicts = {}
for key in sys.argv[3:]:
    check = check_raw_file(Path(sys.argv[2]) / key, feed_of(key), key=key)
    verdicts[key] = [check.reason, check.rows]
print(json.dumps(verdicts))
"""


def test_the_lambda_zip_runs_with_only_boto3_pyarrow_and_the_standard_library(
    small_raw_lake: Lake, tmp_path: Path
) -> None:
    """The handler is imported from the deployment zip; imports of anything else (duckdb,
    pydantic, yaml, pandas...) fail in the subprocess, as they would in the Lambda; the
    validator then judges both file formats."""
    package = build_zip(tmp_path / "s3_trigger.zip")
    args = [str(package), str(small_raw_lake.root), GOOD, GOOD_JSON]
    out = subprocess.run(
        [sys.executable, "-c", _LAMBDA_SANDBOX, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == {GOOD: [None, 5], GOOD_JSON: [None, 1]}
