"""Test-period metrics, and the alert-budget rule that sets the operating threshold.

A fraud team works a fixed number of cases a day; the threshold is therefore the score
that fills that budget, not 0.5 (with class weights the scores are not probabilities
anyway). A case is a customer on a day: an investigator reviews the customer, so ten card
payments of one stolen card flagged within an hour are one review, not ten (the same unit as
precision@k). Every metric here is computed the same way for the model and for the
baselines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ml.ranking import Ranking

DEFAULT_ALERT_BUDGET = 100.0  # cases (customers with an alert) a day
DEFAULT_K = 100  # customers a day for precision@k

THRESHOLD_RULE = (
    "alert budget: the lowest score s such that the validation days raise at most "
    "{budget:g} cases a day on average when alerting on score >= s (a case: a customer "
    "with at least one alerted transaction that day)"
)


def threshold_for_budget(scores: np.ndarray, n_days: int, alerts_per_day: float) -> float:
    """The lowest threshold s with count(scores >= s) <= alerts_per_day * n_days.

    With distinct scores this alerts on exactly the top alerts_per_day * n_days rows; ties
    at the boundary are all left out rather than overrunning the budget.
    """
    if n_days < 1 or alerts_per_day <= 0:
        raise ValueError("the alert budget needs at least one day and a positive budget")
    budget = math.floor(alerts_per_day * n_days)
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if ordered.size == 0:
        raise ValueError("no validation scores to set a threshold on")
    if budget >= ordered.size:
        return float(ordered[-1])
    above = float(np.nextafter(ordered[0], np.inf))
    if budget == 0:
        return above
    candidate = ordered[budget - 1]
    if ordered[budget] < candidate:  # no tie across the boundary
        return float(candidate)
    # the (budget+1)-th score ties the budget-th: move up to the next distinct value
    higher = ordered[ordered > candidate]
    return float(higher[-1]) if higher.size else above


def case_scores(days: np.ndarray, customers: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each case's score: the highest score of the customer's transactions that day (the case
    is alerted exactly when one of them is)."""
    frame = pd.DataFrame({"day": days, "customer": customers, "score": scores})
    return frame.groupby(["day", "customer"], sort=False, observed=True)["score"].max().to_numpy()


def _frame_cases(frame: pd.DataFrame, scores: np.ndarray) -> tuple[np.ndarray, int]:
    """The case scores of `frame` (rows with event_date and customer_id) and its days."""
    days = frame["event_date"].to_numpy(dtype="datetime64[D]")
    customers = pd.factorize(frame["customer_id"])[0]
    return case_scores(days, customers, scores), int(np.unique(days).size)


def threshold_for_cases(frame: pd.DataFrame, scores: np.ndarray, cases_per_day: float) -> float:
    """The lowest threshold that raises at most cases_per_day cases a day on average over the
    days of `frame`, scored by `scores`."""
    cases, n_days = _frame_cases(frame, scores)
    return threshold_for_budget(cases, n_days, cases_per_day)


def cases_per_day(frame: pd.DataFrame, scores: np.ndarray, threshold: float) -> float:
    """The cases a day that `threshold` raises on the days of `frame`."""
    cases, n_days = _frame_cases(frame, scores)
    return float(np.sum(cases >= threshold)) / n_days if n_days else 0.0


def precision_at_k_by_day(
    days: np.ndarray, customers: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int
) -> dict[str, float]:
    """Per day: the k customers with the highest score (a customer's score is the max over
    their transactions that day), and the share of them with a fraud that day."""
    per_customer = (
        pd.DataFrame({"day": days, "customer": customers, "score": scores, "fraud": labels})
        .groupby(["day", "customer"], sort=False, observed=True)
        .agg(score=("score", "max"), fraud=("fraud", "max"))
        .reset_index()
        .sort_values(["day", "score", "customer"], ascending=[True, False, True], kind="stable")
    )
    top = per_customer[per_customer.groupby("day", sort=False).cumcount() < k]
    shares = top.groupby("day")["fraud"].mean()
    return {pd.Timestamp(d).date().isoformat(): float(v) for d, v in shares.items()}


def precision_at_k_ceiling(
    days: np.ndarray, customers: np.ndarray, labels: np.ndarray, k: int
) -> float | None:
    """The best precision@k any score could reach: per day min(k, customers with a known
    fraud) / min(k, customers), averaged over days. With immature labels (the last test
    days) it is far below 1, and precision@k should be read against it."""
    frame = pd.DataFrame({"day": days, "customer": customers, "fraud": labels})
    per_customer = frame.groupby(["day", "customer"], observed=True)["fraud"].max()
    per_day = per_customer.groupby(level="day").agg(["sum", "size"])
    if per_day.empty:
        return None
    ceiling = np.minimum(per_day["sum"], k) / np.minimum(per_day["size"], k)
    return float(ceiling.mean())


