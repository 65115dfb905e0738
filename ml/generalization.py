"""The mechanisms benchmark: does the model beat strong, simple baselines on data it was not
designed for?

For each fraud mechanism of ml/mechanisms.py (one mechanism per lake, parameters drawn from
the seed) the whole user path runs: the dataset is landed with `banklake import` (a CSV and
its mapping, labels known a few days after each transaction), validated, built by dbt into
`ml_features`, and trained with the default protocol and the default alert budget. The
result per mechanism is every model's average precision on the test period (the labels known
at the lake's end) and the champion decision. The bar: the model (XGBoost + forest)
reaches at least the random forest's average precision alone, and on the amount threshold,
the textbook case a tree learns from a handful of examples, 0.95.

`banklake mechanisms` runs it and writes a record under bench/results/; the test suite runs
it small (ml/tests/test_mechanisms.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.layout import MlLayout
from ml.mechanisms import MECHANISMS, WorldConfig, simulate
from ml.report import MODEL_LABELS
from ml.train import FOREST, MODEL, TrainConfig, train
from python_jobs.dbt_runner import require_success, run_dbt
from python_jobs.importer.mapping import load_mapping
from python_jobs.importer.run import import_file
from python_jobs.lake.layout import Lake
from python_jobs.lake.validate import validate_lake

Say = Callable[[str], None]

# The amount threshold is the one mechanism a tree can learn exactly: one split.
THRESHOLD_MECHANISM = "amount_threshold"
MIN_THRESHOLD_AP = 0.95
# dbt builds what the features need; the data tests of every model run in `make test` and
# on every `banklake run`, and are not what this benchmark measures.
BUILD_ARGS = (
    "build",
    "--select",
    "+ml_features",
    "--exclude-resource-type",
    "test",
    "unit_test",
)


@dataclass(frozen=True)
class MechanismResult:
    mechanism: str
    seed: int
    params: dict[str, Any]  # what the seed drew (ml/mechanisms.py)
    transactions: int
    frauds: int
    test_frauds: int  # known in the test period
    windows: str
    average_precision: dict[str, float | None]  # per model, on the test period
    promoted: bool  # the model became the lake's champion (the first model always does)
    decision: str

    def failures(self) -> list[str]:
        """What this mechanism misses of the benchmark's bar (empty: it passes)."""
        problems = []
        model, forest = self.average_precision.get(MODEL), self.average_precision.get(FOREST)
        if model is None or forest is None or model < forest:
            problems.append(f"the model's average precision {model} is below the forest's {forest}")
        if self.mechanism == THRESHOLD_MECHANISM and (model is None or model < MIN_THRESHOLD_AP):
            problems.append(f"the model's average precision {model} is below {MIN_THRESHOLD_AP}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failures": self.failures()}


def _quiet(_: str) -> None:
    return None


def run_mechanism(
    mechanism: str,
    work: Path,
    world: WorldConfig,
    config: TrainConfig | None = None,
    *,
    say: Say = _quiet,
) -> MechanismResult:
    """Simulates, imports, builds and trains one mechanism's lake under `work` (the default
    training protocol, without plots, when no config is given)."""
    config = config or TrainConfig(plots=False)
    dataset = simulate(mechanism, work / "source", world)
    lake = Lake(work / "lake")
    say(
        f"{mechanism} (seed {world.seed}): {dataset.transactions:,} transactions, "
        f"{dataset.frauds:,} frauds; importing, building, training"
    )
    import_file(lake, dataset.csv, load_mapping(dataset.mapping))
    report = validate_lake(lake)
    if report.quarantined:
        raise RuntimeError(f"{mechanism}: the import produced bad raw files: {report.summary()}")
    require_success(
        run_dbt(list(BUILD_ARGS), lake, target_path=work / "target", quiet=True),
    )
    outcome = train(MlLayout(lake), config=config)
    metrics = outcome.metadata["metrics"]
    return MechanismResult(
        mechanism=mechanism,
        seed=world.seed,
        params=dataset.params,
        transactions=dataset.transactions,
        frauds=dataset.frauds,
        test_frauds=int(metrics[MODEL]["frauds"]),
        windows=outcome.result.split.windows.describe(),
        average_precision={name: m["average_precision"] for name, m in metrics.items()},
        promoted=outcome.decision.promote,
        decision=outcome.decision.reason,
    )


