"""`banklake ingest --to s3://bucket/raw/`: the local raw partitions, uploaded to the same keys.
`--scores` does the same for the fraud scores (`<lake>/processed/fraud_scores/score_date=*/`),
which go beside raw/ under the lake's root on S3, where `banklake athena register` points the
scores table; `--monitoring` for the model's monitoring reports (`<lake>/monitoring/<day>.json`,
ml/monitor.py), which go to `monitoring/` beside raw/, where `banklake report --target athena`
reads model health (python_jobs/assistant/report_facts.py, S3Monitoring); `--model` for the
local champion (`<lake>/models/fraud_xgb/<version>/` and the pointer `champion.json`), where
the daily pipeline's Score step downloads it (infrastructure/buildspec.yml).

What a key already on S3 with other content means depends on the kind of object, and that
rule lives in one place, POLICIES:

- **immutable** (raw, scores, a model version's files): raw is immutable on S3 as it is in
  the local lake (python_jobs/lake/writer.py); a day's scores on S3 are what dbt on Athena
  already read; a model version folder is what a pointer may already name. A different object
  is a conflict: the run refuses before uploading anything (half of one lake and half of
  another is worse than neither), names every key, and says what to do.
- **replaceable** (a day's monitoring report, the champion pointer): derived objects that are
  legitimately re-made (monitoring changes as labels mature; the pointer moves when a new
  champion is promoted). A different object is *replaced*, with a PutObject conditional on
  the ETag read before (`If-Match`): if someone else changed it in between, S3 answers 412
  (or 409 for a concurrent conditional write) and the run refuses instead of overwriting
  their object. Bucket versioning keeps every replaced version.

For every kind:

- every object carries the SHA-256 of its bytes in its metadata (`x-amz-meta-sha256`), and
  S3 verifies its own SHA-256 checksum of what arrived (ChecksumAlgorithm=SHA256);
- a key already there with the same SHA-256 is skipped, so a re-run uploads nothing;
- new keys are created with `If-None-Match: *` (on the single PUT and on the multipart
  completion), so an object someone else creates between the listing and the upload is not
  overwritten either: that race ends as a skip (same bytes) or a conflict;
- a raw file the S3 trigger already quarantined (`quarantine/<same path>` whose reason
  records the same SHA-256) is not sent again: re-sending it would only be quarantined again
  (scores are not validated on arrival, so there is no quarantine to consult);
- files above the TransferConfig threshold go up in parts, several files at a time
  (replacements are single conditional PUTs: monitoring reports and the pointer are small).

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
3. every file of the version folder (model.json and metadata.json, which the scorer needs,
   plus the model card and any plots: a few hundred KiB that let a reader of the bucket see
   what scores) goes up under `<lake root>models/fraud_xgb/<version>/`, immutable. A version
   copied by hand (no SHA-256 recorded) is downloaded and hashed, so identical files are
   skipped rather than refused;
4. model.json and metadata.json are downloaded back and verified by the same
   ml.artifacts.load_directory the scorer runs, and metadata.json's model SHA-256 must be the
   local one;
5. only then the pointer (the local file's bytes) is written: created with
   `If-None-Match: *`, or replaced with `If-Match` on the ETag read in step 2, so a pointer
   someone else moved during the run is not overwritten (the run refuses, naming it).

The destination must end in `raw/`: rows record their lake-relative path (`_source_file` =
`raw/<feed>/...`) and the S3 trigger checks it against the key, so the prefix above `raw/` is
the lake's root on S3 (the stack's RawDir is `s3://<lake bucket>/raw/`, so the models go to
`s3://<lake bucket>/models/fraud_xgb/`, where the buildspec reads them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from s3transfer.manager import TransferManager

from python_jobs.aws.athena_ddl import SCORES_PARTITION, SCORES_PREFIX
from python_jobs.lake.layout import Lake
from python_jobs.lake.schemas import FEEDS
from python_jobs.lake.validate import RAW_PREFIX, REASON_SUFFIX, quarantine_key

Say = Callable[[str], None]
SHA256_METADATA = "sha256"  # stored as x-amz-meta-sha256, hex
_MiB = 1024 * 1024
_CONTENT_TYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".gz": "application/gzip",
    ".json": "application/json",
    ".md": "text/markdown",
    ".png": "image/png",
}
MONITORING_PREFIX = "monitoring/"  # under the lake root, beside raw/ (ml/layout.py's keys)
# S3's answers to a conditional write whose condition no longer holds: 412 (If-None-Match
# found an object, If-Match another ETag), 409 (a concurrent conditional write to the key),
# 404 (If-Match on a key deleted meanwhile)
_CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_GONE = {"NoSuchKey", "404"}


class IngestConflict(RuntimeError):
    """Objects already in S3 differ from the local files of the same name: nothing replaced."""


class ChampionRegression(IngestConflict):
    """The pointer on S3 names a model at least as new as the local champion: not moved."""


@dataclass(frozen=True)
class Policy:
    """What a kind of object is on S3, and what a different object under its key means."""

    kind: str
    replaceable: bool  # a derived object re-made on purpose: replaced, If-Match on its ETag
    why: str  # why a difference is refused (immutable) or what replaces it (replaceable)
    what_to_do: str  # the advice printed with a conflict
    hash_unlabelled: bool = False  # an object with no SHA-256 recorded is downloaded and hashed

    def describe(self) -> str:
        return "replaceable" if self.replaceable else "immutable"


_RACE_ADVICE = (
    "What to do: another writer changed these keys while this run was comparing them, and "
    "nothing of theirs was replaced; run the same command again to compare with what is "
    "there now."
)
POLICIES: dict[str, Policy] = {
    "raw": Policy(
        "raw",
        replaceable=False,
        why="raw is immutable",
        what_to_do="What to do: if the local file is a new delivery, land it under another "
        "batch name (raw files are never replaced); if the S3 object is the wrong one, delete "
        "it deliberately (aws s3 rm <url>; bucket versioning keeps the old version) and run "
        "`banklake ingest` again.",
    ),
    "scores": Policy(
        "scores",
        replaceable=False,
        why="dbt on Athena may already have read them",
        what_to_do="What to do: if the day was re-scored on purpose (a new champion, a fix), "
        "delete the S3 object deliberately (aws s3 rm <url>; bucket versioning keeps the old "
        "version), run `banklake ingest --scores` again, then rebuild what reads the scores "
        "(dbt build --target athena --select stg_fraud_scores+).",
    ),
    "model": Policy(
        "model",
        replaceable=False,
        why="a model version never changes: a pointer may already name it",
        what_to_do="What to do: a changed model is a new version (`banklake train` writes one); "
        "the champion pointer was not moved. If the S3 object itself is the damaged one, "
        "delete that version deliberately (aws s3 rm --recursive; versioning keeps it) and "
        "run `banklake ingest --model` again.",
        # a version copied by hand (`aws s3 cp`, as the README once said) carries no
        # x-amz-meta-sha256; its files are small, so they are hashed rather than refused
        hash_unlabelled=True,
    ),
    "monitoring": Policy(
        "monitoring",
        replaceable=True,
        why="a day's report is re-made as its labels mature: replaced",
        what_to_do=_RACE_ADVICE,
    ),
    "champion": Policy(
        "champion",
        replaceable=True,
        why="the pointer moves when a newer champion is published: replaced",
        what_to_do=_RACE_ADVICE,
    ),
}


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/[lake/]raw/`: where the local `raw/` folder goes."""

    bucket: str
    prefix: str  # ends with "raw/"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://"):
            raise ValueError(f"--to must be an s3:// URL, got {url!r}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if not bucket or not (prefix == RAW_PREFIX or prefix.endswith("/" + RAW_PREFIX)):
            raise ValueError(
                f"--to must name the lake's raw/ prefix, like s3://my-bucket/raw/ or "
                f"s3://my-bucket/banklake/raw/ (got {url!r}): rows record their path as "
                "raw/<feed>/..., and the S3 trigger checks it against the key"
            )
        return cls(bucket=bucket, prefix=prefix)

    @property
    def lake_prefix(self) -> str:
        """The lake's root on S3: everything before `raw/` ('' or 'banklake/')."""
        return self.prefix[: -len(RAW_PREFIX)]

    def key(self, lake_relative: str) -> str:
        return self.lake_prefix + lake_relative

    @property
    def scores_prefix(self) -> str:
        """Where `--scores` uploads: processed/fraud_scores/ under the same lake root (the
        location athena_ddl.scores_location derives from BANKLAKE_S3_RAW_DIR)."""
        return self.lake_prefix + SCORES_PREFIX

    @property
    def monitoring_prefix(self) -> str:
        """Where `--monitoring` uploads: monitoring/ under the same lake root, where the
        Athena report reads model health (report_facts.monitoring_for)."""
        return self.lake_prefix + MONITORING_PREFIX

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class IngestConfig:
    """Transfer settings. Files above `multipart_threshold` are uploaded in parts."""

    multipart_threshold: int = 64 * _MiB
    multipart_chunksize: int = 16 * _MiB  # S3's minimum part is 5 MiB
    max_concurrency: int = 8

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
        )


