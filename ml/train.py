"""Training: the model and its baselines on the same split, then the champion decision.

The model is the mean of two probabilities (ml/ensemble.py): XGBoost's and the random
forest's. The forest is fitted once per fold and serves twice: as half of the model and, on
its own, as the strong baseline the model has to beat; XGBoost alone is reported beside them.

`train()` is what `banklake train` and `make demo` call. `fit_fold()` is the pure part
(frames in, fitted models and metrics out) that the tests and the prequential folds use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from ml import artifacts, drift
from ml.baselines import (
    FOREST_MAX_ROWS,
    FOREST_TREES,
    describe_rules,
    fit_logistic,
    fit_random_forest,
    predict_logistic,
    rules_score,
)
from ml.booster import BoosterParams, FittedBooster, feature_importance, fit_booster, predict
from ml.champion import ChampionDecision, challenge
from ml.dataset import TRAINING_KEYS, date_range, feature_columns, load_features
from ml.diagnostics import NOTE, full_list_known_label_ap, load_truth, truth_metrics
from ml.ensemble import WEIGHTS, FraudModel, combine
from ml.features import FEATURES
from ml.forest import to_booster
from ml.layout import MlLayout
from ml.metrics import (
    DEFAULT_ALERT_BUDGET,
    DEFAULT_K,
    THRESHOLD_RULE,
    Metrics,
    cases_per_day,
    evaluate_many,
    threshold_for_cases,
)
from ml.plots import write_plots
from ml.protocol import (
    DEFAULT_TEST_DAYS,
    DEFAULT_VALIDATION_DAYS,
    Split,
    Windows,
    resolve_windows,
    rolling_folds,
    split,
)
from ml.report import (
    ceiling_note,
    full_list_note,
    label_maturity_note,
    metrics_table,
    model_card,
    scenario_ap_table,
    scenario_table,
)

MODEL = "model"  # XGBoost + random forest (ml/ensemble.py)
BOOSTER = "xgboost"  # the model's boosted half alone, reported beside it
FOREST = "random_forest"  # the strong baseline the champion gate holds the model to
BASELINES = (FOREST, "logistic_regression", "rules")
Say = Callable[[str], None]


@dataclass(frozen=True)
class WindowRequest:
    """What the user pinned (None: derived from the data, see protocol.resolve_windows)."""

    train_start: date | None = None
    train_end: date | None = None
    gap_days: int | None = None  # None: DEFAULT_GAP_DAYS (or less on a very short lake)
    test_start: date | None = None
    test_end: date | None = None
    test_days: int = DEFAULT_TEST_DAYS
    validation_days: int = DEFAULT_VALIDATION_DAYS
    label_horizon_days: int | None = None  # None: DEFAULT_LABEL_HORIZON_DAYS (or less)

    def resolve(self, first: date, last: date) -> Windows:
        return resolve_windows(
            first,
            last,
            train_start=self.train_start,
            train_end=self.train_end,
            gap_days=self.gap_days,
            test_start=self.test_start,
            test_end=self.test_end,
            test_days=self.test_days,
            validation_days=self.validation_days,
            label_horizon_days=self.label_horizon_days,
        )


@dataclass(frozen=True)
class TrainConfig:
    alert_budget: float = DEFAULT_ALERT_BUDGET  # cases a day -> the operating threshold
    k: int = DEFAULT_K  # customers a day for precision@k
    folds: int = 1  # > 1: prequential evaluation, folds rolling forward
    fold_step_days: int | None = None  # default: the test length
    booster: BoosterParams = field(default_factory=BoosterParams)
    plots: bool = True


@dataclass(frozen=True)
class Candidate:
    """One model's scores on the split and its test metrics at its own threshold."""

    name: str
    validation_scores: np.ndarray
    test_scores: np.ndarray
    threshold: float
    metrics: Metrics


@dataclass(frozen=True)
class FoldResult:
    split: Split
    fitted: FittedBooster
    candidates: dict[str, Candidate]
    forest: xgb.Booster  # the fitted forest, converted (ml/forest.py)

    @property
    def model(self) -> FraudModel:
        return FraudModel(self.fitted.booster, self.forest)

    def metrics(self) -> dict[str, dict[str, Any]]:
        return {name: c.metrics.to_dict() for name, c in self.candidates.items()}


