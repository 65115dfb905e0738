"""Reads the `curated.ml_features` mart for a date range, exactly as the contract says.

The mart is written by dbt; the model trusts nothing about it except ml/features.py. So the
columns are checked against the contract before any row is read, every column is cast to its
contract type in SQL (`select_expression`, the one definition the Athena scorer's UNLOAD uses
too; features as REAL, float32: what XGBoost computes in; booleans become 0/1, nulls stay
NaN), and the connection is read-only so that a training run can never alter the lake.

Memory is the constraint at scale (10M rows of 60 columns): DuckDB sorts only the row ids by
time (a few bytes a row, within its own memory limit), then streams the rows unsorted in
Arrow batches, never held whole; each batch's features go straight to their sorted places in
one float32 block, the other columns stay in Arrow (put in order once, at the end), and the
frame shares the block's memory. Training also leaves out the
text keys it never reads (TRAINING_KEYS). The measurements behind this are in
bench/NOTES.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.features import FEATURES, KEY_COLUMNS, LABEL_COLUMNS

if TYPE_CHECKING:  # duckdb is imported where it is used: the SageMaker container has none
    import duckdb

TABLE = "curated.ml_features"
CONTRACT_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, *LABEL_COLUMNS, *FEATURES)
STRING_KEYS = (
    "transaction_id",
    "customer_id",
    "account_id",
    "counterparty_key",
    "transaction_type",
    "channel",
    "direction",
)
# The text keys a training run reads: ids for the fingerprint, the diagnostics and
# precision@k. Accounts, counterparties, types, channels and directions only describe a row
# to a person (their signal is in the features), and as text they cost more memory than any
# feature.
TRAINING_KEYS = ("transaction_id", "customer_id")
# Rows per Arrow batch from DuckDB: a batch is the only part of its result alive at a time.
BATCH_ROWS = 65_536
# DuckDB's own memory while it sorts and streams the mart: its default (80% of RAM) let the
# read keep scanned blocks cached, and a sort beyond the limit spills instead of growing.
READ_MEMORY_LIMIT = "1GB"
# One order for every run, whatever the table's physical order (transaction ids are unique,
# so there are no ties). DuckDB sorts the row ids alone in it: sorting every column spilled
# gigabytes past READ_MEMORY_LIMIT at 10M rows, and sorting in Arrow (sort_indices on the
# string key, then taking every column) was slower with a higher peak.
TIME_ORDER = "order by event_ts, transaction_id"


class FeatureContractError(RuntimeError):
    """The mart's columns differ from ml/features.py: training or scoring would be wrong."""


class FeaturesUnavailableError(RuntimeError):
    """The lake has no readable ml_features mart (not built yet, or the file is locked)."""


def contract_columns(keys: tuple[str, ...] = STRING_KEYS) -> tuple[str, ...]:
    """The contract's columns in contract order, with only `keys` of the text keys."""
    unknown = sorted(set(keys) - set(STRING_KEYS))
    if unknown:
        raise ValueError(f"{unknown} are not text keys of {TABLE}: {list(STRING_KEYS)}")
    return tuple(c for c in CONTRACT_COLUMNS if c not in STRING_KEYS or c in keys)


def check_contract(
    columns: list[str] | tuple[str, ...], expected: tuple[str, ...] = CONTRACT_COLUMNS
) -> None:
    """Fails unless `columns` are exactly `expected` (names; order is not required)."""
    actual = list(columns)
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    duplicated = sorted({c for c in actual if actual.count(c) > 1})
    if missing or extra or duplicated:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        if duplicated:
            parts.append(f"duplicated {duplicated}")
        raise FeatureContractError(
            f"{TABLE} does not match the feature contract in ml/features.py: "
            + "; ".join(parts)
            + ". Rebuild the mart (`banklake build`) or update the contract and retrain."
        )


@dataclass(frozen=True)
class FeatureSource:
    """Where the mart lives: the lake's DuckDB file (tests may point at another file)."""

    database: Path

    def connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        if not self.database.exists():
            raise FeaturesUnavailableError(
                f"no database at {self.database}: run `banklake build` (or `make demo`) first"
            )
        try:
            con = duckdb.connect(str(self.database), read_only=True)
        except duckdb.IOException as error:
            raise FeaturesUnavailableError(
                f"cannot open {self.database} read-only ({error}); is dbt writing to it?"
            ) from error
        con.execute("set enable_progress_bar = false")
        return con

    def columns(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        rows = con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'curated' and table_name = 'ml_features' "
            "order by ordinal_position"
        ).fetchall()
        if not rows:
            raise FeaturesUnavailableError(
                f"{TABLE} does not exist in {self.database}: build it with "
                "`banklake build --select ml_features` (or `make demo`)"
            )
        return [row[0] for row in rows]


