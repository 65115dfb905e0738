"""Exact per-feature contributions (TreeSHAP) of the booster, vectorized over rows.

Why not just `booster.predict(pred_contribs=True)`? Because on CPU it is almost the whole
cost of daily scoring. This module computes the same numbers (path-dependent TreeSHAP; the
differences are float32 rounding, XGBoost works in float32; the same three reasons on every
row) at a fraction of that cost (docs/decisions/0005-own-treeshap.md). Scoring checks
itself against XGBoost on CHECK_ROWS rows every run and falls back to XGBoost's own
computation, slow but right, if they ever disagree.

How (the "Fast TreeSHAP v2" idea, Yang 2021): for one leaf of value v, path-dependent
TreeSHAP is the Shapley value of the game S -> v * prod over the features i on the leaf's
path of (o_i if i is in S, else z_i), where o_i is 1 if the row satisfies every condition
on i along the path (else 0) and z_i is the share of training cover that follows the path
at i's splits. So a row enters a leaf's contributions only through WHICH of the leaf's path
features it satisfies: at most `depth` bits, 2^depth cases, each precomputed once per model.
Scoring a block of rows is then, per tree: test each leaf's conditions (one interval per
feature), pack the bits, look the contributions up, add them by feature - numpy over
(depth x leaves x rows) arrays, no Python loop over rows.

Models this does not cover (categorical splits, several outputs, dart, paths with more
than MAX_PATH_FEATURES distinct features) are explained by XGBoost itself.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context

import numpy as np
import xgboost as xgb

from ml.tree_model import UnsupportedModel, gbtree_trees

MAX_PATH_FEATURES = 8  # 2^8 subsets a leaf; the bits of a leaf fit in one uint8
CHUNK_ROWS = 2048  # rows per block: a tree's arrays for a block stay in the CPU cache
CHECK_ROWS = 64  # rows checked against XGBoost's own TreeSHAP on every call
CHECK_TOLERANCE = 1e-4  # log-odds; float32 rounding is ~1e-6
# Row x tree visits from which the rows are shared among processes, one per core. Below it one
# process is faster: another has to start, import and compile the tables first. Above it, a
# large day against a large model in one process leaves the other cores idle.
PARALLEL_MIN_VISITS = 50_000_000


@dataclass(frozen=True)
class _Tree:
    """One tree as lookup tables. A leaf's distinct path features are its "slots"."""

    slots: int  # U: the most distinct features on one path of this tree
    leaves: int  # L
    # slot-major (U x L, flattened): the feature, the interval [lo, hi) of values that
    # follow the leaf's path at every split on it, and whether a missing value does too.
    # Unused slots have lo = hi = +inf and missing_ok False: never satisfied.
    slot_feature: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    missing_ok: np.ndarray
    # one column per used (leaf, slot), sorted by feature: its leaf, the offset of its
    # 2^U values in `values`, and each feature's run of columns
    column_leaf: np.ndarray
    column_base: np.ndarray
    values: np.ndarray  # float32: contribution of the column's feature for each bit mask
    groups: tuple[tuple[int, int, int], ...]  # (feature, first column, end column)

    def add_contributions(self, xt: np.ndarray, has_nan: np.ndarray, out: np.ndarray) -> None:
        """out[f] += this tree's contribution of feature f. Transposed layouts (features x
        rows) on purpose: every step is then a gather or an operation on whole rows of
        `rows` contiguous values, which numpy does several times faster than per-element
        gathers."""
        if not self.groups:  # a single leaf: it only moves the bias
            return
        rows = xt.shape[1]
        v = xt[self.slot_feature]  # (slots x leaves, rows)
        satisfied = v >= self.lo[:, None]
        satisfied &= v < self.hi[:, None]
        nan_slots = np.flatnonzero(has_nan[self.slot_feature] & self.missing_ok)
        if nan_slots.size:
            satisfied[nan_slots] |= np.isnan(v[nan_slots])
        bits = satisfied.view(np.uint8).reshape(self.slots, self.leaves, rows)
        mask = bits[0].copy()
        for slot in range(1, self.slots):
            mask |= bits[slot] << slot
        index = mask[self.column_leaf].astype(np.intp)  # (columns, rows)
        index += self.column_base[:, None]
        contributions = self.values[index]
        # a slice sum per feature: ~15x faster than np.add.reduceat along axis 0
        for feature, start, stop in self.groups:
            out[feature] += contributions[start:stop].sum(axis=0)


