"""What a generation run is asked to produce, and the per-day random streams.

Every random draw comes from a generator keyed by (seed, day, stream): a day's output
depends only on the seed, the state at the start of that day and the day itself, so a
run split into several appends produces exactly the files of one long run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

# Random streams: one per concern, so changing how one part draws never shifts another.
POPULATION_INIT = 1
POPULATION_EVOLVE = 2
LEGIT = 3
FRAUD = 4
REPORTS = 5
TX_FAULTS = 6
EXTRACT_FAULTS = 7


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    start_date: date | None = None  # None: the month ending yesterday (today - days)
    days: int = 30
    customers: int = 10_000  # customers existing at start_date
    tx_per_customer_day: float = 3.0  # mean, before seasonality
    fraud_rate: float = 0.007  # share of transactions that are fraud
    fault_rate: float = 0.01  # share of transaction rows that carry a data fault

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.tx_per_customer_day <= 0:
            raise ValueError("tx_per_customer_day must be positive")
        for name in ("fraud_rate", "fault_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.5:
                raise ValueError(f"{name} must be between 0 and 0.5, got {value}")

    def first_day(self, today: date | None = None) -> date:
        """The first generated day: start_date, or `days` days before today."""
        if self.start_date is not None:
            return self.start_date
        return (today or date.today()) - timedelta(days=self.days)


def day_rng(seed: int, day: date, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), stream])
