"""Shared fixtures: small raw tables written through the real lake writer."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import redis

from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import CUSTOMERS, TRANSACTIONS
from python_jobs.lake.writer import write_raw
from python_jobs.tests.moto_s3 import (
    aws_environment,
    dynamodb_client,
    moto_server,
    new_bucket,
    new_table,
    s3_client,
    stubbed,
)


def transaction_rows(day: date, count: int, prefix: str = "T") -> pa.Table:
    ids = [f"{prefix}{day:%Y%m%d}{i:04d}" for i in range(count)]
    return pa.table(
        {
            "transaction_id": ids,
            "account_id": ["A1"] * count,
            "customer_id": ["C1"] * count,
            "event_ts": [f"{day:%Y-%m-%d} 10:00:00"] * count,
            "transaction_type": ["PIX"] * count,
            "channel": ["mobile"] * count,
            "direction": ["outbound"] * count,
            "amount": ["10.00"] * count,
            "counterparty_key": ["pix:abc"] * count,
            "merchant_category_code": pa.array([None] * count, pa.string()),
            "device_id": ["dev1"] * count,
            "city": ["São Paulo"] * count,
            "state": ["SP"] * count,
            "status": ["approved"] * count,
        }
    )


def customer_rows(day: date) -> pa.Table:
    return pa.table(
        {
            "customer_id": ["C1"],
            "full_name": ["Maria da Silva"],
            "cpf": ["529.982.247-25"],
            "birth_date": ["1980-01-01"],
            "segment": ["varejo"],
            "monthly_income": [5000.0],
            "risk_rating": ["B"],
            "onboarding_date": ["2020-01-01"],
            "address": [{"state": "SP", "city": "São Paulo"}],
            "updated_at": [f"{day:%Y-%m-%d} 08:00:00"],
        }
    )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def small_raw_lake(lake: Lake) -> Lake:
    """Two days of transactions and customers, written the way every producer writes."""
    for day in (date(2026, 11, 1), date(2026, 11, 2)):
        ingested = datetime(day.year, day.month, day.day, 2)
        write_raw(
            lake, TRANSACTIONS, day, transaction_rows(day, 5), batch="0001", ingested_at=ingested
        )
        write_raw(lake, CUSTOMERS, day, customer_rows(day), batch="0001", ingested_at=ingested)
    return lake


# AWS without AWS: S3 from moto's server (one per module), Athena under botocore's Stubber.
# Modules that need another shape (a Stubber for S3, environment for a handler) override them.
@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(endpoint: str) -> Any:
    return s3_client(endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    return new_bucket(s3)


@pytest.fixture
def dynamodb_url(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """dynamodb://TABLE of a fresh online-state table in moto, with the environment pointing
    boto3 at it (this process and the processes it starts)."""
    for name, value in aws_environment(endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("BANKLAKE_AWS_PROFILE", raising=False)
    return f"dynamodb://{new_table(dynamodb_client(endpoint))}"


@pytest.fixture
def athena() -> Iterator[tuple[Any, Any]]:
    with stubbed("athena") as client_and_stubber:
        yield client_and_stubber


@pytest.fixture(scope="module")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private redis-server on a unix socket, without persistence; stopped by its PID."""
    server = shutil.which("redis-server")
    if server is None:
        message = (
            "redis-server is not installed: `make test` installs Debian's package as root "
            "(.ci/install-debian-packages); without root run `sudo apt-get install redis-server`"
        )
        if os.environ.get("BANKLAKE_CI") or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("redis")
    socket = root / "redis.sock"
    log = root / "redis.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                server,
                "--port",
                "0",
                "--unixsocket",
                str(socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(root),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis(unix_socket_path=str(socket))
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {log.read_text()}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield socket
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
