"""Facts about the machine a run measured: without them, a timing means nothing."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

_VERSIONED = ("duckdb", "dbt-core", "dbt-duckdb", "pandas", "pyarrow", "numpy", "xgboost-cpu")


@dataclass(frozen=True)
class MachineFacts:
    cpu_model: str
    cores: int  # logical CPUs in the machine
    usable_cores: int  # logical CPUs this process may run on (affinity)
    ram_bytes: int
    swap_bytes: int
    load_average_at_start: tuple[float, float, float]
    platform: str
    python: str
    versions: dict[str, str]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (empty off Linux)."""
    path = Path("/proc/meminfo")
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


def _cpu_model() -> str:
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> MachineFacts:
    memory = meminfo()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return MachineFacts(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 0,
        usable_cores=usable or 0,
        ram_bytes=memory.get("MemTotal", 0),
        swap_bytes=memory.get("SwapTotal", 0),
        load_average_at_start=tuple(round(x, 2) for x in load),  # type: ignore[arg-type]
        platform=platform.platform(),
        python=platform.python_version(),
        versions={name: _version(name) for name in _VERSIONED},
    )