def run_benchmark(
    seeds: Sequence[int],
    mechanisms: Sequence[str] = MECHANISMS,
    world: WorldConfig | None = None,
    *,
    work: Path | None = None,
    say: Say = _quiet,
) -> list[MechanismResult]:
    """Every mechanism for every seed, each in its own lake under `work` (a temporary folder,
    removed afterwards, when None)."""
    unknown = sorted(set(mechanisms) - set(MECHANISMS))
    if unknown:
        raise ValueError(f"unknown mechanisms {unknown}: choose from {', '.join(MECHANISMS)}")
    world = world or WorldConfig()
    root = work or Path(tempfile.mkdtemp(prefix="banklake-mechanisms-"))
    try:
        results = []
        for seed in seeds:
            for mechanism in mechanisms:
                folder = root / f"seed-{seed}" / mechanism
                shutil.rmtree(folder, ignore_errors=True)
                result = run_mechanism(mechanism, folder, replace(world, seed=seed), say=say)
                say(summary_line(result))
                results.append(result)
        return results
    finally:
        if work is None:
            shutil.rmtree(root, ignore_errors=True)


def summary_line(result: MechanismResult) -> str:
    aps = ", ".join(
        f"{MODEL_LABELS.get(name, name)} {_num(ap)}"
        for name, ap in result.average_precision.items()
    )
    verdict = "ok" if not result.failures() else "MISSED: " + "; ".join(result.failures())
    return f"  {result.mechanism} seed {result.seed}: AP {aps} -> {verdict}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(results: Sequence[MechanismResult], created_at: datetime) -> str:
    models = list(results[0].average_precision) if results else []
    header = ["mechanism", "seed", "test frauds", *(MODEL_LABELS.get(m, m) for m in models), "bar"]
    lines = [
        f"# Mechanisms benchmark, {created_at:%Y-%m-%d %H:%M} UTC",
        "",
        "Average precision on the test period of each lake (labels known at its end); the "
        f"bar: the model at least the random forest alone, and at least {MIN_THRESHOLD_AP} "
        f"on {THRESHOLD_MECHANISM}. Datasets: ml/mechanisms.py.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in results:
        cells = [r.mechanism, str(r.seed), str(r.test_frauds)]
        cells += [_num(r.average_precision[m]) for m in models]
        cells.append("ok" if not r.failures() else "missed")
        lines.append("| " + " | ".join(cells) + " |")
    passed = sum(not r.failures() for r in results)
    lines += ["", f"{passed} of {len(results)} lakes meet the bar.", ""]
    lines += ["Parameters drawn per lake:", ""]
    lines += [
        f"- {r.mechanism} seed {r.seed}: "
        + ", ".join(f"{k} {v}" for k, v in r.params.items() if k != "world")
        for r in results
    ]
    return "\n".join(lines) + "\n"


def write_record(
    results: Sequence[MechanismResult], folder: Path, created_at: datetime | None = None
) -> tuple[Path, Path]:
    """bench/results/mechanisms-<UTC>.json and .md."""
    created_at = created_at or datetime.now(UTC)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"mechanisms-{created_at:%Y%m%dT%H%M%SZ}"
    record = {
        "created_at": created_at.isoformat(),
        "bar": {"min_threshold_ap": MIN_THRESHOLD_AP, "at_least": FOREST},
        "results": [r.to_dict() for r in results],
    }
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    md_path.write_text(markdown(results, created_at))
    return json_path, md_path
