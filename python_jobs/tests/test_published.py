"""Readers read what the build published: versioned exports, one atomic switch, and a reader
that works while another process holds `banklake.duckdb` for writing (a dbt build)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from python_jobs.assistant.warehouse import DuckDBWarehouse
from python_jobs.export import export_curated
from python_jobs.lake.layout import Lake
from python_jobs.lake.published import (
    KEEP_VERSIONS,
    NothingPublished,
    current,
    published_root,
)
from python_jobs.tests.lake_writer_process import database_held_for_writing

PROJECT_DIR = Path(__file__).resolve().parents[2]


def make_database(lake: Lake, days: int = 3, fraud_reports: int = 1) -> None:
    """A small curated schema by hand: a partitioned fact, a plain mart, an empty one."""
    lake.root.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(lake.database)) as con:
        con.execute("create schema if not exists curated")
        con.execute(
            "create or replace table curated.fct_daily_kpis as "
            "select date '2026-11-01' + cast(i % ? as integer) as event_date, "
            "'PIX' as transaction_type, cast(i as bigint) as transactions, "
            "cast(i * 1.25 as decimal(18, 2)) as approved_volume_brl "
            "from range(10) as t(i)",
            [days],
        )
        con.execute(
            "create or replace table curated.dim_customers as "
            "select 'C' || i as customer_id, i > 5 as is_active from range(8) as t(i)"
        )
        con.execute(
            "create or replace table curated.fct_fraud_alerts as "
            "select 'T1' as transaction_id, 0.5 as score, date '2026-11-01' as score_date "
            f"from range({fraud_reports}) where false"
        )


@pytest.fixture
def published_lake(lake: Lake) -> Lake:
    make_database(lake)
    export_curated(lake)
    return lake


def test_an_export_is_a_version_the_pointer_names(published_lake: Lake) -> None:
    lake = published_lake
    assert lake.curated.is_symlink()
    version = current(lake)
    assert lake.curated.resolve() == version.folder.resolve()
    assert version.folder.parent == published_root(lake)
    assert version.marts["fct_daily_kpis"].rows == 10
    assert version.marts["fct_daily_kpis"].partitioned_by == "event_date"
    assert version.marts["fct_fraud_alerts"].rows == 0
    # downstream tools keep reading lake/curated/<mart>/ through the link
    assert list((lake.curated / "fct_daily_kpis").glob("event_date=*/*.parquet"))


def test_the_reader_sees_the_marts_with_their_columns_and_types(published_lake: Lake) -> None:
    warehouse = DuckDBWarehouse(published_lake)
    try:
        result = warehouse.query("select * from curated.fct_daily_kpis order by transactions")
        assert result.columns == [
            "event_date",
            "transaction_type",
            "transactions",
            "approved_volume_brl",
        ]
        assert result.rows[1] == (date(2026, 11, 2), "PIX", 1, Decimal("1.25"))
        assert warehouse.query("select count(*) from curated.fct_fraud_alerts").rows == [(0,)]
        assert warehouse.query("select count(*) from curated.dim_customers").rows == [(8,)]
    finally:
        warehouse.close()


def test_the_reader_reads_nothing_outside_the_export(published_lake: Lake, tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    warehouse = DuckDBWarehouse(published_lake)
    try:
        with pytest.raises(duckdb.PermissionException):
            warehouse.query(f"select * from read_csv('{outside}')")
        with pytest.raises(duckdb.PermissionException):
            warehouse.query(f"select * from read_parquet('{published_lake.database}')")
        with pytest.raises(duckdb.Error, match="configuration"):
            warehouse.query("set enable_external_access = true")
        # nothing written, not even over the export's own files
        published = current(published_lake).mart_files("dim_customers")[0]
        before = Path(published).read_bytes()
        with pytest.raises(duckdb.PermissionException):
            warehouse.query(f"copy (select 1 as x) to '{published}'")
        assert Path(published).read_bytes() == before
        for statement in (
            "create table curated.leak as select 1",
            "drop view curated.dim_customers",
        ):
            with pytest.raises(duckdb.Error, match="read-only"):
                warehouse.query(statement)
        assert warehouse.query("select count(*) from curated.dim_customers").rows == [(8,)]
    finally:
        warehouse.close()


def test_a_reader_keeps_its_version_while_a_new_one_is_published(published_lake: Lake) -> None:
    lake = published_lake
    reader = DuckDBWarehouse(lake)
    try:
        assert reader.is_current()
        make_database(lake, days=5)
        with duckdb.connect(str(lake.database)) as con:
            con.execute("insert into curated.dim_customers values ('C99', true)")
        export_curated(lake)
        assert not reader.is_current()
        # the old reader still answers from its own, whole export
        assert reader.query("select count(*) from curated.dim_customers").rows == [(8,)]
        fresh = DuckDBWarehouse(lake)
        try:
            assert fresh.query("select count(*) from curated.dim_customers").rows == [(9,)]
            assert fresh.is_current()
        finally:
            fresh.close()
    finally:
        reader.close()


def test_old_versions_are_pruned_and_the_current_one_kept(published_lake: Lake) -> None:
    lake = published_lake
    for _ in range(KEEP_VERSIONS + 2):
        export_curated(lake)
    folders = sorted(p.name for p in published_root(lake).iterdir())
    assert len(folders) == KEEP_VERSIONS
    assert current(lake).version == folders[-1]
    assert not list(lake.root.glob(".curated-*"))  # no switch link left behind


def test_a_lake_exported_before_versions_is_migrated(lake: Lake) -> None:
    make_database(lake)
    (lake.curated / "old_mart").mkdir(parents=True)  # the former layout: a real folder
    with pytest.raises(NothingPublished, match="banklake export"):
        current(lake)
    export_curated(lake)
    assert lake.curated.is_symlink()
    assert not (lake.curated / "old_mart").exists()
    assert sorted(current(lake).marts) == ["dim_customers", "fct_daily_kpis", "fct_fraud_alerts"]


def test_nothing_published_is_a_clear_error(lake: Lake) -> None:
    with pytest.raises(NothingPublished, match=r"nothing published .* run `banklake export`"):
        DuckDBWarehouse(lake)


def test_a_failed_export_publishes_nothing(lake: Lake) -> None:
    lake.root.mkdir(parents=True)
    duckdb.connect(str(lake.database)).close()  # no curated schema
    with pytest.raises(RuntimeError, match="no curated tables"):
        export_curated(lake)
    assert not lake.curated.exists()
    assert not any(published_root(lake).glob("*"))  # not even an empty version folder


# --- a real second process holding the database for writing ------------------------------


@pytest.fixture
def writer_holding_the_database(published_lake: Lake) -> Iterator[subprocess.Popen[str]]:
    with database_held_for_writing(published_lake.database) as writer:
        yield writer


def minimal_manifest(target: Path) -> Path:
    """The part of dbt's manifest the assistant's schema context reads: one curated mart."""
    target.mkdir(parents=True, exist_ok=True)
    node = {
        "resource_type": "model",
        "name": "fct_daily_kpis",
        "package_name": "banklake",
        "config": {"schema": "curated"},
        "description": "daily KPIs",
        "columns": {"transactions": {"name": "transactions", "data_type": "bigint"}},
    }
    manifest = {
        "metadata": {"project_name": "banklake"},
        "nodes": {"model.banklake.fct_daily_kpis": node},
    }
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_readers_work_while_another_process_writes_the_database(
    published_lake: Lake, writer_holding_the_database: subprocess.Popen[str], tmp_path: Path
) -> None:
    # the lock is real: opening the file fails, even read-only
    with pytest.raises(duckdb.IOException, match="lock"):
        duckdb.connect(str(published_lake.database), read_only=True)
    warehouse = DuckDBWarehouse(published_lake)
    try:
        assert warehouse.query("select sum(transactions) from curated.fct_daily_kpis").rows == [
            (45,)
        ]
    finally:
        warehouse.close()
    # and `banklake sql`, its own process, as an analyst runs it
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "python_jobs.cli",
            "sql",
            "select sum(transactions) as total from curated.fct_daily_kpis",
            "--lake",
            str(published_lake.root),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "BANKLAKE_DBT_TARGET_PATH": str(minimal_manifest(tmp_path / "t"))},
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert "45" in answer.stdout
    assert writer_holding_the_database.poll() is None, "the writer must still hold the lock"
