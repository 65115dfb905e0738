"""The random forest as an XGBoost model: saved and loaded without pickle, scored and explained
by XGBoost's own C++ predictor.

A scikit-learn forest can only be saved by pickling it (or joblib, which is pickle). Its trees
are plain arrays, though, and XGBoost's JSON model format holds any binary tree of threshold
splits. `to_booster` writes each fitted tree as one tree of an XGBoost regression model whose
output is the sum of its leaves: leaf value = the tree's fraud share / number of trees, so the
model's output is exactly `predict_proba(x)[:, 1]`, the share of trees voting fraud (up to
float32 rounding, which is how XGBoost adds leaves).

The two libraries split differently, and the conversion keeps scikit-learn's rule exactly:
- scikit-learn sends a row left when `x <= threshold`, comparing the float32 feature with a
  float64 threshold; XGBoost when `x < split_condition`, both float32. For a float32 x,
  `x <= t` holds exactly when `x < next float32 above the largest float32 <= t`.
- a missing value follows `missing_go_to_left` (scikit-learn decides it per node, also for
  nodes that saw no missing value in training); XGBoost's `default_left` is the same flag.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier

_NO_PARENT = 2147483647  # XGBoost's parent id of a root
_FRAUD = 1  # column of the positive class in a tree's value (classes are [False, True])


def _xgboost_condition(threshold: np.ndarray) -> np.ndarray:
    """The float32 c with `x < c` <=> `float64(x) <= threshold` for every float32 x."""
    below = threshold.astype(np.float32)
    # float32 rounding may land above the threshold: step down to the largest float32 <= it
    above = below.astype(np.float64) > threshold
    below[above] = np.nextafter(below[above], np.float32(-np.inf))
    return np.nextafter(below, np.float32(np.inf))


def _breadth_first(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """scikit-learn's node ids in XGBoost's order: breadth first, each left child just
    before its sibling (XGBoost's predictor expects its own numbering)."""
    order = [0]
    for node in order:  # grows while it is walked
        if left[node] != -1:
            order.extend((int(left[node]), int(right[node])))
    return np.asarray(order, dtype=np.int64)


def _tree_json(tree: Any, index: int, trees: int, features: int) -> dict[str, Any]:
    old_left = tree.children_left.astype(np.int64)
    order = _breadth_first(old_left, tree.children_right.astype(np.int64))
    new_id = np.empty(len(order), dtype=np.int64)
    new_id[order] = np.arange(len(order))
    leaf = old_left[order] == -1
    left = np.where(leaf, -1, new_id[np.maximum(old_left[order], 0)])
    right = np.where(leaf, -1, new_id[np.maximum(tree.children_right[order], 0)])
    nodes = len(order)
    share = tree.value[order, 0, :]
    # scikit-learn >= 1.4 stores class shares per node; older versions weighted counts
    fraud = (share[:, _FRAUD] / share.sum(axis=1)).astype(np.float64) / trees
    condition = np.where(leaf, fraud.astype(np.float32), _xgboost_condition(tree.threshold[order]))
    parents = np.full(nodes, _NO_PARENT, dtype=np.int64)
    parents[left[~leaf]] = np.flatnonzero(~leaf)
    parents[right[~leaf]] = np.flatnonzero(~leaf)
    default_left = np.where(leaf, 0, tree.missing_go_to_left[order].astype(np.int64))
    return {
        "base_weights": fraud.astype(np.float32).tolist(),
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": default_left.tolist(),
        "id": index,
        "left_children": left.tolist(),
        "loss_changes": [0.0] * nodes,
        "parents": parents.tolist(),
        "right_children": right.tolist(),
        "split_conditions": condition.astype(np.float64).tolist(),
        "split_indices": np.where(leaf, 0, tree.feature[order]).astype(np.int64).tolist(),
        "split_type": [0] * nodes,
        # the cover, which XGBoost's explanations weight the paths with
        "sum_hessian": tree.weighted_n_node_samples[order].astype(np.float32).tolist(),
        "tree_param": {
            "num_deleted": "0",
            "num_feature": str(features),
            "num_nodes": str(nodes),
            "size_leaf_vector": "1",
        },
    }


def to_booster(forest: RandomForestClassifier, feature_names: list[str]) -> xgb.Booster:
    """The fitted forest as an XGBoost booster whose prediction is its fraud probability."""
    if list(forest.classes_) != [False, True]:
        raise ValueError(f"expected a forest fitted on labels [False, True], got {forest.classes_}")
    features = len(feature_names)
    if forest.n_features_in_ != features:
        raise ValueError(f"the forest has {forest.n_features_in_} features, not {features}")
    # the surrounding JSON (learner parameters, objective, format version) from XGBoost
    # itself, so the document matches the installed version; only the trees are replaced
    template = xgb.train(
        {"objective": "reg:squarederror", "base_score": 0.0, "max_depth": 1},
        xgb.DMatrix(np.zeros((2, features)), label=[0.0, 0.0], feature_names=feature_names),
        num_boost_round=1,
    )
    document = json.loads(bytes(template.save_raw("json")))
    estimators = forest.estimators_
    model = document["learner"]["gradient_booster"]["model"]
    model["trees"] = [
        _tree_json(e.tree_, i, len(estimators), features) for i, e in enumerate(estimators)
    ]
    model["tree_info"] = [0] * len(estimators)
    model["iteration_indptr"] = list(range(len(estimators) + 1))
    model["gbtree_model_param"] = {"num_parallel_tree": "1", "num_trees": str(len(estimators))}
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(document).encode()))
    booster.feature_names = feature_names
    return booster
