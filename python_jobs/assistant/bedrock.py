"""Amazon Bedrock through the Converse API (`bedrock-runtime`, `converse`).

One request shape for every model Bedrock serves: the system prompt as a system block, the
user text as one user message, `inferenceConfig` for length and temperature, and the
deployment's guardrail (`guardrailConfig`) when one is configured. Every call logs its token
usage.

Retries are python_jobs/retry.py's, not botocore's (whose retries are switched off on this
client, or the two would multiply): botocore's standard mode does not retry
ModelTimeoutException, and here every retry is logged with its error code and waits the
deterministic, configurable backoff the tests assert ($BANKLAKE_BEDROCK_MAX_ATTEMPTS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from python_jobs.assistant.llm import Completion, ProviderError
from python_jobs.aws.clients import aws_client, error_code
from python_jobs.environment import aws_profile, aws_region, environment, parsed, require
from python_jobs.retry import RetryPolicy, retry_call

log = logging.getLogger("banklake.assistant")

# Worth another try after a wait; anything else (AccessDenied, Validation, ...) is final.
RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "InternalServerException",
    }
)

_MISSING = "the bedrock provider needs these environment variables:"
_REGION_EXAMPLE = "a region with model access"
_REQUIRED = {
    "BANKLAKE_BEDROCK_MODEL_ID": "model id or inference profile (id or ARN), e.g. "
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
}


@dataclass(frozen=True)
class BedrockConfig:
    """Which model, where, and behind which guardrail. From the environment
    (docs/assistant.md); credentials come from boto3's usual chain, never from here."""

    model_id: str
    region: str
    guardrail_id: str | None = None
    guardrail_version: str | None = None
    profile: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if bool(self.guardrail_id) != bool(self.guardrail_version):
            raise ProviderError(
                "set both BANKLAKE_BEDROCK_GUARDRAIL_ID and BANKLAKE_BEDROCK_GUARDRAIL_VERSION "
                "(a numbered version in production, or DRAFT), or neither"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BedrockConfig:
        env = environment(env)
        require(env, _REQUIRED, error=ProviderError, heading=_MISSING, region=_REGION_EXAMPLE)
        attempts = parsed(env, "BANKLAKE_BEDROCK_MAX_ATTEMPTS", "5", int, error=ProviderError)
        return cls(
            model_id=env["BANKLAKE_BEDROCK_MODEL_ID"],
            region=aws_region(env) or "",  # require() refused an environment without one
            guardrail_id=env.get("BANKLAKE_BEDROCK_GUARDRAIL_ID") or None,
            guardrail_version=env.get("BANKLAKE_BEDROCK_GUARDRAIL_VERSION") or None,
            profile=aws_profile(env),
            retry=RetryPolicy(max_attempts=attempts),
        )


def make_client(config: BedrockConfig) -> Any:
    """A bedrock-runtime client with botocore's retries off (this module retries)."""
    from botocore.config import Config

    return aws_client(
        "bedrock-runtime",
        region=config.region,
        profile=config.profile,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120),
    )


class BedrockProvider:
    """The Converse API behind the Provider interface."""

    name = "bedrock"
    offline = False

    def __init__(
        self,
        config: BedrockConfig,
        client: Any | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._client = client
        self._sleep = sleep

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.config)
        return self._client

    def request(
        self, system: str, user: str, *, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        """The Converse request for one system prompt and one user turn."""
        request: dict[str, Any] = {
            "modelId": self.config.model_id,
            "system": [{"text": system}],
            "messages": [{"role": "user", "content": [{"text": user}]}],
            "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
        }
        if self.config.guardrail_id:
            request["guardrailConfig"] = {
                "guardrailIdentifier": self.config.guardrail_id,
                "guardrailVersion": self.config.guardrail_version,
            }
        return request

    def complete(
        self, system: str, user: str, *, max_tokens: int = 1024, temperature: float = 0.0
    ) -> Completion:
        from botocore.exceptions import BotoCoreError, ClientError

        request = self.request(system, user, max_tokens=max_tokens, temperature=temperature)
        retry = self.config.retry

        def wait_for(error: Exception, delay: float) -> float | None:
            retryable = isinstance(error, ClientError) and error_code(error) in RETRYABLE
            return delay if retryable else None

        def on_retry(error: Exception, attempt: int, delay: float) -> None:
            log.warning(
                "bedrock converse %s (attempt %d of %d); retrying in %.1f s",
                error_code(error),
                attempt,
                retry.max_attempts,
                delay,
            )

        try:
            response = retry_call(
                lambda: self.client.converse(**request),
                retry,
                wait_for=wait_for,
                on_retry=on_retry,
                sleep=self._sleep,
            )
        except ClientError as error:
            code = error_code(error)
            message = error.response.get("Error", {}).get("Message", "")
            tries = f" after {retry.max_attempts} attempts" if code in RETRYABLE else ""
            detail = f"{code}: {message}" if message else code or str(error)
            raise ProviderError(f"bedrock converse failed{tries}: {detail}") from error
        except BotoCoreError as error:
            raise ProviderError(f"bedrock converse could not be called: {error}") from error
        return self._completion(response)

    def _completion(self, response: Mapping[str, Any]) -> Completion:
        content = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(block.get("text", "") for block in content)
        usage = response.get("usage", {})
        completion = Completion(
            text=text,
            stop_reason=str(response.get("stopReason", "")),
            input_tokens=int(usage.get("inputTokens", 0)),
            output_tokens=int(usage.get("outputTokens", 0)),
        )
        log.info(
            "bedrock converse model=%s stop=%s input_tokens=%d output_tokens=%d latency_ms=%s",
            self.config.model_id,
            completion.stop_reason,
            completion.input_tokens,
            completion.output_tokens,
            response.get("metrics", {}).get("latencyMs", "?"),
        )
        return completion
