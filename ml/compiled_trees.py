"""An XGBoost tree model evaluated for a handful of rows, fast: its scores, its margins and its
path attributions (XGBoost's `approx_contribs`), from one compiled loop over flat arrays.

Why: real-time scoring decides a few rows at a time, where XGBoost's per-call costs are most
of the work. Every `pred_contribs` call recomputes the mean value of every node of every tree
before it walks a single row, and each call builds a DMatrix and wakes OpenMP. Here the trees
are parsed once per model into contiguous arrays (every node numbered globally, one root per
tree) with their node means precomputed, and a numba kernel walks each row down each tree.

What it must equal, and how:
- Scores are XGBoost's `predict()` bit for bit. The margin is accumulated in float32 from
  the float32 base margin, adding each tree's leaf value in tree order, as XGBoost's CPU
  predictor does; the objective's transform is XGBoost's own float32 arithmetic (binary:
  logistic: `1 / (expf(min(-m, 88.7)) + 1)`; reg:squarederror: none). The base margin is
  the objective's `ProbToMargin(base_score)` in float32 (`-logf(1 / b - 1)`, or b). expf
  and logf are the C library's, which XGBoost calls too: numba's math.exp and math.log of
  a float32 call them. (A float64 exp rounded to float32 is not always the C library's
  expf: it put some real scores one float32 step away from XGBoost's. numpy's float32 exp,
  its own SIMD code, differs from expf more often.)
- A row goes left where `x < split_condition` (both float32) and a missing value (NaN) goes
  to the node's default side: XGBoost's rule, so every row reaches XGBoost's leaves.
- Path attributions are XGBoost's `CalculateContributionsApprox`: each tree adds its root's
  mean to the bias, and each split on feature f moving to child c adds mean(c) - mean(node)
  to f. Node means are XGBoost's too, in its float32 arithmetic: a leaf's value, else
  (mean(left) * cover(left) + mean(right) * cover(right)) / cover(node), cover = sum_hessian.
  They are summed in float64 where XGBoost sums in float32, so the two differ by float32
  rounding only; a row's attributions add up to its margin minus the bias.

Models it does not model are refused (`UnsupportedModel`, naming what): categorical splits,
several outputs (classes, targets, vector leaves), boosters other than gbtree (dart,
gblinear), objectives other than binary:logistic and reg:squarederror.

numba compiles the kernels on their first call and caches the machine code, for the next
processes, next to this file (`__pycache__`), or where that is read-only in the user's cache
folder (~/.cache/numba); NUMBA_CACHE_DIR names another. Where none can be written, importing
this module fails (numba's RuntimeError, "no locator available").
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import xgboost as xgb
from numba import njit

from ml.tree_model import UnsupportedModel, gbtree_trees

LOGISTIC, SQUARED_ERROR = "binary:logistic", "reg:squarederror"
OBJECTIVES = (LOGISTIC, SQUARED_ERROR)
_EXP_LIMIT = np.float32(88.7)  # XGBoost's Sigmoid clamps -x there (expf would overflow)
_ONE = np.float32(1.0)
# Rows that go down every tree before the next rows do (the kernel's tile): 256 rows of 47
# float32 features and float64 contributions are ~140 KB, within a core's L2 cache.
TILE_ROWS = 256
# Rows a thread walks at a time when several share a day (evaluate's threads): small enough
# that the threads finish together, large enough that handing a block out costs nothing.
BLOCK_ROWS = 16_384


# Scoring works tree by tree, every row of a tile (TILE_ROWS) down one tree before the next
# tree: a tree's nodes stay in the CPU cache while the rows walk it, the tile's rows stay in
# it while the trees are walked, and each row still adds its leaves in tree order. A node is
# one 16-byte record; its children are adjacent (the right one is `child + 1`), which the
# model's own numbering is not required to be: nodes are renumbered breadth first, tree by
# tree.
NODE = np.dtype(
    [
        ("child", np.int32),  # the left child's id (the right one's is child + 1); -1: a leaf
        ("feature", np.int32),  # split feature (0 at a leaf)
        ("condition", np.float32),  # x < condition goes left; a leaf's value at a leaf
        ("step", np.float32),  # mean(this node) - mean(its parent), XGBoost's float32; 0 at a root
    ]
)


class Evaluation(NamedTuple):
    margin: np.ndarray  # (rows,) float32: XGBoost's output_margin, bit for bit
    contributions: np.ndarray  # (rows, features) float64: path attributions, bias left out
    bias: float  # the same for every row: base margin + every tree's root mean


@njit(cache=True, nogil=True)
def _evaluate(
    x: np.ndarray,
    roots: np.ndarray,
    nodes: np.ndarray,
    default_right: np.ndarray,
    base_margin: np.float32,
    margin: np.ndarray,
    contributions: np.ndarray,
) -> None:
    """Each row of x (float32) down each tree: the leaf value added to the row's float32
    margin, each step's change of the node mean to the contribution of the split feature.
    TILE_ROWS rows at a time go down every tree: their features and contributions stay in
    the CPU cache while a thousand trees are walked (a whole day's rows per tree would be
    read from memory again for every tree)."""
    for row in range(x.shape[0]):
        margin[row] = base_margin
    for start in range(0, x.shape[0], TILE_ROWS):
        stop = min(start + TILE_ROWS, x.shape[0])
        for tree in range(roots.shape[0]):
            root = roots[tree]
            for row in range(start, stop):
                node = root
                while nodes[node].child >= 0:
                    split = nodes[node]
                    value = x[row, split.feature]
                    if np.isnan(value):
                        node = split.child + default_right[node]
                    elif value < split.condition:
                        node = split.child
                    else:
                        node = split.child + 1
                    contributions[row, split.feature] += nodes[node].step
                margin[row] += nodes[node].condition  # float32 + float32: XGBoost's sum


@njit(cache=True, nogil=True)
def _sigmoid(margin: np.ndarray, out: np.ndarray) -> None:
    """XGBoost's common::Sigmoid in float32: 1 / (expf(min(-m, 88.7)) + 1). math.exp of a
    float32 is the C library's expf here, the function XGBoost calls."""
    for i in range(margin.shape[0]):
        out[i] = _ONE / (math.exp(min(-margin[i], _EXP_LIMIT)) + _ONE)


