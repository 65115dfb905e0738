"""Customers and accounts: who exists, how they change day to day, and their daily extracts.

The population is numeric arrays only (names are indices, CPFs and keys are derived from
numbers), so it stores losslessly as Parquet and every update is a vectorized assignment.
Index i of the customer arrays is customer number i+1; index j of the account arrays is
account number j+1: nothing is ever deleted, closing is a status.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from python_jobs.generate import formatting as fmt
from python_jobs.generate import reference as ref
from python_jobs.generate.world import sample_cities

BEN_SLOTS = 8  # habitual PIX beneficiaries kept per customer
DAYS_PER_YEAR = 365.25

CUSTOMER_DTYPES: dict[str, type] = {
    "cust_no": np.int64,
    "first": np.int16,
    "last1": np.int16,
    "last2": np.int16,
    "pj_suffix": np.int16,
    "birth": np.int32,
    "segment": np.int8,
    "income": np.float64,
    "risk": np.int8,
    "onboard": np.int32,
    "city": np.int16,
    "updated_day": np.int32,
    "updated_sec": np.int32,
    "activity": np.float64,
    "amount_scale": np.float64,
    "night_pref": np.float64,
    "mobile_pref": np.float64,
    "device1": np.int64,
    "device2": np.int64,
    "n_ben": np.int8,
    "ben": np.int64,
    "checking": np.int64,
    "savings": np.int64,
    "card": np.int64,
    "mule_start": np.int32,
    "mule_end": np.int32,
}
ACCOUNT_DTYPES: dict[str, type] = {
    "acct_no": np.int64,
    "cust_no": np.int64,
    "kind": np.int8,
    "opened": np.int32,
    "status": np.int8,
    "limit": np.float64,
    "updated_day": np.int32,
    "updated_sec": np.int32,
}

# Relative transaction activity and ticket size by segment (PJ moves money all day long).
_SEGMENT_ACTIVITY = np.array([1.0, 1.25, 0.9, 2.2])
_SEGMENT_AMOUNT = np.array([1.0, 2.2, 5.0, 3.5])
_SAVINGS_P = np.array([0.42, 0.55, 0.60, 0.20])
_CARD_P = np.array([0.55, 0.85, 0.95, 0.0])  # ~62% of PF overall; PJ cards are out of scope
_STATUS_P = np.array([[0.985, 0.010, 0.005], [0.950, 0.005, 0.045], [0.960, 0.025, 0.015]])

# Daily hazards of the slow changes that make SCD2 history.
NEW_CUSTOMER_RATE = 0.001
CHANGE_RATE = 0.003
_CHANGE_KIND_P = np.array([0.40, 0.25, 0.10, 0.25])  # income, address, segment upgrade, risk
INCOME, ADDRESS, UPGRADE, RISK = range(4)

Columns = dict[str, np.ndarray]


def conform(columns: Columns, dtypes: dict[str, type]) -> Columns:
    """Casts to the declared dtypes, so in-memory and reloaded state compute identically."""
    return {name: np.ascontiguousarray(columns[name], dtype=dt) for name, dt in dtypes.items()}


def concat(a: Columns, b: Columns) -> Columns:
    return {name: np.concatenate([a[name], b[name]]) for name in a}


def business_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """When back-office changes happen: 08:00-19:00."""
    return rng.integers(8 * 3600, 19 * 3600, size=n).astype(np.int32)


@dataclass
class Population:
    customers: Columns
    accounts: Columns

    @property
    def n_customers(self) -> int:
        return int(self.customers["cust_no"].size)

    def conform(self) -> None:
        self.customers = conform(self.customers, CUSTOMER_DTYPES)
        self.accounts = conform(self.accounts, ACCOUNT_DTYPES)

    def account_active(self, acct_no: np.ndarray) -> np.ndarray:
        """True where the account exists (number > 0) and is active."""
        idx = np.maximum(acct_no, 1) - 1
        return (acct_no > 0) & (self.accounts["status"][idx] == ref.ACTIVE)

    def can_transact(self, day_ordinal: int) -> np.ndarray:
        """Customers onboarded by `day` whose checking account is active."""
        c = self.customers
        return (c["onboard"] <= day_ordinal) & self.account_active(c["checking"])

    def card_usable(self) -> np.ndarray:
        return self.account_active(self.customers["card"])

    def age_years(self, day_ordinal: int) -> np.ndarray:
        return (day_ordinal - self.customers["birth"]) / DAYS_PER_YEAR

    def add(self, customers: Columns, accounts: Columns) -> None:
        self.customers = concat(self.customers, customers)
        self.accounts = concat(self.accounts, accounts)


def initial_population(rng: np.random.Generator, n: int, day_ordinal: int) -> Population:
    """The customers existing at the first generated day, onboarded over past years."""
    empty = Population(
        {k: np.zeros(0 if k != "ben" else (0, BEN_SLOTS), dt) for k, dt in CUSTOMER_DTYPES.items()},
        {k: np.zeros(0, dt) for k, dt in ACCOUNT_DTYPES.items()},
    )
    customers, accounts = new_customers(rng, empty, n, day_ordinal, initial=True)
    empty.add(customers, accounts)
    empty.conform()
    return empty


def new_customers(
    rng: np.random.Generator, pop: Population, n: int, day_ordinal: int, *, initial: bool
) -> tuple[Columns, Columns]:
    """Draws `n` customers numbered after the existing ones, with their accounts."""
    segment = rng.choice(4, size=n, p=ref.SEGMENT_SHARES)
    female = rng.random(n) < 0.5
    n_female, n_first = ref.N_FEMALE_FIRST_NAMES, len(ref.FIRST_NAMES)
    first = np.where(female, rng.integers(0, n_female, n), rng.integers(n_female, n_first, n))
    n_last = len(ref.LAST_NAMES)
    last1 = rng.choice(n_last, size=n, p=ref.LAST_NAME_WEIGHTS)
    last2 = rng.choice(n_last, size=n, p=ref.LAST_NAME_WEIGHTS)
    last2 = np.where(last2 == last1, (last2 + 1) % n_last, last2)  # no 'Silva Silva'
    mean_age = np.array([37.0, 47.0, 52.0, 42.0])[segment]
    age = np.clip(rng.normal(mean_age, 13.0), 18.5, 88.0)
    birth = day_ordinal - (age * DAYS_PER_YEAR).astype(np.int64)
    income = ref.INCOME_MEDIAN[segment] * np.exp(ref.INCOME_SIGMA[segment] * rng.normal(size=n))
    income = np.round(np.maximum(income, ref.INCOME_FLOOR[segment]), 2)
    risk = (rng.random(n)[:, None] > np.cumsum(ref.RISK_PROBS[segment], axis=1)).sum(axis=1)
    risk = np.minimum(risk, len(ref.RISK_RATINGS) - 1)
    if initial:
        tenure = np.clip(rng.gamma(1.3, 1100.0, size=n), 1, 25 * 365).astype(np.int64)
        adult = birth + int(18 * DAYS_PER_YEAR)
        onboard = np.minimum(np.maximum(day_ordinal - tenure, adult), day_ordinal - 1)
        updated = onboard + (rng.random(n) * (day_ordinal - onboard)).astype(np.int64)
    else:
        onboard = np.full(n, day_ordinal)
        updated = onboard.copy()
    activity = rng.gamma(2.0, 0.5, size=n) * _SEGMENT_ACTIVITY[segment]
    activity /= float(ref.SEGMENT_SHARES @ _SEGMENT_ACTIVITY)
    relative_income = income / ref.INCOME_MEDIAN[segment]
    amount_scale = relative_income**0.5 * rng.lognormal(0.0, 0.35, n) * _SEGMENT_AMOUNT[segment]
    young = age < 30
    night_pref = np.clip(0.012 * rng.lognormal(0.0, 1.0, n) * np.where(young, 1.8, 1.0), 0, 0.35)
    mobile_pref = np.where(age > 62, rng.beta(2.0, 3.0, n), rng.beta(6.0, 1.5, n))
    device1 = rng.integers(1, 2**56, size=n)
    device2 = np.where(
        rng.random(n) < np.where(segment == ref.PJ, 0.5, 0.3), rng.integers(1, 2**56, size=n), 0
    )
    n_ben = np.clip(2 + rng.poisson(2.5, n), 1, BEN_SLOTS)
    ben = rng.integers(1, fmt.PIX_KEY_MASK, size=(n, BEN_SLOTS))
    ben[np.arange(BEN_SLOTS)[None, :] >= n_ben[:, None]] = 0
    first_no = pop.n_customers + 1
    customers: Columns = {
        "cust_no": np.arange(first_no, first_no + n),
        "first": first,
        "last1": last1,
        "last2": last2,
        "pj_suffix": rng.integers(0, len(ref.PJ_SUFFIXES), n),
        "birth": birth,
        "segment": segment,
        "income": income,
        "risk": risk,
        "onboard": onboard,
        "city": sample_cities(rng, n),
        "updated_day": updated,
        "updated_sec": business_seconds(rng, n),
        "activity": activity,
        "amount_scale": amount_scale,
        "night_pref": night_pref,
        "mobile_pref": mobile_pref,
        "device1": device1,
        "device2": device2,
        "n_ben": n_ben,
        "ben": ben,
        "checking": np.zeros(n),
        "savings": np.zeros(n),
        "card": np.zeros(n),
        "mule_start": np.zeros(n),
        "mule_end": np.zeros(n),
    }
    customers = conform(customers, CUSTOMER_DTYPES)
    has_savings = rng.random(n) < _SAVINGS_P[segment]
    has_card = rng.random(n) < _CARD_P[segment]
    local = np.arange(n)
    accounts = open_accounts(
        rng,
        pop,
        customers,
        np.concatenate([local, local[has_savings], local[has_card]]),
        np.concatenate(
            [
                np.full(n, ref.CHECKING),
                np.full(has_savings.sum(), ref.SAVINGS),
                np.full(has_card.sum(), ref.CREDIT_CARD),
            ]
        ),
        day_ordinal,
        initial=initial,
    )
    return customers, accounts


def open_accounts(
    rng: np.random.Generator,
    pop: Population,
    customers: Columns,
    rows: np.ndarray,
    kinds: np.ndarray,
    day_ordinal: int,
    *,
    initial: bool,
) -> Columns:
    """Opens accounts of `kinds` for `customers[rows]`; links them on the customer arrays."""
    order = np.lexsort((kinds, rows))
    rows, kinds = rows[order], kinds[order]
    m = rows.size
    first_no = pop.accounts["acct_no"].size + 1
    acct_no = np.arange(first_no, first_no + m)
    onboard = customers["onboard"][rows].astype(np.int64)
    if initial:
        span = day_ordinal - onboard
        opened = np.where(kinds == ref.CHECKING, onboard, onboard + (rng.random(m) * span))
        opened = opened.astype(np.int64)
        updated = opened + (rng.random(m) * (day_ordinal - opened)).astype(np.int64)
        u = rng.random(m)[:, None]
        status = (u > np.cumsum(_STATUS_P[kinds], axis=1)).sum(axis=1)
    else:
        opened = np.full(m, day_ordinal)
        updated = opened.copy()
        status = np.full(m, ref.ACTIVE)
    income = customers["income"][rows]
    limit = np.round(income * rng.uniform(0.6, 2.5, m) / 50.0) * 50.0
    limit = np.where(kinds == ref.CREDIT_CARD, np.clip(limit, 300.0, 250_000.0), np.nan)
    for kind, column in (
        (ref.CHECKING, "checking"),
        (ref.SAVINGS, "savings"),
        (ref.CREDIT_CARD, "card"),
    ):
        sel = kinds == kind
        customers[column][rows[sel]] = acct_no[sel]
    accounts: Columns = {
        "acct_no": acct_no,
        "cust_no": customers["cust_no"][rows],
        "kind": kinds,
        "opened": opened,
        "status": status,
        "limit": limit,
        "updated_day": updated,
        "updated_sec": business_seconds(rng, m),
    }
    return conform(accounts, ACCOUNT_DTYPES)


@dataclass(frozen=True)
class Changes:
    """Rows of the day's customers and accounts extracts (new or changed)."""

    customers: np.ndarray
    accounts: np.ndarray