@dataclass(frozen=True)
class LocalFile:
    path: Path
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Conflict:
    file: LocalFile
    detail: str


@dataclass(frozen=True)
class _Put:
    """One planned write: a new key (`if_match` None: If-None-Match: *) or the replacement of
    the object whose ETag was read (If-Match)."""

    file: LocalFile
    if_match: str | None = None
    detail: str = ""  # how the replaced object differed


@dataclass
class IngestReport:
    destination: S3Location
    prefix: str = ""  # the key prefix this run uploads under (default: destination.prefix)
    kind: str = "raw"  # a key of POLICIES: what the messages call the files, and their rule
    uploaded: list[LocalFile] = field(default_factory=list)  # new keys
    replaced: list[LocalFile] = field(default_factory=list)  # replaceable kinds only
    skipped: list[LocalFile] = field(default_factory=list)  # already there, same SHA-256
    quarantined: list[LocalFile] = field(default_factory=list)  # quarantined on arrival before
    conflicts: list[Conflict] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    pointer: str = ""  # `--model`: what happened to champion.json

    def __post_init__(self) -> None:
        if not self.prefix:
            self.prefix = self.destination.prefix

    @property
    def policy(self) -> Policy:
        return POLICIES[self.kind]

    @property
    def bytes_uploaded(self) -> int:
        return sum(f.size for f in [*self.uploaded, *self.replaced])

    def summary(self) -> str:
        verb = "would upload" if self.dry_run else "uploaded"
        replaced = "would replace" if self.dry_run else "replaced"
        text = (
            f"{verb} {len(self.uploaded)} files ({_size(self.bytes_uploaded)}), "
            + (
                f"{replaced} {len(self.replaced)} (changed since their upload), "
                if self.policy.replaceable
                else ""
            )
            + f"skipped {len(self.skipped)} (already there, same SHA-256), "
            f"{len(self.quarantined)} previously quarantined on arrival, "
            f"{len(self.conflicts)} conflicts, in {self.seconds:.1f} s "
            f"-> {self.destination.url(self.prefix)}"
        )
        if self.pointer:
            text += f"; champion pointer: {self.pointer}"
        return text


