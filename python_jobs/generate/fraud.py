"""Fraud scenarios, each with the signature a model should be able to learn, and their reports.

Fraud rows are ordinary transactions in the feed (no label); the truth comes out only
through fraud reports, days or weeks later, like in a real bank. Scenarios are sized so
that fraud is `fraud_rate` of the day's transactions in expectation:

- account_takeover: a device never seen for the customer, at night, a few PIX outbound
  to new beneficiaries (often a ring's keys) draining a large share of monthly income.
- pix_scam: social engineering; the customer's usual device in daytime, a new beneficiary
  and an amount far above the customer's habit. Older customers are targeted more.
- card_testing: 10-30 card payments of R$1-10 within minutes at one online merchant of a
  digital-goods MCC, many declined, no device.
- compromised_terminal: a few POS terminals turn bad for weeks; most of their traffic
  from then on is cloned cards of customers from anywhere in the country.
- mule_account: recruited (young, recent) customers receive many inbound PIX from
  unrelated senders and forward them within minutes to a few cash-out keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from python_jobs.generate import formatting as fmt
from python_jobs.generate import reference as ref
from python_jobs.generate.population import Population
from python_jobs.generate.transactions import (
    CP_MERCHANT,
    CP_PIX,
    CP_TERMINAL,
    TxBatch,
    lognormal_cents,
)
from python_jobs.generate.world import World, sample_cities

SCENARIOS: tuple[str, ...] = (
    "account_takeover",
    "pix_scam",
    "card_testing",
    "compromised_terminal",
    "mule_account",
)
TAKEOVER, SCAM, CARD_TESTING, TERMINAL, MULE = range(1, 6)  # TxBatch.scenario codes
SCENARIO_MIX = np.array([0.22, 0.16, 0.27, 0.20, 0.15])
# Report delay in days (lognormal median, sigma), clipped to 1-45: victims of takeovers
# call the bank at once, cloned cards surface with the statement.
_DELAY_MEDIAN = np.array([2.0, 4.0, 12.0, 18.0, 6.0])
_DELAY_SIGMA = np.array([0.6, 0.7, 0.6, 0.5, 0.7])
REPORT_PROBABILITY = 0.95
MAX_REPORT_DELAY = 45
_MULE_CASHOUT_SALT = 0x3B1E


@dataclass
class FraudState:
    """Compromised terminals (world terminal index, first and last day as ordinals)."""

    terminal: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row -> incident index and row rank within its incident, for incidents of `counts` rows."""
    incident = np.repeat(np.arange(counts.size), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return incident, np.arange(incident.size) - first[incident]


def _group_cumsum(values: np.ndarray, incident: np.ndarray, rank: np.ndarray) -> np.ndarray:
    total = np.cumsum(values)
    start = np.flatnonzero(rank == 0)
    return total - total[start][incident] + values[start][incident]


def _group_sum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.add.reduceat(values, starts) if values.size else np.zeros(0)


def _pick_key(rng: np.random.Generator, world: World, k: int, ring_share: float) -> np.ndarray:
    """Beneficiaries of fraud: a fraud ring's reused keys, or keys never seen before."""
    ring = world.ring_keys[rng.integers(0, world.ring_keys.size, k)]
    fresh = rng.integers(1, fmt.PIX_KEY_MASK, size=k)
    return np.where(rng.random(k) < ring_share, ring, fresh)


def mule_active(pop: Population, day_ordinal: int) -> np.ndarray:
    c = pop.customers
    return (c["mule_start"] > 0) & (c["mule_start"] <= day_ordinal) & (c["mule_end"] >= day_ordinal)


def prepare_day(
    rng: np.random.Generator,
    pop: Population,
    world: World,
    state: FraudState,
    day_ordinal: int,
    bank_size: int,
) -> np.ndarray:
    """Moves fraud actors in time: terminals get compromised, mules are recruited, and mules
    whose run ended yesterday are blocked. Returns account indexes changed."""
    c = pop.customers
    live = state.end >= day_ordinal
    state.terminal, state.start = state.terminal[live], state.start[live]
    state.end = state.end[live]
    need = max(1, round(bank_size / 4000)) - state.terminal.size
    if need > 0:
        city = sample_cities(rng, need).astype(np.int64)
        new = world.terminals_in(city, rng.random(need))
        state.terminal = np.concatenate([state.terminal, new])
        state.start = np.concatenate([state.start, np.full(need, day_ordinal, np.int32)])
        state.end = np.concatenate(
            [state.end, (day_ordinal + rng.integers(14, 43, need)).astype(np.int32)]
        )

    ended = np.flatnonzero((c["mule_end"] == day_ordinal - 1) & (c["mule_start"] > 0))
    blocked = c["checking"][ended] - 1
    pop.accounts["status"][blocked] = ref.BLOCKED
    pop.accounts["updated_day"][blocked] = day_ordinal
    pop.accounts["updated_sec"][blocked] = rng.integers(8 * 3600, 12 * 3600, blocked.size)

    active = mule_active(pop, day_ordinal)
    need = max(1, round(bank_size * 0.0003)) - int(active.sum())
    if need > 0 and c["cust_no"].size:
        age = pop.age_years(day_ordinal)
        tenure = day_ordinal - c["onboard"]
        candidate = (
            pop.can_transact(day_ordinal)
            & (c["segment"] == ref.VAREJO)
            & (c["mule_start"] == 0)
            & (tenure >= 3)
        )
        pool = np.flatnonzero(candidate)
        weight = np.where(age[pool] < 30, 4.0, 1.0) * np.where(tenure[pool] < 180, 4.0, 1.0)
        need = min(need, pool.size)
        recruits = pool[:0]
        if need:
            recruits = rng.choice(pool, size=need, replace=False, p=weight / weight.sum())
        c["mule_start"][recruits] = day_ordinal
        c["mule_end"][recruits] = day_ordinal + rng.integers(10, 36, need)
    return blocked


def fraud_transactions(
    rng: np.random.Generator,
    pop: Population,
    world: World,
    state: FraudState,
    day_ordinal: int,
    n_legit: int,
    fraud_rate: float,
) -> TxBatch:
    """All of the day's fraudulent transactions, each with scenario and incident set."""
    expected = n_legit * fraud_rate / max(1e-9, 1.0 - fraud_rate) * SCENARIO_MIX
    active = np.flatnonzero(pop.can_transact(day_ordinal))
    batches = [
        _takeover(rng, pop, world, active, expected[0]),
        _scam(rng, pop, world, active, expected[1], day_ordinal),
        _card_testing(rng, pop, world, active, expected[2]),
        _terminal(rng, pop, world, state, active, expected[3]),
        _mules(rng, pop, world, day_ordinal, expected[4]),
    ]
    for code, batch in enumerate(batches, start=1):
        batch.scenario = np.full(len(batch), code, np.int8)
        batch.incident = batch.incident + code * 10**9  # unique across scenarios within the day
    return TxBatch.concat(batches)


def _takeover(
    rng: np.random.Generator, pop: Population, world: World, active: np.ndarray, expected: float
) -> TxBatch:
    c = pop.customers
    pool = active[c["segment"][active] != ref.PJ]
    k = rng.poisson(expected / 4.0) if pool.size else 0
    victim = rng.choice(pool, size=k) if k else np.zeros(0, np.int64)
    counts = rng.integers(2, 7, k)
    incident, rank = _expand(counts)
    n = incident.size
    night = rng.random(k) < 0.75
    start = np.where(night, rng.integers(1800, 5 * 3600, k), rng.integers(8 * 3600, 23 * 3600, k))
    gaps = np.where(rank == 0, 0.0, rng.exponential(240.0, n) + 20)
    sec = np.minimum(start[incident] + _group_cumsum(gaps, incident, rank).astype(np.int64), 86_399)
    device = np.where(
        rng.random(k) < 0.5,
        world.ring_devices[rng.integers(0, 12, k)],
        rng.integers(1, 2**56, size=k),
    )
    keys = np.column_stack([_pick_key(rng, world, k, 0.5), _pick_key(rng, world, k, 0.5)])
    key = keys[incident, (rng.random(n) < 0.5).astype(np.int64)]
    drained = c["income"][victim] * rng.uniform(0.5, 1.6, k)
    weight = rng.exponential(1.0, n)
    share = weight / np.repeat(_group_sum(weight, counts), counts) if n else weight
    cents = np.maximum(np.round(drained[incident] * share * 100), 5_000).astype(np.int64)
    elsewhere = rng.random(k) < 0.6
    city = np.where(elsewhere, sample_cities(rng, k), c["city"][victim])
    channel = np.where(rng.random(k) < 0.85, ref.MOBILE, ref.INTERNET_BANKING)
    cust = victim[incident]
    return TxBatch.build(
        n,
        cust=cust,
        acct=c["checking"][cust],
        ttype=ref.PIX,
        channel=channel[incident],
        direction=ref.OUTBOUND,
        cents=cents,
        sec=sec,
        cp_kind=CP_PIX,
        cp=key,
        device=device[incident],
        city=city[incident],
        status=np.where(rng.random(n) < 0.08, ref.DECLINED, ref.APPROVED),
        incident=incident,
    )


def _scam(
    rng: np.random.Generator,
    pop: Population,
    world: World,
    active: np.ndarray,
    expected: float,
    day_ordinal: int,
) -> TxBatch:
    c = pop.customers
    pool = active[c["segment"][active] != ref.PJ]
    k = rng.poisson(expected / 1.3) if pool.size else 0
    weight = np.where(pop.age_years(day_ordinal)[pool] >= 60, 3.0, 1.0)
    victim = rng.choice(pool, size=k, p=weight / weight.sum()) if k else np.zeros(0, np.int64)
    counts = 1 + (rng.random(k) < 0.3)
    incident, rank = _expand(counts)
    n = incident.size
    start = rng.integers(9 * 3600, 18 * 3600, k)
    sec = start[incident] + rank * rng.integers(600, 3600, n)
    key = _pick_key(rng, world, k, 0.4)[incident]
    habit = 60.0 * c["amount_scale"][victim]  # the customer's usual outbound PIX median
    amount = np.maximum(habit * rng.uniform(6.0, 30.0, k), 300.0)
    amount = np.minimum(amount, np.maximum(c["income"][victim] * 4, 600.0))
    cents = np.round(amount[incident] * rng.uniform(0.8, 1.2, n) * 100).astype(np.int64)
    cust = victim[incident]
    return TxBatch.build(
        n,
        cust=cust,
        acct=c["checking"][cust],
        ttype=ref.PIX,
        channel=ref.MOBILE,
        direction=ref.OUTBOUND,
        cents=cents,
        sec=sec,
        cp_kind=CP_PIX,
        cp=key,
        device=c["device1"][cust],
        city=c["city"][cust],
        status=np.where(rng.random(n) < 0.04, ref.DECLINED, ref.APPROVED),
        incident=incident,
    )


def _card_testing(
    rng: np.random.Generator, pop: Population, world: World, active: np.ndarray, expected: float
) -> TxBatch:
    c = pop.customers
    pool = active[pop.card_usable()[active]]
    k = rng.poisson(expected / 20.0) if pool.size else 0
    victim = rng.choice(pool, size=k) if k else np.zeros(0, np.int64)
    testing_mcc = np.isin(ref.MCC_CODES[world.merchant_mcc], ref.CARD_TESTING_MCCS)
    merchants = np.flatnonzero(testing_mcc)
    merchant = merchants[rng.integers(0, merchants.size, k)]
    counts = rng.integers(10, 31, k)
    incident, rank = _expand(counts)
    n = incident.size
    night = rng.random(k) < 0.5
    start = np.where(night, rng.integers(0, 6 * 3600, k), rng.integers(6 * 3600, 23 * 3600, k))
    gaps = np.where(rank == 0, 0.0, rng.exponential(20.0, n) + 3)
    sec = np.minimum(start[incident] + _group_cumsum(gaps, incident, rank).astype(np.int64), 86_399)
    decline_p = rng.uniform(0.35, 0.8, k)[incident]
    cust = victim[incident]
    return TxBatch.build(
        n,
        cust=cust,
        acct=c["card"][cust],
        ttype=ref.CREDIT,
        channel=ref.INTERNET_BANKING,
        direction=ref.OUTBOUND,
        cents=rng.integers(100, 1001, n),
        sec=sec,
        cp_kind=CP_MERCHANT,
        cp=world.merchant_no[merchant][incident],
        mcc=world.merchant_mcc[merchant][incident],
        city=sample_cities(rng, k)[incident],
        status=np.where(rng.random(n) < decline_p, ref.DECLINED, ref.APPROVED),
        incident=incident,
    )


def _terminal(
    rng: np.random.Generator,
    pop: Population,
    world: World,
    state: FraudState,
    active: np.ndarray,
    expected: float,
) -> TxBatch:
    c = pop.customers
    m = state.terminal.size
    counts = rng.poisson(expected / max(m, 1), m) if active.size else np.zeros(m, np.int64)
    terminal = np.repeat(state.terminal, counts)
    n = terminal.size
    cust = active[rng.integers(0, active.size, n)] if n else np.zeros(0, np.int64)
    credit = pop.card_usable()[cust] & (rng.random(n) < 0.75)
    hours = rng.uniform(9.0, 21.5, n)
    return TxBatch.build(
        n,
        cust=cust,
        acct=np.where(credit, c["card"][cust], c["checking"][cust]),
        ttype=np.where(credit, ref.CREDIT, ref.DEBIT),
        channel=ref.POS,
        direction=ref.OUTBOUND,
        cents=lognormal_cents(rng, np.full(n, 380.0), np.full(n, 0.7), np.ones(n)),
        sec=(hours * 3600).astype(np.int64),
        cp_kind=CP_TERMINAL,
        cp=world.terminal_no[terminal],
        mcc=world.terminal_mcc[terminal],
        city=world.terminal_city[terminal],
        status=np.where(rng.random(n) < 0.08, ref.DECLINED, ref.APPROVED),
        incident=np.arange(n),
    )


def _mules(
    rng: np.random.Generator, pop: Population, world: World, day_ordinal: int, expected: float
) -> TxBatch:
    c = pop.customers
    mules = np.flatnonzero(mule_active(pop, day_ordinal) & pop.can_transact(day_ordinal))
    # Three inbound transfers for each fast outbound one: 3/4 of the rows are inbound.
    counts = rng.poisson(expected * 0.75 / max(mules.size, 1), mules.size)
    mule_of, rank = _expand(counts)
    n_in = mule_of.size
    sec_in = rng.integers(8 * 3600, 22 * 3600, n_in)
    order = np.lexsort((sec_in, mule_of))
    sec_in = sec_in[order]
    cents_in = lognormal_cents(rng, np.full(n_in, 700.0), np.full(n_in, 0.8), np.ones(n_in))
    cust_in = mules[mule_of]
    inbound = TxBatch.build(
        n_in,
        cust=cust_in,
        acct=c["checking"][cust_in],
        ttype=ref.PIX,
        channel=np.where(rng.random(n_in) < 0.7, ref.MOBILE, ref.INTERNET_BANKING),
        direction=ref.INBOUND,
        cents=cents_in,
        sec=sec_in,
        cp_kind=CP_PIX,
        cp=rng.integers(1, fmt.PIX_KEY_MASK, size=n_in),
        city=c["city"][cust_in],
        status=ref.APPROVED,
        incident=np.arange(n_in),
    )
    # Forward each group of (up to) three inbound transfers minutes after the last one.
    group = mule_of * 10_000 + rank // 3
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    n_out = first.size
    group_cents = np.bincount(inverse, weights=cents_in, minlength=n_out)
    last_sec = np.zeros(n_out, np.int64)
    np.maximum.at(last_sec, inverse, sec_in)
    cust_out = cust_in[first]
    n_keys = (fmt.mix64(c["cust_no"][cust_out], _MULE_CASHOUT_SALT) % np.uint64(3)) + np.uint64(1)
    key_slot = np.arange(n_out).astype(np.uint64) % n_keys
    key = fmt.mix64(
        c["cust_no"][cust_out].astype(np.uint64) * np.uint64(3) + key_slot,
        _MULE_CASHOUT_SALT ^ world.salt,
    )
    outbound = TxBatch.build(
        n_out,
        cust=cust_out,
        acct=c["checking"][cust_out],
        ttype=ref.PIX,
        channel=ref.MOBILE,
        direction=ref.OUTBOUND,
        cents=np.round(group_cents * rng.uniform(0.92, 0.98, n_out)).astype(np.int64),
        sec=np.minimum(last_sec + rng.integers(180, 2400, n_out), 86_399),
        cp_kind=CP_PIX,
        cp=(key & np.uint64(fmt.PIX_KEY_MASK)).astype(np.int64),
        device=c["device1"][cust_out],
        city=c["city"][cust_out],
        status=np.where(rng.random(n_out) < 0.05, ref.DECLINED, ref.APPROVED),
        incident=n_in + np.arange(n_out),
    )
    return TxBatch.concat([inbound, outbound])


# --- Reports --------------------------------------------------------------------------------

PENDING_REPORT_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("scenario", pa.string()),
        ("report_channel", pa.string()),
        ("reported_day", pa.int32()),
        ("reported_sec", pa.int32()),
        ("due", pa.int32()),  # ingestion day (ordinal) of the partition the row lands in
        ("report_id", pa.string()),  # set when first delivered; re-sends carry it
        ("resend", pa.bool_()),
    ]
)


