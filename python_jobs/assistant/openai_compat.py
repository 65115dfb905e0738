"""Any OpenAI-compatible chat endpoint by base URL: Ollama, vLLM, llama.cpp's server, or a
hosted gateway, for teams that keep the model in their own network.

The standard library is enough (one POST of JSON to `<base URL>/chat/completions`), so
self-hosting adds no dependency. The API key, when the endpoint needs one, is read from the
environment only and never printed.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from python_jobs.assistant.llm import Completion, ProviderError
from python_jobs.environment import environment, parsed, require
from python_jobs.retry import RetryPolicy, retry_call

log = logging.getLogger("banklake.assistant")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 30.0

# OpenAI's finish_reason -> the normalized stop reasons of Completion.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "guardrail_intervened",
    "tool_calls": "tool_use",
}

_MISSING = "the openai provider needs these environment variables:"
_REQUIRED = {
    "BANKLAKE_OPENAI_BASE_URL": "the endpoint's base URL, e.g. http://127.0.0.1:11434/v1 (Ollama)",
    "BANKLAKE_OPENAI_MODEL": "the model name the endpoint serves, e.g. qwen2.5-coder:7b",
}


@dataclass(frozen=True)
class OpenAICompatConfig:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3))

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ProviderError(
                f"BANKLAKE_OPENAI_BASE_URL must be an http(s) URL, got {self.base_url!r}"
            )

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpenAICompatConfig:
        env = environment(env)
        require(env, _REQUIRED, error=ProviderError, heading=_MISSING)
        timeout = parsed(env, "BANKLAKE_OPENAI_TIMEOUT", "120", float, error=ProviderError)
        return cls(
            base_url=env["BANKLAKE_OPENAI_BASE_URL"],
            model=env["BANKLAKE_OPENAI_MODEL"],
            api_key=env.get("BANKLAKE_OPENAI_API_KEY") or None,
            timeout=timeout,
        )


class OpenAICompatProvider:
    """Chat completions over HTTP behind the Provider interface."""

    name = "openai"
    offline = False

    def __init__(
        self, config: OpenAICompatConfig, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.config = config
        self._sleep = sleep

    def payload(
        self, system: str, user: str, *, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": False,
        }

    def complete(
        self, system: str, user: str, *, max_tokens: int = 1024, temperature: float = 0.0
    ) -> Completion:
        body = json.dumps(
            self.payload(system, user, max_tokens=max_tokens, temperature=temperature)
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        retry = self.config.retry

        def post() -> Any:
            request = urllib.request.Request(
                self.config.url, data=body, headers=headers, method="POST"
            )
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                return json.loads(response.read().decode("utf-8"))

        def wait_for(error: Exception, delay: float) -> float | None:
            if isinstance(error, urllib.error.HTTPError) and error.code in RETRYABLE_STATUS:
                return _retry_after(error.headers.get("Retry-After"), delay)
            return None

        def on_retry(error: Exception, attempt: int, delay: float) -> None:
            log.warning(
                "openai-compatible endpoint answered %d (attempt %d of %d); retrying in %.1f s",
                getattr(error, "code", 0),
                attempt,
                retry.max_attempts,
                delay,
            )

        try:
            answer = retry_call(
                post, retry, wait_for=wait_for, on_retry=on_retry, sleep=self._sleep
            )
        except urllib.error.HTTPError as error:
            detail = error.read(500).decode("utf-8", "replace").strip()
            raise ProviderError(
                f"{self.config.url} answered HTTP {error.code}: {detail[:300]}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ProviderError(f"{self.config.url} could not be reached: {reason}") from None
        except json.JSONDecodeError as error:
            raise ProviderError(f"{self.config.url} did not answer JSON: {error}") from None
        return self._completion(answer)

    def _completion(self, answer: Mapping[str, Any]) -> Completion:
        try:
            choice = answer["choices"][0]
            text = choice.get("message", {}).get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError(
                f"{self.config.url} answered without choices[0].message: {str(answer)[:200]}"
            ) from None
        finish = str(choice.get("finish_reason") or "")
        usage = answer.get("usage") or {}
        completion = Completion(
            text=text,
            stop_reason=_STOP_REASONS.get(finish, finish),
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        )
        log.info(
            "openai-compatible model=%s stop=%s input_tokens=%d output_tokens=%d",
            self.config.model,
            completion.stop_reason,
            completion.input_tokens,
            completion.output_tokens,
        )
        return completion


def _retry_after(header: str | None, default: float) -> float:
    """The server's Retry-After in seconds when it gives a number, capped; else ours."""
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER_SECONDS) if header else default
    except ValueError:
        return default
