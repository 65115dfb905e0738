"""Reading ml_features: the contract is checked before any row is trusted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.dataset import (
    CONTRACT_COLUMNS,
    FeatureContractError,
    FeatureSource,
    FeaturesUnavailableError,
    check_contract,
    date_range,
    feature_matrix,
    load_features,
)
from ml.features import FEATURES
from ml.tests.conftest import synthetic_features, write_features


def test_contract_errors_name_the_offending_columns() -> None:
    columns = [c for c in CONTRACT_COLUMNS if c != "is_night"] + ["is_nite"]
    with pytest.raises(
        FeatureContractError, match=r"missing \['is_night'\].*unexpected \['is_nite'\]"
    ):
        check_contract(columns)
    with pytest.raises(FeatureContractError, match="duplicated"):
        check_contract([*CONTRACT_COLUMNS, "amount_log"])
    check_contract(list(reversed(CONTRACT_COLUMNS)))  # order is the loader's job


def test_load_a_date_range_inclusive_typed_in_contract_order(tmp_path: Path) -> None:
    frame = synthetic_features(days=5, rows_per_day=20)
    # the mart stores booleans as BOOLEAN and counts as BIGINT: the loader makes floats
    frame["is_night"] = frame["is_night"].astype(bool)
    frame["cust_tx_count_1d"] = frame["cust_tx_count_1d"].round().astype("int64")
    database = tmp_path / "banklake.duckdb"
    write_features(database, frame)
    source = FeatureSource(database)
    assert date_range(source) == (date(2026, 9, 1), date(2026, 9, 5))

    loaded = load_features(source, date(2026, 9, 2), date(2026, 9, 3))
    assert list(loaded.columns) == list(CONTRACT_COLUMNS)
    assert sorted(loaded["event_date"].dt.date.unique()) == [date(2026, 9, 2), date(2026, 9, 3)]
    assert len(loaded) == 40
    assert (loaded["event_ts"].diff().dropna() >= pd.Timedelta(0)).all()  # time order
    assert all(loaded[f].dtype == np.float32 for f in FEATURES)  # the model's own precision
    assert set(loaded["is_night"].unique()) <= {0.0, 1.0}
    assert loaded["label_is_fraud"].dtype == bool
    assert str(loaded["event_ts"].dtype) == "datetime64[us]"
    matrix = feature_matrix(loaded)
    assert matrix.shape == (40, len(FEATURES)) and matrix.dtype == np.float32


def test_a_mart_that_breaks_the_contract_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "banklake.duckdb"
    write_features(database, synthetic_features(days=2, rows_per_day=5))
    with duckdb.connect(str(database)) as con:
        con.execute("alter table curated.ml_features rename column is_pos to is_point_of_sale")
    with pytest.raises(FeatureContractError, match=r"missing \['is_pos'\]"):
        load_features(FeatureSource(database))


def test_missing_database_or_table_says_what_to_build(tmp_path: Path) -> None:
    with pytest.raises(FeaturesUnavailableError, match="banklake build"):
        load_features(FeatureSource(tmp_path / "none.duckdb"))
    database = tmp_path / "empty.duckdb"
    duckdb.connect(str(database)).close()
    with pytest.raises(FeaturesUnavailableError, match="ml_features"):
        date_range(FeatureSource(database))


def test_reading_never_writes_to_the_lake_database(tmp_path: Path) -> None:
    database = tmp_path / "banklake.duckdb"
    write_features(database, synthetic_features(days=2, rows_per_day=5))
    with FeatureSource(database).connect() as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute("create table curated.scratch (x int)")
