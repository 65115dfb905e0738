"""Reading ml_features: the contract is checked before any row is trusted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import ml.dataset
from ml.dataset import (
    CONTRACT_COLUMNS,
    STRING_KEYS,
    TRAINING_KEYS,
    FeatureContractError,
    FeatureSource,
    FeaturesUnavailableError,
    check_contract,
    contract_columns,
    date_range,
    feature_matrix,
    load_features,
    row_blocks,
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


def _mart_with_ties_and_nulls(database: Path) -> pd.DataFrame:
    """A mart written in shuffled row order, with equal event times (the transaction id must
    break the tie) and missing feature values."""
    frame = synthetic_features(days=4, rows_per_day=250)
    frame.loc[frame.index[::7], "event_ts"] = frame["event_ts"].iloc[0]  # many ties
    frame.loc[frame.index[::5], "amount_log"] = np.nan
    frame.loc[frame.index[::3], "is_night"] = np.nan
    write_features(database, frame.sample(frac=1.0, random_state=3))
    return frame


def test_batched_read_gives_the_rows_in_time_order_exactly_as_sql_sorts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed read (many small batches here) against DuckDB's own `order by` of the
    same rows: same rows, same order, same values bit for bit, nulls as NaN."""
    database = tmp_path / "banklake.duckdb"
    _mart_with_ties_and_nulls(database)
    monkeypatch.setattr(ml.dataset, "BATCH_ROWS", 64)
    loaded = load_features(FeatureSource(database), date(2026, 9, 2), date(2026, 9, 4))
    with duckdb.connect(str(database), read_only=True) as con:
        expected = con.execute(
            "select transaction_id, "
            + ", ".join(f"cast({f} as float) as {f}" for f in FEATURES)
            + " from curated.ml_features where event_date between '2026-09-02' and '2026-09-04'"
            " order by event_ts, transaction_id"
        ).df()
    assert len(loaded) == len(expected) == 750
    assert loaded["transaction_id"].tolist() == expected["transaction_id"].tolist()
    for feature in FEATURES:
        assert np.array_equal(
            loaded[feature].to_numpy(), expected[feature].to_numpy(np.float32), equal_nan=True
        ), feature
    assert loaded["amount_log"].isna().sum() == expected["amount_log"].isna().sum() > 0


def test_a_mart_rewritten_in_place_is_read_in_time_order_too(tmp_path: Path) -> None:
    """An incremental run deletes and re-inserts rows (DuckDB row ids with gaps, out of time
    order): the read still gives every row once, in time order, each with its own values."""
    database = tmp_path / "banklake.duckdb"
    frame = _mart_with_ties_and_nulls(database)
    with duckdb.connect(str(database)) as con:
        con.execute(
            "create temp table moved as select * from curated.ml_features "
            "where event_date = '2026-09-03' or transaction_id like '%7'"
        )
        con.execute(
            "delete from curated.ml_features where transaction_id in "
            "(select transaction_id from moved)"
        )
        con.execute("insert into curated.ml_features select * from moved")
        gaps = con.execute("select max(rowid) + 1 - count(*) from curated.ml_features").fetchone()
    assert gaps is not None and gaps[0] > 0
    loaded = load_features(FeatureSource(database))
    expected = frame.sort_values(["event_ts", "transaction_id"]).reset_index(drop=True)
    assert loaded["transaction_id"].tolist() == expected["transaction_id"].tolist()
    for column in ("amount_log", "is_night", "cust_tx_count_7d"):
        assert np.array_equal(
            loaded[column].to_numpy(),
            expected[column].to_numpy(np.float32),
            equal_nan=True,
        ), column


def test_training_keys_leave_out_only_the_text_keys_not_asked_for(tmp_path: Path) -> None:
    database = tmp_path / "banklake.duckdb"
    _mart_with_ties_and_nulls(database)
    source = FeatureSource(database)
    full = load_features(source)
    lean = load_features(source, keys=TRAINING_KEYS)
    dropped = set(STRING_KEYS) - set(TRAINING_KEYS)
    assert list(lean.columns) == [c for c in CONTRACT_COLUMNS if c not in dropped]
    pd.testing.assert_frame_equal(lean, full.loc[:, list(lean.columns)])
    with pytest.raises(ValueError, match="label_scenario"):
        contract_columns(("transaction_id", "label_scenario"))


def test_the_features_are_one_block_the_frame_only_views(tmp_path: Path) -> None:
    """What keeps the read near one copy: every feature column of the frame is a view of one
    float32 block (a conversion that copied them, as pd.to_numeric did, would fail this)."""
    database = tmp_path / "banklake.duckdb"
    _mart_with_ties_and_nulls(database)
    loaded = load_features(FeatureSource(database), keys=TRAINING_KEYS)
    columns = [loaded[f].to_numpy() for f in FEATURES]
    base = columns[0].base
    assert base is not None and base.dtype == np.float32
    assert all(np.shares_memory(column, base) for column in columns)


def test_row_blocks_cover_every_row_once_in_order() -> None:
    assert row_blocks(0, 4) == []
    assert row_blocks(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert row_blocks(8, 4) == [slice(0, 4), slice(4, 8)]
