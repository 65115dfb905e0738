"""Which cores `banklake serve`'s processes run on (placement.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from python_jobs.serve import placement
from python_jobs.serve.placement import Placement, place, plan

THREADED_CHILD = (
    "import threading, time\n"
    "for _ in range(3):\n"
    "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    "print('started', flush=True)\n"
    "time.sleep(60)\n"
)


def test_scoring_gets_one_core_and_the_others_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement.os, "sched_getaffinity", lambda pid: {3, 1, 2, 0})
    assert plan() == Placement(frozenset({0}), frozenset({1, 2, 3}))
    monkeypatch.setattr(placement.os, "sched_getaffinity", lambda pid: {5})
    assert plan() is None  # one core: nothing to place


def test_every_thread_of_a_process_is_placed() -> None:
    core = max(os.sched_getaffinity(0))
    child = subprocess.Popen([sys.executable, "-c", THREADED_CHILD], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"started\n"
        tasks = sorted(int(task.name) for task in Path(f"/proc/{child.pid}/task").iterdir())
        assert len(tasks) == 4
        place(child.pid, frozenset({core}))
        assert all(os.sched_getaffinity(task) == {core} for task in tasks)
    finally:
        child.kill()
        child.wait()
