"""Publishing the champion (`banklake ingest --model`).

`--model` (ingest_model) publishes the champion in an order that never leaves the pointer
naming a missing or broken model:

1. the local champion is loaded and verified with ml/artifacts.py's own checks (model.json's
   SHA-256 against metadata.json, the feature list), so a broken model is never published;
2. the remote pointer `<lake root>models/fraud_xgb/champion.json` is read with its ETag. It
   never moves to an older model: the remote champion's metadata.json is read and models are
   ordered by (created_at, version) (created_at is the training time ml/train.py records;
   versions are UTC timestamps, so the version only breaks a tie). A local champion that is
   not newer, or a remote champion whose metadata cannot be read, is refused here, before
   anything is uploaded, unless `force_champion` (a deliberate rollback). A pointer that
   already names the local version is left as it is (its history may differ: same model);
3. every file of the version folder (model.json, forest.json and metadata.json, which the
   scorer needs, plus the model card and any plots, which let a reader of the bucket see
   what scores) goes up under `<lake root>models/fraud_xgb/<version>/`, immutable. A version
   copied by hand (no SHA-256 recorded) is downloaded and hashed, so identical files are
   skipped rather than refused;
4. the model files and metadata.json are downloaded back and verified by the same
   ml.artifacts.load_directory the scorer runs, and metadata.json's model SHA-256 must be the
   local one;
5. only then the pointer (the local file's bytes) is written: created with
   `If-None-Match: *`, or replaced with `If-Match` on the ETag read in step 2, so a pointer
   someone else moved during the run is not overwritten (the run refuses, naming it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from python_jobs.aws.clients import error_code
from python_jobs.aws.s3_location import S3Location
from python_jobs.ingest.local_files import LocalFile, local_file, local_model_files
from python_jobs.ingest.objects import CONDITION_FAILED, GONE, put_conditional, read_json
from python_jobs.ingest.policy import ChampionRegression, IngestConflict
from python_jobs.ingest.report import Conflict, IngestReport, conflict_message
from python_jobs.ingest.transfer import IngestConfig, transfer
from python_jobs.lake.layout import Lake

Say = Callable[[str], None]


def model_order(metadata: Mapping[str, Any]) -> tuple[datetime, str]:
    """How champions are ordered: (created_at, version). created_at is the training time
    ml/train.py records (ISO 8601; naive is read as UTC); versions are sortable UTC
    timestamps, so the version only breaks a tie. Raises ValueError if either is missing."""
    created, version = metadata.get("created_at"), metadata.get("version")
    if not isinstance(created, str) or not isinstance(version, str) or not version:
        raise ValueError("metadata.json lacks created_at or version")
    moment = datetime.fromisoformat(created)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC), version)


def ingest_model(
    lake: Lake,
    destination: S3Location,
    *,
    s3: Any,
    config: IngestConfig | None = None,
    dry_run: bool = False,
    force_champion: bool = False,
    say: Say = print,
) -> IngestReport:
    """Publishes the local champion: its version folder (immutable), verified on S3 with
    ml.artifacts.load_directory, then the pointer champion.json (replaceable, If-Match, never
    to an older model unless `force_champion`). See the module docstring for the order."""
    from ml.artifacts import load_champion
    from ml.layout import MlLayout

    layout = MlLayout(lake)
    model = load_champion(layout)  # NoChampionError, ModelIntegrityError: nothing published
    prefix = destination.key(lake.relative(layout.version_dir(model.version))) + "/"
    files = local_model_files(lake, destination, model.version)
    pointer = local_file(lake, destination, layout.champion_file)
    report = IngestReport(destination=destination, prefix=prefix, kind="model", dry_run=dry_run)
    say(
        f"ingest champion {model.version} ({layout.version_dir(model.version)}) -> "
        f"{destination.url(prefix)}: {len(files)} model files, then "
        f"{destination.url(pointer.key)}"
    )
    # the pointer is read (and an older model refused) before anything is uploaded; its ETag
    # then guards the whole run: a pointer moved meanwhile by someone else is not overwritten
    move = _plan_pointer(s3, destination, pointer, model.metadata, force_champion)
    transfer(s3, files, report, config or IngestConfig(), say)
    if not dry_run:
        _verify_remote_model(s3, destination, prefix, model.metadata)
        say(f"  verified {destination.url(prefix)}: model.json matches metadata.json's SHA-256")
    report.pointer = _write_pointer(s3, destination, move, dry_run, say)
    say(report.summary())
    return report


def _verify_remote_model(
    s3: Any, dest: S3Location, prefix: str, local_metadata: Mapping[str, Any]
) -> None:
    """Downloads the version's model files and metadata.json and loads them with the scorer's
    own checks (ml.artifacts.load_directory: model.json's SHA-256 against metadata.json, the
    feature list, the booster loads); metadata.json must record the local model's SHA-256.
    Raises ModelIntegrityError naming the S3 folder."""
    from ml.artifacts import METADATA_FILE, ModelIntegrityError, load_directory, model_files

    url = dest.url(prefix)
    with tempfile.TemporaryDirectory(prefix="banklake-verify-model-") as work:
        folder = Path(work) / "model"
        folder.mkdir()
        # metadata.json first: it names the model files (model.json, forest.json)
        for name in (METADATA_FILE, *model_files(dict(local_metadata))):
            body = s3.get_object(Bucket=dest.bucket, Key=prefix + name)["Body"].read()
            (folder / name).write_bytes(body)
        try:
            remote = load_directory(folder)
        except ModelIntegrityError as error:
            raise ModelIntegrityError(
                f"the model uploaded to {url} fails the scorer's checks, so the champion "
                f"pointer was not moved: {error}"
            ) from None
    if remote.metadata.get("model_sha256") != local_metadata.get("model_sha256"):
        raise ModelIntegrityError(
            f"{url}{METADATA_FILE} records model SHA-256 {remote.metadata.get('model_sha256')}, "
            f"the local champion {local_metadata.get('model_sha256')}: the champion pointer "
            "was not moved"
        )


@dataclass(frozen=True)
class _PointerMove:
    """What to do with champion.json: `etag` is the one read before anything was uploaded
    (None: there is no pointer yet); `before` the version it named ('' if none)."""

    file: LocalFile
    version: str
    etag: str | None
    before: str
    unchanged: bool


def _plan_pointer(
    s3: Any, dest: S3Location, pointer: LocalFile, local_metadata: Mapping[str, Any], force: bool
) -> _PointerMove:
    """Reads the remote pointer; raises ChampionRegression if it names a model at least as
    new as the local champion (unless `force`)."""
    version = str(local_metadata["version"])
    remote, etag = read_json(s3, dest.bucket, pointer.key)
    if etag is None:
        return _PointerMove(pointer, version, None, "", unchanged=False)
    before = remote.get("version") if isinstance(remote, dict) else None
    if before == version:
        return _PointerMove(pointer, version, etag, version, unchanged=True)
    _refuse_an_older_champion(s3, dest, pointer.key, before, local_metadata, force)
    return _PointerMove(pointer, version, etag, str(before), unchanged=False)


def _write_pointer(s3: Any, dest: S3Location, move: _PointerMove, dry_run: bool, say: Say) -> str:
    """Creates (If-None-Match: *) or moves (If-Match on the ETag read first) champion.json,
    the local file's bytes; returns what it did."""
    url = dest.url(move.file.key)
    if move.unchanged:
        say(f"  champion pointer {url} already names {move.version}: left as it is")
        return f"already {move.version}"
    verb = "create" if move.etag is None else "move"
    verb = f"would {verb}" if dry_run else f"{verb}d"
    action = f"{verb} {move.before or '(none)'} -> {move.version}"
    if not dry_run:
        try:
            put_conditional(s3, dest.bucket, move.file, if_match=move.etag)
        except ClientError as error:
            if error_code(error) not in CONDITION_FAILED | GONE:
                raise
            report = IngestReport(destination=dest, prefix=move.file.key, kind="champion")
            report.conflicts.append(
                Conflict(move.file, f"changed since this run read it ({error_code(error)})")
            )
            raise IngestConflict(conflict_message(report)) from None
    say(f"  champion pointer {url}: {action}")
    return action


