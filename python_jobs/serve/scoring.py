"""The champion, scoring transactions as they come, and picking up a new champion while serving.

Scores are those of the batch job (ml/score.py): the same model object. Reasons are the
features adding the most score points, as there; for a `review` or `block` they are the batch
job's (the booster's TreeSHAP from the batch job's tables, ml/compiled_shap.py), for an
`approve` the booster's part is its path attributions instead (ml/ensemble.py score_few:
milliseconds less per transaction on a large booster). The
decision adds a stricter threshold (ml/train.py block_threshold): `block` at or above it,
`review` at or above the alert threshold (the alert budget's), `approve` below. A model
trained before the block threshold existed only reviews.

A new champion (`banklake train` promotes one) is noticed by the change of champion.json,
loaded on a background thread and swapped in with one assignment: requests in flight finish
with the model they started with, the next ones use the new one, none fails.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.artifacts import LoadedModel, NoChampionError, load_champion
from ml.booster import top_reasons
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.score import ALERT, N_REASONS, PASS
from python_jobs.assistant.vocabulary import reason_codes

APPROVE, REVIEW, BLOCK = "approve", "review", "block"
RELOAD_CHECK_SECONDS = 1.0

log = logging.getLogger("banklake.serve")


@dataclass(frozen=True)
class Scored:
    score: float
    decision: str  # approve | review | block
    batch_decision: str  # alert | pass (the fraud_scores contract)
    threshold: float
    reasons: list[dict[str, Any]]  # feature, reason_code, description, contribution
    reasons_exact: bool  # TreeSHAP as in the batch job (alerts), else path attributions
    model_version: str


def reasons_of(contributions: np.ndarray) -> list[list[dict[str, Any]]]:
    """Each row's top three reasons, in investigator wording (seeds/feature_reason_codes.csv)."""
    index, value = top_reasons(contributions, N_REASONS)
    codes = reason_codes()
    rows = []
    for i in range(index.shape[0]):
        reasons = []
        for k in range(N_REASONS):
            j = int(index[i, k])
            if j < 0:
                continue
            feature = FEATURES[j]
            code = codes.get(feature, {})
            reasons.append(
                {
                    "feature": feature,
                    "reason_code": code.get("reason_code"),
                    "description": code.get("description"),
                    "contribution": float(value[i, k]),
                }
            )
        rows.append(reasons)
    return rows


class ModelHolder:
    """The champion now, reloaded when champion.json changes."""

    def __init__(self, layout: MlLayout) -> None:
        self.layout = layout
        self._model: LoadedModel | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._loading = threading.Lock()
        self.reloads = 0
        self.last_error: str | None = None

    def _champion_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.layout.champion_file.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def load(self) -> LoadedModel:
        """Loads the champion now (start-up): raises NoChampionError without one."""
        stamp = self._champion_stamp()
        model = _for_serving(load_champion(self.layout))
        self._model, self._stamp = model, stamp
        return model

    @property
    def model(self) -> LoadedModel | None:
        """The model to score with; starts a reload when champion.json has changed."""
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK_SECONDS:
            self._checked = now
            stamp = self._champion_stamp()
            if stamp is not None and stamp != self._stamp and not self._loading.locked():
                threading.Thread(target=self._reload, args=(stamp,), daemon=True).start()
        return self._model

    def _reload(self, stamp: tuple[int, int]) -> None:
        with self._loading:
            try:
                model = _for_serving(load_champion(self.layout))
            except (NoChampionError, OSError, ValueError, RuntimeError) as error:
                # a half-written promotion or a broken version: keep serving the current one
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("champion reload failed, keeping %s: %s", self.version, error)
                return
            previous = self.version
            self._model, self._stamp = model, stamp
            self.reloads += 1
            self.last_error = None
            log.info("champion %s -> %s", previous, model.version)

    def wait_for(self, version: str, timeout: float = 30.0) -> bool:
        """Test helper: True once `version` answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.model
            if model is not None and model.version == version:
                return True
            time.sleep(0.05)
        return False

    @property
    def version(self) -> str | None:
        return None if self._model is None else self._model.version


def _for_serving(model: LoadedModel) -> LoadedModel:
    """One XGBoost thread per call (the alerts' TreeSHAP): decisions are made one batch at a
    time on one thread, and for a few rows waking a team of OpenMP threads costs more than it
    saves (the other core serves HTTP). The compiled trees that score are built here, before
    the model answers (at start-up, or on the reloading thread), not by its first request."""
    model.booster.set_param({"nthread": 1})
    if model.forest is not None:
        model.forest.set_param({"nthread": 1})
    model.model.warm_up()
    return model


def score(model: LoadedModel, x: np.ndarray) -> list[Scored]:
    """Scores rows of the model input (ml/dataset.py feature_matrix)."""
    review = model.threshold
    # an alert's reasons are the batch job's (TreeSHAP); an approval's are path
    # attributions: exact TreeSHAP costs milliseconds a row on a large booster
    scores, explanation = model.model.score_few(x, threshold=review)
    alerted = scores >= review
    reasons = reasons_of(explanation.contributions)
    block = model.block_threshold
    out = []
    for i, value in enumerate(scores.tolist()):
        if block is not None and value >= block:
            decision = BLOCK
        elif value >= review:
            decision = REVIEW
        else:
            decision = APPROVE
        out.append(
            Scored(
                score=float(value),
                decision=decision,
                batch_decision=ALERT if value >= review else PASS,
                threshold=review,
                reasons=reasons[i],
                reasons_exact=bool(alerted[i]),
                model_version=model.version,
            )
        )
    return out
