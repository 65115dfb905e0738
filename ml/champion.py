"""Champion/challenger: a new model scores in production only if it is better on the same data.

Metrics stored at the champion's own training time came from another test window, so they
are not comparable. The champion is therefore re-scored on the challenger's test split and
the two average precisions compared; the challenger must be strictly better.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd
from sklearn.metrics import average_precision_score

from ml.artifacts import ModelIntegrityError, champion_version, load_version
from ml.booster import predict
from ml.dataset import feature_matrix
from ml.layout import MlLayout


@dataclass(frozen=True)
class ChampionDecision:
    promote: bool
    champion: str | None  # the champion before this decision
    challenger_ap: float | None
    champion_ap: float | None  # re-scored on the challenger's test split
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def message(self, version: str) -> str:
        if self.promote:
            return f"model {version} is the new champion: {self.reason}"
        return (
            f"model {version} saved but not promoted; {self.champion} stays champion: {self.reason}"
        )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def challenge(
    layout: MlLayout, test: pd.DataFrame, challenger_ap: float | None, test_start: date
) -> ChampionDecision:
    """Decides whether the challenger (with `challenger_ap` on `test`) replaces the champion."""
    current = champion_version(layout)
    if current is None:
        return ChampionDecision(True, None, challenger_ap, None, "there was no champion yet")
    try:
        champion = load_version(layout, current)
    except (ModelIntegrityError, FileNotFoundError) as error:
        return ChampionDecision(
            True, current, challenger_ap, None, f"the champion {current} cannot be used ({error})"
        )
    y = test["label"].to_numpy(dtype=bool)
    if challenger_ap is None or not y.any() or y.all():
        return ChampionDecision(
            False,
            current,
            challenger_ap,
            None,
            "the test period has no known fraud (or only fraud): nothing to compare on",
        )
    champion_ap = float(average_precision_score(y, predict(champion.booster, feature_matrix(test))))
    caveat = ""
    champion_train_end = champion.metadata.get("windows", {}).get("train_end")
    if champion_train_end and date.fromisoformat(champion_train_end) >= test_start:
        caveat = (
            f" (caveat: the champion trained on days up to {champion_train_end}, inside this "
            "test period, so its average precision here is optimistic)"
        )
    comparison = (
        f"average precision on the test period {_fmt(challenger_ap)} (challenger) vs "
        f"{_fmt(champion_ap)} (champion {current} re-scored on the same rows){caveat}"
    )
    return ChampionDecision(
        challenger_ap > champion_ap, current, challenger_ap, champion_ap, comparison
    )