def schedule_reports(
    rng: np.random.Generator, fraud: TxBatch, transaction_ids: pa.Array, day: date
) -> pa.Table:
    """Decides which fraud transactions get reported, when and through which channel.

    Victims report incidents, not transactions: every row of a reported incident is
    reported the same day, minutes apart.
    """
    n = len(fraud)
    _, first, inverse = np.unique(fraud.incident, return_index=True, return_inverse=True)
    k = first.size
    scenario = fraud.scenario[first].astype(np.int64) - 1
    reported = (rng.random(k) < REPORT_PROBABILITY)[inverse]
    delay = np.exp(np.log(_DELAY_MEDIAN[scenario]) + _DELAY_SIGMA[scenario] * rng.normal(size=k))
    delay = np.clip(np.round(delay), 1, MAX_REPORT_DELAY).astype(np.int64)
    sec = rng.integers(8 * 3600, 20 * 3600, k)[inverse] + rng.integers(0, 900, n)
    card = (fraud.ttype == ref.DEBIT) | (fraud.ttype == ref.CREDIT)
    approved = fraud.status == ref.APPROVED
    u = rng.random(n)
    channel = np.where(card & approved & (u < 0.9), ref.CHARGEBACK, ref.CUSTOMER_CONTACT)
    channel = np.where((fraud.ttype == ref.PIX) & (u < 0.85), ref.MED, channel)
    reported_day = day.toordinal() + delay[inverse]
    keep = np.flatnonzero(reported)
    return pa.table(
        {
            "transaction_id": transaction_ids.take(pa.array(keep)),
            "scenario": pa.array(SCENARIOS).take(
                pa.array(fraud.scenario[keep].astype(np.int64) - 1)
            ),
            "report_channel": ref.REPORT_CHANNEL_ARRAY.take(pa.array(channel[keep])),
            "reported_day": pa.array(reported_day[keep], pa.int32()),
            "reported_sec": pa.array(sec[keep], pa.int32()),
            "due": pa.array(reported_day[keep], pa.int32()),
            "report_id": pa.nulls(keep.size, pa.string()),
            "resend": pa.array(np.zeros(keep.size, bool)),
        },
        schema=PENDING_REPORT_SCHEMA,
    )


