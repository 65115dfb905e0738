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
    text: str
    # normalized: "end_turn", "max_tokens", "guardrail_intervened", "stop_sequence", ...
    stop_reason: str
    input_tokens: int = 0
    output_tokens: int = 0


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
    """The provider named by the argument, else $BANKLAKE_ASSISTANT_PROVIDER, else offline."""
    name = provider_name(requested)
    if name == "offline":
        return OfflineProvider()
    raise ValueError(f"provider {name!r} is not implemented yet")