def _refuse_an_older_champion(
    s3: Any,
    dest: S3Location,
    pointer_key: str,
    remote_version: Any,
    local_metadata: Mapping[str, Any],
    force: bool,
) -> None:
    """Raises ChampionRegression unless the local champion is newer than the one the remote
    pointer names (model_order), or `force`."""
    url = dest.url(pointer_key)
    local = model_order(local_metadata)
    why = ""
    if not isinstance(remote_version, str) or not remote_version or "/" in remote_version:
        why = f"{url} does not name a version ({remote_version!r})"
    else:
        folder = pointer_key.rsplit("/", 1)[0] + f"/{remote_version}/"
        metadata, _ = read_json(s3, dest.bucket, folder + "metadata.json")
        try:
            remote = model_order(metadata if isinstance(metadata, dict) else {})
        except ValueError as error:
            why = (
                f"{url} names {remote_version}, whose {dest.url(folder)}metadata.json cannot "
                f"be read ({'missing' if metadata is None else error}): its age is unknown"
            )
        else:
            if remote >= local:
                why = (
                    f"{url} names {remote_version} (created {remote[0].isoformat()}), which is "
                    f"not older than the local champion {local[1]} (created "
                    f"{local[0].isoformat()})"
                )
    if why and not force:
        raise ChampionRegression(
            f"refusing to move the champion pointer: {why}. Champions are ordered by "
            "(created_at, version) from metadata.json. If going back is deliberate (a "
            "rollback), run again with --force-champion."
        )
