"""Population stability (PSI): has a feature's distribution moved since training?

At training time each feature (and the score) is summarised by decile cut points and the
share of the training rows in each bin, plus the share of nulls; that summary is stored in
the model's metadata.json, so monitoring never needs the training data again. A day's
values are binned with the same cut points and compared:

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with shares floored at 1e-4 so an empty bin does not make it infinite. Rule of thumb:
< 0.1 stable, 0.1-0.2 moving, > 0.2 drifted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

QUANTILES = np.linspace(0.1, 0.9, 9)
FLOOR = 1e-4


@dataclass(frozen=True)
class Reference:
    edges: tuple[float, ...]  # ascending interior cut points; bins are right-closed
    shares: tuple[float, ...]  # len(edges) + 1 bins of the non-null values, then the null bin

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Reference:
        return cls(tuple(float(x) for x in data["edges"]), tuple(float(x) for x in data["shares"]))


def _shares(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    null = np.isnan(values)
    counts = np.bincount(
        np.searchsorted(edges, values[~null], side="left"), minlength=edges.size + 1
    ).astype(np.float64)
    counts = np.append(counts, null.sum())
    return counts / max(values.size, 1)


def reference(values: np.ndarray) -> Reference:
    """Decile cut points of the non-null values (observed values, duplicates merged, so a
    0/1 feature gets one or two bins), and the shares of `values` in each bin."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    edges = (
        np.unique(np.quantile(present, QUANTILES, method="inverted_cdf"))
        if present.size
        else np.zeros(0)
    )
    return Reference(
        tuple(float(e) for e in edges), tuple(float(s) for s in _shares(edges, values))
    )


def psi(ref: Reference, values: np.ndarray) -> float:
    expected = np.maximum(np.asarray(ref.shares), FLOOR)
    actual = np.maximum(_shares(np.asarray(ref.edges), values), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