@njit(cache=True, nogil=True)
def _logit(base_score: np.float32) -> float:
    """binary:logistic's ProbToMargin, -logf(1.0f / base_score - 1.0f): logf the C
    library's (compiled, a float32 in and out)."""
    return -math.log(_ONE / base_score - _ONE)


def _base_margin(objective: str, base_score: str) -> np.float32:
    """The objective's ProbToMargin of the model's base_score ("[6.45225E-2]" in XGBoost 3,
    a bare number before), in XGBoost's float32 arithmetic."""
    values = [v for v in base_score.strip().strip("[]").split(",") if v.strip()]
    if len(values) != 1:
        raise UnsupportedModel(f"{len(values)} base scores (several outputs)")
    score = np.float32(float(values[0]))
    if objective == SQUARED_ERROR:
        return score
    if not 0.0 < score < 1.0:
        raise UnsupportedModel(f"base_score {score} outside (0, 1) for {objective}")
    return np.float32(_logit(score))


def _supported_trees(learner: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's trees, or UnsupportedModel naming what is not modelled."""
    objective = learner["objective"]["name"]
    if objective not in OBJECTIVES:
        raise UnsupportedModel(f"objective {objective} (only {' and '.join(OBJECTIVES)})")
    return gbtree_trees(learner)


def _column(trees: list[dict[str, Any]], key: str, dtype: type) -> np.ndarray:
    """One per-node field of every tree, concatenated in tree order."""
    return np.fromiter(chain.from_iterable(t[key] for t in trees), dtype=dtype)


def _levels(roots: np.ndarray, left: np.ndarray, right: np.ndarray) -> list[np.ndarray]:
    """The nodes reachable from the roots, level by level; within a level, tree by tree and
    each left child just before its sibling."""
    levels = [roots]
    while True:
        split = levels[-1][left[levels[-1]] >= 0]
        if not split.size:
            return levels
        levels.append(np.stack([left[split], right[split]], axis=1).ravel())


def _node_means(
    levels: list[np.ndarray],
    left: np.ndarray,
    right: np.ndarray,
    value: np.ndarray,
    cover: np.ndarray,
) -> np.ndarray:
    """XGBoost's FillNodeMeanValues for every tree at once, from the deepest level up, in its
    float32 arithmetic: (mean(left) * cover(left) + mean(right) * cover(right)) / cover."""
    mean = value.copy()  # a leaf's mean is its value
    for level in reversed(levels):
        split = level[left[level] >= 0]
        a, b = left[split], right[split]
        weighted = mean[a] * cover[a] + mean[b] * cover[b]  # float32 arrays: float32 steps
        mean[split] = weighted / cover[split]
    return mean


@dataclass(frozen=True)
class CompiledTrees:
    """A tree model as flat arrays: NODE records, every tree's nodes contiguous."""

    objective: str  # binary:logistic or reg:squarederror
    n_features: int
    base_margin: np.float32  # the margin before any tree
    bias: float  # base margin + every tree's root mean: what attributions are measured from
    roots: np.ndarray  # int32 (trees,): each tree's root, in the model's order
    nodes: np.ndarray  # NODE
    default_right: np.ndarray  # int32 (nodes,): 1 where a missing value goes right

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> CompiledTrees:
        learner = json.loads(bytes(booster.save_raw("json")))["learner"]
        trees = _supported_trees(learner)
        sizes = np.array([len(t["left_children"]) for t in trees], dtype=np.int64)
        if sizes.sum() >= np.iinfo(np.int32).max:
            raise UnsupportedModel(f"{sizes.sum()} nodes (ids are int32)")
        # every node numbered globally (the model's own ids, shifted by the tree's offset)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        shift = np.repeat(offsets, sizes)
        local_left = _column(trees, "left_children", np.int64)
        leaf = local_left == -1
        left = np.where(leaf, -1, local_left + shift)
        right = np.where(leaf, -1, _column(trees, "right_children", np.int64) + shift)
        # float32 values, written in their shortest decimal form: parsed back exactly
        condition = _column(trees, "split_conditions", np.float64).astype(np.float32)
        cover = _column(trees, "sum_hessian", np.float64).astype(np.float32)
        levels = _levels(offsets, left, right)
        mean = _node_means(levels, left, right, condition, cover)
        step = np.zeros(len(left), dtype=np.float32)
        split = np.flatnonzero(~leaf)
        step[left[split]] = mean[left[split]] - mean[split]  # float32: XGBoost's new - old
        step[right[split]] = mean[right[split]] - mean[split]
        # breadth first, tree by tree: a stable sort of the levels by tree (deleted nodes,
        # unreachable, are left out)
        reached = np.concatenate(levels)
        tree_of = np.repeat(np.arange(len(trees)), sizes)
        order = reached[np.argsort(tree_of[reached], kind="stable")]  # new id -> old id
        new_id = np.full(len(left), -1, dtype=np.int64)
        new_id[order] = np.arange(len(order))
        nodes = np.zeros(len(order), dtype=NODE)
        nodes["child"] = np.where(leaf[order], -1, new_id[left[order]])
        nodes["feature"] = np.where(
            leaf[order], 0, _column(trees, "split_indices", np.int64)[order]
        )
        nodes["condition"] = condition[order]
        nodes["step"] = step[order]
        default_left = _column(trees, "default_left", np.int64).astype(bool)
        base_margin = _base_margin(
            learner["objective"]["name"], learner["learner_model_param"]["base_score"]
        )
        return cls(
            objective=learner["objective"]["name"],
            n_features=int(learner["learner_model_param"]["num_feature"]),
            base_margin=base_margin,
            bias=float(base_margin) + float(mean[offsets].astype(np.float64).sum()),
            roots=new_id[offsets].astype(np.int32),
            nodes=nodes,
            default_right=(~default_left[order] & ~leaf[order]).astype(np.int32),
        )

    def evaluate(self, x: np.ndarray, *, threads: int = 1) -> Evaluation:
        """Each row's margin and path attributions; x: rows x features (NaN: missing), as
        float32 like XGBoost's DMatrix. threads: how many share the rows (the batch job's
        whole days), in blocks of BLOCK_ROWS; rows are independent, so the result is the
        same, bit for bit, however they are shared."""
        rows = np.ascontiguousarray(x, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected rows x {self.n_features} features, got {rows.shape}")
        margin = np.empty(len(rows), dtype=np.float32)
        contributions = np.zeros(rows.shape, dtype=np.float64)

        def walk(block: slice) -> None:
            _evaluate(
                rows[block],
                self.roots,
                self.nodes,
                self.default_right,
                self.base_margin,
                margin[block],
                contributions[block],
            )

        blocks = [slice(a, a + BLOCK_ROWS) for a in range(0, len(rows), BLOCK_ROWS)]
        if threads <= 1 or len(blocks) <= 1:
            walk(slice(None))
        else:
            # the kernel releases the interpreter lock (nogil): the threads walk at once
            with ThreadPoolExecutor(min(threads, len(blocks))) as pool:
                list(pool.map(walk, blocks))
        return Evaluation(margin, contributions, self.bias)

    def transform(self, margin: np.ndarray) -> np.ndarray:
        """The objective's output from margins, in XGBoost's float32 arithmetic (float32)."""
        margin = np.ascontiguousarray(margin, dtype=np.float32)
        if self.objective == SQUARED_ERROR:
            return margin.copy()
        out = np.empty_like(margin)
        _sigmoid(margin, out)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """booster.predict(DMatrix(x)) (float32): probabilities, or the regression's output."""
        return self.transform(self.evaluate(x).margin)
