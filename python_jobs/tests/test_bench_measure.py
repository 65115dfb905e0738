"""The bench's per-stage measurement: a stage in its own process reports its own memory,
its value, and its failures (an exception, or the process dying) by name."""

from __future__ import annotations

import os
import signal
from functools import partial
from pathlib import Path

import pytest

from python_jobs.bench.measure import StageFailed, Stopwatch

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
