"""boto3 clients, made one way: the profile and region from the environment
(python_jobs/environment.py) and botocore's standard retry mode, which retries throttling,
transient server errors and dropped connections with a backoff of its own. A client that
retries in its own code (Bedrock's) passes its own `config`. AWS_ENDPOINT_URL, when set, is
honoured by boto3 itself (moto in tests). And the code of their errors, what retries and
conditional writes decide by."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # boto3 is imported where a client is made: the CLI starts without it
    from botocore.config import Config

# The services banklake calls. boto3-stubs types client() once per literal service name.
Service = Literal[
    "athena", "bedrock-runtime", "dynamodb", "glue", "kinesis", "s3", "sagemaker", "sns"
]


def aws_client(
    service: Service,
    *,
    region: str | None,
    profile: str | None,
    config: Config | None = None,
) -> Any:
    """A boto3 client for `service` in `region` with `profile` (None: boto3's own chain);
    `config` defaults to botocore's standard retries."""
    import boto3
    from botocore.config import Config

    session = boto3.Session(profile_name=profile, region_name=region)
    return session.client(service, config=config or Config(retries={"mode": "standard"}))


def error_code(error: Any) -> str:
    """The error code of a botocore ClientError ('' if none): what retries and conditional
    writes decide by."""
    return str(error.response.get("Error", {}).get("Code", ""))