def fit_fold(
    data: Split, config: TrainConfig = TrainConfig(), fitted: FittedBooster | None = None
) -> FoldResult:
    """Fits XGBoost (early stopping on the validation slice), the random forest and the
    logistic regression on the fit rows, scores the model (XGBoost + forest), each half
    alone, the logistic regression and the rules, and sets each one's
    threshold from the alert budget (cases a day) on the validation days. `fitted`: a booster
    already fitted on these fit and validation rows elsewhere (a SageMaker job), evaluated
    exactly like a local one."""
    fit_x, val_x = feature_columns(data.fit), feature_columns(data.validation)
    test_x = feature_columns(data.test)
    fit_y = data.fit["label"].to_numpy(dtype=bool)
    val_y = data.validation["label"].to_numpy(dtype=bool)
    if fitted is None:
        fitted = fit_booster(fit_x, fit_y, val_x, val_y, config.booster)
    seed = config.booster.seed
    # scored through its conversion: the scores evaluated are those the saved model gives
    forest = to_booster(fit_random_forest(fit_x, fit_y, seed=seed), list(FEATURES))
    logistic = fit_logistic(fit_x, fit_y, seed=seed)
    halves = {
        BOOSTER: (predict(fitted.booster, val_x), predict(fitted.booster, test_x)),
        FOREST: (predict(forest, val_x), predict(forest, test_x)),
    }
    scored = {
        MODEL: tuple(combine(b, f) for b, f in zip(halves[BOOSTER], halves[FOREST], strict=True)),
        **halves,
        "logistic_regression": (
            predict_logistic(logistic, val_x),
            predict_logistic(logistic, test_x),
        ),
        "rules": (rules_score(data.validation), rules_score(data.test)),
    }
    thresholds = {
        name: threshold_for_cases(data.validation, val_scores, config.alert_budget)
        for name, (val_scores, _) in scored.items()
    }
    metrics = evaluate_many(
        data.test, {name: test for name, (_, test) in scored.items()}, thresholds, k=config.k
    )
    candidates = {
        name: Candidate(name, val_scores, test_scores, thresholds[name], metrics[name])
        for name, (val_scores, test_scores) in scored.items()
    }
    return FoldResult(data, fitted, candidates, forest)


# Real-time scoring blocks a payment (ml/README.md) above a stricter threshold: the one the
# validation days would reach with this share of the alert budget's cases.
BLOCK_BUDGET_SHARE = 0.1
BLOCK_RULE = (
    "block: the lowest score s such that the validation days raise at most {budget:g} cases "
    "a day on average when blocking on score >= s ({share:g} of the alert budget), and never "
    "below the alert threshold"
)


def block_threshold(result: FoldResult, alert_budget: float) -> dict[str, Any]:
    """The stricter of the two thresholds `banklake serve` decides with."""
    model = result.candidates[MODEL]
    budget = alert_budget * BLOCK_BUDGET_SHARE
    value = max(
        threshold_for_cases(result.split.validation, model.validation_scores, budget),
        model.threshold,
    )
    return {
        "value": float(value),
        "rule": BLOCK_RULE.format(budget=budget, share=BLOCK_BUDGET_SHARE),
        "cases_per_day": budget,
        "validation_cases_per_day": cases_per_day(
            result.split.validation, model.validation_scores, value
        ),
    }


def training_keys_sha256(training: pd.DataFrame) -> str:
    """sha256 over the sorted training transaction ids: same data, same fingerprint."""
    return artifacts.keys_sha256(training["transaction_id"])


def _fingerprint(result: FoldResult, source: Path) -> dict[str, Any]:
    data = result.split
    training = data.training
    reported_later = int(training["label_is_fraud"].sum() - training["label"].sum())
    return {
        "source": str(source),
        "rows": {"fit": len(data.fit), "validation": len(data.validation), "test": len(data.test)},
        "frauds": {
            "fit": int(data.fit["label"].sum()),
            "validation": int(data.validation["label"].sum()),
            "test": int(data.test["label"].sum()),
            "training_reported_after_cutoff": reported_later,
        },
        "training_keys_sha256": training_keys_sha256(training),
    }


