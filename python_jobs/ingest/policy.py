"""What a key already on S3 with other content means depends on the kind of object, and that
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
"""

from __future__ import annotations

from dataclasses import dataclass


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
