"""Dirty data: the defects real feeds carry, injected so the processed layer has work to do.

Each faulty row carries exactly one defect and only clean legitimate rows are damaged, so
the downstream rejection reason is unambiguous and fraud labels never point at a rejected
row. Fault kind names are the dbt rejection reason codes; the manifest counts them per
ingestion day, i.e. in the partition where the faulty row physically lands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from python_jobs.generate import formatting as fmt
from python_jobs.generate import reference as ref

DUPLICATE_DELIVERY = "duplicate_delivery"
LATE_ARRIVAL = "late_arrival"
TRANSACTION_FAULT_WEIGHTS: dict[str, float] = {
    DUPLICATE_DELIVERY: 0.15,  # accepted once, the copy is dropped as a duplicate
    LATE_ARRIVAL: 0.15,  # accepted
    "misspelled_type": 0.12,  # accepted after normalization
    "misspelled_channel": 0.12,  # accepted after normalization
    "missing_transaction_id": 0.05,
    "missing_account_id": 0.05,
    "missing_customer_id": 0.05,
    "missing_event_ts": 0.05,
    "unparseable_event_ts": 0.06,
    "missing_amount": 0.05,
    "unparseable_amount": 0.06,
    "non_positive_amount": 0.05,
    "unknown_transaction_type": 0.04,
}
TRANSACTION_FAULTS: tuple[str, ...] = tuple(TRANSACTION_FAULT_WEIGHTS)
ACCEPTED_TRANSACTION_FAULTS = (LATE_ARRIVAL, "misspelled_type", "misspelled_channel")
REJECTED_TRANSACTION_FAULTS: tuple[str, ...] = tuple(
    k for k in TRANSACTION_FAULTS if k not in (*ACCEPTED_TRANSACTION_FAULTS, DUPLICATE_DELIVERY)
)
CUSTOMER_FAULT_WEIGHTS = {DUPLICATE_DELIVERY: 0.5, "invalid_cpf": 0.3, "missing_customer_id": 0.2}
ACCOUNT_FAULT_WEIGHTS = {DUPLICATE_DELIVERY: 0.6, "missing_account_id": 0.4}
FEED_FAULTS: dict[str, tuple[str, ...]] = {
    "transactions": TRANSACTION_FAULTS,
    "customers": tuple(CUSTOMER_FAULT_WEIGHTS),
    "accounts": tuple(ACCOUNT_FAULT_WEIGHTS),
    "fraud_reports": (DUPLICATE_DELIVERY,),
}
EXTRACT_FAULT_RATE = 0.003  # customers and accounts rows
REPORT_RESEND_RATE = 0.005  # fraud reports re-sent in the next day's file
MAX_LATE_DAYS = 5

CARRY_COLUMNS = (("_due", pa.int32()), ("_fault", pa.string()))

_UNPARSEABLE_TS_WORDS = pa.array(["ontem", "hoje 10h"], pa.string())
_UNPARSEABLE_AMOUNT_WORDS = pa.array(["abc", "N/D"], pa.string())
_UNKNOWN_TYPES = pa.array(ref.UNKNOWN_TRANSACTION_TYPES, pa.string())
Make = Callable[[np.ndarray, np.ndarray], pa.Array]  # (rows, uniform draws) -> new values


Variants = tuple[pa.Array, np.ndarray, np.ndarray]  # flat values, start and count per code


def _flat_variants(variants: dict[str, tuple[str, ...]], canonical: tuple[str, ...]) -> Variants:
    flat = [v for c in canonical for v in variants[c]]
    counts = np.array([len(variants[c]) for c in canonical])
    return pa.array(flat, pa.string()), np.concatenate([[0], np.cumsum(counts)[:-1]]), counts


_TYPE_FLAT = _flat_variants(ref.TYPE_VARIANTS, ref.TRANSACTION_TYPES)
_CHANNEL_FLAT = _flat_variants(ref.CHANNEL_VARIANTS, ref.CHANNELS)


def _variant(flat: Variants, codes: np.ndarray, u: np.ndarray) -> pa.Array:
    """A misspelling of each row's canonical value (codes index the canonical tuple)."""
    values, start, count = flat
    return values.take(pa.array(start[codes] + (u * count[codes]).astype(np.int64)))


def _pick(u: np.ndarray, options: int) -> np.ndarray:
    return np.minimum((u * options).astype(np.int64), options - 1)


def _slice(values: pa.Array, start: int, stop: int | None = None) -> pa.Array:
    return pc.utf8_slice_codeunits(values, start, stop if stop is not None else 2**31 - 1)


