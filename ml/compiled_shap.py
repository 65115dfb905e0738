"""Exact TreeSHAP of a handful of rows, fast: ml/explain.py's lookup tables walked by one
compiled loop, for real-time scoring's alerts.

Why: XGBoost's `pred_contribs` for one row of a thousand-tree booster costs milliseconds
(it recomputes every node's mean and builds a DMatrix first); an alert's reasons waited for
it, and so did every request decided with it. The batch job already explains its alerts
with `TreeShap`'s tables (the "Fast TreeSHAP v2" precomputation, ml/explain.py): per tree and
leaf, which of the leaf's path features a row satisfies (a few bits) selects precomputed
contributions. Its numpy code is vectorized over rows, which one row cannot use. Here the
same tables are flattened once per model and a numba kernel does, per row, what
`_Tree.add_contributions` does per block: the same interval tests (lo <= x < hi, a missing
value satisfies a slot where the path admits it, +-inf clipped to the largest float32), the
same packed masks, the same float32 table values summed per feature within a tree in the
tables' column order, each tree's sum added to the float64 result in tree order. So serving
computes the batch job's numbers (equal within float32 rounding of the order of a
summation; a test checks the two and XGBoost's on real rows) and no second definition of
the contributions exists.

A model the tables do not cover raises `UnsupportedModel` (ml/explain.py), and the caller
keeps XGBoost's own computation; so does a model whose tables disagree with XGBoost on the
rows `check` is given (ml/ensemble.py does this when the model is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from numba import njit

from ml.explain import CHECK_TOLERANCE, TreeShap, xgboost_contributions

_BIG = np.float32(np.finfo(np.float32).max)


@njit(cache=True, nogil=True)
def _contributions(
    x: np.ndarray,
    slot_count: np.ndarray,
    leaf_count: np.ndarray,
    slot_start: np.ndarray,
    slot_feature: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    missing_ok: np.ndarray,
    leaf_start: np.ndarray,
    column_start: np.ndarray,
    column_leaf: np.ndarray,
    column_slot: np.ndarray,
    column_feature: np.ndarray,
    values: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[row, f] += each tree's contribution of feature f (float64, tree order). A tree's
    columns are sorted by feature: a run of equal features is summed in float32, in the
    tables' column order, as the tables' numpy code sums a feature's columns, then added to
    the row's float64 total. A leaf's values for one mask are adjacent (one cache line for
    all its slots): the lookups of a row are as many memory reads as leaves, not columns."""
    most_leaves = 1
    for tree in range(leaf_count.shape[0]):
        most_leaves = max(most_leaves, leaf_count[tree])
    at_mask = np.zeros(most_leaves, dtype=np.int64)  # where a leaf's values for its mask are
    for row in range(x.shape[0]):
        for tree in range(slot_count.shape[0]):
            slots, leaves, first = slot_count[tree], leaf_count[tree], slot_start[tree]
            for leaf in range(leaves):
                bits = 0
                for slot in range(slots):
                    at = first + slot * leaves + leaf
                    value = x[row, slot_feature[at]]
                    if np.isnan(value):
                        satisfied = missing_ok[at]
                    else:
                        value = min(max(value, -_BIG), _BIG)
                        satisfied = lo[at] <= value < hi[at]
                    if satisfied:
                        bits |= 1 << slot
                at_mask[leaf] = leaf_start[tree] + leaf * (slots << slots) + bits * slots
            stop = column_start[tree + 1]
            column = column_start[tree]
            while column < stop:
                feature = column_feature[column]
                total = np.float32(0.0)
                while column < stop and column_feature[column] == feature:
                    total += values[at_mask[column_leaf[column]] + column_slot[column]]
                    column += 1
                out[row, feature] += np.float64(total)


