"""An XGBoost model's trees, read from its JSON, for the project's own tree code: the TreeSHAP
tables of batch explanations (ml/explain.py) and the compiled trees of real-time scoring
(ml/compiled_trees.py). Both model the same kind of model, one output from plain threshold
trees, and refuse the rest alike; XGBoost's own prediction is the fallback."""

from __future__ import annotations

from typing import Any


class UnsupportedModel(ValueError):
    """The booster uses something the project's tree code does not model (named)."""


def gbtree_trees(learner: dict[str, Any]) -> list[dict[str, Any]]:
    """The trees of a model's `learner` JSON object (XGBoost's save_raw("json")), or
    UnsupportedModel: several outputs (classes, targets, output groups or vector leaves),
    a booster other than gbtree (dart, gblinear), categorical splits."""
    params = learner["learner_model_param"]
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) > 1:
        raise UnsupportedModel("several outputs (classes or targets)")
    booster = learner["gradient_booster"]
    if booster["name"] != "gbtree":
        raise UnsupportedModel(f"booster {booster['name']} (only gbtree)")
    model = booster["model"]
    trees: list[dict[str, Any]] = model["trees"]
    if any(int(group) != 0 for group in model["tree_info"]):
        raise UnsupportedModel("several output groups")
    for tree in trees:
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise UnsupportedModel("vector leaves (several outputs)")
        if any(tree["split_type"]) or tree["categories_nodes"]:
            raise UnsupportedModel("categorical splits")
    return trees
