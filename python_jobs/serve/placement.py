"""Which cores `banklake serve`'s processes run on (docs/decisions/0027).

The scoring process makes every decision in order on one thread, under one interpreter
lock: the rate the service sustains is that thread's. Measured on two cores, when the HTTP
process, the landing process and the clients could run on any core, the scheduler kept
preempting the scoring process's threads for them, and a preempted thread that holds the
interpreter lock stalls all the others: p99 at 1,500 a second doubled against one process.
Placed, the scoring process has one core to itself and the others share the rest.

Linux only (os.sched_setaffinity); elsewhere, or with one core to run on, nothing is placed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Placement:
    scoring: frozenset[int]  # the scoring process's threads
    others: frozenset[int]  # the HTTP and landing processes'


def plan() -> Placement | None:
    """One of the cores this process may run on for scoring, the rest for the others; None
    where cores cannot be chosen or there is one."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return Placement(frozenset(cpus[:1]), frozenset(cpus[1:]))


def place(pid: int, cpus: frozenset[int]) -> None:
    """Every thread of process `pid` onto `cpus` (threads it starts later inherit them)."""
    tasks = Path(f"/proc/{pid}/task")
    for task in tasks.iterdir() if tasks.exists() else []:
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