def _reference(result: FoldResult, history_start: date) -> dict[str, Any]:
    """What monitoring compares each scored day with: feature distributions over the whole
    training period (and, for windowed features, over the rows whose window was full: see
    drift.history_reference), and the validation slice's scores (out-of-sample, unlike the
    fit rows')."""
    training = result.split.training
    model = result.candidates[MODEL]
    return {
        "features": {f: drift.reference(training[f].to_numpy()).to_dict() for f in FEATURES},
        "history": drift.history_reference(training, history_start),
        "score": drift.reference(model.validation_scores).to_dict(),
        "validation_alert_rate": float(np.mean(model.validation_scores >= model.threshold)),
    }


def build_metadata(
    result: FoldResult,
    config: TrainConfig,
    decision: ChampionDecision,
    folds: list[FoldResult],
    source: Path,
    created_at: datetime,
    history_start: date | None = None,
    labels_as_of: date | None = None,
) -> dict[str, Any]:
    """`history_start`: the lake's first day (default: the training period's first day);
    `labels_as_of`: its last day, whose reports are the test's labels (default: test end)."""
    model = result.candidates[MODEL]
    windows = result.split.windows
    data = _fingerprint(result, source)
    data["labels_as_of"] = (labels_as_of or windows.test_end).isoformat()
    return {
        "created_at": created_at.isoformat(),
        "windows": windows.to_dict(),
        "threshold": {
            "value": model.threshold,
            "rule": THRESHOLD_RULE.format(budget=config.alert_budget),
            "alert_budget_per_day": config.alert_budget,
            "validation_days": windows.validation_days,
            "validation_alerts_per_day": float(
                np.sum(model.validation_scores >= model.threshold) / windows.validation_days
            ),
            "validation_cases_per_day": cases_per_day(
                result.split.validation, model.validation_scores, model.threshold
            ),
            "baselines": {n: result.candidates[n].threshold for n in BASELINES},
            "block": block_threshold(result, config.alert_budget),
        },
        "model": {
            "members": [BOOSTER, FOREST],
            "weights": list(WEIGHTS),
            "score": "the weighted mean of the members' fraud probabilities (ml/ensemble.py)",
        },
        "forest": {
            "trees": FOREST_TREES,
            "max_fit_rows": FOREST_MAX_ROWS,
            "seed": config.booster.seed,
        },
        "booster": {
            "params": config.booster.to_dict(),
            "best_iteration": result.fitted.best_iteration,
            "scale_pos_weight": result.fitted.scale_pos_weight,
            "stopping_metric": result.fitted.stopping_metric,
            "validation_score": result.fitted.validation_score,
            "fit_rows": result.fitted.fit_rows,
            "negative_weight": result.fitted.negative_weight,
            "stopping_rows": result.fitted.stopping_rows,
        },
        "data": data,
        "libraries": artifacts.library_versions(),
        "metrics": result.metrics(),
        "folds": [{"windows": f.split.windows.to_dict(), "metrics": f.metrics()} for f in folds],
        "rules": describe_rules(),
        "reference": _reference(result, history_start or result.split.windows.train_start),
        "feature_importance": feature_importance(result.fitted.booster),
        "champion_decision": decision.to_dict(),
    }


@dataclass(frozen=True)
class TrainOutcome:
    version: str
    directory: Path
    metadata: dict[str, Any]
    decision: ChampionDecision
    result: FoldResult

    def headline(self) -> str:
        metrics = self.metadata["metrics"]
        return "\n".join(
            [
                f"fraud model {self.version}: "
                + Windows.from_dict(self.metadata["windows"]).describe(),
                label_maturity_note(
                    self.metadata["windows"], self.metadata["data"].get("labels_as_of")
                ),
                "",
                metrics_table(metrics),
                ceiling_note(metrics),
                "",
                "average precision per scenario (its frauds against every legitimate row):",
                scenario_ap_table(metrics),
                "",
                "recall per scenario at each model's threshold:",
                scenario_table(metrics),
                "",
                *self._diagnostic_lines(),
                self.decision.message(self.version),
                f"model folder: {self.directory}",
            ]
        )

    def _diagnostic_lines(self) -> list[str]:
        diagnostics = self.metadata.get("diagnostics")
        if not diagnostics:
            return []
        truth = diagnostics["generator_truth"]
        return [
            f"{diagnostics['note']}:",
            metrics_table(truth),
            ceiling_note(truth, known_labels=False),
            full_list_note(diagnostics),
            scenario_ap_table(truth),
            scenario_table(truth),
            "",
        ]


