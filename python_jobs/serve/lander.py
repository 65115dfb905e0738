"""Landing the service's micro-batches in a process of its own.

A landing builds Arrow tables from a thousand records, writes Parquet files and fsyncs them
and their folders: tens of milliseconds, a part of it holding the interpreter lock and the
rest releasing and taking it again around every file operation. In the service's process
each of those hand-offs could make a decision wait (ADR 0020); in a child process the
landing shares nothing with the decisions but the disk.

The protocol is lines on the child's stdin and stdout, JSON only (no pickle):

    parent -> child   {"name": <batch name>, "records": <n>}, then the n records' log lines
                      (exactly what the write-ahead log holds: Record.to_json)
    child -> parent   {"files": [<path>...], "rows": {<feed>: <n>}} or {"error": <text>}

The child lands with the very function the service used in process (`wal.land_records`,
files named after the batch and a function of its records only, so a landing repeated after
a failure or a crash writes the same bytes) and fsyncs every file's folder before it answers.
The write-ahead log keeps the landing's intent and its end as before: the child only writes
files. A child that dies is started again for the next landing; the failed one is retried by
the flusher, and nothing is acknowledged differently: records were durable in the log first.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from python_jobs.lake.durable import fsync_dir
from python_jobs.lake.layout import Lake
from python_jobs.serve import placement


class LandingFailed(RuntimeError):
    """The landing process could not land a batch (it says why, or it died)."""


# A landing of a few thousand records takes well under a second; a child silent this long is
# stuck (a hung disk, a bug): it is killed and the landing retried by the flusher, instead of
# the flusher waiting forever while the log grows.
ANSWER_SECONDS = 300.0


class Lander:
    """The parent's side: one child process, started on first use, one landing at a time."""

    def __init__(
        self,
        lake: Lake,
        *,
        answer_seconds: float = ANSWER_SECONDS,
        command: list[str] | None = None,  # the child's command line (tests)
    ) -> None:
        self.lake = lake
        self.answer_seconds = answer_seconds
        self.command = command or [
            sys.executable,
            "-m",
            "python_jobs.serve.lander",
            str(lake.root),
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._cpus: frozenset[int] | None = None  # where the child runs (placement.py)

    def _child(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            if self._cpus is not None:
                placement.place(self._process.pid, self._cpus)
        return self._process

    def place(self, cpus: frozenset[int]) -> None:
        """The child, now and whenever it is started again, on these cores."""
        with self._lock:
            self._cpus = cpus
            if self._process is not None and self._process.poll() is None:
                placement.place(self._process.pid, cpus)

    def land(self, lines: list[str], name: str) -> tuple[list[Path], dict[str, int]]:
        """Lands the records of `lines` (log lines, each ending in a newline) as batch `name`:
        the files written (durable, folders synced) and the rows per feed."""
        request = json.dumps({"name": name, "records": len(lines)}) + "\n" + "".join(lines)
        with self._lock:
            child = self._child()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(request.encode("utf-8"))
                child.stdin.flush()
                ready, _, _ = select.select([child.stdout], [], [], self.answer_seconds)
                if not ready:
                    child.kill()
                    self._stop(child)
                    raise LandingFailed(
                        f"the landing process did not answer within {self.answer_seconds:g} s: "
                        "killed; the batch stays in the log and is landed again"
                    )
                answer = child.stdout.readline()  # the child writes its answer line at once
            except OSError as error:
                self._stop(child)
                raise LandingFailed(f"the landing process failed: {error}") from error
            if not answer:
                code = self._stop(child)
                raise LandingFailed(f"the landing process exited (status {code})")
        reply = json.loads(answer)
        if "error" in reply:
            raise LandingFailed(f"landing batch {name}: {reply['error']}")
        return [Path(p) for p in reply["files"]], {k: int(v) for k, v in reply["rows"].items()}

    def _stop(self, child: subprocess.Popen[bytes]) -> int | None:
        self._process = None
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
        try:
            return child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()

    def close(self) -> None:
        """Ends the child (it exits at the end of its input)."""
        with self._lock:
            if self._process is not None:
                self._stop(self._process)


def serve_landings(lake: Lake, requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child's loop: a request, its records, one answer line; until the input ends."""
    from python_jobs.serve.wal import Record, land_records

    while header := requests.readline():
        request: dict[str, Any] = json.loads(header)
        lines = [requests.readline() for _ in range(int(request["records"]))]
        try:
            batch = [Record.from_json(line.decode("utf-8")) for line in lines]
            landed = land_records(lake, batch, str(request["name"]))
            for path in landed.files:
                fsync_dir(path.parent)
            reply: dict[str, Any] = {
                "files": [str(path) for path in landed.files],
                "rows": landed.rows,
            }
        except Exception as error:  # told to the parent, which retries the landing
            reply = {"error": f"{type(error).__name__}: {error}"}
        answers.write((json.dumps(reply) + "\n").encode("utf-8"))
        answers.flush()


if __name__ == "__main__":
    serve_landings(Lake(Path(sys.argv[1])), sys.stdin.buffer, sys.stdout.buffer)
