"""The CloudFormation template against the code it deploys: names, handlers, prefixes, rights.

cfn-lint and checkov (`make lint-iac`) judge the template on its own; these tests catch what
they cannot see, a template that no longer matches the Python, dbt or profile it serves.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from python_jobs.aws import s3_trigger
from python_jobs.lake.validate import RAW_PREFIX
from python_jobs.tests.cfn_yaml import load_template

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO / "infrastructure" / "banklake.yaml")


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_lambda_handlers_and_environment_match_the_module(template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Lambda::Function")
    assert set(functions) == {"TriggerFunction", "SweepFunction"}
    for function in functions.values():
        module, _, name = function["Properties"]["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))
        assert function["Properties"]["Runtime"] == "python3.11"  # the project's Python
        variables = set(function["Properties"]["Environment"]["Variables"])
        assert variables == {s3_trigger.LAKE_PREFIX_ENV, s3_trigger.LAKE_BUCKET_ENV}


def test_the_bucket_notifies_the_trigger_of_new_raw_objects(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["LakeBucket"]["Properties"]
    (config,) = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": RAW_PREFIX}]
    assert config["Function"] == {"Fn::GetAtt": ["TriggerFunction", "Arn"]}


def test_raw_lifecycle_keeps_objects_readable_by_athena(template: dict[str, Any]) -> None:
    """Athena skips Glacier Flexible Retrieval / Deep Archive objects: a full refresh would
    silently miss old raw days."""
    rules = template["Resources"]["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    raw = next(r for r in rules if r.get("Prefix") == RAW_PREFIX)
    classes = {t["StorageClass"] for t in raw["Transitions"]}
    assert classes and classes <= {"STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"}
    assert "ExpirationInDays" not in raw  # raw is kept


def test_glue_databases_are_the_ones_dbt_writes(template: dict[str, Any]) -> None:
    project = yaml.safe_load((REPO / "dbt_project.yml").read_text())
    schemas = set()
    for section in ("models", "seeds", "snapshots"):
        node = project[section]["banklake"]
        children = [node, *(v for v in node.values() if isinstance(v, dict))]
        schemas |= {child["+schema"] for child in children if "+schema" in child}
    names = set()
    for db in _resources(template, "AWS::Glue::Database").values():
        name = db["Properties"]["DatabaseInput"]["Name"]
        names.add(name["Fn::Sub"].replace("${GlueSchema}", "S") if isinstance(name, dict) else name)
    assert {"processed", "curated", "reference", "snapshots"} <= schemas
    assert names == {f"S_{schema}" for schema in (*schemas, "raw", "processed_files")}


def test_work_group_default_is_the_profile_default(template: dict[str, Any]) -> None:
    profile = (REPO / "profiles.yml.example").read_text()
    default = re.search(r"env_var\('BANKLAKE_ATHENA_WORKGROUP', '([^']+)'\)", profile)
    assert default and template["Parameters"]["AthenaWorkGroupName"]["Default"] == default[1]
    for group in _resources(template, "AWS::Athena::WorkGroup").values():
        config = group["Properties"]["WorkGroupConfiguration"]
        assert config["EnforceWorkGroupConfiguration"] is True
        assert "BytesScannedCutoffPerQuery" in config
        assert config["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"]


def test_only_the_trigger_may_delete_raw(template: dict[str, Any]) -> None:
    policy = template["Resources"]["LakeBucketPolicy"]["Properties"]["PolicyDocument"]
    deny = next(s for s in policy["Statement"] if s["Sid"].startswith("RawIsImmutable"))
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {
        "Fn::GetAtt": ["TriggerRole", "Arn"]
    }
    for name, role in _resources(template, "AWS::IAM::Role").items():
        for statement in _statements(role):
            deletes = [a for a in _listify(statement["Action"]) if a.startswith("s3:Delete")]
            raw = [r for r in _listify(statement["Resource"]) if "/raw/" in str(r)]
            if deletes and raw:
                assert name == "TriggerRole", f"{name} may delete raw objects"


def test_the_assistant_only_reads_curated(template: dict[str, Any]) -> None:
    role = template["Resources"]["AssistantRole"]
    for statement in _statements(role):
        for action in _listify(statement["Action"]):
            resources = " ".join(str(r) for r in _listify(statement["Resource"]))
            if action.startswith("s3:") and "LakeBucket" in resources:
                assert action in {"s3:GetObject", "s3:ListBucket"}, action
                assert "curated" in resources or statement.get("Condition"), statement["Sid"]
            if action.startswith("glue:"):
                assert action.startswith("glue:Get"), action
