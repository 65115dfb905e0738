"""Fraud mechanisms the model was not designed for: small datasets in a user's own format.

Each dataset is a bank of card holders paying at terminals (and, for account takeover, PIX
transfers from their phones) where fraud is exactly ONE mechanism, written as a CSV with a
mapping for `banklake import`, the way a user brings their own data. None of it comes from
banklake's generator (python_jobs/generate/): other customers, other amounts, other
counterparties, other fraud, so a model that only fits our generator fails here.

The legitimate world follows the textbook card-fraud simulation: customers and terminals
on a 100 x 100 map, each customer paying at the terminals within a radius, with their own
mean amount and daily rate, times around midday. The mechanisms:

- amount_threshold: every transaction above a fixed amount is fraud.
- compromised_counterparty: terminals are compromised at random; every transaction at one
  is fraud for the following weeks.
- compromised_customer: customers' cards are compromised; for the following days a share of
  their transactions are fraud, with amounts multiplied by a factor.
- account_takeover: a customer's account is taken over from a device never seen for them,
  mostly at night, and drained by PIX to beneficiaries they never paid (a ring's keys).

Every parameter (the threshold, how many counterparties or customers, how long, the factor,
the share at night, the label delay) is drawn from the seed: the benchmark is a family of
datasets, not one to tune on. Vectorized numpy; a few seconds for 100k transactions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import yaml

MECHANISMS: tuple[str, ...] = (
    "amount_threshold",
    "compromised_counterparty",
    "compromised_customer",
    "account_takeover",
)
DAY_SECONDS = 86_400
MAP_SIZE = 100.0


@dataclass(frozen=True)
class WorldConfig:
    """The legitimate bank: sizes only; every behaviour parameter comes from the seed."""

    customers: int = 1000
    terminals: int = 2000
    days: int = 49
    start_date: date = date(2026, 1, 5)
    seed: int = 1
    terminals_in_reach: int = 20  # the radius is set so a customer reaches about this many


@dataclass(frozen=True)
class Dataset:
    mechanism: str
    csv: Path
    mapping: Path
    params: dict[str, Any]  # the drawn parameters, recorded with the results
    transactions: int
    frauds: int


@dataclass
class _Tx:
    """Transactions as parallel arrays (one row per transaction)."""

    customer: np.ndarray
    seconds: np.ndarray  # since start_date 00:00
    amount: np.ndarray  # BRL
    counterparty: np.ndarray  # strings
    kind: np.ndarray  # "DEBIT" | "CREDIT" | "PIX"
    channel: np.ndarray  # "pos" | "mobile"
    device: np.ndarray  # strings ("" for card payments)
    fraud: np.ndarray  # bool

    @staticmethod
    def concat(parts: list[_Tx]) -> _Tx:
        return _Tx(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in _TX_FIELDS})

    def take(self, rows: np.ndarray) -> _Tx:
        return _Tx(**{k: getattr(self, k)[rows] for k in _TX_FIELDS})


_TX_FIELDS = ("customer", "seconds", "amount", "counterparty", "kind", "channel", "device", "fraud")


@dataclass(frozen=True)
class _World:
    rng: np.random.Generator
    config: WorldConfig
    mean_amount: np.ndarray  # per customer
    std_amount: np.ndarray
    daily_rate: np.ndarray
    reach: list[np.ndarray]  # terminals each customer pays at
    credit_share: np.ndarray


def _world(config: WorldConfig, rng: np.random.Generator) -> _World:
    n, m = config.customers, config.terminals
    customers_xy = rng.uniform(0, MAP_SIZE, (n, 2))
    terminals_xy = rng.uniform(0, MAP_SIZE, (m, 2))
    radius = np.sqrt(config.terminals_in_reach * MAP_SIZE**2 / (np.pi * m))
    distance = np.linalg.norm(customers_xy[:, None, :] - terminals_xy[None, :, :], axis=2)
    reach = [np.flatnonzero(row < radius) for row in distance]
    mean_amount = rng.uniform(5, 100, n)
    return _World(
        rng=rng,
        config=config,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        daily_rate=rng.uniform(0, 4, n),
        reach=reach,
        credit_share=rng.uniform(0, 1, n),
    )


def _card_payments(world: _World) -> _Tx:
    """The legitimate card payments of every customer on every day."""
    rng, config = world.rng, world.config
    counts = rng.poisson(np.tile(world.daily_rate, config.days))  # day-major
    has_reach = np.array([r.size > 0 for r in world.reach])
    counts = counts * np.tile(has_reach, config.days)
    customer = np.repeat(np.tile(np.arange(config.customers), config.days), counts)
    day = np.repeat(np.repeat(np.arange(config.days), config.customers), counts)
    n = customer.size
    time_of_day = np.clip(rng.normal(DAY_SECONDS / 2, 20_000, n), 0, DAY_SECONDS - 1)
    amount = rng.normal(world.mean_amount[customer], world.std_amount[customer])
    low = amount <= 0
    amount[low] = rng.uniform(0, 2 * world.mean_amount[customer[low]])
    amount = np.maximum(np.round(amount, 2), 0.01)
    pick = rng.random(n)
    terminal = np.array(
        [world.reach[c][int(p * world.reach[c].size)] for c, p in zip(customer, pick, strict=True)],
        dtype=np.int64,
    )
    credit = rng.random(n) < world.credit_share[customer]
    return _Tx(
        customer=customer,
        seconds=day * DAY_SECONDS + time_of_day.astype(np.int64),
        amount=amount,
        counterparty=np.char.add("TERM-", terminal.astype(str)),
        kind=np.where(credit, "CREDIT", "DEBIT"),
        channel=np.full(n, "pos"),
        device=np.full(n, ""),
        fraud=np.zeros(n, dtype=bool),
    )


def _amount_threshold(world: _World, tx: _Tx) -> tuple[_Tx, dict[str, Any]]:
    share = float(world.rng.uniform(0.0005, 0.003))
    threshold = float(np.round(np.quantile(tx.amount, 1 - share), 2))
    tx.fraud = tx.amount > threshold
    return tx, {"threshold_brl": threshold, "target_share": round(share, 5)}


def _compromised_counterparty(world: _World, tx: _Tx) -> tuple[_Tx, dict[str, Any]]:
    rng, config = world.rng, world.config
    per_day = float(rng.uniform(0.1, 0.3)) * config.terminals / 1000
    duration = int(rng.integers(21, 36))
    terminal = np.char.add("TERM-", np.arange(config.terminals).astype(str))
    compromised: dict[str, list[tuple[int, int]]] = {}
    for day in range(config.days):
        for key in rng.choice(terminal, size=rng.poisson(per_day), replace=False):
            # from the next day on, for `duration` days
            compromised.setdefault(str(key), []).append((day + 1, day + duration))
    day_of = tx.seconds // DAY_SECONDS
    fraud = np.zeros(tx.customer.size, dtype=bool)
    for key, spans in compromised.items():
        at = tx.counterparty == key
        for first, last in spans:
            fraud |= at & (day_of >= first) & (day_of <= last)
    tx.fraud = fraud
    return tx, {"compromised_per_day": round(per_day, 3), "duration_days": duration}


def _compromised_customer(world: _World, tx: _Tx) -> tuple[_Tx, dict[str, Any]]:
    rng, config = world.rng, world.config
    per_day = float(rng.uniform(0.001, 0.003)) * config.customers
    duration = int(rng.integers(10, 19))
    share = float(rng.uniform(0.2, 0.5))
    factor = float(rng.uniform(3, 6))
    day_of = tx.seconds // DAY_SECONDS
    exposed = np.zeros(tx.customer.size, dtype=bool)
    for day in range(config.days):
        victims = rng.choice(config.customers, size=rng.poisson(per_day), replace=False)
        exposed |= np.isin(tx.customer, victims) & (day_of > day) & (day_of <= day + duration)
    fraud = exposed & (rng.random(tx.customer.size) < share)
    tx.amount = np.where(fraud, np.round(tx.amount * factor, 2), tx.amount)
    tx.fraud = fraud
    params = {
        "compromised_per_day": round(per_day, 3),
        "duration_days": duration,
        "fraud_share_of_their_transactions": round(share, 3),
        "amount_factor": round(factor, 3),
    }
    return tx, params


def _pix_world(world: _World) -> _Tx:
    """Legitimate PIX transfers from each customer's phone to their usual beneficiaries, and
    the ordinary churn a takeover must stand out from: a new phone now and then, a new
    beneficiary now and then, some transfers at night."""
    rng, config = world.rng, world.config
    n = config.customers
    rate = rng.uniform(0, 1.0, n)
    counts = rng.poisson(np.tile(rate, config.days))
    customer = np.repeat(np.tile(np.arange(n), config.days), counts)
    day = np.repeat(np.repeat(np.arange(config.days), n), counts)
    size = customer.size
    night = rng.random(size) < 0.04
    time_of_day = np.where(
        night,
        rng.uniform(0, 6 * 3600, size),
        np.clip(rng.normal(15 * 3600, 4 * 3600, size), 6 * 3600, DAY_SECONDS - 1),
    ).astype(np.int64)
    habitual = rng.integers(0, 6, size)
    new_beneficiary = rng.random(size) < 0.05
    beneficiary = np.where(
        new_beneficiary,
        np.char.add("PIX-NEW-", np.arange(size).astype(str)),
        np.char.add(
            np.char.add(np.char.add("PIX-", customer.astype(str)), "-"), habitual.astype(str)
        ),
    )
    amount = np.round(
        np.exp(rng.normal(np.log(world.mean_amount[customer] * 3), 0.8, size)), 2
    ).clip(0.01)
    # a phone change: from a random day on, the customer's transfers come from a new device
    change_day = np.where(rng.random(n) < 0.15, rng.integers(0, config.days, n), config.days + 1)
    generation = (day >= change_day[customer]).astype(int)
    device = np.char.add(
        np.char.add(np.char.add("DEV-", customer.astype(str)), "-"), generation.astype(str)
    )
    return _Tx(
        customer=customer,
        seconds=day * DAY_SECONDS + time_of_day,
        amount=amount,
        counterparty=beneficiary,
        kind=np.full(size, "PIX"),
        channel=np.full(size, "mobile"),
        device=device,
        fraud=np.zeros(size, dtype=bool),
    )


def _account_takeover(world: _World, tx: _Tx) -> tuple[_Tx, dict[str, Any]]:
    rng, config = world.rng, world.config
    pix = _pix_world(world)
    per_day = float(rng.uniform(0.001, 0.003)) * config.customers
    night_share = float(rng.uniform(0.6, 0.9))
    ring_keys = int(rng.integers(5, 30))
    incidents = rng.poisson(per_day, config.days)
    victim = rng.integers(0, config.customers, incidents.sum())
    day = np.repeat(np.arange(config.days), incidents)
    start = np.where(
        rng.random(victim.size) < night_share,
        rng.uniform(0, 6 * 3600, victim.size),
        rng.uniform(8 * 3600, 22 * 3600, victim.size),
    ).astype(np.int64)
    transfers = rng.integers(1, 5, victim.size)
    incident = np.repeat(np.arange(victim.size), transfers)
    n = incident.size
    step = np.concatenate([np.arange(k) for k in transfers]) if n else np.zeros(0, np.int64)
    seconds = day[incident] * DAY_SECONDS + start[incident] + step * rng.integers(30, 300, n)
    drained = world.mean_amount[victim[incident]] * rng.uniform(10, 40, n)
    fraud = _Tx(
        customer=victim[incident],
        seconds=seconds,
        amount=np.round(drained, 2),
        counterparty=np.char.add("PIX-RING-", rng.integers(0, ring_keys, n).astype(str)),
        kind=np.full(n, "PIX"),
        channel=np.full(n, "mobile"),
        device=np.char.add("DEV-X-", incident.astype(str)),
        fraud=np.ones(n, dtype=bool),
    )
    params = {
        "takeovers_per_day": round(per_day, 3),
        "night_share": round(night_share, 3),
        "ring_keys": ring_keys,
    }
    return _Tx.concat([tx, pix, fraud]), params


_MECHANISM_FUNCTIONS = {
    "amount_threshold": _amount_threshold,
    "compromised_counterparty": _compromised_counterparty,
    "compromised_customer": _compromised_customer,
    "account_takeover": _account_takeover,
}


def _mapping(label_delay_days: int) -> dict[str, Any]:
    return {
        "transaction_id": "tx_id",
        "timestamp": {"column": "tx_datetime", "format": "%Y-%m-%d %H:%M:%S"},
        "customer_id": "customer_id",
        "counterparty": "counterparty_id",
        "amount": "tx_amount",
        "type": "tx_type",
        "channel": "channel",
        "device": "device_id",
        "fraud": {"column": "tx_fraud", "truthy": ["1"], "label_delay_days": label_delay_days},
    }


def simulate(mechanism: str, folder: Path, config: WorldConfig = WorldConfig()) -> Dataset:
    """Writes `<mechanism>.csv` and `<mechanism>.mapping.yml` into `folder`."""
    if mechanism not in _MECHANISM_FUNCTIONS:
        raise ValueError(f"unknown mechanism {mechanism!r}: one of {', '.join(MECHANISMS)}")
    # one stream per (seed, mechanism): the four datasets of a seed are independent
    rng = np.random.default_rng([config.seed, MECHANISMS.index(mechanism)])
    world = _world(config, rng)
    tx, params = _MECHANISM_FUNCTIONS[mechanism](world, _card_payments(world))
    label_delay = int(rng.integers(5, 10))
    params = {"label_delay_days": label_delay, **params}
    order = np.lexsort((tx.customer, tx.seconds))
    tx = tx.take(order)
    start = datetime.combine(config.start_date, datetime.min.time())
    timestamps = np.datetime64(start, "s") + tx.seconds.astype("timedelta64[s]")
    table = pa.table(
        {
            "tx_id": np.char.add("TX", np.arange(tx.customer.size).astype(str)),
            "tx_datetime": np.datetime_as_string(timestamps, unit="s").astype(str),
            "customer_id": np.char.add("CUST", tx.customer.astype(str)),
            "counterparty_id": tx.counterparty,
            "tx_amount": np.char.mod("%.2f", tx.amount),
            "tx_type": tx.kind,
            "channel": tx.channel,
            "device_id": tx.device,
            "tx_fraud": tx.fraud.astype(np.int8),
        }
    )
    table = table.set_column(
        1, "tx_datetime", pa.array([t.replace("T", " ") for t in table["tx_datetime"].to_pylist()])
    )
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{mechanism}.csv"
    pa_csv.write_csv(table, csv_path)
    mapping_path = folder / f"{mechanism}.mapping.yml"
    mapping_path.write_text(
        f"# {mechanism}: {json_line(params)}\n"
        + yaml.safe_dump(_mapping(label_delay), sort_keys=False)
    )
    return Dataset(
        mechanism=mechanism,
        csv=csv_path,
        mapping=mapping_path,
        params={"world": {**asdict(config), "start_date": config.start_date.isoformat()}, **params},
        transactions=int(tx.customer.size),
        frauds=int(tx.fraud.sum()),
    )


def json_line(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def last_day(config: WorldConfig) -> date:
    return config.start_date + timedelta(days=config.days - 1)
