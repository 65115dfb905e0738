"""A trained model on disk, and which one is the champion.

<lake>/models/fraud_xgb/<version>/
    model.json       the booster (XGBoost's own JSON format: no pickle, no joblib)
    forest.json      the random forest, converted to the same format (ml/forest.py); the
                     model scores with the mean of both (ml/ensemble.py). Absent in versions
                     trained before the forest joined: those score with the booster alone.
    metadata.json    features, windows, threshold, data fingerprint, metrics, sha256 of
                     model.json (and forest.json)
    model_card.md    for humans
    *.png            curves and importances
<lake>/models/fraud_xgb/champion.json   {"version": ..., "since": ..., "history": [...]}

Loading refuses a model whose model.json (or forest.json) does not hash to the recorded
sha256 (a corrupted or hand-edited file) or whose feature list is not ml/features.py's
FEATURES (it would score the wrong columns). Versions are written into a temporary folder
and renamed into place, so a reader never sees half a model.

The SageMaker entry point writes model.json and metadata.json (write_model_files) into the
job's model.tar.gz, so a collected job is verified by the same load_directory (its forest is
fitted where the job is collected, ml/sagemaker.py). That is why this module imports
nothing outside ml/ at load time: the container has no python_jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import xgboost as xgb

from ml.ensemble import FraudModel
from ml.features import FEATURES

if TYPE_CHECKING:  # ml.layout needs python_jobs, which the SageMaker container lacks
    from ml.layout import MlLayout

MODEL_FILE = "model.json"
FOREST_FILE = "forest.json"
METADATA_FILE = "metadata.json"
CARD_FILE = "model_card.md"
_LIBRARIES = ("xgboost", "scikit-learn", "numpy", "pandas", "pyarrow", "duckdb", "matplotlib")


class ModelIntegrityError(RuntimeError):
    """A model on disk is not what its metadata says it is: refused."""


class NoChampionError(FileNotFoundError):
    """No model has been promoted yet."""


@dataclass(frozen=True)
class LoadedModel:
    version: str
    directory: Path
    booster: xgb.Booster
    metadata: dict[str, Any]
    forest: xgb.Booster | None = None

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"]["value"])

    @property
    def block_threshold(self) -> float | None:
        """The stricter threshold real-time scoring blocks at (ml/train.py BLOCK_BUDGET_SHARE);
        None for models trained before it existed."""
        block = self.metadata["threshold"].get("block")
        return None if block is None else float(block["value"])

    @property
    def model(self) -> FraudModel:
        return FraudModel(self.booster, self.forest)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keys_sha256(transaction_ids: Iterable[str] | pa.Array | pa.ChunkedArray) -> str:
    """sha256 of the sorted transaction ids joined by newlines: the same rows give the same
    fingerprint, wherever they were read (the lake locally, the exported Parquet in
    SageMaker). Sorted and hashed in Arrow, in blocks: at 10M ids a numpy string array and
    one joined Python string took over a gigabyte for a 64-character digest."""
    ids = transaction_ids
    if not isinstance(ids, pa.Array | pa.ChunkedArray):
        ids = pa.array(ids, pa.string())  # a pandas Series of Arrow strings: no copy
    ids = ids.cast(pa.string()).take(pc.sort_indices(ids))  # UTF-8 order = code point order
    digest = hashlib.sha256()
    for start in range(0, len(ids), _HASH_BLOCK):
        block = ids.slice(start, _HASH_BLOCK).to_pylist()
        digest.update((("\n" if start else "") + "\n".join(block)).encode())
    return digest.hexdigest()


_HASH_BLOCK = 100_000


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            dist = "xgboost-cpu" if name == "xgboost" else name
            try:
                versions[name] = importlib_metadata.version(dist)
            except importlib_metadata.PackageNotFoundError:
                versions[name] = "unknown"
    return versions


def new_version(layout: MlLayout, now: datetime | None = None) -> str:
    """A sortable UTC timestamp, with a suffix if that second is already taken."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    version, n = stamp, 1
    while layout.version_dir(version).exists():
        n += 1
        version = f"{stamp}-{n}"
    return version


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Writes atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def write_model_files(
    directory: Path, model: FraudModel, metadata: dict[str, Any]
) -> dict[str, Any]:
    """model.json (and forest.json), then metadata.json with the feature list and their
    sha256: the folder format load_directory verifies. Returns the metadata written."""
    model.booster.save_model(str(directory / MODEL_FILE))
    full = {
        **metadata,
        "features": list(FEATURES),
        "model_sha256": sha256_file(directory / MODEL_FILE),
    }
    if model.forest is not None:
        model.forest.save_model(str(directory / FOREST_FILE))
        full["forest_sha256"] = sha256_file(directory / FOREST_FILE)
    write_json(directory / METADATA_FILE, full)
    return full


