"""The service's metrics in Prometheus' text exposition format (GET /metrics).

Counters and a latency histogram kept in process; gauges are read when scraped. No client
library: the format is a few lines of text (https://prometheus.io/docs/instrumenting/exposition_formats/).
The latencies of the current interval are also kept, for the percentiles the service emits
as EMF every interval (python_jobs/observability/jobs.py emit_serve): up to
LATENCY_WINDOW_MAX of them, a uniform sample of the interval beyond that (reservoir).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable

# seconds; the service's targets are a few milliseconds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# latencies kept per interval: two minutes at 1,500 a second, about 1.5 MB of floats
LATENCY_WINDOW_MAX = 180_000


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, Counter[tuple[tuple[str, str], ...]]] = {}
        self._help: dict[str, str] = {}
        self._buckets = [0] * len(LATENCY_BUCKETS)
        self._latency_sum = 0.0
        self._latency_count = 0
        self._window: list[float] = []
        self._window_seen = 0
        self._sampler = random.Random(0)
        self._gauges: dict[
            str, tuple[str, dict[tuple[tuple[str, str], ...], Callable[[], float]]]
        ] = {}

    def count(self, name: str, help_text: str, n: int = 1, **labels: str) -> None:
        with self._lock:
            self._help.setdefault(name, help_text)
            self._counters.setdefault(name, Counter())[tuple(sorted(labels.items()))] += n

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1
            self._latency_sum += seconds
            self._latency_count += 1
            self._window_seen += 1
            if len(self._window) < LATENCY_WINDOW_MAX:
                self._window.append(seconds)
            else:  # reservoir sampling: each latency of the interval kept with equal chance
                slot = self._sampler.randrange(self._window_seen)
                if slot < LATENCY_WINDOW_MAX:
                    self._window[slot] = seconds

    def take_latencies(self) -> tuple[list[float], int]:
        """The interval's latencies (a sample when more than LATENCY_WINDOW_MAX) and how many
        requests it answered; starts the next interval."""
        with self._lock:
            window, seen = self._window, self._window_seen
            self._window, self._window_seen = [], 0
        return window, seen

    def totals(self, name: str) -> dict[tuple[tuple[str, str], ...], int]:
        """A counter's values by label set, now."""
        with self._lock:
            return dict(self._counters.get(name, Counter()))

    def gauge(self, name: str, help_text: str, read: Callable[[], float], **labels: str) -> None:
        """A value read when scraped; one name may have several label sets."""
        _, reads = self._gauges.setdefault(name, (help_text, {}))
        reads[tuple(sorted(labels.items()))] = read

    def value(self, name: str, **labels: str) -> int:
        with self._lock:
            return self._counters.get(name, Counter())[tuple(sorted(labels.items()))]

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, counter in sorted(self._counters.items()):
                lines += [f"# HELP {name} {self._help[name]}", f"# TYPE {name} counter"]
                for labels, n in sorted(counter.items()):
                    lines.append(f"{name}{_labels(dict(labels))} {n}")
            name = "banklake_request_latency_seconds"
            lines += [
                f"# HELP {name} Server-side time to answer a scoring request.",
                f"# TYPE {name} histogram",
            ]
            for bound, n in zip(LATENCY_BUCKETS, self._buckets, strict=True):
                lines.append(f'{name}_bucket{{le="{bound}"}} {n}')
            lines.append(f'{name}_bucket{{le="+Inf"}} {self._latency_count}')
            lines.append(f"{name}_sum {self._latency_sum}")
            lines.append(f"{name}_count {self._latency_count}")
        for name, (help_text, reads) in sorted(self._gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for labels, read in sorted(reads.items()):
                lines.append(f"{name}{_labels(dict(labels))} {read()}")
        return "\n".join(lines) + "\n"