def make_s3_client(env: Mapping[str, str] | None = None) -> Any:
    """An S3 client with the same profile and region as `banklake athena` and the dbt
    profile (BANKLAKE_AWS_PROFILE, AWS_REGION or AWS_DEFAULT_REGION); unset = boto3's own
    chain. AWS_ENDPOINT_URL, when set, is honoured by boto3 itself."""
    import boto3

    env = os.environ if env is None else env
    session = boto3.Session(
        profile_name=env.get("BANKLAKE_AWS_PROFILE") or None,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
    )
    return session.client("s3")


def ingest(
    lake: Lake,
    destination: S3Location,
    *,
    scores: bool = False,
    monitoring: bool = False,
    model: bool = False,
    force_champion: bool = False,
    days: Collection[date] | None = None,
    s3: Any = None,
    config: IngestConfig | None = None,
    dry_run: bool = False,
    say: Say = print,
) -> IngestReport:
    """Uploads every local raw file (with `scores`, every fraud scores file; with
    `monitoring`, every monitoring report; with `model`, the champion: ingest_model) that S3
    lacks; raises IngestConflict (uploading nothing) when a key of an immutable kind holds
    different content, and replaces it (If-Match) for a replaceable kind. `days` limits
    scores or monitoring to those days (the Athena scorer uploads only the day it scored).
    `s3` defaults to make_s3_client(); its PutObject and CompleteMultipartUpload calls become
    conditional."""
    if scores + monitoring + model > 1:
        raise ValueError("ingest uploads one kind of file a run: scores, monitoring or model")
    if days is not None and not (scores or monitoring):
        raise ValueError("days selects scores or monitoring reports, not raw files")
    if force_champion and not model:
        raise ValueError("force_champion applies to the model upload only")
    config = config or IngestConfig()
    if s3 is None:
        s3 = make_s3_client()
    if model:
        return ingest_model(
            lake,
            destination,
            s3=s3,
            config=config,
            dry_run=dry_run,
            force_champion=force_champion,
            say=say,
        )
    if scores:
        source, prefix, kind = scores_dir(lake), destination.scores_prefix, "scores"
        files = local_score_files(lake, destination, days)
    elif monitoring:
        source, prefix, kind = monitoring_dir(lake), destination.monitoring_prefix, "monitoring"
        files = local_monitoring_files(lake, destination, days)
    else:
        source, prefix, kind = lake.raw, destination.prefix, "raw"
        files = local_raw_files(lake, destination)
    report = IngestReport(destination=destination, prefix=prefix, kind=kind, dry_run=dry_run)
    say(f"ingest {source} -> {destination.url(prefix)}: {len(files)} {kind} files")
    _transfer(s3, files, report, config, say)
    say(report.summary())
    return report


