"""Champion/challenger: a new model scores in production only if it is better on the same data.

Two gates, both on the challenger's own test split:
- the strong baseline: its average precision must be at least the random forest's, fitted
  on the same rows (ml/baselines.py); a boosted model that loses to an untuned forest has
  learned its training data rather than fraud, and does not replace a champion. On a lake
  with no champion yet it is promoted all the same (a lake without a champion scores
  nothing), and the decision says by how much it fell short;
- the champion: metrics stored at the champion's own training time came from another test
  window, so they are not comparable. The champion is therefore re-scored on the
  challenger's test split and the two average precisions compared; the challenger must be
  strictly better.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from ml.artifacts import ModelIntegrityError, champion_version, load_version
from ml.dataset import feature_matrix
from ml.layout import MlLayout
from ml.ranking import Ranking


@dataclass(frozen=True)
class ChampionDecision:
    promote: bool
    champion: str | None  # the champion before this decision
    challenger_ap: float | None
    champion_ap: float | None  # re-scored on the challenger's test split
    reason: str
    forest_ap: float | None = None  # the random-forest baseline on the same test split

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
    layout: MlLayout,
    test: pd.DataFrame,
    challenger_ap: float | None,
    test_start: date,
    forest_ap: float | None = None,
) -> ChampionDecision:
    """Decides whether the challenger (with `challenger_ap` on `test`) replaces the champion;
    `forest_ap`: the random-forest baseline's average precision on the same rows (None: no
    baseline gate, e.g. a test period without a known fraud)."""
    current = champion_version(layout)
    below_forest = forest_ap is not None and (challenger_ap is None or challenger_ap < forest_ap)
    shortfall = (
        f"average precision on the test period {_fmt(challenger_ap)} is below the random "
        f"forest baseline's {_fmt(forest_ap)} on the same rows"
    )
    if current is None:
        if below_forest:
            reason = (
                f"there was no champion yet, so it scores although its {shortfall} "
                "(a later model that beats both replaces it)"
            )
        else:
            reason = "there was no champion yet" + (
                "" if forest_ap is None else f"; the random forest baseline's is {_fmt(forest_ap)}"
            )
        return ChampionDecision(True, None, challenger_ap, None, reason, forest_ap)
    if below_forest:
        return ChampionDecision(False, current, challenger_ap, None, shortfall, forest_ap)
    baseline = "" if forest_ap is None else f"; the random forest baseline's is {_fmt(forest_ap)}"
    try:
        champion = load_version(layout, current)
    except (ModelIntegrityError, FileNotFoundError) as error:
        return ChampionDecision(
            True,
            current,
            challenger_ap,
            None,
            f"the champion {current} cannot be used ({error}){baseline}",
            forest_ap,
        )
    y = test["label"].to_numpy(dtype=bool)
    if challenger_ap is None or not y.any() or y.all():
        return ChampionDecision(
            False,
            current,
            challenger_ap,
            None,
            "the test period has no known fraud (or only fraud): nothing to compare on",
            forest_ap,
        )
    # computed as the challenger's was (ml/metrics.py), so that equal scores give equal numbers
    champion_ap = Ranking.of(y, champion.model.predict(feature_matrix(test))).average_precision()
    caveat = ""
    champion_train_end = champion.metadata.get("windows", {}).get("train_end")
    if champion_train_end and date.fromisoformat(champion_train_end) >= test_start:
        caveat = (
            f" (caveat: the champion trained on days up to {champion_train_end}, inside this "
            "test period, so its average precision here is optimistic)"
        )
    comparison = (
        f"average precision on the test period {_fmt(challenger_ap)} (challenger) vs "
        f"{_fmt(champion_ap)} (champion {current} re-scored on the same rows){caveat}{baseline}"
    )
    better = champion_ap is None or challenger_ap > champion_ap  # None: both classes checked above
    return ChampionDecision(better, current, challenger_ap, champion_ap, comparison, forest_ap)