def evolve(rng: np.random.Generator, pop: Population, day_ordinal: int) -> Changes:
    """One day of onboarding, profile changes and account events."""
    c, a = pop.customers, pop.accounts
    n_old, m_old = pop.n_customers, a["acct_no"].size
    changed_c: list[np.ndarray] = []
    changed_a: list[np.ndarray] = []
    existing = np.flatnonzero(c["onboard"] < day_ordinal)

    m = rng.binomial(existing.size, CHANGE_RATE)
    who = np.sort(rng.choice(existing, size=m, replace=False))
    kind = rng.choice(4, size=m, p=_CHANGE_KIND_P)
    old_income = c["income"][who].copy()
    seg = c["segment"][who]
    new_income = old_income * rng.lognormal(0.04, 0.15, m)
    upgrade = (kind == UPGRADE) & (seg <= ref.ALTA_RENDA)
    upgraded_seg = np.where(seg == ref.VAREJO, ref.ALTA_RENDA, ref.PRIVATE)
    new_income = np.where(
        upgrade,
        np.maximum(old_income * rng.uniform(2.0, 4.0, m), ref.INCOME_FLOOR[upgraded_seg] * 1.1),
        new_income,
    )
    income_changes = (kind == INCOME) | upgrade
    c["income"][who] = np.where(income_changes, np.round(new_income, 2), old_income)
    c["segment"][who] = np.where(upgrade, upgraded_seg, seg)
    c["amount_scale"][who] *= (c["income"][who] / old_income) ** 0.5
    risk_change = (kind == RISK) | ((kind == UPGRADE) & ~upgrade)
    step = np.where(rng.random(m) < 0.5, -1, 1)
    c["risk"][who] = np.where(risk_change, np.clip(c["risk"][who] + step, 0, 4), c["risk"][who])
    moves = who[kind == ADDRESS]
    c["city"][moves] = _new_city(rng, c["city"][moves])
    c["updated_day"][who] = day_ordinal
    c["updated_sec"][who] = business_seconds(rng, m)
    changed_c.append(who)
    # A raise moves the credit limit with it, most of the time.
    card = c["card"][who]
    relimit = income_changes & (card > 0) & (rng.random(m) < 0.6)
    acct = card[relimit] - 1
    ratio = c["income"][who][relimit] / old_income[relimit]
    a["limit"][acct] = np.clip(np.round(a["limit"][acct] * ratio / 50.0) * 50.0, 300, 250_000)
    changed_a.append(_touch(rng, a, acct, day_ordinal))

    # Hidden drift (no extract row): new phones, new habitual beneficiaries.
    phones = existing[rng.random(existing.size) < 0.0005]
    c["device1"][phones] = rng.integers(1, 2**56, size=phones.size)
    drift = existing[rng.random(existing.size) < 0.002]
    slot = (rng.random(drift.size) * c["n_ben"][drift]).astype(np.int64)
    c["ben"][drift, slot] = rng.integers(1, fmt.PIX_KEY_MASK, size=drift.size)

    # Account events: blocks, unblocks, closures.
    u = rng.random(m_old)
    status = a["status"]
    block = (status == ref.ACTIVE) & (u < 0.0003)
    unblock = (status == ref.BLOCKED) & (u < 0.05)
    close = (status == ref.ACTIVE) & (a["kind"] == ref.SAVINGS) & (u > 1 - 0.0002)
    status[block] = ref.BLOCKED
    status[unblock] = ref.ACTIVE
    status[close] = ref.CLOSED
    changed_a.append(_touch(rng, a, np.flatnonzero(block | unblock | close), day_ordinal))

    # Existing customers opening products.
    u = rng.random(existing.size)
    seg = c["segment"][existing]
    want_savings = existing[(c["savings"][existing] == 0) & (u < 0.0003)]
    want_card = existing[(c["card"][existing] == 0) & (seg != ref.PJ) & (u > 1 - 0.0003)]
    rows = np.concatenate([want_savings, want_card])
    kinds = np.concatenate(
        [np.full(want_savings.size, ref.SAVINGS), np.full(want_card.size, ref.CREDIT_CARD)]
    )
    opened = open_accounts(rng, pop, c, rows, kinds, day_ordinal, initial=False)
    pop.accounts = conform(concat(a, opened), ACCOUNT_DTYPES)

    # Onboarding.
    k = rng.poisson(NEW_CUSTOMER_RATE * n_old)
    customers, accounts = new_customers(rng, pop, k, day_ordinal, initial=False)
    pop.add(customers, accounts)
    pop.conform()
    changed_a.append(np.arange(m_old, pop.accounts["acct_no"].size))
    changed_c.append(np.arange(n_old, pop.n_customers))
    return Changes(np.unique(np.concatenate(changed_c)), np.unique(np.concatenate(changed_a)))


