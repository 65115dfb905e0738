"""`banklake explain <transaction_id>`: why the fraud model scored a transaction as it did.

An investigator opening an alert wants the reasons in words and, next to each, what is
normal for this customer: "R$ 4.343,50 where this customer usually moves R$ 212,00" says
more than "amount_log +1.38". So, for one transaction:

- its score, threshold, decision and top reasons come from the scoring job's own output
  (<lake>/processed/fraud_scores/, the per-feature contributions of ml/score.py);
- each reason's feature is put in plain words (pt: templates/feature_words.csv; en: the
  reason-code seed that fct_fraud_alerts uses too) with the transaction's value;
- next to it the customer's own baseline, from curated.ml_features: the same feature over
  the customer's other transactions in the previous 30 days (the features' own window,
  (event_ts - 30 days, event_ts]) - the median for numbers, the share for yes/no features.
  For the amount the baseline is the median amount in R$, not its logarithm.

No language model is involved: the explanation is a deterministic reading of the scores.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds

from ml.features import FEATURES, WINDOW_DAYS
from ml.layout import MlLayout
from python_jobs.assistant.formatting import Formatter, load_template
from python_jobs.assistant.report_facts import records
from python_jobs.assistant.vocabulary import feature_kind, feature_label, reason_code
from python_jobs.assistant.warehouse import DuckDBWarehouse, Warehouse
from python_jobs.lake.layout import Lake

HISTORY_DAYS = max(WINDOW_DAYS)
N_REASONS = 3
_TRANSACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")


class UnknownTransactionError(ValueError):
    """The id is not a transaction the model scored (or not an id at all)."""


@dataclass(frozen=True)
class Reason:
    rank: int
    feature: str
    code: str
    words: str
    kind: str  # vocabulary.KINDS
    contribution: float
    value: float | None  # the transaction's value (for "amount": the amount in R$)
    baseline: float | None  # the customer's median, or share in % for yes/no features
    baseline_stat: str  # "median" or "share"


@dataclass(frozen=True)
class Explanation:
    lang: str
    transaction_id: str
    customer_id: str
    event_ts: datetime
    model_version: str
    score: float
    threshold: float
    decision: str
    transaction_type: str | None
    channel: str | None
    direction: str | None
    amount_brl: float | None
    fraud_reported: bool | None
    history_transactions: int  # the customer's other transactions in the previous 30 days
    usual_amount_brl: float | None  # ml_features.cust_amount_avg_30d
    reasons: list[Reason] = field(default_factory=list)

    def text(self) -> str:
        words = load_template("explain", self.lang)
        line, word = words["text"], words["words"]
        f = Formatter(self.lang)
        when = f"{f.day_long(self.event_ts.date())} {self.event_ts:%H:%M}"
        label = (
            word["none"]
            if self.fraud_reported is None
            else word["yes" if self.fraud_reported else "no"]
        )
        out = [
            line["title"].format(
                transaction_id=self.transaction_id,
                when=when,
                transaction_type=self.transaction_type or word["none"],
                direction=word.get(self.direction or "", self.direction or word["none"]),
                channel=self.channel or word["none"],
                amount=f.money(self.amount_brl),
            ),
            line["model"].format(
                customer_id=self.customer_id,
                model_version=self.model_version,
                score=f.number(self.score, 4),
                threshold=f.number(self.threshold, 6),
                decision=word["alert" if self.decision == "alert" else "pass"],
            ),
            line["label"].format(label=label),
            "",
            line["reasons"] if self.reasons else line["no_reasons"],
        ]
        for reason in self.reasons:
            out.append(
                line["reason"].format(
                    rank=reason.rank,
                    code=reason.code,
                    words=reason.words,
                    contribution=f.signed(reason.contribution, 3, unit="number"),
                )
            )
            values = line["values"].format(
                value=show_value(reason.kind, reason.value, self.lang),
                baseline=self._baseline(reason),
            )
            out.append(f"   {values}")
        out += [
            "",
            line["history"].format(
                days=HISTORY_DAYS,
                count=f.count(self.history_transactions),
                usual=f.money(self.usual_amount_brl),
            ),
            line["contribution_note"],
        ]
        return "\n".join(out)

    def _baseline(self, reason: Reason) -> str:
        line = load_template("explain", self.lang)["text"]
        if reason.baseline is None or not self.history_transactions:
            return line["baseline_none"].format(days=HISTORY_DAYS)
        count = Formatter(self.lang).count(self.history_transactions)
        if reason.baseline_stat == "share":
            value = Formatter(self.lang).pct(reason.baseline)
            return line["baseline_share"].format(value=value, count=count, days=HISTORY_DAYS)
        value = show_value(reason.kind, reason.baseline, self.lang, baseline=True)
        return line["baseline_median"].format(value=value, count=count, days=HISTORY_DAYS)


def show_value(kind: str, value: float | None, lang: str, *, baseline: bool = False) -> str:
    """A feature value as an investigator reads it."""
    f = Formatter(lang)
    word = load_template("explain", lang)["words"]
    if value is None:
        return word["none"]
    if kind in ("amount", "money"):
        return f.money(value)
    if kind == "flag":
        return word["yes" if value else "no"]
    if kind == "hour":
        return word["hour"].format(value=f.number(value, 1 if baseline else 0))
    if kind == "seconds":
        for unit, size in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
            if abs(value) >= size:
                return word[unit].format(value=f.number(value / size, 1))
        return word["seconds"].format(value=f.number(value, 0))
    if kind == "ratio":
        return f"{f.number(value, 2)}{word['times']}"
    if kind == "zscore":
        return f.number(value, 2)
    if kind == "share":
        return f.pct(100.0 * value)
    return f.number(value, 1 if baseline else 0)


# --- reading the scores and the features --------------------------------------------------------


def find_score(layout: MlLayout, transaction_id: str) -> dict[str, Any] | None:
    """The transaction's row of the scores (the latest scoring if a day was re-scored)."""
    if not layout.scores.is_dir():
        return None
    dataset = ds.dataset(layout.scores, format="parquet", partitioning="hive")
    table = dataset.to_table(filter=pc.field("transaction_id") == transaction_id)
    if table.num_rows == 0:
        return None
    rows = table.to_pylist()
    return max(rows, key=lambda row: row["scored_at"])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def feature_row(warehouse: Warehouse, transaction_id: str) -> dict[str, Any] | None:
    result = records(
        warehouse.query(
            f"select * from curated.ml_features where transaction_id = {_literal(transaction_id)}"
        )
    )
    return result[0] if result else None


