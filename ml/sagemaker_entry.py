"""The training entry point inside a SageMaker container (script mode).

SageMaker downloads the channels to SM_CHANNEL_TRAIN and SM_CHANNEL_VALIDATION and keeps
whatever lands in SM_MODEL_DIR (as model.tar.gz). This fits the booster with the same
fit_booster() as a local run, on the rows ml/sagemaker.py exported (labels already as known
at the cut-off), and writes model.json (XGBoost JSON) and training_summary.json.

Only numpy, pandas, pyarrow and xgboost are needed here (no duckdb, no dbt).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `ml` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from ml.booster import BoosterParams, fit_booster
from ml.dataset import feature_matrix
from ml.features import FEATURES

HYPERPARAMETERS_FILE = Path("/opt/ml/input/config/hyperparameters.json")


def read_channel(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files in channel {directory}")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    missing = [c for c in (*FEATURES, "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"channel {directory} lacks columns {missing}")
    return frame


def hyperparameters(env: Mapping[str, str]) -> dict[str, Any]:
    """SageMaker's training toolkit exports SM_HPS (JSON, values decoded); the raw file, whose
    values are JSON-encoded strings, is the fallback."""
    if env.get("SM_HPS"):
        return json.loads(env["SM_HPS"])
    if HYPERPARAMETERS_FILE.exists():
        return {k: _decoded(v) for k, v in json.loads(HYPERPARAMETERS_FILE.read_text()).items()}
    return {}


def _decoded(value: Any) -> Any:
    """A hyperparameter as sent (a JSON string) or as the toolkit passes it on (decoded)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def main(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    train = read_channel(Path(env["SM_CHANNEL_TRAIN"]))
    validation = read_channel(Path(env["SM_CHANNEL_VALIDATION"]))
    hps = hyperparameters(env)
    params = BoosterParams.from_dict(_decoded(hps.get("booster_params", {})))
    fitted = fit_booster(
        feature_matrix(train),
        train["label"].to_numpy(dtype=bool),
        feature_matrix(validation),
        validation["label"].to_numpy(dtype=bool),
        params,
    )
    model_dir = Path(env["SM_MODEL_DIR"])
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = model_dir / "model.json"
    fitted.booster.save_model(str(model_path))
    summary = {
        "features": list(FEATURES),
        "best_iteration": fitted.best_iteration,
        "scale_pos_weight": fitted.scale_pos_weight,
        "stopping_metric": fitted.stopping_metric,
        "validation_score": fitted.validation_score,
        "rows": {"train": len(train), "validation": len(validation)},
        "windows": _decoded(hps.get("windows")),
        "params": params.to_dict(),
        "model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
    }
    (model_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return model_path


if __name__ == "__main__":
    print(f"model written to {main()}")
