"""Evaluation against the synthetic generator's truth: every fraud, reported or not.

Test labels "known now" miss the frauds whose reports have not arrived yet (card testing
and compromised terminals take about two weeks), so on the last test days they understate
every model's precision and recall. A generated lake also holds
`_generator/fraud_truth/*.parquet`, the complete list, which lets the demo show how far off
that is. It is read here and nowhere else: never for training, thresholds or the
champion decision, and a real bank's lake has no such folder (then this returns None).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import average_precision_score

from ml.layout import MlLayout
from ml.metrics import evaluate_many

NOTE = (
    "diagnostic only: test metrics against the generator's complete fraud list (reported or "
    "not); not used for training, thresholds or the champion decision"
)


def load_truth(layout: MlLayout) -> pd.DataFrame | None:
    files = sorted(layout.generator_truth.glob("*.parquet"))
    if not files:
        return None
    parts = [pq.read_table(f, columns=["transaction_id", "scenario"]).to_pandas() for f in files]
    return pd.concat(parts, ignore_index=True).drop_duplicates("transaction_id")


def full_list_known_label_ap(test: pd.DataFrame, truth: pd.DataFrame) -> float | None:
    """Average precision, on the test labels known now, of a score that flags exactly the
    generator's frauds (all tied, in no particular order): the share of the test period's
    frauds already reported. A model that catches every fraud gets this much on the known
    labels, because the frauds not reported yet count against it; on young labels a model
    that ranks the quickly reported scenarios first can score more. None when the labels
    known now have a single class."""
    y = test["label"].to_numpy(dtype=bool)
    if y.all() or not y.any():
        return None
    flagged = test["transaction_id"].isin(truth["transaction_id"]).to_numpy() | y
    return float(average_precision_score(y, flagged.astype(np.float64)))


def truth_metrics(
    test: pd.DataFrame,
    scores: dict[str, Any],
    thresholds: dict[str, float],
    truth: pd.DataFrame,
    k: int,
) -> dict[str, dict[str, Any]]:
    """Each model's test metrics (same scores, same thresholds) with the generator's labels."""
    scenario = test["transaction_id"].map(truth.set_index("transaction_id")["scenario"])
    relabelled = test.assign(label=scenario.notna().to_numpy(), label_scenario=scenario)
    return {
        name: metrics.to_dict()
        for name, metrics in evaluate_many(relabelled, scores, thresholds, k=k).items()
    }
