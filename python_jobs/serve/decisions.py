"""One transaction's decision in every shape it leaves the scorer: the answer, the
fraud_scores row, the alert. Shared by `banklake serve` (service.py) and the Kinesis consumer
(python_jobs/aws/stream_consumer.py), so both decide, land and alert with the same code.

`decide_in_order` is the decision itself for transactions that stand alone (not answered to a
client): each is featured on the state as the earlier ones left it, then applied, and all are
scored in one model call. The same steps as ScoringService.decide for a batch (a batch is the
same as its requests one by one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.artifacts import LoadedModel
from ml.features import FEATURES
from python_jobs.serve.contract import Transaction
from python_jobs.serve.scoring import Scored, score
from python_jobs.serve.state import Featurized, StateBackend


@dataclass(frozen=True)
class Decided:
    transaction: Transaction
    featurized: Featurized
    scored: Scored


def decide_in_order(
    state: StateBackend, model: LoadedModel, transactions: Sequence[Transaction]
) -> list[Decided]:
    """Features each transaction on the state the earlier ones left, applies it, then scores
    them all at once. The caller refuses transactions the state already knows first."""
    featurized: list[Featurized] = []
    for tx in transactions:
        features = state.featurize(tx)
        state.apply(tx, features)  # the next ones see it, as one by one
        featurized.append(features)
    scored = score(model, feature_matrix(featurized)) if featurized else []
    return [Decided(tx, f, s) for tx, f, s in zip(transactions, featurized, scored, strict=True)]


def feature_matrix(featurized: Sequence[Featurized]) -> np.ndarray:
    """The model input of featured transactions, one row each."""
    return np.vstack([f.vector() for f in featurized])


def answer_body(tx: Transaction, s: Scored, featurized: Featurized) -> dict[str, Any]:
    """The API's answer for a transaction (the features are dropped unless asked for)."""
    return {
        "transaction_id": tx.transaction_id,
        "score": s.score,
        "decision": s.decision,
        "reasons": s.reasons,
        "reasons_exact": s.reasons_exact,
        "model_version": s.model_version,
        "threshold": s.threshold,
        "account_id": tx.account_id,
        "counterparty_key": tx.counterparty_key,
        "amount_brl": tx.amount,
        "transaction_type": tx.transaction_type,
        "channel": tx.channel,
        "event_ts": tx.event_ts.isoformat(sep=" "),
        "features": {name: featurized.features[name] for name in FEATURES},
    }


def score_row(tx: Transaction, s: Scored, received_at: str) -> dict[str, Any]:
    """The processed/fraud_scores row (ml/score.py SCORES_SCHEMA) of a decision."""
    row: dict[str, Any] = {
        "transaction_id": tx.transaction_id,
        "customer_id": tx.customer_id,
        "event_ts": tx.event_ts.isoformat(),
        "model_version": s.model_version,
        "score": s.score,
        "threshold": s.threshold,
        "decision": s.batch_decision,
        "scored_at": received_at,
        "score_date": tx.event_ts.date().isoformat(),
    }
    for i in range(3):
        reason = s.reasons[i] if i < len(s.reasons) else None
        row[f"reason_{i + 1}"] = None if reason is None else reason["feature"]
        row[f"reason_{i + 1}_contribution"] = None if reason is None else reason["contribution"]
    return row


def alert_body(
    answer: dict[str, Any], score: dict[str, Any] | None, raised_at: str
) -> dict[str, Any]:
    """The alert of a review or block: ids, the curated (hashed when personal) counterparty
    key, amount, type, channel, score and reasons; no raw text of the request (alerts.py)."""
    return {
        "alert_id": f"A-{answer['transaction_id']}",
        "raised_at": raised_at,
        **{
            k: answer[k]
            for k in ("transaction_id", "score", "decision", "reasons", "model_version")
        },
        **({k: score[k] for k in ("customer_id", "event_ts")} if score else {}),
        "account_id": answer.get("account_id"),
        "counterparty_key": answer.get("counterparty_key"),
        "amount_brl": answer.get("amount_brl"),
        "transaction_type": answer.get("transaction_type"),
        "channel": answer.get("channel"),
    }
