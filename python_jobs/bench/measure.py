"""Per-stage measurements: wall and CPU seconds, peak resident memory of the process tree,
swap, DuckDB spill and bytes written.

A pipeline stage runs in a fresh process of its own (`isolated=True`): memory that an earlier
stage freed but the allocator kept (glibc, Arrow's pool, DuckDB's buffers) would otherwise
count in the next stage's peak. At scale it did: scoring one day in the same process as
training "peaked" at several times what it takes alone. Peak memory is
the larger of two readings: a sampling thread (every 50 ms, the stage's process and its
descendants) and the kernel's own high-water mark (VmHWM) of that process — read by the
child just before it reports, or reset through /proc/self/clear_refs for a stage run here —
which catches a spike shorter than the sampling interval.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_PROC = Path("/proc")


def folder_size(path: Path) -> int:
    """Bytes of every file under `path` (0 when it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except FileNotFoundError:  # a temporary file that went away while walking
                continue
    return total


def _status_kb(pid: int, *keys: str) -> dict[str, int]:
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in keys:
            values[key] = int(rest.split()[0]) * 1024
    return values


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (Linux /proc; just `root` elsewhere)."""
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += _children(pid)
    return tree


def tree_memory(root: int) -> tuple[int, int]:
    """(resident, swapped) bytes summed over the process tree."""
    rss = swap = 0
    for pid in process_tree(root):
        values = _status_kb(pid, "VmRSS", "VmSwap")
        rss += values.get("VmRSS", 0)
        swap += values.get("VmSwap", 0)
    return rss, swap


def _reset_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _io_write_bytes() -> int:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakSampler:
    """Samples the process tree's memory, and the size of the DuckDB spill folders, in a
    background thread until stopped."""

    def __init__(
        self, spill_dirs: Iterable[Path] = (), interval: float = 0.05, root: int | None = None
    ) -> None:
        self.root = root or os.getpid()  # the process whose tree is sampled
        self.spill_dirs = list(spill_dirs)
        self.interval = interval
        self.peak_rss = 0
        self.peak_swap = 0
        self.peak_spill = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._hwm_reset = False

    def __enter__(self) -> PeakSampler:
        self._hwm_reset = self.root == os.getpid() and _reset_high_water_mark()
        self._sample(spill=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(spill=True)
        if self._hwm_reset:
            hwm = _status_kb(os.getpid(), "VmHWM").get("VmHWM", 0)
            self.peak_rss = max(self.peak_rss, hwm)

    def _loop(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):
            tick += 1
            self._sample(spill=tick % 10 == 0)

    def _sample(self, *, spill: bool) -> None:
        rss, swap = tree_memory(self.root)
        self.peak_rss, self.peak_swap = max(self.peak_rss, rss), max(self.peak_swap, swap)
        if spill:
            size = sum(folder_size(d) for d in self.spill_dirs)
            self.peak_spill = max(self.peak_spill, size)


@dataclass
class StageResult:
    """One timed stage. `rows` is what the stage processed (its input, or what it wrote
    when it only writes), which rows_per_second divides by."""

    name: str
    seconds: float
    rows: int
    cpu_seconds: float
    peak_rss_bytes: int
    peak_swap_bytes: int
    spill_bytes: int
    bytes_written: int  # growth of the lake folder
    io_write_bytes: int  # what the process wrote to storage (includes temporary files)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "rows_per_second": round(self.rows_per_second, 1),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_swap_bytes": self.peak_swap_bytes,
            "spill_bytes": self.spill_bytes,
            "bytes_written": self.bytes_written,
            "io_write_bytes": self.io_write_bytes,
            "detail": self.detail,
        }


@dataclass
class Stopwatch:
    """Runs stages against one lake folder and keeps their results in order."""

    lake_root: Path
    spill_dirs: list[Path]
    say: Callable[[str], None]
    stages: list[StageResult] = field(default_factory=list)
    # called after each stage: a run the kernel kills (out of memory) still leaves a record
    after_stage: Callable[[list[StageResult]], object] | None = None  # its result unused

    def run(
        self,
        name: str,
        step: Callable[[], T],
        rows: Callable[[T], int],
        detail: Callable[[T], dict[str, Any]] | None = None,
        *,
        isolated: bool = False,
    ) -> T:
        """Times `step`. isolated: in a fresh process (`step` must then be picklable, a
        module-level function or a functools.partial of one, and return a picklable value)."""
        self.say(f"==> {name}")
        size_before, io_before = folder_size(self.lake_root), _io_write_bytes()
        cpu_before = _cpu_seconds()
        if isolated:
            started = time.perf_counter()
            with (
                ChildStage(name, step) as child,
                PeakSampler(self.spill_dirs, root=child.pid) as sampler,
            ):
                value, child_peak, child_io = child.result()
            seconds = time.perf_counter() - started
            peak_rss, io_written = max(sampler.peak_rss, child_peak), child_io
        else:
            with PeakSampler(self.spill_dirs) as sampler:
                started = time.perf_counter()
                value = step()
                seconds = time.perf_counter() - started
            peak_rss, io_written = sampler.peak_rss, _io_write_bytes() - io_before
        result = StageResult(
            name=name,
            seconds=seconds,
            rows=int(rows(value)),
            cpu_seconds=_cpu_seconds() - cpu_before,
            peak_rss_bytes=peak_rss,
            peak_swap_bytes=sampler.peak_swap,
            spill_bytes=sampler.peak_spill,
            bytes_written=folder_size(self.lake_root) - size_before,
            io_write_bytes=io_written,
            detail=detail(value) if detail else {},
        )
        self.stages.append(result)
        if self.after_stage is not None:
            self.after_stage(self.stages)
        self.say(
            f"    {result.rows:,} rows in {seconds:.1f} s ({result.rows_per_second:,.0f} rows/s, "
            f"peak {result.peak_rss_bytes / 2**30:.2f} GiB)"
        )
        return value


class StageFailed(RuntimeError):
    """A stage's own process raised, or died (the kernel's OOM killer sends SIGKILL)."""


# How often a stage's process looks for the bench that started it (_end_with_parent).
PARENT_POLL_SECONDS = 0.5
ORPHANED_EXIT = 75  # a stage's exit code when it ended because the bench had ended


def _end_with_parent(parent: int) -> None:
    """In a stage's process: end it as soon as the bench that started it is gone, however
    the bench ended (a SIGTERM or a kill -9 of the bench would otherwise leave a dbt build
    or a training running on the cores, unmeasured and unowned). Once the bench is gone the
    process has a new parent; a daemon thread looks for that."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(ORPHANED_EXIT)

    threading.Thread(target=watch, name="bench-parent", daemon=True).start()


