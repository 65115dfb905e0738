"""The generator-truth diagnostic: what a model that flags every fraud scores on young labels."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.diagnostics import full_list_known_label_ap


def test_flagging_every_fraud_scores_the_reported_share_on_the_known_labels() -> None:
    # 4 frauds in the generator's list, 1 of them reported so far; 6 legitimate rows
    test = pd.DataFrame(
        {
            "transaction_id": [f"T{i}" for i in range(10)],
            "label": [True, False, False, False] + [False] * 6,
        }
    )
    truth = pd.DataFrame({"transaction_id": ["T0", "T1", "T2", "T3", "T-other-period"]})
    assert full_list_known_label_ap(test, truth) == pytest.approx(0.25)
    # every fraud reported: a perfect score
    assert full_list_known_label_ap(test.assign(label=[True] * 4 + [False] * 6), truth) == 1.0


def test_undefined_without_both_classes() -> None:
    test = pd.DataFrame({"transaction_id": ["T0", "T1"], "label": [False, False]})
    assert full_list_known_label_ap(test, pd.DataFrame({"transaction_id": ["T0"]})) is None
