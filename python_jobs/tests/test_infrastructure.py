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
from python_jobs.observability.emf import ENVIRONMENT_ENV
from python_jobs.tests.cfn_yaml import load_template

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO / "infrastructure" / "banklake.yaml")


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _role_statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A role's inline statements and those of the standalone policies attached to it."""
    attached = [
        statement
        for policy in _resources(template, "AWS::IAM::Policy").values()
        if {"Ref": name} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    return _statements(template["Resources"][name]) + attached


def _environment(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A CodeBuild project's variables by name; a conditional one (Fn::If) carries its
    condition under "If"."""
    found = {}
    for entry in project["Properties"]["Environment"]["EnvironmentVariables"]:
        if "Fn::If" in entry:
            condition, variable, otherwise = entry["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
            found[variable["Name"]] = {**variable, "If": condition}
        else:
            found[entry["Name"]] = entry
    return found


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
        # and the Environment dimension of its validation figures (EMF on its log)
        assert variables == {
            s3_trigger.LAKE_PREFIX_ENV,
            s3_trigger.LAKE_BUCKET_ENV,
            ENVIRONMENT_ENV,
        }


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
    for name in _resources(template, "AWS::IAM::Role"):
        for statement in _role_statements(template, name):
            deletes = [a for a in _listify(statement["Action"]) if a.startswith("s3:Delete")]
            raw = [r for r in _listify(statement["Resource"]) if "/raw/" in str(r)]
            if deletes and raw:
                assert name == "TriggerRole", f"{name} may delete raw objects"


def test_the_assistant_only_reads_curated(template: dict[str, Any]) -> None:
    for statement in _role_statements(template, "AssistantRole"):
        for action in _listify(statement["Action"]):
            resources = " ".join(str(r) for r in _listify(statement["Resource"]))
            if action.startswith("s3:") and "LakeBucket" in resources:
                assert action in {"s3:GetObject", "s3:ListBucket"}, action
                assert "curated" in resources or statement.get("Condition"), statement["Sid"]
            if action.startswith("glue:"):
                assert action.startswith("glue:Get"), action


# --- Bedrock, the PII salt and the daily report -------------------------------------------------


def test_every_policy_statement_is_a_plain_statement(template: dict[str, Any]) -> None:
    """checkov's IAM checks (privilege escalation, data exfiltration, ...) silently skip a
    role whose statements hold an Fn::If: conditional rights live in their own policies."""
    policies = [
        p["PolicyDocument"]
        for role in _resources(template, "AWS::IAM::Role").values()
        for p in role["Properties"]["Policies"]
    ] + [
        p["Properties"]["PolicyDocument"] for p in _resources(template, "AWS::IAM::Policy").values()
    ]
    for document in policies:
        for statement in document["Statement"]:
            assert {"Effect", "Action", "Resource"} <= set(statement), statement


def test_bedrock_rights_are_the_configured_model_and_guardrail_only(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    model = resources["BedrockModelPolicy"]
    guardrail = resources["BedrockGuardrailPolicy"]
    # both exist only when the stack names what they allow
    assert model["Condition"] == "HasBedrockModel"
    assert guardrail["Condition"] == "HasBedrockGuardrail"
    for policy in (model, guardrail):
        assert policy["Properties"]["Roles"] == [{"Ref": "AssistantRole"}, {"Ref": "DbtRunnerRole"}]
    ((invoke,), (apply,)) = (
        p["Properties"]["PolicyDocument"]["Statement"] for p in (model, guardrail)
    )
    # Converse is InvokeModel; nothing streams, so no InvokeModelWithResponseStream
    assert (invoke["Action"], invoke["Resource"]) == (
        "bedrock:InvokeModel",
        {"Ref": "BedrockModelArns"},
    )
    assert (apply["Action"], apply["Resource"]) == (
        "bedrock:ApplyGuardrail",
        {"Ref": "BedrockGuardrailArn"},
    )
    # no other statement anywhere grants a Bedrock action
    everywhere = [
        statement
        for name in _resources(template, "AWS::IAM::Role")
        for statement in _statements(resources[name])
    ]
    assert not [
        s for s in everywhere for a in _listify(s["Action"]) if a.split(":")[0] == "bedrock"
    ]
    conditions = template["Conditions"]
    assert conditions["HasBedrockModel"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "BedrockModelArns"}]}, ""]}]
    }
    assert {"Fn::Condition": "HasBedrockModel"} in conditions["HasBedrockGuardrail"]["Fn::And"]


@pytest.mark.parametrize(
    ("arn", "accepted"),
    [
        ("", True),  # no Bedrock
        ("arn:aws:bedrock:sa-east-1::foundation-model/amazon.nova-lite-v1:0", True),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
            True,
        ),
        ("arn:aws:bedrock:*::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0", True),
        ("arn:aws:bedrock:sa-east-1::foundation-model/*", False),  # every model
        ("arn:aws:bedrock:*::*", False),
        ("*", False),
        ("arn:aws:bedrock:sa-east-1:123456789012:guardrail/abc123", False),
    ],
)
def test_the_model_arns_parameter_refuses_wildcard_models(
    template: dict[str, Any], arn: str, accepted: bool
) -> None:
    pattern = template["Parameters"]["BedrockModelArns"]["AllowedPattern"]
    assert template["Parameters"]["BedrockModelArns"]["Type"] == "CommaDelimitedList"
    assert bool(re.fullmatch(pattern, arn)) is accepted


def test_half_configured_bedrock_is_refused_at_deploy_time(template: dict[str, Any]) -> None:
    rules = template["Rules"]
    model = rules["BedrockModelNeedsItsArns"]
    assert model["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BedrockModelId"}, ""]}]}
    guardrail = rules["BedrockGuardrailNeedsAVersionAndAModel"]
    asserted = [a["Assert"] for a in guardrail["Assertions"]]
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "BedrockGuardrailVersion"}, ""]}]} in asserted


def test_the_pii_salt_is_a_kept_generated_secret_only_the_runner_reads(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    secret = resources["PiiSaltSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    # a new salt would change every cpf_hash: never deleted or replaced with the stack
    assert secret["DeletionPolicy"] == secret["UpdateReplacePolicy"] == "Retain"
    properties = secret["Properties"]
    assert properties["KmsKeyId"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}
    generated = properties["GenerateSecretString"]
    # hash_pii writes the salt into SQL as a literal: no quote (no punctuation at all)
    assert generated["ExcludePunctuation"] is True and generated["PasswordLength"] >= 32
    assert "SecretString" not in properties
    # the runner gets it from Secrets Manager, never as plain text
    variable = _environment(resources["RunnerProject"])["BANKLAKE_PII_SALT"]
    assert variable["Type"] == "SECRETS_MANAGER"
    assert variable["Value"] == {"Ref": "PiiSaltSecret"}
    # only the runner may read it, and only it
    readers = {}
    for name in _resources(template, "AWS::IAM::Role"):
        for statement in _role_statements(template, name):
            actions = [a for a in _listify(statement["Action"]) if a.startswith("secretsmanager:")]
            if actions:
                readers[name] = (actions, statement["Resource"])
    assert readers == {
        "DbtRunnerRole": (["secretsmanager:GetSecretValue"], {"Ref": "PiiSaltSecret"})
    }


def test_the_runner_writes_the_report_with_the_assistants_settings(
    template: dict[str, Any],
) -> None:
    """`banklake report --target athena` in CodeBuild: the assistant's work group (as `ask`),
    Bedrock only when the stack names a model, and the variables are the ones the code reads."""
    from python_jobs.assistant.bedrock import BedrockConfig
    from python_jobs.assistant.providers import PROVIDER_ENV, PROVIDERS
    from python_jobs.assistant.warehouse import ASSISTANT_STAGING_ENV, ASSISTANT_WORKGROUP_ENV

    environment = _environment(template["Resources"]["RunnerProject"])
    assert environment[ASSISTANT_WORKGROUP_ENV]["Value"] == {"Ref": "AssistantWorkGroup"}
    assert environment[ASSISTANT_STAGING_ENV]["Value"] == {
        "Fn::Sub": "s3://${AthenaResultsBucket}/assistant/"
    }
    condition, with_model, without = environment[PROVIDER_ENV]["Value"]["Fn::If"]
    assert (condition, with_model, without) == ("ReportWithBedrock", "bedrock", "offline")
    assert {with_model, without} <= set(PROVIDERS)
    conditional = {n: v for n, v in environment.items() if "If" in v}
    assert {n: v["If"] for n, v in conditional.items()} == {
        "BANKLAKE_BEDROCK_MODEL_ID": "ReportWithBedrock",
        "BANKLAKE_BEDROCK_GUARDRAIL_ID": "ReportWithGuardrail",
        "BANKLAKE_BEDROCK_GUARDRAIL_VERSION": "ReportWithGuardrail",
    }
    # what the provider reads from them, with the stack's parameters filled in
    values = {
        "BedrockModelId": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "BedrockGuardrailArn": "arn:aws:bedrock:sa-east-1:123456789012:guardrail/abc123",
        "BedrockGuardrailVersion": "3",
    }
    env = {n: values[v["Value"]["Ref"]] for n, v in conditional.items()}
    config = BedrockConfig.from_env({**env, "AWS_REGION": "sa-east-1"})
    assert (config.model_id, config.guardrail_id, config.guardrail_version) == (
        values["BedrockModelId"],
        values["BedrockGuardrailArn"],
        "3",
    )
    # the runner may run the report's queries there and read the monitoring reports
    runner = {s["Sid"]: s for s in _role_statements(template, "DbtRunnerRole")}
    assert (
        "${AssistantWorkGroup}"
        in runner["ReportQueriesInTheAssistantWorkGroup"]["Resource"]["Fn::Sub"]
    )
    assert {"Fn::Sub": "${AthenaResultsBucket.Arn}/assistant/*"} in runner["QueryResultObjects"][
        "Resource"
    ]
    assert {"Fn::Sub": "${LakeBucket.Arn}/monitoring/*"} in runner["ReadRawModelsAndMonitoring"][
        "Resource"
    ]
    listed = runner["ListTheLakePrefixesDbtUses"]["Condition"]["StringLike"]["s3:prefix"]
    assert "monitoring/*" in listed


def test_the_runner_may_do_what_the_athena_scorer_does(template: dict[str, Any]) -> None:
    """`banklake score --target athena` in CodeBuild (python_jobs/aws/athena_score.py): the
    table's columns from the catalog, an UNLOAD in the dbt work group into unload/ of the
    lake bucket, the files read back and deleted, the champion read from models/, the scores
    checked for and uploaded under processed/; leftovers of a failed run expire."""
    from python_jobs.aws.athena_score import UNLOAD_PREFIX

    runner = {s["Sid"]: s for s in _role_statements(template, "DbtRunnerRole")}

    def allows(action: str, resource: dict[str, Any] | str) -> bool:
        return any(
            action in _listify(s["Action"]) and resource in _listify(s["Resource"])
            for s in runner.values()
            if s["Effect"] == "Allow"
        )

    workgroup = "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/"
    queries = runner["QueriesInTheDbtWorkGroupOnly"]
    assert queries["Resource"] == {"Fn::Sub": workgroup + "${AthenaWorkGroup}"}
    assert {"athena:StartQueryExecution", "athena:GetQueryExecution"} <= set(queries["Action"])
    assert "athena:GetTableMetadata" in runner["ReadTheDataCatalog"]["Action"]
    glue = runner["GlueTablesOfBanklakeDatabasesOnly"]
    assert {"glue:GetTable", "glue:GetDatabase", "glue:GetPartitions"} <= set(glue["Action"])
    unload = {"Fn::Sub": "${LakeBucket.Arn}/" + UNLOAD_PREFIX.split("/")[0] + "/*"}
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert allows(action, unload), action
    assert allows("s3:GetBucketLocation", {"Fn::GetAtt": ["LakeBucket", "Arn"]})
    listed = runner["ListTheLakePrefixesDbtUses"]["Condition"]["StringLike"]["s3:prefix"]
    assert {"unload/*", "models/*", "processed/*"} <= set(listed)
    assert allows("s3:GetObject", {"Fn::Sub": "${LakeBucket.Arn}/models/*"})
    assert allows("s3:PutObject", {"Fn::Sub": "${LakeBucket.Arn}/processed/*"})
    # nothing beyond unload/ is deletable by the scorer's statement
    assert runner["ScorerUnloadPrefix"]["Resource"] == unload
    rules = template["Resources"]["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    temporary = next(r for r in rules if r.get("Prefix") == "unload/")
    assert temporary["ExpirationInDays"] <= 7 and temporary["Status"] == "Enabled"
