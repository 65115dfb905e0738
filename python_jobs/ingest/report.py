"""What one `banklake ingest` run did, kind by kind: uploaded, replaced, skipped, previously
quarantined and conflicting files, and the message a conflict raises with."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_jobs.aws.s3_location import S3Location
from python_jobs.ingest.local_files import LocalFile, MiB
from python_jobs.ingest.policy import POLICIES, Policy


@dataclass(frozen=True)
class Conflict:
    file: LocalFile
    detail: str


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
            f"{verb} {len(self.uploaded)} files ({size_text(self.bytes_uploaded)}), "
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


def conflict_message(report: IngestReport) -> str:
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


def size_text(n: int) -> str:
    return f"{n / MiB:,.1f} MiB" if n >= MiB else f"{n / 1024:,.1f} KiB"