@dataclass(frozen=True)
class ReportDay:
    table: pa.Table  # the day's fraud_reports rows
    pending: pa.Table  # what stays for later days
    new_by_scenario: dict[str, int]
    resent: int  # duplicate_delivery faults in `table`


def emit_reports(pending: pa.Table, day: date, resend_rows: np.ndarray) -> ReportDay:
    """The fraud_reports rows landing on `day`: reports due today, numbered by time, then
    yesterday's re-sends. `resend_rows` picks today's reports to be sent again tomorrow."""
    ordinal = day.toordinal()
    due = pc.equal(pending["due"], ordinal)
    today = pending.filter(due)
    later = pending.filter(pc.invert(due))
    fresh = today.filter(pc.invert(today["resend"]))
    resent = today.filter(today["resend"])
    fresh = fresh.take(
        pc.sort_indices(fresh, [("reported_sec", "ascending"), ("transaction_id", "ascending")])
    )
    ids = fmt.fixed_width(
        fresh.num_rows, f"FR{day:%Y%m%d}", fmt.digits(np.arange(1, fresh.num_rows + 1), 7)
    )
    fresh = fresh.set_column(fresh.schema.get_field_index("report_id"), "report_id", ids)
    again = fresh.take(pa.array(resend_rows, pa.int64()))
    again = again.set_column(
        again.schema.get_field_index("due"),
        "due",
        pa.array(np.full(again.num_rows, ordinal + 1), pa.int32()),
    )
    again = again.set_column(
        again.schema.get_field_index("resend"), "resend", pa.array(np.ones(again.num_rows, bool))
    )
    rows = pa.concat_tables([fresh, resent])
    table = pa.table(
        {
            "report_id": rows["report_id"],
            "transaction_id": rows["transaction_id"],
            "reported_at": fmt.timestamps(
                rows["reported_day"].to_numpy(), rows["reported_sec"].to_numpy()
            ),
            "scenario": rows["scenario"],
            "report_channel": rows["report_channel"],
        }
    )
    counts = pc.value_counts(fresh["scenario"]).to_pylist()
    by_scenario = dict.fromkeys(SCENARIOS, 0) | {d["values"]: d["counts"] for d in counts}
    return ReportDay(table, pa.concat_tables([later, again]), by_scenario, resent.num_rows)
