"""Where the lake is on S3: `s3://bucket/[root/]raw/` names the lake's root (everything before
`raw/`), and every other kind of object goes beside raw/ under that root, as in the local
lake: processed/fraud_scores/, monitoring/, models/, quarantine/, unload/.

The destination must end in `raw/`: rows record their lake-relative path (`_source_file` =
`raw/<feed>/...`) and the S3 trigger checks it against the key, so the prefix above `raw/` is
the lake's root on S3 (the stack's RawDir is `s3://<lake bucket>/raw/`, so the models go to
`s3://<lake bucket>/models/fraud_xgb/`, where the buildspec reads them).
"""

from __future__ import annotations

from dataclasses import dataclass

from python_jobs.aws.athena_ddl import SCORES_PREFIX
from python_jobs.lake.validate import RAW_PREFIX

MONITORING_PREFIX = "monitoring/"  # under the lake root, beside raw/ (ml/layout.py's keys)


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