def _quiet(_: str) -> None:
    return None


def _diagnostics(layout: MlLayout, result: FoldResult, config: TrainConfig) -> dict | None:
    """On a generated lake: the same test scores against the generator's complete truth."""
    truth = load_truth(layout)
    if truth is None:
        return None
    candidates = result.candidates
    metrics = truth_metrics(
        result.split.test,
        {name: c.test_scores for name, c in candidates.items()},
        {name: c.threshold for name, c in candidates.items()},
        truth,
        config.k,
    )
    return {
        "note": NOTE,
        "generator_truth": metrics,
        "full_list_known_label_ap": full_list_known_label_ap(result.split.test, truth),
    }


def train(
    layout: MlLayout,
    request: WindowRequest = WindowRequest(),
    config: TrainConfig = TrainConfig(),
    *,
    say: Say = _quiet,
    now: datetime | None = None,
) -> TrainOutcome:
    """Loads the features, fits and evaluates (with prequential folds if asked), saves the
    model version and promotes it if it beats the champion on the same test split."""
    created_at = now or datetime.now(UTC)
    first, last = date_range(layout.features)
    windows = request.resolve(first, last)
    all_windows = rolling_folds(windows, config.folds, config.fold_step_days)
    say(f"loading {layout.features.database} ({all_windows[0].train_start}..{windows.test_end})")
    frame = load_features(
        layout.features, all_windows[0].train_start, windows.test_end, keys=TRAINING_KEYS
    )
    folds = []
    for number, fold_windows in enumerate(all_windows, start=1):
        say(f"fold {number}/{len(all_windows)}: {fold_windows.describe()}")
        folds.append(fit_fold(split(frame, fold_windows), config))
    return register(
        layout, folds, config, history_start=first, labels_as_of=last, created_at=created_at
    )


def register(
    layout: MlLayout,
    folds: list[FoldResult],
    config: TrainConfig,
    *,
    history_start: date,
    created_at: datetime,
    labels_as_of: date | None = None,
    training: dict[str, Any] | None = None,
) -> TrainOutcome:
    """The last fold's model becomes a version (metadata, card, plots) and the champion if
    it beats the current one on the same test split. Local training and a collected
    SageMaker job both end here (`training`: where the booster was fitted, recorded)."""
    result = folds[-1]
    diagnostics = _diagnostics(layout, result, config)
    decision = challenge(
        layout,
        result.split.test,
        result.candidates[MODEL].metrics.average_precision,
        result.split.windows.test_start,
        forest_ap=result.candidates[FOREST].metrics.average_precision,
    )
    metadata = build_metadata(
        result,
        config,
        decision,
        folds,
        layout.features.database,
        created_at,
        history_start,
        labels_as_of,
    )
    metadata["training"] = training or {"backend": "local"}
    if diagnostics is not None:
        metadata["diagnostics"] = diagnostics
    version = artifacts.new_version(layout, created_at)

    def extras(directory: Path, full: dict[str, Any]) -> None:
        (directory / artifacts.CARD_FILE).write_text(model_card(full))
        if config.plots:
            write_plots(
                directory,
                result.split.test["label"].to_numpy(dtype=bool),
                {name: c.test_scores for name, c in result.candidates.items()},
                metadata["feature_importance"],
            )

    directory = artifacts.save_version(layout, version, result.model, metadata, extras=extras)
    if decision.promote:
        artifacts.promote(layout, version, decision.reason, now=created_at)
    return TrainOutcome(version, directory, metadata, decision, result)
