"""The CloudFormation template against the code it deploys: names, handlers, prefixes, rights.

cfn-lint and checkov (`make lint-iac`) judge the template on its own; these tests catch what
they cannot see, a template that no longer matches the Python, dbt or profile it serves.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from python_jobs.aws import s3_trigger
from python_jobs.aws.stream_consumer import ALERTS_DEAD_LETTER_DIR, DEAD_LETTER_DIR, STREAM_DIR
from python_jobs.lake.validate import RAW_PREFIX
from python_jobs.observability.emf import ENVIRONMENT_ENV
from python_jobs.serve import dynamodb_generations, dynamodb_state
from python_jobs.serve.dynamodb_state import table_definition
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
    assert set(functions) == {"TriggerFunction", "SweepFunction", "StreamConsumerFunction"}
    zips = {n: f for n, f in functions.items() if f["Properties"].get("PackageType") != "Image"}
    assert set(zips) == {"TriggerFunction", "SweepFunction"}  # the consumer: test_realtime_*
    for function in zips.values():
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
    # `banklake export --target athena` (LoadOnlineState) unloads under the same prefix, and
    # loads the table the real-time path reads
    from python_jobs.aws.athena_export import UNLOAD_PREFIX as EXPORT_PREFIX

    assert EXPORT_PREFIX.split("/")[0] == UNLOAD_PREFIX.split("/")[0] == "unload"
    project = template["Resources"]["RunnerProject"]["Properties"]["Environment"]
    variables = {v["Name"]: v["Value"] for v in project["EnvironmentVariables"] if "Name" in v}
    assert variables["BANKLAKE_STATE"] == REALTIME_ENV["BANKLAKE_STATE"]


# --- The real-time path (ADR 0023) ---------------------------------------------------------------

CONSUMER_HANDLER = "python_jobs.aws.stream_consumer.handler"
# where the stream consumer writes (python_jobs/aws/stream_consumer.py): its role may write
# there and nowhere else
CONSUMER_WRITES = {
    "raw/transactions/*",
    "processed/fraud_scores/*",
    *(f"{folder}*" for folder in (STREAM_DIR, DEAD_LETTER_DIR, ALERTS_DEAD_LETTER_DIR)),
}

# what the consumer and the scoring API's task are told, and what each must name
REALTIME_ENV = {
    "BANKLAKE_LAKE_URI": {"Fn::Sub": "s3://${LakeBucket}/"},
    "BANKLAKE_STATE": {"Fn::Sub": "dynamodb://${OnlineStateTable}"},
    "BANKLAKE_ALERT_TOPIC_ARN": {"Ref": "FraudAlertTopic"},
    "BANKLAKE_MODEL_URI": {"Fn::Sub": "s3://${LakeBucket}/models/fraud_xgb/"},
    "BANKLAKE_ENVIRONMENT": {"Ref": "NamePrefix"},  # their metrics' Environment dimension
}
REALTIME_ROLES = ("StreamConsumerRole", "ScoringApiTaskRole", "ScoringApiExecutionRole")
# actions AWS authorizes only on Resource "*" (no resource-level permissions)
STAR_ONLY_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ecr:GetAuthorizationToken",
}


def _lake_key(value: Any) -> bool:
    return value in ({"Ref": "LakeKey"}, {"Fn::GetAtt": ["LakeKey", "Arn"]})


def test_the_consumer_is_an_image_running_the_stream_handler(template: dict[str, Any]) -> None:
    """numpy, xgboost and pyarrow are over a zip's 250 MB: a container image, its command the
    handler; created only with an image (HasStreamConsumer), as its role and mapping."""
    resources = template["Resources"]
    function = resources["StreamConsumerFunction"]
    properties = function["Properties"]
    assert properties["PackageType"] == "Image" and "Handler" not in properties
    assert properties["Code"] == {"ImageUri": {"Ref": "StreamConsumerImageUri"}}
    assert properties["ImageConfig"]["Command"] == [CONSUMER_HANDLER]
    assert properties["Role"] == {"Fn::GetAtt": ["StreamConsumerRole", "Arn"]}
    assert _lake_key(properties["KmsKeyArn"])
    for name in (
        "StreamConsumerFunction",
        "StreamConsumerRole",
        "StreamConsumerEventSourceMapping",
    ):
        assert resources[name]["Condition"] == "HasStreamConsumer", name
    assert template["Conditions"]["HasStreamConsumer"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "StreamConsumerImageUri"}, ""]}]
    }
    pattern = template["Parameters"]["StreamConsumerImageUri"]["AllowedPattern"]
    ecr = "123456789012.dkr.ecr.sa-east-1.amazonaws.com/banklake-stream-consumer"
    assert re.fullmatch(pattern, f"{ecr}:2026-12-06")
    assert re.fullmatch(pattern, f"{ecr}@sha256:{'a' * 64}")
    assert re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, "docker.io/library/python:3.12")  # ECR only


def test_the_consumer_handler_is_importable() -> None:
    """The image runs CONSUMER_HANDLER: it must exist in the package the image is built from."""
    module, _, name = CONSUMER_HANDLER.rpartition(".")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this tree (the stream consumer's branch adds it)")
    assert callable(getattr(importlib.import_module(module), name))


def test_the_consumer_and_the_api_are_told_the_stacks_resources(template: dict[str, Any]) -> None:
    from ml.layout import MODEL_NAME

    resources = template["Resources"]
    consumer = resources["StreamConsumerFunction"]["Properties"]["Environment"]["Variables"]
    (container,) = resources["ScoringApiTaskDefinition"]["Properties"]["ContainerDefinitions"]
    task = {e["Name"]: e["Value"] for e in container["Environment"]}
    for environment in (consumer, task):
        assert {n: v for n, v in environment.items() if n.startswith("BANKLAKE_")} == REALTIME_ENV
        # numba caches the compiled trees where it can write: only /tmp is writable there
        assert environment["NUMBA_CACHE_DIR"].startswith("/tmp/")
    assert f"/models/{MODEL_NAME}/" in REALTIME_ENV["BANKLAKE_MODEL_URI"]["Fn::Sub"]
    # every name in them is a resource or parameter of the stack, not a literal
    for value in REALTIME_ENV.values():
        text = value.get("Fn::Sub") or value["Ref"]
        for name in re.findall(r"\$\{([A-Za-z]+)\}", text) or [text]:
            assert name in resources or name in template["Parameters"], name
    # the lake the consumer writes is where the trigger validates raw/ (no lake prefix)
    trigger = resources["TriggerFunction"]["Properties"]["Environment"]["Variables"]
    assert trigger[s3_trigger.LAKE_PREFIX_ENV] == ""


def test_the_api_container_runs_banklake_serve_with_the_stacks_topic_and_state(
    template: dict[str, Any],
) -> None:
    """The task's command is parsed by the CLI itself: a renamed flag fails here, not in ECS."""
    from python_jobs.cli import build_parser

    (container,) = template["Resources"]["ScoringApiTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    command = container["Command"]
    literal = [c if isinstance(c, str) else f"<{next(iter(c))}>" for c in command]
    args = build_parser().parse_args(literal)
    assert args.command == "serve"
    assert (args.host, args.port, str(args.lake)) == ("0.0.0.0", 8000, "/lake")
    assert command[command.index("--alert-sns-topic") + 1] == {"Ref": "FraudAlertTopic"}
    assert command[command.index("--state") + 1] == REALTIME_ENV["BANKLAKE_STATE"]
    assert container["ReadonlyRootFilesystem"] is True and container["Privileged"] is False
    # the writable places, on the task's ephemeral disk: the lake folder and scratch
    assert {m["ContainerPath"] for m in container["MountPoints"]} == {"/lake", "/tmp"}


def test_the_event_source_mapping_never_loses_a_record_silently(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    mapping = resources["StreamConsumerEventSourceMapping"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["TransactionStream", "Arn"]}
    assert mapping["FunctionName"] == {"Ref": "StreamConsumerFunction"}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"  # a first deploy reads what waits
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # the handler names the first record it could not land (its intents are keyed by a
    # batch's first record): a bisected retry would start inside an intent's range
    assert mapping["BisectBatchOnFunctionError"] is False
    assert mapping["ParallelizationFactor"] == 1
    assert 0 < mapping["MaximumRetryAttempts"] <= 10  # a poison record cannot block a shard
    assert mapping["MaximumRecordAgeInSeconds"] == -1  # a backlog is scored, not dropped
    assert 1 <= mapping["BatchSize"] <= 1000 and mapping["MaximumBatchingWindowInSeconds"] <= 5
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["StreamConsumerDeadLetterQueue", "Arn"]}
    queue = resources["StreamConsumerDeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["MessageRetentionPeriod"] == 1209600  # SQS's maximum, 14 days
    # the role sends there, and the dead letters (metadata) outlive nothing of the stream:
    # the stream keeps the records at least a day, a week by default
    consumer = _role_statements(template, "StreamConsumerRole")
    assert any(s["Action"] == "sqs:SendMessage" and s["Resource"] == destination for s in consumer)
    retention = template["Parameters"]["StreamRetentionHours"]
    assert retention["MinValue"] >= 24 and retention["Default"] >= 168
    stream = resources["TransactionStream"]["Properties"]
    assert stream["RetentionPeriodHours"] == {"Ref": "StreamRetentionHours"}
    # every shard's concurrent batches fit in the reserved concurrency
    shards = template["Parameters"]["StreamShardCount"]["MaxValue"]
    reserved = resources["StreamConsumerFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert shards * mapping["ParallelizationFactor"] <= reserved


def test_the_real_time_data_is_encrypted_with_the_lake_key(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    stream = resources["TransactionStream"]["Properties"]["StreamEncryption"]
    assert stream["EncryptionType"] == "KMS" and _lake_key(stream["KeyId"])
    table = resources["OnlineStateTable"]["Properties"]
    sse = table["SSESpecification"]
    assert sse["SSEEnabled"] is True and sse["SSEType"] == "KMS"
    assert _lake_key(sse["KMSMasterKeyId"])
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    # the table the backend creates in the tests (dynamodb_state.table_definition) is this one
    definition = table_definition("any")
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": definition["TimeToLiveAttribute"],
        "Enabled": True,
    }
    assert table["KeySchema"] == definition["KeySchema"]
    assert table["AttributeDefinitions"] == definition["AttributeDefinitions"]
    assert table["BillingMode"] == definition["BillingMode"]
    # every queue, topic and log group of the stack, the new ones included
    for name, queue in _resources(template, "AWS::SQS::Queue").items():
        assert _lake_key(queue["Properties"]["KmsMasterKeyId"]), name
    for name, topic in _resources(template, "AWS::SNS::Topic").items():
        assert _lake_key(topic["Properties"]["KmsMasterKeyId"]), name
    for name, group in _resources(template, "AWS::Logs::LogGroup").items():
        assert _lake_key(group["Properties"]["KmsKeyId"]), name
        assert group["Properties"]["RetentionInDays"] >= 365, name
        assert group["Properties"]["LogGroupName"].startswith("/banklake/"), name  # key policy
    for name in ("StreamConsumerLogGroup", "ScoringApiLogGroup"):
        assert name in resources


def test_fraud_alerts_go_topic_to_queue_to_dead_letters(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    topic_arn = {"Ref": "FraudAlertTopic"}
    subscriptions = _resources(template, "AWS::SNS::Subscription")
    assert set(subscriptions) == {"FraudAlertQueueSubscription", "FraudAlertEmailSubscription"}
    undelivered = {"Fn::GetAtt": ["FraudAlertDeliveryDeadLetterQueue", "Arn"]}
    for subscription in subscriptions.values():
        properties = subscription["Properties"]
        assert properties["TopicArn"] == topic_arn
        assert properties["RedrivePolicy"] == {"deadLetterTargetArn": undelivered}
    queue_subscription = subscriptions["FraudAlertQueueSubscription"]["Properties"]
    assert queue_subscription["Protocol"] == "sqs"
    assert queue_subscription["Endpoint"] == {"Fn::GetAtt": ["FraudAlertQueue", "Arn"]}
    assert queue_subscription["RawMessageDelivery"] is True
    email = subscriptions["FraudAlertEmailSubscription"]
    assert email["Condition"] == "HasFraudAlertEmail"
    assert email["Properties"]["Endpoint"] == {"Ref": "FraudAlertEmail"}
    redrive = resources["FraudAlertQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["FraudAlertDeadLetterQueue", "Arn"]}
    assert 1 <= redrive["maxReceiveCount"] <= 10
    # the queue and the undelivered queue accept the topic only, over TLS only
    policy = resources["FraudAlertQueuePolicy"]["Properties"]
    assert policy["Queues"] == [
        {"Ref": "FraudAlertQueue"},
        {"Ref": "FraudAlertDeliveryDeadLetterQueue"},
    ]
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    (allow,) = allows
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": topic_arn}}
    denies = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    # SNS may use the lake key for the encrypted queues, from this account only
    key = resources["LakeKey"]["Properties"]["KeyPolicy"]["Statement"]
    sns = next(s for s in key if s["Principal"] == {"Service": "sns.amazonaws.com"})
    assert set(sns["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert sns["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    # the ops topic is not the fraud topic: pipeline alarms stay on AlertTopic
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    assert all(topic_arn not in a["Properties"].get("AlarmActions", []) for a in alarms.values())


def test_no_role_grants_a_wildcard_action(template: dict[str, Any]) -> None:
    for name in _resources(template, "AWS::IAM::Role"):
        for statement in _role_statements(template, name):
            for action in _listify(statement["Action"]):
                assert "*" not in action, f"{name}: {action}"


def test_the_real_time_roles_are_least_privilege(template: dict[str, Any]) -> None:
    lake_objects = "${LakeBucket.Arn}/"
    allowed_s3 = {
        "StreamConsumerRole": {
            "s3:PutObject": CONSUMER_WRITES,
            "s3:AbortMultipartUpload": CONSUMER_WRITES,
            "s3:GetObject": {"models/fraud_xgb/*", f"{STREAM_DIR}*"},
        },
        "ScoringApiTaskRole": {"s3:GetObject": {"models/fraud_xgb/*"}},
        "ScoringApiExecutionRole": {},
    }
    for name in REALTIME_ROLES:
        role = template["Resources"][name]
        assert role["Condition"] in {"HasStreamConsumer", "DeployScoringApi"}
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Action"] == "sts:AssumeRole"
        if name.startswith("ScoringApi"):  # ECS documents aws:SourceAccount for its roles
            assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
            assert trust["Condition"] == {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
            }
        else:
            assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        granted: dict[str, set[str]] = {}
        for statement in _role_statements(template, name):
            assert statement["Effect"] == "Allow"
            actions = _listify(statement["Action"])
            resources = _listify(statement["Resource"])
            if "*" in resources:
                assert set(actions) <= STAR_ONLY_ACTIONS, f"{name}: {actions} on *"
                continue
            for action in actions:
                service = action.split(":")[0]
                for resource in resources:
                    if service == "s3" and action != "s3:ListBucket":
                        assert resource["Fn::Sub"].startswith(lake_objects), (name, resource)
                        granted.setdefault(action, set()).add(
                            resource["Fn::Sub"].removeprefix(lake_objects)
                        )
                    elif service == "s3":
                        assert resource == {"Fn::GetAtt": ["LakeBucket", "Arn"]}
                        assert statement["Condition"]["StringLike"]["s3:prefix"]
                    elif service == "dynamodb":  # which actions: the test below
                        assert resource == {"Fn::GetAtt": ["OnlineStateTable", "Arn"]}
                    elif service == "sns":
                        assert (action, resource) == ("sns:Publish", {"Ref": "FraudAlertTopic"})
                    elif service == "kinesis":
                        assert resource == {"Fn::GetAtt": ["TransactionStream", "Arn"]}
                        assert action.split(":")[1].startswith(("Describe", "Get", "List"))
                    elif service == "kms":
                        assert _lake_key(resource) and action in {
                            "kms:Decrypt",
                            "kms:GenerateDataKey",
                        }
                    elif service == "logs":
                        assert resource["Fn::GetAtt"][0].endswith("LogGroup"), (name, resource)
                    elif service == "sqs":
                        assert resource == {"Fn::GetAtt": ["StreamConsumerDeadLetterQueue", "Arn"]}
                    elif service == "ecr":
                        assert resource["Fn::Sub"].endswith(":repository/${NamePrefix}-*")
                    else:
                        raise AssertionError(f"{name}: unexpected {action}")
        assert granted == allowed_s3[name], name


def test_the_scoring_api_is_optional_internal_and_https_only(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    api_types = ("AWS::ECS::", "AWS::ElasticLoadBalancingV2::", "AWS::EC2::")
    api = {n: r for n, r in resources.items() if r["Type"].startswith(api_types)}
    assert set(api) == {
        "ScoringApiCluster",
        "ScoringApiTaskDefinition",
        "ScoringApiService",
        "ScoringApiLoadBalancer",
        "ScoringApiTargetGroup",
        "ScoringApiHttpsListener",
        "ScoringApiLoadBalancerSecurityGroup",
        "ScoringApiTaskSecurityGroup",
        "ScoringApiLoadBalancerToTasks",
        "ScoringApiTasksFromLoadBalancer",
    }
    everything = {
        *api,
        "ScoringApiLogGroup",
        "ScoringApiExecutionRole",
        "ScoringApiTaskRole",
        "ScoringApiAccessLogsBucket",
        "ScoringApiAccessLogsBucketPolicy",
    }
    for name in everything:
        assert resources[name]["Condition"] == "DeployScoringApi", name
    assert template["Parameters"]["DeployScoringApi"]["Default"] == "false"
    balancer = resources["ScoringApiLoadBalancer"]["Properties"]
    assert balancer["Scheme"] == "internal"
    attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"] == {"Ref": "ScoringApiAccessLogsBucket"}
    # ELB delivers access logs only to SSE-S3 buckets; the region's ELB account writes them
    logs = resources["ScoringApiAccessLogsBucket"]["Properties"]
    (encryption,) = logs["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    writes = resources["ScoringApiAccessLogsBucketPolicy"]["Properties"]["PolicyDocument"]
    (elb,) = [s for s in writes["Statement"] if s["Effect"] == "Allow"]
    assert elb["Action"] == "s3:PutObject"
    assert elb["Resource"] == {
        "Fn::Sub": "${ScoringApiAccessLogsBucket.Arn}/AWSLogs/${AWS::AccountId}/*"
    }
    regions = set(template["Mappings"]["ElbLogDeliveryAccount"])
    (region_rule,) = [
        a["Assert"]["Fn::Contains"]
        for a in template["Rules"]["ScoringApiNeedsItsNetworkCertificateAndImage"]["Assertions"]
        if "Fn::Contains" in a["Assert"]
    ]
    assert set(region_rule[0]) == regions and region_rule[1] == {"Ref": "AWS::Region"}
    (listener,) = _resources(template, "AWS::ElasticLoadBalancingV2::Listener").values()
    listener = listener["Properties"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTPS", 443)
    assert listener["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    assert listener["Certificates"] == [{"CertificateArn": {"Ref": "ScoringApiCertificateArn"}}]
    # the health check is the service's readiness (champion loaded, state warmed)
    target = resources["ScoringApiTargetGroup"]["Properties"]
    assert target["HealthCheckPath"] == "/v1/ready"
    from python_jobs.serve import app

    assert '@app.get("/v1/ready")' in Path(app.__file__).read_text()
    service = resources["ScoringApiService"]["Properties"]
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert network["Subnets"] == balancer["Subnets"] == {"Ref": "ScoringApiSubnetIds"}
    # security groups: callers -> 443 on the balancer -> 8000 on the tasks, nothing else in
    (ingress,) = resources["ScoringApiLoadBalancerSecurityGroup"]["Properties"][
        "SecurityGroupIngress"
    ]
    assert (ingress["FromPort"], ingress["ToPort"], ingress["CidrIp"]) == (
        443,
        443,
        {"Ref": "ScoringApiClientCidr"},
    )
    assert "SecurityGroupIngress" not in resources["ScoringApiTaskSecurityGroup"]["Properties"]
    into_tasks = resources["ScoringApiTasksFromLoadBalancer"]["Properties"]
    assert into_tasks["SourceSecurityGroupId"] == {"Ref": "ScoringApiLoadBalancerSecurityGroup"}
    assert (into_tasks["FromPort"], into_tasks["ToPort"]) == (8000, 8000)
    cidr = template["Parameters"]["ScoringApiClientCidr"]["AllowedPattern"]
    assert re.fullmatch(cidr, "10.0.0.0/8") and not re.fullmatch(cidr, "0.0.0.0/0")
    # deploying it without a network, certificate or image is refused at deploy time
    rule = template["Rules"]["ScoringApiNeedsItsNetworkCertificateAndImage"]
    asserted = str(rule["Assertions"])
    for parameter in ("ScoringApiVpcId", "ScoringApiSubnetIds", "ScoringApiCertificateArn"):
        assert parameter in asserted
    assert "ScoringApiImageUri" in asserted


def test_the_real_time_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["TransactionStreamName"]["Value"] == {"Ref": "TransactionStream"}
    assert outputs["OnlineStateTableName"]["Value"] == {"Ref": "OnlineStateTable"}
    assert outputs["FraudAlertTopicArn"]["Value"] == {"Ref": "FraudAlertTopic"}
    assert outputs["FraudAlertQueueUrl"]["Value"] == {"Ref": "FraudAlertQueue"}
    dns = outputs["ScoringApiDnsName"]
    assert dns["Condition"] == "DeployScoringApi"
    assert dns["Value"] == {"Fn::GetAtt": ["ScoringApiLoadBalancer", "DNSName"]}


def test_every_dead_letter_queue_alarms_the_operators(template: dict[str, Any]) -> None:
    """A queue that is only ever written when something failed is watched; the fraud-alert
    queue itself (the case tooling's inbox) is not a dead-letter queue."""
    resources = template["Resources"]
    queues = set(_resources(template, "AWS::SQS::Queue"))
    redrive_targets = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in _resources(template, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    }
    watched = {}
    for name, alarm in _resources(template, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        if properties["Namespace"] != "AWS/SQS":
            continue
        (dimension,) = properties["Dimensions"]
        queue = dimension["Value"]["Fn::GetAtt"][0]
        assert properties["AlarmActions"] == [{"Ref": "AlertTopic"}], name
        assert properties["Threshold"] == 0, name
        watched[queue] = name
    assert set(watched) == queues - {"FraudAlertQueue"}
    assert "FraudAlertDeadLetterQueue" in redrive_targets
    behind = resources["StreamConsumerIteratorAgeAlarm"]
    assert behind["Condition"] == "HasStreamConsumer"
    assert behind["Properties"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "StreamConsumerFunction"}}
    ]


def _dynamodb_actions_called() -> set[str]:
    """The DynamoDB actions DynamoDBState and its generations (the pointer, the load) call,
    from their source (create_table and its waiter and TTL call are the tests' set-up: the
    stack creates the table)."""
    source = "".join(
        Path(str(module.__file__)).read_text() for module in (dynamodb_state, dynamodb_generations)
    )
    calls = set(re.findall(r"client\.([a-z_]+)\(", source))
    calls -= {"create_table", "update_time_to_live", "get_waiter"}
    return {"dynamodb:" + "".join(part.title() for part in call.split("_")) for call in calls}


def test_the_state_s_rights_are_what_the_backend_calls(template: dict[str, Any]) -> None:
    called = _dynamodb_actions_called()
    assert {"dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:Scan"} <= called
    by_role = {
        name: {
            action
            for statement in _role_statements(template, name)
            for action in (
                [statement["Action"]]
                if isinstance(statement["Action"], str)
                else statement["Action"]
            )
            if action.startswith("dynamodb:")
        }
        for name in ("StreamConsumerRole", "ScoringApiTaskRole", "DbtRunnerRole")
    }
    # the service loads and prunes the table (Scan), and so does the runner's LoadOnlineState
    # step (`banklake state load`); the consumer only reads and applies
    assert by_role["ScoringApiTaskRole"] == called
    assert by_role["DbtRunnerRole"] == called
    assert by_role["StreamConsumerRole"] == called - {"dynamodb:Scan"}
    consumer = Path("python_jobs/aws/stream_consumer.py").read_text()
    assert [call for call in ("state.prune(", "state.load(", "warm(") if call in consumer] == []
