"""Generator state in `<lake>/_generator/`: what `append` needs to continue a lake.

state.json holds the run parameters and the last generated day; Parquet files hold the
population, compromised terminals, and rows owed to future partitions (late arrivals,
re-deliveries, fraud reports not yet due). Everything is numeric or text: no pickle, and
a reloaded state computes exactly what the in-memory one would have.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from python_jobs.generate.faults import empty_carry
from python_jobs.generate.fraud import PENDING_REPORT_SCHEMA, FraudState
from python_jobs.generate.population import (
    ACCOUNT_DTYPES,
    BEN_SLOTS,
    CUSTOMER_DTYPES,
    Columns,
    Population,
    conform,
)
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import TRANSACTIONS

STATE_FILE = "state.json"
FORMAT_VERSION = 1


@dataclass
class GeneratorState:
    seed: int
    customers: int  # customers at the lake's first day (sizes the world)
    tx_per_customer_day: float
    fraud_rate: float
    fault_rate: float
    first_day: date  # first day of the lake
    last_day: date | None  # last generated day; None before the first day is done
    population: Population
    fraud: FraudState
    pending_transactions: pa.Table  # payload + _due + _fault
    pending_reports: pa.Table


def pending_transactions_schema() -> pa.Schema:
    return empty_carry(_payload_schema()).schema


def _payload_schema() -> pa.Schema:
    return pa.schema([pa.field(c, pa.string()) for c in TRANSACTIONS.payload_columns])


def new_pending_transactions() -> pa.Table:
    return empty_carry(_payload_schema())


def _columns_to_table(columns: Columns) -> pa.Table:
    data = {}
    for name, values in columns.items():
        if values.ndim == 2:
            for j in range(values.shape[1]):
                data[f"{name}_{j}"] = values[:, j]
        else:
            data[name] = values
    return pa.table(data)


def _table_to_columns(table: pa.Table, dtypes: dict[str, type]) -> Columns:
    columns: Columns = {}
    for name in dtypes:
        if name == "ben":
            columns[name] = np.column_stack(
                [table[f"ben_{j}"].to_numpy() for j in range(BEN_SLOTS)]
            ).reshape(table.num_rows, BEN_SLOTS)
        else:
            columns[name] = table[name].to_numpy()
    # Arrow hands out read-only views; the day loop updates the population in place.
    return {name: np.array(values, copy=True) for name, values in conform(columns, dtypes).items()}


def _write_parquet(table: pa.Table, path: Path) -> None:
    """State is read back whole by this module only: zstd level 1, no dictionary attempts,
    no statistics (a third of the default settings' time, for a smaller file)."""
    tmp = path.with_name(f".tmp-{path.name}")
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        compression_level=1,
        use_dictionary=False,
        write_statistics=False,
    )
    os.replace(tmp, path)


def has_state(lake: Lake) -> bool:
    return (lake.generator_state / STATE_FILE).exists()


def save_state(lake: Lake, state: GeneratorState) -> None:
    """Writes the Parquet parts first and state.json last: state.json is the commit point."""
    folder = lake.generator_state
    folder.mkdir(parents=True, exist_ok=True)
    pop = state.population
    _write_parquet(_columns_to_table(pop.customers), folder / "customers.parquet")
    _write_parquet(_columns_to_table(pop.accounts), folder / "accounts.parquet")
    fraud = pa.table(
        {"terminal": state.fraud.terminal, "start": state.fraud.start, "end": state.fraud.end}
    )
    _write_parquet(fraud, folder / "compromised_terminals.parquet")
    _write_parquet(state.pending_transactions, folder / "pending_transactions.parquet")
    _write_parquet(state.pending_reports, folder / "pending_reports.parquet")
    meta = {
        "format_version": FORMAT_VERSION,
        "seed": state.seed,
        "customers": state.customers,
        "tx_per_customer_day": state.tx_per_customer_day,
        "fraud_rate": state.fraud_rate,
        "fault_rate": state.fault_rate,
        "first_day": state.first_day.isoformat(),
        "last_day": state.last_day.isoformat() if state.last_day else None,
        "population": {"customers": pop.n_customers, "accounts": int(pop.accounts["acct_no"].size)},
        "pending": {
            "transactions": state.pending_transactions.num_rows,
            "fraud_reports": state.pending_reports.num_rows,
        },
    }
    tmp = folder / f".tmp-{STATE_FILE}"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / STATE_FILE)


def load_state(lake: Lake) -> GeneratorState | None:
    folder = lake.generator_state
    if not has_state(lake):
        return None
    meta = json.loads((folder / STATE_FILE).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version")
        raise RuntimeError(f"{folder / STATE_FILE}: unsupported state format {version}")
    customers = _table_to_columns(pq.read_table(folder / "customers.parquet"), CUSTOMER_DTYPES)
    accounts = _table_to_columns(pq.read_table(folder / "accounts.parquet"), ACCOUNT_DTYPES)
    fraud = pq.read_table(folder / "compromised_terminals.parquet")
    pending_tx = pq.read_table(folder / "pending_transactions.parquet")
    pending_reports = pq.read_table(folder / "pending_reports.parquet")
    return GeneratorState(
        seed=int(meta["seed"]),
        customers=int(meta["customers"]),
        tx_per_customer_day=float(meta["tx_per_customer_day"]),
        fraud_rate=float(meta["fraud_rate"]),
        fault_rate=float(meta["fault_rate"]),
        first_day=date.fromisoformat(meta["first_day"]),
        last_day=date.fromisoformat(meta["last_day"]) if meta["last_day"] else None,
        population=Population(customers, accounts),
        fraud=FraudState(
            terminal=fraud["terminal"].to_numpy().astype(np.int64),
            start=fraud["start"].to_numpy().astype(np.int32),
            end=fraud["end"].to_numpy().astype(np.int32),
        ),
        pending_transactions=pending_tx.cast(pending_transactions_schema()),
        pending_reports=pending_reports.cast(PENDING_REPORT_SCHEMA),
    )
