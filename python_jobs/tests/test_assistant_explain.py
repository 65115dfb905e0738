"""`banklake explain` on a real, built and scored lake: the reasons are the scoring job's,
in words, and each baseline is the customer's own history as ml_features holds it."""

from __future__ import annotations

import csv

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.features import FEATURES
from ml.layout import MlLayout
from python_jobs.assistant.explain import (
    HISTORY_DAYS,
    UnknownTransactionError,
    explain,
    show_value,
)
from python_jobs.assistant.formatting import Formatter
from python_jobs.assistant.vocabulary import FEATURE_WORDS, KINDS, REASON_CODES_SEED
from python_jobs.cli import main
from python_jobs.lake.layout import Lake
from python_jobs.tests.assistant_report_lake import FIRST_DAY, LAST_DAY, scored_lake

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return scored_lake(tmp_path_factory)


@pytest.fixture(scope="module")
def features(lake: Lake) -> pd.DataFrame:
    with duckdb.connect(str(lake.database), read_only=True) as con:
        return con.execute("select * from curated.ml_features").df()


@pytest.fixture(scope="module")
def scores(lake: Lake) -> pd.DataFrame:
    return pq.read_table(MlLayout(lake).scores_file(LAST_DAY)).to_pandas()


def seed_words() -> dict[str, dict[str, str]]:
    with REASON_CODES_SEED.open(encoding="utf-8") as handle:
        return {row["feature"]: row for row in csv.DictReader(handle)}


def expected_baseline(features: pd.DataFrame, transaction_id: str, feature: str) -> tuple:
    """The customer's other transactions in (event_ts - 30 days, event_ts], in pandas."""
    row = features.loc[features["transaction_id"] == transaction_id].iloc[0]
    mine = features[
        (features["customer_id"] == row["customer_id"])
        & (features["event_ts"] > row["event_ts"] - pd.Timedelta(days=HISTORY_DAYS))
        & (features["event_ts"] <= row["event_ts"])
        & (features["transaction_id"] != transaction_id)
    ]
    if feature == "amount_log":
        return len(mine), mine["amount_brl"].median(), row["amount_brl"]
    if features[feature].dtype == bool:
        return len(mine), 100 * mine[feature].astype(float).mean(), float(row[feature])
    return len(mine), mine[feature].astype(float).median(), row[feature]


def picked(scores: pd.DataFrame) -> list[str]:
    """The day's top alert, a mid-ranked alert and the highest-scored non-alert."""
    ranked = scores.sort_values(["score", "transaction_id"], ascending=[False, True])
    alerts = ranked[ranked["decision"] == "alert"]
    passes = ranked[ranked["decision"] == "pass"]
    return [
        alerts.iloc[0]["transaction_id"],
        alerts.iloc[len(alerts) // 2]["transaction_id"],
        passes.iloc[0]["transaction_id"],
    ]


@pytest.mark.parametrize("position", [0, 1, 2])
def test_reasons_are_the_scores_and_baselines_are_the_customers_own(
    lake: Lake, features: pd.DataFrame, scores: pd.DataFrame, position: int
) -> None:
    transaction_id = picked(scores)[position]
    score = scores.set_index("transaction_id").loc[transaction_id]
    row = features.set_index("transaction_id").loc[transaction_id]
    words = seed_words()
    explanation = explain(lake, transaction_id, "en")

    assert explanation.score == pytest.approx(score["score"])
    assert explanation.decision == score["decision"]
    assert explanation.customer_id == row["customer_id"]
    expected_features = [score[f"reason_{i}"] for i in (1, 2, 3) if pd.notna(score[f"reason_{i}"])]
    assert [r.feature for r in explanation.reasons] == expected_features
    assert expected_features, "the model always has some feature pushing the score up"
    # the row's own 30-day count is the same window, computed by dbt
    assert explanation.history_transactions == row["cust_tx_count_30d"]
    if pd.isna(row["cust_amount_avg_30d"]):
        assert explanation.usual_amount_brl is None
    else:
        assert explanation.usual_amount_brl == pytest.approx(row["cust_amount_avg_30d"])

    text = explanation.text()
    for i, reason in enumerate(explanation.reasons, start=1):
        assert reason.contribution == pytest.approx(score[f"reason_{i}_contribution"])
        assert reason.code == words[reason.feature]["reason_code"]
        assert reason.words == words[reason.feature]["description"]
        count, baseline, value = expected_baseline(features, transaction_id, reason.feature)
        assert count == explanation.history_transactions
        if pd.isna(baseline):
            assert reason.baseline is None
        else:
            assert reason.baseline == pytest.approx(baseline)
        if pd.isna(value):
            assert reason.value is None
        else:
            assert reason.value == pytest.approx(float(value))
        # named in the text, with the value and the baseline as an investigator reads them
        assert f"{reason.code} — {reason.words}" in text
        assert show_value(reason.kind, reason.value, "en") in text
        if reason.baseline is not None and count:
            shown = (
                Formatter("en").pct(reason.baseline)
                if reason.kind == "flag"
                else show_value(reason.kind, reason.baseline, "en", baseline=True)
            )
            assert f"the customer's usual: {shown}" in text


def test_portuguese_explanation_uses_portuguese_words(lake: Lake, scores: pd.DataFrame) -> None:
    transaction_id = picked(scores)[0]
    explanation = explain(lake, transaction_id, "pt")
    with FEATURE_WORDS.open(encoding="utf-8") as handle:
        pt = {row["feature"]: row["pt"] for row in csv.DictReader(handle)}
    text = explanation.text()
    assert text.startswith(f"Transação {transaction_id}")
    for reason in explanation.reasons:
        assert reason.words == pt[reason.feature] and reason.words in text
    assert "o habitual do cliente" in text and "R$ " in text


def test_unknown_unscored_and_malformed_ids_are_named(lake: Lake, features: pd.DataFrame) -> None:
    with pytest.raises(UnknownTransactionError, match="'T-NOT-THERE' is not in the lake"):
        explain(lake, "T-NOT-THERE")
    first_day = pd.to_datetime(features["event_date"]).dt.date == FIRST_DAY
    unscored = features.loc[first_day, "transaction_id"]
    with pytest.raises(UnknownTransactionError, match=f"run `banklake score --date {FIRST_DAY}`"):
        explain(lake, unscored.iloc[0])
    with pytest.raises(UnknownTransactionError, match="is not a transaction id"):
        explain(lake, "x' or '1'='1")


def test_cli_explain(lake: Lake, scores: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    transaction_id = picked(scores)[0]
    assert main(["explain", transaction_id, "--lake", str(lake.root), "--lang", "en"]) == 0
    assert f"Transaction {transaction_id}" in capsys.readouterr().out
    assert main(["explain", "T-NOT-THERE", "--lake", str(lake.root)]) == 1
    assert "'T-NOT-THERE'" in capsys.readouterr().err


def test_every_feature_has_words_and_a_kind() -> None:
    with FEATURE_WORDS.open(encoding="utf-8") as handle:
        rows = {row["feature"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(FEATURES)
    # the seed also words the features only older models used (test_contracts)
    assert set(FEATURES) <= set(seed_words())
    assert all(row["kind"] in KINDS and row["pt"] for row in rows.values())