def _touch(rng: np.random.Generator, accounts: Columns, idx: np.ndarray, day: int) -> np.ndarray:
    accounts["updated_day"][idx] = day
    accounts["updated_sec"][idx] = business_seconds(rng, idx.size)
    return idx


def _new_city(rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
    """Moves: 70% within the same UF, the rest anywhere (by population)."""
    uf = ref.CITY_UF[city]
    uf_start = np.searchsorted(ref.CITY_UF, uf, side="left")
    uf_count = np.searchsorted(ref.CITY_UF, uf, side="right") - uf_start
    same_uf = uf_start + (rng.random(city.size) * uf_count).astype(np.int64)
    anywhere = sample_cities(rng, city.size)
    return np.where(rng.random(city.size) < 0.7, same_uf, anywhere).astype(np.int16)


def customers_table(pop: Population, idx: np.ndarray, salt: int) -> pa.Table:
    """The customers feed rows for customers `idx`, as they are now."""
    c = pop.customers
    take = {name: c[name][idx] for name in c}
    first = ref.FIRST_NAME_ARRAY.take(pa.array(take["first"]))
    last1 = ref.LAST_NAME_ARRAY.take(pa.array(take["last1"]))
    last2 = ref.LAST_NAME_ARRAY.take(pa.array(take["last2"]))
    person = pc.binary_join_element_wise(first, last1, last2, " ")
    company = pc.binary_join_element_wise(
        last1, ref.PJ_SUFFIX_ARRAY.take(pa.array(take["pj_suffix"])), " "
    )
    full_name = pc.if_else(pa.array(take["segment"] == ref.PJ), company, person)
    cpf = fmt.format_cpf(fmt.cpf_digits(fmt.cpf_roots(take["cust_no"], salt)))
    city = take["city"].astype(np.int64)
    address = pa.StructArray.from_arrays(
        [ref.CITY_UF_ARRAY.take(pa.array(city)), ref.CITY_NAME_ARRAY.take(pa.array(city))],
        names=["state", "city"],
    )
    return pa.table(
        {
            "customer_id": fmt.ids("C", take["cust_no"], 7),
            "full_name": full_name,
            "cpf": cpf,
            "birth_date": fmt.dates(take["birth"]),
            "segment": ref.SEGMENT_ARRAY.take(pa.array(take["segment"])),
            "monthly_income": pa.array(take["income"]),
            "risk_rating": ref.RISK_ARRAY.take(pa.array(take["risk"])),
            "onboarding_date": fmt.dates(take["onboard"]),
            "address": address,
            "updated_at": fmt.timestamps(take["updated_day"], take["updated_sec"]),
        }
    )


def accounts_table(pop: Population, idx: np.ndarray) -> pa.Table:
    """The accounts feed rows for accounts `idx`, as they are now."""
    a = pop.accounts
    limit = a["limit"][idx]
    return pa.table(
        {
            "account_id": fmt.ids("A", a["acct_no"][idx], 8),
            "customer_id": fmt.ids("C", a["cust_no"][idx], 7),
            "account_type": ref.ACCOUNT_TYPE_ARRAY.take(pa.array(a["kind"][idx])),
            "opened_date": fmt.dates(a["opened"][idx]),
            "status": ref.ACCOUNT_STATUS_ARRAY.take(pa.array(a["status"][idx])),
            "credit_limit": pa.array(limit, mask=np.isnan(limit)),
            "updated_at": fmt.timestamps(a["updated_day"][idx], a["updated_sec"][idx]),
        }
    )
