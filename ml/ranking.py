"""ROC AUC, average precision and their curves from one sort of the scores.

sklearn's roc_auc_score and average_precision_score each sort the scores again (and
precision_recall_curve and roc_curve for the plots twice more), with long input checks: a
training run ranked the same test scores some twenty times.
All four are functions of one thing: the true and false positives above each distinct
score, from the highest down. `Ranking` computes that once, the way sklearn does (ties
share a threshold), so its numbers are sklearn's; ml/tests/test_ranking.py compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Points drawn per curve: a test period has millions of distinct scores, and drawing every
# one took seconds for lines no screen resolves.
PLOT_POINTS = 4_000


@dataclass(frozen=True)
class Ranking:
    """Cumulative true (tps) and false (fps) positives at each distinct score, highest
    score first; the last entry counts every row."""

    tps: np.ndarray
    fps: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray) -> Ranking:
        return cls.with_groups(labels, scores, {})[0]

    @classmethod
    def _of_ranked(cls, y: np.ndarray, ranked: np.ndarray) -> Ranking:
        """From labels and scores already in descending score order."""
        if ranked.size == 0:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        last_of_each_score = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
        tps = np.cumsum(y, dtype=np.int64)[last_of_each_score]
        return cls(tps, last_of_each_score + 1 - tps)

    @classmethod
    def per_group(
        cls, labels: np.ndarray, scores: np.ndarray, groups: dict[str, np.ndarray]
    ) -> dict[str, Ranking]:
        """For each group (a mask of positives), the ranking of its positives against every
        negative, the other positives left out: how well one kind of fraud is found among the
        legitimate rows. One sort for all of them."""
        return cls.with_groups(labels, scores, groups)[1]

    @classmethod
    def with_groups(
        cls, labels: np.ndarray, scores: np.ndarray, groups: dict[str, np.ndarray]
    ) -> tuple[Ranking, dict[str, Ranking]]:
        """Ranking.of and per_group of the same labels and scores, from one sort."""
        y, s = _checked(labels, scores)
        order = np.argsort(s, kind="stable")[::-1]
        y_sorted, ranked = y[order], s[order]
        out = {}
        for name, members in groups.items():
            keep = ~y_sorted | np.asarray(members, dtype=bool)[order]
            out[name] = cls._of_ranked(y_sorted[keep], ranked[keep])
        return cls._of_ranked(y_sorted, ranked), out

    @property
    def both_classes(self) -> bool:
        return self.tps.size > 0 and 0 < self.tps[-1] < self.tps[-1] + self.fps[-1]

    def roc_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(false positive rate, true positive rate) from (0, 0), as sklearn's roc_curve
        without dropping collinear points (the area is the same)."""
        fpr = np.r_[0.0, self.fps / self.fps[-1]]
        tpr = np.r_[0.0, self.tps / self.tps[-1]]
        return fpr, tpr

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) from the highest threshold down, then sklearn's end point
        (recall 0, precision 1) first."""
        precision = self.tps / (self.tps + self.fps)
        recall = self.tps / self.tps[-1]
        return np.r_[0.0, recall], np.r_[1.0, precision]

    def roc_auc(self) -> float | None:
        """The area under the ROC curve (trapezoids); None with a single class."""
        if not self.both_classes:
            return None
        fpr, tpr = self.roc_curve()
        return float(np.trapezoid(tpr, fpr))

    def average_precision(self) -> float | None:
        """sum over thresholds of (recall gained) * precision there, as sklearn's
        average_precision_score (no interpolation); None with a single class. Summed as
        (positives gained) * precision / positives: the same number, but equal rankings give
        equal values to the last bit (a perfect one exactly 1.0, however its ties fall),
        which the forest bar compares."""
        if not self.both_classes:
            return None
        gained = np.diff(self.tps, prepend=0)
        precision = self.tps / (self.tps + self.fps)
        return float(np.sum(gained * precision) / self.tps[-1])


def _checked(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape or y.ndim != 1:
        raise ValueError(f"{s.shape} scores for {y.shape} labels")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN: a ranking needs every row scored")
    return y, s


def plot_points(size: int, points: int = PLOT_POINTS) -> np.ndarray:
    """Indices of at most `points` of a curve's `size` points to draw, always the first and
    the last: every one of the first few hundred (the top of the ranking, where the curves
    move most), then geometrically sparser towards the tail, where each step moves the
    curve by a fraction of a pixel."""
    if size <= points:
        return np.arange(size)
    spaced = np.geomspace(1, size, points - 1).astype(np.int64) - 1
    return np.unique(np.r_[0, spaced, size - 1])
