"""Transactions for the online-state tests that warm from an export and stream after it
(test_dynamodb_generations.py, test_athena_export.py): a reproducible history over a few
customers, counterparties, devices and states, and the probes that read every pair."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from python_jobs.serve.contract import Transaction
from python_jobs.serve.state import StateBackend

T0 = datetime(2026, 3, 2, 12, 0, 0)


def records(first: int, count: int, start: datetime) -> list[Transaction]:
    """`count` transactions a few minutes apart from `start`, over a few customers,
    counterparties, devices and states (ids R<first>...): enough overlap for first-seen
    pairs, new devices and unusual states to happen."""
    rng = random.Random(first)
    out = []
    at = start
    for i in range(first, first + count):
        at += timedelta(minutes=rng.randint(1, 300))
        inbound = rng.random() < 0.3
        out.append(
            Transaction(
                transaction_id=f"R{i:04d}",
                account_id="A1",
                customer_id=f"C{rng.randint(1, 5)}",
                event_ts=at,
                transaction_type=rng.choice(["PIX", "TED", "DEBIT"]),
                channel="mobile",
                direction="inbound" if inbound else "outbound",
                amount_cents=rng.randint(100, 500_000),
                counterparty_key=rng.choice(["K1", "K2", "K3", "K4", None]),
                device_id=rng.choice(["D1", "D2", "D3", None]),
                state=rng.choice(["SP", "RJ", "MG", None]),
                status="declined" if rng.random() < 0.1 else "approved",
            )
        )
    return out


def play(state: StateBackend, transactions: list[Transaction]) -> list[str]:
    """Features then applies each, as decide_in_order does; the features as text."""
    out = []
    for tx in transactions:
        featurized = state.featurize(tx)
        state.apply(tx, featurized)
        out.append(repr(featurized.features))
    return out


def probes(at: datetime) -> list[Transaction]:
    """Featured, never applied: every customer against every counterparty and device."""
    return [
        Transaction(
            f"Q-{c}-{k}-{d}",
            "A1",
            c,
            at + timedelta(seconds=i),
            "PIX",
            "mobile",
            "outbound",
            1_000,
            k,
            d,
            "SP",
            "approved",
        )
        for i, (c, k, d) in enumerate(
            (c, k, d)
            for c in ("C1", "C2", "C3", "C4", "C5", "C9")
            for k in ("K1", "K4", None)
            for d in ("D1", None)
        )
    ]


def features(state: StateBackend, transactions: list[Transaction]) -> list[str]:
    return [repr(state.featurize(tx).features) for tx in transactions]