@dataclass(frozen=True)
class CompiledShap:
    """TreeShap's tables of every tree in flat arrays. Tree t's slots start at slot_start[t]
    (slot-major, as in the tables), its leaves' values at leaf_start[t] (leaf, then mask, then
    slot: `slots` values per mask, 2^slots masks per leaf), its columns (the tables' order:
    by feature, then slot, then leaf) run from column_start[t] to column_start[t + 1]."""

    n_features: int
    slot_count: np.ndarray
    leaf_count: np.ndarray
    slot_start: np.ndarray
    slot_feature: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    missing_ok: np.ndarray
    leaf_start: np.ndarray
    column_start: np.ndarray
    column_leaf: np.ndarray
    column_slot: np.ndarray
    column_feature: np.ndarray
    values: np.ndarray  # float32

    @classmethod
    def from_tables(cls, tables: TreeShap) -> CompiledShap:
        trees = tables.trees
        leaf_values, column_slot, column_feature = [], [], []
        for tree in trees:
            features = tree.slot_feature.reshape(tree.slots, tree.leaves)
            feature = np.repeat([f for f, _, _ in tree.groups], [b - a for _, a, b in tree.groups])
            # a column's slot: the leaf's slot holding its feature (a leaf's slots are
            # distinct features)
            slot = np.argmax(features[:, tree.column_leaf] == feature[None, :], axis=0)
            by_leaf = np.zeros((tree.leaves, 1 << tree.slots, tree.slots), dtype=np.float32)
            by_leaf[tree.column_leaf, :, slot] = tree.values.reshape(len(feature), -1)
            leaf_values.append(by_leaf.ravel())
            column_slot.append(slot)
            column_feature.append(feature)

        def starts(sizes: list[int]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

        def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate([np.asarray(p, dtype=dtype).ravel() for p in parts])

        return cls(
            n_features=tables.n_features,
            slot_count=np.array([t.slots for t in trees], dtype=np.int64),
            leaf_count=np.array([t.leaves for t in trees], dtype=np.int64),
            slot_start=starts([t.slots * t.leaves for t in trees])[:-1],
            slot_feature=joined([t.slot_feature for t in trees], np.int64),
            lo=joined([t.lo for t in trees], np.float32),
            hi=joined([t.hi for t in trees], np.float32),
            missing_ok=joined([t.missing_ok for t in trees], np.bool_),
            leaf_start=starts([v.size for v in leaf_values])[:-1],
            column_start=starts([len(f) for f in column_feature]),
            column_leaf=joined([t.column_leaf for t in trees], np.int64),
            column_slot=joined(column_slot, np.int64),
            column_feature=joined(column_feature, np.int64),
            values=joined(leaf_values, np.float32),
        )

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> CompiledShap:
        """Raises UnsupportedModel where the tables do not model the booster."""
        return cls.from_tables(TreeShap.from_booster(booster))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows x features) TreeSHAP contributions in log-odds, float64, the bias left out."""
        rows = np.ascontiguousarray(x, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected rows x {self.n_features} features, got {rows.shape}")
        out = np.zeros(rows.shape, dtype=np.float64)
        _contributions(
            rows,
            self.slot_count,
            self.leaf_count,
            self.slot_start,
            self.slot_feature,
            self.lo,
            self.hi,
            self.missing_ok,
            self.leaf_start,
            self.column_start,
            self.column_leaf,
            self.column_slot,
            self.column_feature,
            self.values,
            out,
        )
        return out

    def agrees_with(self, booster: xgb.Booster, x: np.ndarray) -> bool:
        """The contributions of x equal XGBoost's own within ml/explain.py's tolerance (the
        batch job's check of its tables)."""
        if len(x) == 0:
            return True
        expected = xgboost_contributions(booster, x)
        worst = float(np.max(np.abs(self.contributions(x) - expected)))
        return worst <= CHECK_TOLERANCE * max(1.0, float(np.max(np.abs(expected))))


def probe_rows(shap: CompiledShap, count: int = 64, seed: int = 0) -> np.ndarray:
    """Rows that reach many of the model's leaves, for `agrees_with` when no real rows are at
    hand: each feature's value drawn among the interval edges the model splits it at (and
    just below them), a tenth of them missing. The same rows for the same model."""
    rng = np.random.default_rng(seed)
    x = np.full((count, shap.n_features), np.nan, dtype=np.float32)
    used = shap.lo < np.inf
    for feature in range(shap.n_features):
        edges = shap.lo[used & (shap.slot_feature == feature)]
        edges = np.unique(edges[np.isfinite(edges)])
        if edges.size == 0:
            x[:, feature] = rng.normal(size=count).astype(np.float32)
            continue
        candidates = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf))])
        x[:, feature] = rng.choice(candidates, size=count)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x
