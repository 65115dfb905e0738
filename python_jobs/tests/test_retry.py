"""python_jobs/retry.py: the one backoff, retry loop and polling loop of every remote client
(Bedrock, OpenAI-compatible endpoints, Athena). No waiting: sleep and clock are injected."""

from __future__ import annotations

from itertools import islice

import pytest

from python_jobs.retry import Backoff, Polling, PollTimeout, RetryPolicy, poll, retry_call
from python_jobs.tests.test_athena import FakeClock  # sleep() advances it: no waiting


class Flaky:
    """Raises the given errors in turn, then answers."""

    def __init__(self, *errors: Exception, answer: str = "ok") -> None:
        self.errors = list(errors)
        self.answer = answer
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


def always(error: Exception, delay: float) -> float:
    return delay


def test_backoff_doubles_then_caps_and_never_overflows() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, maximum=4.0)
    assert list(islice(backoff.delays(), 6)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 10_000)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert Backoff(initial=0.0, maximum=0.0).delay(3) == 0.0
    with pytest.raises(ValueError, match="from 1"):
        backoff.delay(0)
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_retry_call_waits_the_backoff_between_attempts_then_answers() -> None:
    call = Flaky(RuntimeError("busy"), RuntimeError("busy"))
    sleeps: list[float] = []
    retried: list[tuple[str, int, float]] = []
    answer = retry_call(
        call,
        RetryPolicy(max_attempts=3, initial=0.25),
        wait_for=always,
        on_retry=lambda error, attempt, delay: retried.append((str(error), attempt, delay)),
        sleep=sleeps.append,
    )
    assert (answer, call.calls) == ("ok", 3)
    assert sleeps == [0.25, 0.5]
    assert retried == [("busy", 1, 0.25), ("busy", 2, 0.5)]


def test_retry_call_raises_the_last_error_unchanged_after_max_attempts() -> None:
    last = RuntimeError("third")
    call = Flaky(RuntimeError("first"), RuntimeError("second"), last)
    sleeps: list[float] = []
    with pytest.raises(RuntimeError) as raised:
        retry_call(call, RetryPolicy(max_attempts=3), wait_for=always, sleep=sleeps.append)
    assert raised.value is last and call.calls == 3
    assert sleeps == [1.0, 2.0]  # no wait after the last attempt


def test_a_final_error_is_not_retried() -> None:
    call = Flaky(KeyError("no such thing"))
    sleeps: list[float] = []

    def only_runtime(error: Exception, delay: float) -> float | None:
        return delay if isinstance(error, RuntimeError) else None

    with pytest.raises(KeyError):
        retry_call(call, RetryPolicy(), wait_for=only_runtime, sleep=sleeps.append)
    assert call.calls == 1 and sleeps == []


def test_the_servers_hint_replaces_the_backoff_for_that_wait() -> None:
    call = Flaky(RuntimeError("429"), RuntimeError("503"))
    hints = iter([7.0, None])
    sleeps: list[float] = []

    def hinted(error: Exception, delay: float) -> float:
        hint = next(hints)
        return delay if hint is None else hint

    retry_call(call, RetryPolicy(max_attempts=3), wait_for=hinted, sleep=sleeps.append)
    assert sleeps == [7.0, 2.0]


def test_poll_returns_the_first_answer_with_the_backoffs_waits_in_between() -> None:
    answers = iter([None, None, None, "done"])
    clock = FakeClock()
    polling = Polling(initial=0.5, maximum=1.0, timeout=60)
    assert poll(lambda: next(answers), polling, sleep=clock.sleep, clock=clock) == "done"
    assert clock.sleeps == [0.5, 1.0, 1.0]


def test_poll_times_out_without_a_wait_that_would_end_past_the_timeout() -> None:
    clock = FakeClock()
    checks: list[float] = []

    def never() -> None:
        checks.append(clock.now)

    with pytest.raises(PollTimeout, match="still waiting") as raised:
        poll(never, Polling(initial=1.0, maximum=1.0, timeout=2.5), sleep=clock.sleep, clock=clock)
    assert checks == [0.0, 1.0, 2.0] and clock.sleeps == [1.0, 1.0]
    assert raised.value.timeout == 2.5


def test_poll_stops_when_the_check_raises() -> None:
    def failed() -> None:
        raise RuntimeError("job failed")

    clock = FakeClock()
    with pytest.raises(RuntimeError, match="job failed"):
        poll(failed, Polling(), sleep=clock.sleep, clock=clock)
    assert clock.sleeps == []