def _bad_timestamps(original: pa.Array, u: np.ndarray) -> pa.Array:
    """'31/01/2026 10:00', '2026-02-30 10:00:00', 'ontem', '2026-01-31 25:61:00'."""
    year, month, day = _slice(original, 0, 4), _slice(original, 5, 7), _slice(original, 8, 10)
    brazilian = pc.binary_join_element_wise(
        pc.binary_join_element_wise(day, month, year, "/"), _slice(original, 11, 16), " "
    )
    impossible_date = pc.binary_join_element_wise(year, _slice(original, 11, 19), "-02-30 ")
    words = _UNPARSEABLE_TS_WORDS.take(pa.array(_pick(u * 7 % 1, 2)))
    impossible_time = pc.binary_join_element_wise(_slice(original, 0, 10), "25:61:00", " ")
    return pc.choose(
        pa.array(_pick(u, 4), pa.int8()), brazilian, impossible_date, words, impossible_time
    )


def _bad_amounts(original: pa.Array, u: np.ndarray) -> pa.Array:
    """'abc', 'R$ 12,34', '12.3.4'."""
    words = _UNPARSEABLE_AMOUNT_WORDS.take(pa.array(_pick(u * 7 % 1, 2)))
    reais = pc.binary_join_element_wise("R$", pc.replace_substring(original, ".", ","), " ")
    dotted = pc.binary_join_element_wise(
        _slice(original, 0, -3), _slice(original, -2, -1), _slice(original, -1), "."
    )
    return pc.choose(pa.array(_pick(u, 3), pa.int8()), words, reais, dotted)


def _non_positive(original: pa.Array, u: np.ndarray) -> pa.Array:
    negative = pc.binary_join_element_wise("-", original, "")
    return pc.if_else(pa.array(u < 0.3), pa.scalar("0.00"), negative)


def _missing_amount(u: np.ndarray) -> pa.Array:
    """Null or empty: both mean the source sent no amount."""
    return pa.array(np.full(u.size, ""), pa.string(), mask=u < 0.6)


def _nulls(at: np.ndarray, _u: np.ndarray) -> pa.Array:
    return pa.nulls(at.size, pa.string())


def _unknown_types(u: np.ndarray) -> pa.Array:
    """'ESTORNO', 'XPTO'...: types no spelling map knows."""
    return _UNKNOWN_TYPES.take(pa.array(_pick(u, len(_UNKNOWN_TYPES))))


@dataclass(frozen=True)
class TransactionFaults:
    today: pa.Table  # the day's own rows, faults applied (late rows removed, same-day dups in)
    carry: pa.Table  # rows for later partitions: payload + _due + _fault
    counts: dict[str, int]  # faults present in `today`


def transaction_faults(
    rng: np.random.Generator,
    table: pa.Table,
    ttype: np.ndarray,
    channel: np.ndarray,
    legit: np.ndarray,
    day_ordinal: int,
    rate: float,
) -> TransactionFaults:
    """Damages `rate` of the day's rows (drawn among clean legit ones), one defect each."""
    n = table.num_rows
    pool = np.flatnonzero(legit)
    k = min(int(rng.binomial(n, rate)), pool.size)
    rows = np.sort(rng.choice(pool, size=k, replace=False))
    kind = rng.choice(len(TRANSACTION_FAULTS), size=k, p=list(TRANSACTION_FAULT_WEIGHTS.values()))
    u = rng.random(k)
    late_days = rng.integers(1, MAX_LATE_DAYS + 1, k)
    next_day = rng.random(k) < 0.5
    columns = {name: table[name].combine_chunks() for name in table.column_names}

    def old(column: str, at: np.ndarray) -> pa.Array:
        return columns[column].take(pa.array(at))

    # fault -> (column it damages, how: (rows, uniform draws) -> replacement values)
    damage: dict[str, tuple[str, Make]] = {
        "missing_transaction_id": ("transaction_id", _nulls),
        "missing_account_id": ("account_id", _nulls),
        "missing_customer_id": ("customer_id", _nulls),
        "missing_event_ts": ("event_ts", _nulls),
        "unparseable_event_ts": ("event_ts", lambda at, v: _bad_timestamps(old("event_ts", at), v)),
        "missing_amount": ("amount", lambda at, v: _missing_amount(v)),
        "unparseable_amount": ("amount", lambda at, v: _bad_amounts(old("amount", at), v)),
        "non_positive_amount": ("amount", lambda at, v: _non_positive(old("amount", at), v)),
        "unknown_transaction_type": ("transaction_type", lambda at, v: _unknown_types(v)),
        "misspelled_type": ("transaction_type", lambda at, v: _variant(_TYPE_FLAT, ttype[at], v)),
        "misspelled_channel": ("channel", lambda at, v: _variant(_CHANNEL_FLAT, channel[at], v)),
    }
    edits: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}
    for fault, (column, make) in damage.items():
        sel = kind == TRANSACTION_FAULTS.index(fault)
        if sel.any():
            edits.setdefault(column, []).append((rows[sel], make(rows[sel], u[sel])))
    for column, pieces in edits.items():
        at = np.concatenate([p[0] for p in pieces])
        values = pa.concat_arrays([p[1].cast(pa.string()) for p in pieces])
        columns[column] = fmt.replace_rows(columns[column], at, values)
    damaged = pa.table(columns)

    is_late = kind == TRANSACTION_FAULTS.index(LATE_ARRIVAL)
    is_dup = kind == TRANSACTION_FAULTS.index(DUPLICATE_DELIVERY)
    keep = np.ones(n, dtype=bool)
    keep[rows[is_late]] = False
    same_day = rows[is_dup & ~next_day]
    today = pa.concat_tables([damaged.filter(pa.array(keep)), table.take(pa.array(same_day))])
    late = _carry(table, rows[is_late], day_ordinal + late_days[is_late], LATE_ARRIVAL)
    dup = _carry(
        table,
        rows[is_dup & next_day],
        np.full((is_dup & next_day).sum(), day_ordinal + 1),
        DUPLICATE_DELIVERY,
    )
    counts = {fault: int((kind == i).sum()) for i, fault in enumerate(TRANSACTION_FAULTS)}
    counts[LATE_ARRIVAL] = 0
    counts[DUPLICATE_DELIVERY] = int(same_day.size)
    return TransactionFaults(today, pa.concat_tables([late, dup]), counts)