@dataclass
class Metrics:
    rows: int
    frauds: int
    days: int
    roc_auc: float | None
    average_precision: float | None
    threshold: float
    alerts: int
    alerts_per_day: float
    precision: float | None
    recall: float | None
    f1: float | None
    k: int
    precision_at_k: float | None  # mean over days
    precision_at_k_ceiling: float | None  # what a perfect ranking would reach, same days
    precision_at_k_by_day: dict[str, float] = field(default_factory=dict)
    recall_by_scenario: dict[str, dict[str, float]] = field(default_factory=dict)
    cases: int = 0  # customer-days with an alert
    cases_per_day: float = 0.0
    # per scenario of the known frauds: their ranking against every legitimate row
    average_precision_by_scenario: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Metrics:
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TestRows:
    """What the metrics need of the test rows, whatever scores them: computed once for all
    the models scored on the same rows (grouping the customer ids is the costly part)."""

    y: np.ndarray
    days: np.ndarray
    n_days: int
    # integer codes in the ids' sort order: the same groups and tie order as the ids, and
    # grouped several times faster than strings
    customers: np.ndarray
    scenario_rows: dict[str, np.ndarray]  # per scenario of the known frauds: its rows
    precision_at_k_ceiling: float | None
    k: int

    @classmethod
    def of(cls, frame: pd.DataFrame, k: int = DEFAULT_K) -> TestRows:
        """frame: test rows with event_date, customer_id, label and label_scenario."""
        y = frame["label"].to_numpy(dtype=bool)
        days = frame["event_date"].to_numpy(dtype="datetime64[D]")
        customers = pd.factorize(frame["customer_id"], sort=True)[0]
        scenario = frame["label_scenario"].astype("string").fillna("unknown").to_numpy(dtype=object)
        names = sorted(set(scenario[y]))
        return cls(
            y=y,
            days=days,
            n_days=int(np.unique(days).size),
            customers=customers,
            scenario_rows={str(n): y & (scenario == n) for n in names},
            precision_at_k_ceiling=precision_at_k_ceiling(days, customers, y, k),
            k=k,
        )


def evaluate(
    frame: pd.DataFrame, scores: np.ndarray, threshold: float, *, k: int = DEFAULT_K
) -> Metrics:
    """Metrics of `scores` against frame["label"] (frame: test rows with event_date,
    customer_id and label_scenario)."""
    return evaluate_rows(TestRows.of(frame, k), scores, threshold)


def evaluate_many(
    frame: pd.DataFrame,
    scores: dict[str, np.ndarray],
    thresholds: dict[str, float],
    *,
    k: int = DEFAULT_K,
) -> dict[str, Metrics]:
    """evaluate() of each model's scores and threshold on the same rows."""
    rows = TestRows.of(frame, k)
    return {name: evaluate_rows(rows, scores[name], thresholds[name]) for name in scores}


def evaluate_rows(rows: TestRows, scores: np.ndarray, threshold: float) -> Metrics:
    """Metrics of `scores` on the test rows (TestRows.of)."""
    y, days, customers, k = rows.y, rows.days, rows.customers, rows.k
    n_days = rows.n_days
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} rows")
    alert = s >= threshold
    tp = int((alert & y).sum())
    n_alerts = int(alert.sum())
    n_fraud = int(y.sum())
    precision = tp / n_alerts if n_alerts else None
    recall = tp / n_fraud if n_fraud else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else (0.0 if precision is not None and recall is not None else None)
    )
    # one sort for the ROC AUC, the average precision and each scenario's
    ranking, by_scenario = Ranking.with_groups(y, s, rows.scenario_rows)
    by_day = precision_at_k_by_day(days, customers, s, y, k)
    n_cases = int(np.sum(case_scores(days, customers, s) >= threshold))
    recall_by_scenario: dict[str, dict[str, float]] = {}
    for name, members in rows.scenario_rows.items():
        caught = int((members & alert).sum())
        recall_by_scenario[name] = {
            "frauds": int(members.sum()),
            "caught": caught,
            "recall": caught / int(members.sum()),
        }
    return Metrics(
        rows=int(y.size),
        frauds=n_fraud,
        days=n_days,
        roc_auc=ranking.roc_auc(),  # both None (undefined) with a single class
        average_precision=ranking.average_precision(),
        threshold=float(threshold),
        alerts=n_alerts,
        alerts_per_day=n_alerts / n_days if n_days else 0.0,
        precision=precision,
        recall=recall,
        f1=f1,
        k=k,
        precision_at_k=float(np.mean(list(by_day.values()))) if by_day else None,
        precision_at_k_ceiling=rows.precision_at_k_ceiling,
        precision_at_k_by_day=by_day,
        recall_by_scenario=recall_by_scenario,
        cases=n_cases,
        cases_per_day=n_cases / n_days if n_days else 0.0,
        average_precision_by_scenario={
            name: scenario_ranking.average_precision()
            for name, scenario_ranking in by_scenario.items()
        },
    )