def date_range(source: FeatureSource) -> tuple[date, date]:
    """First and last event_date in the mart."""
    with source.connect() as con:
        check_contract(source.columns(con))
        # an aggregate's one row; both None on an empty mart
        first, last = cast(
            "tuple[date | None, date]",
            con.execute(f"select min(event_date), max(event_date) from {TABLE}").fetchone(),
        )
    if first is None:
        raise FeaturesUnavailableError(f"{TABLE} in {source.database} is empty")
    return first, last


def load_features(
    source: FeatureSource,
    start: date | None = None,
    end: date | None = None,
    *,
    keys: tuple[str, ...] = STRING_KEYS,
) -> pd.DataFrame:
    """The mart's rows with start <= event_date <= end (inclusive; None = unbounded), contract
    columns in contract order, sorted by (event_ts, transaction_id) so every run sees the same
    row order. Features come back as float32. `keys`: the text keys to keep (training asks
    for TRAINING_KEYS only); every other contract column is always there."""
    columns = contract_columns(keys)
    select = ", ".join(select_expression(c) for c in columns)
    where, params = [], []
    if start is not None:
        where.append("event_date >= ?")
        params.append(start)
    if end is not None:
        where.append("event_date <= ?")
        params.append(end)
    condition = (" where " + " and ".join(where)) if where else ""
    with source.connect() as con:
        check_contract(source.columns(con))
        con.execute(f"set memory_limit = '{READ_MEMORY_LIMIT}'")
        con.execute("begin transaction")  # both reads see the same rows
        order = con.execute(
            f"select rowid from {TABLE}{condition} {TIME_ORDER}", params
        ).fetchnumpy()["rowid"]
        reader = con.execute(
            f"select rowid as {_ROW}, {select} from {TABLE}{condition}", params
        ).to_arrow_reader(BATCH_ROWS)
        block, streamed, source_rows = _read_batches(reader, _places(np.asarray(order)))
        con.execute("commit")
    # in order once DuckDB's memory is given back (the connection closed)
    frame = _to_pandas(streamed.take(source_rows))
    del streamed
    frame = normalize_frame(pd.concat([frame, _block_frame(block)], axis=1), keys=keys)
    # Arrow's allocator keeps what the batches freed for reuse that never comes (the rest of
    # training allocates through numpy and XGBoost), given back here.
    pa.default_memory_pool().release_unused()
    return frame


# The type each contract column is read as, whatever the mart stores (features are bigint,
# integer, boolean or double there): spelled so that DuckDB and Athena (Trino) both accept it,
# so the local loader and `banklake score --target athena` read the same types. Features are
# REAL (float32) in both, what the model computes in: half the bytes of DOUBLE through
# DuckDB's sort of the mart and in Athena's UNLOAD, and no value the model would see differs
# (a double narrowed in SQL or in numpy rounds the same way).
FEATURE_TYPE = "real"
TIMESTAMP_COLUMNS = ("event_ts", "label_reported_at")
COLUMN_TYPES: dict[str, str] = {
    **{column: "varchar" for column in (*STRING_KEYS, "label_scenario")},
    **{column: "timestamp" for column in TIMESTAMP_COLUMNS},
    "event_date": "date",
    "amount_brl": "double",
    "label_is_fraud": "boolean",
    **{feature: FEATURE_TYPE for feature in FEATURES},
}


def select_expression(column: str, *, timestamp: str = "timestamp") -> str:
    """The cast that gives `column` its contract type (COLUMN_TYPES) whatever the mart's
    storage type, in SQL both engines run; `timestamp` is the timestamp type to cast to
    (Athena's UNLOAD writes timestamp(3), its Hive writer's milliseconds). A missing label
    is false."""
    kind = timestamp if column in TIMESTAMP_COLUMNS else COLUMN_TYPES[column]
    if column == "label_is_fraud":
        return f"coalesce(cast({column} as {kind}), false) as {column}"
    return f"cast({column} as {kind}) as {column}"


_ROW = "_row"  # the streamed rows' DuckDB row id


def _places(order: np.ndarray) -> np.ndarray:
    """For each row id, its place in `order` (the row ids in time order); -1 for an id that
    is not in it."""
    places = np.full(int(order.max()) + 1 if order.size else 0, -1, dtype=np.int64)
    places[order] = np.arange(order.size)
    return places


