"""What a benchmark run is asked to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ml.train import TrainConfig

# The generator draws about 3.11 transactions per customer-day at its default mean of 3
# (seasonality and pay-day peaks add ~4%): 111,000 customers x 30 days gave 10,368,529
# (bench/NOTES.md, "Generation speed"). The bench sizes the customer base from it, then reports the
# transactions actually written.
TRANSACTIONS_PER_CUSTOMER_DAY = 3.11


@dataclass(frozen=True)
class BenchConfig:
    transactions: int = 10_000_000
    days: int = 30
    seed: int = 42
    start_date: date | None = None
    lake: Path | None = None  # None: a fresh temporary folder, removed afterwards
    out: Path = Path("bench/results")
    work: Path | None = None  # dbt target, logs and the CSV copy; None: a temporary folder
    skip_pandas: bool = False
    sample_customers: int = 500  # customers whose every window value is compared row by row
    keep_lake: bool = False
    keep_csv: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.transactions < 1_000:
            raise ValueError("--transactions must be at least 1,000")
        if self.days < 4:
            raise ValueError("--days must be at least 4 (the fraud model's time protocol)")

    @property
    def customers(self) -> int:
        """Customers at the start so that `days` days hold about `transactions` transactions."""
        return max(1, round(self.transactions / (self.days * TRANSACTIONS_PER_CUSTOMER_DAY)))