def model_files(metadata: dict[str, Any]) -> tuple[str, ...]:
    """The files besides metadata.json that a version's metadata says it holds and that
    scoring needs: model.json, and forest.json when the model has its forest."""
    return (MODEL_FILE, FOREST_FILE) if "forest_sha256" in metadata else (MODEL_FILE,)


def save_version(
    layout: MlLayout,
    version: str,
    model: FraudModel,
    metadata: dict[str, Any],
    extras: Callable[[Path, dict[str, Any]], None] | None = None,
) -> Path:
    """Writes model.json and forest.json, then metadata.json (with their sha256 and the
    feature list),
    then whatever `extras(folder, full metadata)` writes (card, plots), all in one atomic
    rename."""
    final = layout.version_dir(version)
    if final.exists():
        raise FileExistsError(f"model version {version} already exists at {final}")
    staging = layout.models / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        from ml.layout import MODEL_NAME  # not at the top: see the module docstring

        full = write_model_files(
            staging, model, {"model_name": MODEL_NAME, "version": version, **metadata}
        )
        if extras is not None:
            extras(staging, full)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def load_version(layout: MlLayout, version: str) -> LoadedModel:
    directory = layout.version_dir(version)
    return load_directory(directory)


def load_directory(directory: Path) -> LoadedModel:
    """Loads and verifies one version folder."""
    model_path, metadata_path = directory / MODEL_FILE, directory / METADATA_FILE
    for path in (model_path, metadata_path):
        if not path.exists():
            raise ModelIntegrityError(f"{path} is missing: the model at {directory} is incomplete")
    try:
        metadata = json.loads(metadata_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelIntegrityError(f"{metadata_path} is not valid JSON: {error}") from error
    _verify(model_path, metadata.get("model_sha256"))
    forest_path = directory / FOREST_FILE
    if "forest_sha256" in metadata:
        if not forest_path.exists():
            raise ModelIntegrityError(
                f"{forest_path} is missing: the model at {directory} is incomplete"
            )
        _verify(forest_path, metadata["forest_sha256"])
    features = metadata.get("features")
    if features != list(FEATURES):
        trained = set(features or [])
        raise ModelIntegrityError(
            f"refusing model {directory.name}: it was trained on a different feature list "
            f"than ml/features.py (missing now: {sorted(trained - set(FEATURES))}, new: "
            f"{sorted(set(FEATURES) - trained)}, or a different order). Retrain it."
        )
    booster = _load_booster(model_path)
    forest = _load_booster(forest_path) if "forest_sha256" in metadata else None
    version = str(metadata.get("version", directory.name))
    return LoadedModel(version, directory, booster, metadata, forest)


def _verify(path: Path, expected: object) -> None:
    actual = sha256_file(path)
    if expected != actual:
        raise ModelIntegrityError(
            f"refusing {path}: its sha256 is {actual} but metadata.json records "
            f"{expected}; the file was changed after training. Retrain or restore it."
        )


def _load_booster(path: Path) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(str(path))
    if booster.feature_names is not None and list(booster.feature_names) != list(FEATURES):
        raise ModelIntegrityError(
            f"refusing model {path.parent.name}: {path.name}'s feature names differ from FEATURES"
        )
    return booster


def champion_version(layout: MlLayout) -> str | None:
    if not layout.champion_file.exists():
        return None
    return str(json.loads(layout.champion_file.read_text())["version"])


def load_champion(layout: MlLayout) -> LoadedModel:
    version = champion_version(layout)
    if version is None:
        raise NoChampionError(f"no champion model in {layout.models}: run `banklake train` first")
    return load_version(layout, version)


def promote(layout: MlLayout, version: str, reason: str, now: datetime | None = None) -> None:
    """Points champion.json at `version`, keeping the history of promotions."""
    history: list[dict[str, Any]] = []
    if layout.champion_file.exists():
        history = list(json.loads(layout.champion_file.read_text()).get("history", []))
    since = (now or datetime.now(UTC)).isoformat()
    history.append({"version": version, "since": since, "reason": reason})
    write_json(layout.champion_file, {"version": version, "since": since, "history": history})
