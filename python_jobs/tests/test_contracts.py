"""The places that must agree do agree: the raw schema contract and the dbt sources, the
generator's reference data and the dbt seeds, the ML feature contract and its dbt mart."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml

from ml.features import FEATURES, KEY_COLUMNS, LABEL_COLUMNS, LABEL_DELAY_DAYS
from python_jobs.dbt_runner import PROJECT_DIR
from python_jobs.generate import reference
from python_jobs.lake.schemas import FEEDS
from python_jobs.lake.validate import duckdb_type

SEEDS = PROJECT_DIR / "seeds"


def read_seed(name: str) -> list[dict[str, str]]:
    with (SEEDS / f"{name}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def normalize_key(value: str) -> str:
    """What macros/staging/normalize_key.sql does, as the test's oracle."""
    return re.sub(r"[\s_-]+", " ", value.lower()).strip()


def raw_sources() -> dict[str, dict]:
    spec = yaml.safe_load((PROJECT_DIR / "models/processed/_sources.yml").read_text())
    (raw,) = [s for s in spec["sources"] if s["name"] == "raw"]
    return {table["name"]: table for table in raw["tables"]}


def test_every_raw_feed_is_a_dbt_source_with_the_same_columns() -> None:
    sources = raw_sources()
    assert set(sources) == set(FEEDS)
    for name, feed in FEEDS.items():
        documented = {c["name"] for c in sources[name]["columns"]}
        assert set(feed.schema.names) <= documented, name


def test_json_sources_read_the_columns_the_contract_declares() -> None:
    for name, table in raw_sources().items():
        feed = FEEDS[name]
        if feed.file_format == "parquet":
            continue
        location = table["config"]["external_location"]
        for field in feed.schema:
            assert f"'{field.name}': '{duckdb_type(field.type)}'" in location, (name, field.name)


def test_every_spelling_the_generator_writes_normalizes_through_the_seed() -> None:
    aliases = {
        (r["domain"], r["raw_value"]): r["canonical_value"] for r in read_seed("value_aliases")
    }
    for domain, spellings in (
        ("transaction_type", reference.TRANSACTION_TYPE_SPELLINGS),
        ("channel", reference.CHANNEL_SPELLINGS),
    ):
        for raw, canonical in spellings.items():
            assert aliases.get((domain, normalize_key(raw))) == canonical, (domain, raw)
    for unknown in reference.UNKNOWN_TRANSACTION_TYPES:
        assert ("transaction_type", normalize_key(unknown)) not in aliases


def test_mcc_and_state_seeds_match_the_generator() -> None:
    mcc = {r["merchant_category_code"]: r["mcc_group"] for r in read_seed("mcc_groups")}
    assert mcc == {str(code): group for code, group in reference.MCC_GROUPS.items()}
    regions = {r["state_code"]: r["region"] for r in read_seed("br_states")}
    assert regions == reference.UF_REGIONS
    assert len(regions) == 27


def test_every_model_has_a_yml_with_descriptions() -> None:
    models = sorted((PROJECT_DIR / "models").rglob("*.sql"))
    assert len(models) >= 20
    for model in models:
        spec_path = model.with_suffix(".yml")
        assert spec_path.exists(), f"{model} has no {spec_path.name}"
        (spec,) = yaml.safe_load(spec_path.read_text())["models"]
        assert spec["name"] == model.stem
        assert spec.get("description"), model.stem
        undocumented = [c["name"] for c in spec.get("columns", []) if not c.get("description")]
        assert undocumented == [], model.stem


def test_no_duckdb_only_function_sits_in_a_model() -> None:
    duckdb_only = re.compile(
        r"\b(read_parquet|read_json|try_strptime|strftime|epoch_ms|list_\w+|isodow)\s*\(|::|\bqualify\b",
        re.IGNORECASE,
    )
    for path in [
        *Path(PROJECT_DIR / "models").rglob("*.sql"),
        *Path(PROJECT_DIR / "analyses").rglob("*.sql"),
    ]:
        text = re.sub(r"--.*", "", path.read_text())
        assert not duckdb_only.search(text), f"{path}: DuckDB-only SQL belongs in a dispatch macro"


def test_ml_features_yml_declares_the_feature_contract_in_order() -> None:
    spec = yaml.safe_load((PROJECT_DIR / "models/curated/ml_features.yml").read_text())
    (model,) = spec["models"]
    assert [c["name"] for c in model["columns"]] == [*KEY_COLUMNS, *LABEL_COLUMNS, *FEATURES]


def test_every_feature_has_investigator_wording() -> None:
    seed = read_seed("feature_reason_codes")
    assert [row["feature"] for row in seed[: len(FEATURES)]] == list(FEATURES)
    # then the features only older models used, for the alerts they scored
    retired = {row["feature"] for row in seed[len(FEATURES) :]}
    assert retired == {"cp_fraud_reported_1d", "cp_fraud_reported_7d", "cp_fraud_rate_30d"}
    assert all(row["reason_code"] and row["description"] for row in seed)


def test_the_label_delay_is_one_number_for_dbt_and_python() -> None:
    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["label_delay_days"] == LABEL_DELAY_DAYS