def baseline_sql(transaction_id: str, features: list[str]) -> str:
    """The customer's other transactions in the previous HISTORY_DAYS days: how many, and per
    feature the median (numbers) or the share in % (yes/no features)."""
    columns = ["count(*) as history_transactions"]
    for feature in features:
        if feature not in FEATURES:  # names are interpolated: only the contract's
            raise ValueError(f"not a model feature: {feature!r}")
        kind = feature_kind(feature)
        if kind == "flag":
            expression = f"avg(case when history.{feature} then 100.0 else 0.0 end)"
        elif kind == "amount":
            expression = "median(history.amount_brl)"
        else:
            expression = f"median(cast(history.{feature} as double))"
        columns.append(f"{expression} as baseline_{feature}")
    return f"""
        with target as (
            select transaction_id, customer_id, event_ts
            from curated.ml_features
            where transaction_id = {_literal(transaction_id)}
        )
        select
            {", ".join(columns)}
        from curated.ml_features as history
        inner join target
            on history.customer_id = target.customer_id
        where
            history.event_ts > target.event_ts - interval '{HISTORY_DAYS} days'
            and history.event_ts <= target.event_ts
            and history.transaction_id != target.transaction_id
    """


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


def explain(
    lake: Lake, transaction_id: str, lang: str = "pt", *, warehouse: Warehouse | None = None
) -> Explanation:
    """The explanation of one scored transaction; UnknownTransactionError names an id that
    is not one."""
    load_template("explain", lang)  # an unknown language fails before any read
    transaction_id = transaction_id.strip()
    if not _TRANSACTION_ID.match(transaction_id):
        raise UnknownTransactionError(f"{transaction_id!r} is not a transaction id")
    layout = MlLayout(lake)
    own: DuckDBWarehouse | None = None  # opened here, closed here
    if warehouse is None:
        warehouse = own = DuckDBWarehouse(lake)
    try:
        score = find_score(layout, transaction_id)
        row = feature_row(warehouse, transaction_id)
        if score is None:
            raise UnknownTransactionError(_not_scored(transaction_id, row, layout))
        features = [score[f"reason_{i}"] for i in range(1, N_REASONS + 1) if score[f"reason_{i}"]]
        baseline = records(warehouse.query(baseline_sql(transaction_id, features)))[0]
    finally:
        if own is not None:
            own.close()
    return _explanation(lang, transaction_id, score, row or {}, baseline)


def _not_scored(transaction_id: str, row: Mapping[str, Any] | None, layout: MlLayout) -> str:
    scored = layout.scored_days()
    span = f"scored days: {scored[0]}..{scored[-1]}" if scored else "nothing is scored yet"
    if row is None:
        return (
            f"transaction {transaction_id!r} is not in the lake: no such id in the fraud scores "
            f"or in curated.ml_features ({span})"
        )
    day = row["event_date"]
    return (
        f"transaction {transaction_id!r} was not scored ({span}): "
        f"run `banklake score --date {day}` first"
    )


def _explanation(
    lang: str,
    transaction_id: str,
    score: Mapping[str, Any],
    row: Mapping[str, Any],
    baseline: Mapping[str, Any],
) -> Explanation:
    reasons = []
    for i in range(1, N_REASONS + 1):
        feature = score[f"reason_{i}"]
        if not feature:
            continue
        kind = feature_kind(feature)
        value = row.get("amount_brl") if kind == "amount" else row.get(feature)
        reasons.append(
            Reason(
                rank=i,
                feature=feature,
                code=reason_code(feature),
                words=feature_label(feature, lang),
                kind=kind,
                contribution=float(score[f"reason_{i}_contribution"]),
                value=_number(value),
                baseline=_number(baseline.get(f"baseline_{feature}")),
                baseline_stat="share" if kind == "flag" else "median",
            )
        )
    label = row.get("label_is_fraud")
    return Explanation(
        lang=lang,
        transaction_id=transaction_id,
        customer_id=score["customer_id"],
        event_ts=score["event_ts"],
        model_version=score["model_version"],
        score=float(score["score"]),
        threshold=float(score["threshold"]),
        decision=score["decision"],
        transaction_type=row.get("transaction_type"),
        channel=row.get("channel"),
        direction=row.get("direction"),
        amount_brl=_number(row.get("amount_brl")),
        fraud_reported=None if label is None else bool(label),
        history_transactions=int(baseline["history_transactions"]),
        usual_amount_brl=_number(row.get("cust_amount_avg_30d")),
        reasons=reasons,
    )