def _transfer(
    s3: Any, files: list[LocalFile], report: IngestReport, config: IngestConfig, say: Say
) -> None:
    """Plan, then upload (or, dry, print the plan), by the report's kind's policy; raises
    IngestConflict before uploading anything when the plan has a conflict, and after the
    upload when a race made one."""
    started = time.perf_counter()
    puts = _plan(s3, report.destination, files, report, config)
    if report.conflicts:
        report.seconds = time.perf_counter() - started
        raise IngestConflict(_conflict_message(report))
    if report.dry_run:
        for put in puts:
            (report.replaced if put.if_match else report.uploaded).append(put.file)
            verb = "would replace" if put.if_match else "would upload"
            say(f"  {verb} {put.file.key} ({_size(put.file.size)})")
    else:
        _upload(s3, report.destination, puts, report, config, say)
    report.seconds = time.perf_counter() - started
    for item in report.quarantined:
        say(f"  not sent again, quarantined on arrival before: {item.key}")
    if report.conflicts:  # lost a race: someone wrote other bytes between listing and upload
        raise IngestConflict(_conflict_message(report))


def local_raw_files(lake: Lake, destination: S3Location) -> list[LocalFile]:
    """Every raw file of every feed, in its partition, with its SHA-256."""
    if not lake.raw.is_dir():
        raise FileNotFoundError(f"{lake.raw} does not exist: nothing to ingest (wrong --lake?)")
    files = []
    for feed in FEEDS.values():
        for path in lake.raw_files(feed):
            if path.name.startswith(".tmp-"):
                continue  # a writer's temporary file, not a delivery
            files.append(_local_file(lake, destination, path))
    return files


def _local_file(lake: Lake, destination: S3Location, path: Path) -> LocalFile:
    """The file at its lake-relative key under the lake's root on S3, with its SHA-256."""
    return LocalFile(
        path=path,
        key=destination.key(lake.relative(path)),
        size=path.stat().st_size,
        sha256=_sha256(path),
    )


def scores_dir(lake: Lake) -> Path:
    """The local scores folder, where the scoring job writes it (ml/layout.py)."""
    from ml.layout import MlLayout  # imported late: ml/ pulls pandas and duckdb

    return MlLayout(lake).scores


