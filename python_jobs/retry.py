"""Waiting on remote services: the one backoff, retry loop and polling loop every client uses
(Bedrock and OpenAI-compatible endpoints retry with `retry_call`, Athena polls its queries
with `poll`).

Delays are deterministic on purpose: tests assert the waits (sleep and clock are injected),
and one CLI user needs no jitter. A server's own hint (HTTP Retry-After) replaces the
backoff's delay for that wait only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# After a failed attempt: (the error, the attempt number from 1, the wait before the next one).
OnRetry = Callable[[Exception, int, float], None]


@dataclass(frozen=True)
class Backoff:
    """Waits of initial, initial * factor, ... seconds, each capped at `maximum`."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 20.0

    def delays(self) -> Iterator[float]:
        """Every wait in turn, without end (multiplied step by step: no overflow however
        long a poll lasts)."""
        delay = min(self.initial, self.maximum)
        while True:
            yield delay
            delay = min(delay * self.factor, self.maximum)

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        for number, delay in enumerate(self.delays(), start=1):
            if number == attempt or delay >= self.maximum:
                return delay
        raise AssertionError("unreachable")  # pragma: no cover - delays() never ends


@dataclass(frozen=True)
class RetryPolicy(Backoff):
    """`max_attempts` calls in all, with the backoff's waits in between."""

    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")


@dataclass(frozen=True)
class Polling(Backoff):
    """Polls with the backoff's waits for at most `timeout` seconds in all."""

    timeout: float = 3600.0


class PollTimeout(TimeoutError):
    """A poll did not see its answer before the timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"still waiting after {timeout:.0f} s")
        self.timeout = timeout


def retry_call(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    wait_for: Callable[[Exception, float], float | None],
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`'s answer, calling it at most policy.max_attempts times.

    After a failed attempt `wait_for(error, backoff_delay)` says how long to wait before the
    next one (the backoff's delay, or the server's own hint), or None when the error is final.
    A final error, and the error of the last attempt, propagate unchanged: the caller says
    what they mean (it knows that a retryable error reaching it came after max_attempts)."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return call()
        except Exception as error:
            if attempt == policy.max_attempts:
                raise
            delay = wait_for(error, policy.delay(attempt))
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(error, attempt, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises


def poll(
    check: Callable[[], T | None],
    polling: Polling,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """The first answer of `check()` that is not None, checking again after each of the
    polling's waits. Raises PollTimeout, without waiting, when the next wait would end past
    the timeout. `check` raises to stop early (a failed job)."""
    deadline = clock() + polling.timeout
    for delay in polling.delays():
        answer = check()
        if answer is not None:
            return answer
        if clock() + delay > deadline:
            raise PollTimeout(polling.timeout)
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - delays() never ends
