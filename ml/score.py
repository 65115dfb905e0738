"""Daily scoring with the champion: one Parquet file per day, with the three main reasons.

<lake>/processed/fraud_scores/score_date=YYYY-MM-DD/scores.parquet holds exactly
SCORES_SCHEMA (score_date is the partition folder, not a column). Re-scoring a day replaces
its file atomically (write a temporary file in the same folder, then rename), so a reader
sees the old file or the new one, never a mix. Same model + same features -> same file
contents except scored_at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml import drift
from ml.artifacts import LoadedModel, load_champion
from ml.booster import top_reasons
from ml.dataset import date_range, feature_matrix, load_features
from ml.explain import Explanation
from ml.features import FEATURES
from ml.layout import MlLayout

N_REASONS = 3
ALERT, PASS = "alert", "pass"
# Which rows get exact TreeSHAP reasons (`banklake score --reasons`): the alerted ones (the
# default; the others get path attributions, as real-time approvals do) or every row.
ALERTS, ALL = "alerts", "all"
REASON_MODES = (ALERTS, ALL)
PATHS = "path attributions"
SCORING_KEYS = ("transaction_id", "customer_id")  # the text keys the scores file carries
SCORES_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("customer_id", pa.string()),
        ("event_ts", pa.timestamp("us")),
        ("model_version", pa.string()),
        ("score", pa.float64()),
        ("threshold", pa.float64()),
        ("decision", pa.string()),
        *(
            field
            for i in range(1, N_REASONS + 1)
            for field in (
                (f"reason_{i}", pa.string()),
                (f"reason_{i}_contribution", pa.float64()),
            )
        ),
        ("scored_at", pa.timestamp("us")),
    ]
)


def score_frame(
    model: LoadedModel, frame: pd.DataFrame, scored_at: datetime, reasons: str = ALERTS
) -> tuple[pa.Table, Explanation]:
    """Scores rows of contract columns. Reasons are the features with the largest positive
    contributions (score points, ml/ensemble.py) to this row's score; null when fewer than
    three push it up. reasons=ALERTS (the default): exact TreeSHAP for the alerted rows, path
    attributions for the others (score_alerts_explained); ALL: exact TreeSHAP for every row.
    An alerted row's reasons are the same, bit for bit, either way."""
    if reasons not in REASON_MODES:
        raise ValueError(f"reasons must be one of {', '.join(REASON_MODES)}, not {reasons!r}")
    x = feature_matrix(frame)
    if reasons == ALL:
        scores = model.model.predict(x)
        exact = model.model.explain(x)
        explanation = Explanation(exact.contributions, f"{exact.method} for every row", exact.note)
    else:
        scores, explanation = score_alerts_explained(model, x)
    index, value = top_reasons(explanation.contributions, N_REASONS)
    names = np.array([*FEATURES, None], dtype=object)  # index -1 -> None
    threshold = model.threshold
    n = len(frame)
    columns: dict[str, pa.Array] = {
        "transaction_id": pa.array(frame["transaction_id"].to_numpy(dtype=object), pa.string()),
        "customer_id": pa.array(frame["customer_id"].to_numpy(dtype=object), pa.string()),
        "event_ts": pa.array(
            frame["event_ts"].to_numpy(dtype="datetime64[us]"), pa.timestamp("us")
        ),
        "model_version": pa.array([model.version] * n, pa.string()),
        "score": pa.array(scores, pa.float64()),
        "threshold": pa.array(np.full(n, threshold), pa.float64()),
        "decision": pa.array(np.where(scores >= threshold, ALERT, PASS), pa.string()),
    }
    for i in range(N_REASONS):
        columns[f"reason_{i + 1}"] = pa.array(names[index[:, i]], pa.string())
        columns[f"reason_{i + 1}_contribution"] = pa.array(
            value[:, i], pa.float64(), from_pandas=True
        )
    stamp = np.datetime64(scored_at.replace(tzinfo=None), "us")
    columns["scored_at"] = pa.array(np.full(n, stamp), pa.timestamp("us"))
    return pa.table(columns, schema=SCORES_SCHEMA), explanation