def _child_main(step: Callable[[], Any], conn: Any, parent: int) -> None:
    """In the stage's process: run it, then report the value, this process's peak resident
    memory (VmHWM) and the bytes it wrote — or the error, with its traceback."""
    _end_with_parent(parent)
    try:
        value = step()
        peak = _status_kb(os.getpid(), "VmHWM").get("VmHWM", 0)
        conn.send(("ok", value, peak, _io_write_bytes()))
    except BaseException as error:  # reported to the parent, which raises
        conn.send(("error", f"{type(error).__name__}: {error}", traceback.format_exc(), 0))
    finally:
        conn.close()


class ChildStage:
    """One stage in a fresh interpreter ("spawn": nothing inherited from the bench's own
    memory or threads). The interpreter's start and imports (1-2 s) count in the stage."""

    def __init__(self, name: str, step: Callable[[], Any]) -> None:
        self.name = name
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        # not a daemon: a stage may start processes of its own (scoring shares its rows)
        self._process = context.Process(
            target=_child_main, args=(step, send, os.getpid()), name=f"bench-{name}"
        )
        self._process.start()
        send.close()  # the child holds the only sending end: its death ends recv() with EOF
        self.pid = int(self._process.pid or 0)

    def __enter__(self) -> ChildStage:
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._receive.close()

    def result(self) -> tuple[Any, int, int]:
        """(value, peak RSS bytes, bytes written) once the stage's process finishes."""
        try:
            status, value, extra, io = self._receive.recv()
        except EOFError:
            self._process.join()
            code = self._process.exitcode
            why = " (SIGKILL: most likely the kernel's out-of-memory killer)" if code == -9 else ""
            raise StageFailed(
                f"stage {self.name!r}: its process died with exit code {code}{why}"
            ) from None
        self._process.join()
        if status != "ok":
            raise StageFailed(f"stage {self.name!r} failed: {value}\n{extra}")
        return value, int(extra), int(io)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