def local_score_files(
    lake: Lake, destination: S3Location, days: Collection[date] | None = None
) -> list[LocalFile]:
    """Every day's scores file (or those of `days`), `score_date=YYYY-MM-DD/*.parquet`, with
    its SHA-256. The scoring job's temporary files (dot files) are not deliveries. A partition
    folder whose name is not a date is refused: Athena's date projection would never find
    it."""
    folder = scores_dir(lake)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: nothing to upload (run `banklake score` first, or the "
            "wrong --lake?)"
        )
    files, misplaced = [], []
    for path in sorted(folder.glob(f"{SCORES_PARTITION}=*/*.parquet")):
        if path.name.startswith("."):
            continue
        try:
            day = date.fromisoformat(path.parent.name.removeprefix(f"{SCORES_PARTITION}="))
        except ValueError:
            misplaced.append(lake.relative(path))
            continue
        if days is not None and day not in days:
            continue
        files.append(_local_file(lake, destination, path))
    if misplaced:
        raise ValueError(
            f"not in a {SCORES_PARTITION}=YYYY-MM-DD folder, so Athena would never read them: "
            + ", ".join(misplaced)
        )
    return files


def monitoring_dir(lake: Lake) -> Path:
    """The local monitoring folder, where `banklake monitor` writes (ml/layout.py)."""
    from ml.layout import MlLayout  # imported late: ml/ pulls pandas and duckdb

    return MlLayout(lake).monitoring


def local_monitoring_files(
    lake: Lake, destination: S3Location, days: Collection[date] | None = None
) -> list[LocalFile]:
    """Every monitoring report (or those of `days`), `monitoring/YYYY-MM-DD.json`, with its
    SHA-256: the names the Athena report looks for (report_facts._REPORT_NAME). Anything else
    in the folder (a writer's temporary file) is not a report and is left alone."""
    folder = monitoring_dir(lake)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: nothing to upload (run `banklake monitor` first, or the "
            "wrong --lake?)"
        )
    files = []
    for path in sorted(folder.glob("*.json")):
        try:
            day = date.fromisoformat(path.stem)
        except ValueError:
            continue
        if path.stem != day.isoformat() or (days is not None and day not in days):
            continue
        files.append(_local_file(lake, destination, path))
    return files


# --- the champion (`--model`) -------------------------------------------------------------


def local_model_files(lake: Lake, destination: S3Location, version: str) -> list[LocalFile]:
    """Every file of the version folder (model.json, metadata.json, the card, the plots):
    save_version renames the folder into place whole, so it holds finished files only; dot
    files are skipped all the same."""
    from ml.layout import MlLayout  # imported late: ml/ pulls pandas and duckdb

    folder = MlLayout(lake).version_dir(version)
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [_local_file(lake, destination, path) for path in paths]


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
    pointer = _local_file(lake, destination, layout.champion_file)
    report = IngestReport(destination=destination, prefix=prefix, kind="model", dry_run=dry_run)
    say(
        f"ingest champion {model.version} ({layout.version_dir(model.version)}) -> "
        f"{destination.url(prefix)}: {len(files)} model files, then "
        f"{destination.url(pointer.key)}"
    )
    # the pointer is read (and an older model refused) before anything is uploaded; its ETag
    # then guards the whole run: a pointer moved meanwhile by someone else is not overwritten
    move = _plan_pointer(s3, destination, pointer, model.metadata, force_champion)
    _transfer(s3, files, report, config or IngestConfig(), say)
    if not dry_run:
        _verify_remote_model(s3, destination, prefix, model.metadata)
        say(f"  verified {destination.url(prefix)}: model.json matches metadata.json's SHA-256")
    report.pointer = _write_pointer(s3, destination, move, dry_run, say)
    say(report.summary())
    return report


def _verify_remote_model(
    s3: Any, dest: S3Location, prefix: str, local_metadata: Mapping[str, Any]
) -> None:
    """Downloads the version's model.json and metadata.json and loads them with the scorer's
    own checks (ml.artifacts.load_directory: model.json's SHA-256 against metadata.json, the
    feature list, the booster loads); metadata.json must record the local model's SHA-256.
    Raises ModelIntegrityError naming the S3 folder."""
    from ml.artifacts import METADATA_FILE, MODEL_FILE, ModelIntegrityError, load_directory

    url = dest.url(prefix)
    with tempfile.TemporaryDirectory(prefix="banklake-verify-model-") as work:
        folder = Path(work) / "model"
        folder.mkdir()
        for name in (MODEL_FILE, METADATA_FILE):
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
    remote, etag = _read_json(s3, dest.bucket, pointer.key)
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
            _put_conditional(s3, dest.bucket, move.file, if_match=move.etag)
        except ClientError as error:
            if _error_code(error) not in _CONDITION_FAILED | _GONE:
                raise
            report = IngestReport(destination=dest, prefix=move.file.key, kind="champion")
            report.conflicts.append(
                Conflict(move.file, f"changed since this run read it ({_error_code(error)})")
            )
            raise IngestConflict(_conflict_message(report)) from None
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
        metadata, _ = _read_json(s3, dest.bucket, folder + "metadata.json")
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


