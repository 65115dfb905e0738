"""Where the fraud model's files live in the lake (the same keys under s3:// in production).

<lake>/banklake.duckdb                                    curated.ml_features (read-only)
<lake>/models/fraud_xgb/<version>/                        model.json, metadata.json, card, plots
<lake>/models/fraud_xgb/champion.json                     which version scores
<lake>/processed/fraud_scores/score_date=YYYY-MM-DD/scores.parquet
<lake>/monitoring/YYYY-MM-DD.json
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ml.dataset import FeatureSource
from python_jobs.lake.layout import Lake

MODEL_NAME = "fraud_xgb"


@dataclass(frozen=True)
class MlLayout:
    lake: Lake

    @property
    def features(self) -> FeatureSource:
        return FeatureSource(self.lake.database)

    @property
    def models(self) -> Path:
        return self.lake.root / "models" / MODEL_NAME

    def version_dir(self, version: str) -> Path:
        return self.models / version

    @property
    def champion_file(self) -> Path:
        return self.models / "champion.json"

    @property
    def scores(self) -> Path:
        return self.lake.root / "processed" / "fraud_scores"

    def scores_file(self, day: date) -> Path:
        return self.scores / f"score_date={day.isoformat()}" / "scores.parquet"

    def scored_days(self) -> list[date]:
        return sorted(
            date.fromisoformat(p.parent.name.removeprefix("score_date="))
            for p in self.scores.glob("score_date=*/scores.parquet")
        )

    @property
    def monitoring(self) -> Path:
        return self.lake.root / "monitoring"

    def monitoring_file(self, day: date) -> Path:
        return self.monitoring / f"{day.isoformat()}.json"

    @property
    def generator_truth(self) -> Path:
        """Every fraud the generator made, reported or not: evaluation diagnostics only."""
        return self.lake.generator_state / "fraud_truth"
