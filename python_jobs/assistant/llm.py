"""One small interface in front of the language models the assistant can use: what a
provider answers (Completion), what it raises (ProviderError), and the offline provider.

The providers themselves (bedrock.py, openai_compat.py) depend on this module only; choosing
one from the configuration is providers.py's job, so nothing here imports a provider.

`offline` is the default and has no model at all: callers check `provider.offline` and take
their template / intent path instead of calling `complete`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
