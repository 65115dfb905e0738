"""What the build has published: the curated marts as Parquet, switched into place atomically.

Readers (the assistant, `banklake report`, the dashboard) never open `banklake.duckdb`: while dbt
writes it, DuckDB refuses every other process, even read-only. They read the last export
instead (docs/decisions/0013-readers-read-the-published-export.md):

    <lake>/_published/<version>/<mart>/...parquet     one folder per export, never changed
    <lake>/_published/<version>/_manifest.json        what it holds: marts, columns, rows
    <lake>/curated -> _published/<version>            the pointer: a relative symlink

An export writes a new version folder, then replaces the `curated` symlink with one rename(2),
which is atomic: a reader resolves the pointer once and sees either the previous export
whole or the new one whole, never a mix or a half-written mart. Older versions are kept for a
while (`KEEP_VERSIONS`) so that a reader that resolved the pointer just before a switch can
finish its queries; then they are deleted.

`lake/curated/<mart>/` stays the path downstream tools read (through the symlink).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_jobs.lake.layout import Lake

PUBLISHED_DIR = "_published"
MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1
# the current export and the two before it: a reader that resolved an older pointer has at
# least two whole exports' time to finish
KEEP_VERSIONS = 3


class NothingPublished(FileNotFoundError):
    """No export has been published in this lake yet."""


@dataclass(frozen=True)
class PublishedMart:
    name: str
    rows: int
    columns: list[tuple[str, str]]  # (name, DuckDB type) in the mart's own order
    partitioned_by: str | None
    files: list[str]  # the mart's Parquet files, relative to the version folder

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": [list(column) for column in self.columns],
            "partitioned_by": self.partitioned_by,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> PublishedMart:
        return cls(
            name,
            int(data["rows"]),
            [(str(c), str(t)) for c, t in data["columns"]],
            data.get("partitioned_by"),
            [str(f) for f in data["files"]],
        )


@dataclass(frozen=True)
class PublishedVersion:
    """One export, as a reader sees it: its folder and its manifest."""

    version: str
    folder: Path
    published_at: datetime
    marts: dict[str, PublishedMart]

    def mart_files(self, name: str) -> list[str]:
        """The mart's Parquet files, absolute: exactly those the export wrote (manifest)."""
        return [str(self.folder / relative) for relative in self.marts[name].files]

    def all_files(self) -> list[str]:
        return [path for name in self.marts for path in self.mart_files(name)]


def published_root(lake: Lake) -> Path:
    return lake.root / PUBLISHED_DIR


def new_version_folder(lake: Lake, now: datetime | None = None) -> Path:
    """A fresh, empty folder for the next export (the version name sorts by time)."""
    now = now or datetime.now(UTC)
    name = f"{now:%Y%m%dT%H%M%S%fZ}-{os.getpid()}"
    folder = published_root(lake) / name
    folder.mkdir(parents=True)
    return folder


def write_manifest(folder: Path, marts: list[PublishedMart], now: datetime | None = None) -> None:
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "published_at": (now or datetime.now(UTC)).isoformat(),
        "marts": {mart.name: mart.to_dict() for mart in marts},
    }
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    tmp.rename(folder / MANIFEST)


def switch_to(lake: Lake, folder: Path) -> None:
    """Points `lake/curated` at `folder` in one rename, then prunes old versions.

    A lake exported before versions existed has `curated/` as a real folder: it is moved
    under `_published/` first (the only moment `curated` is briefly missing, once)."""
    if not (folder / MANIFEST).is_file():
        raise RuntimeError(f"{folder} has no {MANIFEST}: not a finished export")
    pointer = lake.curated
    legacy = None
    if pointer.exists() and not pointer.is_symlink():
        legacy = lake.root / f".curated-legacy-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        pointer.rename(legacy)
    link = lake.root / f".curated-{folder.name}.link"
    link.unlink(missing_ok=True)
    link.symlink_to(Path(PUBLISHED_DIR) / folder.name, target_is_directory=True)
    os.replace(link, pointer)
    if legacy is not None:
        shutil.rmtree(legacy, ignore_errors=True)
    prune(lake)


def prune(lake: Lake, keep: int = KEEP_VERSIONS) -> list[Path]:
    """Deletes all but the newest `keep` versions (never the current one), and unfinished
    exports left by a crash (no manifest) that are older than the current version."""
    current = _current_folder(lake)
    folders = sorted(p for p in published_root(lake).iterdir() if p.is_dir())
    finished = [p for p in folders if (p / MANIFEST).is_file()]
    kept = set(finished[-keep:]) | ({current} if current else set())
    removed = []
    for folder in folders:
        unfinished_and_old = (
            not (folder / MANIFEST).is_file() and current is not None and folder.name < current.name
        )
        if folder not in kept and (folder in finished or unfinished_and_old):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _current_folder(lake: Lake) -> Path | None:
    pointer = lake.curated
    if not pointer.is_symlink():
        return None
    return published_root(lake) / Path(os.readlink(pointer)).name


def current(lake: Lake) -> PublishedVersion:
    """The version `lake/curated` points at now, resolved once: keep using the returned
    folder, not the pointer, so that a switch in between cannot mix two exports."""
    folder = _current_folder(lake)
    if folder is None:
        hint = (
            " (lake/curated is a folder from before versioned exports: run `banklake export` once)"
            if lake.curated.is_dir()
            else ""
        )
        raise NothingPublished(
            f"nothing published in {lake.root}: run `banklake export` (or `banklake build`, "
            f"`banklake run`, `make demo`) first{hint}"
        )
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return PublishedVersion(
        version=folder.name,
        folder=folder,
        published_at=datetime.fromisoformat(manifest["published_at"]),
        marts={
            name: PublishedMart.from_dict(name, data) for name, data in manifest["marts"].items()
        },
    )


def current_version_name(lake: Lake) -> str | None:
    """The name of the version the pointer names now (cheap: one readlink), else None."""
    folder = _current_folder(lake)
    return folder.name if folder is not None else None
