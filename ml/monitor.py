"""Daily monitoring of the scoring model: drift, alert volume and realized performance.

For a scored day D:
- PSI of every feature and of the score, D against the training-time reference stored in
  the scoring model's metadata.json (see ml/drift.py). A feature that needs N days of lake
  history (a "previous N days" window) is compared like with like: with the training rows
  that had those N days, and only on a day that has them too. Otherwise it is "warming
  up": its PSI is reported but not judged, because on a young lake it measures the windows
  filling up, not customers changing, and retraining on the same young rows would not
  change that;
- the alert rate against the one the threshold produced on the validation days;
- realized precision and recall of every scored day up to D, from the scores joined to
  the labels known now. Labels arrive days to weeks late, so only days at least
  `label_maturity_days` old are used to judge precision.
The report goes to <lake>/monitoring/D.json with a one-line verdict.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ml import drift
from ml.artifacts import load_version, write_json
from ml.dataset import date_range, load_features, load_labels
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.protocol import Windows
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
    # a like-for-like reference (training rows with a full window) over fewer rows than
    # this is too thin for deciles: the feature stays "warming up"
    min_reference_rows: int = 1000
    # warming-up features move the score too. When they carry this share of the model's
    # gain, the output notes that part of the score's PSI is warm-up...
    warm_gain_note: float = 0.2
    # ...and from this share on, a drifted score is a "watch", not a retrain: a model
    # retrained on the same young rows would drift the same way (the alert rate is still
    # checked, and judged features and realized precision still ask for a retrain)
    warm_gain_share: float = 0.5

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
    # feature -> why its PSI is not judged yet (window not full in training or on the day)
    warming_up: dict[str, str] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)  # lake start, the day's history
    notes: list[str] = field(default_factory=list)  # context for the findings, not findings

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        return data

    def judged_psi(self) -> dict[str, float]:
        """The PSI of the features judged on the day (not warming up, not exempt)."""
        not_judged = set(self.warming_up) | set(self.config.get("psi_not_judged", ()))
        return {k: v for k, v in self.feature_psi.items() if k not in not_judged}

    def text(self) -> str:
        shown = self.findings[:3]
        more = len(self.findings) - len(shown)
        reasons = "; ".join(shown) + (f" (and {more} more)" if more else "")
        reasons = reasons or "no drift, alert rate as expected"
        if self.warming_up:
            reasons += f"; {len(self.warming_up)} features warming up, not judged (below)"
        worst = sorted(self.judged_psi().items(), key=lambda kv: -kv[1])[:3]
        mature = self.realized["mature"]
        lines = [
            f"monitoring {self.day} (model {self.model_version}): {self.verdict}: {reasons}",
            f"  alerts {self.alerts:,} of {self.rows:,} ({self.alert_rate:.3%}; validation "
            f"{self.expected_alert_rate:.3%}), score PSI {self.score_psi:.3f}, highest "
            "judged feature PSI " + ", ".join(f"{k} {v:.3f}" for k, v in worst),
            f"  realized on days with mature labels: precision {_pct(mature['precision'])}, "
            f"recall {_pct(mature['recall'])} ({mature['alerts']} alerts, "
            f"{mature['days']} days)",
        ]
        if self.warming_up:
            warm = sorted(self.warming_up, key=lambda k: -self.feature_psi[k])
            listed = ", ".join(f"{k} {self.feature_psi[k]:.2f}" for k in warm[:4])
            extra = f" (+{len(warm) - 4})" if len(warm) > 4 else ""
            lines.append(f"  warming up, not judged: {listed}{extra}")
        lines.extend(f"  {note}" for note in self.notes)
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


@dataclass(frozen=True)
class FeatureCheck:
    """One feature's PSI on the day, against which reference, and whether it is judged."""

    psi: float
    history_days: int  # lake history its values need (drift.history_days)
    reference: str  # "training rows", "training rows with a full window"
    warming_up: str = ""  # why not judged yet; "" when judged


def check_features(
    reference: dict[str, Any],
    features: pd.DataFrame,
    day: date,
    windows: Windows,
    history_start: date,
    config: MonitorConfig,
) -> dict[str, FeatureCheck]:
    """PSI of every feature of `day`, like with like where the window needs history.

    A feature needing N days is judged only when the day has N days of lake history and
    the model's training rows that had them are at least config.min_reference_rows (their
    reference is in metadata["reference"]["history"]). A model trained before that was
    recorded is judged against all its training rows only if they all had N days."""
    stored = reference.get("history", {}).get("features", {})
    day_age = (day - history_start).days
    training_age = (windows.train_start - history_start).days
    checks = {}
    for name in FEATURES:
        values = features[name].to_numpy()
        plain = drift.Reference.from_dict(reference["features"][name])
        days = int(stored[name]["days"]) if name in stored else drift.history_days(name)
        full_from = history_start + timedelta(days=days)
        if days == 0 or (name not in stored and training_age >= days):
            checks[name] = FeatureCheck(drift.psi(plain, values), days, "training rows")
        elif day_age < days:
            checks[name] = FeatureCheck(
                drift.psi(plain, values),
                days,
                "training rows",
                f"{day} has {day_age} of the {days} days of history its window needs "
                f"(the lake starts {history_start}; full from {full_from})",
            )
        elif name in stored and stored[name]["rows"] >= config.min_reference_rows:
            like = drift.Reference.from_dict(stored[name])
            checks[name] = FeatureCheck(
                drift.psi(like, values), days, "training rows with a full window"
            )
        elif name in stored:
            checks[name] = FeatureCheck(
                drift.psi(plain, values),
                days,
                "training rows",
                f"{int(stored[name]['rows']):,} training rows ({windows.train_start}.."
                f"{windows.train_end}) had its {days} days of history (the lake starts "
                f"{history_start}; {config.min_reference_rows:,} needed): a model trained "
                f"on days from {full_from} on will compare like with like",
            )
        else:
            checks[name] = FeatureCheck(
                drift.psi(plain, values),
                days,
                "training rows",
                f"the model's training rows from {windows.train_start} did not all have its "
                f"{days} days of history and, trained before like-for-like references were "
                "recorded, it has none: retrain to compare like with like",
            )
    return checks


