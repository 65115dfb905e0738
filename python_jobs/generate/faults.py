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
from python_jobs.generate.transactions import as_text

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


def _variant_codes(
    variants: dict[str, tuple[str, ...]], canonical: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Where each canonical value's misspellings start in its vocabulary, and how many."""
    counts = np.array([len(variants[c]) for c in canonical])
    return len(canonical) + np.concatenate([[0], np.cumsum(counts)[:-1]]), counts


_TYPE_VARIANTS = _variant_codes(ref.TYPE_VARIANTS, ref.TRANSACTION_TYPES)
_CHANNEL_VARIANTS = _variant_codes(ref.CHANNEL_VARIANTS, ref.CHANNELS)
_UNKNOWN_TYPE_START = ref.TYPE_VOCABULARY.index(ref.UNKNOWN_TRANSACTION_TYPES[0])


def _variant(
    variants: tuple[np.ndarray, np.ndarray], codes: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Vocabulary index of a misspelling of each row's canonical value (canonical codes
    are their own vocabulary indices)."""
    start, count = variants
    return start[codes] + (u * count[codes]).astype(np.int64)


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


@dataclass(frozen=True)
class FaultPlan:
    """Which of the day's rows (positions in time order, 0..n-1) carry which defect.

    Decided on numbers, before any text exists, so late rows are never rendered into
    today's file only to be filtered out again, and re-delivered rows are rendered once
    where they land.
    """

    n: int
    rows: np.ndarray  # sorted positions of the faulty rows
    kind: np.ndarray  # index into TRANSACTION_FAULTS, per faulty row
    u: np.ndarray  # a uniform draw per faulty row (which variant, which bad value)
    late_days: np.ndarray
    next_day: np.ndarray  # duplicates: re-delivered tomorrow rather than today

    def of(self, fault: str) -> np.ndarray:
        return self.kind == TRANSACTION_FAULTS.index(fault)

    @property
    def late(self) -> np.ndarray:
        return self.rows[self.of(LATE_ARRIVAL)]

    @property
    def same_day_duplicates(self) -> np.ndarray:
        return self.rows[self.of(DUPLICATE_DELIVERY) & ~self.next_day]

    @property
    def next_day_duplicates(self) -> np.ndarray:
        return self.rows[self.of(DUPLICATE_DELIVERY) & self.next_day]

    @property
    def n_today(self) -> int:
        return self.n - self.late.size + self.same_day_duplicates.size

    def layout(self) -> np.ndarray:
        """The positions to render, in order: today's file (every row but the late ones,
        then today's re-deliveries), then the rows owed to later days (late, then
        tomorrow's re-deliveries)."""
        keep = np.ones(self.n, dtype=bool)
        keep[self.late] = False
        return np.concatenate(
            [
                np.flatnonzero(keep),
                self.same_day_duplicates,
                self.late,
                self.next_day_duplicates,
            ]
        ).astype(np.int64)


def plan_transaction_faults(rng: np.random.Generator, legit: np.ndarray, rate: float) -> FaultPlan:
    """Damages `rate` of the day's rows (drawn among clean legit ones), one defect each."""
    n = legit.size
    pool = np.flatnonzero(legit)
    k = min(int(rng.binomial(n, rate)), pool.size)
    rows = np.sort(rng.choice(pool, size=k, replace=False))
    kind = rng.choice(len(TRANSACTION_FAULTS), size=k, p=list(TRANSACTION_FAULT_WEIGHTS.values()))
    u = rng.random(k)
    late_days = rng.integers(1, MAX_LATE_DAYS + 1, k)
    next_day = rng.random(k) < 0.5
    return FaultPlan(n, rows, kind, u, late_days, next_day)


@dataclass(frozen=True)
class TransactionFaults:
    today: pa.Table  # the day's own rows, faults applied (late rows removed, same-day dups in)
    carry: pa.Table  # rows for later partitions, as text: payload + _due + _fault
    counts: dict[str, int]  # faults present in `today`


def apply_transaction_faults(
    table: pa.Table, plan: FaultPlan, day_ordinal: int
) -> TransactionFaults:
    """Damages the rendered rows of `plan.layout()` and splits them into today's file and
    the rows owed to later days.

    Each edit touches only what it must: a missing value is a new validity bitmap over the
    same strings, a misspelled or unknown type or channel a new dictionary index, and the
    two columns whose text changes (event_ts, amount) are copied once each.
    """
    today = table.slice(0, plan.n_today)
    columns = {name: fmt.single(today[name]) for name in today.column_names}
    # Faulty rows are never late, so their place in today's file is their position minus
    # the late rows before them.
    at = plan.rows - np.searchsorted(plan.late, plan.rows)
    _damage_text(columns, plan, at)
    _damage_codes(columns, plan, at)
    for fault, column in (
        ("missing_transaction_id", "transaction_id"),
        ("missing_account_id", "account_id"),
        ("missing_customer_id", "customer_id"),
        ("missing_event_ts", "event_ts"),
    ):
        columns[column] = fmt.with_nulls(columns[column], _mask(len(today), at[plan.of(fault)]))
    counts = {fault: int(plan.of(fault).sum()) for fault in TRANSACTION_FAULTS}
    counts[LATE_ARRIVAL] = 0
    counts[DUPLICATE_DELIVERY] = int(plan.same_day_duplicates.size)
    carry = _carry(table.slice(plan.n_today), plan, day_ordinal)
    return TransactionFaults(pa.table(columns), carry, counts)


def _damage_text(columns: dict[str, pa.Array], plan: FaultPlan, at: np.ndarray) -> None:
    """Unparseable timestamps and missing, unparseable or non-positive amounts, derived
    from each row's own clean text."""

    def edit(
        fault: str, make: Callable[[pa.Array, np.ndarray], pa.Array], column: str
    ) -> tuple[np.ndarray, pa.Array]:
        sel = plan.of(fault)
        return at[sel], make(columns[column].take(pa.array(at[sel])), plan.u[sel])

    edits = {
        "event_ts": [edit("unparseable_event_ts", _bad_timestamps, "event_ts")],
        "amount": [
            edit("missing_amount", lambda _, u: _missing_amount(u), "amount"),
            edit("unparseable_amount", _bad_amounts, "amount"),
            edit("non_positive_amount", _non_positive, "amount"),
        ],
    }
    for column, pieces in edits.items():
        rows = np.concatenate([r for r, _ in pieces])
        values = pa.concat_arrays([v.cast(pa.string()) for _, v in pieces])
        columns[column] = fmt.replace_rows(columns[column], rows, values)


def _damage_codes(columns: dict[str, pa.Array], plan: FaultPlan, at: np.ndarray) -> None:
    """Unknown types and misspelled types or channels: new indices into the vocabularies
    (a row's current index is its canonical code)."""
    codes = {
        name: columns[name].indices.to_numpy().copy() for name in ("transaction_type", "channel")
    }
    sel = plan.of("unknown_transaction_type")
    unknown = _pick(plan.u[sel], len(ref.UNKNOWN_TRANSACTION_TYPES))
    codes["transaction_type"][at[sel]] = _UNKNOWN_TYPE_START + unknown
    for fault, column, variants in (
        ("misspelled_type", "transaction_type", _TYPE_VARIANTS),
        ("misspelled_channel", "channel", _CHANNEL_VARIANTS),
    ):
        sel = plan.of(fault)
        codes[column][at[sel]] = _variant(variants, codes[column][at[sel]], plan.u[sel])
    for column, values in codes.items():
        indices = pa.array(values, columns[column].indices.type)
        columns[column] = pa.DictionaryArray.from_arrays(indices, columns[column].dictionary)


def _carry(rendered: pa.Table, plan: FaultPlan, day_ordinal: int) -> pa.Table:
    """The rendered rows owed to later days (late, then tomorrow's re-deliveries) as text,
    with the day each is due and why it was held back."""
    late, next_day = plan.late, plan.next_day_duplicates
    due = np.concatenate(
        [
            day_ordinal + plan.late_days[plan.of(LATE_ARRIVAL)],
            np.full(next_day.size, day_ordinal + 1),
        ]
    )
    carry = as_text(rendered).append_column("_due", pa.array(due, pa.int32()))
    reasons = [LATE_ARRIVAL] * late.size + [DUPLICATE_DELIVERY] * next_day.size
    return carry.append_column("_fault", pa.array(reasons, pa.string()))


def _mask(n: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


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
        fmt.with_nulls(column, _mask(n, missing)),
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
