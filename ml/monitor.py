"""Daily monitoring of the scoring model: drift, alert volume and realized performance.

For a scored day D:
- PSI of every feature and of the score, D against the training-time reference stored in
  the scoring model's metadata.json (see ml/drift.py);
- the alert rate against the one the threshold produced on the validation days;
- realized precision and recall of every scored day up to D, from the scores joined to
  the labels known now. Labels arrive days to weeks late, so only days at least
  `label_maturity_days` old are used to judge precision.
The report goes to <lake>/monitoring/D.json with a one-line verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ml import drift
from ml.artifacts import load_version, write_json
from ml.dataset import date_range, load_features, load_labels
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.score import ALERT

OK, WATCH, RETRAIN = "ok", "watch", "retrain recommended"


@dataclass(frozen=True)
class MonitorConfig:
    psi_warning: float = 0.1  # a distribution is moving
    psi_drift: float = 0.2  # a distribution has drifted: retrain
    alert_rate_factor: float = 2.0  # alert rate beyond x2 or /2 of validation's: check
    min_precision: float = 0.3  # realized precision on mature days below this: retrain
    min_mature_alerts: int = 50  # fewer mature alerts than this: precision not judged
    label_maturity_days: int = 14  # a day's labels are judged this many days later
    # reported but not judged: one day is all weekday or all weekend, so its PSI against a
    # training window of both is large every single day
    psi_not_judged: tuple[str, ...] = ("is_weekend",)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MonitorReport:
    day: date
    model_version: str
    rows: int
    alerts: int
    alert_rate: float
    expected_alert_rate: float
    score_psi: float
    feature_psi: dict[str, float]
    realized: dict[str, Any]
    verdict: str
    findings: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        return data

    def text(self) -> str:
        shown = self.findings[:3]
        more = len(self.findings) - len(shown)
        reasons = "; ".join(shown) + (f" (and {more} more)" if more else "")
        reasons = reasons or "no drift, alert rate as expected"
        worst = sorted(self.feature_psi.items(), key=lambda kv: -kv[1])[:3]
        mature = self.realized["mature"]
        lines = [
            f"monitoring {self.day} (model {self.model_version}): {self.verdict}: {reasons}",
            f"  alerts {self.alerts:,} of {self.rows:,} ({self.alert_rate:.3%}; validation "
            f"{self.expected_alert_rate:.3%}), score PSI {self.score_psi:.3f}, highest "
            "feature PSI " + ", ".join(f"{k} {v:.3f}" for k, v in worst),
            f"  realized on days with mature labels: precision {_pct(mature['precision'])}, "
            f"recall {_pct(mature['recall'])} ({mature['alerts']} alerts, "
            f"{mature['days']} days)",
        ]
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def realized_performance(
    scores: pd.DataFrame, labels: pd.DataFrame, as_of: date, maturity_days: int
) -> dict[str, Any]:
    """Precision and recall per score day and overall, with the labels known now (`labels`:
    transaction_id, label_is_fraud). `scores`: transaction_id, decision, score_date."""
    joined = scores.merge(
        labels[["transaction_id", "label_is_fraud"]], on="transaction_id", how="left"
    )
    joined["fraud"] = joined["label_is_fraud"].fillna(False).astype(bool)
    joined["alert"] = joined["decision"].eq(ALERT)
    joined["hit"] = joined["alert"] & joined["fraud"]
    per_day = joined.groupby("score_date").agg(
        rows=("alert", "size"),
        alerts=("alert", "sum"),
        frauds=("fraud", "sum"),
        hits=("hit", "sum"),
    )
    age = (pd.Timestamp(as_of) - pd.to_datetime(per_day.index)).days
    per_day["label_age_days"] = np.asarray(age)

    def summary(part: pd.DataFrame) -> dict[str, Any]:
        alerts, frauds, hits = (
            int(part["alerts"].sum()),
            int(part["frauds"].sum()),
            int(part["hits"].sum()),
        )
        return {
            "days": len(part),
            "alerts": alerts,
            "frauds_known": frauds,
            "alerts_confirmed": hits,
            "precision": hits / alerts if alerts else None,
            "recall": hits / frauds if frauds else None,
        }

    days = [
        {
            "score_date": pd.Timestamp(d).date().isoformat(),
            **summary(per_day.loc[[d]]),
            "label_age_days": int(per_day.loc[d, "label_age_days"]),
        }
        for d in per_day.index
    ]
    return {
        "as_of": as_of.isoformat(),
        "per_day": days,
        "all": summary(per_day),
        "mature": summary(per_day[per_day["label_age_days"] >= maturity_days]),
    }


def _read_scores(layout: MlLayout, days: list[date]) -> pd.DataFrame:
    parts = []
    for day in days:
        table = pq.read_table(layout.scores_file(day), columns=["transaction_id", "decision"])
        part = table.to_pandas()
        part["score_date"] = pd.Timestamp(day)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def monitor(
    layout: MlLayout,
    day: date | None = None,
    config: MonitorConfig = MonitorConfig(),
    *,
    now: datetime | None = None,
) -> MonitorReport:
    """Monitors scored day `day` (default: the last scored day) and writes its report."""
    scored = layout.scored_days()
    if not scored:
        raise FileNotFoundError(f"no scores in {layout.scores}: run `banklake score` first")
    day = day or scored[-1]
    if day not in scored:
        raise FileNotFoundError(
            f"{day} was not scored (scored days: {scored[0]}..{scored[-1]}): "
            f"run `banklake score --date {day}` first"
        )
    scores = pq.read_table(layout.scores_file(day)).to_pandas()
    versions = scores["model_version"].unique()
    version = str(versions[0])
    model = load_version(layout, version)
    reference = model.metadata["reference"]

    features = load_features(layout.features, day, day)
    feature_psi = {
        f: drift.psi(drift.Reference.from_dict(reference["features"][f]), features[f].to_numpy())
        for f in FEATURES
    }
    score_psi = drift.psi(drift.Reference.from_dict(reference["score"]), scores["score"].to_numpy())
    alerts = int(scores["decision"].eq(ALERT).sum())
    alert_rate = alerts / len(scores) if len(scores) else 0.0
    expected = float(reference["validation_alert_rate"])

    history = [d for d in scored if d <= day]
    last_label_day = date_range(layout.features)[1]
    realized = realized_performance(
        _read_scores(layout, history),
        load_labels(layout.features, history[0], day),
        last_label_day,
        config.label_maturity_days,
    )

    findings, verdict = judge(feature_psi, score_psi, alert_rate, expected, realized, config)
    if len(versions) > 1:
        findings.append(f"the day was scored by several versions {list(versions)}; used {version}")
    report = MonitorReport(
        day=day,
        model_version=version,
        rows=len(scores),
        alerts=alerts,
        alert_rate=alert_rate,
        expected_alert_rate=expected,
        score_psi=score_psi,
        feature_psi=feature_psi,
        realized=realized,
        verdict=verdict,
        findings=findings,
        config=config.to_dict(),
        created_at=(now or datetime.now(UTC)).isoformat(),
    )
    write_json(layout.monitoring_file(day), report.to_dict())
    return report


def judge(
    feature_psi: dict[str, float],
    score_psi: float,
    alert_rate: float,
    expected: float,
    realized: dict[str, Any],
    config: MonitorConfig,
) -> tuple[list[str], str]:
    """The findings, worst first, and the verdict they add up to."""
    retrain, watch = [], []
    judged = {k: v for k, v in feature_psi.items() if k not in config.psi_not_judged}
    psi = {**judged, "score": score_psi}
    for name, value in sorted(psi.items(), key=lambda kv: -kv[1]):
        if value > config.psi_drift:
            retrain.append(f"PSI of {name} = {value:.2f} > {config.psi_drift:g}")
        elif value > config.psi_warning:
            watch.append(f"PSI of {name} = {value:.2f} > {config.psi_warning:g}")
    mature = realized["mature"]
    precision = mature["precision"]
    enough = mature["alerts"] >= config.min_mature_alerts and precision is not None
    if enough and precision < config.min_precision:
        retrain.append(
            f"realized precision {precision:.1%} < {config.min_precision:.0%} "
            f"on {mature['alerts']} alerts with mature labels"
        )
    if expected > 0 and not (
        expected / config.alert_rate_factor <= alert_rate <= expected * config.alert_rate_factor
    ):
        watch.append(
            f"alert rate {alert_rate:.3%} is outside x{config.alert_rate_factor:g} of the "
            f"validation rate {expected:.3%}: check the threshold and the alert budget"
        )
    verdict = RETRAIN if retrain else WATCH if watch else OK
    return retrain + watch, verdict
