"""Negative down-sampling: fit on every fraud and a uniform sample of the rest.

Fraud is rare (under 1% of transactions), so past a few hundred thousand rows another
legitimate payment adds far less to a fit than it costs. Both models keep every positive and
sample negatives uniformly, each sampled negative weighted by negatives / sampled, so the
weighted loss is an unbiased estimate of the loss over all rows: the fit estimates the same
model at a fraction of the cost. Below the cap every row is kept, weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class NegativeSample:
    rows: np.ndarray  # sorted row numbers: every positive and the sampled negatives
    negative_weight: float  # negatives in the data / negatives kept (1.0: every row kept)

    @property
    def is_sampled(self) -> bool:
        return self.negative_weight != 1.0

    def weights(self, y: np.ndarray, positive: float = 1.0, negative: float = 1.0) -> np.ndarray:
        """Per kept row: `positive` for a positive, `negative` x negative_weight for the rest
        (y: the labels of every row, not only the kept ones)."""
        return np.where(y[self.rows], positive, negative * self.negative_weight)


def sample_negatives(y: np.ndarray, max_rows: int, seed: int) -> NegativeSample:
    """Every positive and a uniform, seeded sample of negatives, max_rows in all; every row
    when there are no more than max_rows (or too few negatives to leave any out)."""
    y = np.asarray(y, dtype=bool)
    n, positives = len(y), int(np.sum(y))
    negatives = n - positives
    if n <= max_rows or negatives <= max_rows - positives:
        return NegativeSample(np.arange(n), 1.0)
    if positives >= max_rows:
        raise ValueError(
            f"{positives:,} positives do not leave room for any negative under the cap of "
            f"{max_rows:,} rows: raise the cap"
        )
    rng = np.random.default_rng(seed)
    sampled = rng.choice(np.flatnonzero(~y), size=max_rows - positives, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(y), sampled]))
    return NegativeSample(rows, negatives / sampled.size)


def take_rows(x: np.ndarray | pd.DataFrame, rows: np.ndarray | slice) -> np.ndarray | pd.DataFrame:
    return x.iloc[rows] if isinstance(x, pd.DataFrame) else x[rows]
