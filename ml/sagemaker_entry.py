"""The training entry point inside a SageMaker container (script mode).

SageMaker downloads the channels to SM_CHANNEL_TRAIN and SM_CHANNEL_VALIDATION and keeps
whatever lands in SM_MODEL_DIR (as model.tar.gz). This fits the booster with the same
fit_booster() as a local run, on the rows ml/sagemaker.py exported (labels already as known
at the cut-off), and writes the model folder format of local training
(artifacts.write_model_files): model.json (XGBoost JSON, never pickle) and metadata.json
with its sha256, the feature list, the windows, the booster's early stopping and a
fingerprint of the training rows. `banklake train --collect` verifies all of that before
the model may challenge the champion; nothing else may be in the folder.

Only numpy, pandas, pyarrow and xgboost are needed here (no duckdb, no dbt, no python_jobs).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `ml` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from ml.artifacts import keys_sha256, library_versions, write_model_files
from ml.booster import BoosterParams, fit_booster
from ml.dataset import feature_matrix
from ml.ensemble import FraudModel
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


def job_name(env: Mapping[str, str]) -> str | None:
    """The training job's name, as the platform (TRAINING_JOB_NAME) or the training toolkit
    (SM_TRAINING_ENV) tells it."""
    if env.get("TRAINING_JOB_NAME"):
        return env["TRAINING_JOB_NAME"]
    try:
        return json.loads(env.get("SM_TRAINING_ENV", "{}")).get("job_name")
    except json.JSONDecodeError:
        return None


def main(env: Mapping[str, str] | None = None) -> Path:
    """Trains and writes SM_MODEL_DIR/{model.json, metadata.json}; returns model.json."""
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
    ids = pd.concat([train["transaction_id"], validation["transaction_id"]])
    metadata = {
        "version": job_name(env),
        "windows": _decoded(hps.get("windows")),
        "booster": {
            "params": params.to_dict(),
            "best_iteration": fitted.best_iteration,
            "scale_pos_weight": fitted.scale_pos_weight,
            "stopping_metric": fitted.stopping_metric,
            "validation_score": fitted.validation_score,
            "fit_rows": fitted.fit_rows,
            "negative_weight": fitted.negative_weight,
            "stopping_rows": fitted.stopping_rows,
        },
        "data": {
            "rows": {"fit": len(train), "validation": len(validation)},
            "frauds": {
                "fit": int(train["label"].sum()),
                "validation": int(validation["label"].sum()),
            },
            "training_keys_sha256": keys_sha256(ids),
        },
        "libraries": library_versions(),
        "training": {"backend": "sagemaker", "job_name": job_name(env)},
    }
    write_model_files(model_dir, FraudModel(fitted.booster), metadata)
    return model_dir / "model.json"


if __name__ == "__main__":
    print(f"model written to {main()}")