def _read_batches(
    reader: pa.RecordBatchReader, places: np.ndarray
) -> tuple[np.ndarray, pa.Table, np.ndarray]:
    """(features as one (feature, row) float32 block in the order of `places` (_places),
    the other columns as an Arrow table in the order DuckDB streamed them, and for each
    place the streamed row that goes there: table.take() of it puts them in order). Each
    batch's features are copied into their places in the block that was allocated once, so
    neither DuckDB's whole result nor a second copy of the features ever exists; nulls
    become NaN."""
    rows = int(np.count_nonzero(places >= 0))
    block = np.empty((len(FEATURES), rows), dtype=np.float32)
    others: list[pa.RecordBatch] = []
    streamed: list[np.ndarray] = []
    for batch in reader:
        ids = batch.column(_ROW).to_numpy()
        at = places[ids[ids < places.size]] if ids.size else ids
        if at.size != ids.size or np.any(at < 0):
            raise FeaturesUnavailableError(f"{TABLE} changed while it was read; read it again")
        for index, feature in enumerate(FEATURES):
            block[index, at] = batch.column(feature).to_numpy(zero_copy_only=False)
        others.append(_own_copy(batch.drop_columns([_ROW, *FEATURES])))
        streamed.append(at)
    kept = pa.schema(
        [field for field in reader.schema if field.name != _ROW and field.name not in FEATURES]
    )
    table = pa.Table.from_batches(others, schema=kept)
    del others
    got = np.concatenate(streamed) if streamed else np.zeros(0, dtype=np.int64)
    if got.size != rows:
        raise FeaturesUnavailableError(f"{TABLE} changed while it was read; read it again")
    # the streamed row in each place: its inverse (every place is filled exactly once)
    source = np.empty(rows, dtype=np.int64)
    source[got] = np.arange(rows)
    return block, table, source


def _own_copy(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` in buffers of its own. A batch imported from DuckDB keeps every column of the
    original batch alive while any one of them is referenced (one release for the whole C
    struct), so keeping the non-feature columns as they came kept the features too, until
    the frame was built."""
    return pa.RecordBatch.from_arrays(
        [pa.concat_arrays([column]) for column in batch.columns], schema=batch.schema
    )


def _block_frame(block: np.ndarray) -> pd.DataFrame:
    """The features as frame columns that are views of the block's rows (no copy: one
    pandas block per column, never consolidated into a second 2-D array)."""
    return pd.DataFrame(dict(zip(FEATURES, block, strict=True)), copy=False)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """One block per column (no consolidation copy), Arrow's buffers released as they
    convert, text kept in Arrow (pandas' "string" dtype), not as Python objects."""

    def strings(kind: pa.DataType) -> pd.StringDtype | None:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return pd.StringDtype("pyarrow")
        return None

    return table.to_pandas(self_destruct=True, split_blocks=True, types_mapper=strings)


def normalize_frame(frame: pd.DataFrame, *, keys: tuple[str, ...] = STRING_KEYS) -> pd.DataFrame:
    """Contract order and types, whatever produced the frame (the mart, a test, SageMaker),
    with only `keys` of the text keys. Conversions that are already satisfied copy nothing
    (pandas copy-on-write)."""
    columns = contract_columns(keys)
    check_contract(list(frame.columns), columns)
    out = frame.loc[:, list(columns)]
    for column in (*keys, "label_scenario"):
        out[column] = out[column].astype(pd.StringDtype("pyarrow"))
    for column in ("event_ts", "label_reported_at", "event_date"):
        out[column] = pd.to_datetime(out[column]).astype("datetime64[us]")
    out["amount_brl"] = out["amount_brl"].astype("float64")
    out["label_is_fraud"] = out["label_is_fraud"].fillna(False).astype(bool)
    for feature in FEATURES:
        if out[feature].dtype != np.float32:  # to_numeric copies even a float32 column
            out[feature] = pd.to_numeric(out[feature], errors="raise").astype("float32")
    return out.reset_index(drop=True)


def row_blocks(rows: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` rows covering 0..rows: scoring a large set a
    block at a time bounds the copies a scorer makes of its input (each row's score does
    not depend on the others)."""
    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The model input: FEATURES in contract order, float32 (what XGBoost uses internally)."""
    return frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float32, na_value=np.nan)


def feature_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The same input without building the matrix: FEATURES in contract order as float32
    columns that share the frame's memory (copy-on-write). XGBoost reads such columns one by
    one; the matrix would be another copy of every feature."""
    columns = frame.loc[:, list(FEATURES)]
    if not all(columns.dtypes == np.float32):
        columns = columns.astype(np.float32)
    return columns


def load_labels(source: FeatureSource, start: date, end: date) -> pd.DataFrame:
    """transaction_id, event_date and the label as known now, for start..end (monitoring)."""
    with source.connect() as con:
        check_contract(source.columns(con))
        frame = con.execute(
            "select cast(transaction_id as varchar) as transaction_id, "
            "cast(event_date as date) as event_date, "
            "coalesce(cast(label_is_fraud as boolean), false) as label_is_fraud "
            f"from {TABLE} where event_date >= ? and event_date <= ?",
            [start, end],
        ).df()
    frame["transaction_id"] = frame["transaction_id"].astype("string")
    frame["event_date"] = pd.to_datetime(frame["event_date"]).astype("datetime64[us]")
    frame["label_is_fraud"] = frame["label_is_fraud"].astype(bool)
    return frame