def score_alerts_explained(
    model: LoadedModel, x: np.ndarray, *, threads: int | None = None
) -> tuple[np.ndarray, Explanation]:
    """Every row's score and contributions, exact only where it is needed: the scores and
    every row's path attributions from the compiled trees (ml/compiled_trees.py: predict()'s
    scores bit for bit; `threads` share the rows, default one per core), then the rows at or
    above the threshold explained again by FraudModel.explain, the computation every row gets
    with reasons=ALL. A passed row's reasons are what real-time scoring gives an approval;
    an alert's are the exact TreeSHAP. A model the compiled trees do not model gets
    XGBoost's scores and exact TreeSHAP for every row (its method, in the output line, says
    why)."""
    from ml.tree_model import UnsupportedModel

    try:
        scores, paths = model.model.score_paths(x, threads=threads or os.cpu_count() or 1)
    except UnsupportedModel as error:
        explanation = model.model.explain(x)
        method = f"{explanation.method} for every row (the compiled trees do not model {error})"
        return model.model.predict(x), Explanation(
            explanation.contributions, method, explanation.note
        )
    alerted = scores >= model.threshold
    contributions = paths.contributions
    if not alerted.any():
        return scores, Explanation(contributions, f"{PATHS} for every row (no alerts)")
    exact = model.model.explain(x[alerted])
    contributions[alerted] = exact.contributions
    method = f"{exact.method} for the {int(alerted.sum()):,} alerts, {PATHS} for the others"
    return scores, Explanation(contributions, method, exact.note)


def write_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class ScoreResult:
    day: date
    path: Path
    rows: int
    alerts: int
    model_version: str
    threshold: float
    explanation: str = ""  # how the reasons were computed, when not the usual way
    # against the model's training-time reference (ml/monitor.py judges the same two), for
    # the job's figures on AWS where no monitor runs: None for a model without a reference
    score_psi: float | None = None
    expected_alert_rate: float | None = None
    reasons: str = ALERTS  # which rows got exact reasons (REASON_MODES)
    reasons_method: str = ""  # how each row's contributions were computed

    def summary(self) -> str:
        text = (
            f"scored {self.rows:,} transactions of {self.day} with model {self.model_version}: "
            f"{self.alerts:,} alerts (threshold {self.threshold:.6f}) -> {self.path}"
        )
        text += f"; reasons: {self.reasons_method}" if self.reasons_method else ""
        return text + (f" ({self.explanation})" if self.explanation else "")


def score_day(
    layout: MlLayout,
    day: date | None = None,
    *,
    now: datetime | None = None,
    reasons: str = ALERTS,
) -> ScoreResult:
    """Scores every transaction with event_date = `day` (default: the last day in the
    features) with the champion and writes that day's file (reasons: see score_frame)."""
    model = load_champion(layout)
    if day is None:
        day = date_range(layout.features)[1]
    frame = load_features(layout.features, day, day, keys=SCORING_KEYS)
    if frame.empty:
        first, last = date_range(layout.features)
        raise ValueError(f"no transactions on {day} in the features (they cover {first}..{last})")
    return score_features(layout, model, day, frame, now=now, reasons=reasons)


def score_features(
    layout: MlLayout,
    model: LoadedModel,
    day: date,
    frame: pd.DataFrame,
    *,
    now: datetime | None = None,
    reasons: str = ALERTS,
) -> ScoreResult:
    """Scores `day`'s feature rows (load_features' shape, wherever they were read: the local
    mart, or Athena through python_jobs/aws/athena_score.py) and writes that day's file."""
    frame = frame.sort_values("transaction_id", kind="stable").reset_index(drop=True)
    table, explanation = score_frame(model, frame, now or datetime.now(UTC), reasons)
    path = layout.scores_file(day)
    write_atomically(table, path)
    alerts = int(np.sum(table["decision"].to_numpy(zero_copy_only=False) == ALERT))
    note = f"reasons from XGBoost's TreeSHAP: {explanation.note}" if explanation.note else ""
    reference = model.metadata.get("reference", {})
    score_psi = None
    if "score" in reference and table.num_rows:
        score_psi = drift.psi(
            drift.Reference.from_dict(reference["score"]),
            table["score"].to_numpy(zero_copy_only=False),
        )
    expected = reference.get("validation_alert_rate")
    return ScoreResult(
        day,
        path,
        table.num_rows,
        alerts,
        model.version,
        model.threshold,
        note,
        score_psi=score_psi,
        expected_alert_rate=None if expected is None else float(expected),
        reasons=reasons,
        reasons_method=explanation.method,
    )


def read_scores(layout: MlLayout, day: date) -> pd.DataFrame:
    path = layout.scores_file(day)
    if not path.exists():
        raise FileNotFoundError(f"no scores for {day} at {path}: run `banklake score --date {day}`")
    return pq.read_table(path).to_pandas()
