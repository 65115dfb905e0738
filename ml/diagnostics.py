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

import pandas as pd
import pyarrow.parquet as pq

from ml.layout import MlLayout
from ml.metrics import evaluate

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
        name: evaluate(relabelled, scores[name], thresholds[name], k=k).to_dict() for name in scores
    }