def _read_json(s3: Any, bucket: str, key: str) -> tuple[Any, str | None]:
    """(the object's JSON, or None if unreadable, its ETag), or (None, None) if no object."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _error_code(error) in _GONE:
            return None, None
        raise
    body = got["Body"].read()
    try:
        return json.loads(body), got["ETag"]
    except ValueError:
        return None, got["ETag"]


# --- plan and upload, one policy per kind ---------------------------------------------------


def _plan(
    s3: Any, dest: S3Location, files: list[LocalFile], report: IngestReport, config: IngestConfig
) -> list[_Put]:
    """Sorts the files into skipped, quarantined and conflicts; returns the writes to make.
    A key holding other content is a conflict for an immutable kind, a replacement (with the
    ETag read now) for a replaceable one: report.policy decides, here only."""
    remote = _list_objects(s3, dest.bucket, report.prefix)
    raw = report.kind == "raw"
    reasons = (
        set(_list_objects(s3, dest.bucket, dest.lake_prefix + "quarantine/")) if raw else set()
    )

    def decide(item: LocalFile) -> tuple[str, _Put | None, str]:
        if item.key in remote:
            size, etag = remote[item.key]
            if size != item.size:
                detail = f"{size:,} bytes in S3, {item.size:,} locally"
            else:
                sha256, etag = _remote_state(s3, dest.bucket, item.key, report.policy)
                if sha256 == item.sha256:
                    return "skip", None, ""
                detail = _difference(sha256, item.sha256)
            if report.policy.replaceable:
                return "write", _Put(item, if_match=etag, detail=detail), ""
            return "conflict", None, detail
        if raw:
            reason_key = _quarantine_reason_key(dest, item.key)
            if reason_key in reasons and _reason_sha256(s3, dest.bucket, reason_key) == item.sha256:
                return "quarantined", None, ""
        return "write", _Put(item), ""

    with ThreadPoolExecutor(max_workers=config.max_concurrency) as pool:
        decisions = list(pool.map(decide, files))
    puts = []
    for item, (action, put, detail) in zip(files, decisions, strict=True):
        if put is not None:
            puts.append(put)
        elif action == "skip":
            report.skipped.append(item)
        elif action == "quarantined":
            report.quarantined.append(item)
        else:
            report.conflicts.append(Conflict(item, detail))
    return puts


def _difference(remote: str | None, local: str) -> str:
    if remote is None:
        return "the S3 object has no SHA-256 to compare (not uploaded by ingest)"
    return f"SHA-256 {remote[:12]}... in S3, {local[:12]}... locally"


def _remote_state(
    s3: Any, bucket: str, key: str, policy: Policy | None = None
) -> tuple[str | None, str]:
    """(the object's SHA-256, hex: our metadata, else S3's full-object SHA-256 checksum,
    else, if the policy says so, the digest of its downloaded bytes; its ETag)."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    etag = head["ETag"]
    if SHA256_METADATA in head.get("Metadata", {}):
        return head["Metadata"][SHA256_METADATA], etag
    checksum = head.get("ChecksumSHA256")
    if checksum and "-" not in checksum:  # "-N" marks a composite (per-part) checksum
        return base64.b64decode(checksum).hex(), etag
    if policy is not None and policy.hash_unlabelled:
        body = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(_MiB):
            digest.update(chunk)
        return digest.hexdigest(), etag
    return None, etag


def _object_args(item: LocalFile) -> dict[str, Any]:
    """What every object carries: its SHA-256, S3's own SHA-256 check, its content type."""
    return {
        "Metadata": {SHA256_METADATA: item.sha256},
        "ChecksumAlgorithm": "SHA256",
        "ContentType": _CONTENT_TYPES.get(item.path.suffix, "binary/octet-stream"),
    }


