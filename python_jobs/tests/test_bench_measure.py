"""The bench's per-stage measurement: a stage in its own process reports its own memory,
its value, and its failures (an exception, or the process dying) by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from python_jobs.bench.measure import StageFailed, Stopwatch, process_tree
from python_jobs.dbt_runner import PROJECT_DIR

MIB = 2**20


def _allocate(mib: int) -> dict[str, int]:
    block = bytearray(mib * MIB)  # bytearray zero-fills: every page is touched
    return {"rows": len(block) // MIB}


def _fail() -> None:
    raise ValueError("bad row 7 in transactions.parquet")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does


def _watch(tmp_path: Path) -> Stopwatch:
    return Stopwatch(tmp_path, [], say=lambda _: None)


def test_an_isolated_stage_reports_its_own_peak_not_this_process(tmp_path: Path) -> None:
    watch = _watch(tmp_path)
    held_here = bytearray(400 * MIB)  # memory of this process: not the stage's
    value = watch.run("allocate", partial(_allocate, 300), lambda v: v["rows"], isolated=True)
    watch.run("small", partial(_allocate, 1), lambda v: v["rows"], isolated=True)
    assert value == {"rows": 300}
    big, little = watch.stages
    assert big.rows == 300 and big.peak_rss_bytes >= 300 * MIB
    assert little.peak_rss_bytes < big.peak_rss_bytes - 250 * MIB
    assert little.peak_rss_bytes < len(held_here)  # this process's 400 MiB are not counted
    assert big.cpu_seconds > 0  # the child's CPU is counted once it has been waited for


def test_a_stage_that_raises_fails_with_its_name_and_the_error(tmp_path: Path) -> None:
    with pytest.raises(StageFailed, match=r"stage 'load'.*ValueError: bad row 7"):
        _watch(tmp_path).run("load", _fail, lambda _: 0, isolated=True)


def test_a_stage_whose_process_is_killed_says_so(tmp_path: Path) -> None:
    with pytest.raises(StageFailed, match=r"'train'.*exit code -9.*out-of-memory"):
        _watch(tmp_path).run("train", _die, lambda _: 0, isolated=True)


def _start_a_process() -> dict[str, int]:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return {"rows": pool.apply(len, ("abc",))}


def test_an_isolated_stage_may_start_processes_of_its_own(tmp_path: Path) -> None:
    # scoring shares a large day's rows among processes (ml/explain.py)
    value = _watch(tmp_path).run("score", _start_a_process, lambda v: v["rows"], isolated=True)
    assert value == {"rows": 3}


BENCH_SCRIPT = """
import sys, time
from functools import partial
from pathlib import Path
from python_jobs.bench.measure import Stopwatch
Stopwatch(Path(sys.argv[1]), [], say=lambda _: None).run(
    "sleep", partial(time.sleep, 120), lambda _: 0, isolated=True
)
"""


def _running(pid: int) -> bool:
    """The process exists and has not ended (a zombie has ended: nobody may reap it here)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _stage_started(bench: int) -> bool:
    """A process the bench spawned for its stage is running (multiprocessing's spawn_main)."""
    for pid in process_tree(bench)[1:]:
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except FileNotFoundError:
            continue
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_a_stage_ends_when_the_bench_that_started_it_is_killed(tmp_path: Path) -> None:
    bench = subprocess.Popen([sys.executable, "-c", BENCH_SCRIPT, str(tmp_path)], cwd=PROJECT_DIR)
    stage: list[int] = []
    try:
        assert _wait_for(lambda: _stage_started(bench.pid), 60)
        stage += process_tree(bench.pid)[1:]  # the stage, and any helper the bench started
        assert all(_running(pid) for pid in stage)
        bench.kill()  # kill -9: the bench cannot clean up after itself
        bench.wait()
        assert _wait_for(lambda: not any(_running(pid) for pid in stage), 10), stage
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for pid in stage:  # a failed run leaves nothing behind either
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