def _carry(table: pa.Table, rows: np.ndarray, due: np.ndarray, fault: str) -> pa.Table:
    carried = table.take(pa.array(rows, pa.int64()))
    carried = carried.append_column("_due", pa.array(np.asarray(due), pa.int32()))
    return carried.append_column("_fault", pa.array([fault] * rows.size, pa.string()))


def empty_carry(payload: pa.Schema) -> pa.Table:
    schema = pa.schema([*payload, *(pa.field(n, t) for n, t in CARRY_COLUMNS)])
    return schema.empty_table()


def deliver_carried(carry: pa.Table, day_ordinal: int) -> tuple[pa.Table, pa.Table, dict]:
    """Splits carried rows into those landing today (payload only) and those still waiting."""
    due = pc.equal(carry["_due"], day_ordinal)
    today = carry.filter(due)
    counts = {d["values"]: d["counts"] for d in pc.value_counts(today["_fault"]).to_pylist()}
    return today.drop_columns(["_due", "_fault"]), carry.filter(pc.invert(due)), counts


def extract_faults(
    rng: np.random.Generator, table: pa.Table, weights: dict[str, float], id_column: str
) -> tuple[pa.Table, dict[str, int]]:
    """Customers / accounts extract defects: duplicated lines, missing ids, invalid CPFs."""
    n = table.num_rows
    k = int(rng.binomial(n, EXTRACT_FAULT_RATE))
    rows = np.sort(rng.choice(n, size=k, replace=False))
    kinds = tuple(weights)
    kind = rng.choice(len(kinds), size=k, p=list(weights.values()))
    u = rng.random(k)
    counts = {fault: int((kind == i).sum()) for i, fault in enumerate(kinds)}
    missing = rows[kind == kinds.index(f"missing_{id_column}")]
    column = table[id_column].combine_chunks()
    table = table.set_column(
        table.schema.get_field_index(id_column),
        id_column,
        fmt.with_nulls(column, np.isin(np.arange(n), missing)),
    )
    if "invalid_cpf" in kinds:
        sel = kind == kinds.index("invalid_cpf")
        table = _break_cpf(table, rows[sel], u[sel])
    duplicates = rows[kind == kinds.index(DUPLICATE_DELIVERY)]
    return pa.concat_tables([table, table.take(pa.array(duplicates, pa.int64()))]), counts


def _break_cpf(table: pa.Table, rows: np.ndarray, u: np.ndarray) -> pa.Table:
    """Replaces the last check digit with any other digit: the CPF no longer validates."""
    cpf = table["cpf"].combine_chunks()
    original = cpf.take(pa.array(rows, pa.int64()))
    last = pc.cast(_slice(original, 13, 14), pa.int64()).to_numpy(zero_copy_only=False)
    wrong = (last + 1 + _pick(u, 9)) % 10
    broken = pc.binary_join_element_wise(
        _slice(original, 0, 13), fmt.fixed_width(rows.size, fmt.digits(wrong, 1)), ""
    )
    return table.set_column(
        table.schema.get_field_index("cpf"), "cpf", fmt.replace_rows(cpf, rows, broken)
    )


def report_resends(rng: np.random.Generator, n_reports: int) -> np.ndarray:
    """Which of today's new reports the source sends again tomorrow."""
    k = int(rng.binomial(n_reports, REPORT_RESEND_RATE))
    return np.sort(rng.choice(n_reports, size=k, replace=False))