def _put_conditional(s3: Any, bucket: str, item: LocalFile, *, if_match: str | None) -> None:
    """One PutObject: If-Match on the ETag read before (a replacement), else If-None-Match: *
    (a new key)."""
    condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
    s3.put_object(
        Bucket=bucket, Key=item.key, Body=item.path.read_bytes(), **_object_args(item), **condition
    )


def _upload(
    s3: Any,
    dest: S3Location,
    puts: list[_Put],
    report: IngestReport,
    config: IngestConfig,
    say: Say,
) -> None:
    """New keys through the transfer manager (multipart above the threshold, If-None-Match: *
    on every PutObject and CompleteMultipartUpload); replacements as single PutObjects with
    If-Match on the ETag the plan read."""
    _make_puts_conditional(s3)
    for put in (p for p in puts if p.if_match):
        item = put.file
        try:
            _put_conditional(s3, dest.bucket, item, if_match=put.if_match)
        except ClientError as error:
            if _error_code(error) not in _CONDITION_FAILED | _GONE:
                raise
            report.conflicts.append(Conflict(item, f"changed during this run ({error})"))
            continue
        report.replaced.append(item)
        say(f"  replaced {item.key} ({_size(item.size)}; {put.detail})")
    new = [put.file for put in puts if not put.if_match]
    with TransferManager(s3, config.transfer_config()) as manager:
        futures = [
            (item, manager.upload(str(item.path), dest.bucket, item.key, _object_args(item)))
            for item in new
        ]
        for item, future in futures:
            try:
                future.result()
            except ClientError as error:
                if _error_code(error) not in _CONDITION_FAILED:
                    raise
                sha256, _ = _remote_state(s3, dest.bucket, item.key)  # created meanwhile
                if sha256 == item.sha256:
                    report.skipped.append(item)
                else:
                    detail = _difference(sha256, item.sha256)
                    report.conflicts.append(Conflict(item, f"created during this run; {detail}"))
                continue
            report.uploaded.append(item)
            say(f"  uploaded {item.key} ({_size(item.size)})")


def _make_puts_conditional(s3: Any) -> None:
    """Adds If-None-Match: * to every PutObject and CompleteMultipartUpload of this client
    that does not carry If-Match (a replacement)."""

    def if_none_match(params: dict[str, Any], **_: Any) -> None:
        if "IfMatch" not in params:
            params.setdefault("IfNoneMatch", "*")

    for operation in ("PutObject", "CompleteMultipartUpload"):
        s3.meta.events.register(
            f"before-parameter-build.s3.{operation}",
            if_none_match,
            unique_id=f"banklake-ingest-if-none-match-{operation}",
        )


def _list_objects(s3: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """Every key under `prefix`: (size, ETag)."""
    objects: dict[str, tuple[int, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            objects[obj["Key"]] = (obj["Size"], obj["ETag"])
    return objects


def _quarantine_reason_key(dest: S3Location, key: str) -> str:
    relative = key[len(dest.lake_prefix) :]
    return dest.lake_prefix + quarantine_key(relative) + REASON_SUFFIX


def _reason_sha256(s3: Any, bucket: str, reason_key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=reason_key)["Body"].read()
        return json.loads(body).get("sha256")
    except (ClientError, ValueError):
        return None


def _conflict_message(report: IngestReport) -> str:
    """Names every conflicting key, says why (the kind's policy) and what to do."""
    dest, policy = report.destination, report.policy
    if policy.replaceable:
        what, why = "that another writer changed during this run", "nothing of theirs replaced"
    else:
        what, why = "that differ from the local files", policy.why
    written = len(report.uploaded) + len(report.replaced)
    done = f"{written} other files were uploaded" if written else "nothing was uploaded"
    lines = [
        f"refusing to replace {len(report.conflicts)} {report.kind} object(s) in "
        f"s3://{dest.bucket}/ {what} ({why}; {done}):"
    ]
    lines += [f"  {dest.url(c.file.key)}: {c.detail}" for c in report.conflicts]
    lines.append(policy.what_to_do)
    return "\n".join(lines)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _size(n: int) -> str:
    return f"{n / _MiB:,.1f} MiB" if n >= _MiB else f"{n / 1024:,.1f} KiB"
