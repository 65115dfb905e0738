"""Builds the S3 trigger's deployment zip: exactly the modules the Lambda imports.

    python -m python_jobs.aws.lambda_package build/s3_trigger.zip

The zip holds our code only; boto3 comes with the Lambda runtime and pyarrow with a layer
(python_jobs/aws/LAMBDA.md). The file list is tested: the sandbox test in
python_jobs/tests/test_s3_trigger.py imports the handler from this zip with every other
third-party package blocked, so a module missing here fails the suite, not the deployment.
Entries get a fixed timestamp, so the same sources give the same bytes (and the same
CodeSha256: CloudFormation only updates the function when the code really changed).
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAMBDA_MODULES = (
    "python_jobs/__init__.py",
    "python_jobs/aws/__init__.py",
    "python_jobs/aws/s3_trigger.py",
    "python_jobs/lake/__init__.py",
    # validate.py's ledger (an atomic write under a lock): standard library only
    "python_jobs/lake/durable.py",
    "python_jobs/lake/layout.py",
    "python_jobs/lake/schemas.py",
    "python_jobs/lake/validate.py",
    # the validation figures (EMF on the function's log): standard library only
    "python_jobs/observability/__init__.py",
    "python_jobs/observability/catalog.py",
    "python_jobs/observability/emf.py",
    "python_jobs/observability/jobs.py",
)
_EPOCH = (2020, 1, 1, 0, 0, 0)


def build_zip(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in LAMBDA_MODULES:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (REPO / name).read_bytes())
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = build_zip(Path(args[0] if args else "build/s3_trigger.zip"))
    print(f"{target} ({target.stat().st_size:,} bytes, {len(LAMBDA_MODULES)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
