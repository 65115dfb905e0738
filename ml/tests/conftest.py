"""Small synthetic ml_features frames and lakes: the ml package tested without dbt.

The frames have exactly the contract's columns and a learnable fraud signal (frauds are
bigger, at night, from new devices, to new counterparties), with reports that arrive days
after the transaction, so the time protocol has something to get right.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.booster import BoosterParams
from ml.dataset import CONTRACT_COLUMNS
from ml.features import FEATURES
from ml.layout import MlLayout
from ml.train import TrainConfig, train
from python_jobs.lake.layout import Lake

START = date(2026, 9, 1)
SCENARIOS = np.array(["account_takeover", "pix_scam", "card_testing"])


def synthetic_features(**kwargs: object) -> pd.DataFrame:
    return synthetic_features_with_truth(**kwargs)[0]  # type: ignore[arg-type]


def synthetic_features_with_truth(
    days: int = 20,
    rows_per_day: int = 300,
    customers: int = 120,
    fraud_rate: float = 0.04,
    seed: int = 7,
    start: date = START,
) -> tuple[pd.DataFrame, set[str]]:
    """A frame of contract columns, labels as known at the end of the last day, and the ids
    of every fraud (reported or not)."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day = np.repeat(np.arange(days), rows_per_day)
    seconds = rng.integers(0, 86_400, n)
    event_ts = (
        pd.Timestamp(start) + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")
    )
    fraud = rng.random(n) < fraud_rate
    frame = pd.DataFrame(
        {
            "transaction_id": [f"T{i:07d}" for i in range(n)],
            "event_ts": event_ts.astype("datetime64[us]"),
            "event_date": event_ts.normalize().astype("datetime64[us]"),
            "customer_id": [f"C{c:04d}" for c in rng.integers(0, customers, n)],
            "account_id": [f"A{c:04d}" for c in rng.integers(0, customers, n)],
            "counterparty_key": [f"pix:{k}" for k in rng.integers(0, 500, n)],
            "transaction_type": "PIX",
            "channel": "mobile",
            "direction": "outbound",
            "amount_brl": np.round(rng.lognormal(4, 1, n), 2),
        }
    )
    features: dict[str, np.ndarray] = {f: rng.normal(0, 1, n) for f in FEATURES}
    features["amount_log"] = np.log1p(frame["amount_brl"].to_numpy()) + 2.0 * fraud
    features["event_hour"] = (seconds // 3600).astype(float)
    features["is_night"] = ((seconds // 3600) < 6) | (fraud & (rng.random(n) < 0.6))
    features["is_new_device"] = fraud & (rng.random(n) < 0.7) | (rng.random(n) < 0.02)
    features["is_first_time_counterparty"] = fraud | (rng.random(n) < 0.3)
    features["amount_ratio_to_avg_30d"] = np.exp(rng.normal(0, 0.5, n)) * np.where(fraud, 8, 1)
    features["cust_seconds_since_prev_tx"] = np.where(
        rng.random(n) < 0.05, np.nan, rng.exponential(3600, n)
    )
    for name in ("is_night", "is_new_device", "is_first_time_counterparty"):
        features[name] = features[name].astype(float)
    for name, value in features.items():
        frame[name] = value
    delay = pd.to_timedelta(rng.integers(1, 8 * 86_400, n), unit="s")
    reported_at = (frame["event_ts"] + delay).where(fraud)
    now = pd.Timestamp(start + timedelta(days=days))  # end of the last day
    known = fraud & (reported_at <= now).to_numpy()
    frame["label_is_fraud"] = known
    frame["label_reported_at"] = reported_at.where(known).astype("datetime64[us]")
    frame["label_scenario"] = pd.Series(SCENARIOS[rng.integers(0, 3, n)]).where(known)
    truth = set(frame.loc[fraud, "transaction_id"])
    return frame.loc[:, list(CONTRACT_COLUMNS)], truth


def write_features(database: Path, frame: pd.DataFrame) -> None:
    """Stores a frame as curated.ml_features, typed as the dbt mart types it."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(database)) as con:
        con.register("frame", frame)
        con.execute("create schema if not exists curated")
        con.execute(
            "create or replace table curated.ml_features as select * replace "
            "(cast(event_date as date) as event_date) from frame"
        )


@pytest.fixture(scope="session")
def features_and_truth() -> tuple[pd.DataFrame, set[str]]:
    return synthetic_features_with_truth()


@pytest.fixture(scope="session")
def features_frame(features_and_truth: tuple[pd.DataFrame, set[str]]) -> pd.DataFrame:
    return features_and_truth[0]


@pytest.fixture
def ml_lake(tmp_path: Path, features_frame: pd.DataFrame) -> MlLayout:
    lake = Lake(tmp_path / "lake")
    write_features(lake.database, features_frame)
    return MlLayout(lake)


FAST_TRAINING = TrainConfig(
    booster=BoosterParams(num_boost_round=100, early_stopping_rounds=20), plots=False
)
TRAINED_AT = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def trained_template(
    tmp_path_factory: pytest.TempPathFactory, features_frame: pd.DataFrame
) -> Path:
    """A lake with features and a champion, trained once for the session."""
    root = tmp_path_factory.mktemp("trained") / "lake"
    layout = MlLayout(Lake(root))
    write_features(layout.lake.database, features_frame)
    train(layout, config=FAST_TRAINING, now=TRAINED_AT)
    return root


@pytest.fixture
def trained_lake(tmp_path: Path, trained_template: Path) -> MlLayout:
    """A private copy of the trained lake (tests may score, monitor and alter it)."""
    shutil.copytree(trained_template, tmp_path / "lake")
    return MlLayout(Lake(tmp_path / "lake"))
