"""One small interface in front of the language models the assistant can use.

`offline` is the default and has no model at all: callers check `provider.offline` and take
their template / intent path instead of calling `complete`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PROMPTS_DIR = Path(__file__).parent / "prompts"
PROVIDER_ENV = "BANKLAKE_ASSISTANT_PROVIDER"
PROVIDERS = ("offline", "bedrock", "openai")


class ProviderError(RuntimeError):
    """The model could not produce a usable answer (throttled out, refused, misconfigured)."""


@dataclass(frozen=True)
class Completion:
    """What a model answered. Callers decide what a stop reason means for them (a report
    falls back to its template, `ask` refuses), so providers return it rather than raise."""

    text: str
    # normalized: "end_turn", "max_tokens", "guardrail_intervened", "stop_sequence", ...
    stop_reason: str
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for throttled or briefly unavailable model endpoints: `max_attempts` calls in
    all, waiting initial, initial * factor, ... seconds (capped at `maximum`) in between.
    Deterministic on purpose: tests assert the waits, and one CLI user needs no jitter."""

    max_attempts: int = 5
    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        return min(self.initial * self.factor ** (attempt - 1), self.maximum)


class Provider(Protocol):
    name: str
    offline: bool

    def complete(
        self, system: str, user: str, *, max_tokens: int = 1024, temperature: float = 0.0
    ) -> Completion: ...


class OfflineProvider:
    """No model: every caller has a deterministic path that needs none."""

    name = "offline"
    offline = True

    def complete(
        self, system: str, user: str, *, max_tokens: int = 1024, temperature: float = 0.0
    ) -> Completion:
        raise ProviderError("the offline provider has no model; use the template/intent path")


def load_prompt(name: str) -> str:
    """Prompts are versioned text files beside this module, never strings in code."""
    path = PROMPTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"prompt {name!r} not found: {path}")
    return path.read_text(encoding="utf-8")


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
        from python_jobs.assistant.bedrock import BedrockConfig, BedrockProvider

        return BedrockProvider(BedrockConfig.from_env())
    from python_jobs.assistant.openai_compat import OpenAICompatConfig, OpenAICompatProvider

    return OpenAICompatProvider(OpenAICompatConfig.from_env())