def gain_share(importance: dict[str, float], features: Collection[str]) -> float:
    """The share of the model's total gain (metadata["feature_importance"]) in `features`."""
    total = sum(importance.values())
    return sum(importance.get(k, 0.0) for k in features) / total if total else 0.0


def warm_up_notes(
    checks: dict[str, FeatureCheck],
    score_psi: float,
    importance: dict[str, float],
    history_start: date,
    config: MonitorConfig,
    *,
    like_for_like: bool = True,
) -> list[str]:
    """Why the warming-up features are not judged, in plain sentences. like_for_like:
    whether the model recorded references over full-window training rows."""
    warm = {k: c for k, c in checks.items() if c.warming_up}
    if not warm:
        return []
    by_days = sorted({c.history_days for c in warm.values()})
    ready = ", ".join(f"{d}-day windows from {history_start + timedelta(days=d)}" for d in by_days)
    notes = [
        f"why not judged: the lake starts {history_start} and {len(warm)} features need more "
        "history than the training rows (or this day) had, so their PSI measures their "
        "windows filling up, not a change in behaviour, and retraining on the same young "
        f"rows would not change it. They are judged from: {ready}, once the scored day and "
        "the model's training days both have that history."
    ]
    if not like_for_like:
        notes.append(
            "this model was trained before references over full-window rows were recorded: "
            "a model trained now compares like with like wherever its training days allow"
        )
    share = gain_share(importance, warm)
    if score_psi > config.psi_warning and config.warm_gain_note <= share < config.warm_gain_share:
        notes.append(
            f"the warming-up features carry {share:.0%} of the model's gain, so part of the "
            f"score's PSI ({score_psi:.2f}) is the same warm-up"
        )
    return notes


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
    first_day, last_label_day = date_range(layout.features)
    history_start = date.fromisoformat(reference.get("history", {}).get("start", str(first_day)))
    windows = Windows.from_dict(model.metadata["windows"])
    checks = check_features(reference, features, day, windows, history_start, config)
    feature_psi = {name: check.psi for name, check in checks.items()}
    warming_up = {name: check.warming_up for name, check in checks.items() if check.warming_up}
    score_psi = drift.psi(drift.Reference.from_dict(reference["score"]), scores["score"].to_numpy())
    alerts = int(scores["decision"].eq(ALERT).sum())
    alert_rate = alerts / len(scores) if len(scores) else 0.0
    expected = float(reference["validation_alert_rate"])

    history = [d for d in scored if d <= day]
    realized = realized_performance(
        _read_scores(layout, history),
        load_labels(layout.features, history[0], day),
        last_label_day,
        config.label_maturity_days,
    )

    importance = model.metadata.get("feature_importance", {})
    findings, verdict = judge(
        feature_psi,
        score_psi,
        alert_rate,
        expected,
        realized,
        config,
        warming_up=warming_up,
        warming_gain_share=gain_share(importance, warming_up),
    )
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
        warming_up=warming_up,
        history={
            "start": history_start.isoformat(),
            "day_history_days": (day - history_start).days,
            "feature_history_days": {k: c.history_days for k, c in checks.items()},
            "reference": {k: c.reference for k, c in checks.items()},
        },
        notes=warm_up_notes(
            checks,
            score_psi,
            importance,
            history_start,
            config,
            like_for_like="history" in reference,
        ),
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
    warming_up: Collection[str] = (),
    warming_gain_share: float = 0.0,
) -> tuple[list[str], str]:
    """The findings, worst first, and the verdict they add up to. Features in
    config.psi_not_judged and `warming_up` are reported elsewhere, never findings; a
    drifted score is a "watch" when the warming-up features carry at least
    config.warm_gain_share of the model's gain (`warming_gain_share`)."""
    retrain, watch = [], []
    skip = set(config.psi_not_judged) | set(warming_up)
    judged = {k: v for k, v in feature_psi.items() if k not in skip}
    warm_score = warming_gain_share >= config.warm_gain_share
    psi = judged if warm_score else {**judged, "score": score_psi}
    for name, value in sorted(psi.items(), key=lambda kv: -kv[1]):
        if value > config.psi_drift:
            retrain.append(f"PSI of {name} = {value:.2f} > {config.psi_drift:g}")
        elif value > config.psi_warning:
            watch.append(f"PSI of {name} = {value:.2f} > {config.psi_warning:g}")
    if warm_score and score_psi > config.psi_warning:
        watch.append(
            f"PSI of score = {score_psi:.2f} > {config.psi_warning:g}, but {warming_gain_share:.0%}"
            " of the model's gain is in warming-up features: a watch, not a retrain, until "
            "their windows are full"
        )
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