@cache
def _subsets(u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For u path features: every subset as bits (2^u x u), the inclusion matrix
    (inc[mask, s] = 1 when subset s is inside mask) and each subset's Shapley weight
    |s|! (u - 1 - |s|)! / u! (for the subsets that leave the feature out)."""
    masks = np.arange(1 << u)
    bits = ((masks[:, None] >> np.arange(u)) & 1).astype(bool)
    inside = ((masks[None, :] & ~masks[:, None]) == 0).astype(np.float64)
    size = bits.sum(axis=1)
    weight = np.array(
        [math.factorial(s) * math.factorial(u - 1 - s) / math.factorial(u) for s in range(u)]
        + [0.0]
    )
    return bits, inside, weight[size]


def leaf_tables(zero_fraction: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Contributions of leaves with u path features each, for every mask of satisfied
    features: (leaves, 2^u, u). zero_fraction (leaves, u): the product of cover ratios of
    the path's splits on each feature; value (leaves,): the leaf values.

    phi_k(mask) = v * (o_k - z_k) * sum over subsets S of mask without k of
                  w(|S|) * prod over the features i not in S, i != k, of z_i
    with o_k = 1 if k is in mask, the Shapley value of the leaf's product game."""
    u = zero_fraction.shape[1]
    bits, inside, weight = _subsets(u)
    absent = np.where(bits[None], 1.0, zero_fraction[:, None, :])  # z_i when i not in S
    others = ~np.eye(u, dtype=bool)  # [k, i]: i != k
    product = np.prod(np.where(others[None, None], absent[:, :, None, :], 1.0), axis=3)
    terms = np.where(bits[None], 0.0, weight[None, :, None] * product)  # S without k only
    inner = np.einsum("ms,lsk->lmk", inside, terms)
    return value[:, None, None] * (bits[None].astype(np.float64) - zero_fraction[:, None]) * inner


_Slot = tuple[np.float32, np.float32, bool, float]  # lo, hi, missing_ok, zero fraction


def _paths(tree: dict) -> list[tuple[float, list[tuple[int, _Slot]]]]:
    """Every leaf's value and its path's slots: for each distinct feature split on along
    the path, the interval of values that follow it, whether a missing value follows it
    (XGBoost sends a missing value to the default side), and the product of the cover
    ratios child / parent of those splits."""
    left, right = tree["left_children"], tree["right_children"]
    split_feature, default_left = tree["split_indices"], tree["default_left"]
    condition = np.asarray(tree["split_conditions"], dtype=np.float32)  # leaf value at leaves
    cover = tree["sum_hessian"]
    paths = []
    stack: list[tuple[int, dict[int, _Slot]]] = [(0, {})]
    while stack:
        node, slots = stack.pop()
        if left[node] == -1:
            paths.append((float(condition[node]), list(slots.items())))
            continue
        feature = int(split_feature[node])
        lo, hi, missing_ok, z = slots.get(
            feature, (np.float32(-np.inf), np.float32(np.inf), True, 1.0)
        )
        ratio = cover[left[node]] / cover[node], cover[right[node]] / cover[node]
        # XGBoost: x < condition goes left, x >= condition right
        left_slot = (lo, min(hi, condition[node]), missing_ok and bool(default_left[node]))
        right_slot = (max(lo, condition[node]), hi, missing_ok and not default_left[node])
        stack.append((int(right[node]), {**slots, feature: (*right_slot, z * ratio[1])}))
        stack.append((int(left[node]), {**slots, feature: (*left_slot, z * ratio[0])}))
    return paths


def _compile_tree(tree: dict) -> _Tree:
    paths = _paths(tree)
    sizes = np.array([len(slots) for _, slots in paths])
    slots, leaves = max(1, int(sizes.max())), len(paths)
    if slots > MAX_PATH_FEATURES:
        raise UnsupportedModel(f"a path splits on {slots} features (> {MAX_PATH_FEATURES})")
    feature = np.zeros((slots, leaves), np.int64)
    lo = np.full((slots, leaves), np.inf, np.float32)
    hi = np.full((slots, leaves), np.inf, np.float32)
    missing_ok = np.zeros((slots, leaves), bool)
    zero_fraction = np.ones((slots, leaves))
    for leaf_no, (_, path) in enumerate(paths):
        for slot_no, (f, (a, b, ok, z)) in enumerate(path):
            at = slot_no, leaf_no
            feature[at], lo[at], hi[at] = f, a, b
            missing_ok[at], zero_fraction[at] = ok, z
    value = np.array([v for v, _ in paths])
    table = np.zeros((leaves, 1 << slots, slots))
    for u in np.unique(sizes[sizes > 0]):
        chosen = np.flatnonzero(sizes == u)
        table[chosen, : 1 << u, :u] = leaf_tables(zero_fraction[:u, chosen].T, value[chosen])
    slot, leaf = np.nonzero(np.arange(slots)[:, None] < sizes[None, :])
    order = np.argsort(feature[slot, leaf], kind="stable")
    slot, leaf = slot[order], leaf[order]
    column_feature = feature[slot, leaf]
    starts = np.flatnonzero(np.diff(column_feature, prepend=-1) != 0)
    ends = np.append(starts[1:], column_feature.size)[: starts.size]
    return _Tree(
        slots=slots,
        leaves=leaves,
        slot_feature=feature.ravel(),
        lo=lo.ravel(),
        hi=hi.ravel(),
        missing_ok=missing_ok.ravel(),
        column_leaf=leaf,
        column_base=np.arange(leaf.size, dtype=np.intp) << slots,
        values=table[leaf, :, slot].astype(np.float32).ravel(),
        groups=tuple(
            (int(column_feature[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)
        ),
    )


@dataclass(frozen=True)
class TreeShap:
    """A booster compiled to lookup tables, once per model."""

    trees: tuple[_Tree, ...]
    n_features: int

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> TreeShap:
        model = json.loads(booster.save_raw("json"))["learner"]
        trees = gbtree_trees(model)
        params = model["learner_model_param"]
        return cls(tuple(_compile_tree(t) for t in trees), int(params["num_feature"]))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows x features) contributions in log-odds, float64 (the bias left out), in
        blocks of CHUNK_ROWS rows. One thread: with two threads over the blocks it was
        slower here (the small fancy-indexing steps hold the GIL)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows x {self.n_features} features, got {x.shape}")
        # +-inf split like the largest finite values do; clipped, an unbounded side of an
        # interval (+inf) and an unused slot (lo = +inf) stay exact for them
        big = np.finfo(np.float32).max
        x = np.clip(x, -big, big)
        out = np.zeros(x.shape, dtype=np.float64)
        has_nan = np.isnan(x).any(axis=0)
        blocks = [slice(a, min(a + CHUNK_ROWS, len(x))) for a in range(0, len(x), CHUNK_ROWS)]

        for block in blocks:
            xt = np.ascontiguousarray(x[block].T)
            total = np.zeros(xt.shape, dtype=np.float64)
            for tree in self.trees:
                tree.add_contributions(xt, has_nan, total)
            out[block] = total.T
        return out


@dataclass(frozen=True)
class Explanation:
    contributions: np.ndarray  # rows x features, log-odds
    method: str  # "treeshap-tables" or "xgboost" (the fallback)
    note: str = ""


def xgboost_contributions(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """XGBoost's own TreeSHAP (rows x features, the bias column dropped). The DMatrix is
    built on one thread: the rows are few (a check, or real-time alerts), and waking a team
    of OpenMP threads on a busy machine cost milliseconds per call."""
    matrix = xgb.DMatrix(x, missing=np.nan, feature_names=booster.feature_names, nthread=1)
    return booster.predict(matrix, pred_contribs=True)[:, :-1].astype(np.float64)


def check_rows(rows: int, count: int = CHECK_ROWS) -> np.ndarray:
    """Evenly spaced row numbers (the first and the last included): the same every run."""
    return np.unique(np.linspace(0, rows - 1, min(rows, count)).round().astype(np.int64))


def _contributions_of(model_json: bytes, x: np.ndarray) -> np.ndarray:
    """In a worker process: the tables compiled from the model's own JSON (no pickled
    booster), then the contributions of its share of the rows."""
    booster = xgb.Booster()
    booster.load_model(bytearray(model_json))
    return TreeShap.from_booster(booster).contributions(x)


def shared_contributions(
    tables: TreeShap, booster: xgb.Booster, x: np.ndarray, workers: int | None = None
) -> np.ndarray:
    """tables.contributions(x), with the rows split among `workers` processes (default: one
    per core) when the work is large enough to pay for them. Rows are independent, so the
    result is identical, bit for bit, however they are split."""
    count = workers or os.cpu_count() or 1
    if count < 2 or len(x) * len(tables.trees) < PARALLEL_MIN_VISITS:
        return tables.contributions(x)
    bounds = np.linspace(0, len(x), count + 1).round().astype(int)
    model_json = bytes(booster.save_raw("json"))
    with ProcessPoolExecutor(count - 1, mp_context=get_context("spawn")) as pool:
        others = [
            pool.submit(_contributions_of, model_json, x[a:b])
            for a, b in itertools.pairwise(bounds[1:])
        ]
        first = tables.contributions(x[: bounds[1]])  # this process takes the first share
        return np.concatenate([first, *(future.result() for future in others)])


def explain(booster: xgb.Booster, x: np.ndarray, *, workers: int | None = None) -> Explanation:
    """TreeSHAP contributions of every row, from the tables when the model allows it and
    they agree with XGBoost on CHECK_ROWS rows of x, else from XGBoost for all rows.
    workers: processes sharing the rows (default one per core, when it pays)."""
    if len(x) == 0:
        return Explanation(np.zeros((0, x.shape[1])), "treeshap-tables")
    try:
        tables = TreeShap.from_booster(booster)
    except UnsupportedModel as error:
        return Explanation(
            xgboost_contributions(booster, x), "xgboost", f"tables do not model {error}"
        )
    values = shared_contributions(tables, booster, x, workers)
    sample = check_rows(len(x))
    expected = xgboost_contributions(booster, x[sample])
    worst = float(np.max(np.abs(values[sample] - expected)))
    if worst > CHECK_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
        return Explanation(
            xgboost_contributions(booster, x),
            "xgboost",
            f"the tables differed from XGBoost by {worst:.2e} on the check rows",
        )
    return Explanation(values, "treeshap-tables")
