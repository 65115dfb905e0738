"""What the assistant may know about the warehouse: the curated marts, from dbt's own records.

The dbt manifest says which models are curated (the `curated` layer of dbt_project.yml),
what each model and column means and which tests hold on them; the catalog (`dbt docs
generate`), when present, adds the types the engine really has. Nothing else is offered: no
processed, snapshot or reference table, and no PII column.

PII rule (docs/assistant.md repeats it): a column is withheld when it holds a
person's name, CPF or contact/key data — e-mail, phone, address, PIX key — in *any* form,
clear, masked or hashed, or when its dbt `meta` says `pii: true`. Hashed and masked forms
are withheld too because they still single a person out: `cpf_hash` joins to any other
dataset hashed with the same salt, `name_masked` initials narrow a customer down, and
`counterparty_key` holds PIX keys that are often a CPF, a phone number or an e-mail. The
assistant answers about customers by `customer_id`, the bank's synthetic key. The withheld
columns are not shown to the model, and the guard refuses them by name.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_jobs.assistant.guard import ALWAYS_PII_COLUMNS, AllowList
from python_jobs.dbt_runner import PROJECT_DIR, target_dir

TARGET_DIR_ENV = "BANKLAKE_DBT_TARGET_PATH"
CURATED_LAYER = "curated"
# A column whose values a seed lists (a relationships test to the seed) is described by those
# values when there are at most this many: the model cannot query the reference tables.
MAX_LISTED_VALUES = 20

# name, cpf, e-mail, phone, address, PIX key: as a whole word of a snake_case column name
_PII_NAME = re.compile(
    r"(^|_)(cpf|cnpj|name|names|nome|full_name|email|e_mail|phone|telefone|celular|"
    r"address|endereco|pix_key|counterparty_key)(_|$)"
)


def is_pii_column(name: str, meta: Mapping[str, Any] | None = None) -> bool:
    """The PII rule of the module docstring, for one column."""
    lowered = name.lower()
    if lowered in ALWAYS_PII_COLUMNS or _PII_NAME.search(lowered):
        return True
    meta = meta or {}
    return bool(meta.get("pii") or meta.get("contains_pii"))


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str
    description: str
    tests: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelationInfo:
    name: str
    description: str
    columns: tuple[ColumnInfo, ...]
    hidden_columns: tuple[str, ...]  # PII: withheld from the model, refused by the guard
    tests: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchemaContext:
    relations: tuple[RelationInfo, ...]
    source: str  # where it was read from, for messages

    def allow_list(self, schema: str) -> AllowList:
        """The guard's allow-list for a warehouse whose curated schema is `schema`."""
        return AllowList(
            schema=schema,
            relations=frozenset(r.name for r in self.relations),
            pii_columns={r.name: frozenset(r.hidden_columns) for r in self.relations},
        )

    def relation(self, name: str) -> RelationInfo:
        for relation in self.relations:
            if relation.name == name:
                return relation
        raise KeyError(name)

    def render(self, schema: str) -> str:
        """The text the model sees: one block per relation, columns with type, meaning and
        tests. It goes into the prompt as data (prompting.data_block)."""
        lines: list[str] = []
        for relation in self.relations:
            lines.append(f"relation {schema}.{relation.name}: {_one_line(relation.description)}")
            if relation.tests:
                lines.append(f"  tests: {'; '.join(relation.tests)}")
            for column in relation.columns:
                tests = f" [{'; '.join(column.tests)}]" if column.tests else ""
                lines.append(
                    f"  - {column.name} {column.data_type}: {_one_line(column.description)}{tests}"
                )
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _one_line(text: str) -> str:
    return " ".join((text or "").split()) or "(no description)"


def default_target_dir() -> Path:
    """dbt's target folder: $BANKLAKE_DBT_TARGET_PATH, else where dbt writes by default."""
    return Path(os.environ.get(TARGET_DIR_ENV) or target_dir())


def load_schema_context(target_dir: Path | None = None) -> SchemaContext:
    """The curated marts from `<target>/manifest.json` (+ catalog.json when present)."""
    target_dir = target_dir or default_target_dir()
    manifest_path = target_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"no dbt manifest at {manifest_path}: run `banklake build` or `dbt parse` first "
            f"(or point {TARGET_DIR_ENV} at dbt's target folder)"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    catalog_path = target_dir / "catalog.json"
    catalog = json.loads(catalog_path.read_text(encoding="utf-8")) if catalog_path.is_file() else {}
    return schema_context_from(manifest, catalog, source=str(manifest_path))


