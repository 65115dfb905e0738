"""Which language model the assistant uses: the provider named on the command line, else
$BANKLAKE_ASSISTANT_PROVIDER, else offline (no model). The interface every provider
implements is llm.py's; each provider reads its own configuration from the environment
(docs/assistant.md)."""

from __future__ import annotations

import os

from python_jobs.assistant.bedrock import BedrockConfig, BedrockProvider
from python_jobs.assistant.llm import OfflineProvider, Provider
from python_jobs.assistant.openai_compat import OpenAICompatConfig, OpenAICompatProvider

PROVIDER_ENV = "BANKLAKE_ASSISTANT_PROVIDER"
PROVIDERS = ("offline", "bedrock", "openai")


def provider_name(requested: str | None = None) -> str:
    name = (requested or os.environ.get(PROVIDER_ENV) or "offline").strip().lower()
    if name not in PROVIDERS:
        raise ValueError(
            f"unknown assistant provider {name!r}; choose one of {', '.join(PROVIDERS)}"
        )
    return name


def make_provider(requested: str | None = None) -> Provider:
    """The provider named by the argument, else $BANKLAKE_ASSISTANT_PROVIDER, else offline.

    Configuration comes from the environment (docs/assistant.md); a missing
    variable is a ProviderError naming every one that is missing."""
    name = provider_name(requested)
    if name == "offline":
        return OfflineProvider()
    if name == "bedrock":
        return BedrockProvider(BedrockConfig.from_env())
    return OpenAICompatProvider(OpenAICompatConfig.from_env())