def schema_context_from(
    manifest: Mapping[str, Any], catalog: Mapping[str, Any] | None = None, *, source: str = ""
) -> SchemaContext:
    project = manifest.get("metadata", {}).get("project_name")
    nodes = manifest.get("nodes", {})
    curated = {
        unique_id: node
        for unique_id, node in nodes.items()
        if node.get("resource_type") == "model"
        and node.get("config", {}).get("schema") == CURATED_LAYER
        and node.get("config", {}).get("enabled", True)
        and (project is None or node.get("package_name") == project)
    }
    seeds = {
        node["name"]: Path(node.get("root_path") or PROJECT_DIR) / node["original_file_path"]
        for node in nodes.values()
        if node.get("resource_type") == "seed" and node.get("original_file_path")
    }
    tests = _tests_by_model(nodes, curated.keys(), seeds)
    catalog_nodes = (catalog or {}).get("nodes", {})
    relations = []
    for unique_id, node in sorted(curated.items(), key=lambda item: item[1]["name"]):
        relations.append(
            _relation(node, catalog_nodes.get(unique_id, {}), tests.get(unique_id, {}))
        )
    if not relations:
        raise ValueError(f"the dbt manifest {source or ''} lists no curated model")
    return SchemaContext(tuple(relations), source)


def _relation(
    node: Mapping[str, Any], catalog_node: Mapping[str, Any], tests: Mapping[str, list[str]]
) -> RelationInfo:
    documented = node.get("columns", {})
    cataloged = catalog_node.get("columns", {})
    names = list(documented)
    names += [
        name
        for name in sorted(cataloged, key=lambda n: cataloged[n].get("index", 0))
        if name not in documented
    ]
    columns: list[ColumnInfo] = []
    hidden: list[str] = []
    for name in names:
        doc = documented.get(name, {})
        meta = {**doc.get("config", {}).get("meta", {}), **doc.get("meta", {})}
        if is_pii_column(name, meta):
            hidden.append(name)
            continue
        data_type = (cataloged.get(name, {}).get("type") or doc.get("data_type") or "").lower()
        columns.append(
            ColumnInfo(name, data_type, doc.get("description", ""), tuple(tests.get(name, [])))
        )
    meta = {**node.get("config", {}).get("meta", {}), **node.get("meta", {})}
    for name in meta.get("pii_columns", []) or []:
        columns = [c for c in columns if c.name != name]
        hidden.append(name)
    return RelationInfo(
        name=node.get("alias") or node["name"],
        description=node.get("description", ""),
        columns=tuple(columns),
        hidden_columns=tuple(sorted(set(hidden))),
        tests=tuple(tests.get("", [])),
    )


def _tests_by_model(
    nodes: Mapping[str, Any], models: Any, seeds: Mapping[str, Path] | None = None
) -> dict[str, dict[str, list[str]]]:
    """model unique_id -> column name ('' for the model) -> readable test descriptions.
    Tests on withheld columns are dropped with their column later (they name it)."""
    wanted = set(models)
    found: dict[str, dict[str, list[str]]] = {}
    for node in nodes.values():
        if node.get("resource_type") != "test" or node.get("attached_node") not in wanted:
            continue
        metadata = node.get("test_metadata") or {}
        text = _describe_test(metadata.get("name", ""), metadata.get("kwargs", {}), seeds or {})
        if not text:
            continue
        column = node.get("column_name") or ""
        if column and is_pii_column(column):
            continue
        found.setdefault(node["attached_node"], {}).setdefault(column, []).append(text)
    for by_column in found.values():
        for texts in by_column.values():
            texts.sort()
    return found


def _describe_test(name: str, kwargs: Mapping[str, Any], seeds: Mapping[str, Path]) -> str:
    arguments = kwargs.get("arguments") or kwargs
    if name in {"unique", "not_null"}:
        return name.replace("_", " ")
    if name == "accepted_values":
        values = arguments.get("values") or []
        return "one of " + ", ".join(str(v) for v in values)
    if name == "accepted_range":
        low, high = arguments.get("min_value"), arguments.get("max_value")
        low_text = "-inf" if low is None else low
        high_text = "inf" if high is None else high
        return f"between {low_text} and {high_text}"
    if name == "relationships":
        target = str(arguments.get("to", ""))
        match = re.search(r"ref\(['\"](\w+)['\"]\)", target)
        field = str(arguments.get("field", ""))
        values = _seed_values(seeds.get(match.group(1)) if match else None, field)
        if values:  # the accepted codes a seed holds (account types, segments, ...)
            return "one of " + ", ".join(values)
        return f"references {match.group(1) if match else target}.{field}"
    if name == "unique_combination_of_columns":
        return "unique key: " + ", ".join(arguments.get("combination_of_columns") or [])
    if name == "no_pii_in_clear":
        return "no PII in clear"
    if name == "expression_is_true":
        expression = str(arguments.get("expression", ""))
        if any(is_pii_column(word) for word in re.findall(r"\w+", expression)):
            return ""
        return f"always true: {' '.join(expression.split())}"
    return ""


def _seed_values(path: Path | None, column: str) -> list[str] | None:
    """The values of a seed's column in file order, or None: no such seed file or column, or
    more than MAX_LISTED_VALUES of them."""
    if path is None or not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        values = [row.get(column) for row in csv.DictReader(handle)]
    if not values or None in values or len(values) > MAX_LISTED_VALUES:
        return None
    return [str(value) for value in values]
